"""switch.config, the switch's sections as read by the one loader (switch.settings): the shipped
default.toml, errors that say where, with_target, build_router."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any

import pytest

from switch.config import ConfigError, DestinationConfig, SwitchConfig
from switch.errors import NoRoute
from switch.link import LinkConfig
from switch.pool import Route
from switch.settings import DEFAULT_CONFIG, load_settings

pytestmark = pytest.mark.timeout(10)


def doc(**dest: Any) -> dict[str, Any]:
    """A minimal valid config document; ``dest`` adds to (or, as None, removes from) its destination."""
    d: dict[str, Any] = {"name": "visa", "host": "10.0.0.1", "port": 9000}
    d.update(dest)
    return {
        "switch": {"node_id": 1},
        "destinations": [{k: v for k, v in d.items() if v is not None}],
        "routing": {"default": "visa"},
    }


def load_switch(path: Path | None = None) -> SwitchConfig:
    """The switch's sections of a file, through the one loader (no environment)."""
    return load_settings(path, env={}).switch


def config_error(document: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as err:
        SwitchConfig.from_dict(document, source="test.toml")
    return str(err.value)


# -- the shipped file ---------------------------------------------------------


def test_default_toml_loads_into_one_sim_destination_with_default_route() -> None:
    cfg = load_switch()
    assert cfg.node_id == 0
    assert cfg.routes == ()
    assert cfg.default_route == "sim"
    (dest,) = cfg.destinations
    assert dest.name == "sim" and dest.links == 2
    assert (dest.link.host, dest.link.port, dest.link.name) == ("127.0.0.1", 8583, "sim")
    assert load_switch(DEFAULT_CONFIG) == cfg


def test_every_link_option_in_default_toml_shows_the_real_default() -> None:
    # The file promises "Every key below shows its default": hold it to that.
    with open(DEFAULT_CONFIG, "rb") as f:
        (shown,) = tomllib.load(f)["destinations"]
    defaults = LinkConfig("h", 1)
    for key, value in shown.items():
        if key in ("name", "host", "port"):
            continue
        if key == "links":
            assert value == DestinationConfig("x", defaults).links
        else:
            assert value == getattr(defaults, key), key


def test_a_valid_document_builds_typed_destinations_and_routes() -> None:
    document = doc(links=3, dialect="binary-bitmap", framing="ascii4", timeout=2, echo_interval=0.0, sign_on=False)
    document["destinations"].append({"name": "amex", "host": "10.0.0.2", "port": 9001})
    document["routes"] = [{"bins": "400000-499999", "destination": "visa"}, {"bins": "34", "destination": "amex"}]
    cfg = SwitchConfig.from_dict(document)
    visa, amex = cfg.destinations
    assert visa.links == 3 and amex.links == 2
    assert visa.link == LinkConfig(
        "10.0.0.1", 9000, name="visa", dialect="binary-bitmap", framing="ascii4", timeout=2, echo_interval=0.0,
        sign_on=False,
    )  # fmt: skip
    assert cfg.routes == (Route("visa", "400000", "499999"), Route("amex", "34", "34"))
    assert cfg.node_id == 1 and cfg.default_route == "visa"


def test_load_reads_a_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "switch.toml"
    path.write_text(
        '[switch]\nnode_id = 2\n\n[[destinations]]\nname = "visa"\nhost = "127.0.0.1"\nport = 9000\n\n'
        '[[routes]]\nbins = "4"\ndestination = "visa"\n'
    )
    cfg = load_switch(path)
    assert cfg.node_id == 2
    assert cfg.routes == (Route("visa", "4", "4"),)
    assert cfg.default_route is None


# -- errors name where ----------------------------------------------------------


def test_unknown_key_in_a_destination_is_an_error_naming_it() -> None:
    msg = config_error(doc(timout=5.0))
    assert "test.toml" in msg and "destinations[0]" in msg and "timout" in msg


@pytest.mark.parametrize(
    ("section", "key"),
    [("switch", "node"), ("routing", "defualt")],
)
def test_unknown_key_in_switch_or_routing_is_an_error_naming_it(section: str, key: str) -> None:
    document = doc()
    document[section][key] = 1
    msg = config_error(document)
    assert f"[{section}]" in msg and key in msg


def test_unknown_key_in_a_route_is_an_error_naming_it() -> None:
    document = doc()
    document["routes"] = [{"bins": "4", "destination": "visa"}, {"bins": "5", "destination": "visa", "prio": 1}]
    msg = config_error(document)
    assert "routes[1]" in msg and "prio" in msg


def test_bad_dialect_or_framing_is_an_error_naming_the_destination() -> None:
    msg = config_error(doc(dialect="ebcdic"))
    assert "destinations[0]" in msg and "dialect" in msg and "ascii" in msg
    msg = config_error(doc(framing="ascii2"))
    assert "destinations[0]" in msg and "framing" in msg


def test_route_to_an_unknown_destination_is_an_error_naming_the_route() -> None:
    document = doc()
    document["routes"] = [{"bins": "4", "destination": "visa"}, {"bins": "34-37", "destination": "amex"}]
    msg = config_error(document)
    assert "routes[1]" in msg and "amex" in msg


def test_default_route_to_an_unknown_destination_is_an_error() -> None:
    document = doc()
    document["routing"]["default"] = "sim"
    msg = config_error(document)
    assert "routing.default" in msg and "sim" in msg


def test_without_a_test_route_test_mode_is_refused_never_sent_to_the_default_and_a_route_may_name_one() -> None:
    document = doc()
    document["destinations"].append({"name": "amex", "host": "10.0.0.2", "port": 9001})
    cfg = SwitchConfig.from_dict(document)
    assert (cfg.test_route, cfg.test_destination) == (None, None)
    with pytest.raises(NoRoute):
        cfg.build_router().pool_for("4111111111111111", test_mode=True)
    document["routing"]["test"] = "amex"
    cfg = SwitchConfig.from_dict(document)
    assert (cfg.test_route, cfg.test_destination) == ("amex", "amex")
    router = cfg.build_router()
    assert router.pool_for("4111111111111111").name == "visa"
    assert router.pool_for("4111111111111111", test_mode=True).name == "amex"


def test_test_route_to_an_unknown_destination_is_an_error() -> None:
    document = doc()
    document["routing"]["test"] = "sandbox"
    msg = config_error(document)
    assert "routing.test" in msg and "sandbox" in msg


@pytest.mark.parametrize("bins", ["abc", "45-4", "4-45", "", "4-x"])
def test_malformed_bins_are_an_error_naming_the_route(bins: str) -> None:
    document = doc()
    document["routes"] = [{"bins": bins, "destination": "visa"}]
    assert "routes[0]" in config_error(document)


@pytest.mark.parametrize("missing", ["bins", "destination"])
def test_route_missing_a_key_is_an_error_naming_it(missing: str) -> None:
    document = doc()
    route = {"bins": "4", "destination": "visa"}
    del route[missing]
    document["routes"] = [route]
    msg = config_error(document)
    assert "routes[0]" in msg and missing in msg


@pytest.mark.parametrize("missing", ["name", "host", "port"])
def test_destination_missing_a_key_is_an_error_naming_it(missing: str) -> None:
    msg = config_error(doc(**{missing: None}))
    assert "destinations[0]" in msg and missing in msg


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"port": "http"}, "port"),
        ({"port": 0}, "port"),
        ({"port": 70000}, "port"),
        ({"links": "two"}, "links"),
        ({"links": 0}, "links"),
        ({"timeout": "5s"}, "timeout"),
        ({"echo_interval": True}, "echo_interval"),
        ({"max_in_flight": 10.5}, "max_in_flight"),
        ({"sign_on": "yes"}, "sign_on"),
        ({"dialect": 1}, "dialect"),
    ],
)
def test_a_wrongly_typed_destination_value_is_an_error_naming_it(fields: dict[str, Any], named: str) -> None:
    # Caught at load time, not as a TypeError inside a running link.
    msg = config_error(doc(**fields))
    assert "destinations[0]" in msg and named in msg


