"""Logging of the front: an access log without queries or headers, and card numbers scrubbed.

>>> scrub("card 4111111111111111 order 23014806643308174")
'card 411111****1111 order 23014806643308174'
"""

from __future__ import annotations

import logging
import re
import traceback

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from switch.ids import luhn_ok
from switch.redact import mask_pan

__all__ = ["AccessLog", "ACCESS_LOGGER", "format_exception", "scrub"]

ACCESS_LOGGER = logging.getLogger("isoswitch.http.access")

_DIGIT_RUN = re.compile(r"(?<![0-9])[0-9]{12,19}(?![0-9])")


def _mask(m: re.Match[str]) -> str:
    digits = m.group(0)
    return mask_pan(digits) if luhn_ok(digits) else digits


def scrub(text: str) -> str:
    """``text`` with every Luhn-valid 12-19 digit run masked ``first6****last4``.

    Order ids (17 digits) are mostly left alone: only one in ten passes Luhn.
    """
    return _DIGIT_RUN.sub(_mask, text)


def format_exception(exc: BaseException) -> str:
    """The traceback of ``exc``, scrubbed: a third-party message may quote a value."""
    return scrub("".join(traceback.format_exception(exc)))


class AccessLog(AbstractAccessLogger):
    """``METHOD /path STATUS bytes ms``: never the query (filters carry e-mails, names) nor headers."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            "%s %s %s %s %.1fms",
            request.method,
            scrub(request.path),
            response.status,
            response.body_length,
            time * 1000.0,
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)
