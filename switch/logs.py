"""Logs: one JSON object per line, a request id on every line of a request, card data masked.

A REST call sets :data:`REQUEST_ID` (``http_front`` does, from ``X-Request-Id``
or a new one); asyncio copies context variables into the tasks a request
starts, so every line logged while serving it (the orders service's, its ISO
exchange's and the access log's) carries the same ``request_id``. Tasks that serve
every request (the group writer, id leases, the shared login check) run in a
context of their own, so their lines carry none.

>>> import logging
>>> rec = logging.LogRecord("isoswitch.link", logging.INFO, __file__, 1, "pan %s", ("4111111111111111",), None)
>>> _MaskCards().filter(rec), rec.getMessage()
(True, 'pan 411111****1111')
"""

from __future__ import annotations

import contextvars
import logging
import secrets
import sys
from typing import Any

from pythonjsonlogger.orjson import OrjsonFormatter

from switch.wire.cards import scrub

__all__ = ["REQUEST_ID", "new_request_id", "setup_logging"]

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("isoswitch_request_id", default=None)


def new_request_id() -> str:
    """16 hex digits: unique enough per day of traffic, short enough for a log line."""
    return secrets.token_hex(8)


class _MaskCards(logging.Filter):
    """Last line of defence: a PAN that reached a log message anyway is masked (the code masks first)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:
            # A bad format call: logging would print its arguments raw in the error report.
            record.msg, record.args = scrub(f"(bad log call) {record.msg!r} % {record.args!r}"), None
            return True
        masked = scrub(text)
        if masked != text:
            record.msg, record.args = masked, None
        return True


class _RequestId(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        rid = REQUEST_ID.get()
        if rid is not None:
            record.request_id = rid
        return True


# Fields the code fills with our own identifiers, never with card data.
_ID_FIELDS = frozenset({"request_id", "order_id", "new_order_id", "operation_id", "rrn", "arn", "stan"})
# At the top of a line also the record's own fields ("msg": _MaskCards did it).
_IDENTIFIERS = _ID_FIELDS | {"ts", "msg", "level", "logger"}


class _Json(OrjsonFormatter):
    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        super().add_fields(log_data, record, message_dict)
        log_data["level"] = record.levelname.lower()
        log_data["logger"] = record.name
        for key, value in log_data.items():
            # Identifiers are digits by design (an order id or RRN passes Luhn one time in ten):
            # masking them would hide what the line is about, so only the other fields are scrubbed.
            if key not in _IDENTIFIERS:
                log_data[key] = _scrubbed(value)


def _scrubbed(value: Any) -> Any:
    """``value`` with card numbers masked, into the dicts and lists a log call may pass as ``extra``."""
    if isinstance(value, str):
        return scrub(value) if len(value) >= 12 else value
    if isinstance(value, dict):
        return {k: v if k in _ID_FIELDS else _scrubbed(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrubbed(v) for v in value]
    return value


class _Text(logging.Formatter):
    """For a terminal: the whole line masked, the traceback included."""

    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))


def setup_logging(
    level: str = "info", *, fmt: str = "json", levels: dict[str, str] | None = None, stream: Any = None
) -> None:
    """Root handler on stderr (replacing any earlier one); ``levels`` per logger name."""
    handler = logging.StreamHandler(stream or sys.stderr)
    if fmt == "json":
        handler.setFormatter(
            _Json(
                "%(asctime)s %(message)s",
                rename_fields={"asctime": "ts", "message": "msg"},
                datefmt="%Y-%m-%dT%H:%M:%S%z",
            )
        )
    else:
        handler.setFormatter(_Text("%(asctime)s %(levelname)s %(name)s %(message)s"))
    handler.addFilter(_RequestId())
    handler.addFilter(_MaskCards())
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    for name, lvl in (levels or {}).items():
        logging.getLogger(name).setLevel(getattr(logging, lvl.upper()))
