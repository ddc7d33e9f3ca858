"""What an authorize asks of 3-D Secure: ``options.force3d``, the return URLs, ``secure3d.browser_details``
(3-D Secure 2, all eleven fields checked, one 422 naming every bad one) and ``force_challenge``.

The hosted page builds the same browser details from its script's fields and the request's headers
(:func:`browser_details_of`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from http_front.orders.fields import flag, section, validation
from switch.orders.errors import InvalidInput, Problem
from switch.secure3d.model import BROWSER_FIELDS, Secure3DRequest

__all__ = ["browser_details_of", "return_url_of", "secure3d_request"]


# browser_details: which are numbers (and their digits), which are text (and their length).
_BROWSER_NUMBERS = {
    "browser_color_depth": 2,
    "browser_screen_height": 6,
    "browser_screen_width": 6,
    "window_height": 6,
    "window_width": 6,
}
_BROWSER_TEXT = {"browser_accept_header": 2048, "browser_language": 35, "browser_user_agent": 2048}


def _browser_value(name: str, value: object) -> tuple[object, str | None]:
    """One browser_details value as the AReq carries it, or why it is wrong."""
    if value is None:
        return None, "Required"
    if name in _BROWSER_NUMBERS:
        text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
        if not (isinstance(text, str) and text.isascii() and text.isdigit() and len(text) <= _BROWSER_NUMBERS[name]):
            return None, f"Must be a number of at most {_BROWSER_NUMBERS[name]} digits"
        return int(text), None
    if name == "browser_timezone":
        text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
        body = text[1:] if isinstance(text, str) and text[:1] in "+-" else text
        if not (isinstance(body, str) and body.isascii() and body.isdigit() and 1 <= len(body) <= 4):
            return None, "Must be minutes from UTC, e.g. -180"
        return int(str(text)), None
    if name == "browser_java_enabled":
        if isinstance(value, bool):
            return value, None
        if value in (0, 1, "0", "1", "true", "false"):
            return value in (1, "1", "true"), None
        return None, "Must be true or false"
    if name == "browser_ip":
        try:
            return str(ipaddress.ip_address(str(value))), None
        except ValueError:
            return None, "Must be an IP address"
    limit = _BROWSER_TEXT[name]
    if not isinstance(value, str) or not value or len(value) > limit:
        return None, f"Must be a non-empty string of at most {limit} characters"
    return value, None


def browser_details_of(raw: object) -> dict[str, object]:
    """``secure3d.browser_details``: all eleven fields, each checked; one 422 naming every bad one."""
    base = "secure3d/browser_details"
    if not isinstance(raw, dict):
        raise validation("Must be an object", base)
    out: dict[str, object] = {}
    problems = []
    for name in BROWSER_FIELDS:
        value, why = _browser_value(name, raw.get(name))
        if why is None:
            out[name] = value
        elif why == "Required":
            problems.append(Problem("Required", f"{base}/{name}", "required", ("(true)",)))
        else:
            problems.append(Problem(why, f"{base}/{name}"))
    if problems:
        raise InvalidInput(problems=problems)
    return out


def return_url_of(options: Mapping[str, Any], name: str) -> str | None:
    """``options.return_url`` / ``secure3d20_return_url``: an absolute http(s) URL, or None."""
    value = options.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 2048:
        raise validation("Must be a URL", f"options/{name}")
    try:
        parts = urlsplit(value)
    except ValueError:
        raise validation("Must be a URL", f"options/{name}") from None
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c in value for c in "\r\n\t <>\"'"):
        raise validation("Must be an http or https URL", f"options/{name}")
    return value


def secure3d_request(body: Mapping[str, Any]) -> Secure3DRequest:
    """What an authorize asks of 3-D Secure: ``options.force3d``, return URLs, ``secure3d.browser_details``
    (3DS2) and ``force_challenge``. Checked whether or not 3-D Secure runs, so nothing is silently ignored."""
    options, s = section(body, "options"), section(body, "secure3d")
    browser = browser_details_of(s["browser_details"]) if s.get("browser_details") is not None else None
    return Secure3DRequest(
        force3d=flag(options.get("force3d")),
        browser=browser,
        force_challenge=flag(s.get("force_challenge")),
        return_url=return_url_of(options, "return_url"),
        return_url_3ds2=return_url_of(options, "secure3d20_return_url"),
    )
