"""The simulator's 3-D Secure directory server and ACS, driven over real HTTP on its admin port.

The switch's side is played by the test: it calls the DS as the switch would, posts the browser's forms
to the ACS, and runs a tiny aiohttp receiver standing for the 3DS server (RReq) and the notification URL.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp import web
from sim_helpers import running_sim

from acquirer_sim import RulesError
from acquirer_sim.acs import _Expiring
from acquirer_sim.cli import main as sim_main
from acquirer_sim.rules import load_rules
from acquirer_sim.server import SimServer
from switch.wire.threeds import MessageError, Verifier, encode_json, generate_key_pair

pytestmark = pytest.mark.timeout(60)

VISA = "4111111111111111"
ALWAYS_CHALLENGE = "4000000000003220"
NO_METHOD = "4000000000003063"
REJECTED = "4000000000009235"
ATTEMPT = "4000000000003055"
MASTERCARD = "5200000000001005"
NOT_ENROLLED = "4276838748917319"
UNAVAILABLE = "4276990011343663"
UNLISTED = "4999999999999996"
PANS = (VISA, ALWAYS_CHALLENGE, NO_METHOD, REJECTED, ATTEMPT, MASTERCARD, NOT_ENROLLED, UNAVAILABLE, UNLISTED)


@dataclass
class Form:
    action: str
    fields: dict[str, str] = field(default_factory=dict)
    inputs: list[dict[str, str | None]] = field(default_factory=list)


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []
        self.labels: list[str] = []
        self._in_label = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form":
            self.forms.append(Form(a.get("action") or ""))
        elif tag == "input" and self.forms:
            self.forms[-1].inputs.append(a)
            if a.get("type") == "hidden":
                self.forms[-1].fields[a["name"] or ""] = a.get("value") or ""
        elif tag == "label":
            self._in_label = True

    def handle_endtag(self, tag: str) -> None:
        self._in_label = self._in_label and tag != "label"

    def handle_data(self, data: str) -> None:
        if self._in_label:
            self.labels.append(data.strip())


@dataclass
class HtmlPage:
    status: int
    text: str
    headers: Any
    forms: list[Form]
    labels: list[str]


@dataclass
class Acs:
    """A running simulator and what the switch would hold: its DS URL and the ACS's public key."""

    sim: SimServer
    http: aiohttp.ClientSession
    base: str
    verifier: Verifier
    key_dir: Path

    async def ds(self, path: str, body: dict[str, Any], status: int = 200) -> dict[str, Any]:
        async with self.http.post(f"{self.base}/ds{path}", json=body) as resp:
            assert resp.status == status, await resp.text()
            doc: dict[str, Any] = await resp.json()
            return doc

    async def page(self, method: str, url: str, data: dict[str, str] | None = None) -> HtmlPage:
        if not url.startswith("http"):
            url = self.base + url
        async with self.http.request(method, url, data=data) as resp:
            text = await resp.text()
            assert resp.content_type == "text/html"
            for pan in PANS:  # a page never shows a card number
                assert pan not in text
            parser = _Forms()
            parser.feed(text)
            return HtmlPage(resp.status, text, resp.headers, parser.forms, parser.labels)


@pytest.fixture
async def acs(tmp_path: Path) -> AsyncIterator[Acs]:
    private, public = generate_key_pair(tmp_path / "keys")
    async with running_sim(acs_key=str(private)) as sim, aiohttp.ClientSession() as http:
        assert sim.admin_address is not None
        host, port = sim.admin_address
        yield Acs(sim, http, f"http://{host}:{port}", Verifier.load(public), tmp_path / "keys")


@dataclass
class Receiver:
    """The switch's side of the browser and of the RReq: records what it is sent."""

    url: str
    rreqs: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    box: list[dict[str, Any]] = []

    async def rreq(request: web.Request) -> web.Response:
        box.append(await request.json())
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/secure3d/rreq", rreq)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield Receiver(f"http://{host}:{port}", box)
    finally:
        await runner.cleanup()


