"""API docs without credentials: the OpenAPI document at ``GET /openapi.json``, Swagger UI at ``GET /docs``,
the test cards at ``GET /docs/test-cards`` (:mod:`http_front.testcards`).

The document is ``schemas/openapi.yaml`` as JSON, self-contained: each
``$ref`` to a request schema in ``schemas/rest/`` is replaced by that file
(its own ``#/definitions/...`` references inlined too, as they point into a
file the browser never sees); the document's ``#/components/...``
references stay. It is built once per process, at the first
:func:`add_docs_routes`, and served as cached bytes.

The page and its assets come from the installed ``swagger-ui-bundle-v2``
package, served here under ``/docs/static/`` (no CDN), and only the files
named in ``_BUNDLE_FILES``: an asset is looked up by exact name in a table,
never joined to a filesystem path, so no request can reach another file.
The page's URLs carry a content hash (``?v=``); an asset fetched with the
current hash is cached for a year, anything else is revalidated.

The routes are named ``public:...``: the auth middleware lets them through
(:data:`http_front.auth.PUBLIC_ROUTE`). Try-it-out calls the same origin
(the document's first server is ``/``) with the credentials given in
Swagger UI's Authorize dialog.

>>> inline_refs({"a": {"$ref": "#/definitions/b"}, "definitions": {"b": {"type": "string"}}}, Path("x.json"))
{'a': {'type': 'string'}}
"""

from __future__ import annotations

import functools
import hashlib
import html
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import swagger_ui_bundle
import yaml
from aiohttp import hdrs, web

from http_front.testcards import TEST_CARDS_PATH, build_page, page_csp
from schemas import SCHEMAS_DIR

__all__ = [
    "DOCS_PATH",
    "OPENAPI_PATH",
    "STATIC_PREFIX",
    "TEST_CARDS_PATH",
    "add_docs_routes",
    "inline_refs",
    "openapi_document",
]

OPENAPI_PATH = "/openapi.json"
DOCS_PATH = "/docs"
STATIC_PREFIX = "/docs/static/"

_DOCUMENT = SCHEMAS_DIR / "openapi.yaml"

# What the page loads (and the source maps its JS and CSS name); nothing else of the bundle is served
# (its own index.html and swagger-initializer.js would load the Petstore example).
_BUNDLE_FILES = (
    "swagger-ui-bundle.js",
    "swagger-ui-bundle.js.map",
    "swagger-ui.css",
    "swagger-ui.css.map",
    "index.css",
    "favicon-32x32.png",
    "favicon-16x16.png",
)
_INIT_JS = "isoswitch-docs.js"

_CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".map": "application/json",
}

_IMMUTABLE = "public, max-age=31536000, immutable"
_REVALIDATE = "no-cache"

# Swagger UI needs no inline script and no eval; React sets styles through the DOM and the CSS
# inlines its icons as data: URLs; a downloaded response body is a blob: URL.
_PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "font-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


# -- the document -------------------------------------------------------------------------


def _load(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)


def _pointer(root: Any, fragment: str, ref: str) -> Any:
    """The node at JSON pointer ``fragment`` (RFC 6901, percent-encoded as in a URI fragment)."""
    if fragment and not fragment.startswith("/"):
        raise ValueError(f"$ref {ref!r}: only JSON pointers are inlined, not anchors")
    node = root
    for token in unquote(fragment).split("/")[1:] if fragment else ():
        token = token.replace("~1", "/").replace("~0", "~")
        try:
            node = node[int(token)] if isinstance(node, list) else node[token]
        except (KeyError, IndexError, ValueError, TypeError):
            raise ValueError(f"$ref {ref!r}: nothing at {fragment!r}") from None
    return node


