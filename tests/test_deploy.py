"""The container files agree with the code: Dockerfile, .dockerignore, docker-compose.yml, deploy/.

There is no Docker engine in CI, so these tests parse the files (YAML, JSON,
TOML, the Dockerfile as text) and check that services, commands, ports,
health checks, volumes, scrape targets and the Grafana dashboard line up with
the code: the CLI's parsers, the effective settings (``isoswitch serve`` run
up to its ``load_settings`` call with the container's file and environment),
FrontConfig's and SimulatorConfig's defaults, the PAN vault's variables, and
the metric names and labels ``switch.metrics`` and the simulator export.
"""

from __future__ import annotations

import argparse
import base64
import functools
import importlib
import json
import re
import shlex
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

pytestmark = pytest.mark.timeout(30)

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
DEPLOY = ROOT / "deploy"
SWITCH_TOML = DEPLOY / "isoswitch.toml"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"
GRAFANA_DATASOURCES = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
GRAFANA_PROVIDERS = DEPLOY / "grafana" / "provisioning" / "dashboards" / "isoswitch.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "isoswitch.json"

SERVICES = {"postgres", "acquirer-sim", "isoswitch", "prometheus", "grafana"}
#: One-shot services: run to completion before the others start (no health check, never restarted).
INIT_SERVICES = {"keys"}
PYTHON_IMAGE = "python:3.11-slim"

# -- reading the files -------------------------------------------------------------

_VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def interpolate(text: str, env: dict[str, str] | None = None) -> str:
    """Compose's variable substitution, ``${VAR:-default}`` and friends, with ``env`` (default: none set)."""
    env = env or {}

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name, op, arg = m.group(1) or m.group(4), m.group(2), m.group(3) or ""
        value = env.get(name)
        if op == ":-":
            return value or arg
        if op == "-":
            return arg if value is None else value
        if op in (":?", "?"):
            if not value:
                raise AssertionError(f"${{{name}}} is required: {arg}")
            return value
        if op in (":+", "+"):
            return arg if value else ""
        return value or ""

    return _VARIABLE.sub(sub, text)


def _interpolated(node: Any) -> Any:
    if isinstance(node, str):
        return interpolate(node)
    if isinstance(node, list):
        return [_interpolated(v) for v in node]
    if isinstance(node, dict):
        return {k: _interpolated(v) for k, v in node.items()}
    return node


@functools.cache
def compose() -> dict[str, Any]:
    """docker-compose.yml as compose sees it with no variables set (YAML merge keys resolved)."""
    doc = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(doc, dict), "docker-compose.yml is not a mapping"
    result: dict[str, Any] = _interpolated(doc)
    return result


def service(name: str) -> dict[str, Any]:
    svc: dict[str, Any] = compose()["services"][name]
    return svc


def command(name: str) -> list[str]:
    cmd = service(name)["command"]
    return shlex.split(cmd) if isinstance(cmd, str) else [str(a) for a in cmd]


def _port_entries(svc: dict[str, Any]) -> Iterator[tuple[str | None, int]]:
    """(published host port or None, container port) of ``ports`` and ``expose``."""
    for entry in svc.get("ports", []):
        if isinstance(entry, dict):
            yield (str(entry["published"]) if "published" in entry else None), int(entry["target"])
            continue
        spec = str(entry).split("/")[0]
        parts = spec.rsplit(":", 2)
        yield (parts[-2] if len(parts) > 1 else None), int(parts[-1])
    for entry in svc.get("expose", []):
        yield None, int(str(entry).split("/")[0])


def container_ports(name: str) -> set[int]:
    return {port for _, port in _port_entries(service(name))}


def mounts(name: str) -> list[tuple[str, str, bool]]:
    """(source, target, read-only) of a service's volumes, short or long syntax."""
    out = []
    for entry in service(name).get("volumes", []):
        if isinstance(entry, dict):
            out.append((str(entry.get("source", "")), str(entry["target"]), bool(entry.get("read_only"))))
            continue
        parts = str(entry).split(":")
        options = parts[2].split(",") if len(parts) > 2 else []
        out.append((parts[0], parts[1], "ro" in options))
    return out


def is_bind(source: str) -> bool:
    return source.startswith(("./", "../", "/", "~"))


def mount_source(name: str, target: str) -> tuple[str, bool]:
    """The source mounted at ``target`` in service ``name`` and whether it is read-only."""
    for source, tgt, ro in mounts(name):
        if tgt.rstrip("/") == target.rstrip("/"):
            return source, ro
    raise AssertionError(f"service {name}: nothing is mounted at {target}")


def health_test(name: str) -> list[str]:
    test = service(name)["healthcheck"]["test"]
    return ["CMD-SHELL", test] if isinstance(test, str) else [str(t) for t in test]


def health_urls(name: str) -> list[tuple[str, int, str]]:
    """(host, port, path) of every http:// URL in a service's health check."""
    out = []
    for url in re.findall(r"https?://[^\s'\"]+", " ".join(health_test(name))):
        parts = urlsplit(url)
        assert parts.hostname is not None and parts.port is not None, f"{name}: health URL {url} needs host:port"
        out.append((parts.hostname, parts.port, parts.path))
    return out


def builds_from_dockerfile(name: str) -> bool:
    build = service(name).get("build")
    if build is None:
        return False
    context, dockerfile = (build, "Dockerfile") if isinstance(build, str) else (build["context"], build["dockerfile"])
    return (ROOT / context).resolve() == ROOT and (ROOT / context / dockerfile).resolve() == DOCKERFILE


def own_image_services() -> set[str]:
    return {name for name in compose()["services"] if builds_from_dockerfile(name)}


class _Captured(Exception):
    def __init__(self, value: Any) -> None:
        super().__init__()
        self.value = value


@functools.cache
def isoswitch_parser(subcommand: str) -> argparse.ArgumentParser:
    """The real argparse parser of ``isoswitch SUBCOMMAND`` (from the one command tree, nothing runs)."""
    from isoswitch.cli import command_parser

    return command_parser(subcommand)


