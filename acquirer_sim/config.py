"""The simulator's one config object, built once (from the CLI or a test)."""

from __future__ import annotations

from dataclasses import dataclass, field

from acquirer_sim.rules import Rules, default_rules
from switch.wire.dialect import DIALECTS
from switch.wire.framing import FRAMINGS

__all__ = ["SimConfig"]


@dataclass(frozen=True, slots=True)
class SimConfig:
    """Where the simulator listens, what it speaks and which rules it follows."""

    #: ISO 8583 listener address; port 0 picks a free port (see ``SimServer.start``).
    host: str = "127.0.0.1"
    port: int = 8583
    #: Field encoding: ``ascii`` or ``binary-bitmap`` (``schemas/iso8583``).
    dialect: str = "ascii"
    #: Length header: ``binary2`` (2-byte binary) or ``ascii4`` (4 ASCII digits).
    framing: str = "binary2"
    #: Admin HTTP API (``/ledger``, ``/faults``, ...); None = not started, 0 = free port.
    admin_port: int | None = None
    #: Admin address; None = the listener's ``host``.
    admin_host: str | None = None
    #: Card, issuer and fault rules; default = ``default_rules.toml``.
    rules: Rules = field(default_factory=default_rules)
    #: Answered requests remembered for repeats, captures and reversals. About
    #: 0.8 kB each, so the default caps the books near 400 MB; at 30,000
    #: requests/s that is ~17 s of history, at test rates all of it.
    max_records: int = 500_000
    #: Seed of the fault-rate and auth-code RNGs; None = unpredictable.
    seed: int | None = None
    #: Listen backlog of the ISO 8583 socket.
    backlog: int = 1024
    #: PEM private key (P-256) the simulated ACS signs PaRes/ARes/RReq/CRes with; None = an ephemeral key
    #: made at start (its public key: ``GET /ds/public-key`` on the admin port).
    acs_key: str | None = None
    #: Base URL browsers reach the admin port (the ACS) at; None = the scheme and Host of each DS request.
    acs_url: str | None = None
    #: The simulated wallet (``POST /wallet/token`` on the admin API): its signing key (private PEM) and
    #: the gateway's public key it encrypts for; both or neither (:mod:`acquirer_sim.wallet`).
    wallet_signing_key: str | None = None
    wallet_merchant_key: str | None = None

    def __post_init__(self) -> None:
        if self.dialect not in DIALECTS:
            raise ValueError(f"unknown dialect {self.dialect!r}; known: {', '.join(DIALECTS)}")
        if self.framing not in FRAMINGS:
            raise ValueError(f"unknown framing {self.framing!r}; known: {', '.join(FRAMINGS)}")
        for name, port in (("port", self.port), ("admin_port", self.admin_port)):
            if port is not None and not 0 <= port <= 65535:
                raise ValueError(f"{name} must be 0..65535")
        if self.max_records < 1:
            raise ValueError("max_records must be >= 1")
        if (self.wallet_signing_key is None) != (self.wallet_merchant_key is None):
            raise ValueError("the wallet needs both --wallet-signing-key and --wallet-merchant-key")
