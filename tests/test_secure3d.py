"""3-D Secure 1 and 2 end to end: HTTP to the real front, the real runtime on PostgreSQL, the real simulator with
its DS and ACS (signed PaRes/ARes/RReq/CRes), the cardholder's browser played by plain HTTP (tests/secure3d_rig.py).

Every card row of ISSUE11.md's table, both versions; completion twice; forged, replayed and foreign messages;
another project's order; expiry; DE 121-123 as the simulator received them; no CAVV left in any table.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import aiohttp
import pytest
import secure3d_rig
from pg import fresh_dsn, pg_dsn, scratch_dir  # noqa: F401  (fixtures)
from secure3d_rig import BROWSER, Rig, Shopper, body, forms_of, replace_secure3d

from switch.money import currency
from switch.orders.model import Order
from switch.secure3d import Callbacks, Challenge, Secure3DRequest
from switch.translate import Card
from switch.wire.threeds import Signer, Verifier, decode_json, encode_json

pytestmark = pytest.mark.timeout(60)

VISA = "4111111111111111"
SOFT_DECLINE = "4000000000003220"  # the issuer answers A1 without ECI 05/06/02/01; 3DS2 always challenges
NO_METHOD = "4000000000003063"
REJECTED = "4000000000009235"
ATTEMPT = "4000000000003055"
MASTERCARD = "5200000000001005"
NOT_ENROLLED = "4276838748917319"
UNAVAILABLE = "4276990011343663"  # seeds/003: declined without 3-D Secure; "unable to verify" with it

RETURN = "https://shop.example/return"
RETURN_3DS2 = "https://shop.example/return3ds2"


@pytest.fixture
async def rig(fresh_dsn: str, scratch_dir: Path) -> AsyncIterator[Rig]:  # noqa: F811
    async for r in secure3d_rig.open_rig(fresh_dsn, scratch_dir):
        yield r


@pytest.fixture
async def shopper() -> AsyncIterator[Shopper]:
    async with aiohttp.ClientSession() as session:
        yield Shopper(session)


async def _prepared(rig: Rig, pan: str, **options: Any) -> dict[str, Any]:
    status, doc = await rig.call("POST", "/orders/authorize", body(pan, options={"return_url": RETURN, **options}))
    assert status == 201, doc
    order: dict[str, Any] = doc["orders"][0]
    assert order["status"] == "prepared"
    return order


async def _order(rig: Rig, order_id: str) -> dict[str, Any]:
    status, doc = await rig.call("GET", f"/orders/{order_id}?expand=secure3d,operations")
    assert status == 200, doc
    order: dict[str, Any] = doc["orders"][0]
    return order


def _v2(pan: str, **secure: Any) -> dict[str, Any]:
    return body(
        pan,
        options={"return_url": RETURN, "secure3d20_return_url": RETURN_3DS2},
        secure3d={"browser_details": BROWSER, **secure},
    )


async def _through_method(rig: Rig, shopper: Shopper, pan: str, **secure: Any) -> tuple[int, dict[str, Any]]:
    """3DS2 up to /resume: the 201 "Method3d required", the method in the 'iframe', then resume's answer."""
    status, doc = await rig.call("POST", "/orders/authorize", _v2(pan, **secure))
    assert status == 201, doc
    assert doc["message"] == "Method3d required" and set(doc["method3d_params"]) == {"method_url", "method_data"}
    status, _, _ = await shopper.method(doc["method3d_params"]["method_url"], doc["method3d_params"]["method_data"])
    assert status == 200
    result: tuple[int, dict[str, Any]] = await rig.call("POST", f"/orders/{doc['order_id']}/resume")
    return result


# -- without 3-D Secure nothing changes ----------------------------------------------------------------------


async def test_an_authorization_without_3ds_is_answered_200_with_no_session_and_no_directory_call(rig: Rig) -> None:
    doc = body(VISA)
    del doc["options"]
    status, answer = await rig.call("POST", "/orders/authorize", doc)
    assert status == 200 and answer["orders"][0]["status"] == "authorized" and answer["orders"][0]["secure3d"] == {}
    async with rig.runtime.db.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM secure3d_sessions") == 0
    assert "121" not in rig.iso("0100")[0]