def inline_refs(node: Any, here: Path, *, keep_local: bool = False) -> Any:
    """``node`` (read from file ``here``) with its ``$ref`` replaced by what they point to.

    References to other files are resolved relative to ``here``; references
    inside a file brought in this way are inlined too. With ``keep_local``,
    ``#...`` references of ``node`` itself stay (they resolve within the
    result). A file's ``definitions``/``$defs`` are dropped once its
    references are inlined: nothing refers to them any more. A recursive
    reference cannot be inlined and raises ValueError.
    """
    files: dict[Path, Any] = {here: node}

    def walk(node: Any, here: Path, keep_local: bool, seen: tuple[str, ...]) -> Any:
        if isinstance(node, list):
            return [walk(v, here, keep_local, seen) for v in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if not isinstance(ref, str) or (keep_local and ref.startswith("#")):
            return {k: walk(v, here, keep_local, seen) for k, v in node.items()}
        if len(node) > 1:
            # Draft 7 ignores a $ref's siblings and 2020-12 applies them: inlining would pick one meaning.
            raise ValueError(f"{here.name}: $ref {ref!r} has sibling keywords; cannot inline it")
        file_part, _, fragment = ref.partition("#")
        target = (here.parent / unquote(file_part)).resolve() if file_part else here
        key = f"{target}#{fragment}"
        if key in seen:
            raise ValueError(f"{here.name}: $ref {ref!r} is recursive; cannot inline it")
        if target not in files:
            files[target] = _load(target)
        found = walk(_pointer(files[target], fragment, ref), target, False, (*seen, key))
        if not fragment and isinstance(found, dict):
            found = {k: v for k, v in found.items() if k not in ("definitions", "$defs")}
        return found

    result = walk(node, here, keep_local, ())
    if not keep_local and isinstance(result, dict):
        result = {k: v for k, v in result.items() if k not in ("definitions", "$defs")}
    return result


def openapi_document(path: Path = _DOCUMENT) -> dict[str, Any]:
    """The OpenAPI document at ``path``, self-contained (see the module's docstring)."""
    doc: dict[str, Any] = inline_refs(_load(path), path.resolve(), keep_local=True)
    return doc


# -- the responses --------------------------------------------------------------------------


def _etag(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class _Asset:
    """One answer of the docs: bytes made here, or a file of the bundle sent as it is."""

    content_type: str
    version: str
    body: bytes | None = None
    path: Path | None = None

    def response(
        self, request: web.Request, cache_control: str, extra: Mapping[str, str] | None = None
    ) -> web.StreamResponse:
        headers = {
            hdrs.CONTENT_TYPE: self.content_type,
            hdrs.CACHE_CONTROL: cache_control,
            hdrs.X_CONTENT_TYPE_OPTIONS: "nosniff",
            **(extra or {}),
        }
        if self.path is not None:
            # FileResponse answers conditional and range requests itself (ETag, Last-Modified).
            return web.FileResponse(self.path, headers=headers)
        assert self.body is not None
        tags = request.if_none_match
        if tags is not None and any(t.value in (self.version, "*") for t in tags):
            del headers[hdrs.CONTENT_TYPE]
            return web.Response(status=304, headers={**headers, hdrs.ETAG: f'"{self.version}"'})
        response = web.Response(body=self.body, headers=headers)
        response.etag = self.version
        return response

    @classmethod
    def of_bytes(cls, body: bytes, content_type: str) -> _Asset:
        return cls(content_type, _etag(body), body=body)

    @classmethod
    def of_file(cls, path: Path) -> _Asset:
        with path.open("rb") as f:
            version = hashlib.file_digest(f, "sha256").hexdigest()[:32]
        return cls(_CONTENT_TYPES[path.suffix], version, path=path)


@dataclass(frozen=True, slots=True)
class _Docs:
    openapi: _Asset
    page: _Asset
    static: Mapping[str, _Asset]
    test_cards: _Asset


def _static_url(name: str, asset: _Asset) -> str:
    return f"{STATIC_PREFIX}{name}?v={asset.version}"


def _init_js() -> bytes:
    config = {
        "url": OPENAPI_PATH,
        "dom_id": "#swagger-ui",
        "deepLinking": True,
        # No badge: it would send the document to validator.swagger.io.
        "validatorUrl": None,
        "layout": "BaseLayout",
    }
    return (
        "// Swagger UI over this front's own document (http_front/docs.py).\n"
        'window.addEventListener("load", function () {\n'
        f"  var config = {json.dumps(config)};\n"
        "  config.presets = [SwaggerUIBundle.presets.apis];\n"
        "  config.plugins = [SwaggerUIBundle.plugins.DownloadUrl];\n"
        "  window.ui = SwaggerUIBundle(config);\n"
        "});\n"
    ).encode()


def _page(title: str, static: Mapping[str, _Asset]) -> bytes:
    def url(name: str) -> str:
        return html.escape(_static_url(name, static[name]))

    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<link rel="stylesheet" href="{url("swagger-ui.css")}">
<link rel="stylesheet" href="{url("index.css")}">
<link rel="icon" type="image/png" href="{url("favicon-32x32.png")}" sizes="32x32">
<link rel="icon" type="image/png" href="{url("favicon-16x16.png")}" sizes="16x16">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{url("swagger-ui-bundle.js")}" charset="utf-8"></script>
<script src="{url(_INIT_JS)}" charset="utf-8"></script>
</body>
</html>
""".encode()


@functools.cache
def _build(document: Path, bundle: Path) -> _Docs:
    """Everything the routes answer, made once per process (the files do not change under a server)."""
    doc = openapi_document(document)
    body = json.dumps(doc, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
    static = {name: _Asset.of_file(bundle / name) for name in _BUNDLE_FILES}
    static[_INIT_JS] = _Asset.of_bytes(_init_js(), _CONTENT_TYPES[".js"])
    page = _page(str(doc.get("info", {}).get("title", "API")), static)
    html_type = "text/html; charset=utf-8"
    cards = _Asset.of_bytes(build_page(), html_type)
    return _Docs(_Asset.of_bytes(body, "application/json"), _Asset.of_bytes(page, html_type), static, cards)


def add_docs_routes(router: web.UrlDispatcher) -> None:
    """``GET /openapi.json``, ``GET /docs``, ``GET /docs/test-cards`` and ``GET /docs/static/{name}``, all public."""
    docs = _build(_DOCUMENT, Path(str(swagger_ui_bundle.swagger_ui_path)))
    cards_csp = page_csp()

    async def openapi(request: web.Request) -> web.StreamResponse:
        return docs.openapi.response(request, _REVALIDATE)

    async def page(request: web.Request) -> web.StreamResponse:
        return docs.page.response(request, _REVALIDATE, {hdrs.CONTENT_SECURITY_POLICY: _PAGE_CSP})

    async def test_cards(request: web.Request) -> web.StreamResponse:
        return docs.test_cards.response(request, _REVALIDATE, {hdrs.CONTENT_SECURITY_POLICY: cards_csp})

    async def static(request: web.Request) -> web.StreamResponse:
        asset = docs.static.get(request.match_info["name"])
        if asset is None:
            raise web.HTTPNotFound()
        current = request.query.get("v") == asset.version
        return asset.response(request, _IMMUTABLE if current else _REVALIDATE)

    router.add_get(OPENAPI_PATH, openapi, name="public:openapi")
    router.add_get(DOCS_PATH, page, name="public:docs")
    router.add_get(TEST_CARDS_PATH, test_cards, name="public:docs-test-cards")
    router.add_get(STATIC_PREFIX + "{name}", static, name="public:docs-static")
