"""Gauges read at each flush: links' states and requests in flight, listener connections, samplers.

Nothing here is called on a hot path: the objects are watched (weakly
referenced) and read when :func:`switch.metrics.flush` runs. A series that
disappears (its link was collected) goes to 0 at the next flush.
"""

from __future__ import annotations

import enum
import weakref
from collections.abc import Callable, Iterable
from typing import Any, Protocol

__all__ = ["Sample", "add_sampler", "watch_link", "watch_listener"]


class _LinkLike(Protocol):
    @property
    def label(self) -> str: ...
    @property
    def destination(self) -> str: ...
    @property
    def state(self) -> enum.Enum: ...
    @property
    def in_flight(self) -> int: ...


class _ListenerStats(Protocol):
    @property
    def connections(self) -> int: ...


class _ListenerLike(Protocol):
    @property
    def stats(self) -> _ListenerStats: ...


#: (gauge name, label values, value): what a sampler gives at each flush.
Sample = tuple[str, tuple[str, ...], float]
_links: weakref.WeakSet[Any] = weakref.WeakSet()
_listeners: weakref.WeakSet[Any] = weakref.WeakSet()
_samplers: list[Callable[[], Iterable[Sample]]] = []


def watch_link(link: _LinkLike) -> None:
    """Export the link's state and requests in flight while it lives (weakly referenced)."""
    _links.add(link)


def watch_listener(listener: _ListenerLike) -> None:
    """Export the listener's open connections while it lives (weakly referenced)."""
    _listeners.add(listener)


def add_sampler(sampler: Callable[[], Iterable[Sample]]) -> None:
    """``sampler()`` gives (gauge name, label values, value) at each flush; values of one series add up."""
    _samplers.append(sampler)


def _link_samples() -> Iterable[Sample]:
    # Two links may share a name (a closed one not yet collected, and its successor): the live one counts.
    shown: dict[tuple[str, str], _LinkLike] = {}
    in_flight: dict[str, float] = {}
    for link in list(_links):
        key = (link.destination, link.label)
        other = shown.get(key)
        if other is None or (other.state.value == "closed" and link.state.value != "closed"):
            shown[key] = link
        in_flight[link.destination] = in_flight.get(link.destination, 0.0) + link.in_flight
    for (destination, label), link in shown.items():
        for state in type(link.state):
            yield "isoswitch_link_state", (destination, label, str(state.value)), float(state is link.state)
    for destination, n in in_flight.items():
        yield "isoswitch_iso_in_flight", (destination,), n


def _listener_samples() -> Iterable[Sample]:
    yield "isoswitch_listener_connections", (), float(sum(lst.stats.connections for lst in list(_listeners)))
