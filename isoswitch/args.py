"""Options shared by several commands, and how flags become settings.

A flag overrides one key of one section (:data:`FLAGS`); every flag defaults to None (not
given), so the file and the environment keep theirs. Values common to every command
(``HOST:PORT``, a time, a log level) are parsed by :mod:`switch.process`, one function each.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from switch.process import hostport, log_level

if TYPE_CHECKING:
    from switch.settings import Settings

__all__ = [
    "FLAGS",
    "add_config",
    "add_core",
    "add_database",
    "add_listener",
    "add_serving",
    "add_target",
    "child_env",
    "overrides",
    "settings",
]

# (section, key) of the setting each flag overrides.
FLAGS: dict[str, tuple[str, str]] = {
    "host": ("http", "host"),
    "http_port": ("http", "port"),
    "data_dir": ("database", "data_dir"),
    "log_level": ("logging", "level"),
    "log_format": ("logging", "format"),
    "tls_cert": ("http", "tls_cert"),
    "tls_key": ("http", "tls_key"),
    "tls_client_ca": ("http", "tls_client_ca"),
    "rate_limit": ("http", "rate_limit"),
    "rate_burst": ("http", "rate_burst"),
    "auth_failure_rate": ("http", "auth_failure_rate"),
    "auth_failure_burst": ("http", "auth_failure_burst"),
    "iso_port": ("iso_listener", "port"),
    "iso_host": ("iso_listener", "host"),
    "iso_dialect": ("iso_listener", "dialect"),
    "iso_framing": ("iso_listener", "framing"),
    "iso_tls_cert": ("iso_listener", "tls_cert"),
    "iso_tls_key": ("iso_listener", "tls_key"),
    "iso_tls_client_ca": ("iso_listener", "tls_client_ca"),
    "workers": ("process", "workers"),
    "sim_port": ("simulator", "port"),
    "sim_admin_port": ("simulator", "admin_port"),
    "rules": ("simulator", "rules"),
    "smtp_sink_port": ("smtp_sink", "port"),
    "node_id": ("switch", "node_id"),
}


def add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config", metavar="FILE", help="TOML config (default: $ISOSWITCH_CONFIG, else schemas/config/default.toml)"
    )


def _add_log_level(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--log-level",
        type=log_level,
        metavar="LEVEL",
        help="[logging] level: debug, info, warning, error, critical (any case)",
    )


def add_database(p: argparse.ArgumentParser) -> None:
    """Options of a command that opens the database: ``[database]`` of the config, DATABASE_URL, ``--data-dir``."""
    add_config(p)
    p.add_argument("--data-dir", type=Path, help="embedded PostgreSQL location (unless DATABASE_URL)")


def add_target(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", type=hostport, metavar="HOST:PORT", help="point every destination at HOST:PORT")


def add_serving(p: argparse.ArgumentParser) -> None:
    """Options of every process that runs the switch and the REST front (each overrides the config file)."""
    add_config(p)
    p.add_argument("--host", help="address to listen on: [http] host and [iso_listener] host (and the simulator's)")
    p.add_argument("--http-port", type=int, help="REST front port [http] port (default 8080)")
    p.add_argument("--data-dir", type=Path, help="embedded PostgreSQL and generated keys (default .data)")
    p.add_argument("--no-access-log", action="store_true", help="no access-log line per request")
    _add_log_level(p)
    p.add_argument("--log-format", choices=("json", "text"), help="[logging] format (default json)")
    p.add_argument("--tls-cert", type=Path, help="PEM certificate (chain): serve the REST API over HTTPS")
    p.add_argument("--tls-key", type=Path, help="PEM private key of --tls-cert (if not in the same file)")
    p.add_argument("--tls-client-ca", type=Path, help="PEM CA: require client certificates signed by it")
    p.add_argument("--rate-limit", type=float, help="requests/s per project and worker; 0 = off (default 1000)")
    p.add_argument("--rate-burst", type=int, help="burst per project (default 2000)")
    p.add_argument("--auth-failure-rate", type=float, help="failed logins/s per client address (default 5)")
    p.add_argument("--auth-failure-burst", type=int)
    add_listener(p, host_help="another address for the ISO listener than --host")
    p.add_argument("--iso-dialect", choices=("ascii", "binary-bitmap"))
    p.add_argument("--iso-framing", choices=("binary2", "ascii4"))
    p.add_argument("--iso-tls-cert", type=Path, help="PEM certificate (chain): the ISO listener speaks TLS")
    p.add_argument("--iso-tls-key", type=Path, help="PEM private key of --iso-tls-cert (if not in the same file)")
    p.add_argument("--iso-tls-client-ca", type=Path, help="PEM CA: ISO peers must present certificates signed by it")


def add_listener(p: argparse.ArgumentParser, host_help: str) -> None:
    p.add_argument("--iso-port", type=int, help="also accept ISO 8583 from acquirer hosts/terminals on this port")
    p.add_argument("--iso-host", help=host_help)


def add_core(p: argparse.ArgumentParser) -> None:
    """Options of ``isoswitch switch``: the core alone (no REST front)."""
    add_config(p)
    add_target(p)
    add_listener(p, host_help="address of the ISO listener [iso_listener] host")
    p.add_argument("--data-dir", type=Path, help="embedded PostgreSQL and generated keys (default .data)")
    p.add_argument("--node-id", type=int, help="0..9, overrides the config's")
    _add_log_level(p)


def overrides(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The settings the flags in ``args`` override, by section."""
    out: dict[str, dict[str, Any]] = {}
    for flag, (section, key) in FLAGS.items():
        value = getattr(args, flag, None)
        if value is not None:
            out.setdefault(section, {})[key] = value
    if getattr(args, "no_access_log", False):
        out.setdefault("http", {})["access_log"] = False
    if getattr(args, "iso_port", None) is not None:
        out.setdefault("iso_listener", {})["enabled"] = True
    if getattr(args, "host", None) is not None and getattr(args, "iso_host", None) is None:
        # A flag like any other: `--host` is where this process listens, REST and ISO alike.
        out.setdefault("iso_listener", {})["host"] = args.host
    return out


def settings(args: argparse.Namespace) -> Settings:
    """The effective configuration of ``args``: ``--config``'s file, the environment, then the flags.

    Raises :class:`~switch.settings.ConfigError` naming the file or variable, section and key.
    """
    from isoswitch import config

    return config.load(args.config, overrides=overrides(args))


def child_env(flags: dict[str, dict[str, Any]]) -> dict[str, str]:
    """The environment with the flags' overrides as ``ISOSWITCH_<SECTION>__<KEY>`` variables, for workers."""
    from switch.settings import ENV_PREFIX

    env = dict(os.environ)
    for section, values in flags.items():
        for key, value in values.items():
            text = ("true" if value else "false") if isinstance(value, bool) else str(value)
            env[f"{ENV_PREFIX}{section.upper()}__{key.upper()}"] = text
    return env
