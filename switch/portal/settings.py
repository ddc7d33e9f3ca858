"""The portal's settings page below HTTP (issue 13 item 4; seeds/000 "General settings"): which settings it edits,
how a posted form becomes the changes ``isoswitch project settings --set`` would make (the same
:meth:`ProjectSettings.parse_settings` and :meth:`Projects.update_settings`: one validation), and the payment
page's logo (checked by its magic bytes and size, kept in ``project_logos``, migration 034).

The wire settings (terminal and merchant ids, MCC, fees, acquirer id) are not here: the acquirer sets those with
the CLI, a merchant's portal user does not.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

import asyncpg

from switch.mail import Mail, check_address
from switch.store.projects import PAGE_TEMPLATES, Project, Projects, ProjectSettings

__all__ = [
    "FIELDS",
    "LOGO_MAX_BYTES",
    "Field",
    "Logo",
    "LogoRefused",
    "Logos",
    "apply_form",
    "logo_path",
    "new_open_id_token",
    "save",
    "session_event_mails",
    "sniff",
]

# A page header's picture (more is a photo, not a logo), and under the front's whole-request limit
# ([http] client_max_size, 64 KiB by default) with the multipart form around it.
LOGO_MAX_BYTES = 48 * 1024


@dataclass(frozen=True, slots=True)
class Field:
    """One input of the settings page: the setting's ``key``, its ``label`` (the seed's words), its ``kind``
    (``flag`` a checkbox, ``int``, ``text``, ``choice``), a ``hint`` under it, and for a choice its options."""

    key: str
    label: str
    kind: str
    hint: str = ""
    options: tuple[str, ...] = ()


#: The page's fields in the seed's order, grouped as the page shows them.
FIELDS: tuple[tuple[str, tuple[Field, ...]], ...] = (
    (
        "Payments",
        (
            Field("auto_capture", "Autocapture enabled", "flag", "Two-step payments are charged automatically."),
            Field("capture_hours", "Capture time (in hours)", "int", "Hours after the authorization (1-720)."),
            Field("two_step_allowed", "Two-step payment", "flag", "Authorize now, charge later."),
            Field("cvv_required", "CVV required", "flag", "Off: a payment without the card's code is accepted."),
            Field("holder_required", "Card holder required", "flag", "Off: the holder's name is optional."),
            Field("google_pay_browser", "Allowing Google Pay payments in the browser", "flag"),
            Field("google_pay_mobile", "Allowing Google Pay payments on a mobile device", "flag"),
            Field("apple_pay", "Payment by Apple Pay allowed", "flag"),
        ),
    ),
    (
        "Payment page",
        (
            Field("show_final_page", "Show final page", "flag", "The page shows the payment, then a link back."),
            Field(
                "payment_session_minutes",
                "Session duration (in minutes)",
                "int",
                "Time to enter the card from the payment's registration; 0: the switch's default.",
            ),
            Field("page_template", "Template", "choice", "The payment page's look.", PAGE_TEMPLATES),
        ),
    ),
    (
        "Notifications and access",
        (
            Field("notify_emails", "E-mail", "text", "Notification addresses, separated by commas (at most 5)."),
            Field("session_events", "Send session creation events", "flag", "E-mail when a payment page is made."),
            Field("open_id_token", "Open Id token", "text", "Type one in, or generate one below."),
            Field("portal_session_minutes", "Portal session (in minutes)", "int", "Idle time before sign-out."),
        ),
    ),
)

_FIELD_KEYS = frozenset(f.key for _, group in FIELDS for f in group)


def apply_form(form: Mapping[str, str]) -> dict[str, object]:
    """The posted settings form as changes for :meth:`Projects.update_settings`, typed by the same call as the
    CLI's ``--set`` (an unchecked box is posted as nothing: it means false). Raises ``InvalidSettings``."""
    texts: dict[str, str] = {}
    for _, group in FIELDS:
        for f in group:
            if f.kind == "flag":
                texts[f.key] = "true" if form.get(f.key) == "on" else "false"
            elif f.key in form:
                texts[f.key] = form[f.key].strip()
    assert set(texts) <= _FIELD_KEYS
    return ProjectSettings.parse_settings(texts)