def serve_args() -> argparse.Namespace:
    cmd = command("isoswitch")
    assert cmd[:2] == ["isoswitch", "serve"], f"the isoswitch service must run `isoswitch serve`, not {cmd}"
    return isoswitch_parser("serve").parse_args(cmd[2:])


def sim_args() -> argparse.Namespace:
    cmd = command("acquirer-sim")
    assert cmd[:2] == ["isoswitch", "sim"], f"the acquirer-sim service must run `isoswitch sim`, not {cmd}"
    return isoswitch_parser("sim").parse_args(cmd[2:])


def image_env() -> dict[str, str]:
    """The ENV of the Dockerfile's final stage (``$VAR`` references left as they are)."""
    env: dict[str, str] = {}
    for instr, rest in dockerfile_stages()[-1][2]:
        if instr == "ENV":
            for word in shlex.split(rest):
                key, _, value = word.partition("=")
                env[key] = value
    return env


def container_env(name: str | None) -> dict[str, str]:
    """What a process of service ``name`` sees: the image's ENV, then the compose ``environment``.

    ``name`` None: a bare ``docker run`` of the image.
    """
    if name is None:
        return image_env()
    env = image_env() if builds_from_dockerfile(name) else {}
    extra = service(name).get("environment", {})
    if isinstance(extra, list):
        extra = dict(e.split("=", 1) for e in extra)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def host_path(name: str | None, container_path: str) -> Path:
    """The repository file behind ``container_path`` of service ``name``: a bind mount, else a COPY."""
    for source, target, _ in mounts(name) if name is not None else []:
        if target == container_path and is_bind(source):
            return (ROOT / source).resolve()
    for flags, sources, dest in copy_instructions():
        if not flags and dest == container_path and len(sources) == 1:
            return (ROOT / sources[0]).resolve()
    raise AssertionError(f"{name or 'image'}: {container_path} is neither mounted nor copied into the image")


def effective_settings(name: str | None, argv: list[str]) -> tuple[str, Any]:
    """(config path in the container, effective Settings) of ``isoswitch ARGV`` in service ``name``
    (None: in a bare ``docker run`` of the image).

    The real CLI runs up to its ``load_settings`` call (nothing starts), which
    reads the repository copy of the container's config file with the
    container's environment.
    """
    from isoswitch import config
    from isoswitch.cli import main
    from switch import settings as settings_mod
    from switch.settings import ConfigError

    env = container_env(name)

    def load(path: str | Path | None = None, **kwargs: Any) -> Any:
        kwargs["env"] = env
        inside = str(settings_mod.config_path(path, env))
        try:
            loaded = settings_mod.load_settings(host_path(name, inside), **kwargs)
        except ConfigError as e:  # the CLI would end with this line and exit status 2
            raise AssertionError(f"{name or 'image'}: isoswitch would not start: {e}") from None
        raise _Captured((inside, loaded))

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(config, "load_settings", load)
        try:
            main(argv)
        except _Captured as c:
            result: tuple[str, Any] = c.value
            return result
    raise AssertionError(f"isoswitch {' '.join(argv)} did not load its settings through load_settings")


@functools.cache
def serve_settings() -> tuple[str, Any]:
    return effective_settings("isoswitch", command("isoswitch")[1:])


# -- Dockerfile ---------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out, buf = [], ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not buf):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        word, _, rest = buf.partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    assert not buf, "Dockerfile ends inside a continued line"
    return out


def dockerfile_stages() -> list[tuple[str, str | None, list[tuple[str, str]]]]:
    """(resolved base image, stage name, instructions) per FROM; global ARG defaults substituted."""
    args: dict[str, str] = {}
    stages: list[tuple[str, str | None, list[tuple[str, str]]]] = []
    for instr, rest in dockerfile_instructions():
        if instr == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name.strip()] = default.strip()
        elif instr == "FROM":
            words = [w for w in rest.split() if not w.startswith("--")]
            image = interpolate(words[0], args)
            stage = words[2] if len(words) > 2 and words[1].upper() == "AS" else None
            stages.append((image, stage, []))
        else:
            assert stages, f"{instr} before FROM"
            stages[-1][2].append((instr, rest))
    assert stages, "Dockerfile has no FROM"
    return stages


def _words(rest: str) -> list[str]:
    return list(json.loads(rest)) if rest.startswith("[") else rest.split()


def copy_instructions() -> list[tuple[list[str], list[str], str]]:
    """(flags, sources, destination) of every COPY/ADD."""
    out = []
    for _, _, instructions in dockerfile_stages():
        for instr, rest in instructions:
            if instr in ("COPY", "ADD"):
                words = _words(rest)
                flags = [w for w in words if w.startswith("--")]
                paths = [w for w in words if not w.startswith("--")]
                out.append((flags, paths[:-1], paths[-1]))
    return out


@functools.cache
def _dockerignore_patterns() -> list[tuple[bool, re.Pattern[str]]]:
    patterns = []
    for raw in DOCKERIGNORE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!").strip().strip("/")
        regex, i = "", 0
        while i < len(pattern):
            c = pattern[i]
            if pattern.startswith("**/", i):
                regex, i = regex + "(?:.*/)?", i + 3
                continue
            if pattern.startswith("**", i):
                regex, i = regex + ".*", i + 2
                continue
            if c == "*":
                regex += "[^/]*"
            elif c == "?":
                regex += "[^/]"
            elif c == "[":
                end = pattern.index("]", i)
                regex, i = regex + pattern[i : end + 1], end + 1
                continue
            else:
                regex += re.escape(c)
            i += 1
        patterns.append((negate, re.compile(regex + r"\Z")))
    return patterns


def in_build_context(path: str) -> bool:
    """Whether .dockerignore leaves ``path`` (relative, /-separated) in the context: Docker's rules,
    a pattern matches the path or one of its parent directories and the last matching pattern wins."""
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for negate, regex in _dockerignore_patterns():
        if any(regex.match(p) for p in prefixes):
            excluded = not negate
    return not excluded


# -- PromQL ----------------------------------------------------------------------------

