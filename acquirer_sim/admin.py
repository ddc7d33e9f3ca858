"""The simulator's admin HTTP API (aiohttp): books, faults, counters.

=======  =========  ==========================================================
method   path       what
=======  =========  ==========================================================
GET      /health    ``{"status": "ok", "listening": "HOST:PORT", ...}``
GET      /stats     counters (requests, responses, decode_errors, ...)
GET      /ledger    every card's books, PANs masked (see ``ledger.py``)
GET      /faults    the active fault rules (PANs masked)
PUT      /faults    a JSON list of fault rules, replacing the active ones
GET      /metrics   Prometheus text format (:mod:`acquirer_sim.admin_metrics`)
POST     /wallet/token  a wallet test token (:mod:`acquirer_sim.wallet`), when the wallet has its keys
=======  =========  ==========================================================

The simulated 3-D Secure directory server and ACS (``/ds/...``, ``/acs/...``)
are served here too: :mod:`acquirer_sim.acs`.

Nothing here ever shows a full PAN.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import hdrs, web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from acquirer_sim import wallet
from acquirer_sim.acs import Acs, add_routes
from acquirer_sim.admin_metrics import sim_registry
from acquirer_sim.errors import RulesError

if TYPE_CHECKING:
    from acquirer_sim.server import SimServer

__all__ = ["AdminServer", "build_app"]

_SIM: web.AppKey[SimServer] = web.AppKey("sim")
_REGISTRY = web.AppKey("registry", CollectorRegistry)


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


async def _health(request: web.Request) -> web.Response:
    sim = request.app[_SIM]
    addr = sim.address
    return _json(
        {
            "status": "ok",
            "listening": None if addr is None else f"{addr[0]}:{addr[1]}",
            "dialect": sim.config.dialect,
            "framing": sim.config.framing,
            "connections": sim.stats.connections,
        }
    )


async def _stats(request: web.Request) -> web.Response:
    return _json(request.app[_SIM].stats_dict())


async def _metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[_REGISTRY])
    return web.Response(body=body, headers={hdrs.CONTENT_TYPE: CONTENT_TYPE_LATEST})


async def _ledger(request: web.Request) -> web.Response:
    return _json(request.app[_SIM].ledger.snapshot())


async def _get_faults(request: web.Request) -> web.Response:
    return _json([r.to_dict() for r in request.app[_SIM].faults.rules])


async def _put_faults(request: web.Request) -> web.Response:
    sim = request.app[_SIM]
    try:
        doc = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return _json({"error": "body is not JSON"}, status=400)
    if isinstance(doc, dict) and set(doc) == {"faults"}:
        doc = doc["faults"]
    if not isinstance(doc, list):
        return _json({"error": "body must be a JSON list of fault rules"}, status=400)
    try:
        sim.set_faults(doc)
    except RulesError as e:
        return _json({"error": str(e)}, status=400)
    return _json([r.to_dict() for r in sim.faults.rules])


async def _wallet_token(request: web.Request) -> web.Response:
    cfg = request.app[_SIM].config
    if cfg.wallet_signing_key is None or cfg.wallet_merchant_key is None:
        return _json({"error": "the wallet has no keys (--wallet-signing-key, --wallet-merchant-key)"}, status=404)
    try:
        doc = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return _json({"error": "body is not JSON"}, status=400)
    if not isinstance(doc, dict):
        return _json({"error": "body must be a JSON object"}, status=400)
    keys = wallet.WalletKeys(Path(cfg.wallet_signing_key), Path(cfg.wallet_merchant_key))
    try:
        return _json(wallet.mint(keys, doc))
    except ValueError as e:  # MintError, or a bad key file
        return _json({"error": str(e)}, status=400)


def build_app(sim: SimServer) -> web.Application:
    """The aiohttp application serving ``sim``'s admin endpoints."""
    app = web.Application()
    app[_SIM] = sim
    app[_REGISTRY] = sim_registry(sim)
    app.router.add_get("/health", _health)
    app.router.add_get("/stats", _stats)
    app.router.add_get("/ledger", _ledger)
    app.router.add_get("/faults", _get_faults)
    app.router.add_put("/faults", _put_faults)
    app.router.add_get("/metrics", _metrics)
    cfg = sim.config
    add_routes(app, Acs.create(cfg.rules, cfg.acs_key, cfg.acs_url))
    app.router.add_post("/wallet/token", _wallet_token)
    return app


class AdminServer:
    """Runs :func:`build_app` on its own port, paired start/stop."""

    def __init__(self, sim: SimServer) -> None:
        self._sim = sim
        self._runner: web.AppRunner | None = None

    async def start(self, host: str, port: int) -> tuple[str, int]:
        runner = web.AppRunner(build_app(self._sim), access_log=None, handle_signals=False)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port, reuse_address=True)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        addr = runner.addresses[0]
        return (addr[0], addr[1])

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
