"""Identifiers, each made in one place: STAN, RRN, order id, ARN, Luhn.

Uniqueness between processes comes from the node id, which every generator
puts in a fixed place of the identifier: two processes configured with
different node ids never collide. (Leasing sequence blocks from the database
replaces the process-local counters once the store exists.)

>>> luhn_ok("4111111111111111"), luhn_ok("4111111111111112")
(True, False)
>>> luhn_digit("411111111111111")
'1'
"""

from __future__ import annotations

import time
from collections.abc import Callable, Container

__all__ = [
    "StanAllocator",
    "RrnGenerator",
    "OrderIdGenerator",
    "ArnGenerator",
    "luhn_ok",
    "luhn_digit",
    "MAX_NODE_ID",
]

# Node ids take two decimal digits in order ids and ARNs, one in RRNs.
MAX_NODE_ID = 99


def luhn_digit(payload: str) -> str:
    """The Luhn check digit that makes ``payload + digit`` valid."""
    total = 0
    for i, ch in enumerate(reversed(payload)):
        d = ord(ch) - 48
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def luhn_ok(number: str) -> bool:
    """True when ``number`` is all ASCII digits (``str.isdigit`` alone admits "٤" and "²") and passes the Luhn check."""
    if not (number.isascii() and number.isdigit()) or len(number) < 2:
        return False
    return luhn_digit(number[:-1]) == number[-1]


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


class OrderIdGenerator:
    """17-digit order id: milliseconds since the epoch (13) + node (2) + sequence (2).

    A logical clock: when more than 100 ids are taken within a millisecond,
    or the wall clock steps back, the millisecond part runs ahead, so ids
    from one process are strictly increasing and never repeat.

    >>> g = OrderIdGenerator(node_id=7, clock=lambda: 1_700_000_000.0)
    >>> g.next(), g.next()
    ('17000000000000700', '17000000000000701')
    """

    __slots__ = ("_node", "_clock", "_ms", "_seq")

    def __init__(self, node_id: int = 0, clock: Callable[[], float] = time.time) -> None:
        if not 0 <= node_id <= MAX_NODE_ID:
            raise ValueError(f"node id must be 0..{MAX_NODE_ID}")
        self._node = node_id
        self._clock = clock
        self._ms = 0
        self._seq = 0

    def next(self) -> str:
        ms = int(self._clock() * 1000)
        if ms > self._ms:
            self._ms, self._seq = ms, 0
        elif self._seq >= 99:
            self._ms, self._seq = self._ms + 1, 0
        else:
            self._seq += 1
        return f"{self._ms:013d}{self._node:02d}{self._seq:02d}"


class ArnGenerator:
    """23-digit acquirer reference number with a Luhn check digit.

    Layout: format digit (1) + acquirer BIN (6) + Julian date ``YDDD`` (4) +
    node (2) + sequence (9) + check digit (1). The sequence is a logical
    clock in units of 1/10,000 s of the day, so a restart continues after
    what was issued (unless more than 10,000 ARNs a second were sustained).

    >>> g = ArnGenerator("412345", node_id=1, clock=lambda: 1_700_000_000.0)
    >>> arn = g.next(); len(arn), luhn_ok(arn), arn[:11]
    (23, True, '74123453318')
    """

    __slots__ = ("_prefix", "_node", "_clock", "_day", "_seq")

    def __init__(
        self,
        acquirer_bin: str,
        node_id: int = 0,
        clock: Callable[[], float] = time.time,
        format_digit: str = "7",
    ) -> None:
        if len(acquirer_bin) != 6 or not acquirer_bin.isdigit():
            raise ValueError("acquirer BIN must be 6 digits")
        if not 0 <= node_id <= MAX_NODE_ID:
            raise ValueError(f"node id must be 0..{MAX_NODE_ID}")
        self._prefix = format_digit + acquirer_bin
        self._node = node_id
        self._clock = clock
        self._day = ""
        self._seq = 0

    def next(self) -> str:
        now = self._clock()
        t = time.gmtime(now)
        day = f"{t.tm_year % 10}{t.tm_yday:03d}"
        floor = int((now % 86400) * 10_000)
        if day != self._day:
            self._day, self._seq = day, floor
        else:
            self._seq = max(self._seq + 1, floor)
        payload = f"{self._prefix}{day}{self._node:02d}{self._seq % 1_000_000_000:09d}"
        return payload + luhn_digit(payload)