def areq(pan: str, receiver_url: str = "http://127.0.0.1:9/x", **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "threeDSServerTransID": "8a880dc0-d2d2-4067-bcb1-b08d1690b26e",
        "pan": pan,
        "amount": "9.99",
        "currency": "USD",
        "merchant": {"id": "m-1", "name": "Book Shop"},
        "browser": {"accept_header": "text/html", "language": "en-US", "screen_width": 1280},
        "threeDSCompInd": "Y",
        "challengeIndicator": "01",
        "notificationURL": f"{receiver_url}/complete/secure3d20",
        "threeDSServerURL": f"{receiver_url}/secure3d/rreq",
    }
    return body | over


# -- the directory server ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pan", "enrolled"),
    [(VISA, "Y"), (UNLISTED, "Y"), (ATTEMPT, "Y"), (MASTERCARD, "Y"), (NOT_ENROLLED, "N"), (UNAVAILABLE, "U")],
)
async def test_enrolment_answers_by_the_card_rule(acs: Acs, pan: str, enrolled: str) -> None:
    doc = await acs.ds("/3ds1/enrol", {"pan": pan, "amount": "9.99", "currency": "USD", "merchant_id": "m-1"})
    assert doc["enrolled"] == enrolled
    if enrolled == "Y":
        assert doc["acs_url"] == f"{acs.base}/acs/3ds1"
        assert doc["acct_id"] and pan not in doc["acct_id"]
    else:
        assert set(doc) == {"enrolled"}


@pytest.mark.parametrize(
    ("pan", "supported", "method"),
    [(VISA, True, True), (UNLISTED, True, True), (NO_METHOD, True, False), (NOT_ENROLLED, False, False)],
)
async def test_prepare_tells_whether_the_card_has_3ds2_and_a_method_url(
    acs: Acs, pan: str, supported: bool, method: bool
) -> None:
    doc = await acs.ds("/3ds2/prepare", {"pan": pan})
    assert doc == {
        "supported": supported,
        "method_url": f"{acs.base}/acs/3ds2/method" if method else None,
        "message_version": "2.2.0",
    }


async def test_the_public_key_served_is_the_one_the_sim_signs_with(acs: Acs) -> None:
    async with acs.http.get(f"{acs.base}/ds/public-key") as resp:
        assert resp.status == 200
        assert await resp.read() == (acs.key_dir / "acs_signing.pub.pem").read_bytes()


@pytest.mark.parametrize(
    ("pan", "indicator", "status", "eci"),
    [
        (VISA, "01", "Y", "05"),
        (UNLISTED, "01", "Y", "05"),
        (NO_METHOD, "01", "Y", "05"),
        (VISA, "04", "C", None),
        (ALWAYS_CHALLENGE, "01", "C", None),
        (MASTERCARD, "01", "C", None),
        (REJECTED, "01", "N", "07"),
        (REJECTED, "04", "N", "07"),
        (ATTEMPT, "01", "A", "06"),
        (UNAVAILABLE, "01", "U", "07"),
    ],
)
async def test_the_ares_is_signed_and_follows_the_card_rule_and_the_challenge_indicator(
    acs: Acs, pan: str, indicator: str, status: str, eci: str | None
) -> None:
    doc = await acs.ds("/3ds2/authenticate", areq(pan, challengeIndicator=indicator))
    ares = acs.verifier.verify(doc["ares"], "ARes")
    assert ares["transStatus"] == status
    assert ares["threeDSServerTransID"] == "8a880dc0-d2d2-4067-bcb1-b08d1690b26e"
    assert ares["acsTransID"] and ares["dsTransID"] and ares["messageVersion"] == "2.2.0"
    assert ares.get("eci") == eci
    assert ("authenticationValue" in ares) == (status in ("Y", "A"))
    assert ("acsURL" in ares) == (status == "C")
    if status == "C":
        assert ares["acsURL"] == f"{acs.base}/acs/3ds2/challenge"
    if status in ("N", "U"):
        assert ares["transStatusReason"]


