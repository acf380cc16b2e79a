"""The container image and the deployment files, proven without a container engine: the
Dockerfile parsed and its install steps replayed into a fresh venv, its entrypoint and
HEALTHCHECK run; compose and Kubernetes files checked against what the server knows."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import httpx
import pytest
import yaml
from dockerfile_parse import DockerfileParser

from gqlchannels.cli.commands import main as cli
from gqlchannels.config.layer_url import parse_layer_url
from gqlchannels.server.lifespan import LAYER_CLOSE_TIMEOUT
from tests.support.server import ServerProcess, clean_env, free_port

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config"
SERVE = cli.commands["serve"]


def known_variables() -> dict[str, object]:
    """Every environment variable the CLI reads, with its default."""
    known: dict[str, object] = {}
    for command in cli.commands.values():
        for param in command.params:
            names = param.envvar if isinstance(param.envvar, list) else [param.envvar] if param.envvar else []
            for name in names:
                known[name] = param.default
    return known


def serve_default(name: str) -> object:
    return next(p.default for p in SERVE.params if p.name == name)


@pytest.fixture(scope="module")
def dockerfile() -> DockerfileParser:
    return DockerfileParser(path=str(ROOT / "Dockerfile"))  # ARGs at their defaults, as `docker build` has them


def image_python_version(parser: DockerfileParser) -> tuple[int, int]:
    match = re.fullmatch(r"python:(\d+)\.(\d+)-slim", parser.baseimage)
    assert match, parser.baseimage
    return int(match[1]), int(match[2])


def python_of_version(version: tuple[int, int]) -> str | None:
    """An interpreter of exactly that version on this machine: this one, on PATH or pyenv's."""
    if sys.version_info[:2] == version:
        return sys.executable
    name = "python%d.%d" % version
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    for candidate in [shutil.which(name), *sorted(pyenv.glob(f"versions/{version[0]}.{version[1]}.*/bin/{name}"))]:
        if candidate and subprocess.run([str(candidate), "-c", f"import sys; assert sys.version_info[:2] == {version}"],
                                        capture_output=True).returncode == 0:
            return str(candidate)
    return None


def stages(parser: DockerfileParser) -> list[list[dict]]:
    result: list[list[dict]] = []
    for instruction in parser.structure:
        if instruction["instruction"] == "FROM":
            result.append([])
        if result:
            result[-1].append(instruction)
    return result


def final_stage(parser: DockerfileParser) -> list[dict]:
    return stages(parser)[-1]


def instructions(stage: list[dict], name: str) -> list[str]:
    return [i["value"] for i in stage if i["instruction"] == name]


def env_of(parser: DockerfileParser) -> dict[str, str]:
    return dict(parser.envs)


# -- the Dockerfile's properties ---------------------------------------------------------


def test_dockerfile_is_slim_multi_stage_and_leaves_build_tools_behind(dockerfile: DockerfileParser) -> None:
    all_stages = stages(dockerfile)
    assert len(all_stages) >= 2
    for stage in all_stages:
        assert re.fullmatch(r"python:\$\{PYTHON_VERSION\}-slim( AS \w+)?", stage[0]["value"]), stage[0]["value"]
    final = final_stage(dockerfile)
    assert any("--from=build" in value for value in instructions(final, "COPY"))
    runs = " ".join(instructions(final, "RUN"))
    assert "--no-index" in runs  # installs the built wheels only, nothing fetched or compiled here
    assert not re.search(r"apt-get|gcc|build-essential|pip wheel", runs)


def test_dockerfile_runs_unprivileged_with_exec_entrypoint_and_healthcheck(dockerfile: DockerfileParser) -> None:
    final = final_stage(dockerfile)
    user = instructions(final, "USER")[-1]
    assert user not in ("root", "0")
    entrypoint = json.loads(instructions(final, "ENTRYPOINT")[-1])  # JSON: exec form, no shell
    assert entrypoint == ["gqlchannels", "serve"]
    healthcheck = instructions(final, "HEALTHCHECK")[-1]
    assert "/healthz" in healthcheck
    assert json.loads(healthcheck.split("CMD", 1)[1])[0] == "python"  # exec form, no curl needed
    assert instructions(final, "EXPOSE") == [str(serve_default("port"))]


def test_dockerfile_environment_is_known_to_the_server(dockerfile: DockerfileParser) -> None:
    env = env_of(dockerfile)
    ours = {name for name in env if name.startswith("GQLCHANNELS_")}
    assert ours <= known_variables().keys()
    assert env["GQLCHANNELS_HOST"] == "0.0.0.0"
    assert int(env["GQLCHANNELS_PORT"]) == serve_default("port")


# -- the Dockerfile's install steps, replayed -------------------------------------------


