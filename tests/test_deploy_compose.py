"""deploy/compose.yaml, the Dockerfile and .dockerignore, checked by reading them.

Docker does not run on the development machines, so the files are parsed and checked against
the code they deploy: the settings table, the package layout in pyproject.toml and the shutdown
grace of `threadline.bootstrap`. Where `docker compose` and a daemon are both available, one more
test asks Compose itself to validate the file.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import pytest
import yaml

from threadline.bootstrap import SHUTDOWN_GRACE_SECONDS
from threadline.config import SETTINGS

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "deploy" / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

GRPC_PORTS = {"store": 50051, "analysis": 50052, "ingest": 50053, "stream": 50054}
WS_PORT = 8765
# Container ports published to the host, each on the same host port.
PUBLISHED = {"store": {50051}, "analysis": {50052}, "ingest": set(), "stream": {WS_PORT, 50054}}
TRACING = "jaeger"
OTLP_GRPC_PORT = 4317
TRACING_UI_PORT = 16686
# `depends_on` edges the pipeline needs: each service waits for the peers it connects to.
REQUIRED_DEPENDENCIES = {("analysis", "store"), ("ingest", "analysis"), ("stream", "store")}

# The host environment the file is interpolated with: HOME and the one required variable, so
# every default is in force.
HOST_ENV = {"HOME": "/home/someone", "THREADLINE_TOKEN": "compose-test-token"}


# --- reading compose.yaml the way Compose does -------------------------------------------------

# Innermost `${...}` first (no `$`, `{` or `}` inside), so a default may hold another variable.
_VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^${}]*))?\}")


def interpolate(text: str, env: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        present = env.get(name)
        usable = present is not None and (present != "" or not (op or "").startswith(":"))
        if usable:
            return present  # type: ignore[return-value]
        if op and op.endswith("-"):
            return arg
        if op and op.endswith("?"):
            raise KeyError(f"compose.yaml requires ${{{name}}}: {arg}")
        return ""

    while True:
        replaced = _VARIABLE.sub(value, text)
        if replaced == text:
            return replaced
        text = replaced


def walk(node: object, change: Callable[[str], str]) -> object:
    if isinstance(node, str):
        return change(node)
    if isinstance(node, dict):
        return {key: walk(value, change) for key, value in node.items()}
    if isinstance(node, list):
        return [walk(item, change) for item in node]
    return node


@pytest.fixture(scope="module")
def compose() -> dict:
    # Compose parses first (anchors, merge keys) and interpolates the values afterwards.
    parsed = yaml.safe_load(COMPOSE_FILE.read_text())
    return walk(parsed, lambda text: interpolate(text, HOST_ENV))  # type: ignore[return-value]


@pytest.fixture(scope="module")
def services(compose: dict) -> dict[str, dict]:
    return compose["services"]


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def published(service: dict) -> list[tuple[str, int, int]]:
    """(host address, host port, container port) of every published port."""
    result = []
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            result.append((port.get("host_ip", "0.0.0.0"), int(port["published"]),
                           int(port["target"])))
            continue
        parts = str(port).split("/")[0].rsplit(":", 2)
        if len(parts) == 1:
            raise AssertionError(f"port {port!r} is published on a random host port")
        host_ip = parts[0] if len(parts) == 3 else "0.0.0.0"
        result.append((host_ip, int(parts[-2]), int(parts[-1])))
    return result


def exposed(service: dict) -> set[int]:
    ports = {int(str(p).split("/")[0]) for p in service.get("expose") or []}
    return ports | {container for _, _, container in published(service)}


def dependencies(service: dict) -> dict[str, str]:
    """depends_on as {service: condition}."""
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: "service_started" for name in deps}
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def mounts(service: dict) -> list[dict]:
    """Every volume entry in long form: type, source, target, read_only."""
    result = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            result.append({"read_only": False, **volume})
            continue
        source, target, *mode = volume.split(":")
        kind = "bind" if source.startswith((".", "/", "~")) else "volume"
        result.append({"type": kind, "source": source, "target": target,
                       "read_only": "ro" in ",".join(mode).split(",")})
    return result


def seconds(duration: str) -> float:
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, f"bad duration {duration!r}"
    return sum(float(number) * units[unit] for number, unit in parts)


# --- reading the Dockerfile ---------------------------------------------------------------------

def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile's instructions as (INSTRUCTION, arguments), one list per stage."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    stages: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, args = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            stages.append([])
        assert stages, "the Dockerfile must start with FROM"
        stages[-1].append((instruction, args.strip()))
    return stages


def env_assignments(stage: list[tuple[str, str]]) -> dict[str, str]:
    values: dict[str, str] = {}
    for instruction, args in stage:
        if instruction in {"ENV", "ARG"}:
            for word in shlex.split(args):
                name, _, value = word.partition("=")
                values[name] = value
    return values


def copies(stage: list[tuple[str, str]]) -> list[tuple[list[str], str, dict[str, str]]]:
    """(sources, destination, flags) of every COPY."""
    result = []
    for instruction, args in stage:
        if instruction != "COPY":
            continue
        words = shlex.split(args)
        flags = dict(w[2:].partition("=")[::2] for w in words if w.startswith("--"))
        paths = [w for w in words if not w.startswith("--")]
        result.append((paths[:-1], paths[-1], flags))
    return result


def dockerignored(path: str) -> bool:
    patterns = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
    path = str(PurePosixPath(path))
    candidates = [path, *(str(p) for p in PurePosixPath(path).parents if str(p) != ".")]
    # Docker's `**/` also matches at the top level; fnmatch's `*` already crosses `/`.
    return any(
        fnmatch.fnmatch(candidate, glob)
        for pattern in patterns if not pattern.startswith("!")
        for glob in (pattern, pattern.removeprefix("**/"))
        for candidate in candidates
    )


# --- the services -------------------------------------------------------------------------------

def test_the_four_services_and_the_tracing_ui_exist(services):
    assert set(GRPC_PORTS) | {TRACING} <= set(services)


def test_each_service_serves_itself_from_the_repository_image(services):
    images = set()
    for name in GRPC_PORTS:
        service = services[name]
        command = service["command"]
        if isinstance(command, str):
            command = shlex.split(command)
        assert command == ["serve", name], name
        assert "entrypoint" not in service, f"{name} must keep the image's threadline entrypoint"
        build = service["build"]
        context = build if isinstance(build, str) else build["context"]
        dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile",
                                                                           "Dockerfile")
        assert (COMPOSE_FILE.parent / context).resolve() == ROOT, name
        assert (ROOT / dockerfile).resolve() == DOCKERFILE, name
        images.add(service.get("image"))
    assert len(images) == 1, f"the four services should share one image tag, not {images}"


def test_grpc_ports_are_as_documented_and_distinct(services):
    ports = {name: environment(services[name]).get("THREADLINE_PORT") for name in GRPC_PORTS}
    assert ports == {name: str(port) for name, port in GRPC_PORTS.items()}
    for name in GRPC_PORTS:
        # Bound to loopback inside a container, a server is out of every other container's reach.
        assert environment(services[name]).get("THREADLINE_HOST") == "0.0.0.0", name


def test_published_ports_are_the_documented_ones_on_loopback(services):
    host_ports = []
    for name, expected in PUBLISHED.items():
        ports = published(services[name])
        assert {container for _, _, container in ports} == expected, name
        for host_ip, host_port, container in ports:
            assert host_ip == "127.0.0.1", f"{name} publishes {container} beyond this machine"
            assert host_port == container, name
            host_ports.append(host_port)
    ui = published(services[TRACING])
    assert ("127.0.0.1", TRACING_UI_PORT, TRACING_UI_PORT) in ui
    host_ports += [host_port for _, host_port, _ in ui]
    assert len(host_ports) == len(set(host_ports)), f"host ports collide: {sorted(host_ports)}"


def test_the_websocket_gateway_listens_on_all_interfaces_on_its_published_port(services):
    env = environment(services["stream"])
    assert env.get("THREADLINE_WS_HOST") == "0.0.0.0"
    assert env.get("THREADLINE_WS_PORT") == str(WS_PORT)


def test_the_store_keeps_its_database_on_the_declared_volume(compose, services):
    db = PurePosixPath(environment(services["store"])["THREADLINE_DB"])
    assert db.is_absolute()
    volume_mounts = [m for m in mounts(services["store"]) if m["type"] == "volume"]
    at_db_dir = [m for m in volume_mounts if PurePosixPath(m["target"]) == db.parent]
    assert len(at_db_dir) == 1, f"no named volume mounted at {db.parent}"
    assert not at_db_dir[0]["read_only"]
    assert at_db_dir[0]["source"] in (compose.get("volumes") or {})


def test_ingest_reads_the_transcripts_read_only(services):
    ingest = services["ingest"]
    roots = environment(ingest)["THREADLINE_ROOTS"].split(":")
    binds = {m["target"]: m for m in mounts(ingest) if m["type"] == "bind"}
    for root in roots:
        assert root in binds, f"THREADLINE_ROOTS names {root}, which nothing is mounted at"
        assert binds[root]["read_only"], root
    sources = {m["source"] for m in binds.values()}
    assert f"{HOST_ENV['HOME']}/.claude/projects" in sources


def test_every_address_names_a_service_and_its_grpc_port(services):
    seen = 0
    for name, service in services.items():
        for key, value in environment(service).items():
            if not re.fullmatch(r"THREADLINE_\w+_ADDR", key):
                continue
            seen += 1
            host, _, port = value.rpartition(":")
            assert host in services, f"{name}: {key}={value} names no service"
            assert environment(services[host]).get("THREADLINE_PORT") == port, \
                f"{name}: {key}={value} is not the port {host} serves on"
            assert dependencies(service).get(host) == "service_healthy", \
                f"{name} connects to {host} but does not wait for it to be healthy"
    assert seen >= 4


def test_every_threadline_variable_is_a_real_setting():
    known = {setting.env for setting in SETTINGS}
    used = set(re.findall(r"THREADLINE_[A-Z0-9_]+", COMPOSE_FILE.read_text()))
    assert used, "compose.yaml configures nothing"
    assert used <= known, f"not settings of threadline.config: {sorted(used - known)}"


def test_compose_refuses_to_start_without_a_token():
    parsed = yaml.safe_load(COMPOSE_FILE.read_text())
    without = {k: v for k, v in HOST_ENV.items() if k != "THREADLINE_TOKEN"}
    with pytest.raises(KeyError, match="THREADLINE_TOKEN"):
        walk(parsed, lambda text: interpolate(text, without))


def test_every_service_shares_the_token_and_listens_only_on_the_compose_network(services):
    for name in GRPC_PORTS:
        env = environment(services[name])
        assert env.get("THREADLINE_TOKEN") == HOST_ENV["THREADLINE_TOKEN"], name
        # Plain text is allowed on the container network only because nothing is published
        # beyond loopback (test_published_ports_are_the_documented_ones_on_loopback).
        assert env.get("THREADLINE_ALLOW_INSECURE_NETWORK") == "true", name


def test_every_service_sends_traces_to_the_tracing_service(services):
    tracing = services[TRACING]
    assert str(tracing["image"]).startswith("jaegertracing/")
    assert OTLP_GRPC_PORT in exposed(tracing)
    for name in GRPC_PORTS:
        env = environment(services[name])
        endpoint = urlsplit(env["OTEL_EXPORTER_OTLP_ENDPOINT"])
        assert (endpoint.hostname, endpoint.port) == (TRACING, OTLP_GRPC_PORT), name
        assert env.get("OTEL_EXPORTER_OTLP_INSECURE") == "true", name
        assert env.get("OTEL_SERVICE_NAME") == f"threadline-{name}", name


def test_each_service_is_health_checked_on_its_own_grpc_port(services):
    for name, port in GRPC_PORTS.items():
        check = services[name].get("healthcheck")
        assert check and not check.get("disable"), name
        test = check["test"]
        assert test[:3] == ["CMD", "threadline", "health"], name
        assert test[3].rpartition(":")[2] == str(port), name
        assert seconds(check["timeout"]) <= seconds(check["interval"]), name


def test_dependencies_exist_are_healthy_and_form_no_cycle(services):
    graph = {name: dependencies(service) for name, service in services.items()}
    for name, deps in graph.items():
        assert set(deps) <= set(services), f"{name} depends on a service that does not exist"
    for dependant, dependency in REQUIRED_DEPENDENCIES:
        assert graph[dependant].get(dependency) == "service_healthy", (dependant, dependency)

    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"depends_on cycle: {' -> '.join((*path, name))}"
        if name in done:
            return
        for dependency in graph[name]:
            visit(dependency, (*path, name))
        done.add(name)

    for name in graph:
        visit(name, ())


def test_services_restart_and_stop_gracefully(services):
    for name in GRPC_PORTS:
        service = services[name]
        assert service.get("restart") == "unless-stopped", name
        assert service.get("stop_signal") == "SIGTERM", name
        # Room for the gRPC server's own grace, then draining and flushing spans.
        assert seconds(service["stop_grace_period"]) > SHUTDOWN_GRACE_SECONDS, name


# --- the image ----------------------------------------------------------------------------------

def test_the_dockerfile_runs_threadline_from_the_venv_as_a_normal_user():
    stages = dockerfile_stages()
    assert all(stage[0][1].split()[0] == "python:3.11-slim" for stage in stages)
    final = stages[-1]
    instructions = dict(final)  # the last of each instruction in the stage wins
    assert json.loads(instructions["ENTRYPOINT"]) == ["threadline"]
    assert json.loads(instructions["CMD"]) == ["--help"]
    assert instructions["USER"].split(":")[0] not in {"root", "0"}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "threadline" in project["scripts"]

    # `threadline` is found on PATH in the venv the build stage made and the final stage copied.
    venv = env_assignments(stages[0])["UV_PROJECT_ENVIRONMENT"]
    assert f"{venv}/bin" in env_assignments(final)["PATH"].split(":")
    copied = [(sources, dest) for sources, dest, flags in copies(final) if "from" in flags]
    assert ([venv], venv) in copied


def test_the_dockerfile_installs_locked_dependencies_before_the_source():
    build = dockerfile_stages()[0]
    args = env_assignments(build)
    pip_installs = [a for i, a in build if i == "RUN" and "pip install" in a]
    pins = [re.search(r"uv==(\S+?)\"?(\s|$)", a) for a in pip_installs]
    version = next(m[1] for m in pins if m)
    version = re.sub(r"\$\{?(\w+)\}?", lambda m: args[m[1]], version)
    assert re.fullmatch(r"\d+\.\d+\.\d+", version), f"uv is not pinned: {version!r}"

    def position(predicate: Callable[[str, str], bool]) -> int:
        return next(n for n, (i, a) in enumerate(build) if predicate(i, a))

    lock = position(lambda i, a: i == "COPY" and {"pyproject.toml", "uv.lock"} <= set(a.split()))
    deps = position(lambda i, a: i == "RUN" and "uv sync" in a and "--no-install-project" in a)
    source = position(lambda i, a: i == "COPY" and "threadline" in a.split())
    project = position(lambda i, a: i == "RUN" and "uv sync" in a and "--no-install-project"
                       not in a)
    assert lock < deps < source < project
    for n in (deps, project):
        assert {"--frozen", "--no-dev"} <= set(build[n][1].split()), build[n][1]


def test_the_image_gets_every_file_the_package_build_needs():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    needed = {"pyproject.toml", "uv.lock", pyproject["project"]["readme"],
              *pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]}
    sources = {source for stage in dockerfile_stages() for paths, _, flags in copies(stage)
               if "from" not in flags for source in paths}
    assert needed <= sources, f"not copied into the image: {sorted(needed - sources)}"
    for source in sources:
        assert (ROOT / source).exists(), source
        assert not dockerignored(source), f".dockerignore keeps {source} out of the build"


def test_dockerignore_keeps_local_state_out_of_the_build_context():
    for path in [".venv", ".git", "threadline.db", "data/threadline.db-wal",
                 "threadline/__pycache__/config.cpython-311.pyc", ".pytest_cache"]:
        assert dockerignored(path), path


# --- Compose itself, where it can run -----------------------------------------------------------

def _why_compose_cannot_run() -> str | None:
    docker = shutil.which("docker")
    if docker is None:
        return "docker is not installed"
    try:
        if subprocess.run([docker, "compose", "version"], capture_output=True,
                          timeout=30).returncode != 0:
            return "the docker compose plugin is not installed"
        if subprocess.run([docker, "info"], capture_output=True, timeout=30).returncode != 0:
            return "no Docker daemon answers (`docker info` failed)"
    except subprocess.TimeoutExpired:
        return "docker did not answer within 30 s"
    return None


def test_docker_compose_accepts_the_file():
    reason = _why_compose_cannot_run()
    if reason:
        pytest.skip(f"`docker compose config` not run: {reason}")
    result = subprocess.run(["docker", "compose", "-f", str(COMPOSE_FILE), "config", "-q"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60,
                            env={**os.environ, "THREADLINE_TOKEN": HOST_ENV["THREADLINE_TOKEN"]})
    assert result.returncode == 0, result.stderr
