"""API docs on a real port: /openapi.json, /docs and /docs/test-cards answer without credentials, from local files only.

The expected document is computed here apart from http_front/docs.py: the
YAML with each ``rest/*.json`` body put in place and that file's
``#/definitions/...`` references put in place too.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import re
import tomllib
from collections.abc import AsyncIterator, Mapping
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import swagger_ui_bundle
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from openapi_spec_validator import validate
from test_http_app import AUTH, FakeRuntime, basic
from test_openapi import ISSUE12_PENDING_DOCS  # routes waiting for their docs pass (none now)

from acquirer_sim.issuer import Issuer
from acquirer_sim.rules import load_rules
from http_front import FrontConfig, create_app, testcards
from http_front.docs import STATIC_PREFIX, TEST_CARDS_PATH, inline_refs
from schemas import SCHEMAS_DIR

pytestmark = pytest.mark.timeout(30)

OPENAPI = SCHEMAS_DIR / "openapi.yaml"
BUNDLE = Path(str(swagger_ui_bundle.swagger_ui_path))
ROOT = Path(__file__).resolve().parent.parent

Http = TestClient[web.Request, web.Application]


@pytest.fixture
async def http() -> AsyncIterator[Http]:
    app = create_app(FakeRuntime(), FrontConfig())
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client


def expected_document() -> dict[str, Any]:
    """schemas/openapi.yaml with its ``rest/*.json`` references replaced by the files' schemas."""

    def put_in_place(node: Any, file: dict[str, Any] | None) -> Any:
        if isinstance(node, list):
            return [put_in_place(v, file) for v in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and not ref.startswith("#"):
            schema = json.loads((OPENAPI.parent / ref).read_text(encoding="utf-8"))
            return put_in_place({k: v for k, v in schema.items() if k != "definitions"}, schema)
        if isinstance(ref, str) and file is not None:
            # Inside a request schema every reference is to one of its own definitions.
            name = ref.removeprefix("#/definitions/")
            return put_in_place(file["definitions"][name], file)
        return {k: put_in_place(v, file) for k, v in node.items()}

    doc: dict[str, Any] = put_in_place(yaml.safe_load(OPENAPI.read_text(encoding="utf-8")), None)
    return doc


def refs(node: Any) -> list[str]:
    if isinstance(node, list):
        return [r for v in node for r in refs(v)]
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for v in node.values() for r in refs(v)]
    return []


class _Urls(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value is not None:
                self.urls.append((tag, value))


async def page_urls(http: Http) -> list[tuple[str, str]]:
    resp = await http.get("/docs")
    parser = _Urls()
    parser.feed(await resp.text())
    return parser.urls


# -- /openapi.json ------------------------------------------------------------------------


async def test_the_document_is_served_without_credentials_as_json(http: Http) -> None:
    resp = await http.get("/openapi.json")
    assert resp.status == 200
    assert resp.content_type == "application/json"
    assert resp.headers["Cache-Control"] == "no-cache" and resp.headers["ETag"]
    doc = json.loads(await resp.read())
    assert doc["openapi"] == "3.1.0"
    # Credentials, even wrong ones, change nothing on a public route.
    again = await http.get("/openapi.json", headers=basic("nobody", "wrong"))
    assert again.status == 200 and await again.read() == await resp.read()


async def test_the_served_document_is_the_yaml_with_the_request_schemas_inlined(http: Http) -> None:
    served = await (await http.get("/openapi.json")).json()
    assert served == expected_document()
    authorize = served["paths"]["/orders/authorize"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert authorize["title"] == "POST /orders/authorize" and "pan" in authorize["properties"]


async def test_the_served_document_is_self_contained_valid_openapi(http: Http) -> None:
    served = await (await http.get("/openapi.json")).json()
    for ref in refs(served):
        assert ref.startswith("#/components/"), ref
        node = served
        for token in ref[2:].split("/"):
            node = node[token]
    validate(served)
    # Try it out goes to the origin that served the document.
    assert served["servers"][0]["url"] == "/"


_PAGE_FILES = {"public:docs-static", "public:pay-static", "public:pay-logo"}  # files of pages, not API operations


async def test_every_route_of_the_app_is_in_the_served_document(http: Http) -> None:
    served = await (await http.get("/openapi.json")).json()
    documented = {(m.upper(), p) for p, item in served["paths"].items() for m in item}
    routes = {
        (r.method, r.resource.canonical)
        for r in http.app.router.routes()
        if r.resource is not None
        and r.method != "HEAD"
        and r.resource.name not in _PAGE_FILES
        # The merchant portal's HTML pages (issue 13): forms for a browser, not API operations.
        and not (r.resource.name or "").startswith("public:portal")
    }
    assert routes and routes - ISSUE12_PENDING_DOCS <= documented, routes - documented


async def test_an_unchanged_document_revalidates_to_a_304(http: Http) -> None:
    etag = (await http.get("/openapi.json")).headers["ETag"]
    resp = await http.get("/openapi.json", headers={"If-None-Match": etag})
    assert resp.status == 304 and await resp.read() == b""
    assert (await http.get("/openapi.json", headers={"If-None-Match": '"other"'})).status == 200


# -- /docs --------------------------------------------------------------------------------


async def test_the_docs_page_is_html_that_loads_only_local_assets(http: Http) -> None:
    resp = await http.get("/docs")
    assert resp.status == 200 and resp.content_type == "text/html"
    page = await resp.text()
    assert "://" not in page  # no CDN, nor any absolute URL at all
    urls = await page_urls(http)
    assert {tag for tag, _ in urls} == {"link", "script"}
    for _, url in urls:
        assert url.startswith(STATIC_PREFIX), url
    csp = resp.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp


async def test_the_pages_assets_are_served_with_their_types_and_cached_for_a_year(http: Http) -> None:
    types = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}
    seen = set()
    for _, url in await page_urls(http):
        resp = await http.get(url)
        assert resp.status == 200, url
        suffix = Path(url.partition("?")[0]).suffix
        assert resp.content_type == types[suffix], url
        assert resp.headers["Cache-Control"] == "public, max-age=31536000, immutable", url
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        name = url.removeprefix(STATIC_PREFIX).partition("?")[0]
        if (BUNDLE / name).exists():
            assert await resp.read() == (BUNDLE / name).read_bytes()
        seen.add(name)
    assert {"swagger-ui-bundle.js", "swagger-ui.css"} <= seen


async def test_the_page_points_swagger_ui_at_the_served_document(http: Http) -> None:
    init = [url for tag, url in await page_urls(http) if tag == "script" and "swagger-ui-bundle" not in url]
    assert len(init) == 1
    script = await (await http.get(init[0])).text()
    assert '"url": "/openapi.json"' in script and "SwaggerUIBundle(" in script
    assert "://" not in script


async def test_an_asset_asked_without_its_current_version_is_revalidated(http: Http) -> None:
    resp = await http.get(STATIC_PREFIX + "swagger-ui.css")
    assert resp.status == 200 and resp.headers["Cache-Control"] == "no-cache"
    again = await http.get(STATIC_PREFIX + "swagger-ui.css", headers={"If-None-Match": resp.headers["ETag"]})
    assert again.status == 304


async def test_the_bundles_other_files_are_not_served(http: Http) -> None:
    # Its own page and initializer would load the Petstore example from the Internet.
    for name in ("index.html", "swagger-initializer.js", "oauth2-redirect.html", "nothing.js"):
        assert (BUNDLE / name).exists() or name == "nothing.js"
        resp = await http.get(STATIC_PREFIX + name)
        assert resp.status == 404, name
        assert (await resp.json())["failure_message"] == "Not found"


async def test_the_api_itself_still_needs_credentials(http: Http) -> None:
    assert (await http.get("/ping")).status == 401
    assert (await http.get("/ping", headers=AUTH)).status == 200


# -- traversal ----------------------------------------------------------------------------


async def raw_get(port: int, target: str) -> tuple[int, bytes]:
    """GET with the request target sent byte for byte (a client library would normalize it)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    match = re.match(rb"HTTP/1\.1 (\d{3}) ", head)
    assert match is not None, head
    return int(match.group(1)), body


TRAVERSALS = [
    "/docs/static/../../pyproject.toml",
    "/docs/static/../../../../../../etc/passwd",
    "/docs/static/..%2F..%2Fpyproject.toml",
    "/docs/static/..%2f..%2f..%2fpyproject.toml",
    "/docs/static/%2e%2e/%2e%2e/pyproject.toml",
    "/docs/static/%2e%2e%2f%2e%2e%2fpyproject.toml",
    "/docs/static/.%2e/.%2e/http_front/docs.py",
    "/docs/static/%252e%252e%252fpyproject.toml",
    "/docs/static/..%5c..%5cpyproject.toml",
    "/docs/static/..\\..\\pyproject.toml",
    "/docs/static/%2Fetc%2Fpasswd",
    "/docs/static//etc/passwd",
    "/docs/static/swagger-ui.css%00.png",
    "/docs/static/..%2F..%2F..%2Fswagger_ui_bundle%2F__init__.py",
    # Exactly as deep as the bundle is below the project, wherever the venv is.
    STATIC_PREFIX + quote(os.path.relpath(ROOT / "pyproject.toml", BUNDLE), safe=""),
    STATIC_PREFIX + os.path.relpath(ROOT / "pyproject.toml", BUNDLE),
]


@pytest.mark.parametrize("target", TRAVERSALS)
async def test_traversal_never_reaches_a_file_outside_the_served_assets(http: Http, target: str) -> None:
    assert http.server.port is not None
    ok, body = await raw_get(http.server.port, STATIC_PREFIX + "index.css")
    assert ok == 200 and body == (BUNDLE / "index.css").read_bytes()
    status, body = await raw_get(http.server.port, target)
    assert status in (400, 403, 404), (target, status)
    for secret in (ROOT / "pyproject.toml", ROOT / "http_front" / "docs.py", BUNDLE.parent.parent / "__init__.py"):
        assert secret.read_bytes()[:64] not in body
    assert b"root:" not in body


# -- inlining -----------------------------------------------------------------------------


def test_a_recursive_reference_cannot_be_inlined(tmp_path: Path) -> None:
    (tmp_path / "tree.json").write_text('{"definitions": {"t": {"items": {"$ref": "#/definitions/t"}}}}')
    (tmp_path / "doc.json").write_text('{"schema": {"$ref": "tree.json#/definitions/t"}}')
    with pytest.raises(ValueError, match="recursive"):
        inline_refs(json.loads((tmp_path / "doc.json").read_text()), tmp_path / "doc.json", keep_local=True)


def test_a_reference_with_sibling_keywords_is_refused_rather_than_given_one_meaning(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text('{"type": "string"}')
    doc = {"schema": {"$ref": "a.json", "description": "x"}}
    with pytest.raises(ValueError, match="sibling"):
        inline_refs(doc, tmp_path / "doc.json", keep_local=True)


def test_a_reference_into_another_file_brings_that_files_own_references_along(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(
        '{"definitions": {"id": {"type": "string"}, "obj": {"properties": {"id": {"$ref": "#/definitions/id"}}}}}'
    )
    doc = {"s": {"$ref": "a.json#/definitions/obj"}, "local": {"$ref": "#/s"}}
    assert inline_refs(doc, tmp_path / "doc.json", keep_local=True) == {
        "s": {"properties": {"id": {"type": "string"}}},
        "local": {"$ref": "#/s"},
    }


# -- /docs/test-cards ---------------------------------------------------------------------

# The seed's Testing table (seeds/003): card -> HTTP status, failure_type, DE 39 without 3-D Secure.
SEED_CARDS: dict[str, tuple[int, str | None, str]] = {
    "4111111111111111": (200, None, "00"),  # Success authorization
    "2222400060000007": (200, None, "00"),  # Success authorization
    "4276990011343663": (402, "declined", "05"),  # Non 3-D Secure: declined authorization
    "5555555555555599": (500, "error", "96"),  # Internal system error
    "4276838748917319": (200, None, "00"),  # 3-D Secure "Not enrolled": the authorization itself approves
    "4000000000000002": (402, "fraud", "59"),  # Declined as fraud
}
# The 3-D Secure test cards of issue 11's shared design (ISSUE11.md), each with an outcome of its own.
SECURE3D_CARDS = (
    "4000000000003220",
    "4000000000003063",
    "4000000000009235",
    "4000000000003055",
    "5200000000001005",
    "4276838748917319",
    "4276990011343663",
)
# What each class of schemas/response_codes.json is to a merchant (seeds/003, Response codes).
CLASS_OUTCOME: dict[str, tuple[int, str | None]] = {
    "approved": (200, None),
    "declined": (402, "declined"),
    "fraud": (402, "fraud"),
    "error": (500, "error"),
}
NOT_ON_RULES = {testcards.OTHER_CARD: "4242424242424242", testcards.OTHER_NUMBER: "378282246310005"}


class _Table(HTMLParser):
    """The page's rows, each a list of cell texts; the card's cells (rowspan) repeated on every row."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.cell: list[str] | None = None
        self.row: list[str] = []
        self.first: list[str] = []
        self.tags: list[str] = []
        self.style = ""
        self.in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "tbody":
            self.first = []
        elif tag == "tr":
            self.row = []
        elif tag in ("td", "th"):
            self.cell = []
        self.in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self.cell is not None:
            self.row.append(" ".join("".join(self.cell).split()))
            self.cell = None
        elif tag == "tr" and len(self.row) == 9:
            self.first = self.row
            self.rows.append(self.row)
        elif tag == "tr" and len(self.row) == 5 and self.first:
            f = self.first
            self.rows.append([f[0], f[1], *self.row, f[7], f[8]])
        self.in_style = False

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)
        if self.in_style:
            self.style += data


async def cards_page(http: Http) -> tuple[str, _Table]:
    resp = await http.get(TEST_CARDS_PATH)
    assert resp.status == 200
    parser = _Table()
    text = await resp.text()
    parser.feed(text)
    return text, parser


def _seed_testing_cards() -> set[str]:
    """The card numbers of the seed's Testing table (seeds/003), when the seed is at hand."""
    places = [Path(os.environ["ISOSWITCH_SEEDS"])] if "ISOSWITCH_SEEDS" in os.environ else []
    places += [p / "shared" / "seeds" for p in ROOT.parents]
    for place in places:
        for found in sorted(place.glob("003_*.txt")):
            testing = found.read_text(encoding="utf-8").rpartition("\nTesting\n")[2]
            return set(re.findall(r"^\s*([0-9]{16})\s", testing, re.MULTILINE))
    pytest.skip("seeds/003 not found (set ISOSWITCH_SEEDS to the seeds directory)")


async def test_the_test_cards_page_is_served_without_credentials_with_a_strict_csp(http: Http) -> None:
    resp = await http.get(TEST_CARDS_PATH)
    assert resp.status == 200 and resp.content_type == "text/html"
    assert resp.headers["Cache-Control"] == "no-cache" and resp.headers["X-Content-Type-Options"] == "nosniff"
    text = await resp.text()
    # No script at all, nothing from other hosts, no URL of another host.
    assert "<script" not in text and "://" not in text
    csp = resp.headers["Content-Security-Policy"]
    directives = dict(d.strip().partition(" ")[::2] for d in csp.split(";"))
    assert directives["default-src"] == "'none'" and "script-src" not in directives
    assert directives["frame-ancestors"] == "'none'" and directives["form-action"] == "'none'"
    assert "unsafe" not in csp
    # The one inline style is allowed by its hash, and by nothing else.
    parser = _Table()
    parser.feed(text)
    digest = base64.b64encode(hashlib.sha256(parser.style.encode()).digest()).decode()
    assert directives["style-src"] == f"'sha256-{digest}'"
    # Credentials change nothing; a revalidation is a 304.
    assert await (await http.get(TEST_CARDS_PATH, headers=basic("nobody", "wrong"))).text() == text
    again = await http.get(TEST_CARDS_PATH, headers={"If-None-Match": resp.headers["ETag"]})
    assert again.status == 304


async def test_the_docs_link_to_the_test_cards_page(http: Http) -> None:
    served = await (await http.get("/openapi.json")).json()
    assert f"]({TEST_CARDS_PATH})" in served["info"]["description"]
    _, page = await cards_page(http)
    assert page.rows


def test_the_seed_testing_table_is_the_one_these_tests_know() -> None:
    assert _seed_testing_cards() == set(SEED_CARDS)


async def test_every_seed_test_card_is_on_the_page_with_the_seeds_outcome(http: Http) -> None:
    _, page = await cards_page(http)
    for pan, (status, failure_type, de39) in SEED_CARDS.items():
        rows = [r for r in page.rows if r[0] == pan]
        assert rows, pan
        assert "seeds/003 test card" in rows[0][1], pan
        # The first condition of a seed card is the plain authorization the seed speaks of.
        assert rows[0][3] == str(status) and rows[0][4] == (failure_type or "—"), (pan, rows[0])
        assert rows[0][6].split()[0] == de39, (pan, rows[0])


async def test_every_card_of_the_simulators_rules_and_of_the_3ds_table_is_on_the_page(http: Http) -> None:
    _, page = await cards_page(http)
    on_page = {r[0] for r in page.rows}
    rules = tomllib.loads(testcards.SIM_RULES_FILE.read_text(encoding="utf-8"))
    assert {c["pan"] for c in rules["cards"]} <= on_page
    default = json.loads(testcards.CARDS_FILE.read_text(encoding="utf-8"))["secure3d_default"]
    for pan in SECURE3D_CARDS:
        row = next(r for r in page.rows if r[0] == pan)
        assert (row[7], row[8]) != (default["3ds1"], default["3ds2"]), pan


def _authorization(pan: str, probe: Mapping[str, Any]) -> dict[str, str]:
    amount = int(probe.get("amount", 999))
    msg = {"t": "0100", "2": pan, "3": "000000", "4": f"{amount:012d}", "7": "1206120000", "11": "000001"}
    msg |= {"14": "3012", "41": "TERM0001", "49": "840"}
    if "cvv" in probe:
        msg["120"] = str(probe["cvv"])
    if "eci" in probe:
        msg["121"] = str(probe["eci"])
    return msg


def test_every_row_agrees_with_the_simulators_issuer_and_the_response_code_table() -> None:
    codes = json.loads((SCHEMAS_DIR / "response_codes.json").read_text(encoding="utf-8"))["codes"]
    rules = load_rules(testcards.SIM_RULES_FILE)
    cards = testcards.card_rows()
    assert len(cards) >= len(SEED_CARDS) + len(SECURE3D_CARDS)
    for card in cards:
        pans = [NOT_ON_RULES.get(card.pan, card.pan)]
        if card.pan == testcards.OTHER_NUMBER:
            pans.append("4111111111111112")  # a wrong Luhn check digit
        for case, pan in ((c, p) for c in card.cases for p in pans):
            # A new issuer each time: an authorization holds its amount on the card.
            answer = Issuer(rules, seed=1).handle(_authorization(pan, case.probe))
            assert answer is not None and answer["39"] == case.de39, (card.pan, case.condition, answer)
            row = codes[case.de39]
            o = case.outcome
            assert (o.http_status, o.failure_type) == CLASS_OUTCOME[row["class"]], (card.pan, case)
            assert o.message == row["message"], (card.pan, case)
            assert o.order_status == ("authorized" if row["class"] == "approved" else row["class"]), (card.pan, case)


def test_the_3ds_column_names_exactly_the_cards_the_simulated_acs_has_rules_for() -> None:
    """schemas/test_cards.json's 3-D Secure outcomes and the ACS's [[secure3d]] rules name the same cards."""
    root = Path(__file__).resolve().parents[1]
    rules = tomllib.loads((root / "acquirer_sim" / "default_rules.toml").read_text())
    cards = json.loads((root / "schemas" / "test_cards.json").read_text())["cards"]
    ruled = {r["pan"] for r in rules["secure3d"] if r["pan"] != "4111111111111111"}  # 4111...: the default's row
    shown = {c["pan"] for c in cards if "secure3d" in c}
    assert ruled == shown