def pip_steps(stage: list[dict]) -> list[list[str]]:
    """The pip commands of a stage's RUN lines (other commands, like useradd, need root)."""
    steps = []
    for run in instructions(stage, "RUN"):
        for command in run.split("&&"):
            words = shlex.split(command)
            if words[:3] == ["python", "-m", "pip"]:
                steps.append(words[3:])
    return steps


@pytest.fixture(scope="module")
def image_venv(dockerfile: DockerfileParser, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("image")
    context, wheels, env_dir = work / "src", work / "wheels", work / "venv"
    build, final = stages(dockerfile)[0], final_stage(dockerfile)
    context.mkdir()
    for copy in instructions(build, "COPY"):  # COPY pyproject.toml README.md ... ./  and  COPY gqlchannels ./gqlchannels
        *sources, _ = copy.split()
        for source in sources:
            (shutil.copytree if (ROOT / source).is_dir() else shutil.copy)(ROOT / source, context / source)
    base_python = python_of_version(image_python_version(dockerfile))
    if base_python is None:  # the image's own Python is the better replay, not the only one
        warnings.warn(f"no Python {'.'.join(map(str, image_python_version(dockerfile)))} here (the image's): "
                      f"replaying the Dockerfile's install steps with Python {sys.version.split()[0]}", stacklevel=1)
        base_python = sys.executable
    subprocess.run([base_python, "-m", "venv", str(env_dir)], check=True, timeout=120)
    python = str(env_dir / "bin" / "python")

    def replay(args: list[str], cwd: Path) -> None:
        args = [str(wheels) if a == "/wheels" else a for a in args if a != "--no-cache-dir"]  # cache: speed only
        result = subprocess.run([python, "-m", "pip", *args], cwd=cwd, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]

    for args in pip_steps(build):
        replay(args, context)
    for args in pip_steps(final):
        replay(args, work)
    return env_dir


def image_env(dockerfile: DockerfileParser, port: int, **extra: str) -> dict[str, str]:
    env = clean_env(**env_of(dockerfile))
    env.update(GQLCHANNELS_HOST="127.0.0.1", GQLCHANNELS_PORT=str(port), **extra)  # loopback, free port
    return env


def test_image_entrypoint_serves_and_its_healthcheck_passes(dockerfile: DockerfileParser, image_venv: Path,
                                                            tmp_path: Path) -> None:
    port = free_port()
    entrypoint = json.loads(instructions(final_stage(dockerfile), "ENTRYPOINT")[-1])
    env = image_env(dockerfile, port, GQLCHANNELS_APP_DIR=str(tmp_path))
    with ServerProcess(port=port, pass_port=False, env=env, cwd=tmp_path, executable=str(image_venv / "bin" / "python"),
                       command=(str(image_venv / "bin" / entrypoint[0]), *entrypoint[1:])) as server:
        health = json.loads(instructions(final_stage(dockerfile), "HEALTHCHECK")[-1].split("CMD", 1)[1])
        check = subprocess.run([str(image_venv / "bin" / health[0]), *health[1:]], env=env, timeout=30)
        assert check.returncode == 0
        response = httpx.post(f"{server.url}/graphql", json={"query": "{ hello }"})
        assert response.json() == {"data": {"hello": "Hello, world!"}}
    # The installed package is the image's, not this checkout's.
    assert "site-packages" in subprocess.run([str(image_venv / "bin" / "python"), "-c",
                                              "import gqlchannels; print(gqlchannels.__file__)"],
                                             capture_output=True, text=True, cwd=tmp_path).stdout


def test_image_runs_a_current_python_with_django_6(dockerfile: DockerfileParser, image_venv: Path) -> None:
    assert image_python_version(dockerfile) >= (3, 12)  # what Django 6 needs
    out = subprocess.run([str(image_venv / "bin" / "python"), "-c",
                          "import sys, django; print(*sys.version_info[:2], django.VERSION[0])"],
                         capture_output=True, text=True, check=True).stdout.split()
    python, django_major = (int(out[0]), int(out[1])), int(out[2])
    assert django_major == (6 if python >= (3, 12) else 5), out  # the newest Django that Python can have


def test_image_serves_a_mounted_users_schema(dockerfile: DockerfileParser, image_venv: Path, tmp_path: Path) -> None:
    # docker run -v "$PWD:/app" -e GQLCHANNELS_APP=myapp.schema:schema gqlchannels
    (tmp_path / "myapp").mkdir()
    (tmp_path / "myapp" / "__init__.py").write_text("")
    (tmp_path / "myapp" / "schema.py").write_text(textwrap.dedent("""
        import strawberry

        @strawberry.type
        class Query:
            @strawberry.field
            def mine(self) -> str:
                return "the user's own schema"

        schema = strawberry.Schema(query=Query)
    """))
    port = free_port()
    env = image_env(dockerfile, port, GQLCHANNELS_APP_DIR=str(tmp_path), GQLCHANNELS_APP="myapp.schema:schema")
    with ServerProcess(port=port, pass_port=False, env=env, cwd=tmp_path, executable=str(image_venv / "bin" / "python"),
                       command=(str(image_venv / "bin" / "gqlchannels"), "serve")) as server:
        assert httpx.post(f"{server.url}/graphql", json={"query": "{ mine }"}).json() == \
            {"data": {"mine": "the user's own schema"}}


# -- config/: compose, Kubernetes, the example environment -------------------------------


def test_example_env_file_lists_every_variable_with_its_default() -> None:
    text = (CONFIG / "gqlchannels.env.example").read_text()
    listed = dict(re.findall(r"^(GQLCHANNELS_\w+)=(.*)$", text, re.M))
    commented = set(re.findall(r"^# (GQLCHANNELS_\w+)=", text, re.M))
    serve_vars = {p.envvar if isinstance(p.envvar, str) else p.envvar[0]: p for p in SERVE.params if p.envvar}
    assert serve_vars.keys() == listed.keys() | commented
    for name, value in listed.items():
        param = serve_vars[name]
        if name == "GQLCHANNELS_APP":
            assert value == "gqlchannels.examples.chat:schema"
            continue
        assert param.type_cast_value(None, value) == param.default, name  # the listed default is the real one
    for name in commented:  # only settings without a default are left commented out
        default = serve_vars[name].default
        assert default is None or default == () or type(default).__name__ == "Sentinel", name


def compose() -> dict:
    return yaml.safe_load((CONFIG / "compose.yaml").read_text())


def test_compose_runs_broker_and_two_replicas_the_server_understands() -> None:
    services = compose()["services"]
    server, broker = services["gqlchannels"], services["rabbitmq"]
    assert server["deploy"]["replicas"] == 2
    assert server["depends_on"]["rabbitmq"]["condition"] == "service_healthy"
    assert "healthcheck" in broker and server["restart"] and broker["restart"]
    assert set(server["environment"]) <= known_variables().keys()
    assert server["ports"][0].endswith(f":{serve_default('port')}")
    grace = int(server["stop_grace_period"].rstrip("s"))
    assert grace > float(server["environment"]["GQLCHANNELS_SHUTDOWN_TIMEOUT"]) + LAYER_CLOSE_TIMEOUT - 1
    # The layer URL names the vhost and user that RabbitMQ's definitions create.
    spec = parse_layer_url(server["environment"]["GQLCHANNELS_LAYER_URL"])
    definitions = json.loads((CONFIG / "rabbitmq" / "definitions.json").read_text())
    url = httpx.URL(spec.config["url"])
    assert url.path.strip("/") == definitions["vhosts"][0]["name"]
    assert url.username == definitions["users"][0]["name"]
    mounted = {volume.split(":")[0] for volume in broker["volumes"]}
    assert {"./rabbitmq/rabbitmq.conf", "./rabbitmq/definitions.json"} <= mounted


def k8s(kind: str) -> dict:
    for path in (CONFIG / "k8s").glob("*.yaml"):
        for document in yaml.safe_load_all(path.read_text()):
            if document and document["kind"] == kind:
                return document
    raise AssertionError(f"no {kind} in config/k8s")


def test_kubernetes_probes_ports_and_grace_agree_with_the_server(dockerfile: DockerfileParser) -> None:
    pod = k8s("Deployment")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["ports"][0]["containerPort"] == serve_default("port")
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    env = {item["name"]: item.get("value") for item in container["env"]}
    secret_env = k8s("Secret")["stringData"]
    assert (env.keys() | secret_env.keys()) <= known_variables().keys()
    parse_layer_url(secret_env["GQLCHANNELS_LAYER_URL"])
    shutdown = float(env.get("GQLCHANNELS_SHUTDOWN_TIMEOUT") or serve_default("shutdown_timeout"))
    pre_stop = float(re.search(r"sleep\((\d+)\)", " ".join(container["lifecycle"]["preStop"]["exec"]["command"]))[1])
    assert pod["terminationGracePeriodSeconds"] > pre_stop + shutdown + LAYER_CLOSE_TIMEOUT
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert str(pod["securityContext"]["runAsUser"]) == instructions(final_stage(dockerfile), "USER")[-1]
    service = k8s("Service")
    assert service["spec"]["ports"][0]["targetPort"] == container["ports"][0]["name"]
    assert service["spec"]["selector"] == k8s("Deployment")["spec"]["selector"]["matchLabels"]


def test_dockerignore_keeps_the_build_context_small() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "tests"} <= set(ignored)
    assert os.path.exists(ROOT / "gqlchannels")
    assert sys.version_info >= (3, 11)