async def test_the_soft_decline_card_answers_a1_without_3ds_and_passes_with_force3d(rig: Rig, shopper: Shopper) -> None:
    doc = body(SOFT_DECLINE)
    del doc["options"]
    status, answer = await rig.call("POST", "/orders/authorize", doc)
    assert status == 402 and answer["failure_type"] == "declined", answer
    declined = await _order(rig, answer["order_id"])
    assert declined["operations"][0]["iso_response_code"] == "A1"
    order = await _prepared(rig, SOFT_DECLINE)
    status, _, headers = await shopper.through_acs(order["form3d"], "1234")
    assert status == 303 and headers["Location"] == RETURN
    assert (await _order(rig, order["id"]))["status"] == "authorized"


# -- 3-D Secure 1 --------------------------------------------------------------------------------------------


async def test_force3d_on_an_enrolled_card_answers_201_prepared_with_the_seeds_form(rig: Rig) -> None:
    order = await _prepared(rig, VISA)
    form = order["form3d"]
    assert set(form) == {"MD", "PaReq", "TermUrl", "action", "method"}
    assert form["TermUrl"] == f"{rig.base}/complete/secure3d" and form["method"] == "POST"
    assert form["action"].endswith("/acs/3ds1")
    assert decode_json(form["PaReq"])["amount"] == "9.99"
    assert order["form3d_html"].startswith('<form id="form3d" method="POST"')
    assert "document.forms['form3d'].submit()" in order["form3d_html"]
    assert order["secure3d"]["reason"] == "force3d" and order["secure3d"]["scenario"] == "unknown"
    assert order["operations"] == [] and rig.iso("0100") == []
    stored = await _order(rig, order["id"])
    assert "form3d" not in stored and stored["status"] == "prepared"


@pytest.mark.parametrize(("pan", "eci"), [(VISA, "05"), (MASTERCARD, "02")])
async def test_3ds1_challenge_passed_sends_the_0100_with_eci_cavv_and_xid_and_redirects_to_return_url(
    rig: Rig, shopper: Shopper, pan: str, eci: str
) -> None:
    order = await _prepared(rig, pan)
    status, _, headers = await shopper.through_acs(order["form3d"], "1234")
    assert status == 303 and headers["Location"] == RETURN
    done = await _order(rig, order["id"])
    assert done["status"] == "authorized"
    s = done["secure3d"]
    assert s["version"] == "1" and s["scenario"] == "full" and s["authorization_status"] == "Y"
    assert s["eci"] == str(int(eci)) and "cavv" not in s
    (msg,) = rig.iso("0100")
    assert msg["121"] == eci and msg["123"] == s["xid"] and len(msg["122"]) > 10
    assert msg["120"] == "123"  # the CVV, kept in this process's memory while the cardholder was away


async def test_3ds1_wrong_code_ends_the_order_declined_without_a_0100(rig: Rig, shopper: Shopper) -> None:
    order = await _prepared(rig, VISA)
    status, _, headers = await shopper.through_acs(order["form3d"], "9999")
    assert status == 303 and headers["Location"] == RETURN
    done = await _order(rig, order["id"])
    assert done["status"] == "declined" and done["secure3d"]["scenario"] == "failed" and done["operations"] == []
    assert rig.iso("0100") == []


async def test_3ds1_attempt_card_is_authorized_with_eci_06_without_a_code(rig: Rig, shopper: Shopper) -> None:
    order = await _prepared(rig, ATTEMPT)
    status, _, _headers = await shopper.through_acs(order["form3d"], None)
    assert status == 303
    done = await _order(rig, order["id"])
    assert done["status"] == "authorized" and done["secure3d"]["scenario"] == "attempt"
    assert rig.iso("0100")[0]["121"] == "06"


