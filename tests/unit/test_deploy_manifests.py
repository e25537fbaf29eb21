"""The deploy files agree with the code: services, ports, settings, commands, probes, routing.

Static checks only (nothing is built or run): deploy/Dockerfile, deploy/docker-compose.yml,
deploy/nginx.conf, deploy/constraints.txt and the kustomize base in deploy/k8s/base are read
and compared with ``services.settings.Settings`` and ``services.cli.build_parser()``. The
operator's kit (deploy/k8s/ops) is checked in tests/unit/test_deploy_ops.py.
"""

from __future__ import annotations

import argparse
import functools
import re
import secrets
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml  # the dev extra installs PyYAML

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

from services.settings import Settings  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S_BASE = DEPLOY / "k8s" / "base"
COMPOSE_FILE = DEPLOY / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
NGINX_CONF = DEPLOY / "nginx.conf"

# The long-running Talk services and the setting that holds each one's port.
APP_SERVICES = {
    "command-api": "command_api_port",
    "query-api": "query_api_port",
    "gateway": "gateway_port",
    "projector": "projector_port",
}
HTTP_API_SERVICES = {"command-api", "query-api", "gateway"}  # behind the edge, autoscaled
SECRET_SETTINGS = {"database_url", "amqp_url", "jwt_secret"}
IMAGE_COMMANDS = {"command-api", "query-api", "projector", "gateway", "migrate", "up"}
TALK_UID = 10001
RABBITMQ_NODES = ("rabbitmq-1", "rabbitmq-2", "rabbitmq-3")  # compose's RabbitMQ cluster
PRESTOP_SLEEP_MAX = 30


# ---------------------------------------------------------------------------------------------
# helpers


def env_name(field: str) -> str:
    return "TALK_" + field.upper()


def settings_env_names() -> dict[str, str]:
    """TALK_* environment name -> settings field name."""
    return {env_name(name): name for name in Settings.model_fields}


def default_of(field: str) -> Any:
    return Settings.model_fields[field].default


# The readers are cached: the tests only read what they return.
@functools.cache
def load_yaml(path: Path) -> Any:
    return yaml.load(path.read_text(), Loader=_Loader)


@functools.cache
def load_yaml_all(path: Path) -> list[Any]:
    return [d for d in yaml.load_all(path.read_text(), Loader=_Loader) if d is not None]


def load_compose() -> dict[str, Any]:
    return load_yaml(COMPOSE_FILE)


def compose_services() -> dict[str, dict[str, Any]]:
    return load_compose()["services"]


def k8s_files() -> list[Path]:
    return sorted(p for p in K8S_BASE.glob("*.yaml") if p.name != "kustomization.yaml")


def k8s_docs() -> list[dict[str, Any]]:
    docs = []
    for path in k8s_files():
        docs.extend(load_yaml_all(path))
    return docs


def k8s_objects(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in k8s_docs() if d["kind"] == kind}


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    return workload["spec"]["template"]["spec"]


def only_container(workload: dict[str, Any]) -> dict[str, Any]:
    containers = pod_spec(workload)["containers"]
    assert len(containers) == 1, workload["metadata"]["name"]
    return containers[0]


def configmap_data() -> dict[str, str]:
    return k8s_objects("ConfigMap")["talk-config"]["data"]


# The Secret talk-secrets is not in the base (no usable default ships): deploy/README.md shows
# the command that creates it, and that command names exactly the secret settings.
_CREATE_SECRET = re.compile(r"kubectl[^\n`]*create secret generic talk-secrets(?P<args>(?:[^\n]*\\\n)*[^\n]*)")


def documented_secret_keys() -> set[str]:
    match = _CREATE_SECRET.search((DEPLOY / "README.md").read_text())
    assert match, "deploy/README.md must show `kubectl create secret generic talk-secrets ...`"
    return set(re.findall(r"--from-literal=(TALK_[A-Z_]+)=", match.group("args")))


# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}
_INTERPOLATION = re.compile(
    r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def interpolate(value: str, environment: dict[str, str] | None = None) -> str:
    """What compose makes of ``value`` in ``environment`` (empty: nothing set); a required
    variable that is not set fails, as ``docker compose`` does."""
    environment = environment or {}

    def one(m: re.Match) -> str:
        name, op, arg = m.group("name"), m.group("op") or "", m.group("arg") or ""
        if name in environment and (environment[name] or not op.startswith(":")):
            return environment[name]
        if op.endswith("?"):
            raise LookupError(f"compose requires {name}: {arg}")
        return arg if op.endswith("-") else ""

    return _INTERPOLATION.sub(one, value)


def interpolate_defaults(value: str) -> str:
    """What compose makes of ``${VAR:-default}`` when VAR is not set."""
    return interpolate(value)


# What the shell sets when compose is run (compose requires TALK_JWT_SECRET, and the RabbitMQ
# nodes' RABBITMQ_ERLANG_COOKIE).
SHELL_ENV = {"TALK_JWT_SECRET": "s" * 48, "RABBITMQ_ERLANG_COOKIE": "c" * 64}


def compose_env(service: dict[str, Any], environment: dict[str, str] | None = None) -> dict[str, str]:
    """A service's environment as compose makes it in ``environment`` (default: SHELL_ENV)."""
    environment = SHELL_ENV if environment is None else environment
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: interpolate(str(v), environment) for k, v in env.items()}


def compose_command(service: dict[str, Any]) -> list[str]:
    command = service.get("command")
    return command.split() if isinstance(command, str) else list(command or [])


def dockerfile_text() -> str:
    # Join continuation lines so that every instruction is one line.
    return re.sub(r"\\\n", " ", DOCKERFILE.read_text())


def dockerfile_instructions() -> list[tuple[str, str]]:
    out = []
    for line in dockerfile_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        out.append((keyword.upper(), rest.strip()))
    return out


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for keyword, rest in dockerfile_instructions():
        if keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((keyword, rest))
    return stages


def dockerfile_labels() -> dict[str, str]:
    labels: dict[str, str] = {}
    for keyword, rest in dockerfile_instructions():
        if keyword == "LABEL":
            for key, value in re.findall(r'([\w.\-]+)="([^"]*)"', rest):
                labels[key] = value
    return labels


def cli_parser() -> argparse.ArgumentParser:
    try:
        from services.cli import build_parser
    except ImportError as exc:  # the CLI is part of the contract: fail, do not skip
        pytest.fail(f"services.cli.build_parser is missing: {exc}")
    return build_parser()


def parses(argv: list[str]) -> argparse.Namespace:
    """``talk <argv>`` as the CLI reads it; a usage error fails the test."""
    try:
        return cli_parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"`talk {' '.join(argv)}` is not a valid command line")


def cli_subcommands() -> set[str]:
    parser = cli_parser()
    names: set[str] = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            names.update(action.choices)
    assert names, "build_parser() defines no subcommands"
    return names


# A small nginx config reader: enough for directives, blocks and quoted strings.
_NGINX_TOKEN = re.compile(
    r"""\s*(?:(#[^\n]*)|('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")|([{};])|([^\s{};'"#]+))"""
)


def parse_nginx(text: str) -> list[tuple[str, list[str], list | None]]:
    tokens: list[str] = []
    pos = 0
    while pos < len(text):
        m = _NGINX_TOKEN.match(text, pos)
        if not m or m.end() == pos:
            if text[pos:].strip() == "":
                break
            raise AssertionError(f"nginx.conf: cannot read at {text[pos : pos + 40]!r}")
        pos = m.end()
        comment, quoted, punct, word = m.groups()
        if comment:
            continue
        if quoted:
            tokens.append(quoted[1:-1])
        elif punct:
            tokens.append(punct)
        elif word:
            tokens.append(word)

    def block(i: int) -> tuple[list, int]:
        out: list = []
        current: list[str] = []
        while i < len(tokens):
            tok = tokens[i]
            if tok == ";":
                out.append((current[0], current[1:], None))
                current = []
            elif tok == "{":
                children, i = block(i + 1)
                out.append((current[0], current[1:], children))
                current = []
            elif tok == "}":
                assert not current, f"nginx.conf: unterminated directive {current}"
                return out, i
            else:
                current.append(tok)
            i += 1
        assert not current, f"nginx.conf: unterminated directive {current}"
        return out, i

    tree, _ = block(0)
    return tree


