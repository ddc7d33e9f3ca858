"""Typed errors of the simulated issuer host.

No error text ever carries a full PAN or a CVV: card numbers are masked with
:func:`acquirer_sim.pan.mask_pan` before they reach a message.
"""

from __future__ import annotations

__all__ = ["RulesError", "SimError"]


class SimError(Exception):
    """Base of every error raised by the simulator."""


class RulesError(SimError, ValueError):
    """A rules file, card entry or fault rule is invalid (the operator's input)."""
