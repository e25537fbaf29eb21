"""RabbitMQ runs as a cluster of 3 in compose and on Kubernetes, and Talk is given every node.

Static checks of deploy/docker-compose.yml with deploy/rabbitmq-cluster.conf (three nodes,
classic config peer discovery naming exactly them, a shared Erlang cookie that compose
requires) and of deploy/k8s/rabbitmq (a StatefulSet of 3 behind a headless Service, the
Kubernetes peer discovery plugin with the API rights it needs, the cookie from a Secret), and
of the settings Talk gets: one AMQP URL per node, the stream queue's replicas.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from services.amqp import split_amqp_urls
from services.settings import Settings
from tests.unit.test_deploy_manifests import (
    APP_SERVICES,
    DEPLOY,
    RABBITMQ_NODES,
    compose_env,
    compose_services,
    configmap_data,
)

K8S_RABBITMQ = DEPLOY / "k8s" / "rabbitmq"
CLUSTER_CONF = DEPLOY / "rabbitmq-cluster.conf"
NODES = 3


def _conf(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def _k8s_objects() -> dict[tuple[str, str], dict]:
    kustomization = yaml.safe_load((K8S_RABBITMQ / "kustomization.yaml").read_text())
    objects = {}
    for name in kustomization["resources"]:
        for doc in yaml.safe_load_all((K8S_RABBITMQ / name).read_text()):
            objects[(doc["kind"], doc["metadata"]["name"])] = doc
    return objects


def _env(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container["env"]}


# --- compose -------------------------------------------------------------------------------


def test_compose_runs_three_nodes_that_list_each_other():
    services = compose_services()
    conf = _conf(CLUSTER_CONF)
    assert conf["cluster_formation.peer_discovery_backend"] == "classic_config"
    listed = {v for k, v in conf.items() if k.startswith("cluster_formation.classic_config.nodes.")}
    assert listed == {f"rabbit@{node}" for node in RABBITMQ_NODES}
    for node in RABBITMQ_NODES:
        service = services[node]
        assert service["hostname"] == node  # the node name rabbit@<hostname>
        mounts = [v.split(":") for v in service["volumes"]]
        assert ["./rabbitmq-cluster.conf", "/etc/rabbitmq/conf.d/20-talk-cluster.conf", "ro"] \
            in mounts, node
        assert len({m[0] for m in mounts if m[1] == "/var/lib/rabbitmq"}) == 1, node
    data = [next(m for m in services[n]["volumes"] if m.endswith(":/var/lib/rabbitmq"))
            for n in RABBITMQ_NODES]
    assert len(set(data)) == NODES, "each node needs a volume of its own"
    first, *others = RABBITMQ_NODES  # the others start once the first is up, and join it
    for node in others:
        assert services[node]["depends_on"][first]["condition"] == "service_healthy", node


def test_compose_requires_one_shared_erlang_cookie():
    services = compose_services()
    for node in RABBITMQ_NODES:
        with pytest.raises(LookupError, match="RABBITMQ_ERLANG_COOKIE"):
            compose_env(services[node], {"TALK_JWT_SECRET": "s" * 48})
    cookies = {compose_env(services[n])["RABBITMQ_ERLANG_COOKIE"] for n in RABBITMQ_NODES}
    assert len(cookies) == 1 and "" not in cookies


def test_compose_gives_talk_every_node_and_three_replicas():
    services = compose_services()
    for name in [*APP_SERVICES, "migrate"]:
        env = compose_env(services[name])
        urls = split_amqp_urls(env["TALK_AMQP_URL"])
        assert [urlsplit(u).hostname for u in urls] == list(RABBITMQ_NODES), name
        settings = Settings(amqp_url=env["TALK_AMQP_URL"],
                            stream_initial_cluster_size=env["TALK_STREAM_INITIAL_CLUSTER_SIZE"])
        assert settings.stream_initial_cluster_size == NODES, name
    for node in RABBITMQ_NODES:  # Talk's credentials are the nodes' default user
        env = compose_env(services[node])
        url = urlsplit(split_amqp_urls(compose_env(services["projector"])["TALK_AMQP_URL"])[0])
        assert (url.username, url.password) == (env["RABBITMQ_DEFAULT_USER"],
                                                env["RABBITMQ_DEFAULT_PASS"])


# --- Kubernetes ------------------------------------------------------------------------------


def test_k8s_rabbitmq_is_a_statefulset_of_three_behind_a_headless_service():
    objects = _k8s_objects()
    listed = set(yaml.safe_load((K8S_RABBITMQ / "kustomization.yaml").read_text())["resources"])
    on_disk = {p.name for p in K8S_RABBITMQ.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk
    statefulset = objects[("StatefulSet", "rabbitmq")]
    spec = statefulset["spec"]
    assert spec["replicas"] == NODES
    assert spec["podManagementPolicy"] == "Parallel"
    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    # the label the ops kit's NetworkPolicy rabbitmq-from-talk selects
    assert labels["app.kubernetes.io/name"] == "rabbitmq"
    headless = objects[("Service", spec["serviceName"])]
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True
    assert headless["spec"]["selector"].items() <= labels.items()
    assert {p["port"] for p in headless["spec"]["ports"]} >= {4369, 25672, 5672}
    pdb = objects[("PodDisruptionBudget", "rabbitmq")]
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert spec["volumeClaimTemplates"][0]["metadata"]["name"] == "data"


def test_k8s_nodes_find_each_other_through_the_peer_discovery_plugin():
    objects = _k8s_objects()
    pod = objects[("StatefulSet", "rabbitmq")]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = _env(container)
    conf = _conf(K8S_RABBITMQ / "rabbitmq.conf")
    assert conf["cluster_formation.peer_discovery_backend"] == "rabbit_peer_discovery_k8s"
    assert conf["cluster_formation.k8s.address_type"] == "hostname"
    plugins = (K8S_RABBITMQ / "enabled_plugins").read_text()
    assert "rabbitmq_peer_discovery_k8s" in re.findall(r"\w+", plugins)
    service = objects[("StatefulSet", "rabbitmq")]["spec"]["serviceName"]
    assert env["K8S_SERVICE_NAME"]["value"] == service
    assert env["K8S_HOSTNAME_SUFFIX"]["value"].startswith(f".{service}.")
    assert env["RABBITMQ_NODENAME"]["value"].startswith(f"rabbit@$(MY_POD_NAME).{service}.")
    assert env["RABBITMQ_USE_LONGNAME"]["value"] == "true"
    assert env["RABBITMQ_ERLANG_COOKIE"]["valueFrom"]["secretKeyRef"]["name"] == \
        "rabbitmq-secrets"
    # the plugin reads the endpoints with the pod's service account
    assert pod["automountServiceAccountToken"] is True
    account = pod["serviceAccountName"]
    binding = next(o for (kind, _), o in objects.items() if kind == "RoleBinding")
    assert {"kind": "ServiceAccount", "name": account} in binding["subjects"]
    role = objects[("Role", binding["roleRef"]["name"])]
    assert any("endpoints" in r["resources"] and "get" in r["verbs"] for r in role["rules"])
    mounts = {m["mountPath"]: m.get("subPath") for m in container["volumeMounts"]}
    assert mounts["/etc/rabbitmq/enabled_plugins"] == "enabled_plugins"
    assert mounts["/var/lib/rabbitmq"] is None


def test_talk_on_k8s_asks_for_a_replica_per_node():
    size = int(configmap_data()["TALK_STREAM_INITIAL_CLUSTER_SIZE"])
    assert size == _k8s_objects()[("StatefulSet", "rabbitmq")]["spec"]["replicas"]


def test_the_readme_gives_talk_one_url_per_k8s_node():
    readme = (DEPLOY / "README.md").read_text()
    urls = re.findall(r"amqp://talk:PASSWORD@(rabbitmq-\d)\.rabbitmq-nodes:5672/", readme)
    assert sorted(set(urls)) == [f"rabbitmq-{i}" for i in range(NODES)]
    assert "SCALING.md" in readme


def test_kustomize_builds_the_rabbitmq_cluster():
    kubectl = shutil.which("kubectl")
    if kubectl is None:  # no renderer here: the structural tests above cover what they can
        return
    out = subprocess.run([kubectl, "kustomize", str(K8S_RABBITMQ)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    kinds = {d["kind"] for d in yaml.safe_load_all(out.stdout) if d}
    assert {"StatefulSet", "Service", "ConfigMap", "Role", "RoleBinding", "ServiceAccount",
            "PodDisruptionBudget"} <= kinds



def test_the_ops_network_policy_guards_these_nodes():
    policies = {d["metadata"]["name"]: d for d in yaml.safe_load_all(
        (DEPLOY / "k8s" / "ops" / "networkpolicies.yaml").read_text()) if d}
    policy = policies["rabbitmq-from-talk"]
    labels = _k8s_objects()[("StatefulSet", "rabbitmq")]["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    peers = [r for r in policy["spec"]["ingress"] if "ports" not in r]
    assert [r["from"] for r in peers] == [[{"podSelector": {"matchLabels": {
        "app.kubernetes.io/name": labels["app.kubernetes.io/name"]}}}]]  # every port
    metrics = [r for r in policy["spec"]["ingress"]
               if {p["port"] for p in r.get("ports", [])} == {15692}]
    assert metrics and "namespaceSelector" in metrics[0]["from"][0]
