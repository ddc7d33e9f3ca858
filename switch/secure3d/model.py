"""What 3-D Secure takes from a merchant's request and what it answers besides a finished order."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from switch.orders.errors import OrderError
from switch.orders.model import Order

__all__ = [
    "BROWSER_FIELDS",
    "Callbacks",
    "Challenge",
    "Completion",
    "Form3d",
    "MethodStep",
    "Secure3DRequest",
]

# seeds/003, Payments with 3-D Secure 2.0: the eleven browser_details, all required.
BROWSER_FIELDS = (
    "browser_accept_header",
    "browser_color_depth",
    "browser_ip",
    "browser_language",
    "browser_screen_height",
    "browser_screen_width",
    "browser_timezone",
    "browser_user_agent",
    "browser_java_enabled",
    "window_height",
    "window_width",
)


@dataclass(frozen=True, slots=True)
class Secure3DRequest:
    """The 3-D Secure part of an authorize (or a hosted page's payment).

    ``browser`` (the eleven ``browser_details``, already checked) selects 3DS2; None is 3DS1.
    """

    force3d: bool = False
    browser: dict[str, Any] | None = None
    force_challenge: bool = False
    return_url: str | None = None
    return_url_3ds2: str | None = None


@dataclass(frozen=True, slots=True)
class Callbacks:
    """The switch's own absolute URLs that the browser and the ACS come back to (the front makes them)."""

    term_url: str  # 3DS1 TermUrl: PaRes + MD
    notification_url: str  # 3DS2 notificationURL: cres + threeDSSessionData
    rreq_url: str  # 3DS2 threeDSServerURL: the ACS's RReq
    method_done_url: str  # 3DS2 threeDSMethodNotificationURL


@dataclass(frozen=True, slots=True)
class Form3d:
    """The form the cardholder's browser posts to the ACS (seed: ``form3d``; ``fields`` in the order shown)."""

    action: str
    method: str
    fields: tuple[tuple[str, str], ...]

    def to_json(self) -> dict[str, str]:
        return {"action": self.action, "method": self.method, **dict(self.fields)}


@dataclass(frozen=True, slots=True)
class Challenge:
    """The order waits (``prepared``) for the cardholder at the ACS: the answer is 201 with ``form``."""

    order: Order
    form: Form3d


@dataclass(frozen=True, slots=True)
class MethodStep:
    """3DS2: the browser runs the issuer's 3DS Method first, then the merchant calls ``/resume``."""

    order: Order
    method_url: str
    method_data: str


@dataclass(frozen=True, slots=True)
class Completion:
    """A completion's result: the order as it ended, where the cardholder goes, and the failure if it failed."""

    order: Order
    return_url: str | None
    failure: OrderError | None = None
