"""acquirer_sim: a simulated ISO 8583 issuer host, independent of the switch.

It shares only ``schemas/`` and the codec/framing with the switch, so other
teams can point their own ISO 8583 client at it.

>>> from acquirer_sim import SimServer, SimConfig
>>> SimConfig(port=0).dialect
'ascii'
"""

from acquirer_sim.cli import main
from acquirer_sim.config import SimConfig
from acquirer_sim.errors import RulesError, SimError
from acquirer_sim.faults import FaultPlan
from acquirer_sim.issuer import Issuer
from acquirer_sim.ledger import CardAccount, Ledger, Record
from acquirer_sim.pan import mask_pan
from acquirer_sim.rules import CardRule, FaultRule, IssuerSettings, Rules, Secure3dRule, default_rules, load_rules
from acquirer_sim.server import SimServer, SimStats

__all__ = [
    "CardAccount",
    "CardRule",
    "FaultPlan",
    "FaultRule",
    "Issuer",
    "IssuerSettings",
    "Ledger",
    "Record",
    "Rules",
    "RulesError",
    "SimConfig",
    "SimError",
    "SimServer",
    "Secure3dRule",
    "SimStats",
    "default_rules",
    "load_rules",
    "main",
    "mask_pan",
]
