"""`servestack check`: every shipped stack passes; each policy trips on its own broken input.

Policies run exactly as the pack runs them (CrossGuard policy objects, args and proxies)
over what the real program registers under Pulumi mocks. Where a stack file cannot express
the mistake because the program always derives the right value, the test mutates the
registered props instead and its docstring says why.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from infra.pod_preview import RAYSERVICE_TYPE, plain
from infra.stack_file import available_stacks, load_stack_config
from policies.rules import RULES
from policies.rules.front_door import GATEWAY_TYPE, HTTP_ROUTE_TYPE
from servestack.cli import app
from servestack.offline import run_stack
from servestack.policy_check import (
    InvalidStackError,
    Subject,
    check_stack,
    check_stack_file,
    evaluate,
    subjects_of,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
POLICY_FIXTURES = sorted(FIXTURES.glob("policy-*.yaml"))
NAMESPACE_TYPE = "kubernetes:core/v1:Namespace"
GPU_GROUP = "gpu-nvidia-com-gpu-l4"


@pytest.fixture(scope="module")
def prod_subjects() -> list[Subject]:
    run = run_stack("prod").check()
    return subjects_of(run)


def _cli() -> None:
    from servestack.cli import commands  # noqa: F401  (registers the commands on `app`)


@pytest.mark.parametrize("stack", available_stacks())
def test_every_shipped_stack_passes(stack: str) -> None:
    report = check_stack(stack)
    assert report.passed, [f"{v.policy}: {v.message}" for v in report.mandatory]


def test_prod_has_no_violation_at_all() -> None:
    report = check_stack("prod")
    assert report.violations == ()
    assert set(report.levels.values()) == {report.levels["images-pinned"]}  # all mandatory


@pytest.mark.parametrize("fixture", POLICY_FIXTURES, ids=lambda p: p.stem)
def test_each_policy_fixture_trips_exactly_its_policy(fixture: Path) -> None:
    policy = fixture.stem.removeprefix("policy-")
    report = check_stack_file(fixture)
    assert report.environment == "prod"  # a stack name nobody mapped gets prod's levels
    assert report.tripped() == {policy}
    assert not report.passed


# --- mutations of what the program registered -------------------------------------------


def _edit(
    subjects: list[Subject], type_: str, change: Callable[[dict[str, Any]], None]
) -> list[Subject]:
    edited = []
    for subject in subjects:
        if subject.type == type_:
            props = plain(subject.props)
            change(props)
            subject = replace(subject, props=props)
        edited.append(subject)
    return edited


def _groups(props: dict[str, Any]) -> Iterator[dict[str, Any]]:
    cluster = props["spec"]["rayClusterConfig"]
    yield cluster["headGroupSpec"]
    yield from cluster["workerGroupSpecs"]


def _gpu_group(props: dict[str, Any]) -> dict[str, Any]:
    workers = props["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    return next(g for g in workers if g["groupName"] == GPU_GROUP)


def moving_working_dir(props: dict[str, Any]) -> None:
    """images-pinned, serveConfigV2 side: servestack's RuntimeEnv only allows env_vars, so a
    branch archive as working_dir can only come from an edited RayService."""
    import yaml

    document = yaml.safe_load(props["spec"]["serveConfigV2"])
    document["applications"][0]["runtime_env"] = {
        "working_dir": "https://github.com/acme/servestack/archive/refs/heads/main.zip"}
    props["spec"]["serveConfigV2"] = yaml.safe_dump(document)


def ray_version_drift(props: dict[str, Any]) -> None:
    """ray-version-matches-image: rayVersion and the image tag both derive from RAY_VERSION."""
    props["spec"]["rayClusterConfig"]["rayVersion"] = "2.59.0"


def missing_limits(props: dict[str, Any]) -> None:
    """containers-have-resources: the program always writes requests = limits."""
    del _gpu_group(props)["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"]


def head_takes_replicas(props: dict[str, Any]) -> None:
    """head-runs-no-replicas: the program always starts the head with num-cpus "0"."""
    props["spec"]["rayClusterConfig"]["headGroupSpec"]["rayStartParams"]["num-cpus"] = "4"


def gpu_count_drift(props: dict[str, Any]) -> None:
    """ray-gpus-match-pod-limits: num-gpus and the GPU limit both come from the plan."""
    _gpu_group(props)["rayStartParams"]["num-gpus"] = "2"


def broken_serve_config(props: dict[str, Any]) -> None:
    """serve-config-valid: the program validates serveConfigV2 with Ray's schema first."""
    import yaml

    document = yaml.safe_load(props["spec"]["serveConfigV2"])
    del document["applications"][0]["import_path"]
    props["spec"]["serveConfigV2"] = yaml.safe_dump(document)


