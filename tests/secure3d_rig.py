"""The 3-D Secure rig: the real simulator with its DS and ACS (admin port, a key pair on disk), the real runtime
on PostgreSQL with :class:`~switch.secure3d.Secure3D` attached as ``isoswitch serve`` does, and the REST front
on a real port. ``Shopper`` plays the cardholder's browser with plain HTTP (forms parsed, posted, redirects
not followed); the Playwright tests drive a real one.
"""

from __future__ import annotations

import base64
import dataclasses
import secrets
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import aiohttp
import orjson
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from acquirer_sim import SimServer
from acquirer_sim.config import SimConfig
from http_front import FrontConfig, create_app
from http_front.outbound.ds import DsClient
from switch.config import SwitchConfig
from switch.runtime import Runtime, RuntimeConfig, open_runtime
from switch.secure3d import Secure3D, Secure3DConfig
from switch.store import DbConfig, ProjectSettings
from switch.wire.codec import Message
from switch.wire.threeds import Verifier, generate_key_pair

__all__ = ["BROWSER", "NEXT_YEAR", "Form", "Rig", "Shopper", "forms_of", "open_rig"]

NEXT_YEAR = datetime.now(UTC).year + 1

BROWSER = {
    "browser_accept_header": "text/html",
    "browser_color_depth": 24,
    "browser_ip": "109.86.86.86",
    "browser_language": "en",
    "browser_screen_height": 1080,
    "browser_screen_width": 1920,
    "browser_timezone": -180,
    "browser_user_agent": "Mozilla",
    "browser_java_enabled": False,
    "window_height": 1080,
    "window_width": 1920,
}


@dataclass
class Form:
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)
    visible: list[str] = field(default_factory=list)  # names of inputs a person fills in


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form":
            self.forms.append(Form(a.get("action") or "", (a.get("method") or "get").upper()))
        elif tag == "input" and self.forms:
            name = a.get("name") or ""
            if a.get("type") == "hidden":
                self.forms[-1].fields[name] = a.get("value") or ""
            else:
                self.forms[-1].visible.append(name)


def forms_of(html: str) -> list[Form]:
    parser = _Forms()
    parser.feed(html)
    return parser.forms


class _Recorder:
    """The simulator's issuer, keeping every request it handles."""

    def __init__(self, issuer: Any, sent: list[Message]) -> None:
        self._issuer, self._sent = issuer, sent

    def handle(self, msg: Message) -> Any:
        self._sent.append(dict(msg))
        return self._issuer.handle(msg)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._issuer, name)


def basic(login: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()}


@dataclass
class Rig:
    http: TestClient[web.Request, web.Application]
    runtime: Runtime
    sim: SimServer
    key_dir: Path
    auth: dict[str, str]
    other: dict[str, str]
    sent: list[Message] = field(default_factory=list)

    @property
    def base(self) -> str:
        return str(self.http.make_url("")).rstrip("/")

    @property
    def secure3d(self) -> Secure3D:
        assert self.runtime.secure3d is not None
        return self.runtime.secure3d

    async def call(self, method: str, path: str, body: Any = None, *, auth: dict[str, str] | None = None) -> Any:
        data = None if body is None else orjson.dumps(body, default=str)
        hdrs = {"Content-Type": "application/json", **(self.auth if auth is None else auth)}
        resp = await self.http.request(method, path, data=data, headers=hdrs)
        return resp.status, orjson.loads(await resp.read())

    def iso(self, mti: str) -> list[Message]:
        return [m for m in self.sent if m["t"] == mti]


