"""Shared by test_token_pay, test_oneclick and test_order_options: wallet keys, a simulator whose wallet
has them, tokens minted by that wallet (its admin ``POST /wallet/token``), and the REST front over the real
runtime (PostgreSQL, router, the simulator) with the keys where ``isoswitch up`` keeps them."""

from __future__ import annotations

import base64
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from acquirer_sim import SimServer
from http_front import FrontConfig, create_app
from switch.config import SwitchConfig
from switch.runtime import Runtime, RuntimeConfig, open_runtime
from switch.store import DbConfig, ProjectSettings
from switch.wire.codec import Message
from switch.wire.wallet import generate_key_pair

__all__ = ["Front", "Keys", "Recorder", "make_keys", "mint", "open_front"]


@dataclass(frozen=True)
class Keys:
    merchant: Path  # the gateway's private key (the switch decrypts with it)
    merchant_public: Path
    signing: Path  # the wallet's private key (the simulator signs with it)
    signing_public: Path


def make_keys(directory: Path) -> Keys:
    """Both pairs under ``directory`` with the names ``isoswitch up`` gives them."""
    merchant, merchant_public = generate_key_pair(directory, "wallet_merchant")
    signing, signing_public = generate_key_pair(directory, "wallet_signing")
    return Keys(merchant, merchant_public, signing, signing_public)


async def mint(sim: SimServer, **doc: Any) -> dict[str, Any]:
    """A token from the simulator's wallet (``POST /wallet/token``)."""
    assert sim.admin_address is not None
    host, port = sim.admin_address
    async with aiohttp.ClientSession() as s, s.post(f"http://{host}:{port}/wallet/token", json=doc) as resp:
        body: dict[str, Any] = await resp.json()
        assert resp.status == 200, body
        return body


class Recorder:
    """The simulator's issuer, keeping a copy of every request it handles."""

    def __init__(self, issuer: Any, sent: list[Message]) -> None:
        self._issuer, self._sent = issuer, sent

    def handle(self, msg: Message) -> Any:
        self._sent.append(dict(msg))
        return self._issuer.handle(msg)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._issuer, name)


@dataclass
class Front:
    http: TestClient[web.Request, web.Application]
    runtime: Runtime
    auth: dict[str, str]
    other: dict[str, str]
    sent: list[Message] = field(default_factory=list)

    async def call(
        self, method: str, path: str, body: Any = None, *, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        data = None if body is None else orjson.dumps(body)
        hdrs = {"Content-Type": "application/json", **(self.auth if headers is None else headers)}
        resp = await self.http.request(method, path, data=data, headers=hdrs)
        return resp.status, orjson.loads(await resp.read())


def _basic(login: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()}


async def open_front(
    sim: SimServer, dsn: str, data_dir: Path, settings: ProjectSettings | None = None
) -> AsyncIterator[Front]:
    """The front over a real runtime; projects "project" (``settings``) and "other". Use as a fixture body."""
    assert sim.address is not None
    host, port = sim.address
    switch = SwitchConfig.from_dict(
        {
            "destinations": [{"name": "sim", "host": host, "port": port, "links": 2, "echo_interval": 0.0}],
            "routing": {"default": "sim", "test": "sim"},
        }
    )
    runtime = await open_runtime(
        RuntimeConfig(
            db=DbConfig(url=dsn, data_dir=data_dir, min_size=1, max_size=5),
            switch=switch,
            request_timeout=2.0,
            close_timeout=2.0,
            id_block_size=50,
            env={"ISOSWITCH_PAN_KEY": base64.b64encode(secrets.token_bytes(32)).decode()},
        )
    )
    try:
        shop = settings or ProjectSettings(terminal_id="TERM0001", merchant_id="MERCHANT0000001")
        _, password = await runtime.projects.create("project", shop)
        _, other = await runtime.projects.create("other", ProjectSettings.defaults(2, "other"))
        async with TestClient(TestServer(create_app(runtime, FrontConfig(port=0)))) as http:
            f = Front(http, runtime, _basic("project", password), _basic("other", other))
            sim.issuer = Recorder(sim.issuer, f.sent)  # type: ignore[assignment]
            yield f
    finally:
        await runtime.close()
