"""Who can reach what, under the NetworkPolicies each stack registers.

Pods are built from the registered RayService (its template labels and container ports,
plus the labels KubeRay adds) and the operator chart's labels; `netpol.Cluster` applies
NetworkPolicy semantics to them. The questions are the ones an attacker or an outage asks.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from netpol import Address, Cluster, Pod, namespace_labels

from infra.config import StackConfigError, parse_stack_config
from infra.network_policies import NETWORK_POLICIES_COMPONENT
from infra.pod_preview import RAYSERVICE_TYPE, ray_cluster_spec, ray_groups
from infra.stack_file import available_stacks, load_stack_config, read_stack_file, stack_file
from servestack.offline import ProgramRun, run_stack_file

STACKS = available_stacks()
MIG = Path(__file__).resolve().parents[1] / "fixtures" / "onprem-mig.yaml"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
KUBERAY_LABELS = {"ray.io/is-ray-node": "yes", "ray.io/cluster": "servestack-abcde"}
OPERATOR = {"app.kubernetes.io/name": "kuberay-operator",
            "app.kubernetes.io/instance": "kuberay-operator"}
API_SERVERS = {  # where each backend's `kubernetes` Service forwards to, under the mocks
    "kind": Address("172.18.0.2"),  # the control-plane container on kind's Docker network
    "gke": Address("203.0.113.10"),  # the offline GKE endpoint
    "eks": Address("10.0.17.5"),  # an API server ENI inside the VPC
}
INTERNET = Address("198.51.100.7")
REDIS = Address("10.20.30.4")  # inside prod's redis_cidrs
OTHER_REDIS = Address("10.99.0.5")
GCS, DASHBOARD, CLIENT, WORKER_PORT, OBJECT_MANAGER = 6379, 8265, 10001, 10005, 8076

Runs = Callable[[str], ProgramRun]


class World:
    """The stack's Ray pods, its operator, and the neighbours that try to reach them."""

    def __init__(self, run: ProgramRun) -> None:
        self.config = load_stack_config(run.stack) if run.stack in STACKS else None
        rayservice = run.one(RAYSERVICE_TYPE)
        self.namespace = rayservice.inputs["metadata"]["namespace"]
        located = ray_cluster_spec(rayservice.type, rayservice.inputs)
        assert located is not None
        pods = {}
        for group in ray_groups(*located):
            ports = {p["name"]: int(p["containerPort"])
                     for p in group.pod_spec["containers"][0]["ports"]}
            labels = {**group.template["metadata"]["labels"], **KUBERAY_LABELS,
                      "ray.io/node-type": group.kind, "ray.io/group": group.name}
            pods[group.kind] = Pod(self.namespace, labels, ports)
        self.head, self.worker = pods["head"], pods["worker"]
        self.serve_port = self.head.ports["serve"]
        # The stack's own operator, or the cluster's (kuberay.install false) where it runs.
        kuberay = self.config.kuberay if self.config else None
        operator_namespace = (kuberay.operator_namespace_for(self.namespace) if kuberay
                              else None) or self.namespace
        self.own_operator = kuberay is None or kuberay.install
        self.operator = Pod(operator_namespace, OPERATOR, {"http": 8080})
        monitoring = self.config.observability.monitoring_namespace if self.config else (
            "monitoring")
        self.prometheus = Pod(monitoring, {"app.kubernetes.io/name": "prometheus"})
        self.ingress = Pod("ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx"})
        self.stranger = Pod("default", {"app": "curl"})
        self.neighbour = Pod(self.namespace, {"app": "debug"})  # same namespace, not Ray
        self.dns = Pod("kube-system", {"k8s-app": "kube-dns"}, {"dns": 53})
        backend = self.config.cluster.backend if self.config else "kind"
        named = self.config.security.api_server_cidrs if self.config else ()
        self.api_server = API_SERVERS.get(backend) or Address(
            str(ipaddress.ip_network(named[0])[0]) if named else "10.10.0.10")
        ft = self.config.rayservice.gcs_fault_tolerance if self.config else None
        self.redis = Address(str(ipaddress.ip_network(ft.redis_egress_cidrs[0])[1])) if (
            ft is not None and ft.enabled and ft.redis_egress_cidrs) else REDIS
        # KubeRay's GCS fault-tolerance cleanup Job: the head's template, relabelled.
        self.redis_cleanup = Pod(self.namespace, {**self.head.labels,
                                                  "ray.io/node-type": "redis-cleanup"})
        policies = [r.inputs for r in run.of_type(NETWORK_POLICY)]
        labels = namespace_labels(
            sorted({self.namespace, monitoring, operator_namespace, "ingress-nginx", "default",
                    "kube-system"}),
            {"ingress-nginx": {"servestack.io/serve-client": "true"}})
        self.cluster = Cluster(policies, labels)

    def allows(self, source: Pod, target: Pod | Address, port: int, protocol: str = "TCP") -> bool:
        return self.cluster.allows(source, target, port, protocol)