PROMQL_FUNCTIONS = {
    "abs", "absent", "absent_over_time", "avg", "avg_over_time", "bottomk", "ceil", "changes", "clamp",
    "clamp_max", "clamp_min", "count", "count_over_time", "count_values", "delta", "deriv", "exp", "floor",
    "group", "histogram_avg", "histogram_count", "histogram_quantile", "histogram_sum", "idelta", "increase",
    "irate", "label_join", "label_replace", "last_over_time", "ln", "log10", "log2", "max", "max_over_time",
    "min", "min_over_time", "predict_linear", "quantile", "quantile_over_time", "rate", "resets", "round",
    "scalar", "sgn", "sort", "sort_desc", "sqrt", "stddev", "stdvar", "sum", "sum_over_time", "time",
    "timestamp", "topk", "vector",
}  # fmt: skip
PROMQL_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless"}
PROMQL_GROUPING = r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)"
#: Series Prometheus adds to every scrape.
BUILTIN_METRICS = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
#: prometheus_client's standard process collector (both processes export it in single-process mode).
PROCESS_METRICS = {
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_virtual_memory_bytes",
    "process_virtual_memory_max_bytes",
    "process_open_fds",
    "process_max_fds",
    "process_start_time_seconds",
}
SWITCH_PREFIX, SIM_PREFIX = "isoswitch_", "acquirer_sim_"
SUFFIXES = ("_total", "_bucket", "_sum", "_count", "_created")


def promql_identifiers(expr: str) -> tuple[set[str], set[str]]:
    """(functions called, metric names) of a PromQL expression with Grafana variables."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values
    e = re.sub(r"\$\{?\w+\}?", "", e)  # $__rate_interval, ${destination}
    e = re.sub(r"\{[^}]*\}", "", e)  # label matchers
    e = re.sub(r"\[[^\]]*\]", "", e)  # range selectors
    e = re.sub(PROMQL_GROUPING, "", e)  # label lists
    functions, metrics = set(), set()
    for m in re.finditer(r"(?<![\w.])[A-Za-z_:][A-Za-z0-9_:]*", e):
        word = m.group(0)
        if e[m.end() :].lstrip().startswith("("):
            functions.add(word)
        elif word not in PROMQL_KEYWORDS:
            metrics.add(word)
    return functions, metrics


def base_name(metric: str) -> str:
    """A metric family's name: without the sample suffix of a counter or histogram."""
    for suffix in SUFFIXES:
        if metric.endswith(suffix):
            return metric[: -len(suffix)]
    return metric


def candidates(metric: str) -> set[str]:
    return {metric} | {metric[: -len(s)] for s in SUFFIXES if metric.endswith(s)}


@functools.cache
def dashboard() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return doc


def dashboard_panels() -> list[dict[str, Any]]:
    out = []
    for panel in dashboard()["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))  # collapsed rows keep their panels inside
    return out


def dashboard_exprs() -> list[str]:
    return [t["expr"] for p in dashboard_panels() for t in p.get("targets", []) if "expr" in t]


def dashboard_metrics() -> set[str]:
    names = set()
    for expr in dashboard_exprs():
        names |= promql_identifiers(expr)[1]
    for var in dashboard().get("templating", {}).get("list", []):
        query = var.get("query")
        text = query.get("query", "") if isinstance(query, dict) else str(query or "")
        names |= set(re.findall(r"label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)\s*,", text))
    return names


def exported_metric_names(module: str) -> set[str] | None:
    """``module.METRIC_NAMES``, or None while that module (or the name) does not exist yet."""
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name != module:
            raise  # the module exists and one of its own imports is missing: a real error
        return None
    names = getattr(mod, "METRIC_NAMES", None)
    return None if names is None else {str(n) for n in names}


def datasource_uid() -> str:
    doc = yaml.safe_load(GRAFANA_DATASOURCES.read_text())
    (ds,) = [d for d in doc["datasources"] if d["type"] == "prometheus"]
    return str(ds["uid"])


def seconds(duration: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)", duration)
    assert m, f"not a duration: {duration!r}"
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m.group(2)]


# == docker-compose.yml ================================================================


def test_compose_has_the_five_services_the_keys_step_and_every_variable_has_a_default() -> None:
    assert set(compose()["services"]) == SERVICES | INIT_SERVICES
    raw = COMPOSE.read_text()
    for line in raw.splitlines():
        if line.lstrip().startswith("#"):
            continue
        for m in _VARIABLE.finditer(line):
            if m.group(0) != "$$":
                assert m.group(2) in (":-", "-"), f"{m.group(0)} has no default: `docker compose up` needs a .env"


def test_every_service_has_a_health_check_and_none_needs_curl() -> None:
    for name in SERVICES:
        check = service(name).get("healthcheck")
        assert check and not check.get("disable"), f"{name} has no health check"
        test = health_test(name)
        assert test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, f"{name}: bad healthcheck test {test}"
        assert "curl" not in " ".join(test), f"{name}: its image has no curl"
        for key in ("interval", "timeout", "start_period"):
            if key in check:
                seconds(check[key])
        assert seconds(check["timeout"]) < seconds(check["interval"]), name
        for host, port, _ in health_urls(name):
            assert host in ("127.0.0.1", "localhost"), f"{name}: a health check probes its own container"
            assert port in container_ports(name), f"{name}: health check port {port} is not one it listens on"


def test_own_image_health_checks_are_python_urllib_on_health() -> None:
    _, settings = serve_settings()
    ports = {"isoswitch": settings.sections["http"].port, "acquirer-sim": sim_args().admin_port}
    assert own_image_services() - INIT_SERVICES == set(ports)
    for name, port in ports.items():
        test = health_test(name)
        assert test[:3] == ["CMD", "python", "-c"] and len(test) == 4, f"{name}: use `python -c` with urllib"
        code = test[3]
        compile(code, f"<{name} healthcheck>", "exec")
        assert "urllib.request" in code and "timeout=" in code
        assert health_urls(name) == [("127.0.0.1", port, "/health")]


