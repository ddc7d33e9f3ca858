"""``page``/``page_size`` of the list endpoints and the links header to neighbour pages.

seeds/003, "Paged downloads": page 1 and the default size when absent; the
response's header links the previous and the next page, only the next on
the first page; a bad ``page`` or ``page_size`` is a 422 with the message
"Invalid page" / "Invalid page size".

The seed names the header "Pagination" and writes its value in the form of
RFC 8288's ``Link``; clients that follow links generically read ``Link``.
Both carry the same value.

>>> from yarl import URL
>>> value = links(URL("http://mybox.localhost/orders/?foo=bar&page=2&page_size=2"), page=2, page_size=2, total=5)
>>> for part in value.split(", "):
...     print(part)
<http://mybox.localhost/orders/?foo=bar&page_size=2&page=1>; rel="prev"
<http://mybox.localhost/orders/?foo=bar&page_size=2&page=3>; rel="next"
>>> links(URL("http://h/orders/"), page=1, page_size=50, total=10) is None
True
"""

from __future__ import annotations

from collections.abc import Mapping

from yarl import URL

from http_front.failures import FieldError, ValidationFailed
from http_front.orders.query import MAX_PAGE_SIZE

__all__ = ["LINK_HEADERS", "check_paging", "links"]

LINK_HEADERS = ("Link", "Pagination")
# The service takes any 9-digit page; so does this check.
_MAX_PAGE = 999_999_999


def _positive(raw: str | None, most: int) -> int | None:
    if raw is None or raw == "":
        return None
    s = raw.strip()
    if not (s.isascii() and s.isdigit()) or len(s) > 9:
        return 0
    n = int(s)
    return n if 1 <= n <= most else 0


def check_paging(query: Mapping[str, str]) -> None:
    """``ValidationFailed`` naming every bad one of ``page`` and ``page_size``.

    The orders service reads them (default page 1 of ``DEFAULT_PAGE_SIZE``
    rows, at most ``MAX_PAGE_SIZE``); checking here first gives the seed's
    message in the failure *and* in ``errors``, and both problems at once.
    """
    errors = []
    if _positive(query.get("page"), _MAX_PAGE) == 0:
        errors.append(FieldError("#/page", "Invalid page"))
    if _positive(query.get("page_size"), MAX_PAGE_SIZE) == 0:
        errors.append(FieldError("#/page_size", "Invalid page size"))
    if errors:
        raise ValidationFailed(errors, errors[0].message)


def _url(base: URL, page: int, page_size: int) -> str:
    keep = [(k, v) for k, v in base.query.items() if k not in ("page", "page_size")]
    return str(base.with_query([*keep, ("page_size", str(page_size)), ("page", str(page))]))


def links(url: URL, *, page: int, page_size: int, total: int) -> str | None:
    """The header value linking the pages before and after ``page``, or None when there is neither."""
    parts = []
    last = max(1, -(-total // page_size))
    if page > 1:
        # Past the end, "prev" leads back to the last page that has rows.
        parts.append(f'<{_url(url, min(page - 1, last), page_size)}>; rel="prev"')
    if page * page_size < total:
        parts.append(f'<{_url(url, page + 1, page_size)}>; rel="next"')
    return ", ".join(parts) or None