def nginx_find(tree: list, name: str, *args: str) -> list:
    return [d for d in tree if d[0] == name and tuple(d[1][: len(args)]) == args]


def nginx_tree() -> list:
    return parse_nginx(NGINX_CONF.read_text())


def nginx_upstreams() -> dict[str, list[str]]:
    return {
        d[1][0]: [c[1][0] for c in d[2] if c[0] == "server"]
        for d in nginx_find(nginx_tree(), "upstream")
    }


def nginx_server() -> list:
    servers = nginx_find(nginx_tree(), "server")
    assert len(servers) == 1
    return servers[0][2]


# ---------------------------------------------------------------------------------------------
# everything parses, everything is there


def test_compose_parses_and_has_every_service():
    compose = load_compose()
    assert isinstance(compose, dict)
    services = compose["services"]
    expected = set(APP_SERVICES) | {"postgres", *RABBITMQ_NODES, "migrate", "edge"}
    assert expected <= set(services), expected - set(services)
    assert services["postgres"]["image"] == "postgres:15"
    for node in RABBITMQ_NODES:
        assert services[node]["image"] == "rabbitmq:3.10-management"
    for name, service in services.items():
        assert "image" in service or "build" in service, name


def test_k8s_manifests_parse_and_kustomization_lists_them_all():
    kustomization = load_yaml(K8S_BASE / "kustomization.yaml")
    assert kustomization["kind"] == "Kustomization"
    listed = set(kustomization["resources"])
    on_disk = {p.name for p in k8s_files()}
    assert listed == on_disk, f"not listed: {on_disk - listed}; missing: {listed - on_disk}"
    for doc in k8s_docs():
        assert doc.get("apiVersion") and doc.get("kind"), doc
        assert doc["metadata"].get("name"), doc


def test_every_service_exists_in_compose_and_k8s():
    compose = compose_services()
    deployments = k8s_objects("Deployment")
    services = k8s_objects("Service")
    pdbs = k8s_objects("PodDisruptionBudget")
    hpas = k8s_objects("HorizontalPodAutoscaler")
    for name in [*APP_SERVICES, "edge"]:
        assert name in compose, f"{name} missing from docker-compose.yml"
        assert name in deployments, f"no Deployment {name}"
        assert name in services, f"no Service {name}"
        assert name in pdbs, f"no PodDisruptionBudget {name}"
    assert set(hpas) == HTTP_API_SERVICES
    for name, hpa in hpas.items():
        assert hpa["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": name,
        }
        assert hpa["spec"]["minReplicas"] >= 2
        assert "replicas" not in deployments[name]["spec"], f"{name}: replicas belong to the HPA"
        assert only_container(deployments[name])["resources"]["requests"]["cpu"]
    jobs = k8s_objects("Job")
    assert [only_container(j)["args"] for j in jobs.values()] == [["migrate"]]
    assert compose_command(compose["migrate"]) == ["migrate"]


def test_selectors_match_pod_labels():
    for kind in ("Deployment", "Service", "PodDisruptionBudget"):
        for name, obj in k8s_objects(kind).items():
            selector = obj["spec"]["selector"]
            selector = selector.get("matchLabels", selector)
            deployment = k8s_objects("Deployment")[name]
            labels = deployment["spec"]["template"]["metadata"]["labels"]
            assert selector.items() <= labels.items(), f"{kind} {name}"


def test_projector_runs_one_active_and_one_standby():
    projector = k8s_objects("Deployment")["projector"]
    assert projector["spec"]["replicas"] == 2
    assert "projector" not in k8s_objects("HorizontalPodAutoscaler")


# ---------------------------------------------------------------------------------------------
# ports, probes, commands