def body(pan: str, *, amount: str = "9.99", options: Mapping[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "amount": amount,
        "pan": pan,
        "card": {"cvv": "123", "holder": "John Smith", "expiration_month": 12, "expiration_year": NEXT_YEAR},
        "location": {"ip": "6.6.6.6"},
        "options": {"force3d": 1, **(options or {})},
    }
    doc.update(extra)
    return doc


async def open_rig(
    dsn: str, data_dir: Path, *, session_timeout: float = 900.0, project_refresh: float = 5.0
) -> AsyncIterator[Rig]:
    """Everything started on 127.0.0.1 ephemeral ports; closed in reverse."""
    private, public = generate_key_pair(data_dir / "keys")
    sim = SimServer(SimConfig(port=0, admin_port=0, seed=1, acs_key=str(private)))
    await sim.start()
    try:
        assert sim.address is not None and sim.admin_address is not None
        host, port = sim.address
        switch = SwitchConfig.from_dict(
            {
                "destinations": [{"name": "sim", "host": host, "port": port, "links": 1, "echo_interval": 0.0}],
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
                project_refresh=project_refresh,
                env={"ISOSWITCH_PAN_KEY": base64.b64encode(secrets.token_bytes(32)).decode()},
            )
        )
        try:
            admin_host, admin_port = sim.admin_address
            cfg = Secure3DConfig(
                ds_url=f"http://{admin_host}:{admin_port}/ds",
                acs_public_key=public,
                session_timeout=session_timeout,
                ds_timeout=3.0,
            )
            directory = DsClient(cfg.ds_url or "", timeout=3.0)
            runtime.secure3d = Secure3D(
                runtime.orders, runtime.projects, runtime.db.pool, directory, Verifier.load(public), cfg
            )
            shop = ProjectSettings(
                terminal_id="TERM0001", merchant_id="MERCHANT0000001", descriptor="TESTMERCH/TERM", fee_rate=Decimal(3)
            )
            _, password = await runtime.projects.create("project", shop)
            _, other = await runtime.projects.create("other", ProjectSettings.defaults(2, "other"))
            async with TestClient(TestServer(create_app(runtime, FrontConfig(port=0)), host="127.0.0.1")) as http:
                rig = Rig(http, runtime, sim, data_dir / "keys", basic("project", password), basic("other", other))
                sim.issuer = _Recorder(sim.issuer, rig.sent)  # type: ignore[assignment]
                yield rig
        finally:
            await runtime.close()
    finally:
        await sim.stop()


@dataclass
class Shopper:
    """The cardholder's browser, by hand: posts forms, reads the next form, never follows a redirect itself."""

    session: aiohttp.ClientSession
    pages: list[str] = field(default_factory=list)

    async def post(self, url: str, fields: Mapping[str, str]) -> tuple[int, str, Mapping[str, str]]:
        async with self.session.post(url, data=dict(fields), allow_redirects=False) as resp:
            text = await resp.text()
            self.pages.append(text)
            return resp.status, text, resp.headers

    async def submit(self, form: Form, base: str, **typed: str) -> tuple[int, str, Mapping[str, str]]:
        return await self.post(urljoin(base, form.action), {**form.fields, **typed})

    async def through_acs(self, form3d: Mapping[str, str], code: str | None) -> tuple[int, str, Mapping[str, str]]:
        """Post ``form3d`` to the ACS, type ``code`` if it asks, post its answer to the switch: the last answer."""
        fields = {k: v for k, v in form3d.items() if k not in ("action", "method")}
        status, text, _ = await self.post(form3d["action"], fields)
        assert status == 200, text
        (form,) = forms_of(text)
        if "code" in form.visible:
            assert code is not None, "the ACS asked for a code"
            status, text, _ = await self.submit(form, form3d["action"], code=code)
            assert status == 200, text
            (form,) = forms_of(text)
        return await self.submit(form, form3d["action"])

    async def method(self, method_url: str, method_data: str) -> tuple[int, str, Mapping[str, str]]:
        """The 3DS Method in the hidden iframe: to the ACS, whose page posts back to the switch."""
        status, text, _ = await self.post(method_url, {"threeDSMethodData": method_data})
        assert status == 200, text
        (form,) = forms_of(text)
        return await self.submit(form, method_url)


def replace_secure3d(rig: Rig, **changes: Any) -> None:
    """The rig's Secure3D with other settings (a short session, another DS)."""
    s = rig.secure3d
    cfg = dataclasses.replace(s.config, **changes)
    directory = DsClient(cfg.ds_url or "", timeout=cfg.ds_timeout) if "ds_url" in changes else s.directory
    rig.runtime.secure3d = Secure3D(s.orders, s.projects, rig.runtime.db.pool, directory, s.verifier, cfg)
