"""The effective configuration: one TOML file, then environment overrides, then flags.

Every process of isoswitch reads the same file (``--config``, else
``$ISOSWITCH_CONFIG``, else ``schemas/config/default.toml``, which lists every
option with its default). An environment variable ``ISOSWITCH_<SECTION>__<KEY>``
overrides one key of a table section (``ISOSWITCH_HTTP__PORT=9000``), and
``DATABASE_URL`` sets ``[database] url``. Command-line flags win over both.

This module is the one loader: it alone reads the file. Sections of packages outside
the core are registered by whoever composes them (``sections=``): the ``isoswitch``
command registers the REST front's ``[http]`` and the ``[simulator]`` that ``isoswitch
up`` starts, so the core knows neither.

Each section is built into the frozen dataclass its subsystem already uses
(``[database]`` → :class:`~switch.store.DbConfig`, ``[saf]`` →
:class:`~switch.saf.SafConfig`, …): the dataclass holds the defaults,
the file documents them, and ``tests/test_settings.py`` checks the two agree.

>>> s = load_settings(env={})
>>> s.switch.node_id, s.database.data_dir, s.saf.max_attempts, s.process.workers
(0, PosixPath('.data'), 50, 1)
>>> load_settings(env={"ISOSWITCH_SAF__MAX_ATTEMPTS": "7"}).saf.max_attempts
7
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from schemas import SCHEMAS_DIR
from switch.config import ConfigError, SwitchConfig, TlsFileError
from switch.invoices.expiry import ExpiryConfig
from switch.listener import ListenerConfig
from switch.mail.config import MailConfig
from switch.notify.config import TelegramConfig
from switch.orders.autocapture import AutoCaptureConfig
from switch.orders.pages import PagesConfig
from switch.portal.service import PortalConfig
from switch.runtime import RuntimeConfig
from switch.saf import SafConfig
from switch.secure3d.config import Secure3DConfig
from switch.store.db import DbConfig, redact_dsn
from switch.webhooks.config import WebhookConfig
from switch.wire.tls import TlsError, server_context

__all__ = [
    "DEFAULT_CONFIG",
    "ENV_PREFIX",
    "SECTIONS",
    "ConfigError",
    "LogConfig",
    "MetricsConfig",
    "ProcessConfig",
    "Section",
    "Settings",
    "TlsFileError",
    "config_path",
    "load_settings",
    "shown",
]

DEFAULT_CONFIG = SCHEMAS_DIR / "config" / "default.toml"
ENV_PREFIX = "ISOSWITCH_"
HIDDEN = "<hidden>"


@dataclass(frozen=True, slots=True)
class LogConfig:
    """``[logging]``: one JSON object per line on stderr, card data masked."""

    level: str = "info"  # debug | info | warning | error, for every isoswitch logger
    format: str = "json"  # json (one object per line) | text (for a terminal)
    levels: Mapping[str, str] = field(default_factory=dict)  # per logger, e.g. {"isoswitch.link" = "debug"}

    def __post_init__(self) -> None:
        for name, level in {"level": self.level, **self.levels}.items():
            if level.lower() not in ("debug", "info", "warning", "error", "critical"):
                raise ValueError(f"{name}: unknown level {level!r}")
        if self.format not in ("json", "text"):
            raise ValueError("format must be json or text")


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    """``[metrics]``: Prometheus text at ``/metrics`` on the REST port."""

    enabled: bool = True
    # Worker processes write their samples here so that one scrape sees them all;
    # None: DATA_DIR/metrics. Emptied at each start. Only used with workers > 1.
    multiprocess_dir: Path | None = None


@dataclass(frozen=True, slots=True)
class ProcessConfig:
    """``[process]``: how many processes serve, and how long they get to stop."""

    workers: int = 1  # processes sharing the HTTP and ISO ports (SO_REUSEPORT), one node id each
    shutdown_timeout: float = 25.0  # seconds from SIGTERM to exit: drain, sign off, flush, close

    def __post_init__(self) -> None:
        if not 1 <= self.workers <= 9:
            raise ValueError("workers must be 1..9 (each takes a node id)")
        if self.shutdown_timeout < 2:
            raise ValueError("shutdown_timeout must be at least 2 s (a drain and a close)")


@dataclass(frozen=True, slots=True)
class Section:
    """How one ``[name]`` table becomes a config object.

    ``skip``: fields that are not options (built from others, or test hooks).
    ``extra``: options of the table that are not fields of ``cls`` (with defaults);
    they land in :attr:`Settings.extras` under ``"name.key"``.
    """

    cls: type
    skip: frozenset[str] = frozenset()
    extra: Mapping[str, Any] = field(default_factory=dict)
    secret: frozenset[str] = frozenset()  # values ``config show`` hides


SECTIONS: dict[str, Section] = {
    "database": Section(DbConfig, skip=frozenset({"migrations_dir"}), secret=frozenset({"url"})),
    "runtime": Section(
        RuntimeConfig,
        skip=frozenset(
            {
                "db",
                "switch",
                "node_id",
                "saf",
                "env",
                "listener",
                "pages",
                "webhooks",
                "mail",
                "portal",
                "invoice_expiry",
                "telegram",
                "autocapture",
            }
        ),
    ),
    "saf": Section(SafConfig),
    "pages": Section(PagesConfig),
    "webhooks": Section(WebhookConfig),
    "mail": Section(MailConfig, secret=frozenset({"password"})),
    "portal": Section(PortalConfig),
    "invoice_expiry": Section(ExpiryConfig),
    "telegram": Section(TelegramConfig, secret=frozenset({"token"})),
    "autocapture": Section(AutoCaptureConfig),
    "iso_listener": Section(
        ListenerConfig,
        skip=frozenset({"ssl"}),
        extra={"enabled": False, "tls_cert": None, "tls_key": None, "tls_client_ca": None},
        secret=frozenset({"peers"}),
    ),
    "logging": Section(LogConfig),
    "metrics": Section(MetricsConfig),
    "process": Section(ProcessConfig),
    "secure3d": Section(Secure3DConfig),
}
"""The core's table sections besides the switch's own (``[switch]``, ``[[destinations]]``,
``[routing]``, ``[[routes]]``: :class:`~switch.config.SwitchConfig`). The ``isoswitch``
command adds ``[http]`` and ``[simulator]`` (``isoswitch.config``): ``switch/`` imports neither."""

_SWITCH_SECTIONS = ("switch", "destinations", "routing", "routes")
# The switch's table sections the environment may set too (the arrays, destinations and routes, it may not).
_ENV_SWITCH_SECTIONS = ("switch", "routing")
# Sections other packages build (they pass them in ``sections``): one file serves every process,
# so a reader that does not build them (a test, a tool) accepts them without looking inside.
_FOREIGN_SECTIONS = ("http", "simulator", "smtp_sink")


@dataclass(frozen=True, slots=True)
class Settings:
    """The effective configuration; ``doc`` is the merged TOML document it was built from."""

    source: str
    doc: Mapping[str, Any]
    switch: SwitchConfig
    database: DbConfig
    runtime: RuntimeConfig  # with database, saf and (when enabled) the listener filled in
    saf: SafConfig
    listener: ListenerConfig | None  # None: [iso_listener] enabled = false
    logging: LogConfig
    metrics: MetricsConfig
    process: ProcessConfig
    secure3d: Secure3DConfig
    extras: Mapping[str, Any]  # "section.key" -> value, of the sections' ``extra`` options
    sections: Mapping[str, Any]  # every table section's object, the registered extra ones included


def config_path(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Path:
    """``path``, else ``$ISOSWITCH_CONFIG``, else the shipped default file."""
    env = os.environ if env is None else env
    if path:
        return Path(path)
    if env.get(ENV_PREFIX + "CONFIG"):
        return Path(env[ENV_PREFIX + "CONFIG"])
    return DEFAULT_CONFIG


def load_settings(
    path: str | Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    sections: Mapping[str, Section] | None = None,
) -> Settings:
    """The configuration from the file, the environment and ``overrides`` (flags), in that order.

    ``sections`` adds table sections beyond :data:`SECTIONS` (the front's ``[http]``, ``[simulator]``).
    Raises :class:`ConfigError` naming the file or the variable, the section and the key
    (:class:`TlsFileError` when a TLS file it names cannot be used).
    """
    env = os.environ if env is None else env
    src = config_path(path, env)
    try:
        with open(src, "rb") as f:
            doc: dict[str, Any] = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{src}: {e}") from None
    known = {**SECTIONS, **(sections or {})}
    unknown = set(doc) - set(known) - set(_SWITCH_SECTIONS) - set(_FOREIGN_SECTIONS)
    if unknown:
        raise ConfigError(f"{src}: unknown sections {sorted(unknown)}")
    # Where each value not from the file came from, for error messages.
    origin: dict[tuple[str, str], str] = {}
    if env.get("DATABASE_URL"):
        doc.setdefault("database", {})["url"] = env["DATABASE_URL"]
        origin["database", "url"] = "DATABASE_URL"
    # ISOSWITCH_DATABASE__URL comes after DATABASE_URL (sorted: the more specific name wins).
    for name, value in sorted(env.items()):
        if name.startswith(ENV_PREFIX) and "__" in name:
            section, _, key = name.removeprefix(ENV_PREFIX).lower().partition("__")
            if section not in known and section not in _ENV_SWITCH_SECTIONS + _FOREIGN_SECTIONS:
                raise ConfigError(f"{name}: unknown section [{section}]")
            if value == "" and section in _ENV_SWITCH_SECTIONS:
                doc.get(section, {}).pop(key, None)  # their keys are all optional: empty unsets
                continue
            doc.setdefault(section, {})[key] = value
            origin[section, key] = name
    for section, values in (overrides or {}).items():
        for key, value in values.items():
            if value is not None:
                doc.setdefault(section, {})[key] = value
                origin[section, key] = f"the flag for [{section}] {key}"
    if isinstance(doc.get("switch", {}).get("node_id"), str):
        where = origin.get(("switch", "node_id"), "[switch] node_id")
        doc["switch"]["node_id"] = _coerce(doc["switch"]["node_id"], int, where)
    from_env = sorted(name for (section, _), name in origin.items() if section in _ENV_SWITCH_SECTIONS)
    switch = SwitchConfig.from_dict(doc, source=f"{src} with {', '.join(from_env)}" if from_env else str(src))
    built: dict[str, Any] = {}
    extras: dict[str, Any] = {}
    for name, sec in known.items():
        obj, extra = _build(name, sec, doc.get(name, {}), str(src), origin)
        built[name] = obj
        extras.update({f"{name}.{k}": v for k, v in extra.items()})
    listener = _listener(built["iso_listener"], extras, str(src)) if extras["iso_listener.enabled"] else None
    runtime = dataclasses.replace(
        built["runtime"],
        db=built["database"],
        saf=built["saf"],
        switch=switch,
        listener=listener,
        webhooks=built["webhooks"],
        mail=built["mail"],
        pages=built["pages"],
        portal=built["portal"],
        invoice_expiry=built["invoice_expiry"],
        telegram=built["telegram"],
        autocapture=built["autocapture"],
    )
    return Settings(
        source=str(src),
        doc=doc,
        switch=switch,
        database=built["database"],
        runtime=runtime,
        saf=built["saf"],
        listener=listener,
        logging=built["logging"],
        metrics=built["metrics"],
        process=built["process"],
        secure3d=built["secure3d"],
        extras=extras,
        sections=built,
    )


def shown(settings: Settings, sections: Mapping[str, Section] | None = None) -> dict[str, Any]:
    """The effective configuration as a TOML-able document, secrets hidden, every default filled in."""
    known = {**SECTIONS, **(sections or {})}
    out: dict[str, Any] = {"switch": {"node_id": settings.switch.node_id}}
    for name in sorted(known):
        sec = known[name]
        table: dict[str, Any] = {}
        obj = settings.sections[name]
        values = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj) if f.name not in sec.skip}
        values.update({k: settings.extras[f"{name}.{k}"] for k in sec.extra})
        for key, value in values.items():
            if value is None:
                continue  # TOML has no null: an unset optional is left out
            if key in sec.secret:
                value = _hide(name, key, value)
            table[key] = _plain(value)
        out[name] = table
    out["destinations"] = [_destination(d) for d in settings.switch.destinations]
    routing = {"default": settings.switch.default_route, "test": settings.switch.test_route}
    if any(v is not None for v in routing.values()):
        out["routing"] = {k: v for k, v in routing.items() if v is not None}
    if settings.switch.routes:
        out["routes"] = [
            {"bins": r.low if r.low == r.high else f"{r.low}-{r.high}", "destination": r.destination}
            for r in settings.switch.routes
        ]
    return out


def _listener(cfg: ListenerConfig, extras: Mapping[str, Any], src: str) -> ListenerConfig:
    """The listener with its TLS context, read now so that a bad file fails the start."""
    cert, key, ca = (extras[f"iso_listener.{k}"] for k in ("tls_cert", "tls_key", "tls_client_ca"))
    if cert is None:
        if key is not None or ca is not None:
            raise ConfigError(f"{src}: [iso_listener] tls_key and tls_client_ca need tls_cert")
        return cfg
    try:
        return dataclasses.replace(cfg, ssl=server_context(cert, key, ca))
    except TlsError as e:
        raise TlsFileError(f"{src}: [iso_listener] {e}") from None


def _destination(d: Any) -> dict[str, Any]:
    link = d.link
    table = {"name": d.name, "host": link.host, "port": link.port, "links": d.links}
    for f in dataclasses.fields(link):
        if f.name not in ("name", "host", "port", "ssl"):
            table[f.name] = _plain(getattr(link, f.name))
    table["tls"] = link.ssl is not None
    return table


def _hide(section: str, key: str, value: Any) -> Any:
    if section == "database" and key == "url":
        return redact_dsn(str(value))
    if isinstance(value, Mapping):
        return dict.fromkeys(value, HIDDEN)
    return HIDDEN


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def _build(
    name: str, sec: Section, table: Any, src: str, origin: Mapping[tuple[str, str], str]
) -> tuple[Any, dict[str, Any]]:
    where = f"{src}: [{name}]"
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where} must be a table")
    hints = typing.get_type_hints(sec.cls)
    fields = {f.name: hints[f.name] for f in dataclasses.fields(sec.cls) if f.name not in sec.skip}
    unknown = set(table) - set(fields) - set(sec.extra)
    if unknown:
        named = sorted(origin.get((name, k), k) for k in unknown)
        raise ConfigError(f"{where}: unknown keys {named}")

    def at(key: str) -> str:
        came = origin.get((name, key))
        return f"{came} ([{name}] {key})" if came is not None else f"{where} {key}"

    kwargs = {k: _coerce(v, fields[k], at(k)) for k, v in table.items() if k in fields}
    extra = dict(sec.extra)
    for key, default in sec.extra.items():
        if key in table:
            want = type(default) if default is not None else Path | None
            extra[key] = _coerce(table[key], want, at(key))
    try:
        return sec.cls(**kwargs), extra
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: {e}") from None


_BOOLS = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False, "off": False}


def _coerce(value: Any, want: Any, where: str) -> Any:
    """``value`` (from TOML, or a string from the environment) as type ``want``, or ConfigError."""
    args = typing.get_args(want)
    if isinstance(want, types.UnionType) or typing.get_origin(want) is typing.Union:
        if value == "" or value is None:
            return None  # an empty environment value unsets an optional
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], where)
    origin = typing.get_origin(want)
    if origin is not None and issubclass(origin, Mapping):
        if isinstance(value, str):
            try:
                value = tomllib.loads(f"v = {value}")["v"]
            except tomllib.TOMLDecodeError:
                raise ConfigError(f"{where} must be an inline table") from None
        if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values()):
            raise ConfigError(f"{where} must be a table of strings")
        return dict(value)
    parse: dict[Any, Callable[[Any], Any]] = {bool: _bool, int: _int, float: _float, str: _str, Path: _path}
    try:
        return parse[want](value)
    except (TypeError, ValueError, KeyError):
        if isinstance(value, str) and not value.strip():
            raise ConfigError(f"{where} must not be empty") from None
        name = getattr(want, "__name__", str(want))
        article = "an" if name == "int" else "a"
        raise ConfigError(
            f"{where} must be {article} {'finite ' if want is float else ''}{name}, got {value!r}"
        ) from None


def _bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if not isinstance(v, str):
        raise TypeError  # 1 is not a boolean in TOML either
    return _BOOLS[v.strip().lower()]


def _int(v: Any) -> int:
    if isinstance(v, bool) or isinstance(v, float):
        raise TypeError
    return int(v)


def _float(v: Any) -> float:
    if isinstance(v, bool):
        raise TypeError
    f = float(v)
    if not math.isfinite(f):
        raise ValueError  # nan passes every `<= 0` check
    return f


def _str(v: Any) -> str:
    if not isinstance(v, str):
        raise TypeError
    if not v.strip():
        # An empty host binds every interface, an empty path is the working directory:
        # a `${VAR}` that expanded to nothing must not mean either.
        raise ValueError
    return v


def _path(v: Any) -> Path:
    return v if isinstance(v, Path) else Path(_str(v))