@pytest.fixture(scope="module", params=STACKS)
def world(request: pytest.FixtureRequest, checked_stack_run: Runs) -> World:
    return World(checked_stack_run(request.param))


def test_ray_pods_reach_each_other_on_any_port(world: World) -> None:
    for port in (GCS, DASHBOARD, CLIENT, WORKER_PORT, OBJECT_MANAGER, world.serve_port):
        assert world.allows(world.worker, world.head, port)
        assert world.allows(world.head, world.worker, port)
        assert world.allows(world.worker, world.worker, port)


def test_the_operator_reaches_only_the_heads_dashboard(world: World) -> None:
    assert world.allows(world.operator, world.head, DASHBOARD)
    for port in (GCS, CLIENT, world.serve_port, OBJECT_MANAGER):
        assert not world.allows(world.operator, world.head, port)
    assert not world.allows(world.operator, world.worker, DASHBOARD)


def test_only_serve_clients_reach_serve_and_nothing_else(world: World) -> None:
    for pod in (world.head, world.worker):
        assert world.allows(world.ingress, pod, world.serve_port)
        for port in (GCS, DASHBOARD, CLIENT, WORKER_PORT):
            assert not world.allows(world.ingress, pod, port)


@pytest.mark.parametrize("port", [GCS, DASHBOARD, CLIENT, 8000, 8080, WORKER_PORT])
def test_strangers_and_neighbours_reach_nothing(world: World, port: int) -> None:
    for source in (world.stranger, world.neighbour):
        assert not world.allows(source, world.head, port)
        assert not world.allows(source, world.worker, port)
        if world.own_operator:  # a shared operator's namespace is its owner's to guard
            assert not world.allows(source, world.operator, port)


def test_only_the_monitoring_namespace_scrapes_and_only_metrics_ports(world: World) -> None:
    assert world.allows(world.prometheus, world.worker, world.worker.ports["metrics"])
    for name in ("metrics", "as-metrics", "dash-metrics"):
        assert world.allows(world.prometheus, world.head, world.head.ports[name])
    if world.own_operator:  # a shared operator's metrics are its owner's to admit
        assert world.allows(world.prometheus, world.operator, 8080)
    for port in (world.serve_port, DASHBOARD, GCS):
        assert not world.allows(world.prometheus, world.head, port)
    assert not world.allows(world.stranger, world.worker, world.worker.ports["metrics"])


HAPROXY_TO_REPLICA, HAPROXY_TO_FALLBACK_PROXY = 30000, 8500


def test_haproxy_reaches_replicas_and_is_scraped_only_from_monitoring(world: World) -> None:
    """serve.haproxy (on in every stack): each node's HAProxy forwards to ingress replicas'
    own HTTP ports and the head's fallback proxy on other Ray pods; Prometheus alone scrapes
    its metrics port, which clients cannot reach."""
    assert world.config is None or world.config.serve.haproxy
    for source, target in ((world.head, world.worker), (world.worker, world.worker),
                           (world.worker, world.head)):
        assert world.allows(source, target, HAPROXY_TO_REPLICA)
    assert world.allows(world.worker, world.head, HAPROXY_TO_FALLBACK_PROXY)
    for pod in (world.head, world.worker):
        port = pod.ports["haproxy-metrics"]
        assert world.allows(world.prometheus, pod, port)
        assert not world.allows(world.ingress, pod, port)
        assert not world.allows(world.ingress, pod, HAPROXY_TO_REPLICA)


def test_ray_pods_resolve_dns_and_workers_reach_no_internet(world: World) -> None:
    for pod in (world.head, world.worker):
        assert world.allows(pod, world.dns, 53, "UDP")
        assert world.allows(pod, world.dns, 53, "TCP")
        assert not world.allows(pod, INTERNET, 80)
        assert not world.allows(pod, world.stranger, 8080)
    assert not world.allows(world.worker, INTERNET, 443)


