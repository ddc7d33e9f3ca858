"""DNS rebinding: the webhook sender (http_front/outbound/webhooks.py) connects only to addresses the
[webhooks] policy allows, as resolved for the connection itself. The endpoint is a real aiohttp server
on 127.0.0.1; only the name's resolver is a double (a DNS server answering as a test asks), never the
switch or the database."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from http_front.outbound.webhooks import AddressRefused, AiohttpSender, VettedResolver

pytestmark = pytest.mark.timeout(30)

PUBLIC = "93.184.216.34"


class Rebinding(AbstractResolver):
    """Answers each name with the next address of ``answers`` (the last one from then on)."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        address = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return [{"hostname": host, "host": address, "port": port, "family": family, "proto": 0, "flags": 0}]

    async def close(self) -> None:
        pass


@pytest.fixture
async def endpoint() -> AsyncIterator[tuple[int, list[web.Request]]]:
    got: list[web.Request] = []

    async def handle(request: web.Request) -> web.Response:
        got.append(request)
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield runner.addresses[0][1], got
    finally:
        await runner.cleanup()


async def test_a_name_answering_public_then_private_gets_only_its_public_answer_through() -> None:
    resolver = VettedResolver(allow_private=False, allow_loopback=False, inner=Rebinding(PUBLIC, "10.0.0.7"))
    first = await resolver.resolve("hooks.example", 443)
    assert [a["host"] for a in first] == [PUBLIC] and first[0]["hostname"] == "hooks.example"
    with pytest.raises(AddressRefused, match="private address"):
        await resolver.resolve("hooks.example", 443)


async def test_of_a_names_mixed_answer_only_the_allowed_addresses_are_kept() -> None:
    class Mixed(Rebinding):
        async def resolve(
            self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
        ) -> list[ResolveResult]:
            return [
                {"hostname": host, "host": a, "port": port, "family": family, "proto": 0, "flags": 0}
                for a in ("169.254.169.254", PUBLIC, "127.0.0.1")
            ]

    resolver = VettedResolver(allow_private=False, allow_loopback=False, inner=Mixed())
    assert [a["host"] for a in await resolver.resolve("hooks.example", 80)] == [PUBLIC]


async def test_a_name_rebound_to_loopback_never_reaches_the_loopback_endpoint_when_loopback_is_refused(
    endpoint: tuple[int, list[web.Request]],
) -> None:
    port, got = endpoint
    sender = AiohttpSender(allow_private=False, allow_loopback=False, resolver=Rebinding("127.0.0.1"))
    try:
        with pytest.raises(OSError, match="loopback address"):
            await sender.post(f"http://hooks.example:{port}/main", b"{}", {"content-type": "application/json"}, 5.0)
        with pytest.raises(AddressRefused, match="loopback address"):  # written as an address: checked as one
            await sender.post(f"http://127.0.0.1:{port}/main", b"{}", {"content-type": "application/json"}, 5.0)
    finally:
        await sender.close()
    assert got == []


async def test_when_loopback_is_allowed_the_request_connects_to_the_vetted_address_and_keeps_the_name(
    endpoint: tuple[int, list[web.Request]],
) -> None:
    port, got = endpoint
    sender = AiohttpSender(allow_private=False, allow_loopback=True, resolver=Rebinding("127.0.0.1"))
    try:
        status = await sender.post(f"http://hooks.example:{port}/main", b"{}", {}, 5.0)
    finally:
        await sender.close()
    assert status == 204 and [r.host for r in got] == [f"hooks.example:{port}"]
