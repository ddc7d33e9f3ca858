"""What a project's settings change on its payment page (issue 13 item 4, set on the portal's settings page):
the template (a class on the page's body, styled by the page's own stylesheet: no merchant CSS or script), the
logo (``GET /pay/logo/{project}/{sha256}``, served from this origin, so the page's CSP ``img-src 'self'`` holds),
and the seed's final page ("Show final page": after a payment the page shows its data and a link back instead of
sending the cardholder straight to ``return_url``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from aiohttp import web

from http_front.keys import RUNTIME
from http_front.pages.component import secure
from switch.money import from_minor
from switch.orders.pages import PageView
from switch.portal.settings import Logos, logo_path
from switch.store import Database, Project

__all__ = ["PLAIN", "Look", "logo", "look_of"]


@dataclass(frozen=True, slots=True)
class Look:
    template: str = "standard"
    logo: str | None = None  # the logo's path on this origin
    final_page: bool = False
    terminal_id: str = ""

    def final(self, view: PageView) -> dict[str, str] | None:
        """The seed's final page: what it shows of the payment (None: no final page, the cardholder goes back)."""
        if not self.final_page:
            return None
        order = view.order
        month, year = order.expiry_month, order.expiry_year
        expiry = f"{month:02d}/{year % 100:02d}" if month and year else ""
        card = f"{order.pan_mask or ''} {expiry}".strip()
        rows = {
            "Merchant": view.merchant,
            "ID": order.id,
            "Authorization code": order.auth_code or "",
            "Terminal ID": self.terminal_id,
            "Reference ID (RRN)": order.rrn or "",
            "Amount": f"{from_minor(order.amount, order.currency)} {order.currency}",
            "Description": order.description or "",
            "Card information": card,
        }
        return {k: v for k, v in rows.items() if v}


PLAIN = Look()


class _Projects(Protocol):
    async def get(self, project_id: int) -> Project | None: ...


async def look_of(request: web.Request, view: PageView) -> Look:
    """The page's look from its project's settings (two indexed reads); :data:`PLAIN` for a runtime without them."""
    runtime = request.app[RUNTIME]
    projects: _Projects | None = getattr(runtime, "projects", None)
    db: Database | None = getattr(runtime, "db", None)
    if db is None or projects is None or not hasattr(projects, "get"):
        return PLAIN
    project = await projects.get(view.row.project_id)
    if project is None:
        return PLAIN
    digest = await Logos(db.pool).digest(project.id)
    s = project.settings
    return Look(
        template=s.page_template,
        logo=logo_path(project.id, digest) if digest else None,
        final_page=s.show_final_page,
        terminal_id=s.terminal_id,
    )


async def logo(request: web.Request) -> web.StreamResponse:
    """``GET /pay/logo/{project}/{sha256}``: the picture when it is still that one, else 404."""
    db: Database | None = getattr(request.app[RUNTIME], "db", None)
    found = None if db is None else await Logos(db.pool).get(int(request.match_info["project"]))
    if found is None or found.sha256 != request.match_info["sha"]:
        raise web.HTTPNotFound()
    response = web.Response(body=found.body, content_type=found.content_type)
    secure(response)
    # The address names the content (its digest): a new logo is a new address, so this one never changes.
    response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
    response.headers["Cross-Origin-Resource-Policy"] = "same-origin"
    return response