def test_only_the_head_reaches_the_api_server_for_its_autoscaler(world: World) -> None:
    assert world.allows(world.head, world.api_server, 443)
    assert world.allows(world.head, world.api_server, 6443)
    assert not world.allows(world.worker, world.api_server, 443)
    assert not world.allows(world.head, world.api_server, 10250)  # kubelets: no


def test_the_head_has_no_way_to_the_internet(world: World) -> None:
    """The API-server rule names the API server (no 0.0.0.0/0 block), so even on 443 the
    head reaches nothing outside; the old default left it the whole internet there."""
    for port in (443, 6443, 80):
        assert not world.allows(world.head, INTERNET, port)


def test_policies_never_allow_every_destination(world: World) -> None:
    """An egress rule whose `to` is empty or 0.0.0.0/0 is internet egress in disguise."""
    for policy in world.cluster.policies:
        for rule in policy["spec"].get("egress") or []:
            assert rule.get("to"), policy["metadata"]["name"]
            for peer in rule["to"]:
                assert peer.get("ipBlock", {}).get("cidr") not in ("0.0.0.0/0", "::/0")


def test_naming_the_api_servers_cidr_overrides_the_backend(tmp_path: Path) -> None:
    path = _variant(tmp_path, "local", {"security": {"api_server_cidrs": ["10.1.2.3/32"]}})
    world = World(run_stack_file(path).check())
    assert world.allows(world.head, Address("10.1.2.3"), 6443)
    assert not world.allows(world.head, API_SERVERS["kind"], 6443)


def test_the_gcs_redis_is_reachable_exactly_when_fault_tolerance_is_on(world: World) -> None:
    """Only the GCS (on the head) and KubeRay's Redis cleanup Job talk to Redis, and only to
    the Redis endpoint's addresses."""
    assert world.config is not None
    ft = world.config.rayservice.gcs_fault_tolerance
    for pod in (world.head, world.redis_cleanup):
        assert world.allows(pod, world.redis, 6379) is ft.enabled
        assert not world.allows(pod, world.redis, 5432)
        assert not world.allows(pod, OTHER_REDIS, 6379)
    assert not world.allows(world.worker, world.redis, 6379)


def test_a_dns_named_redis_needs_its_addresses(tmp_path: Path) -> None:
    raw = read_stack_file(stack_file("prod"))
    ft = {**raw["rayservice"]["gcs_fault_tolerance"]}
    ft.pop("redis_cidrs")
    path = _variant(tmp_path, "prod", {"rayservice": {**raw["rayservice"],
                                                      "gcs_fault_tolerance": ft}})
    run = run_stack_file(path)
    assert "rayservice.gcs_fault_tolerance.redis_cidrs" in str(run.error)
    with_ip = {**ft, "redis_address": "10.20.30.4:6379"}
    path = _variant(tmp_path, "prod", {"rayservice": {**raw["rayservice"],
                                                      "gcs_fault_tolerance": with_ip}})
    world = World(run_stack_file(path).check())
    assert world.allows(world.head, REDIS, 6379)
    assert not world.allows(world.head, Address("10.20.30.5"), 6379)


def test_an_existing_cluster_must_name_its_api_server(tmp_path: Path) -> None:
    document = yaml.safe_load(MIG.read_text())
    del document["config"]["servestack:security"]
    path = tmp_path / "Pulumi.onprem-noapi.yaml"
    path.write_text(yaml.safe_dump(document))
    run = run_stack_file(path, secrets={"kubeconfig": "apiVersion: v1\n"})
    assert "servestack:security.api_server_cidrs" in str(run.error)
    assert run.resources == ()


def test_the_operator_probes_the_heads_serve_port_only_when_the_head_serves(
    tmp_path: Path,
) -> None:
    """excludeHeadPodFromServeSvc (the default) stops KubeRay's probe of the head's proxy;
    with proxy_location HeadOnly the head stays in the serve Service and may be probed."""
    default = World(run_stack_file(stack_file("local")).check())
    assert not default.allows(default.operator, default.head, default.serve_port)
    path = _variant(tmp_path, "local", {"serve": {"proxy_location": "HeadOnly"}})
    run = run_stack_file(path).check()
    assert run.one(RAYSERVICE_TYPE).inputs["spec"]["excludeHeadPodFromServeSvc"] is False
    world = World(run)
    assert world.allows(world.operator, world.head, world.serve_port)
    assert not world.allows(world.operator, world.worker, world.serve_port)