@pytest.mark.parametrize(
    "body",
    [
        {"pan": "4111"},
        areq(VISA, notificationURL="javascript:alert(1)"),
        areq(VISA, challengeIndicator="09"),
        areq(VISA, merchant="shop"),
        {k: v for k, v in areq(VISA).items() if k != "threeDSServerTransID"},
    ],
    ids=["short-pan", "bad-url", "bad-indicator", "merchant-not-object", "no-server-trans-id"],
)
async def test_a_malformed_areq_is_refused_with_a_reason(acs: Acs, body: dict[str, Any]) -> None:
    doc = await acs.ds("/3ds2/authenticate", body, status=400)
    assert doc["error"] and "4111111111111111" not in doc["error"]


async def test_a_ds_request_that_is_not_json_is_refused(acs: Acs) -> None:
    async with acs.http.post(f"{acs.base}/ds/3ds1/enrol", data=b"pan=4111111111111111") as resp:
        assert resp.status == 400
        assert (await resp.json()) == {"error": "body is not JSON"}


# -- 3-D Secure 1 ------------------------------------------------------------------------------------------


async def _pareq_form(acs: Acs, pan: str, xid: str = "xid-0001") -> dict[str, str]:
    enrol = await acs.ds("/3ds1/enrol", {"pan": pan, "amount": "9.99", "currency": "USD", "merchant_id": "m-1"})
    pareq = encode_json(
        {
            "messageType": "PaReq",
            "version": "1.0.2",
            "xid": xid,
            "acct_id": enrol["acct_id"],
            "amount": "9.99",
            "currency": "USD",
            "merchant": {"id": "m-1", "name": "Book <Shop>"},
        }
    )
    return {"PaReq": pareq, "MD": "md-opaque-1", "TermUrl": "http://127.0.0.1:8080/complete/secure3d"}


def _assert_challenge_page(page: HtmlPage) -> Form:
    assert page.status == 200
    assert "Book &lt;Shop&gt;" in page.text and "9.99 USD" in page.text
    assert "One-time code" in page.labels
    [form] = page.forms
    [code] = [i for i in form.inputs if i.get("name") == "code"]
    assert code["autocomplete"] == "one-time-code" and code["inputmode"] == "numeric" and code["id"] == "code"
    assert '<button type="submit">' in page.text
    assert "<script" not in page.text  # the challenge itself needs no JavaScript
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "form-action *" in csp and "unsafe-inline" not in csp
    return form


def _assert_autopost(page: HtmlPage, action: str) -> Form:
    assert page.status == 200
    [form] = page.forms
    assert form.action == action
    assert '<button type="submit">Continue</button>' in page.text  # without JavaScript, the cardholder clicks
    nonce = page.headers["Content-Security-Policy"].split("script-src 'nonce-")[1].split("'")[0]
    assert f'<script nonce="{nonce}">' in page.text
    return form


@pytest.mark.parametrize(("pan", "eci"), [(VISA, "05"), (MASTERCARD, "02")])
async def test_the_3ds1_challenge_with_the_code_1234_posts_a_signed_pares_y_to_the_term_url(
    acs: Acs, pan: str, eci: str
) -> None:
    fields = await _pareq_form(acs, pan)
    form = _assert_challenge_page(await acs.page("POST", "/acs/3ds1", fields))
    answer = await acs.page("POST", form.action, {**form.fields, "code": "1234"})
    posted = _assert_autopost(answer, fields["TermUrl"]).fields
    assert posted["MD"] == "md-opaque-1"
    pares = acs.verifier.verify(posted["PaRes"], "PaRes")
    assert (pares["xid"], pares["status"], pares["eci"]) == ("xid-0001", "Y", eci)
    assert (pares["amount"], pares["currency"]) == ("9.99", "USD")
    assert len(pares["cavv"]) == 28


