"""The configuration of the composed system: the core's sections (:mod:`switch.settings`,
the one loader) plus the two that belong to parts outside the core, registered here:
``[http]`` (the REST front's :class:`~http_front.config.FrontConfig`) and ``[simulator]``
(how ``isoswitch up`` starts ``acquirer_sim`` beside the switch).

>>> s = load(env={})
>>> front(s).port, simulator(s).port, simulator(s).admin_port
(8080, 8583, 8584)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from http_front.config import FrontConfig
from http_front.shutdown import http_drain
from switch.settings import Section, Settings, TlsFileError, load_settings, shown
from switch.wire.tls import TlsError, server_context

__all__ = [
    "HTTP_SECTION",
    "SECTIONS",
    "SimulatorConfig",
    "SmtpSinkConfig",
    "check_front_tls",
    "front",
    "load",
    "show",
    "simulator",
    "smtp_sink",
]


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    """``[simulator]``: the issuer simulator that ``isoswitch up`` starts beside the switch."""

    port: int = 8583  # ISO 8583 port (the destinations are pointed at it)
    admin_port: int = 8584  # /ledger, /faults, /stats, /health, /metrics
    rules: Path | None = None  # TOML rules file (acquirer_sim/README.md); None: built-in


@dataclass(frozen=True, slots=True)
class SmtpSinkConfig:
    """``[smtp_sink]``: the local SMTP server ``isoswitch up`` starts (isoswitch/mailsink.py) and points
    ``[mail]`` at; mails are kept as .eml files in DATA_DIR/mail."""

    enabled: bool = True  # false: no sink; [mail] is used as written
    port: int = 8025  # on 127.0.0.1; 0: any free port (the banner shows it)


# The REST front's table: FrontConfig's fields, but for the data files shipped in schemas/.
HTTP_SECTION = Section(FrontConfig, skip=frozenset({"schemas_dir", "exchange_rates_path", "metrics"}))
SIMULATOR_SECTION = Section(SimulatorConfig)

#: Every section beyond the core's, for :func:`switch.settings.load_settings` and ``shown``.
SECTIONS: dict[str, Section] = {
    "http": HTTP_SECTION,
    "simulator": SIMULATOR_SECTION,
    "smtp_sink": Section(SmtpSinkConfig),
}


def load(
    path: str | Path | None = None,
    *,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """The file (``path``, else ``$ISOSWITCH_CONFIG``, else the shipped one), the environment, then ``overrides``."""
    return load_settings(path, env=env, overrides=overrides, sections=SECTIONS)


def front(settings: Settings) -> FrontConfig:
    """``[http]``, with ``[metrics] enabled`` and its drain capped inside the shutdown deadline."""
    cfg: FrontConfig = settings.sections["http"]
    drain = http_drain(settings.process.shutdown_timeout, cfg.shutdown_timeout)
    return dataclasses.replace(cfg, metrics=settings.metrics.enabled, shutdown_timeout=drain)


def simulator(settings: Settings) -> SimulatorConfig:
    sim: SimulatorConfig = settings.sections["simulator"]
    return sim


def smtp_sink(settings: Settings) -> SmtpSinkConfig:
    sink: SmtpSinkConfig = settings.sections["smtp_sink"]
    return sink


def check_front_tls(settings: Settings) -> None:
    """Read ``[http]``'s certificate, key and CA now, so that a bad file fails before anything starts
    (the front reads them again when it listens), as ``[iso_listener]``'s are when loading."""
    cfg = front(settings)
    if cfg.tls_cert is None:
        return
    try:
        server_context(cfg.tls_cert, cfg.tls_key, cfg.tls_client_ca)
    except TlsError as e:
        raise TlsFileError(f"{settings.source}: [http] {e}") from None


def show(settings: Settings) -> str:
    """The effective configuration as TOML, secrets hidden."""
    import tomli_w

    head = f"# effective configuration from {settings.source}, the environment and flags; secrets hidden\n"
    return head + tomli_w.dumps(shown(settings, SECTIONS))