@pytest.mark.parametrize(
    ("pan", "status", "scenario", "eci"),
    [(NOT_ENROLLED, 200, "not_enrolled", "06"), (UNAVAILABLE, 402, "unable_to_verify", "07")],
)
async def test_3ds1_not_enrolled_goes_on_as_an_attempt_and_unable_to_verify_without_authentication(
    rig: Rig, pan: str, status: int, scenario: str, eci: str
) -> None:
    code, doc = await rig.call("POST", "/orders/authorize", body(pan))
    assert code == status, doc
    order_id = doc["orders"][0]["id"] if status == 200 else doc["order_id"]
    order = await _order(rig, order_id)
    assert order["secure3d"]["scenario"] == scenario and order["secure3d"]["eci"] == str(int(eci))
    (msg,) = rig.iso("0100")
    assert msg["121"] == eci and "122" not in msg and "123" not in msg


@pytest.mark.parametrize("pan", [VISA, SOFT_DECLINE, NO_METHOD, REJECTED, MASTERCARD])
async def test_every_enrolled_card_asks_for_the_code_in_3ds1(rig: Rig, shopper: Shopper, pan: str) -> None:
    order = await _prepared(rig, pan)
    form = order["form3d"]
    status, text, _ = await shopper.post(form["action"], {k: form[k] for k in ("MD", "PaReq", "TermUrl")})
    assert status == 200 and "code" in forms_of(text)[0].visible


async def test_the_project_setting_require_3ds_runs_3ds_without_force3d(rig: Rig) -> None:
    project = await rig.runtime.projects.by_login("project")
    assert project is not None
    await rig.runtime.projects.update_settings(project.id, require_3ds=True)
    doc = body(VISA)
    del doc["options"]
    status, answer = await rig.call("POST", "/orders/authorize", doc)
    assert status == 201 and answer["orders"][0]["secure3d"]["reason"] == "require_3ds", answer


# -- completing twice, forged, foreign, expired --------------------------------------------------------------


async def _pares(rig: Rig, shopper: Shopper, order: dict[str, Any], code: str = "1234") -> str:
    """The PaRes the ACS hands the browser (not posted on)."""
    form = order["form3d"]
    _, text, _ = await shopper.post(form["action"], {k: form[k] for k in ("MD", "PaReq", "TermUrl")})
    (challenge,) = forms_of(text)
    _, text, _ = await shopper.submit(challenge, form["action"], code=code)
    (autopost,) = forms_of(text)
    return autopost.fields["PaRes"]


async def test_complete_with_the_pares_authorizes_once_and_a_second_time_answers_order_already_completed(
    rig: Rig, shopper: Shopper
) -> None:
    order = await _prepared(rig, VISA)
    pares = await _pares(rig, shopper, order)
    status, doc = await rig.call("POST", f"/orders/{order['id']}/complete", {"PaRes": pares})
    assert status == 200 and doc["orders"][0]["status"] == "authorized", doc
    status, doc = await rig.call("POST", f"/orders/{order['id']}/complete", {"PaRes": pares})
    assert status == 402 and doc == {
        "failure_type": "rejected",
        "failure_message": "Order already completed",
        "order_id": order["id"],
    }
    # The browser's copy of the same PaRes, posted to TermUrl: refused too, nothing sent again.
    status, text, _ = await shopper.post(order["form3d"]["TermUrl"], {"PaRes": pares, "MD": order["form3d"]["MD"]})
    assert status == 402 and "Order already completed" in text
    assert len(rig.iso("0100")) == 1


async def test_a_forged_pares_is_refused_and_the_order_stays_prepared(rig: Rig, shopper: Shopper) -> None:
    order = await _prepared(rig, VISA)
    genuine = Verifier.load(rig.key_dir / "acs_signing.pub.pem").verify(await _pares(rig, shopper, order), "PaRes")
    forged = Signer.generate().sign({k: v for k, v in genuine.items() if k not in ("iat", "exp")})
    status, doc = await rig.call("POST", f"/orders/{order['id']}/complete", {"PaRes": forged})
    assert status == 422 and doc["errors"][0]["uri"] == "#/PaRes" and "bad signature" in doc["errors"][0]["message"]
    status, _text, _ = await shopper.post(order["form3d"]["TermUrl"], {"PaRes": forged, "MD": order["form3d"]["MD"]})
    assert status == 422
    assert (await _order(rig, order["id"]))["status"] == "prepared" and rig.iso("0100") == []