def test_ports_match_settings_defaults():
    compose = compose_services()
    deployments = k8s_objects("Deployment")
    services = k8s_objects("Service")
    config = configmap_data()
    exposed = set()
    for keyword, rest in dockerfile_instructions():
        if keyword == "EXPOSE":
            exposed.update(int(p.split("/")[0]) for p in rest.split())
    label_ports = dict(item.split("=") for item in dockerfile_labels()["org.talk.ports"].split())

    for name, field in APP_SERVICES.items():
        port = default_of(field)
        assert isinstance(port, int)
        # Kubernetes
        (container_port,) = only_container(deployments[name])["ports"]
        assert container_port["containerPort"] == port, name
        (service_port,) = services[name]["spec"]["ports"]
        assert service_port["port"] == port, name
        assert service_port["targetPort"] in (port, container_port["name"]), name
        assert config[env_name(field)] == str(port)
        # compose
        service = compose[name]
        assert compose_env(service).get(env_name(field), str(port)) == str(port), name
        assert [int(p) for p in service.get("expose", [])] == [port], name
        # image
        assert port in exposed, name
        assert label_ports[name] == str(port), name
    up_port = parses(["up"]).port
    assert up_port in exposed and label_ports["up"] == str(up_port)


def test_probes_use_livez_and_readyz():
    for name in APP_SERVICES:
        container = only_container(k8s_objects("Deployment")[name])
        port_name = container["ports"][0]["name"]
        for probe, path in (
            ("startupProbe", "/livez"),
            ("livenessProbe", "/livez"),
            ("readinessProbe", "/readyz"),
        ):
            get = container[probe]["httpGet"]
            assert get["path"] == path, f"{name} {probe}"
            assert get["port"] in (port_name, default_of(APP_SERVICES[name])), f"{name} {probe}"

    compose = compose_services()
    for name, field in APP_SERVICES.items():
        test = " ".join(compose[name]["healthcheck"]["test"])
        assert f"http://127.0.0.1:{default_of(field)}/readyz" in test, name
        assert "curl" not in test  # python:3.11-slim has no curl
    for name in ("postgres", *RABBITMQ_NODES, "edge"):
        assert compose[name]["healthcheck"]["test"], name


def test_commands_are_cli_subcommands():
    subcommands = cli_subcommands()

    labels = dockerfile_labels()
    label_commands = set(labels["org.talk.commands"].split())
    assert label_commands == IMAGE_COMMANDS
    assert label_commands <= subcommands, label_commands - subcommands

    instructions = dict(dockerfile_instructions())  # the last of each keyword wins, as in Docker
    assert instructions["ENTRYPOINT"] == '["talk"]'
    cmd = yaml.safe_load(instructions["CMD"])
    assert cmd[0] == "up"
    # `talk up` binds 127.0.0.1 by default: in a container it must listen on every address.
    assert parses(cmd).host == "0.0.0.0"

    used = []
    compose = compose_services()
    for name in [*APP_SERVICES, "migrate"]:
        command = compose_command(compose[name])
        assert command and command[0] == name, name
        parses(command)
        used.append(command[0])
    for kind in ("Deployment", "Job"):
        for obj in k8s_objects(kind).values():
            container = only_container(obj)
            if container["image"] != "talk":
                continue
            assert "command" not in container, "keep the image ENTRYPOINT (talk); set args"
            parses(container["args"])
            used.append(container["args"][0])
    assert set(APP_SERVICES) | {"migrate"} <= set(used)
    assert set(used) <= subcommands, set(used) - subcommands


# ---------------------------------------------------------------------------------------------
# settings: ConfigMap + Secret name every setting, and nothing else


def test_configmap_and_secret_cover_exactly_the_settings():
    names = settings_env_names()
    config, secret = configmap_data(), documented_secret_keys()
    assert not set(config) & set(secret), "a setting is both in the ConfigMap and the Secret"
    for key in [*config, *secret]:
        assert key in names, f"{key} is not a setting of services/settings.py"
    missing = set(names) - set(config) - set(secret)
    assert not missing, f"settings missing from talk-config/talk-secrets: {sorted(missing)}"
    assert {names[k] for k in secret} == SECRET_SETTINGS


