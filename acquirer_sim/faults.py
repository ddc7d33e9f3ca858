"""Fault injection: which request misbehaves, and how.

Actions, and whether the request is processed (affects the books):

========== ========= ==========================================================
action     processed what the peer sees
========== ========= ==========================================================
delay      yes       the normal answer, ``delay_ms`` later
garbage    yes       a properly framed reply of random bytes that are not ISO
no_reply   no        nothing (a lost request: no effect, nothing remembered)
close      no        the connection closes; answers already due are sent first
========== ========= ==========================================================

So a switch that times out on ``no_reply``/``close`` and reverses gets 25
(unknown original); one that times out on a long ``delay`` and reverses
finds the original and releases it.

>>> from acquirer_sim.rules import FaultRule
>>> plan = FaultPlan([FaultRule("no_reply", mti="0100", times=1)], seed=7)
>>> plan.pick({"t": "0100"}).action, plan.pick({"t": "0100"})
('no_reply', None)
"""

from __future__ import annotations

import random
from collections.abc import Iterable

from acquirer_sim.rules import FaultRule
from switch.wire.codec import Message

__all__ = ["FaultPlan"]


class FaultPlan:
    """The active fault rules with their remaining ``times`` and a seedable RNG."""

    __slots__ = ("_rules", "_left", "rng", "fired")

    def __init__(self, rules: Iterable[FaultRule] = (), *, seed: int | str | None = None) -> None:
        self.rng = random.Random(seed)
        self._rules: tuple[FaultRule, ...] = ()
        self._left: list[int | None] = []
        #: how many times a rule fired, over the plan's life
        self.fired = 0
        self.replace(rules)

    @property
    def rules(self) -> tuple[FaultRule, ...]:
        return self._rules

    def __bool__(self) -> bool:
        return bool(self._rules)

    def replace(self, rules: Iterable[FaultRule]) -> None:
        """Swap in a new rule list; ``times`` counters start afresh."""
        self._rules = tuple(rules)
        self._left = [r.times for r in self._rules]

    def pick(self, msg: Message) -> FaultRule | None:
        """The rule that fires for ``msg``, if any (first match wins)."""
        for i, rule in enumerate(self._rules):
            left = self._left[i]
            if left == 0:
                continue
            if rule.mti is not None and msg.get("t") != rule.mti:
                continue
            if rule.pan is not None and msg.get("2") != rule.pan:
                continue
            if rule.amount is not None:
                amount = msg.get("4")
                if amount is None or not amount.isdigit() or int(amount) != rule.amount:
                    continue
            if rule.rate < 1.0 and self.rng.random() >= rule.rate:
                continue
            if left is not None:
                self._left[i] = left - 1
            self.fired += 1
            return rule
        return None

    def garbage(self) -> bytes:
        """8..64 random bytes that no ISO 8583 decoder takes for a message.

        The first byte is outside ASCII, so not even an MTI can be read.
        """
        n = self.rng.randint(8, 64)
        return bytes([0xFF]) + self.rng.randbytes(n - 1)
