"""The Pulumi program for every shipped stack, run under mocks and judged by the field's own
validators: the KubeRay CRD schema, kubernetes-validate, and Ray's ServeDeploySchema."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import kubernetes_validate
import pytest
import yaml
from ray.serve.schema import ServeDeploySchema

from apps.haproxy_config import ADMIN_HOST_ENV
from apps.ingress_settings import CALLBACK, CALLBACK_ENV, INGRESS_ENV, IngressSettings
from apps.spec import IDEMPOTENT_PATHS_ENV
from infra.capacity import plan_capacity
from infra.config import KUBERAY_VERSION, RAY_VERSION, StackConfig
from infra.ingress_environment import IMAGE_HAPROXY_WRAPPER
from infra.serve_config import serve_config_for
from infra.stack_file import load_stack_config
from infra.worker_groups import container_security_context
from servestack.offline import ProgramRun, RegisteredResource
from tests.infra.kuberay_crd import from_wire, validate_rayservice

STACKS = ["local", "dev", "staging", "prod", "shared"]
# Stacks with their own operator (kuberay.install); `shared` uses the cluster's.
INSTALLING = [stack for stack in STACKS if load_stack_config(stack).kuberay.install]
RAYSERVICE = "kubernetes:ray.io/v1:RayService"
RELEASE = "kubernetes:helm.sh/v3:Release"
CONFIG_FILE = "kubernetes:yaml/v2:ConfigFile"
K8S_PROVIDER = "pulumi:providers:kubernetes"
# Resource types that are one core Kubernetes object each (not Helm, YAML bundles or CRs).
CORE_GROUPS = ("core/v1", "apps/v1", "rbac.authorization.k8s.io/v1", "networking.k8s.io/v1")

Runs = Callable[[str], ProgramRun]


def kuberay_crd_files(run: ProgramRun) -> list[RegisteredResource]:
    """The KubeRay CRDs' ConfigFiles (the Gateway API release is one too, where installed)."""
    return [r for r in run.of_type(CONFIG_FILE) if r.name.startswith("kuberay-crd-")]


def rayservice_of(run: ProgramRun) -> Mapping[str, Any]:
    return run.one(RAYSERVICE).inputs


def cluster_of(run: ProgramRun) -> Mapping[str, Any]:
    return rayservice_of(run)["spec"]["rayClusterConfig"]


def ray_images(cluster: Mapping[str, Any]) -> list[str]:
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    return [c["image"] for g in groups for c in g["template"]["spec"]["containers"]]