def test_isoswitch_service_serves_on_the_fronts_default_port_beyond_loopback() -> None:
    from http_front.config import FrontConfig

    _, settings = serve_settings()
    front = settings.sections["http"]
    assert front.port == FrontConfig().port == 8080, "REST port: compose and FrontConfig's default disagree"
    assert front.host == "0.0.0.0", "inside a container the front must listen beyond loopback"
    assert front.tls_cert is None, "plain HTTP inside the compose network (health check and scrape use http)"
    assert settings.metrics.enabled, "Prometheus scrapes /metrics"
    listener = settings.listener
    assert listener is not None and listener.host == "0.0.0.0"
    assert container_ports("isoswitch") == {front.port, listener.port}
    assert listener.port not in (sim_args().port, sim_args().admin_port)


def test_isoswitch_service_reads_the_mounted_config_and_keeps_data_on_a_volume() -> None:
    inside, settings = serve_settings()
    args = serve_args()
    assert args.target is None, "deploy/isoswitch.toml names the simulator; --target would hide it"
    source, ro = mount_source("isoswitch", inside)
    assert (ROOT / source).resolve() == SWITCH_TOML and ro
    assert container_env("isoswitch").get("ISOSWITCH_CONFIG") == inside, "exec'd commands read the same file"
    data_source, data_ro = mount_source("isoswitch", str(settings.database.data_dir))
    assert data_source in compose()["volumes"] and not data_ro, "the data directory is a named, writable volume"
    assert settings.logging.format == "json"
    deps = service("isoswitch")["depends_on"]
    assert {k: v["condition"] for k, v in deps.items()} == {
        "postgres": "service_healthy",
        "acquirer-sim": "service_healthy",
        "keys": "service_completed_successfully",
    }


def test_commands_run_with_docker_compose_exec_see_what_serve_sees() -> None:
    """``docker compose exec isoswitch isoswitch config show`` (no flags): the file and the environment alone."""
    inside, settings = serve_settings()
    plain_inside, plain = effective_settings("isoswitch", ["config", "show"])
    assert plain_inside == inside
    assert plain.sections["http"] == settings.sections["http"]
    assert plain.listener == settings.listener
    assert plain.database == settings.database
    assert plain.logging == settings.logging
    assert plain.switch == settings.switch


def test_sim_service_runs_on_the_ports_up_uses() -> None:
    from isoswitch.config import SimulatorConfig

    args = sim_args()
    assert args.port == SimulatorConfig().port == 8583
    assert args.admin_port == SimulatorConfig().admin_port == 8584
    assert args.host == "0.0.0.0" and args.admin_host in (None, "0.0.0.0")
    assert container_ports("acquirer-sim") == {args.port, args.admin_port}


def test_published_ports_are_the_container_ports_and_unique() -> None:
    seen: dict[str, str] = {}
    for name in SERVICES:
        for host, port in _port_entries(service(name)):
            if host is None:
                continue
            assert host == str(port), f"{name}: publish {port} as {port} so the documented URLs hold"
            assert host not in seen, f"host port {host} published by {seen.get(host)} and {name}"
            seen[host] = name
    assert set(seen) == {"8080", "8585", "8583", "8584", "9090", "3000"}


