"""3-D Secure for the hosted payment page: :class:`PageSecure3D` is ``PaymentPages.secure3d``.

The page (:mod:`switch.orders.pages`) knows 3-D Secure only by its
``Secure3DStart`` protocol, so the orders package never imports this one (3-D
Secure is built on the orders service: the other way round would be a cycle).
The runtime sets it whenever its ``secure3d`` is set.

A page's payment never captures inside 3-D Secure (``auto_charge=False``):
the page's own ``settle`` charges it, keeps the card (oneclick) and closes the
page, whether the payment ended at once (frictionless, not enrolled) or after
the ACS (the completion route calls ``PaymentPages.after_secure3d``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from switch.orders.model import Order
from switch.secure3d.model import Callbacks, Challenge, MethodStep, Secure3DRequest
from switch.secure3d.service import Secure3D
from switch.store.projects import Project
from switch.translate import Card

__all__ = ["PageSecure3D", "PageStep"]


@dataclass(frozen=True, slots=True)
class PageStep:
    """What the page's browser does next: ``challenge`` (post ``form3d`` to the ACS) or ``method`` (3DS2's
    method: post ``form3d`` into a hidden frame, then resume)."""

    form3d: Mapping[str, Any]
    step: str


def _step(outcome: Order | Challenge | MethodStep) -> Order | PageStep:
    if isinstance(outcome, Challenge):
        return PageStep(outcome.form.to_json(), "challenge")
    if isinstance(outcome, MethodStep):
        form = {"action": outcome.method_url, "method": "POST", "threeDSMethodData": outcome.method_data}
        return PageStep(form, "method")
    return outcome


class PageSecure3D:
    """``Secure3DStart`` on :class:`Secure3D`: ``links`` are the front's :class:`Callbacks`."""

    def __init__(self, secure3d: Secure3D) -> None:
        self.secure3d = secure3d

    async def begin(
        self,
        project: Project,
        order: Order,
        card: Card,
        *,
        reason: str,
        browser: Mapping[str, Any] | None,
        return_url: str | None,
        links: Any,
        terminal: str | None = None,
    ) -> Order | PageStep:
        assert isinstance(links, Callbacks)
        want = Secure3DRequest(
            force3d=True, browser=dict(browser) if browser else None, return_url=return_url, return_url_3ds2=return_url
        )
        # Only the terminal is carried: without "stored" the later 0100's DE 124 is a page's (carry.stored_of).
        carry = {"terminal": terminal} if terminal else None
        outcome = await self.secure3d.begin(
            project, order, card, reason=reason, callbacks=links, want=want, auto_charge=False, stored=True, carry=carry
        )
        return _step(outcome)

    async def resume(self, project: Project, order: Order, links: Any) -> Order | PageStep:
        assert isinstance(links, Callbacks)
        return _step(await self.secure3d.resume(project, order.id, links))