@pytest.fixture(params=STACKS)
def stack(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def run(stack: str, unchecked_stack_run: Runs) -> ProgramRun:
    result = unchecked_stack_run(stack)
    assert result.error is None, f"stack {stack} failed: {result.error}"
    return result


@pytest.fixture
def config(stack: str) -> StackConfig:
    return load_stack_config(stack)


def test_every_shipped_stack_is_exercised() -> None:
    from infra.stack_file import available_stacks

    assert sorted(STACKS) == available_stacks()


def test_program_builds_namespace_and_rayservice(run: ProgramRun) -> None:
    types = {r.type for r in run.resources}
    assert {"servestack:index:Cluster", "servestack:index:RayService", RAYSERVICE,
            K8S_PROVIDER, "kubernetes:core/v1:Namespace"} <= types


@pytest.mark.parametrize("stack", INSTALLING)
def test_program_builds_the_operator_where_the_stack_installs_it(run: ProgramRun) -> None:
    types = {r.type for r in run.resources}
    assert {"servestack:index:KubeRayOperator", RELEASE} <= types
    assert len(kuberay_crd_files(run)) == 3


def test_rayservice_is_accepted_by_the_kuberay_v1_7_crd(run: ProgramRun) -> None:
    admitted = validate_rayservice(dict(rayservice_of(run)))
    assert admitted["apiVersion"] == "ray.io/v1" and admitted["kind"] == "RayService"


def test_core_objects_pass_kubernetes_validate(run: ProgramRun) -> None:
    core = [r for r in run.resources
            if r.type.startswith("kubernetes:") and r.type.split(":")[1] in CORE_GROUPS]
    assert core, "expected at least the Namespace"
    for resource in core:
        kubernetes_validate.validate(from_wire(dict(resource.inputs)), "1.33", strict=True)


def test_serve_config_v2_is_valid_for_ray_and_equals_the_spec_derived_config(
    run: ProgramRun, config: StackConfig,
) -> None:
    carried = yaml.safe_load(rayservice_of(run)["spec"]["serveConfigV2"])
    ServeDeploySchema.model_validate(carried)
    assert carried == serve_config_for(config) == run.outputs["serveConfig"]


def test_request_body_and_idle_timeouts_reach_every_proxy_of_the_rayservice(
    run: ProgramRun, config: StackConfig,
) -> None:
    """The typed `serve.http` timeouts land in serveConfigV2's http_options, and
    `serve.ingress` (body timeout and size) in the env of every Ray container, head included:
    a proxy may run on any node."""
    http = yaml.safe_load(rayservice_of(run)["spec"]["serveConfigV2"])["http_options"]
    assert config.serve.http.request_timeout_s is not None  # a safe default, not "forever"
    assert http["request_timeout_s"] == config.serve.http.request_timeout_s
    assert http["keep_alive_timeout_s"] == config.serve.http.keep_alive_timeout_s
    cluster = cluster_of(run)
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    for group in groups:
        for container in group["template"]["spec"]["containers"]:
            env = {item["name"]: item.get("value") for item in container["env"]}
            assert env[CALLBACK_ENV] == CALLBACK
            assert IngressSettings.model_validate_json(env[INGRESS_ENV]) == config.serve.ingress


def test_each_apps_idempotent_paths_travel_in_its_runtime_env_not_in_the_pods(
    run: ProgramRun, config: StackConfig,
) -> None:
    """What one app needs stays in serveConfigV2: no pod env names an app's path, so adding
    or removing an app leaves the pod templates (and the Ray cluster) as they are."""
    applications = yaml.safe_load(rayservice_of(run)["spec"]["serveConfigV2"])["applications"]
    carried = {app["name"]: json.loads(app.get("runtime_env", {}).get("env_vars", {})
                                       .get(IDEMPOTENT_PATHS_ENV, "[]"))
               for app in applications}
    assert carried == {app.name: sorted(app.idempotent_paths) for app in config.applications}
    assert any(carried.values())
    cluster = cluster_of(run)
    for group in [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]:
        for container in group["template"]["spec"]["containers"]:
            assert IDEMPOTENT_PATHS_ENV not in {item["name"] for item in container["env"]}


def test_worker_groups_are_derived_from_the_plan_and_their_pools(
    run: ProgramRun, config: StackConfig,
) -> None:
    plan = plan_capacity(config)
    specs = {g["groupName"]: g for g in cluster_of(run)["workerGroupSpecs"]}
    assert set(specs) == {g.name for g in plan.worker_groups}
    for group in plan.worker_groups:
        spec, pool = specs[group.name], config.pool(group.pool)
        pod = spec["template"]["spec"]
        (container,) = pod["containers"]
        resources = container["resources"]
        assert resources["requests"] == {k: resources["limits"][k] for k in ("cpu", "memory")}
        assert all(isinstance(v, str) for v in resources["limits"].values())
        if pool.accelerator is not None:
            assert pool.accelerator.resource in resources["limits"]
            gpus = int(resources["limits"][pool.accelerator.resource])
            assert gpus == group.pod.devices
            assert 1 <= gpus <= pool.accelerator.count
            assert spec["rayStartParams"]["num-gpus"] == str(gpus)
            assert container["image"].endswith("-gpu")
        else:
            assert set(resources["limits"]) == {"cpu", "memory"}
            assert container["image"].endswith("-cpu")
        assert pod.get("tolerations", []) == [
            {"key": t.key, "operator": "Equal", "value": t.value, "effect": t.effect}
            for t in pool.taints
        ]
        assert pod.get("nodeSelector", {}) == dict(pool.labels)
        assert spec["rayStartParams"]["num-cpus"] == str(group.ray.whole_cpus)
        assert (spec["minReplicas"], spec["maxReplicas"], spec["replicas"]) == (
            group.min_pods, group.max_pods, group.min_pods)


def test_head_takes_no_replicas_and_everything_pins_the_ray_version(run: ProgramRun) -> None:
    cluster = cluster_of(run)
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    assert cluster["headGroupSpec"]["rayStartParams"]["dashboard-host"] == "0.0.0.0"
    assert cluster["rayVersion"] == RAY_VERSION
    for image in ray_images(cluster):
        assert f":{RAY_VERSION}-" in image


def test_autoscaling_and_upgrades_follow_the_stack(run: ProgramRun, config: StackConfig) -> None:
    spec = rayservice_of(run)["spec"]
    cluster = spec["rayClusterConfig"]
    autoscaler = config.rayservice.autoscaler
    assert cluster["enableInTreeAutoscaling"] is True
    assert cluster["autoscalerOptions"]["idleTimeoutSeconds"] == autoscaler.idle_timeout_s
    assert cluster["autoscalerOptions"]["upscalingMode"] == autoscaler.upscaling_mode
    assert cluster["autoscalerOptions"]["version"] == "v2"  # the autoscaler the rehearsal runs
    assert spec["upgradeStrategy"]["type"] == config.rayservice.upgrade_strategy
    incremental = config.rayservice.upgrade_strategy == "NewClusterWithIncrementalUpgrade"
    assert ("clusterUpgradeOptions" in spec["upgradeStrategy"]) == incremental
    for deprecated in ("serviceUnhealthySecondThreshold", "deploymentUnhealthySecondThreshold"):
        assert deprecated not in spec


def test_pulumi_leaves_worker_replicas_to_the_autoscaler_and_waits_for_ready(
    run: ProgramRun,
) -> None:
    resource = run.one(RAYSERVICE)
    assert resource.options.ignore_changes == (
        "spec.rayClusterConfig.workerGroupSpecs[*].replicas",)
    annotations = resource.inputs["metadata"]["annotations"]
    # Ready alone returned mid-upgrade: the old cluster keeps Ready=True during a NewCluster
    # upgrade. All conditions must hold, at the observed generation.
    assert json.loads(annotations["pulumi.com/waitFor"]) == [
        "condition=Ready", "condition=UpgradeInProgress=False"]
    assert annotations["pulumi.com/deletionPropagationPolicy"] == "foreground"
    assert resource.options.custom_timeouts["create"] == "30m"


def test_ray_containers_run_under_the_restricted_pod_security_standard(run: ProgramRun) -> None:
    cluster = cluster_of(run)
    hardened = from_wire(container_security_context())
    for group in [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]:
        pod = group["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        for container in pod["containers"]:
            assert from_wire(container["securityContext"]) == hardened
    assert from_wire(cluster["autoscalerOptions"]["securityContext"]) == hardened
    labels = run.one("kubernetes:core/v1:Namespace", "namespace").inputs["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


@pytest.mark.parametrize("stack", INSTALLING)
def test_kuberay_operator_is_namespaced_with_crds_applied_server_side(
    run: ProgramRun, config: StackConfig,
) -> None:
    release = run.one(RELEASE, "kuberay").inputs
    assert (release["chart"], release["version"]) == ("kuberay-operator", KUBERAY_VERSION)
    assert release["repositoryOpts"]["repo"] == config.kuberay.chart_repository
    assert release["skipCrds"] is True
    values = release["values"]
    assert values["singleNamespaceInstall"] is True
    assert values["watchNamespace"] == [config.namespace]
    assert values["resources"]["requests"] == values["resources"]["limits"]
    urls = sorted(r.inputs["file"] for r in kuberay_crd_files(run))
    assert all(u.startswith(f"https://raw.githubusercontent.com/ray-project/kuberay/v{KUBERAY_VERSION}/")
               for u in urls)
    assert [u.rsplit("/", 1)[1] for u in urls] == [
        "ray.io_rayclusters.yaml", "ray.io_rayjobs.yaml", "ray.io_rayservices.yaml"]
    (provider,) = run.of_type(K8S_PROVIDER)
    assert provider.inputs["enableServerSideApply"] == "true"
    assert "kubeconfig" in provider.secret_inputs


def test_every_kubernetes_resource_goes_through_the_stack_provider(run: ProgramRun) -> None:
    (provider,) = run.of_type(K8S_PROVIDER)
    kube = [r for r in run.resources if r.type.startswith("kubernetes:") and r.custom]
    assert kube
    for resource in kube:
        assert resource.provider is not None
        assert resource.provider.startswith(provider.urn + "::"), resource.name


def test_stack_outputs_name_the_service_and_keep_the_kubeconfig_secret(
    run: ProgramRun, config: StackConfig,
) -> None:
    outputs = run.outputs
    assert outputs["namespace"] == config.namespace
    assert outputs["rayService"] == config.rayservice.name
    assert outputs["serveService"] == f"{config.rayservice.name}-serve-svc"
    assert outputs["serveEndpoint"] == (
        f"http://{config.rayservice.name}-serve-svc.{config.namespace}.svc.cluster.local:"
        f"{config.serve.http.port}")
    assert outputs["capacityPlan"] == plan_capacity(config).to_output()
    # A cluster the stack does not own keeps its credentials to itself (tests/infra/clusters).
    assert ("kubeconfig" in outputs) is not config.cluster.shared
    assert "kubeconfig" in run.secret_outputs or config.cluster.shared


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_cloud_stacks_serve_at_least_one_app_on_a_gpu_pool(
    stack: str, checked_stack_run: Runs,
) -> None:
    groups = cluster_of(checked_stack_run(stack))["workerGroupSpecs"]
    limits = [c["resources"]["limits"] for g in groups for c in g["template"]["spec"]["containers"]]
    assert any("nvidia.com/gpu" in limit for limit in limits)


def test_prod_survives_head_loss_and_keeps_gpu_replicas_warm(checked_stack_run: Runs) -> None:
    config = load_stack_config("prod")
    cluster = cluster_of(checked_stack_run("prod"))
    ft = cluster["gcsFaultToleranceOptions"]
    assert ft["redisAddress"] == config.rayservice.gcs_fault_tolerance.redis_address
    assert ft["redisPassword"] == {"valueFrom": {"secretKeyRef": {
        "key": "password", "name": "servestack-redis"}}}
    # Prod upgrades incrementally (issue 22): a step never doubles the GPU pool.
    assert config.rayservice.upgrade_strategy == "NewClusterWithIncrementalUpgrade"
    gpu_deployments = [d for app in config.applications for d in app.deployments
                       if d.resources.is_gpu]
    assert gpu_deployments and all(d.min_replicas >= 1 for d in gpu_deployments)


def test_redis_password_reaches_only_a_secret(checked_stack_run: Runs) -> None:
    from servestack.offline import run_stack

    password = "correct-horse-battery-staple"
    run = run_stack("prod", secrets={"redisPassword": password}).check()
    secret: RegisteredResource = run.one("kubernetes:core/v1:Secret", "servestack-redis")
    assert secret.inputs["stringData"] == {"password": password}
    assert "stringData" in secret.secret_inputs
    assert secret.inputs["metadata"]["name"] == "servestack-redis"
    for resource in run.resources:
        if resource is not secret:
            assert password not in yaml.safe_dump(dict(resource.inputs)), resource.name
    assert secret.urn in run.one(RAYSERVICE).options.depends_on


def test_the_head_stays_out_of_the_serve_service(run: ProgramRun) -> None:
    """KubeRay 1.7 then skips its probe of the head's proxy, which the NetworkPolicies block."""
    assert rayservice_of(run)["spec"]["excludeHeadPodFromServeSvc"] is True


def test_every_ray_container_runs_the_haproxy_ingress_with_the_stacks_limits(
    run: ProgramRun, config: StackConfig
) -> None:
    """serve.haproxy, on in every shipped stack, reaches head and workers alike (HAProxy runs
    on every node), with its client timeout derived from serve.ingress.body_timeout_s."""
    assert config.serve.haproxy
    cluster = cluster_of(run)
    for group in [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]:
        (container,) = group["template"]["spec"]["containers"]
        env = {item["name"]: item["value"] for item in container["env"]}
        assert env["RAY_SERVE_ENABLE_HA_PROXY"] == "1"
        assert float(env["RAY_SERVE_HAPROXY_TIMEOUT_CLIENT_S"]) >= (
            config.serve.ingress.body_timeout_s)
        assert "empty-response" in env["RAY_SERVE_HAPROXY_RETRY_ON"]
        # Ray starts the image's config wrapper as HAProxy (apps/haproxy_config.py), so
        # requests stay replayable and HAProxy's errors JSON; the stats page keeps Ray's bind.
        assert env["RAY_SERVE_HAPROXY_BINARY_PATH"] == IMAGE_HAPROXY_WRAPPER
        assert ADMIN_HOST_ENV not in env
        assert float(env["RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S"]) == (
            config.serve.ingress_drain_s)
        ports = {port["name"]: port["containerPort"] for port in container["ports"]}
        assert int(ports["haproxy-metrics"]) == int(env["RAY_SERVE_HAPROXY_METRICS_PORT"])
        assert int(ports["serve"]) == config.serve.http.port  # HAProxy binds Serve's port


def test_turning_haproxy_off_leaves_rays_python_proxy_and_no_haproxy_setting() -> None:
    from infra.config import ServeOptions
    from infra.ingress_environment import ingress_environment

    off = ingress_environment(ServeOptions(haproxy=False))
    assert not [key for key in off if "HA_PROXY" in key or "HAPROXY" in key]
    assert "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH" in off


def _dependencies(run: ProgramRun, urn: str) -> set[str]:
    """Everything `urn` transitively waits for (and so outlives it on `destroy`)."""
    seen: set[str] = set()
    todo = [urn]
    while todo:
        resource = run.by_urn(todo.pop())
        for dependency in (*resource.options.depends_on, *([resource.parent] if resource.parent
                                                          else [])):
            if dependency not in seen and any(r.urn == dependency for r in run.resources):
                seen.add(dependency)
                todo.append(dependency)
    return seen


@pytest.mark.parametrize("stack", INSTALLING)
def test_destroy_removes_the_rayservice_before_the_operator_and_its_policies(
    run: ProgramRun,
) -> None:
    """The RayService object itself depends on the operator's release and CRDs and on every
    NetworkPolicy: Pulumi deletes it (waiting for KubeRay's finalizers, the GCS Redis cleanup
    included) before any of them."""
    rayservice = run.one(RAYSERVICE)
    direct = set(rayservice.options.depends_on)
    release = run.one("kubernetes:helm.sh/v3:Release", "kuberay")
    assert release.urn in direct
    crds = [r for r in run.resources if "-crd-" in r.name]
    assert crds and {r.urn for r in crds} <= direct
    policies = run.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")
    assert {p.urn for p in policies} <= direct
    assert release.urn in _dependencies(run, rayservice.urn)


def test_every_pool_can_reach_its_max_nodes(config: StackConfig, run: ProgramRun) -> None:
    """The capacity plan counts on max_nodes per pool: each backend must be able to get there."""
    backend = config.cluster.backend
    for pool in config.pools:
        if backend == "kind":  # no autoscaling: every node exists from the start
            nodes = yaml.safe_load(run.one("command:local:Command", "kind-cluster")
                                   .inputs["stdin"])["nodes"]
            workers = [n for n in nodes if n.get("labels") == dict(pool.labels) or
                       (not pool.labels and n["role"] == "worker")]
            assert len(workers) >= pool.max_nodes, pool.name
        elif backend == "gke":
            registered = next(r for r in run.of_type("gcp:container/nodePool:NodePool")
                              if r.inputs["name"] == pool.name)
            assert registered.inputs["autoscaling"]["totalMaxNodeCount"] == pool.max_nodes
        elif backend == "eks":
            group = next(r for r in run.of_type("eks:index:ManagedNodeGroup")
                         if r.inputs["nodeGroupName"].endswith(f"-{pool.name}"))
            assert group.inputs["scalingConfig"]["maxSize"] == pool.max_nodes
            assert run.one("kubernetes:helm.sh/v3:Release", "cluster-autoscaler")


def test_up_says_which_rayservice_conditions_it_waits_for(caplog: pytest.LogCaptureFixture) -> None:
    """The wait is named where `pulumi up` shows a resource's diagnostics: the conditions the
    waitFor annotation holds, and how to watch them."""
    import logging

    from infra.rayservice import WAIT_FOR, wait_message
    from infra.stack_file import load_stack_config
    from servestack.offline import run_stack

    with caplog.at_level(logging.INFO):
        run_stack("prod")
    message = wait_message(load_stack_config("prod"))
    assert message in caplog.messages
    for condition in WAIT_FOR:
        named = condition.removeprefix("condition=").replace("=False", "")
        assert named in message
    assert "NewClusterWithIncrementalUpgrade rollout, or a RollbackInProgress" in message