@pytest.mark.parametrize("stack", STACKS)
def test_policies_are_valid_kubernetes_objects(stack: str, checked_stack_run: Runs) -> None:
    run = checked_stack_run(stack)
    policies = run.of_type(NETWORK_POLICY)
    config = load_stack_config(stack)
    ft = config.rayservice.gcs_fault_tolerance.enabled
    operator_metrics = config.kuberay.install  # a shared operator's are its owner's
    assert len(policies) == 7 + operator_metrics + ft + config.gateway.enabled
    component = run.one(NETWORK_POLICIES_COMPONENT)
    for policy in policies:
        assert policy.parent == component.urn
        kubernetes_validate.validate(dict(policy.inputs), "1.33", strict=True)


# --- stacks that change the inputs ---------------------------------------------------------


def _variant(tmp_path: Path, base: str, changes: Mapping[str, Any]) -> Path:
    document = yaml.safe_load(stack_file(base).read_text())
    document["config"].update({f"servestack:{k}": v for k, v in changes.items()})
    path = tmp_path / f"Pulumi.{base}-variant.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_the_serve_port_follows_the_stacks_http_options(tmp_path: Path) -> None:
    path = _variant(tmp_path, "local", {"serve": {"http": {"port": 9000}}})
    world = World(run_stack_file(path).check())
    assert world.serve_port == 9000
    assert world.allows(world.ingress, world.worker, 9000)
    assert not world.allows(world.ingress, world.worker, 8000)


def test_serve_clients_name_exactly_who_may_call(tmp_path: Path) -> None:
    nginx = {"namespace_labels": {"kubernetes.io/metadata.name": "ingress-nginx"},
             "pod_labels": {"app.kubernetes.io/name": "ingress-nginx"}}
    path = _variant(tmp_path, "local", {"security": {"serve_clients": [nginx]}})
    world = World(run_stack_file(path).check())
    assert world.allows(world.ingress, world.head, world.serve_port)
    other_pod = Pod("ingress-nginx", {"app.kubernetes.io/name": "something-else"})
    assert not world.allows(other_pod, world.head, world.serve_port)


def test_a_stack_can_leave_network_policies_to_someone_else(tmp_path: Path) -> None:
    path = _variant(tmp_path, "local", {"security": {"network_policies": False}})
    assert run_stack_file(path).check().of_type(NETWORK_POLICY) == []


@pytest.mark.parametrize(("security", "path", "words"), [
    ({"serve_clients": [{}]}, "security.serve_clients[0]",
     "would admit every pod of the namespace"),
    ({"api_server_cidrs": ["10.0.0.0/33"]}, "security.api_server_cidrs",
     "is not a CIDR such as 10.0.0.0/8"),
    ({"api_server_ports": [0]}, "security.api_server_ports", "must be between 1 and 65535"),
    ({"open_everything": True}, "security.open_everything", "unknown field"),
])
def test_bad_security_settings_name_the_field_and_the_fix(
    security: dict[str, Any], path: str, words: str
) -> None:
    raw = read_stack_file(stack_file("local"))
    with pytest.raises(StackConfigError) as caught:
        parse_stack_config("local", {**raw, "security": security})
    assert any(p.startswith(path) and words in m for p, m in caught.value.problems), (
        caught.value.problems)


def test_the_cloud_clusters_enforce_network_policies(checked_stack_run: Runs) -> None:
    """GKE ignores NetworkPolicies without Dataplane V2, EKS without the VPC CNI's policy
    agent; kind (v0.24+) enforces them out of the box."""
    backends = {"gke": ("gcp:container/cluster:Cluster", "datapathProvider", "ADVANCED_DATAPATH"),
                "eks": ("eks:index:Cluster", "vpcCniOptions", None)}
    seen = set()
    for stack in STACKS:
        backend = load_stack_config(stack).cluster.backend
        if backend not in backends:
            continue
        type_, field, value = backends[backend]
        (cluster,) = checked_stack_run(stack).of_type(type_)
        if value is None:
            assert cluster.inputs[field]["enableNetworkPolicy"] is True, stack
        else:
            assert cluster.inputs[field] == value, stack
        seen.add(backend)
    assert seen == set(backends)