async def test_the_3ds1_challenge_with_another_code_posts_a_pares_n_without_cavv(acs: Acs) -> None:
    fields = await _pareq_form(acs, VISA)
    form = _assert_challenge_page(await acs.page("GET", "/acs/3ds1?" + urlencode(fields)))
    answer = await acs.page("POST", form.action, {**form.fields, "code": "0000"})
    pares = acs.verifier.verify(_assert_autopost(answer, fields["TermUrl"]).fields["PaRes"], "PaRes")
    assert (pares["status"], pares["eci"]) == ("N", "07")
    assert "cavv" not in pares


async def test_a_non_ascii_code_fails_the_3ds1_challenge_instead_of_crashing_the_acs(acs: Acs) -> None:
    fields = await _pareq_form(acs, VISA)
    form = _assert_challenge_page(await acs.page("POST", "/acs/3ds1", fields))
    answer = await acs.page("POST", form.action, {**form.fields, "code": "é"})
    pares = acs.verifier.verify(_assert_autopost(answer, fields["TermUrl"]).fields["PaRes"], "PaRes")
    assert pares["status"] == "N" and "cavv" not in pares


async def test_a_3ds1_challenge_is_answered_once(acs: Acs) -> None:
    fields = await _pareq_form(acs, VISA)
    form = _assert_challenge_page(await acs.page("POST", "/acs/3ds1", fields))
    await acs.page("POST", form.action, {**form.fields, "code": "1234"})
    again = await acs.page("POST", form.action, {**form.fields, "code": "1234"})
    assert again.status == 400 and "already been answered" in again.text and not again.forms


async def test_an_attempt_card_gets_a_pares_a_at_once_without_a_code(acs: Acs) -> None:
    fields = await _pareq_form(acs, ATTEMPT)
    answer = await acs.page("POST", "/acs/3ds1", fields)
    pares = acs.verifier.verify(_assert_autopost(answer, fields["TermUrl"]).fields["PaRes"], "PaRes")
    assert (pares["status"], pares["eci"]) == ("A", "06") and pares["cavv"]


@pytest.mark.parametrize(
    "change",
    [{"PaReq": "garbage"}, {"TermUrl": "javascript:alert(1)"}, {"PaReq": encode_json({"messageType": "PaReq"})}],
    ids=["pareq-not-base64-json", "term-url-not-http", "pareq-without-card"],
)
async def test_a_bad_pareq_gets_an_error_page(acs: Acs, change: dict[str, str]) -> None:
    page = await acs.page("POST", "/acs/3ds1", {**(await _pareq_form(acs, VISA)), **change})
    assert page.status == 400 and "cannot be verified" in page.text and not page.forms


# -- 3-D Secure 2 ------------------------------------------------------------------------------------------


async def test_the_method_page_posts_the_method_data_back_to_the_notification_url(acs: Acs) -> None:
    data = encode_json(
        {"threeDSServerTransID": "t-1", "threeDSMethodNotificationURL": "http://127.0.0.1:8080/secure3d/method-done"}
    )
    page = await acs.page("POST", "/acs/3ds2/method", {"threeDSMethodData": data})
    assert _assert_autopost(page, "http://127.0.0.1:8080/secure3d/method-done").fields == {"threeDSMethodData": data}
    bad = await acs.page("POST", "/acs/3ds2/method", {"threeDSMethodData": "not-json"})
    assert bad.status == 400


async def _challenge(acs: Acs, receiver: Receiver, pan: str = VISA) -> tuple[dict[str, Any], Form]:
    ares = acs.verifier.verify(
        (await acs.ds("/3ds2/authenticate", areq(pan, receiver.url, challengeIndicator="04")))["ares"], "ARes"
    )
    assert ares["transStatus"] == "C"
    creq = encode_json(
        {
            "messageType": "CReq",
            "messageVersion": "2.2.0",
            "threeDSServerTransID": ares["threeDSServerTransID"],
            "acsTransID": ares["acsTransID"],
            "challengeWindowSize": "05",
        }
    )
    page = await acs.page("POST", ares["acsURL"], {"creq": creq, "threeDSSessionData": "session-42"})
    return ares, _assert_challenge_page_2(page)


