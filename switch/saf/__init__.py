"""Reversals of unknown outcomes: the 0400 at once, then store-and-forward (0420/0421) until a host answers.

When a 0100, 0200 or 0220 (or a merchant's 0400) times out or its link is
lost, nobody knows whether the host acted on it. :class:`Reversals` makes
that safe, in this order:

1. :meth:`Reversals.queue` writes a ``saf`` row (003_saf.sql) for the
   operation **before** its result is written: a crash after the row is
   durable leaves a pending reversal, a crash before it leaves a pending
   intent that recovery (below) turns into one. The row holds the
   original's identity as it went out (MTI, DE 11, DE 7, RRN, amount, DE 32,
   DE 41, DE 42, processing code) and the destination, never the PAN: DE 2
   is opened from the order's vault-sealed card when an advice is built.
2. :meth:`Reversals.reverse_soon` sends the 0400 in the background (the
   merchant does not wait for it). Any answer marks the row ``done``; no
   answer makes it due for the worker.
3. The worker (:mod:`.worker`, started by :meth:`Reversals.start`) sends
   due rows as 0420 then 0421 until a host answers, or leaves them ``manual``.
4. Recovery (:mod:`.recovery`, :meth:`Reversals.recover`, at start and then
   periodically) queues the reversal of what a stopped process left pending.

The order keeps status ``error`` and no ``reverse`` operation is added: the
orders model only reverses ``authorized`` orders, and GET views must not
change. The reversal's life is the ``saf`` row (``isoswitch saf list``); its
SQL is :mod:`switch.store.saf`.

Late responses (an 0110 arriving after its request timed out) reach
:class:`LateResponses` through the links' unmatched-message handler: logged
masked and counted, never applied.

Metrics (:mod:`switch.metrics`): ``isoswitch_reversals{mti}`` counts the
0400s and 0420/0421s sent here; :meth:`Reversals.counts` feeds the
``isoswitch_saf_*`` gauges when the REST front's ``/metrics`` is scraped.

Why a package of its own rather than part of ``switch.orders``: the orders
service uses it, it uses nothing of the orders (it reads their rows through
the store), and the runtime and the CLI use it directly.
"""

from switch.saf.config import SafConfig
from switch.saf.entry import REVERSIBLE, original_fields
from switch.saf.late import LateResponses
from switch.saf.queue import Reversals
from switch.saf.recovery import new_owner
from switch.store.saf import SafCounts, counts, list_entries

__all__ = [
    "REVERSIBLE",
    "LateResponses",
    "Reversals",
    "SafConfig",
    "SafCounts",
    "counts",
    "list_entries",
    "new_owner",
    "original_fields",
]
