"""3-D Secure for operators: its metrics on ``/metrics`` (sessions begun by version, outcomes by scenario and
transStatus, completions refused by reason) and ``[secure3d] server_url`` (where the ACS posts the RReq when it
reaches the switch at another address than browsers do), over the real front, simulator DS/ACS and PostgreSQL
(tests/secure3d_rig.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import secure3d_rig
from aiohttp import web
from pg import fresh_dsn, pg_dsn, scratch_dir  # noqa: F401  (fixtures)
from prometheus_client.parser import text_string_to_metric_families
from secure3d_rig import BROWSER, Rig, Shopper, body, forms_of, replace_secure3d

from switch.wire.threeds import Signer, Verifier

pytestmark = pytest.mark.timeout(60)

VISA = "4111111111111111"
NOT_ENROLLED = "4276838748917319"
REJECTED = "4000000000009235"
RETURN = "https://shop.example/return"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
async def rig(fresh_dsn: str, scratch_dir: Path) -> AsyncIterator[Rig]:  # noqa: F811
    async for r in secure3d_rig.open_rig(fresh_dsn, scratch_dir):
        yield r


async def _scrape(rig: Rig) -> Samples:
    resp = await rig.http.get("/metrics")
    assert resp.status == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(await resp.text())
        for s in fam.samples
    }


def _grew(before: Samples, after: Samples, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


async def _prepared(rig: Rig, pan: str) -> dict[str, Any]:
    status, doc = await rig.call("POST", "/orders/authorize", body(pan, options={"return_url": RETURN}))
    assert status == 201, doc
    order: dict[str, Any] = doc["orders"][0]
    return order


async def _pares(shopper: Shopper, order: dict[str, Any], code: str = "1234") -> str:
    form = order["form3d"]
    _, text, _ = await shopper.post(form["action"], {k: form[k] for k in ("MD", "PaReq", "TermUrl")})
    (challenge,) = forms_of(text)
    _, text, _ = await shopper.submit(challenge, form["action"], code=code)
    (autopost,) = forms_of(text)
    return autopost.fields["PaRes"]


async def test_sessions_outcomes_and_refused_completions_are_counted(rig: Rig) -> None:
    before = await _scrape(rig)
    async with aiohttp.ClientSession() as session:
        shopper = Shopper(session)
        passed = await _prepared(rig, VISA)
        pares = await _pares(shopper, passed)
        status, _ = await rig.call("POST", f"/orders/{passed['id']}/complete", {"PaRes": pares})
        assert status == 200
        status, _ = await rig.call("POST", f"/orders/{passed['id']}/complete", {"PaRes": pares})
        assert status == 402  # already completed

        waiting = await _prepared(rig, VISA)
        genuine = Verifier.load(rig.key_dir / "acs_signing.pub.pem").verify(await _pares(shopper, waiting), "PaRes")
        forged = Signer.generate().sign({k: v for k, v in genuine.items() if k not in ("iat", "exp")})
        status, _ = await rig.call("POST", f"/orders/{waiting['id']}/complete", {"PaRes": forged})
        assert status == 422
        status, _ = await rig.call("POST", f"/orders/{waiting['id']}/complete", {"PaRes": pares})  # another order's
        assert status == 402

        failed = await _prepared(rig, VISA)
        status, _ = await rig.call(
            "POST", f"/orders/{failed['id']}/complete", {"PaRes": await _pares(shopper, failed, "0000")}
        )
        assert status == 402

    status, _ = await rig.call("POST", "/orders/authorize", body(NOT_ENROLLED))
    assert status == 200
    status, _ = await rig.call("POST", "/secure3d/rreq", {"rreq": "not-a-jws"})
    assert status == 422
    after = await _scrape(rig)

    assert _grew(before, after, "isoswitch_secure3d_sessions_total", version="1") == 4
    assert _grew(before, after, "isoswitch_secure3d_outcomes_total", scenario="full", status="Y") == 1
    assert _grew(before, after, "isoswitch_secure3d_outcomes_total", scenario="failed", status="N") == 1
    assert _grew(before, after, "isoswitch_secure3d_outcomes_total", scenario="not_enrolled", status="N") == 1
    assert _grew(before, after, "isoswitch_secure3d_refused_total", reason="already_completed") == 1
    assert _grew(before, after, "isoswitch_secure3d_refused_total", reason="signature") == 2  # the PaRes, the RReq
    assert _grew(before, after, "isoswitch_secure3d_refused_total", reason="mismatch") == 1


async def test_a_3ds2_frictionless_rejection_is_counted_by_version_and_status(rig: Rig) -> None:
    before = await _scrape(rig)
    doc = body(REJECTED, secure3d={"browser_details": secure3d_rig.BROWSER})
    status, answer = await rig.call("POST", "/orders/authorize", doc)
    assert status == 201 and answer["message"] == "Method3d required", answer
    status, answer = await rig.call("POST", f"/orders/{answer['order_id']}/resume")  # the method never came back
    assert status == 402, answer
    after = await _scrape(rig)
    assert _grew(before, after, "isoswitch_secure3d_sessions_total", version="2") == 1
    assert _grew(before, after, "isoswitch_secure3d_outcomes_total", scenario="rejected", status="N") == 1


async def test_the_rreq_goes_to_the_server_url_and_the_browser_to_the_public_one(rig: Rig) -> None:
    relayed: list[str] = []

    async def relay(request: web.Request) -> web.Response:
        """The switch as the ACS's network sees it (another address): forwards to the front."""
        relayed.append(request.path)
        async with (
            aiohttp.ClientSession() as client,
            client.post(
                rig.base + request.path, data=await request.read(), headers={"Content-Type": request.content_type}
            ) as resp,
        ):
            return web.Response(status=resp.status, body=await resp.read(), content_type=resp.content_type)

    app = web.Application()
    app.router.add_post("/{tail:.*}", relay)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        replace_secure3d(rig, server_url=f"http://127.0.0.1:{runner.addresses[0][1]}/")
        doc = body(VISA, options={"return_url": RETURN}, secure3d={"browser_details": BROWSER, "force_challenge": 1})
        status, answer = await rig.call("POST", "/orders/authorize", doc)
        assert status == 201, answer
        async with aiohttp.ClientSession() as session:
            shopper = Shopper(session)
            method = answer["method3d_params"]
            await shopper.method(method["method_url"], method["method_data"])
            status, answer = await rig.call("POST", f"/orders/{answer['order_id']}/resume")
            assert status == 201, answer
            status, _, headers = await shopper.through_acs(answer["orders"][0]["form3d"], "1234")
        assert status == 303 and headers["Location"] == RETURN  # the browser came back to the public URL
        assert relayed == ["/secure3d/rreq"]
        status, done = await rig.call("GET", f"/orders/{answer['orders'][0]['id']}")
        assert done["orders"][0]["status"] == "authorized"
    finally:
        await runner.cleanup()