def test_compose_env_names_are_settings():
    names = settings_env_names()
    text = COMPOSE_FILE.read_text()
    for var in _INTERPOLATION.finditer(text):
        if var.group("name").startswith("TALK_"):
            assert var.group("name") in names, var.group(0)
    for name, service in compose_services().items():
        for key in compose_env(service):
            if key.startswith("TALK_"):
                assert key in names, f"{name}: {key} is not a setting"
    for name in [*APP_SERVICES, "migrate"]:
        env = compose_env(compose_services()[name], {"TALK_JWT_SECRET": "from the shell"})
        for field in SECRET_SETTINGS:
            assert env.get(env_name(field)), f"{name} lacks {env_name(field)}"


def _settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for key in settings_env_names():
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Settings()


def test_k8s_and_compose_values_are_valid_settings(monkeypatch):
    strong = secrets.token_urlsafe(48)
    made = {"TALK_DATABASE_URL": "postgresql://talk:pw@db:5432/talk",
            "TALK_AMQP_URL": "amqps://talk:pw@mq:5671/", "TALK_JWT_SECRET": strong}
    settings = _settings_from({**configmap_data(), **made}, monkeypatch)
    for name, field in APP_SERVICES.items():
        assert getattr(settings, field) == default_of(field), name
    for name in [*APP_SERVICES, "migrate"]:
        env = {
            k: v for k, v in compose_env(compose_services()[name], {"TALK_JWT_SECRET": strong}).items()
            if k.startswith("TALK_")
        }
        settings = _settings_from(env, monkeypatch)
        assert settings.require_database_url().startswith("postgresql://")
        assert settings.require_jwt_secret() == strong


def test_no_usable_secret_ships():
    """Compose refuses to start without TALK_JWT_SECRET (no fallback); Kubernetes references
    a Secret the operator creates; the settings refuse a weak or published one."""
    for name in [*APP_SERVICES, "migrate"]:
        with pytest.raises(LookupError, match="TALK_JWT_SECRET"):
            compose_env(compose_services()[name], {})
    assert "Secret" not in {d["kind"] for d in k8s_docs()}, "the base must not fill the Secret"
    for workload in [*k8s_objects("Deployment").values(), *k8s_objects("Job").values()]:
        if only_container(workload)["image"] == "talk":
            assert {"secretRef": {"name": "talk-secrets"}} in only_container(workload)["envFrom"]
    readme = (DEPLOY / "README.md").read_text()
    assert "secrets.token_urlsafe(48)" in readme or "talk secret" in readme
    with pytest.raises(ValueError, match="at least 32"):
        Settings(jwt_secret="too-short")


# ---------------------------------------------------------------------------------------------
# shutdown, security, resources


def _duration_seconds(value: str) -> float:
    total = 0.0
    for amount, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", value):
        total += float(amount) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    return total


def test_grace_periods_cover_prestop_and_drain():
    shutdown = float(configmap_data()["TALK_SHUTDOWN_TIMEOUT"])
    assert shutdown == default_of("shutdown_timeout")
    for name in APP_SERVICES:
        deployment = k8s_objects("Deployment")[name]
        command = only_container(deployment)["lifecycle"]["preStop"]["exec"]["command"]
        assert command[0] == "sleep" and len(command) == 2, name
        sleep = float(command[1])
        assert 0 < sleep <= PRESTOP_SLEEP_MAX
        assert pod_spec(deployment)["terminationGracePeriodSeconds"] > sleep + shutdown, name
    for name in [*APP_SERVICES, "migrate"]:
        service = compose_services()[name]
        assert _duration_seconds(service["stop_grace_period"]) > shutdown, name


def test_talk_pods_are_locked_down():
    workloads = [
        *(k8s_objects("Deployment")[n] for n in APP_SERVICES),
        *k8s_objects("Job").values(),
    ]
    for workload in workloads:
        name = workload["metadata"]["name"]
        spec = pod_spec(workload)
        container = only_container(workload)
        assert container["image"] == "talk", name
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] == TALK_UID, name
        assert spec.get("automountServiceAccountToken") is False, name
        sc = container["securityContext"]
        assert sc["runAsNonRoot"] is True and sc["runAsUser"] == TALK_UID, name
        assert sc["readOnlyRootFilesystem"] is True, name
        assert sc["allowPrivilegeEscalation"] is False, name
        assert sc["capabilities"]["drop"] == ["ALL"], name
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert "emptyDir" in volumes[mounts["/tmp"]], name
        assert {"configMapRef": {"name": "talk-config"}} in container["envFrom"], name
        assert {"secretRef": {"name": "talk-secrets"}} in container["envFrom"], name
        assert not container.get("env"), f"{name}: settings come from talk-config/talk-secrets"
        resources = container["resources"]
        assert resources["requests"]["cpu"] and resources["requests"]["memory"], name
        assert resources["limits"]["memory"], name