def test_isoswitch_environment_database_pan_key_and_log_format() -> None:
    from switch.store import vault

    env = container_env("isoswitch")
    pg = service("postgres")["environment"]
    _, settings = serve_settings()
    assert settings.database.url == env["DATABASE_URL"], "no embedded PostgreSQL in the container"
    url = urlsplit(env["DATABASE_URL"])
    assert url.scheme in ("postgresql", "postgres")
    assert url.hostname == "postgres" and url.hostname in SERVICES and (url.port or 5432) == 5432
    assert url.path == "/" + pg["POSTGRES_DB"]
    assert (url.username, url.password) == (pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"])
    key = base64.b64decode(env[vault.ENV_KEY], validate=True)
    assert len(key) == 32, f"{vault.ENV_KEY} must be base64 of 32 bytes (AES-256)"
    assert env[vault.ENV_KEY_ID]
    assert b"DEVELOPMENT" in key, "the key in the compose file is a public, development-only placeholder"
    overrides = sorted(k for k in env if k.startswith("ISOSWITCH_") and "__" in k)
    assert overrides, "ISOSWITCH_<SECTION>__<KEY> overrides (the settings loader accepted them above)"


def test_postgres_health_check_is_pg_isready_and_data_on_a_named_volume() -> None:
    test = health_test("postgres")
    assert "pg_isready" in test
    user = service("postgres")["environment"]["POSTGRES_USER"]
    assert test[test.index("-U") + 1] == user
    source, _ = mount_source("postgres", "/var/lib/postgresql/data")
    assert source in compose()["volumes"]


def test_depends_on_names_services_and_healthy_ones_have_checks() -> None:
    for name in SERVICES | INIT_SERVICES:
        deps = service(name).get("depends_on", {})
        items = {d: {"condition": "service_started"} for d in deps} if isinstance(deps, list) else deps
        for dep, spec in items.items():
            assert dep in SERVICES | INIT_SERVICES, f"{name} depends on unknown service {dep}"
            if spec["condition"] == "service_healthy":
                assert "healthcheck" in service(dep), f"{name} waits for {dep} to be healthy; it has no check"
            if dep in INIT_SERVICES:
                assert spec["condition"] == "service_completed_successfully", f"{name} must wait for {dep} to end"
    for name in INIT_SERVICES:
        assert str(service(name).get("restart")) == "no", f"{name} runs once: restart would loop it"
        assert "ports" not in service(name) and "healthcheck" not in service(name)


def test_named_volumes_are_declared_and_bind_mounts_exist_read_only() -> None:
    declared = set(compose().get("volumes") or {})
    used = set()
    for name in SERVICES | INIT_SERVICES:
        for source, target, ro in mounts(name):
            assert target.startswith("/"), f"{name}: mount target {target} must be absolute"
            if is_bind(source):
                assert source.startswith("./"), f"{name}: bind mounts come from the repository ({source})"
                assert (ROOT / source).exists(), f"{name}: {source} does not exist"
                assert ro, f"{name}: {source} is configuration: mount it read-only"
            else:
                used.add(source)
    assert used == declared, f"named volumes used {sorted(used)} vs declared {sorted(declared)}"


def test_own_image_services_share_one_build() -> None:
    names = own_image_services()
    assert names == {"isoswitch", "acquirer-sim", "keys"}
    images = {service(n)["image"] for n in names}
    assert len(images) == 1, f"one image for both: {images}"
    for name in SERVICES - names:
        assert "build" not in service(name) and ":" in service(name)["image"], f"{name}: pin an image tag"
        assert not service(name)["image"].endswith(":latest"), f"{name}: pin a version"


# == Dockerfile and .dockerignore ==========================================================


def test_dockerfile_builds_from_python_slim_and_runs_as_non_root() -> None:
    stages = dockerfile_stages()
    names = {stage for _, stage, _ in stages if stage}
    for image, _, _ in stages:
        assert image == PYTHON_IMAGE or image in names, f"FROM {image}: the base is {PYTHON_IMAGE}"
    final = stages[-1][2]
    users = [rest for instr, rest in final if instr == "USER"]
    assert users, "the final stage sets USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    runs = " ".join(rest for _, _, instrs in stages for instr, rest in instrs if instr == "RUN")
    assert re.search(rf"useradd\b[^&;]*\b{re.escape(user)}\b", runs), f"user {user} is created with useradd"
    assert re.search(r"pip install \.(\s|$)", runs), "the project is installed with `pip install .`"
    assert "[dev]" not in DOCKERFILE.read_text() and "curl" not in runs


def test_dockerfile_puts_isoswitch_on_path_from_a_copied_venv() -> None:
    stages = dockerfile_stages()
    final = stages[-1][2]
    paths = [m.group(1) for instr, rest in final if instr == "ENV" for m in re.finditer(r"PATH=([^\s]+)", rest)]
    assert paths, "the final stage sets PATH"
    venv_bin = paths[-1].split(":")[0]
    venv = venv_bin.removesuffix("/bin")
    assert venv_bin.endswith("/bin")
    runs = " ".join(rest for _, _, instrs in stages for instr, rest in instrs if instr == "RUN")
    assert f"-m venv {venv}" in runs, f"{venv} is a virtualenv made in the build"
    assert any(instr == "COPY" and rest.split()[-2:] == [venv, venv] and "--from=" in rest for instr, rest in final), (
        f"the final stage copies {venv} from the build stage"
    )


def test_dockerfile_copy_sources_exist_and_are_in_the_build_context() -> None:
    copies = copy_instructions()
    assert copies
    for flags, sources, _ in copies:
        if any(f.startswith("--from=") for f in flags):
            continue
        for source in sources:
            path = ROOT / source
            assert path.exists(), f"COPY {source}: no such file"
            rel = source.strip("/").removeprefix("./")
            assert in_build_context(rel), f"COPY {source}: excluded by .dockerignore"
            if path.is_dir():
                for f in path.rglob("*"):
                    inside = f.relative_to(ROOT).as_posix()
                    if f.is_file() and (f.suffix == ".py" or rel == "schemas") and "__pycache__" not in inside:
                        assert in_build_context(inside), f"{inside} is excluded by .dockerignore"
    for needed in ("pyproject.toml", "README.md", "acquirer_sim/default_rules.toml", "schemas/sql/001_store.sql"):
        assert in_build_context(needed), f"pip install . needs {needed}"


def test_every_package_pyproject_installs_is_copied_into_the_image() -> None:
    with open(ROOT / "pyproject.toml", "rb") as f:
        include = tomllib.load(f)["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {pattern.rstrip("*") for pattern in include}
    copied = {
        s.strip("/").removeprefix("./") for flags, sources, _ in copy_instructions() if not flags for s in sources
    }
    assert packages <= copied, f"pip install . in the image would miss {sorted(packages - copied)}"
    for package in packages:
        assert in_build_context(f"{package}/__init__.py"), f"{package}/ is excluded by .dockerignore"


def test_dockerignore_keeps_secrets_venv_and_tests_out() -> None:
    for path in (
        ".data/pan.key",
        ".data/pg/postgresql.conf",
        ".venv/bin/python",
        ".git/HEAD",
        ".env",
        "tests/test_deploy.py",
        "bench/results/rest.json",
        "switch/__pycache__/link.cpython-311.pyc",
        "docker-compose.yml",
    ):
        assert not in_build_context(path), f"{path} must stay out of the build context"


def test_dockerfile_expose_matches_the_compose_ports() -> None:
    final = dockerfile_stages()[-1][2]
    exposed = {int(p.split("/")[0]) for instr, rest in final if instr == "EXPOSE" for p in rest.split()}
    expected = set().union(*(container_ports(n) for n in own_image_services()))
    assert exposed == expected


def test_dockerfile_config_and_data_dir_match_the_compose_command() -> None:
    inside, settings = serve_settings()
    destinations = {dest: sources for flags, sources, dest in copy_instructions() if not flags}
    assert destinations.get(inside) == ["deploy/isoswitch.toml"], "the image carries the compose config"
    assert image_env().get("ISOSWITCH_CONFIG") == inside
    data_dir = str(settings.database.data_dir)
    runs = " ".join(rest for instr, rest in dockerfile_stages()[-1][2] if instr == "RUN")
    assert data_dir in runs, f"{data_dir} is created (owned by the user) in the image"
    workdirs = [rest for instr, rest in dockerfile_stages()[-1][2] if instr == "WORKDIR"]
    assert workdirs and workdirs[-1] == data_dir, "a writable working directory (`project add` defaults to .data)"


def test_image_default_command_is_up_with_the_baked_config() -> None:
    """``docker run isoswitch:local``: everything in one container, embedded PostgreSQL in the data volume."""
    cmds = [rest for instr, rest in dockerfile_stages()[-1][2] if instr == "CMD"]
    assert cmds, "the image has a default command"
    argv = _words(cmds[-1])
    assert argv[:2] == ["isoswitch", "up"]
    inside, settings = effective_settings(None, argv[1:])
    assert inside == image_env()["ISOSWITCH_CONFIG"]
    front = settings.sections["http"]
    assert front.host == "0.0.0.0"
    final = dockerfile_stages()[-1][2]
    exposed = {int(p.split("/")[0]) for instr, rest in final if instr == "EXPOSE" for p in rest.split()}
    sim = settings.sections["simulator"]
    assert {front.port, sim.port, sim.admin_port} <= exposed
    assert settings.database.url is None and str(settings.database.data_dir) in " ".join(
        rest for instr, rest in final if instr == "RUN"
    ), "the embedded PostgreSQL lives in the directory the image creates for its user"


# == deploy/isoswitch.toml =====================================================================


def test_switch_config_points_at_the_sim_service() -> None:
    from switch.settings import DEFAULT_CONFIG

    _, settings = serve_settings()
    cfg, sim = settings.switch, sim_args()
    assert cfg.destinations, "at least one destination"
    for d in cfg.destinations:
        assert d.link.host == "acquirer-sim" and d.link.host in SERVICES
        assert d.link.port == sim.port
        assert d.link.dialect == sim.dialect and d.link.framing == sim.framing
    assert cfg.default_route in {d.name for d in cfg.destinations}
    with open(SWITCH_TOML, "rb") as f:
        ours = tomllib.load(f)
    with open(DEFAULT_CONFIG, "rb") as f:
        default = tomllib.load(f)
    assert set(ours) <= set(default), "same sections as schemas/config/default.toml"
    assert "url" not in ours.get("database", {}), "the database password stays out of the file"


# == the keys step: 3-D Secure and wallet keys of the simulator and the switch ================


def keys_args() -> argparse.Namespace:
    cmd = command("keys")
    assert cmd[:2] == ["isoswitch", "keys"], f"the keys service must run `isoswitch keys`, not {cmd}"
    return isoswitch_parser("keys").parse_args(cmd[2:])


def volume_at(name: str, path: str) -> tuple[str, str, bool]:
    """(source, target, read-only) of the mount of service ``name`` that holds ``path`` (the deepest one)."""
    holding = [m for m in mounts(name) if path == m[1] or path.startswith(m[1].rstrip("/") + "/")]
    assert holding, f"service {name}: nothing mounted holds {path}"
    return max(holding, key=lambda m: len(m[1]))


def test_the_keys_step_writes_on_volumes_the_simulator_and_the_switch_mount() -> None:
    args = keys_args()
    sim_dir, switch_dir = str(args.sim_dir), str(args.switch_dir)
    source, target, ro = volume_at("keys", sim_dir)
    assert source in compose()["volumes"] and not ro, "the simulator's keys: a named volume the step writes"
    assert volume_at("acquirer-sim", sim_dir) == (source, target, True), "the simulator reads them, read-only"
    source, target, ro = volume_at("keys", switch_dir)
    assert source in compose()["volumes"] and not ro
    assert volume_at("isoswitch", switch_dir)[:2] == (source, target), "the switch reads the same volume"
    # Each side holds only its own private keys: neither mounts the other's key directory.
    assert not any(sim_dir.startswith(t.rstrip("/")) for _, t, _ in mounts("isoswitch")), "the ACS's keys"
    assert not any(switch_dir.startswith(t.rstrip("/")) for _, t, _ in mounts("acquirer-sim")), "the gateway's"
    for name in ("acquirer-sim", "isoswitch"):
        assert service(name)["depends_on"]["keys"]["condition"] == "service_completed_successfully"
    # A new named volume takes its owner from the image's directory: the non-root step must own it.
    runs = " ".join(rest for instr, rest in dockerfile_stages()[-1][2] if instr == "RUN")
    for path in (sim_dir, str(Path(switch_dir).parent)):
        assert re.search(rf"install -d -o isoswitch -g isoswitch[^&]*{re.escape(path)}\b", runs), path


def test_the_keys_the_step_makes_are_the_ones_the_simulator_and_the_switch_use(tmp_path: Path) -> None:
    """The real `isoswitch keys` into two directories standing for the volumes; then what the sim's flags and
    the switch's effective settings name exists there, and each pair works across: an ACS signature
    verifies, a wallet token opens."""
    from isoswitch.cli import main
    from switch.wire.threeds import Signer, Verifier
    from switch.wire.wallet import Gateway, PaymentData, Wallet

    args = keys_args()
    places = {str(args.sim_dir): tmp_path / "sim", str(args.switch_dir): tmp_path / "switch"}
    assert (
        main(["keys", "--sim-dir", str(places[str(args.sim_dir)]), "--switch-dir", str(places[str(args.switch_dir)])])
        == 0
    )

    def here(inside: object) -> Path:
        text = str(inside)
        for prefix, local in places.items():
            if text.startswith(prefix + "/"):
                return local / text[len(prefix) + 1 :]
        raise AssertionError(f"{text} is in neither key directory")

    sim = sim_args()
    for path in (sim.acs_key, sim.wallet_signing_key, sim.wallet_merchant_key):
        assert path is not None and here(path).parent == places[str(args.sim_dir)] and here(path).exists(), path
    _, settings = serve_settings()
    s3d, runtime = settings.secure3d, settings.runtime
    keys = runtime.wallet_keys()
    assert keys is not None and s3d.acs_public_key is not None
    for path in (s3d.acs_public_key, *keys):
        assert here(path).parent == places[str(args.switch_dir)] and here(path).exists(), path
    assert {p.name for p in places[str(args.switch_dir)].iterdir()} >= {"wallet_merchant.pem"}
    assert not (places[str(args.switch_dir)] / "acs_signing.pem").exists(), "the ACS's private key stays with it"
    assert not (places[str(args.sim_dir)] / "wallet_merchant.pem").exists(), "the gateway's key stays with the switch"

    signed = Signer.load(here(sim.acs_key)).sign({"messageType": "PaRes", "xid": "x"})
    assert Verifier.load(here(s3d.acs_public_key)).verify(signed, "PaRes")["xid"] == "x"
    data = PaymentData(pan="4111111111111111", expiration="301231", currency_code="840", amount=999, cryptogram="AAAA")
    token = Wallet.load(here(sim.wallet_signing_key)).mint(data, here(sim.wallet_merchant_key))
    assert Gateway.load(*(here(p) for p in keys)).open(token, wallet_type="apple_pay").pan == "4111111111111111"


def test_the_switch_reaches_the_simulators_directory_server_and_browsers_its_acs() -> None:
    _, settings = serve_settings()
    s3d, sim = settings.secure3d, sim_args()
    ds = urlsplit(str(s3d.ds_url))
    assert (ds.scheme, ds.hostname, ds.port, ds.path) == ("http", "acquirer-sim", sim.admin_port, "/ds")
    # The RReq comes from the simulator's container: to the switch's service name and port.
    server = urlsplit(str(s3d.server_url))
    assert (server.hostname, server.port) == ("isoswitch", settings.sections["http"].port)
    # Browsers reach the ACS at the simulator's published admin port, on this machine by default.
    acs = urlsplit(str(sim.acs_url))
    published = {int(h) for h, p in _port_entries(service("acquirer-sim")) if h is not None and p == sim.admin_port}
    assert acs.hostname in ("127.0.0.1", "localhost") and acs.port in published


# == Prometheus ===============================================================================


def test_prometheus_scrapes_both_processes_every_5s() -> None:
    doc = yaml.safe_load(PROMETHEUS.read_text())
    glob = doc["global"]
    interval = seconds(glob["scrape_interval"])
    assert interval == 5
    assert seconds(glob.get("scrape_timeout", "10s")) <= interval
    expected = {
        ("isoswitch", serve_settings()[1].sections["http"].port),
        ("acquirer-sim", sim_args().admin_port),
    }
    found = set()
    for job in doc["scrape_configs"]:
        assert job.get("metrics_path", "/metrics") == "/metrics"
        assert job.get("scheme", "http") == "http"
        if "scrape_interval" in job:
            assert seconds(job["scrape_interval"]) == 5
        for static in job["static_configs"]:
            for target in static["targets"]:
                host, _, port = target.rpartition(":")
                assert host in SERVICES, f"target {target}: not a compose service"
                assert int(port) in container_ports(host), f"target {target}: {host} does not listen there"
                found.add((host, int(port)))
                assert job["job_name"] == host, "job name = service name (the dashboard filters on it)"
    assert found == expected


def test_prometheus_config_is_mounted_where_it_is_read() -> None:
    flags = dict(a.split("=", 1) for a in command("prometheus") if "=" in a)
    source, ro = mount_source("prometheus", flags["--config.file"])
    assert (ROOT / source).resolve() == PROMETHEUS and ro
    data, _ = mount_source("prometheus", flags["--storage.tsdb.path"])
    assert data in compose()["volumes"]
    assert 9090 in container_ports("prometheus")


# == Grafana ======================================================================================


def test_grafana_datasource_is_the_prometheus_service() -> None:
    doc = yaml.safe_load(GRAFANA_DATASOURCES.read_text())
    assert doc["apiVersion"] == 1
    (ds,) = [d for d in doc["datasources"] if d["type"] == "prometheus"]
    assert ds["uid"] and ds["access"] == "proxy" and ds.get("isDefault") is True
    url = urlsplit(ds["url"])
    assert url.hostname == "prometheus" and url.port in container_ports("prometheus")
    assert seconds(ds["jsonData"]["timeInterval"]) == seconds(
        yaml.safe_load(PROMETHEUS.read_text())["global"]["scrape_interval"]
    )


def test_grafana_provisioning_and_dashboards_are_mounted_where_grafana_reads_them() -> None:
    source, ro = mount_source("grafana", "/etc/grafana/provisioning")
    assert (ROOT / source).resolve() == GRAFANA_DATASOURCES.parent.parent and ro
    doc = yaml.safe_load(GRAFANA_PROVIDERS.read_text())
    assert doc["apiVersion"] == 1
    (provider,) = doc["providers"]
    assert provider["type"] == "file"
    source, ro = mount_source("grafana", provider["options"]["path"])
    assert (ROOT / source).resolve() == DASHBOARD.parent and ro
    env = service("grafana")["environment"]
    home = env.get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    if home:
        assert home == f"{provider['options']['path'].rstrip('/')}/{DASHBOARD.name}"
    anonymous = str(env.get("GF_AUTH_ANONYMOUS_ENABLED", "false")).lower() == "true"
    assert anonymous or env.get("GF_SECURITY_ADMIN_PASSWORD"), "anonymous viewers or an admin password"
    if anonymous:
        assert env.get("GF_AUTH_ANONYMOUS_ORG_ROLE") == "Viewer", "anonymous visitors only view"
    assert 3000 in container_ports("grafana")
    data, _ = mount_source("grafana", "/var/lib/grafana")
    assert data in compose()["volumes"]


def test_dashboard_is_grafana_json_with_panels_on_the_provisioned_datasource() -> None:
    doc, uid = dashboard(), datasource_uid()
    assert isinstance(doc["uid"], str) and doc["uid"] and doc["title"]
    assert isinstance(doc["schemaVersion"], int) and doc["schemaVersion"] >= 36
    assert "id" not in doc or doc["id"] is None, "a provisioned dashboard has no database id"
    panels = dashboard_panels()
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    cells: dict[tuple[int, int], str] = {}
    kinds = {"row", "timeseries", "stat", "table", "gauge", "bargauge", "state-timeline", "heatmap", "text"}
    graphs = 0
    for p in panels:
        assert p["type"] in kinds, p["type"]
        g = p["gridPos"]
        assert all(isinstance(g[k], int) for k in "hwxy") and g["x"] + g["w"] <= 24 and g["h"] > 0
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = p["title"]
        if p["type"] in ("row", "text"):
            continue
        graphs += 1
        assert p["title"] and p["datasource"]["uid"] == uid, p["title"]
        targets = p["targets"]
        assert targets, f"{p['title']!r} has no targets"
        refs = [t["refId"] for t in targets]
        assert len(refs) == len(set(refs)), p["title"]
        for t in targets:
            assert t["datasource"]["uid"] == uid and t["expr"].strip(), p["title"]
            expr = t["expr"]
            for a, b in ("()", "{}", "[]"):
                assert expr.count(a) == expr.count(b), f"unbalanced {a}{b} in {expr}"
    assert graphs >= 10
    for var in doc.get("templating", {}).get("list", []):
        if "datasource" in var:
            assert var["datasource"]["uid"] == uid, var["name"]


def test_dashboard_covers_the_switch_metrics() -> None:
    used = {base_name(m) for m in dashboard_metrics()}
    required = {
        "isoswitch_http_requests",
        "isoswitch_http_request_duration_seconds",
        "isoswitch_http_requests_in_flight",
        "isoswitch_iso_request_duration_seconds",
        "isoswitch_iso_responses",
        "isoswitch_iso_timeouts",
        "isoswitch_iso_late_responses",
        "isoswitch_iso_in_flight",
        "isoswitch_link_state",
        "isoswitch_reversals",
        "isoswitch_saf_depth",
        "isoswitch_saf_oldest_age_seconds",
        "isoswitch_db_write_batch_size",
        "isoswitch_db_write_duration_seconds",
        "isoswitch_listener_connections",
        "isoswitch_listener_messages",
        "isoswitch_webhook_outbox_depth",
        "isoswitch_webhook_deliveries",
        "isoswitch_webhook_delivery_duration_seconds",
        "isoswitch_secure3d_sessions",
        "isoswitch_secure3d_outcomes",
        "isoswitch_secure3d_refused",
    }
    assert required <= used, f"not on the dashboard: {sorted(required - used)}"
    assert any(m.startswith(SIM_PREFIX) for m in used) and dashboard_metrics() & PROCESS_METRICS


def test_dashboard_promql_uses_known_functions_and_metric_families() -> None:
    for expr in dashboard_exprs():
        functions, metrics = promql_identifiers(expr)
        assert functions <= PROMQL_FUNCTIONS, f"unknown functions {functions - PROMQL_FUNCTIONS} in {expr}"
        assert metrics, f"no metric in {expr}"
        for m in metrics:
            assert m in BUILTIN_METRICS | PROCESS_METRICS or m.startswith((SWITCH_PREFIX, SIM_PREFIX)), (m, expr)
            if m.endswith("_bucket"):
                assert "histogram_quantile(" in expr, f"{m} outside histogram_quantile: {expr}"
            if m.endswith(("_total", "_bucket", "_count", "_sum")):
                assert re.search(rf"\b(rate|irate|increase)\(\s*{m}\b", expr), f"{m} is a counter: rate() it"
        for job in re.findall(r'\bjob\s*=~?\s*"([^"]*)"', expr):
            jobs = {j["job_name"] for j in yaml.safe_load(PROMETHEUS.read_text())["scrape_configs"]}
            assert set(job.split("|")) <= jobs, f"job {job!r} is not a Prometheus job ({sorted(jobs)})"


def test_dashboard_isoswitch_metrics_are_exported_by_switch_metrics() -> None:
    names = exported_metric_names("switch.metrics")
    if names is None:
        pytest.skip("switch.metrics.METRIC_NAMES does not exist yet: dashboard names checked by prefix only")
    missing = sorted(m for m in dashboard_metrics() if m.startswith(SWITCH_PREFIX) and not candidates(m) & names)
    assert not missing, f"dashboard metrics not in switch.metrics.METRIC_NAMES: {missing}"


def test_dashboard_labels_are_the_switch_metrics_labels() -> None:
    """Label matchers and ``by (...)`` lists name labels the metric has (its spec, or job/instance/le/pid)."""
    try:
        mod = importlib.import_module("switch.metrics")
    except ModuleNotFoundError as e:
        if e.name != "switch.metrics":
            raise
        pytest.skip("switch.metrics does not exist yet")
    specs = getattr(mod, "_SPECS", None)
    if not isinstance(specs, dict):
        pytest.skip("switch.metrics keeps no label specs (_SPECS) to check the dashboard against")

    def labels_of(metric: str) -> set[str]:
        (name,) = candidates(metric) & set(specs)
        spec = specs[name]
        extra = {"job", "instance", "pid"} | ({"le"} if metric.endswith("_bucket") else set())
        return set(spec.labels) | extra

    for expr in dashboard_exprs():
        _, metrics = promql_identifiers(expr)
        ours = {m for m in metrics if m.startswith(SWITCH_PREFIX)}
        for m in re.finditer(r"([A-Za-z_:][A-Za-z0-9_:]*)\s*\{([^}]*)\}", expr):
            if m.group(1) in ours:
                used = set(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)", m.group(2)))
                assert used <= labels_of(m.group(1)), f"{m.group(1)} has no label {used - labels_of(m.group(1))}"
        if ours and ours == metrics:
            known = set().union(*(labels_of(m) for m in ours))
            for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
                used = {g.strip() for g in group.split(",") if g.strip()}
                assert used <= known, f"no metric of {expr!r} has the labels {used - known}"


def test_dashboard_simulator_metrics_are_the_sims() -> None:
    used = sorted(m for m in dashboard_metrics() if m.startswith(SIM_PREFIX))
    assert used
    for module in ("acquirer_sim.admin_metrics", "acquirer_sim.metrics", "acquirer_sim"):
        names = exported_metric_names(module)
        if names is not None:
            missing = [m for m in used if not candidates(m) & names]
            assert not missing, f"dashboard metrics not in {module}.METRIC_NAMES: {missing}"
            return
    # No list exported (yet): the sim's metrics are everything named acquirer_sim_*.
    assert all(re.fullmatch(r"acquirer_sim_[a-z0-9_]+", m) for m in used)


def test_promql_identifier_extraction() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, mti) (rate(isoswitch_iso_request_duration_seconds_bucket{mti="0100",'
        ' destination=~"$destination"}[$__rate_interval]))) / on (mti) group_left sum(up{job="isoswitch"}) > bool 1'
    )
    assert promql_identifiers(expr) == (
        {"histogram_quantile", "sum", "rate"},
        {"isoswitch_iso_request_duration_seconds_bucket", "up"},
    )
    assert base_name("isoswitch_iso_responses_total") == "isoswitch_iso_responses"
    assert interpolate("${A:-x}:${B-y}:$$:${C}", {"C": "c"}) == "x:y:$:c"
