"""The simulated ACS's HTML pages: the one-time-code challenge, the auto-posting forms, errors.

Plain server-rendered HTML that works without JavaScript (every form has a visible button; the one script
only submits the form for the cardholder). Every value is escaped; the page loads nothing from anywhere, and
its Content-Security-Policy allows exactly its own inline style and script (by nonce) and form posts to any
host (the merchant's TermUrl or notification URL is on another origin).

>>> page = autopost("https://shop.example/done", {"PaRes": "a<b", "MD": '"x"'}, title="Done", nonce="n1")
>>> 'value="a&lt;b"' in page.text and 'value="&quot;x&quot;"' in page.text
True
>>> page.headers["Content-Security-Policy"].split("; ")[:2]
["default-src 'none'", "script-src 'nonce-n1'"]
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from html import escape
from string import Template

__all__ = ["Page", "autopost", "challenge", "error"]

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 0; background: #f4f5f7; color: #1d2330; }
main { max-width: 26rem; margin: 3rem auto; background: #fff; padding: 1.5rem 2rem; border-radius: .5rem;
       box-shadow: 0 1px 4px rgba(0, 0, 0, .15); }
h1 { font-size: 1.3rem; margin-top: 0; }
dl { display: grid; grid-template-columns: auto 1fr; gap: .3rem 1rem; }
dt { color: #5b6270; } dd { margin: 0; font-weight: 600; }
label { display: block; margin: 1rem 0 .3rem; font-weight: 600; }
input[name=code] { font-size: 1.4rem; letter-spacing: .3rem; padding: .4rem; width: 10rem; }
button { margin-top: 1rem; font-size: 1rem; padding: .5rem 1.4rem; }
.hint { color: #5b6270; font-size: .9rem; }
"""

_HEAD = Template("""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title</title>
<style nonce="$nonce">$style</style>
</head>
<body>
<main>
<h1>$title</h1>
""")

_TAIL = "</main>\n</body>\n</html>\n"

_CHALLENGE = Template("""<p>$bank asks you to confirm this payment.</p>
<dl>
<dt>Merchant</dt><dd>$merchant</dd>
<dt>Amount</dt><dd>$amount</dd>
<dt>Card</dt><dd>$card</dd>
</dl>
<form method="post" action="$action">
$hidden<label for="code">One-time code</label>
<input id="code" name="code" type="text" autocomplete="one-time-code" inputmode="numeric" pattern="[0-9]*"
 maxlength="8" required autofocus>
<p class="hint">A simulated bank: the code is 1234; any other code fails.</p>
<button type="submit">Confirm</button>
</form>
""")

_AUTOPOST = Template("""<p>$message</p>
<form id="autopost" method="post" action="$action">
$hidden<button type="submit">Continue</button>
</form>
<script nonce="$nonce">document.getElementById("autopost").submit();</script>
""")


@dataclass(frozen=True, slots=True)
class Page:
    """An HTML page with the headers it must be served with."""

    text: str
    headers: Mapping[str, str]
    status: int = 200


def _headers(nonce: str) -> dict[str, str]:
    return {
        # form-action *: the forms post to the merchant's or the switch's URL, on another origin (and the
        # 303 that follows goes to the merchant's return_url). frame-ancestors is left open on purpose: the
        # 3DS Method page and the challenge run in the merchant's iframe.
        "Content-Security-Policy": (
            f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; form-action *; base-uri 'none'"
        ),
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
    }


def _hidden(fields: Mapping[str, str]) -> str:
    return "".join(
        f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">\n' for name, value in fields.items()
    )


def _page(title: str, body: str, nonce: str, status: int = 200) -> Page:
    head = _HEAD.substitute(title=escape(title), nonce=nonce, style=_STYLE)
    return Page(head + body + _TAIL, _headers(nonce), status)


def challenge(
    action: str, fields: Mapping[str, str], *, merchant: str, amount: str, card: str, bank: str = "Your bank"
) -> Page:
    """The one-time-code form posting ``code`` and the hidden ``fields`` to ``action``."""
    nonce = secrets.token_urlsafe(16)
    body = _CHALLENGE.substitute(
        bank=escape(bank),
        merchant=escape(merchant),
        amount=escape(amount),
        card=escape(card),
        action=escape(action),
        hidden=_hidden(fields),
    )
    return _page("Confirm your payment", body, nonce)


def autopost(
    action: str, fields: Mapping[str, str], *, title: str, message: str = "", nonce: str | None = None
) -> Page:
    """A form that posts ``fields`` to ``action`` by itself, or with its button when scripts are off."""
    nonce = nonce or secrets.token_urlsafe(16)
    body = _AUTOPOST.substitute(
        message=escape(message or "Returning to the merchant…"),
        action=escape(action),
        hidden=_hidden(fields),
        nonce=nonce,
    )
    return _page(title, body, nonce)


def error(message: str, status: int = 400) -> Page:
    """A page saying why the request cannot be processed (never echoing card data)."""
    nonce = secrets.token_urlsafe(16)
    return _page("Payment verification failed", f"<p>{escape(message)}</p>\n", nonce, status)
