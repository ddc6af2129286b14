"""docker-compose.yml, the Dockerfile and the ClickHouse users config, checked without Docker.

- every tripwire service runs a real ``tripwire`` subcommand with options that exist (resolved
  against the typer app, the way click parses them);
- every variable it sets is a real setting (the collector of docs/configuration.md) and the values
  parse in every settings class;
- ports agree: what clients connect to is what the servers listen on and advertise;
- images are pinned; users, grants and volumes are consistent.

Each checker is also run on a broken copy of the file, so none of them can pass vacuously.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shlex
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import typer
import yaml

from tests.deploy_reference import load_reference
from tripwire.core.errors import ConfigError

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
USERS_XML = ROOT / "deploy" / "clickhouse" / "users.d" / "tripwire.xml"
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


# -- loading ----------------------------------------------------------------------------------------


def env_example() -> dict[str, str]:
    out = {}
    for line in (ROOT / "deploy" / "env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def interpolate(node: Any, env: dict[str, str], missing: set[str]) -> Any:
    """docker compose's ${VAR}, ${VAR:-default} and ${VAR:?error} substitution."""
    if isinstance(node, dict):
        return {k: interpolate(v, env, missing) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate(v, env, missing) for v in node]
    if not isinstance(node, str):
        return node

    def sub(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3)
        if name in env and (env[name] or not op or not op.startswith(":")):
            return env[name]
        if op in (":-", "-"):
            return arg
        missing.add(name)
        return ""

    return _VAR.sub(sub, node)


def load_compose(env: dict[str, str] | None = None) -> dict[str, Any]:
    raw = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    missing: set[str] = set()
    out = interpolate(raw, env_example() if env is None else env, missing)
    assert not missing, f"variables without a value or default: {sorted(missing)} (add them to deploy/env.example)"
    return out


def dockerfile_entrypoint() -> list[str]:
    lines = [ln for ln in (ROOT / "Dockerfile").read_text().splitlines() if ln.startswith("ENTRYPOINT")]
    return json.loads(lines[-1].split(None, 1)[1])


def is_tripwire(service: dict[str, Any]) -> bool:
    return "build" in service or str(service.get("image", "")).startswith("tripwire:")


def invocations(service: dict[str, Any]) -> list[list[str]]:
    """The ``tripwire`` argv (without the program name) each tripwire service runs."""
    entry = service.get("entrypoint", dockerfile_entrypoint())
    command = service.get("command", [])
    entry = shlex.split(entry) if isinstance(entry, str) else list(entry)
    command = shlex.split(command) if isinstance(command, str) else list(command)
    argv = entry + command
    if argv[:1] == ["tripwire"]:
        return [argv[1:]]
    if argv[:2] in (["sh", "-c"], ["bash", "-c"]):
        script = " ".join(argv[2:])
        runs = []
        for segment in re.split(r"\|\||&&|;", script):
            words = shlex.split(segment)
            if words[:1] == ["tripwire"]:
                runs.append(words[1:])
        return runs
    return []


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


# -- checks (each returns a list of problems) ---------------------------------------------------------


def check_commands(compose: dict[str, Any]) -> list[str]:
    """Parse every invocation with click, as ``tripwire`` would, without running it."""
    from tripwire.cli import app

    root = typer.main.get_command(app)
    problems = []
    for name, svc in compose["services"].items():
        if not is_tripwire(svc):
            continue
        runs = invocations(svc)
        if not runs:
            problems.append(f"{name}: runs no tripwire command")
        for argv in runs:
            cmd: Any = root
            args = list(argv)
            path = ["tripwire"]
            try:
                while True:
                    ctx = cmd.make_context(" ".join(path), list(args), resilient_parsing=False)
                    if not hasattr(cmd, "resolve_command"):  # a leaf command (click or typer's vendored click)
                        break
                    rest = [*ctx._protected_args, *ctx.args]
                    if not rest:
                        problems.append(f"{name}: `tripwire {' '.join(argv)}` names no subcommand")
                        break
                    sub_name, sub, args = cmd.resolve_command(ctx, rest)
                    if sub is None:
                        problems.append(f"{name}: `tripwire {' '.join(argv)}`: no such command {rest[0]!r}")
                        break
                    path.append(sub_name or "")
                    cmd = sub
            except Exception as e:  # click's UsageError family (typer vendors its own click)
                if not hasattr(e, "format_message"):
                    raise
                message = e.format_message() or "names no subcommand (shows help)"
                problems.append(f"{name}: `tripwire {' '.join(argv)}`: {message}")
    return problems