def test_duplicate_destination_names_are_an_error() -> None:
    document = doc()
    document["destinations"].append(dict(document["destinations"][0]))
    assert "unique" in config_error(document)


@pytest.mark.parametrize("node_id", [-1, 10, "1"])
def test_node_id_outside_0_to_9_is_an_error(node_id: object) -> None:
    document = doc()
    document["switch"]["node_id"] = node_id
    assert "switch.node_id" in config_error(document)


def test_unreadable_or_invalid_files_are_errors_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml"):
        load_switch(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[switch\nnode_id = 1\n")
    with pytest.raises(ConfigError, match=r"bad\.toml"):
        load_switch(bad)


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError)


# -- with_target and build_router ----------------------------------------------


def test_with_target_points_every_destination_at_one_host_and_keeps_the_rest() -> None:
    document = doc(timeout=1.5, links=3)
    document["destinations"].append({"name": "amex", "host": "10.0.0.2", "port": 9001, "framing": "ascii4"})
    document["routes"] = [{"bins": "34", "destination": "amex"}]
    cfg = SwitchConfig.from_dict(document)
    moved = cfg.with_target("127.0.0.1", 40123)
    assert [(d.link.host, d.link.port) for d in moved.destinations] == [("127.0.0.1", 40123)] * 2
    for before, after in zip(cfg.destinations, moved.destinations, strict=True):
        assert dataclasses.replace(after.link, host=before.link.host, port=before.link.port) == before.link
        assert (after.name, after.links) == (before.name, before.links)
    assert (moved.routes, moved.default_route, moved.node_id) == (cfg.routes, cfg.default_route, cfg.node_id)
    assert cfg.destinations[0].link.host == "10.0.0.1"  # the original is unchanged


def test_build_router_makes_one_pool_per_destination_with_its_links_and_routes() -> None:
    document = doc(links=3)
    document["destinations"].append({"name": "amex", "host": "10.0.0.2", "port": 9001, "links": 1})
    document["routes"] = [{"bins": "34", "destination": "amex"}, {"bins": "37", "destination": "amex"}]
    router = SwitchConfig.from_dict(document).build_router()
    assert {name: [link.label for link in p.links] for name, p in router.pools.items()} == {
        "visa": ["visa#0", "visa#1", "visa#2"],
        "amex": ["amex#0"],
    }
    assert router.pool_for("371449635398431").name == "amex"
    assert router.pool_for("4111111111111111").name == "visa"
    assert all(link.config.port == 9001 for link in router.pools["amex"].links)