async def test_a_pares_of_another_order_or_amount_is_refused(rig: Rig, shopper: Shopper) -> None:
    first, second = await _prepared(rig, VISA), await _prepared(rig, VISA)
    pares = await _pares(rig, shopper, first)
    status, doc = await rig.call("POST", f"/orders/{second['id']}/complete", {"PaRes": pares})
    assert status == 402 and doc["failure_message"] == "PaRes does not belong to this order"
    # Signed by the ACS's own key, right xid, another amount: refused.
    signer = Signer.load(rig.key_dir / "acs_signing.pem")
    claims = Verifier.load(rig.key_dir / "acs_signing.pub.pem").verify(pares, "PaRes")
    cheaper = signer.sign({**{k: v for k, v in claims.items() if k not in ("iat", "exp")}, "amount": "0.01"})
    status, doc = await rig.call("POST", f"/orders/{first['id']}/complete", {"PaRes": cheaper})
    assert status == 402 and doc["failure_message"] == "PaRes amount does not match the order"
    assert rig.iso("0100") == []


async def test_another_projects_order_is_not_found_on_complete(rig: Rig, shopper: Shopper) -> None:
    order = await _prepared(rig, VISA)
    pares = await _pares(rig, shopper, order)
    status, doc = await rig.call("POST", f"/orders/{order['id']}/complete", {"PaRes": pares}, auth=rig.other)
    assert status == 404 and doc["failure_message"] == "Order not found"
    status, doc = await rig.call("POST", f"/orders/{order['id']}/complete3d20", {"cres": "x"}, auth=rig.other)
    assert status in (404, 422)
    assert (await _order(rig, order["id"]))["status"] == "prepared" and rig.iso("0100") == []


async def test_an_expired_session_is_refused_and_the_order_ends_declined(rig: Rig, shopper: Shopper) -> None:
    order = await _prepared(rig, VISA)
    pares = await _pares(rig, shopper, order)
    async with rig.runtime.db.pool.acquire() as conn:
        await conn.execute("UPDATE secure3d_sessions SET expires_at = now() - interval '1 second'")
    status, text, _ = await shopper.post(order["form3d"]["TermUrl"], {"PaRes": pares, "MD": order["form3d"]["MD"]})
    assert status == 402 and "3-D Secure session expired" in text
    done = await _order(rig, order["id"])
    assert done["status"] == "declined" and done["secure3d"]["scenario"] == "expired" and rig.iso("0100") == []


async def test_an_unknown_md_is_refused_with_a_page(rig: Rig, shopper: Shopper) -> None:
    order = await _prepared(rig, VISA)
    pares = await _pares(rig, shopper, order)
    status, _text, headers = await shopper.post(order["form3d"]["TermUrl"], {"PaRes": pares, "MD": "not-ours"})
    assert status == 404 and "default-src 'none'" in headers["Content-Security-Policy"]
    assert rig.iso("0100") == []


async def test_a_directory_server_that_is_down_answers_an_error_without_a_0100(rig: Rig) -> None:
    replace_secure3d(rig, ds_url="http://127.0.0.1:9/ds", ds_timeout=1.0)
    status, doc = await rig.call("POST", "/orders/authorize", body(VISA))
    assert status == 500 and doc["failure_type"] == "error"
    assert doc["failure_message"] == "3-D Secure directory server unavailable"
    assert rig.iso("0100") == []


# -- 3-D Secure 2 --------------------------------------------------------------------------------------------


async def test_3ds2_frictionless_after_the_method_authorizes_on_resume_with_the_ds_trans_id(
    rig: Rig, shopper: Shopper
) -> None:
    status, doc = await _through_method(rig, shopper, VISA)
    assert status == 200, doc
    order = doc["orders"][0]
    s = order["secure3d"]
    assert order["status"] == "authorized" and s["version"] == "2" and s["scenario"] == "full" and s["eci"] == "5"
    (msg,) = rig.iso("0100")
    assert msg["121"] == "05" and msg["123"] == s["ds_trans_id"] and "122" in msg


async def test_3ds2_without_a_method_url_is_frictionless_at_once(rig: Rig) -> None:
    status, doc = await rig.call("POST", "/orders/authorize", _v2(NO_METHOD))
    assert status == 200 and doc["orders"][0]["secure3d"]["authorization_status"] == "Y", doc


