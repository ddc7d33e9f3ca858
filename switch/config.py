"""The switch's own sections of the configuration file as one typed object: ``[switch]``,
``[[destinations]]`` (the links, with their TLS), ``[routing]`` and ``[[routes]]``.

The file is read in one place, :func:`switch.settings.load_settings` (the file, then the
environment, then flags); :meth:`SwitchConfig.from_dict` builds this object from the
document it read (tests build one from a dict the same way).

>>> cfg = SwitchConfig.from_dict({"destinations": [{"name": "sim", "host": "127.0.0.1", "port": 8583}],
...                               "routing": {"default": "sim"}})
>>> cfg.destinations[0].name, cfg.destinations[0].link.port, cfg.default_route
('sim', 8583, 'sim')
"""

from __future__ import annotations

import dataclasses
import ssl
from dataclasses import dataclass
from typing import Any

from switch.link import LinkConfig, UnmatchedHandler
from switch.pool import Pool, Route, Router, RoutingTable
from switch.wire.dialect import DIALECTS
from switch.wire.framing import FRAMINGS
from switch.wire.tls import TlsError, client_context

__all__ = ["ConfigError", "DestinationConfig", "SwitchConfig", "TlsFileError"]

_LINK_KEYS = {f.name for f in dataclasses.fields(LinkConfig)} - {"host", "port", "name", "ssl"}
# Each link option's type is its default's: a wrong type must fail here, naming
# the key, not later inside a running link (TOML integers do for floats).
_LINK_TYPES = {f.name: type(f.default) for f in dataclasses.fields(LinkConfig) if f.name in _LINK_KEYS}
_SECTION_KEYS = {"switch": {"node_id"}, "routing": {"default", "test"}}
_ROUTE_KEYS = {"bins", "destination"}
# TLS of a destination's links (switch.wire.tls.client_context): ``tls = true`` turns it on;
# ``ca_file`` (default: the system's CAs), ``cert_file``/``key_file`` (mutual TLS) and
# ``server_hostname`` (default: ``host``) only apply then.
_TLS_KEYS = {"tls": bool, "ca_file": str, "cert_file": str, "key_file": str, "server_hostname": str}


class ConfigError(ValueError):
    """The configuration is wrong; the message says where (the file or the variable, the section, the key)."""


class TlsFileError(ConfigError):
    """A TLS certificate, key or CA file the configuration names is missing or unusable.

    The configuration may be right and the machine wrong, so the command line reports it as a
    failure to start (exit status 1) rather than as a usage error.
    """


@dataclass(frozen=True, slots=True)
class DestinationConfig:
    name: str
    link: LinkConfig
    links: int = 2