def check_env(compose: dict[str, Any]) -> list[str]:
    ref = load_reference()
    names = ref.env_names()
    problems = []
    for name, svc in compose["services"].items():
        if not is_tripwire(svc):
            continue
        for var in env_of(svc):
            if not ref.is_setting(var, names):
                problems.append(f"{name}: {var} is not a setting of any tripwire settings class")
    return problems


def check_env_values(compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every settings class accepts the service's environment (values parse, cross-field rules hold)."""
    ref = load_reference()
    problems = []
    for name, svc in compose["services"].items():
        if not is_tripwire(svc):
            continue
        with monkeypatch.context() as m:
            for var in list(os.environ):
                if var.startswith("TRIPWIRE_"):
                    m.delenv(var)
            for var, value in env_of(svc).items():
                m.setenv(var, value)
            for c in ref.settings_classes():
                try:
                    c.cls()
                except Exception as e:  # a ValidationError or ConfigError: the message says which
                    problems.append(f"{name}: {c.cls.__name__}: {e}")
    return problems


def _kafka_listeners(kafka: dict[str, Any]) -> tuple[dict[str, int], dict[str, tuple[str, int]]]:
    env = env_of(kafka)
    listen = {}
    for item in env["KAFKA_LISTENERS"].split(","):
        lname, _, addr = item.partition("://")
        listen[lname] = int(addr.rsplit(":", 1)[1])
    advertised = {}
    for item in env["KAFKA_ADVERTISED_LISTENERS"].split(","):
        lname, _, addr = item.partition("://")
        host, port = addr.rsplit(":", 1)
        advertised[lname] = (host, int(port))
    return listen, advertised


def _published(svc: dict[str, Any]) -> dict[int, int]:
    """container port -> host port."""
    out = {}
    for p in svc.get("ports", []):
        parts = str(p).split(":")
        out[int(parts[-1].split("/")[0])] = int(parts[-2])
    return out


def _option(argv: list[str], flag: str) -> str | None:
    return argv[argv.index(flag) + 1] if flag in argv else None


def _health_port(svc: dict[str, Any]) -> int | None:
    test = " ".join(svc.get("healthcheck", {}).get("test", []))
    m = re.search(r"https?://127\.0\.0\.1:(\d+)/", test)
    return int(m.group(1)) if m else None


def _depends(compose: dict[str, Any], name: str) -> set[str]:
    seen: set[str] = set()
    todo = [name]
    while todo:
        deps = compose["services"][todo.pop()].get("depends_on") or {}
        for d in deps:
            if d not in seen:
                seen.add(d)
                todo.append(d)
    return seen


def users_xml() -> ET.Element:
    return ET.parse(USERS_XML).getroot()


def check_ports(compose: dict[str, Any]) -> list[str]:
    from tripwire.sinks.store import parse_store_url

    services = compose["services"]
    problems = []
    listen, advertised = _kafka_listeners(services["kafka"])
    internal = env_of(services["kafka"])["KAFKA_INTER_BROKER_LISTENER_NAME"]
    if advertised.get(internal) != ("kafka", listen[internal]):
        problems.append(f"kafka advertises {advertised.get(internal)} on {internal}, listens on {listen[internal]}")
    for lname, (host, port) in advertised.items():
        if port != listen.get(lname):
            problems.append(f"kafka listener {lname} advertised on {port} but listens on {listen.get(lname)}")
        if host == "localhost" and _published(services["kafka"]).get(listen[lname]) != port:
            problems.append(f"kafka listener {lname} advertised as localhost:{port} but not published there")
    host_ports = [hp for svc in services.values() for hp in _published(svc).values()]
    if len(host_ports) != len(set(host_ports)):
        problems.append(f"a host port is published twice: {sorted(host_ports)}")
    users = {u.tag: u for u in users_xml().find("users")}
    ch_env = env_of(services["clickhouse"])
    for name, svc in services.items():
        env = env_of(svc)
        targets: list[tuple[str, str, int]] = []  # (what, host, port)
        for var, value in env.items():
            if var.endswith("BOOTSTRAP") or var == "KARAPACE_BOOTSTRAP_URI":
                for server in value.split(","):
                    host, _, port = server.strip().rpartition(":")
                    targets.append((var, host, int(port)))
                    if (host, int(port)) != advertised[internal]:
                        problems.append(f"{name}: {var}={value} is not the broker's listener {advertised[internal]}")
            if var in ("TRIPWIRE_CLICKHOUSE_URL", "TRIPWIRE_DASHBOARD_STORE_URL"):
                url = parse_store_url(value)
                targets.append((var, url.host, url.port))
                if url.host != "clickhouse" or url.port != 8123 or url.secure:
                    problems.append(f"{name}: {var} points at {url.host}:{url.port}, the server serves HTTP on "
                                    "clickhouse:8123")
                user = users.get(url.username or "")
                if user is None:
                    problems.append(f"{name}: {var} uses user {url.username!r}, not in {USERS_XML.name}")
                    continue
                secret_var = user.find("password").get("from_env")
                if ch_env.get(secret_var) != url.password:
                    problems.append(f"{name}: {var}'s password is not the one clickhouse gets in {secret_var}")
                grants = " ".join(q.text or "" for q in user.iter("query"))
                if f" {url.database}." not in grants:
                    problems.append(f"{name}: user {url.username} has no grant on database {url.database}")
            if var == "TRIPWIRE_SCHEMA_REGISTRY_URL":
                parts = urlsplit(value)
                reg = services.get(parts.hostname or "")
                targets.append((var, parts.hostname or "", parts.port or 80))
                if reg is None or env_of(reg).get("KARAPACE_PORT") != str(parts.port):
                    problems.append(f"{name}: {var}={value} is not where the registry listens")
        for what, host, _port in targets:
            if host in services and host not in _depends(compose, name) and services[host].get("profiles") is None:
                problems.append(f"{name}: uses {host} ({what}) without depending on it")
        if is_tripwire(svc):
            for argv in invocations(svc):
                if argv[:1] == ["dashboard"]:
                    port = int(_option(argv, "--port") or 8501)
                    if port not in _published(svc) or _health_port(svc) != port:
                        problems.append(f"{name}: serves on {port}, publishes {_published(svc)}, "
                                        f"health-checks {_health_port(svc)}")
                if argv[:1] == ["process"]:
                    port = _option(argv, "--metrics-port")
                    if port is None or _health_port(svc) != int(port):
                        problems.append(f"{name}: metrics on {port}, health-checks {_health_port(svc)}")
    return problems


def _pinned(image: str) -> bool:
    if "@sha256:" in image:
        return True
    name, _, tag = image.rpartition(":")
    return bool(name) and "/" not in tag and tag != "latest" and re.fullmatch(r"v?\d+(\.\d+)+([.-][\w.-]+)?", tag)


def check_images(compose: dict[str, Any]) -> list[str]:
    from tripwire import __version__
    from tripwire.devenv.kafka import DEFAULT_KAFKA_VERSION

    problems = []
    for name, svc in compose["services"].items():
        image = svc.get("image")
        if not image:
            problems.append(f"{name}: no image")
        elif not _pinned(image):
            problems.append(f"{name}: image {image} is not pinned to a version or digest")
    services = compose["services"]
    if services["kafka"]["image"] != f"apache/kafka:{DEFAULT_KAFKA_VERSION}":
        problems.append(f"kafka image {services['kafka']['image']} is not the tested {DEFAULT_KAFKA_VERSION}")
    for name, svc in services.items():
        if is_tripwire(svc) and svc["image"] != f"tripwire:{__version__}":
            problems.append(f"{name}: tripwire image {svc['image']} is not version {__version__}")
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("FROM ") and not _pinned(line.split()[1]):
            problems.append(f"Dockerfile: {line} is not pinned")
    return problems


# -- tests --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


def test_every_command_is_a_real_subcommand_with_real_options(compose: dict[str, Any]) -> None:
    assert check_commands(compose) == []
    runs = {name: invocations(svc) for name, svc in compose["services"].items() if is_tripwire(svc)}
    assert [r[0][:2] for r in runs.values()] == [
        ["topics", "create"], ["migrate"], ["keys", "generate"], ["process", "--metrics-port"], ["sink", "--group"],
        ["dashboard", "--address"], ["otlp", "--http-port"], ["simulate", "--rate"], ["notify", "--routes"],
    ]


def test_every_variable_is_a_setting_and_parses(compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    assert check_env(compose) == []
    assert check_env_values(compose, monkeypatch) == []


def test_ports_users_and_dependencies_are_consistent(compose: dict[str, Any]) -> None:
    assert check_ports(compose) == []


def test_images_are_pinned(compose: dict[str, Any]) -> None:
    assert check_images(compose) == []


def test_topology(compose: dict[str, Any]) -> None:
    s = compose["services"]
    assert s["process"]["deploy"]["replicas"] == 2
    # the topics the init service creates have the partition count the workers require
    assert env_of(s["topics"])["TRIPWIRE_PROCESSORS_PARTITIONS"] == env_of(s["process"])[
        "TRIPWIRE_PROCESSORS_PARTITIONS"] == env_example()["TRIPWIRE_PARTITIONS"]
    assert env_of(s["kafka"])["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    one_shot = {n for n, v in s.items() if v.get("restart") == "no"}
    assert one_shot == {"topics", "migrate", "keys", "simulate"}
    assert all(v.get("restart") == "unless-stopped" for n, v in s.items() if n not in one_shot)
    assert {n for n, v in s.items() if "healthcheck" in v} == {"kafka", "clickhouse", "process", "dashboard",
                                                                "otlp", "schema-registry"}
    assert s["simulate"]["profiles"] == ["load"] and s["schema-registry"]["profiles"] == ["registry"]
    assert s["notify"]["profiles"] == ["notify"]
    for name in ("process", "sink", "dashboard", "otlp", "notify"):
        conds = {d: c["condition"] for d, c in s[name]["depends_on"].items()}
        assert conds.get("topics") == "service_completed_successfully"
    declared = set(compose["volumes"])
    used = {str(v).split(":")[0] for svc in s.values() for v in svc.get("volumes", [])}
    assert {v for v in used if not v.startswith(".")} == declared
    assert all((ROOT / v.split(":")[0]).is_file() for svc in s.values() for v in svc.get("volumes", [])
               if str(v).startswith("."))


def test_notifier_routes_load_with_the_services_secrets(compose: dict[str, Any],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The routes file the notify service mounts parses, and every secret it names is set by the service."""
    from tripwire.notify import NotifyConfig, load_routes

    svc = compose["services"]["notify"]
    (argv,) = invocations(svc)
    mounted = {dst.removesuffix(":ro"): src for src, _, dst in (str(v).partition(":") for v in svc["volumes"])}
    routes_file = ROOT / mounted[_option(argv, "--routes") or ""]
    with monkeypatch.context() as m:
        for var in list(os.environ):
            if var.startswith("TRIPWIRE_"):
                m.delenv(var)
        for var, value in env_of(svc).items():
            m.setenv(var, value)
        routes = load_routes(routes_file, NotifyConfig())
    assert [r.name for r in routes] == ["ops-webhook", "killswitch-webhook"]
    assert {r.url.get_secret_value() for r in routes if r.url} == {env_example()["NOTIFY_WEBHOOK_URL"]}
    with monkeypatch.context() as m:  # without the secrets the notifier refuses to start
        for var in list(os.environ):
            if var.startswith("TRIPWIRE_"):
                m.delenv(var)
        with pytest.raises(ConfigError, match="TRIPWIRE_NOTIFY_SECRETS__OPS_WEBHOOK_URL"):
            load_routes(routes_file, NotifyConfig())


def test_dashboard_sign_in_files(compose: dict[str, Any]) -> None:
    """The dashboard listens beyond loopback, so it must run with sign-in and files that load."""
    from tripwire.dashboard import auth, roles

    dash = compose["services"]["dashboard"]
    (argv,) = invocations(dash)
    assert _option(argv, "--auth") == "oidc" and _option(argv, "--address") == "0.0.0.0"
    with pytest.raises(auth.AuthConfigError):
        auth.check_dev_address(_option(argv, "--address") or "")  # why dev mode is not an option here
    env = env_of(dash)
    mounts = dict(reversed(str(v).split(":")[:2]) for v in dash["volumes"])
    roles.load(ROOT / mounts[env["TRIPWIRE_DASHBOARD_ROLES_PATH"]])  # the committed roles file parses
    secret = compose["secrets"][dash["secrets"][0]]["file"]
    assert env["TRIPWIRE_DASHBOARD_SECRETS_PATH"] == f"/run/secrets/{dash['secrets'][0]}"
    example = ROOT / (secret + ".example")
    auth.check_auth_section(auth.read_secrets([example]))  # the template has every [auth] key
    assert secret.removeprefix("./") in (ROOT / ".gitignore").read_text().split()  # the real one is never committed


def _grants(text: str, grantee: str) -> set[tuple[str, str]]:
    """(privilege, object) pairs of the GRANT statements to ``grantee`` (or of XML grant queries)."""
    out = set()
    for stmt in re.findall(r"GRANT\s+(.+?)\s+ON\s+(\S+?)(?:\s+TO\s+(\w+))?\s*(?:;|$)", text, re.S | re.M):
        privileges, obj, to = stmt
        if to and to != grantee:
            continue
        for p in privileges.split(","):
            out.add((" ".join(p.split()), obj.replace("${DATABASE}", "tripwire")))
    return out


def test_clickhouse_users() -> None:
    users = {u.tag: u for u in users_xml().find("users")}
    assert set(users) == {"tripwire_writer", "tripwire_dashboard", "tripwire_analyst"}
    xml_grants = {n: _grants("\n".join(q.text or "" for q in u.iter("query")), n) for n, u in users.items()}
    roles_sql = (ROOT / "sinks" / "server_roles.sql").read_text()
    assert xml_grants["tripwire_writer"] == _grants(roles_sql, "tripwire_writer")
    assert xml_grants["tripwire_analyst"] == {("SELECT", "tripwire.*"), ("SHOW", "tripwire.*")}
    assert {g for g in xml_grants["tripwire_dashboard"] if g[0] == "INSERT"} == {
        ("INSERT", "tripwire.alert_acks"), ("INSERT", "tripwire.killswitch_audit")}
    profiles = {p.tag: p for p in users_xml().find("profiles")}
    analyst = profiles[users["tripwire_analyst"].findtext("profile")]
    assert analyst.findtext("readonly") in ("1", "2")
    assert analyst.find("constraints/readonly/const") is not None
    assert all(u.find("password").get("from_env") for u in users.values())  # no secret in the file


# -- the checkers catch what they are for ---------------------------------------------------------------


def test_checkers_reject_broken_files(compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    bad = copy.deepcopy(compose)
    s = bad["services"]
    s["process"]["command"] = ["process", "--metrics-prot", "9100"]
    s["sink"]["command"] = ["sinks"]
    s["topics"]["command"] = ["topics"]
    assert sorted(p.split(":")[0] for p in check_commands(bad)) == ["process", "sink", "topics"]

    s["sink"]["environment"]["TRIPWIRE_SINK_BATCH_SECOND"] = "1"
    s["migrate"]["environment"]["TRIPWIRE_PROCESSORS_PARTITIONS"] = "zero"
    assert check_env(bad) == ["sink: TRIPWIRE_SINK_BATCH_SECOND is not a setting of any tripwire settings class"]
    assert [p.split(":")[:2] for p in check_env_values(bad, monkeypatch)] == [["migrate", " ProcessorConfig"]]

    s["dashboard"]["environment"]["TRIPWIRE_KAFKA_BOOTSTRAP"] = "kafka:29092"
    s["sink"]["environment"]["TRIPWIRE_CLICKHOUSE_URL"] = "clickhouse://tripwire_writer:wrong@clickhouse:8123/tripwire"
    s["migrate"]["environment"]["TRIPWIRE_CLICKHOUSE_URL"] = "clickhouse://nobody:x@clickhouse:9000/tripwire"
    s["process"]["healthcheck"]["test"] = ["CMD", "curl", "http://127.0.0.1:9200/metrics"]
    problems = check_ports(bad)
    assert sorted(p.split(":")[0] for p in problems) == ["dashboard", "migrate", "migrate", "process", "sink"], problems

    s["clickhouse"]["image"] = "clickhouse/clickhouse-server:latest"
    s["kafka"]["image"] = "apache/kafka:3.9.0"
    s["sink"]["image"] = "tripwire"
    assert len(check_images(bad)) == 4  # latest, wrong kafka version, untagged tripwire (twice: unpinned, version)


def test_interpolation_requires_the_secrets() -> None:
    with pytest.raises(AssertionError, match="CH_WRITER_PASSWORD"):
        load_compose({})
    assert load_compose({**env_example(), "TRIPWIRE_PARTITIONS": "24"})["services"]["process"]["environment"][
        "TRIPWIRE_PROCESSORS_PARTITIONS"] == "24"


def test_the_image_copies_every_package_folder() -> None:
    """A package folder missing from the Dockerfile would install a tripwire without that package."""
    import tomllib

    mapping = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    copied = {ln.split()[1] for ln in (ROOT / "Dockerfile").read_text().splitlines() if ln.startswith("COPY ")}
    missing = sorted(folder for folder in mapping.values() if folder not in copied)
    assert missing == []