@pytest.mark.parametrize(
    ("pan", "status", "order_status", "scenario", "eci"),
    [
        (ATTEMPT, 200, "authorized", "attempt", "06"),
        (REJECTED, 402, "declined", "rejected", None),
        (NOT_ENROLLED, 200, "authorized", "not_enrolled", "07"),
        (UNAVAILABLE, 402, "declined", "unable_to_verify", "07"),
    ],
)
async def test_3ds2_frictionless_outcomes_of_the_card_rules(
    rig: Rig, shopper: Shopper, pan: str, status: int, order_status: str, scenario: str, eci: str | None
) -> None:
    code, doc = await rig.call("POST", "/orders/authorize", _v2(pan))
    if code == 201:  # a method URL first
        await shopper.method(doc["method3d_params"]["method_url"], doc["method3d_params"]["method_data"])
        code, doc = await rig.call("POST", f"/orders/{doc['order_id']}/resume")
    assert code == status, doc
    order = await _order(rig, doc["orders"][0]["id"] if code == 200 else doc["order_id"])
    assert order["status"] == order_status and order["secure3d"]["scenario"] == scenario
    if eci is None:
        assert rig.iso("0100") == []
    else:
        assert rig.iso("0100")[0]["121"] == eci


@pytest.mark.parametrize(("pan", "secure"), [(VISA, {"force_challenge": 1}), (SOFT_DECLINE, {}), (MASTERCARD, {})])
async def test_3ds2_challenge_passed_authorizes_through_the_notification_url(
    rig: Rig, shopper: Shopper, pan: str, secure: dict[str, Any]
) -> None:
    status, doc = await _through_method(rig, shopper, pan, **secure)
    assert status == 201, doc
    order = doc["orders"][0]
    form = order["form3d"]
    assert set(form) == {"action", "method", "creq", "threeDSSessionData"} and form["action"].endswith("/challenge")
    assert decode_json(form["creq"])["messageType"] == "CReq"
    status, _, headers = await shopper.through_acs(form, "1234")
    assert status == 303 and headers["Location"] == RETURN_3DS2
    done = await _order(rig, order["id"])
    assert done["status"] == "authorized" and done["secure3d"]["scenario"] == "full"
    assert "cavv" not in done["secure3d"] and "authentication_value" not in done["secure3d"]
    (msg,) = rig.iso("0100")
    assert msg["121"] in ("05", "02") and msg["123"] == done["secure3d"]["ds_trans_id"]


async def test_3ds2_challenge_failed_ends_declined_without_a_0100(rig: Rig, shopper: Shopper) -> None:
    status, doc = await _through_method(rig, shopper, VISA, force_challenge=1)
    assert status == 201
    status, _, headers = await shopper.through_acs(doc["orders"][0]["form3d"], "0000")
    assert status == 303 and headers["Location"] == RETURN_3DS2
    assert (await _order(rig, doc["orders"][0]["id"]))["status"] == "declined" and rig.iso("0100") == []


async def _cres(rig: Rig, shopper: Shopper, form: dict[str, str], code: str = "1234") -> str:
    """The CRes the ACS hands the browser, after its RReq reached the switch (not posted on)."""
    fields = {k: form[k] for k in ("creq", "threeDSSessionData")}
    _, text, _ = await shopper.post(form["action"], fields)
    (challenge,) = forms_of(text)
    _, text, _ = await shopper.submit(challenge, form["action"], code=code)
    (autopost,) = forms_of(text)
    return autopost.fields["cres"]


async def test_complete3d20_authorizes_once_and_a_replayed_session_data_is_already_completed(
    rig: Rig, shopper: Shopper
) -> None:
    status, doc = await _through_method(rig, shopper, VISA, force_challenge=1)
    order = doc["orders"][0]
    cres = await _cres(rig, shopper, order["form3d"])
    status, doc = await rig.call("POST", f"/orders/{order['id']}/complete3d20", {"cres": cres})
    assert status == 200 and doc["orders"][0]["status"] == "authorized", doc
    status, doc = await rig.call("POST", f"/orders/{order['id']}/complete3d20", {"cres": cres})
    assert status == 402 and doc["failure_message"] == "Order already completed"
    session_data = order["form3d"]["threeDSSessionData"]
    status, text, _ = await shopper.post(
        urljoin(rig.base, "/complete/secure3d20"), {"cres": cres, "threeDSSessionData": session_data}
    )
    assert status == 402 and "Order already completed" in text
    assert len(rig.iso("0100")) == 1