@dataclass(frozen=True, slots=True)
class SwitchConfig:
    node_id: int = 0
    destinations: tuple[DestinationConfig, ...] = ()
    routes: tuple[Route, ...] = ()
    default_route: str | None = None
    # [routing] test: where test-mode orders go (seeds/002 test_mode invoices, the pk_test_ public API).
    # None: nowhere (refused as unroutable): falling back to the default could send a test payment, made with
    # a key published in web pages, to a live acquirer.
    test_route: str | None = None

    @property
    def test_destination(self) -> str | None:
        """Where test-mode orders go: ``test_route`` (None: they are refused)."""
        return self.test_route

    @classmethod
    def from_dict(cls, doc: dict[str, Any], source: str = "config") -> SwitchConfig:
        for section, known in _SECTION_KEYS.items():
            unknown = set(doc.get(section, {})) - known
            if unknown:
                raise ConfigError(f"{source}: [{section}]: unknown keys {sorted(unknown)}")
        sw = doc.get("switch", {})
        node_id = sw.get("node_id", 0)
        if not isinstance(node_id, int) or not 0 <= node_id <= 9:
            raise ConfigError(f"{source}: switch.node_id must be 0..9")
        dests = []
        for i, d in enumerate(doc.get("destinations", [])):
            where = f"{source}: destinations[{i}]"
            d = dict(d)
            try:
                name, host, port = d.pop("name"), d.pop("host"), int(d.pop("port"))
            except KeyError as e:
                raise ConfigError(f"{where}: missing {e}") from None
            except (TypeError, ValueError):
                raise ConfigError(f"{where}: port must be an integer") from None
            if not 0 < port <= 65535:
                raise ConfigError(f"{where}: port must be 1..65535")
            try:
                count = int(d.pop("links", 2))
            except (TypeError, ValueError):
                raise ConfigError(f"{where}: links must be an integer") from None
            ssl_context = _tls_of(d, where)
            unknown = set(d) - _LINK_KEYS
            if unknown:
                raise ConfigError(f"{where}: unknown keys {sorted(unknown)}")
            for key, value in d.items():
                want = _LINK_TYPES[key]
                if isinstance(value, bool) != (want is bool) or not isinstance(
                    value, (int, float) if want is float else want
                ):
                    raise ConfigError(f"{where}: {key} must be {want.__name__}")
            if d.get("dialect", "ascii") not in DIALECTS:
                raise ConfigError(f"{where}: dialect must be one of {DIALECTS}")
            if d.get("framing", "binary2") not in FRAMINGS:
                raise ConfigError(f"{where}: framing must be one of {tuple(FRAMINGS)}")
            if count < 1:
                raise ConfigError(f"{where}: links must be at least 1")
            link = LinkConfig(host=host, port=port, name=name, ssl=ssl_context, **d)
            dests.append(DestinationConfig(name, link, count))
        names = {d.name for d in dests}
        if len(names) != len(dests):
            raise ConfigError(f"{source}: destination names must be unique")
        routes = []
        for i, r in enumerate(doc.get("routes", [])):
            where = f"{source}: routes[{i}]"
            unknown = set(r) - _ROUTE_KEYS
            if unknown:
                raise ConfigError(f"{where}: unknown keys {sorted(unknown)}")
            try:
                bins, dest = str(r["bins"]), r["destination"]
            except KeyError as e:
                raise ConfigError(f"{where}: missing {e}") from None
            low, _, high = bins.partition("-")
            try:
                routes.append(Route(dest, low.strip(), (high or low).strip()))
            except ValueError as e:
                raise ConfigError(f"{where}: {e}") from None
            if dest not in names:
                raise ConfigError(f"{where}: unknown destination {dest!r}")
        routing = doc.get("routing", {})
        default, test = routing.get("default"), routing.get("test")
        if default is not None and default not in names:
            raise ConfigError(f"{source}: routing.default names unknown destination {default!r}")
        if test is not None and test not in names:
            raise ConfigError(f"{source}: routing.test names unknown destination {test!r}")
        return cls(node_id, tuple(dests), tuple(routes), default, test)

    def with_target(self, host: str, port: int) -> SwitchConfig:
        """The same config with every destination pointed at ``host:port`` (for ``up`` and bench)."""
        dests = tuple(
            dataclasses.replace(d, link=dataclasses.replace(d.link, host=host, port=port)) for d in self.destinations
        )
        return dataclasses.replace(self, destinations=dests)

    def build_router(self, *, on_unmatched: UnmatchedHandler | None = None) -> Router:
        """Pools and routes; ``on_unmatched`` gets every link's late or unknown responses."""
        pools = [
            Pool.connect(d.name, d.link, d.links, node_id=self.node_id, on_unmatched=on_unmatched)
            for d in self.destinations
        ]
        return Router(pools, RoutingTable(self.routes, self.default_route, test=self.test_destination))


def _tls_of(d: dict[str, Any], where: str) -> ssl.SSLContext | None:
    """Pops the TLS keys of destination ``d``; the client context when ``tls = true``.

    Files are read now, so a missing or wrong certificate fails the start, naming the key.
    """
    opts = {k: d.pop(k) for k in _TLS_KEYS if k in d}
    for key, value in opts.items():
        if not isinstance(value, _TLS_KEYS[key]):
            raise ConfigError(f"{where}: {key} must be {_TLS_KEYS[key].__name__}")
    if not opts.pop("tls", False):
        if opts:
            raise ConfigError(f"{where}: {sorted(opts)} need tls = true")
        return None
    if "key_file" in opts and "cert_file" not in opts:
        raise ConfigError(f"{where}: key_file needs cert_file")
    try:
        return client_context(
            opts.get("ca_file"), opts.get("cert_file"), opts.get("key_file"), opts.get("server_hostname")
        )
    except TlsError as e:
        raise TlsFileError(f"{where}: {e}") from None
