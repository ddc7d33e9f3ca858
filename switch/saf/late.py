"""Late responses: what the links' unmatched-message handler does with a response nobody waits for."""

from __future__ import annotations

import logging

from switch.wire.cards import loggable
from switch.wire.codec import Message
from switch.wire.messages import is_response

__all__ = ["LateResponses"]

log = logging.getLogger("isoswitch.saf")


class LateResponses:
    """The links' unmatched-message handler: a response nobody waits for is logged (masked) and counted."""

    __slots__ = ("count", "other")

    def __init__(self) -> None:
        self.count = 0  # late responses to financial requests (0110, 0210, 0230, 0410, 0430)
        self.other = 0  # anything else unmatched (late 0810s, host-initiated requests)

    def __call__(self, msg: Message) -> None:
        mti = msg.get("t", "")
        if is_response(mti) and not mti.startswith("08"):
            self.count += 1
            # Never applied: its request timed out, so its operation is error and being reversed.
            log.warning("late response ignored", extra={"late_message": loggable(msg)})
        else:
            self.other += 1
            log.info("unmatched message", extra={"unmatched_message": loggable(msg)})