async def test_a_cres_before_any_rreq_is_refused_and_the_order_stays_prepared(rig: Rig, shopper: Shopper) -> None:
    status, doc = await _through_method(rig, shopper, VISA, force_challenge=1)
    order = doc["orders"][0]
    creq = decode_json(order["form3d"]["creq"])
    signer = Signer.load(rig.key_dir / "acs_signing.pem")  # the ACS's own key: only the RReq is missing
    cres = signer.sign(
        {
            "messageType": "CRes",
            "threeDSServerTransID": creq["threeDSServerTransID"],
            "acsTransID": creq["acsTransID"],
            "transStatus": "Y",
            "challengeCompletionInd": "Y",
        }
    )
    status, doc = await rig.call("POST", f"/orders/{order['id']}/complete3d20", {"cres": cres})
    assert status == 422 and doc["errors"][0]["message"] == "No RReq result for this order yet", doc
    assert (await _order(rig, order["id"]))["status"] == "prepared" and rig.iso("0100") == []


async def test_a_cres_of_another_transaction_is_refused(rig: Rig, shopper: Shopper) -> None:
    _, first = await _through_method(rig, shopper, VISA, force_challenge=1)
    _, second = await _through_method(rig, shopper, VISA, force_challenge=1)
    cres = await _cres(rig, shopper, first["orders"][0]["form3d"])
    status, doc = await rig.call("POST", f"/orders/{second['orders'][0]['id']}/complete3d20", {"cres": cres})
    assert status == 402 and doc["failure_message"] == "CRes does not belong to this order"


async def test_a_forged_rreq_is_refused(rig: Rig) -> None:
    forged = Signer.generate().sign({"messageType": "RReq", "threeDSServerTransID": "x", "acsTransID": "y"})
    status, doc = await rig.call("POST", "/secure3d/rreq", {"rreq": forged}, auth={})
    assert status == 422 and "bad signature" in doc["errors"][0]["message"]


async def test_resume_twice_answers_order_already_completed(rig: Rig, shopper: Shopper) -> None:
    status, doc = await _through_method(rig, shopper, VISA)
    assert status == 200
    status, again = await rig.call("POST", f"/orders/{doc['orders'][0]['id']}/resume")
    assert status == 402 and again["failure_message"] == "Order already completed"


async def test_browser_details_name_every_bad_field_in_one_422(rig: Rig) -> None:
    browser = {**BROWSER, "browser_ip": "not-an-ip", "window_width": "wide"}
    del browser["browser_language"]
    doc = body(VISA, secure3d={"browser_details": browser})
    status, answer = await rig.call("POST", "/orders/authorize", doc)
    assert status == 422, answer
    uris = sorted(e["uri"] for e in answer["errors"])
    assert uris == [
        "#/secure3d/browser_details/browser_ip",
        "#/secure3d/browser_details/browser_language",
        "#/secure3d/browser_details/window_width",
    ]


@pytest.mark.parametrize("url", ["javascript:alert(1)", "ftp://shop.example/", "/relative"])
async def test_a_return_url_must_be_http_or_https(rig: Rig, url: str) -> None:
    status, answer = await rig.call("POST", "/orders/authorize", body(VISA, options={"return_url": url}))
    assert status == 422 and answer["errors"][0]["uri"] == "#/options/return_url", answer