def _assert_challenge_page_2(page: HtmlPage) -> Form:
    assert page.status == 200 and "Book Shop" in page.text and "9.99 USD" in page.text
    [form] = page.forms
    assert any(i.get("name") == "code" and i.get("autocomplete") == "one-time-code" for i in form.inputs)
    return form


async def test_the_3ds2_challenge_sends_a_signed_rreq_then_posts_the_cres_to_the_notification_url(
    acs: Acs, receiver: Receiver
) -> None:
    ares, form = await _challenge(acs, receiver)
    answer = await acs.page("POST", form.action, {**form.fields, "code": "1234"})
    # The RReq reached the 3DS server before the page was answered.
    [body] = receiver.rreqs
    rreq = acs.verifier.verify(body["rreq"], "RReq")
    assert (rreq["transStatus"], rreq["eci"]) == ("Y", "05") and len(rreq["authenticationValue"]) == 28
    ids = ("threeDSServerTransID", "acsTransID", "dsTransID")
    assert [rreq[k] for k in ids] == [ares[k] for k in ids]
    posted = _assert_autopost(answer, f"{receiver.url}/complete/secure3d20").fields
    assert posted["threeDSSessionData"] == "session-42"
    cres = acs.verifier.verify(posted["cres"], "CRes")
    assert (cres["transStatus"], cres["challengeCompletionInd"]) == ("Y", "Y")
    assert (cres["acsTransID"], cres["threeDSServerTransID"]) == (ares["acsTransID"], ares["threeDSServerTransID"])
    assert "authenticationValue" not in cres  # the CAVV goes server to server only


async def test_a_wrong_code_in_the_3ds2_challenge_gives_n_in_the_rreq_and_the_cres(
    acs: Acs, receiver: Receiver
) -> None:
    _, form = await _challenge(acs, receiver, MASTERCARD)
    answer = await acs.page("POST", form.action, {**form.fields, "code": "9999"})
    rreq = acs.verifier.verify(receiver.rreqs[0]["rreq"], "RReq")
    assert (rreq["transStatus"], rreq["eci"]) == ("N", "00") and "authenticationValue" not in rreq
    cres = acs.verifier.verify(_assert_autopost(answer, f"{receiver.url}/complete/secure3d20").fields["cres"], "CRes")
    assert cres["transStatus"] == "N"
    again = await acs.page("POST", form.action, {**form.fields, "code": "1234"})
    assert again.status == 400 and len(receiver.rreqs) == 1


async def test_a_non_ascii_code_fails_the_3ds2_challenge_instead_of_crashing_the_acs(
    acs: Acs, receiver: Receiver
) -> None:
    _, form = await _challenge(acs, receiver, MASTERCARD)
    answer = await acs.page("POST", form.action, {**form.fields, "code": "é"})
    assert answer.status == 200
    cres = acs.verifier.verify(_assert_autopost(answer, f"{receiver.url}/complete/secure3d20").fields["cres"], "CRes")
    assert cres["transStatus"] == "N" and acs.verifier.verify(receiver.rreqs[0]["rreq"], "RReq")["transStatus"] == "N"


async def test_a_creq_for_an_unknown_transaction_gets_an_error_page(acs: Acs) -> None:
    creq = encode_json({"messageType": "CReq", "threeDSServerTransID": "t", "acsTransID": "nope"})
    page = await acs.page("POST", "/acs/3ds2/challenge", {"creq": creq, "threeDSSessionData": "s"})
    assert page.status == 400 and not page.forms


async def test_the_challenge_still_ends_with_a_cres_when_the_3ds_server_is_unreachable(acs: Acs) -> None:
    # Port 9 (discard) on loopback: connection refused. The 3DS server, holding no RReq, fails the order.
    ares = acs.verifier.verify((await acs.ds("/3ds2/authenticate", areq(ALWAYS_CHALLENGE)))["ares"], "ARes")
    creq = encode_json(
        {"messageType": "CReq", "threeDSServerTransID": ares["threeDSServerTransID"], "acsTransID": ares["acsTransID"]}
    )
    form = _assert_challenge_page_2(await acs.page("POST", ares["acsURL"], {"creq": creq, "threeDSSessionData": "s"}))
    answer = await acs.page("POST", form.action, {**form.fields, "code": "1234"})
    cres = acs.verifier.verify(
        _assert_autopost(answer, "http://127.0.0.1:9/x/complete/secure3d20").fields["cres"], "CRes"
    )
    assert cres["transStatus"] == "Y"


