"""RRNs for the bench's own ISO traffic (direct to the simulator, and the bare path).

The switch's RRNs come from the database (``switch.store.ids``); the bench
talks to the simulator without a database, so it makes its own, with the
node digit 9 that no switch node uses by default.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["RrnGenerator"]


class RrnGenerator:
    """DE 37 retrieval reference number: ``YDDDHH`` + node digit + 5-digit sequence.

    The hour prefix comes from the clock (UTC). The sequence starts each hour
    at a value derived from the time within the hour, so a restarted process
    continues past what it issued before rather than from zero.

    Capacity: 100,000 RRNs per node per hour in this format; beyond that the
    sequence wraps within the hour (the store-backed allocator of the REST
    issue leases blocks instead).

    >>> g = RrnGenerator(node_id=3, clock=lambda: 1_700_000_000.0)
    >>> g.next()
    '331822321600'
    >>> len(g.next())
    12
    """

    __slots__ = ("_clock", "_hour", "_hour_no", "_node", "_seq")

    def __init__(self, node_id: int = 0, clock: Callable[[], float] = time.time) -> None:
        if not 0 <= node_id <= 9:
            raise ValueError("RRN node id must be 0..9")
        self._node = node_id
        self._clock = clock
        self._hour_no = -1
        self._hour = ""
        self._seq = 0

    def next(self) -> str:
        now = self._clock()
        hour_no = int(now // 3600)
        if hour_no != self._hour_no:
            # gmtime and formatting once an hour, not once an RRN.
            t = time.gmtime(now)
            self._hour_no = hour_no
            self._hour = f"{t.tm_year % 10}{t.tm_yday:03d}{t.tm_hour:02d}"
            # 27 RRNs a second of the hour before the counter meets the clock.
            self._seq = int((now % 3600) * 27) % 100_000
        hour = self._hour
        seq = self._seq
        self._seq = (seq + 1) % 100_000
        return f"{hour}{self._node}{seq:05d}"