async def test_no_cavv_is_left_in_any_table_after_the_authorization(rig: Rig, shopper: Shopper) -> None:
    status, doc = await _through_method(rig, shopper, VISA, force_challenge=1)
    order = doc["orders"][0]
    status, _, _ = await shopper.through_acs(order["form3d"], "1234")
    assert status == 303
    first = rig.iso("0100")[0]
    status, doc = await rig.call("POST", "/orders/authorize", body(ATTEMPT, options={"return_url": RETURN}))
    await shopper.through_acs(doc["orders"][0]["form3d"], None)
    cavvs = [m["122"] for m in rig.iso("0100")]
    assert len(cavvs) == 2 and first["122"] == cavvs[0]
    async with rig.runtime.db.pool.acquire() as conn:
        tables = await conn.fetch(
            "SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) AS t FROM information_schema.tables "
            "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') AND table_type = 'BASE TABLE'"
        )
        assert any(r["t"] == "public.secure3d_sessions" for r in tables)
        for row in tables:
            text = await conn.fetchval(f"SELECT coalesce(string_agg(x::text, ' '), '') FROM {row['t']} AS x")
            for cavv in cavvs:
                assert cavv not in text, row["t"]


async def test_the_method_notification_page_answers_even_for_unknown_data(rig: Rig, shopper: Shopper) -> None:
    status, _text, headers = await shopper.post(
        urljoin(rig.base, "/secure3d/method-done"), {"threeDSMethodData": encode_json({"threeDSServerTransID": "x"})}
    )
    assert status == 200 and "Content-Security-Policy" in headers


# -- the hosted page's entry: an order that already waits, its card just attached ---------------------------


async def _new_order(rig: Rig, pan: str) -> tuple[Any, Any, Any]:
    """An order the hosted page made (status new, no RRN yet) and the card the cardholder typed."""
    project = await rig.runtime.projects.by_login("project")
    assert project is not None
    engine = rig.runtime.orders.engine
    now = engine.clock()
    order_id = await engine.take(engine.ids.order_id)
    card = Card(pan, expiry_month=12, expiry_year=secure3d_rig.NEXT_YEAR, cvv="123", holder="John Smith")
    order = engine.cards.new_order(project, order_id, card, 999, currency("USD"), now, rrn="", recurring=False)
    order.rrn = None
    await engine.repo.create_waiting(order)
    return project, order, card


def _callbacks(rig: Rig) -> Callbacks:
    return Callbacks(
        term_url=f"{rig.base}/complete/secure3d",
        notification_url=f"{rig.base}/complete/secure3d20",
        rreq_url=f"{rig.base}/secure3d/rreq",
        method_done_url=f"{rig.base}/secure3d/method-done",
    )


async def test_begin_on_a_waiting_order_of_the_hosted_page_challenges_and_completes(rig: Rig, shopper: Shopper) -> None:
    project, order, card = await _new_order(rig, VISA)
    want = Secure3DRequest(force3d=True, return_url=RETURN)
    outcome = await rig.secure3d.begin(project, order, card, reason="force3d", callbacks=_callbacks(rig), want=want)
    assert isinstance(outcome, Challenge) and outcome.order.status.value == "prepared"
    status, _, headers = await shopper.through_acs(outcome.form.to_json(), "1234")
    assert status == 303 and headers["Location"] == RETURN
    done = await _order(rig, order.id)
    (msg,) = rig.iso("0100")
    assert done["status"] == "authorized" and done["rrn"] == msg["37"] and msg["120"] == "123"


async def test_begin_on_a_waiting_order_with_a_card_not_enrolled_authorizes_at_once(rig: Rig) -> None:
    project, order, card = await _new_order(rig, NOT_ENROLLED)
    outcome = await rig.secure3d.begin(project, order, card, reason="require_3ds", callbacks=_callbacks(rig))
    assert isinstance(outcome, Order) and outcome.status.value == "authorized"
    stored = await _order(rig, order.id)
    assert stored["status"] == "authorized" and stored["secure3d"]["scenario"] == "not_enrolled"
    assert stored["secure3d"]["reason"] == "require_3ds"


async def test_begin_on_a_waiting_order_runs_3ds2_frictionless_without_a_method_url(rig: Rig) -> None:
    project, order, card = await _new_order(rig, NO_METHOD)
    want = Secure3DRequest(force3d=True, browser=dict(BROWSER))
    outcome = await rig.secure3d.begin(project, order, card, reason="force3d", callbacks=_callbacks(rig), want=want)
    assert isinstance(outcome, Order) and outcome.status.value == "authorized"
    assert rig.iso("0100")[0]["121"] == "05"
