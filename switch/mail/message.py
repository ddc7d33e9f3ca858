"""A mail to send (:class:`Mail`) and its RFC 5322 form.

>>> m = Mail(kind="code", to="ann@example.com", subject="Your code", text="1234")
>>> raw = render(m, "isoswitch <noreply@example.com>", "<x@isoswitch>")
>>> b"Subject: Your code" in raw and b"Message-ID: <x@isoswitch>" in raw
True
>>> check_address("ann@example.com"), check_address("ann@example.com\\r\\nBcc: eve@example.com")
(True, False)
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate, parseaddr

__all__ = ["KINDS", "Mail", "check_address", "envelope_sender", "new_message_id", "render"]

#: What a mail is about (kept with it, for ``isoswitch mail list``): the portal adds its own kinds here.
KINDS = frozenset({"invoice", "recovery", "code", "notice"})
# A deliverable address, deliberately plain: no display name, no comments, no CR/LF, one @, a dotted domain.
_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})+")


def check_address(address: str) -> bool:
    """Whether ``address`` is one the outbox sends to (at most 254 characters, nothing but the address)."""
    return len(address) <= 254 and _ADDRESS.fullmatch(address) is not None


@dataclass(frozen=True, slots=True, kw_only=True)
class Mail:
    """One mail to one recipient: a text body and, optionally, an HTML alternative of it.

    ``kind`` (one of :data:`KINDS`) and ``reference`` (what it is about: an invoice id, a portal user) are
    kept beside it for the list; ``project_id`` names the project it is sent for (None: not a project's).
    """

    kind: str
    to: str
    subject: str
    text: str
    html: str | None = None
    project_id: int | None = None
    reference: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown mail kind {self.kind!r}")
        if not check_address(self.to):
            raise ValueError("not a mail address the outbox sends to")
        if "\r" in self.subject or "\n" in self.subject or len(self.subject) > 200:
            raise ValueError("a subject is one line of at most 200 characters")


def new_message_id(from_address: str) -> str:
    """A fresh Message-ID in the sender's domain: the same on every attempt (clients drop duplicates)."""
    domain = envelope_sender(from_address).rpartition("@")[2] or "isoswitch.localhost"
    return f"<{secrets.token_hex(16)}@{domain}>"


def envelope_sender(from_address: str) -> str:
    """The bare address of a From header (``Name <a@b>`` -> ``a@b``)."""
    return parseaddr(from_address)[1]


def render(mail: Mail, from_address: str, message_id: str) -> bytes:
    """The message as sent: headers, the text part and (when given) the HTML alternative, CRLF line ends."""
    msg = EmailMessage(policy=SMTP)
    msg["From"] = from_address
    msg["To"] = mail.to
    msg["Subject"] = mail.subject
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = message_id
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to a machine's mail
    msg.set_content(mail.text)
    if mail.html is not None:
        msg.add_alternative(mail.html, subtype="html")
    return msg.as_bytes()
