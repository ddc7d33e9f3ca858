"""The local SMTP sink of ``isoswitch up`` (aiosmtpd): every mail it is given is kept as an ``.eml`` file.

A newcomer sees the mails the switch sends (invoices with their pay link) in ``DATA_DIR/mail`` without an
SMTP server of their own; the tests read them from there (:func:`read_mails`). It accepts any sender and
recipient and relays nothing. Files are written under a temporary name and renamed, so a reader never sees
half a mail; names sort by arrival (``20261206T150102Z-000001-<12 hex>.eml``).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import secrets
from datetime import UTC, datetime
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP

__all__ = ["MailSink", "read_mails"]

_MAX_SIZE = 10 * 1024 * 1024  # bytes per mail: a development sink, not a store


class _Keep:
    """aiosmtpd's handler: DATA -> one file."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._seq = itertools.count(1)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        name = f"{stamp}-{next(self._seq):06d}-{secrets.token_hex(6)}.eml"
        data: bytes = envelope.original_content or envelope.content
        tmp = self.directory / f".{name}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, self.directory / name)
        return "250 Message kept"


class MailSink:
    """An SMTP server on ``host:port`` (0: any free port) keeping mails in ``directory``."""

    def __init__(self, directory: Path, host: str = "127.0.0.1", port: int = 8025) -> None:
        self.directory = directory
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None

    async def start(self) -> tuple[str, int]:
        """Listen; the address bound (so port 0 gives the port it got)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        handler = _Keep(self.directory)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SMTP(handler, hostname="isoswitch-sink", data_size_limit=_MAX_SIZE, loop=loop),
            self.host,
            self.port,
        )
        host, port = self._server.sockets[0].getsockname()[:2]
        self.port = port
        return host, port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None


def read_mails(directory: Path) -> list[EmailMessage]:
    """The mails kept in ``directory``, oldest first."""
    if not directory.is_dir():
        return []
    out = []
    for path in sorted(directory.glob("*.eml")):
        # Kept as received (CRLF line ends); parsed with the local ones, so bodies read as text does.
        msg = message_from_bytes(path.read_bytes().replace(b"\r\n", b"\n"), policy=default)
        assert isinstance(msg, EmailMessage)
        out.append(msg)
    return out
