"""DE 11, the system trace audit number: one allocator per destination, node-partitioned, and the
STANs of a destination in flight or quarantined (shared by its links).

Order ids, RRNs and ARNs come from the database (``switch.store.ids``); the
STAN is the one identifier a link makes itself, because it only has to be
unique among the messages in flight to one host.
"""

from __future__ import annotations

import random
from collections.abc import Container

__all__ = ["StanAllocator", "StanSpace"]


class StanAllocator:
    """DE 11: 6 digits, 000001..999999, wrapping, never one in use.

    ``in_use`` holds the STANs in flight (or quarantined after a timeout),
    so a wrap never hands out a STAN that a pending or late response could
    still carry. With ``stride``/``offset`` a process only takes STANs
    congruent to ``offset`` modulo ``stride``: processes with different node
    ids (offsets) never send the same STAN to a host, even for one terminal.

    >>> a = StanAllocator(start=999998)
    >>> a.next(set()), a.next(set()), a.next({"000001"})
    ('999999', '000001', '000002')
    >>> b = StanAllocator(stride=10, offset=3)
    >>> b.next(set()), b.next({"000013"})
    ('000003', '000023')
    """

    __slots__ = ("_count", "_k", "_offset", "_stride")

    def __init__(self, start: int = 0, *, stride: int = 1, offset: int = 0) -> None:
        if stride < 1 or not 0 <= offset < stride:
            raise ValueError("STAN stride must be >= 1 and offset in 0..stride-1")
        self._stride = stride
        self._offset = offset
        self._count = (999_999 - offset) // stride + 1  # values offset + k*stride <= 999999
        # ``start`` is the STAN issued last: the next one follows it.
        self._k = ((start % 1_000_000 - offset) // stride) % self._count

    def next(self, in_use: Container[str]) -> str:
        k = self._k
        count = self._count
        for _ in range(count):
            k = (k + 1) % count
            n = self._offset + k * self._stride
            if n == 0:
                continue
            stan = f"{n:06d}"
            if stan not in in_use:
                self._k = k
                return stan
        raise RuntimeError("every STAN is in flight")


class StanSpace:
    """The STANs of one destination, shared by all its links.

    A host sees DE 41 + DE 11 + DE 7 as a transaction's identity; two links
    of one pool handing out the same STAN for one terminal in the same second
    would look to the host like a resend. So STANs are allocated per
    destination (and per node: ``node_id`` picks a residue class mod 10),
    not per link. Holds the in-flight set and the quarantine of STANs whose
    request timed out or was abandoned.
    """

    __slots__ = ("_alloc", "in_flight", "quarantine")

    def __init__(self, node_id: int = 0) -> None:
        self._alloc = StanAllocator(start=random.randrange(1_000_000), stride=10, offset=node_id % 10)
        self.in_flight: set[str] = set()
        self.quarantine: dict[str, float] = {}  # stan -> loop time it may be reused

    def __contains__(self, stan: object) -> bool:
        return stan in self.in_flight or stan in self.quarantine

    def next(self) -> str:
        return self._alloc.next(self)

    def expire(self, now: float) -> None:
        if self.quarantine:
            for stan in [s for s, until in self.quarantine.items() if until <= now]:
                del self.quarantine[stan]