def deprecated_threshold(props: dict[str, Any]) -> None:
    """no-deprecated-rayservice-fields: StackConfig has no such field to set."""
    props["spec"]["serviceUnhealthySecondThreshold"] = 900.0


def implicit_upgrade(props: dict[str, Any]) -> None:
    """explicit-upgrade-strategy: StackConfig requires rayservice.upgrade_strategy."""
    del props["spec"]["upgradeStrategy"]


def privilege_escalation(props: dict[str, Any]) -> None:
    """pods-hardened: the program hardens every Ray container and the autoscaler."""
    for group in _groups(props):
        container = group["template"]["spec"]["containers"][0]
        del container["securityContext"]["allowPrivilegeEscalation"]


def unlabelled_namespace(props: dict[str, Any]) -> None:
    """namespaces-enforce-pod-security: the program always labels its namespace."""
    del props["metadata"]["labels"]["pod-security.kubernetes.io/enforce"]


def baseline_namespace(props: dict[str, Any]) -> None:
    """ray-namespaces-restricted: the program always enforces restricted on its namespace;
    baseline still satisfies namespaces-enforce-pod-security."""
    props["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] = "baseline"


def untolerated_taint(props: dict[str, Any]) -> None:
    """gpu-workers-target-their-pool: tolerations derive from the pool's taints; a stack
    whose taint has no toleration fails in the capacity plan before any registration."""
    del _gpu_group(props)["template"]["spec"]["tolerations"]


def more_pods_than_planned(props: dict[str, Any]) -> None:
    """capacity-plan-fits: a plan that does not fit stops the program before registering
    anything, so the RayService must be edited to disagree with the plan."""
    _gpu_group(props)["maxReplicas"] = 40.0


def surge_beyond_the_pools(props: dict[str, Any]) -> None:
    """upgrade-steps-fit: the program derives maxSurgePercent as the largest step that fits
    and refuses a written one that does not, so only an edited RayService can overshoot."""
    props["spec"]["upgradeStrategy"]["clusterUpgradeOptions"]["maxSurgePercent"] = 100.0


def plain_http_listener(props: dict[str, Any]) -> None:
    """tls-on-internet-facing-listeners: the stack refuses an HTTP listener on a public
    class, so the rendered Gateway must be edited."""
    listener = props["spec"]["listeners"][0]
    listener.update(protocol="HTTP", port=80.0)
    del listener["tls"]


def route_drops_an_app(props: dict[str, Any]) -> None:
    """httproute-covers-app-routes: the rules derive from the apps' route prefixes."""
    props["spec"]["rules"] = props["spec"]["rules"][1:]


MUTATIONS: dict[str, tuple[str, Callable[[dict[str, Any]], None]]] = {
    "images-pinned": (RAYSERVICE_TYPE, moving_working_dir),
    "ray-version-matches-image": (RAYSERVICE_TYPE, ray_version_drift),
    "containers-have-resources": (RAYSERVICE_TYPE, missing_limits),
    "head-runs-no-replicas": (RAYSERVICE_TYPE, head_takes_replicas),
    "ray-gpus-match-pod-limits": (RAYSERVICE_TYPE, gpu_count_drift),
    "serve-config-valid": (RAYSERVICE_TYPE, broken_serve_config),
    "no-deprecated-rayservice-fields": (RAYSERVICE_TYPE, deprecated_threshold),
    "explicit-upgrade-strategy": (RAYSERVICE_TYPE, implicit_upgrade),
    "pods-hardened": (RAYSERVICE_TYPE, privilege_escalation),
    "namespaces-enforce-pod-security": (NAMESPACE_TYPE, unlabelled_namespace),
    "ray-namespaces-restricted": (NAMESPACE_TYPE, baseline_namespace),
    "gpu-workers-target-their-pool": (RAYSERVICE_TYPE, untolerated_taint),
    "capacity-plan-fits": (RAYSERVICE_TYPE, more_pods_than_planned),
    "upgrade-steps-fit": (RAYSERVICE_TYPE, surge_beyond_the_pools),
    "tls-on-internet-facing-listeners": (GATEWAY_TYPE, plain_http_listener),
    "httproute-covers-app-routes": (HTTP_ROUTE_TYPE, route_drops_an_app),
}


@pytest.mark.parametrize("policy", sorted(MUTATIONS))
def test_each_mutation_trips_exactly_its_policy(policy: str, prod_subjects: list[Subject]) -> None:
    type_, change = MUTATIONS[policy]
    subjects = _edit(prod_subjects, type_, change)
    report = evaluate("prod", subjects, lambda: load_stack_config("prod"))
    assert report.tripped() == {policy}, [f"{v.policy}: {v.message}" for v in report.violations]
    assert all(v.resource_type == type_ for v in report.violations)


def test_every_policy_has_a_broken_input() -> None:
    from_files = {p.stem.removeprefix("policy-") for p in POLICY_FIXTURES}
    assert from_files | set(MUTATIONS) == {rule.name for rule in RULES}


def test_violation_messages_name_the_field_and_the_fix(prod_subjects: list[Subject]) -> None:
    subjects = _edit(prod_subjects, RAYSERVICE_TYPE, untolerated_taint)
    report = evaluate("prod", subjects, lambda: load_stack_config("prod"))
    (violation,) = report.violations
    assert f"workerGroupSpecs[{GPU_GROUP}].template.spec.tolerations" in violation.message
    assert "nvidia.com/gpu=present:NoSchedule" in violation.message
    assert violation.urn is not None and violation.urn.endswith("::servestack")


def test_the_new_front_door_and_upgrade_policies_name_the_pool_and_the_paths(
    prod_subjects: list[Subject],
) -> None:
    def messages(type_: str, change: Callable[[dict[str, Any]], None]) -> list[str]:
        report = evaluate("prod", _edit(prod_subjects, type_, change),
                          lambda: load_stack_config("prod"))
        return [v.message for v in report.violations]

    (surge,) = messages(RAYSERVICE_TYPE, surge_beyond_the_pools)
    assert "maxSurgePercent 100" in surge and "pool gpu-l4 needs 8 nodes" in surge
    assert "servestack:pools[gpu-l4].max_nodes 6" in surge
    (listener,) = messages(GATEWAY_TYPE, plain_http_listener)
    assert "spec.listeners[https]" in listener and "servestack:gateway.listeners[https].tls" in (
        listener)
    (route,) = messages(HTTP_ROUTE_TYPE, route_drops_an_app)
    assert "route prefixes /classify" in route

    def extra_path(props: dict[str, Any]) -> None:
        props["spec"]["rules"][0]["matches"].append({"path": {"type": "PathPrefix",
                                                              "value": "/admin"}})
        props["spec"]["rules"][0]["backendRefs"][0]["port"] = 8265.0

    extra = messages(HTTP_ROUTE_TYPE, extra_path)
    assert any("match /admin, which no Serve application serves" in m for m in extra)
    assert any("not the Serve Service servestack-serve-svc:8000" in m for m in extra)


def test_mig_slices_on_an_existing_cluster_satisfy_the_gpu_policies() -> None:
    """On-prem pools expose MIG profiles (nvidia.com/mig-2g.20gb): Ray counts each as a GPU."""
    report = check_stack_file(FIXTURES / "onprem-mig.yaml", environment="staging")
    assert report.passed
    assert report.tripped() <= {"gcs-fault-tolerance"}


def test_an_invalid_stack_never_reaches_the_policies() -> None:
    with pytest.raises(InvalidStackError, match="no pool provides it"):
        check_stack_file(FIXTURES / "broken-gpu-no-pool.yaml")


# --- the command --------------------------------------------------------------------------


def test_cli_prints_advisories_and_exits_0_without_mandatory_violations() -> None:
    _cli()
    result = CliRunner().invoke(app, ["check", "--stack", "dev"])
    assert result.exit_code == 0, result.output
    assert "[advisory]  gcs-fault-tolerance  (kubernetes:ray.io/v1:RayService: servestack)" in (
        result.output)
    assert "0 mandatory, 2 advisory violation(s)" in result.output


def test_cli_exits_1_on_a_mandatory_violation() -> None:
    _cli()
    fixture = FIXTURES / "policy-gcs-fault-tolerance.yaml"
    result = CliRunner().invoke(app, ["check", "--stack-file", str(fixture)])
    assert result.exit_code == 1, result.output
    assert "[mandatory]  gcs-fault-tolerance" in result.output


def test_cli_exits_2_with_the_message_on_an_invalid_stack() -> None:
    _cli()
    result = CliRunner().invoke(
        app, ["check", "--stack-file", str(FIXTURES / "broken-gpu-no-pool.yaml")]
    )
    assert result.exit_code == 2
    assert "no pool provides it" in result.output


def test_cli_policy_config_relaxes_a_policy_like_the_pack_config(tmp_path: Path) -> None:
    _cli()
    config = tmp_path / "policy-config.json"
    config.write_text('{"gcs-fault-tolerance": "advisory"}')
    fixture = FIXTURES / "policy-gcs-fault-tolerance.yaml"
    result = CliRunner().invoke(
        app, ["check", "--stack-file", str(fixture), "--policy-config", str(config)]
    )
    assert result.exit_code == 0, result.output
    assert "[advisory]  gcs-fault-tolerance" in result.output
