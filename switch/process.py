"""Around the main of every isoswitch process: its event loop, its stop signal, and the
values its command lines share (``HOST:PORT``, a point in time, a log level), each
parsed by one function so that every command reads them the same way.

Here rather than in the ``isoswitch`` command package because the bench and the
tools run loops and parse addresses too, and they may import the core but not
the command line that composes them.

>>> hostport("127.0.0.1:8583"), hostport("[::1]:8080")
(('127.0.0.1', 8583), ('::1', 8080))
>>> log_level("WARNING")
'warning'
>>> point_in_time("2024-05-01", now=datetime(2024, 6, 1, tzinfo=UTC)).isoformat()
'2024-05-01T00:00:00+00:00'
>>> point_in_time("90m", now=datetime(2024, 6, 1, tzinfo=UTC)).isoformat()
'2024-05-31T22:30:00+00:00'
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import re
import signal
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

__all__ = ["LOG_LEVELS", "hostport", "log_level", "point_in_time", "run_loop", "stop_event"]

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")  # as [logging] level takes them


def run_loop(main: Callable[[], Awaitable[int]]) -> int:
    """Run ``main`` on uvloop when it is installed, plain asyncio otherwise."""
    # Everything loaded so far lives as long as the process: keep it out of
    # the collector's full passes (they showed as 15 ms pauses under load).
    gc.freeze()
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux/macOS
        return asyncio.run(main())  # type: ignore[arg-type]
    return uvloop.run(main())  # type: ignore[arg-type]


def stop_event() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


def hostport(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (an IPv6 host in brackets) as ``(host, port)``; an argparse type.

    >>> hostport("localhost:0")
    Traceback (most recent call last):
    argparse.ArgumentTypeError: expected HOST:PORT with a port 1..65535, got 'localhost:0'
    """
    host, _, port = value.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT with a port 1..65535, got {value!r}")
    return host, int(port)


def log_level(value: str) -> str:
    """A log level in any case (``INFO``, ``info``), as the lower-case name; an argparse type."""
    level = value.strip().lower()
    if level not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(LOG_LEVELS)} (any case), got {value!r}")
    return level


_AGE = re.compile(r"(\d+)\s*([smhdw])")
_UNIT = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def point_in_time(value: str, *, now: datetime | None = None) -> datetime:
    """An ISO 8601 date or date-time (UTC unless it names a zone), or an age back from ``now``
    (``90s``, ``15m``, ``2h``, ``1d``, ``1w``), as an aware datetime; an argparse type.

    >>> point_in_time("2024-05-01T12:00:00+02:00").isoformat()
    '2024-05-01T12:00:00+02:00'
    >>> point_in_time("yesterday")
    Traceback (most recent call last):
    argparse.ArgumentTypeError: expected an ISO 8601 date or time, or an age like 15m, 2h, 1d; got 'yesterday'
    """
    text = value.strip()
    age = _AGE.fullmatch(text.lower())
    if age is not None:
        start = now if now is not None else datetime.now(UTC)
        return start - timedelta(**{_UNIT[age.group(2)]: int(age.group(1))})
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO 8601 date or time, or an age like 15m, 2h, 1d; got {value!r}"
        ) from None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)
