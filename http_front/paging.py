"""The links header of the list endpoints to neighbour pages (``page``/``page_size`` are read by
:func:`http_front.orders.query.page_of`).

seeds/003, "Paged downloads": the response's header links the previous and
the next page, only the next on the first page.

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

from yarl import URL

__all__ = ["LINK_HEADERS", "links"]

LINK_HEADERS = ("Link", "Pagination")


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