async def save(projects: Projects, project: Project, form: Mapping[str, str]) -> Project:
    """:func:`apply_form`, then the change written (validated as a whole, as the CLI's)."""
    return await projects.update_settings(project.id, **apply_form(form))


def new_open_id_token() -> str:
    """seeds/000 "You can generate an Open Id token": 256 random bits."""
    return secrets.token_urlsafe(32)


def session_event_mails(project: Project, order_id: str, amount: str, currency_code: str) -> list[Mail]:
    """seeds/000 "Send session creation events": one mail per notification address when a payment page is made
    (none when the setting is off or there is no address). The mail names the order, never a card."""
    s = project.settings
    if not s.session_events:
        return []
    text = (
        f"A payment session was created for {project.name}: order {order_id}, {amount} {currency_code}.\n"
        'You get this mail because "Send session creation events" is on in the portal\'s settings.\n'
    )
    return [
        Mail(
            kind="notice",
            to=address,
            subject=f"Payment session {order_id} created",
            text=text,
            project_id=project.id,
            reference=order_id,
        )
        for address in (a.strip() for a in s.notify_emails.split(","))
        if address and check_address(address)
    ]


# -- the payment page's logo -------------------------------------------------------------------


class LogoRefused(ValueError):
    """The upload is not a picture we serve (type) or is too big (size); the text says which."""


# Magic bytes of the types served; SVG is refused (a picture that can carry script and links).
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def sniff(data: bytes) -> str:
    """The picture's type by its first bytes (never by its name or the browser's word); LogoRefused otherwise."""
    if not data:
        raise LogoRefused("choose a picture file")
    if len(data) > LOGO_MAX_BYTES:
        raise LogoRefused(f"the logo must be at most {LOGO_MAX_BYTES // 1024} KiB")
    for magic, kind in _MAGIC:
        if data.startswith(magic):
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    raise LogoRefused("the logo must be a PNG, JPEG, GIF or WebP picture")


@dataclass(frozen=True, slots=True)
class Logo:
    content_type: str
    body: bytes
    sha256: str


class Logos:
    """``project_logos``: one picture per project."""

    __slots__ = ("_pool",)

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def put(self, project_id: int, data: bytes) -> Logo:
        kind = sniff(data)
        digest = hashlib.sha256(data).hexdigest()
        await self._pool.execute(
            "INSERT INTO project_logos (project_id, content_type, body, sha256) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (project_id) DO UPDATE SET content_type = $2, body = $3, sha256 = $4, updated = now()",
            project_id,
            kind,
            data,
            digest,
        )
        return Logo(kind, data, digest)

    async def get(self, project_id: int) -> Logo | None:
        row = await self._pool.fetchrow(
            "SELECT content_type, body, sha256 FROM project_logos WHERE project_id = $1", project_id
        )
        return None if row is None else Logo(row["content_type"], bytes(row["body"]), row["sha256"])

    async def digest(self, project_id: int) -> str | None:
        """The logo's SHA-256 (its URL's last part), without reading the picture; None: no logo."""
        value: str | None = await self._pool.fetchval(
            "SELECT sha256 FROM project_logos WHERE project_id = $1", project_id
        )
        return value

    async def remove(self, project_id: int) -> bool:
        status = await self._pool.execute("DELETE FROM project_logos WHERE project_id = $1", project_id)
        return bool(status != "DELETE 0")


def logo_path(project_id: int, digest: str) -> str:
    """Where the payment page finds the logo (this origin: the page's CSP has ``img-src 'self'``)."""
    return f"/pay/logo/{project_id}/{digest}"