def test_compose_startup_order():
    compose = compose_services()
    for name in APP_SERVICES:
        depends = compose[name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy", name
        for node in RABBITMQ_NODES:
            assert depends[node]["condition"] == "service_healthy", name
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
    assert compose["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert compose["migrate"]["restart"] == "no"
    edge_depends = compose["edge"]["depends_on"]
    for name in HTTP_API_SERVICES:
        assert edge_depends[name]["condition"] == "service_healthy"


def test_dockerfile_is_multistage_slim_and_non_root():
    text = dockerfile_text()
    args = dict(re.findall(r"^ARG\s+(\w+)=(\S+)", text, re.M))
    stages = dockerfile_stages()
    assert len(stages) >= 2
    for stage in stages:
        image = stage[0][1].split()[0]
        image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image)
        assert image == "python:3.11-slim"
    final = stages[-1]
    copies = [rest for keyword, rest in final if keyword == "COPY"]
    assert copies == ["--from=builder /opt/venv /opt/venv"], "the final stage copies the venv only"
    runs = " ".join(rest for keyword, rest in final if keyword == "RUN")
    assert not re.search(r"apt-get|apk |gcc|build-essential|pip install", runs)
    users = [rest for keyword, rest in final if keyword == "USER"]
    assert users and users[-1].split(":")[0] == str(TALK_UID)
    assert (DEPLOY / "Dockerfile.dockerignore").is_file()


# ---------------------------------------------------------------------------------------------
# the edge


def test_nginx_routes_reads_writes_and_websocket():
    upstreams = nginx_upstreams()
    compose = compose_services()
    k8s_services = k8s_objects("Service")
    by_service = {}
    for upstream, servers in upstreams.items():
        assert len(servers) == 1, upstream
        host, port = servers[0].rsplit(":", 1)
        assert host in APP_SERVICES and host in compose and host in k8s_services, host
        assert int(port) == default_of(APP_SERVICES[host]), servers[0]
        assert k8s_services[host]["spec"]["ports"][0]["port"] == int(port)
        by_service[host] = upstream
    assert set(by_service) == HTTP_API_SERVICES

    (method_map,) = nginx_find(nginx_tree(), "map", "$request_method", "$talk_upstream")
    routes = {c[0]: c[1][0] for c in method_map[2]}
    assert routes["GET"] == by_service["query-api"]
    assert routes["HEAD"] == by_service["query-api"]
    assert routes["default"] == by_service["command-api"]
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        assert routes.get(method, routes["default"]) == by_service["command-api"], method

    server = nginx_server()
    assert nginx_find(server, "listen", "8080")
    (ws,) = [d for d in nginx_find(server, "location") if d[1][-1] == "/v1.0/ws"]
    ws_body = ws[2]
    assert nginx_find(ws_body, "proxy_pass", f"http://{by_service['gateway']}")
    assert nginx_find(ws_body, "proxy_set_header", "Upgrade", "$http_upgrade")
    assert nginx_find(ws_body, "proxy_set_header", "Connection")
    (api,) = [d for d in nginx_find(server, "location") if d[1] == ["/v1.0/"]]
    assert nginx_find(api[2], "proxy_pass", "http://$talk_upstream")


def test_edge_uses_the_same_nginx_conf_in_compose_and_k8s():
    volumes = compose_services()["edge"]["volumes"]
    assert "./nginx.conf:/etc/nginx/conf.d/default.conf:ro" in volumes
    (port,) = compose_services()["edge"]["ports"]
    assert port == "${EDGE_BIND:-127.0.0.1}:${EDGE_PORT:-8080}:8080"
    assert interpolate_defaults(port) == "127.0.0.1:8080:8080", "local only by default"
    assert (K8S_BASE / "nginx.conf").read_text() == NGINX_CONF.read_text(), (
        "deploy/k8s/base/nginx.conf must be a copy of deploy/nginx.conf"
    )
    kustomization = load_yaml(K8S_BASE / "kustomization.yaml")
    generated = {g["name"]: g for g in kustomization["configMapGenerator"]}
    assert generated["talk-edge-nginx"]["files"] == ["nginx.conf"]
    edge = k8s_objects("Deployment")["edge"]
    assert only_container(edge)["ports"][0]["containerPort"] == 8080
    volumes = {v["name"]: v for v in pod_spec(edge)["volumes"]}
    assert any(v.get("configMap", {}).get("name") == "talk-edge-nginx" for v in volumes.values())


def test_kustomization_lists_every_manifest_and_they_all_exist():
    """What kustomize would read: every listed resource and generator file exists and
    parses, and every manifest of the base is listed (the render itself is checked below
    when kubectl or kustomize is on the machine)."""
    kustomization = load_yaml(K8S_BASE / "kustomization.yaml")
    listed = set(kustomization["resources"])
    for name in listed:
        assert (K8S_BASE / name).is_file(), f"kustomization lists a missing file: {name}"
        assert list(yaml.safe_load_all((K8S_BASE / name).read_text())), name
    on_disk = {p.name for p in K8S_BASE.glob("*.yaml")} - {"kustomization.yaml"}
    assert on_disk == listed, f"manifests not listed in kustomization.yaml: {on_disk - listed}"
    for generator in kustomization.get("configMapGenerator", []):
        for file in generator.get("files", []):
            assert (K8S_BASE / file).is_file(), file


def _kustomize_command() -> list[str] | None:
    if shutil.which("kustomize"):
        return ["kustomize", "build", str(K8S_BASE)]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize", str(K8S_BASE)]
    return None


def test_kustomize_builds_the_base():
    cmd = _kustomize_command()
    if cmd is None:  # no renderer here: the structural test above covers what it can
        test_kustomization_lists_every_manifest_and_they_all_exist()
        return
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    rendered = [d for d in yaml.safe_load_all(out.stdout) if d]
    kinds = {(d["kind"], d["metadata"]["name"]) for d in rendered}
    for name in APP_SERVICES:
        assert ("Deployment", name) in kinds
    images = {
        c["image"]
        for d in rendered
        if d["kind"] in ("Deployment", "Job")
        for c in d["spec"]["template"]["spec"]["containers"]
    }
    assert "talk" not in images, "the images transformer should have set a tag"


def test_the_edge_never_logs_a_query_string():
    """`?token=<JWT>` must not reach a log: the access log has the path only, and nginx's
    error lines (which quote the request line) are kept to critical ones."""
    for path in (NGINX_CONF, K8S_BASE / "nginx.conf"):
        tree = parse_nginx(path.read_text())
        (fmt,) = nginx_find(tree, "log_format", "talk_edge")
        text = " ".join(fmt[1])
        for leaky in ("$request_uri", "$request ", "$args", "$query_string", "$arg_",
                      "$http_referer", "$is_args"):
            assert leaky not in text + " ", (path, leaky)
        assert '"path":"$uri"' in text
        server = nginx_find(tree, "server")[0][2]
        (access,) = nginx_find(server, "access_log")
        assert access[1][-1] == "talk_edge"
        (error,) = nginx_find(server, "error_log")
        assert error[1][-1] in ("crit", "alert", "emerg"), error


def test_deployments_wait_for_the_schema():
    """Each Talk Deployment starts its service only once `talk migrate --check --wait`
    passes, so a fresh apply never routes to a pod whose tables are not there yet."""
    for name in APP_SERVICES:
        spec = pod_spec(k8s_objects("Deployment")[name])
        (init,) = spec["initContainers"]
        assert init["image"] == "talk" and "command" not in init, name
        args = parses(init["args"])
        assert (args.command, args.check) == ("migrate", True), name
        assert args.wait > 60, name
        assert {"secretRef": {"name": "talk-secrets"}} in init["envFrom"], name
        sc = init["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True and sc["runAsUser"] == TALK_UID, name
        assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"]