def test_what_the_acs_remembers_is_bounded_and_expires() -> None:
    bounded: _Expiring[str] = _Expiring(ttl=600.0, maxlen=2)
    for key in ("a", "b", "c"):
        bounded.put(key, key.upper())
    assert (bounded.get("a"), bounded.get("b"), bounded.get("c"), len(bounded)) == (None, "B", "C", 2)
    assert bounded.pop("b") == "B" and bounded.pop("b") is None
    expired: _Expiring[str] = _Expiring(ttl=0.0)
    expired.put("a", "A")
    assert expired.get("a") is None and len(expired) == 0


# -- keys, rules, the command line -------------------------------------------------------------------------


async def test_without_a_key_file_the_sim_signs_with_an_ephemeral_key_it_publishes() -> None:
    async with running_sim() as sim, aiohttp.ClientSession() as http:
        assert sim.admin_address is not None
        base = "http://{}:{}".format(*sim.admin_address)
        async with http.get(f"{base}/ds/public-key") as resp:
            verifier = Verifier.from_pem(await resp.read())
        async with http.post(f"{base}/ds/3ds2/authenticate", json=areq(VISA)) as resp:
            assert verifier.verify((await resp.json())["ares"], "ARes")["transStatus"] == "Y"


async def test_another_sim_key_is_not_trusted(acs: Acs) -> None:
    async with running_sim() as other, aiohttp.ClientSession() as http:
        assert other.admin_address is not None
        url = "http://{}:{}/ds/3ds2/authenticate".format(*other.admin_address)
        async with http.post(url, json=areq(VISA)) as resp:
            token = (await resp.json())["ares"]
    with pytest.raises(MessageError, match="signature"):
        acs.verifier.verify(token, "ARes")


async def test_the_rules_file_overrides_a_cards_3ds_behaviour(tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text('[[secure3d]]\npan = "4111111111111111"\nv1 = "not_enrolled"\nv2 = "rejected"\nmethod = false\n')
    loaded = load_rules(rules)
    assert loaded.secure3d_for(VISA).v1 == "not_enrolled" and loaded.secure3d_for(ATTEMPT).v1 == "attempt"
    async with running_sim(rules=loaded) as sim, aiohttp.ClientSession() as http:
        assert sim.admin_address is not None
        base = "http://{}:{}/ds".format(*sim.admin_address)
        async with http.post(f"{base}/3ds1/enrol", json={"pan": VISA}) as resp:
            assert (await resp.json()) == {"enrolled": "N"}
        async with http.post(f"{base}/3ds2/prepare", json={"pan": VISA}) as resp:
            assert (await resp.json())["method_url"] is None


@pytest.mark.parametrize(
    "entry",
    [
        'pan = "4111111111111111"\nv1 = "maybe"',
        'pan = "4111111111111111"\nv2 = "Y"',
        'pan = "41"',
        'pan = "4111111111111111"\nx = 1',
    ],
    ids=["bad-v1", "bad-v2", "bad-pan", "unknown-key"],
)
def test_a_bad_secure3d_entry_is_refused(tmp_path: Path, entry: str) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(f"[[secure3d]]\n{entry}\n")
    with pytest.raises(RulesError, match="secure3d"):
        load_rules(rules)


async def test_the_sim_refuses_to_start_with_an_unusable_acs_key(tmp_path: Path) -> None:
    (tmp_path / "bad.pem").write_text("not a key")
    for key in (tmp_path / "missing.pem", tmp_path / "bad.pem"):
        status = await asyncio.to_thread(sim_main, ["--port", "0", "--acs-key", str(key)])
        assert status == 1
