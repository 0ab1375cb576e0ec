"""Where the Gateway API CRDs come from, per cluster: GKE's own, the pinned release on a
cluster the stack creates, a read of each on a cluster the stack shares."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from infra.gateway_api_crds import CHANNEL, INSTALL_URL, PLURALS, RELEASE, crd_name
from infra.names import GATEWAY_API
from infra.stack_file import stack_file
from servestack.offline import ProgramRun, run_stack_file
from tests.infra.gateway_crd import crds_dir

CONFIG_FILE = "kubernetes:yaml/v2:ConfigFile"
CRD = "kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition"
CUSTOM_RESOURCE_PREFIX = f"kubernetes:{GATEWAY_API}/v1:"


def _vendored() -> list[dict[str, object]]:
    return [yaml.safe_load(path.read_text())
            for path in sorted(crds_dir().glob(f"{GATEWAY_API}_*.yaml"))]


def test_the_pinned_release_is_the_one_the_front_door_is_validated_against() -> None:
    vendored = _vendored()
    assert vendored
    for crd in vendored:
        annotations = crd["metadata"]["annotations"]  # type: ignore[index]
        assert annotations[f"{GATEWAY_API}/bundle-version"] == RELEASE
        assert annotations[f"{GATEWAY_API}/channel"] == CHANNEL
    assert INSTALL_URL.endswith(f"/{RELEASE}/{CHANNEL}-install.yaml")


def test_each_kind_names_its_crd_as_the_crd_itself_does() -> None:
    by_kind = {crd["spec"]["names"]["kind"]: crd for crd in _vendored()}  # type: ignore[index]
    for kind, plural in PLURALS.items():
        assert by_kind[kind]["spec"]["names"]["plural"] == plural  # type: ignore[index]
        assert by_kind[kind]["metadata"]["name"] == crd_name(kind)  # type: ignore[index]


def _depends_on_crds(run: ProgramRun, urns: set[str]) -> list[str]:
    """Gateway API objects (and the RayService's component) that do not wait for `urns`."""
    waiting = [r for r in run.resources if r.urn not in urns and (
        r.type.startswith(CUSTOM_RESOURCE_PREFIX) or r.type.endswith(":RayService"))]
    assert waiting
    return [r.name for r in waiting if not urns <= _ancestry_deps(run, r)]


def _ancestry_deps(run: ProgramRun, resource: object) -> set[str]:
    """depends_on of a resource and of every component above it (children inherit them)."""
    by_urn = {r.urn: r for r in run.resources}
    deps: set[str] = set()
    current = resource
    while current is not None:
        deps.update(current.options.depends_on)  # type: ignore[attr-defined]
        current = by_urn.get(current.parent) if current.parent else None  # type: ignore[attr-defined]
    return deps


def test_a_cluster_the_stack_creates_gets_the_release_before_any_gateway_object(
    checked_stack_run: Callable[[str], ProgramRun],
) -> None:
    run = checked_stack_run("staging")  # EKS, with an incremental upgrade through its gateway
    (release,) = [r for r in run.of_type(CONFIG_FILE) if r.name == "gateway-api-crds"]
    assert release.inputs["file"] == INSTALL_URL
    assert not run.of_type(CRD)
    assert not [r for r in run.resources if r.name == "gateway-class"]  # it creates aws-alb
    assert _depends_on_crds(run, {release.urn}) == []


def test_gke_installs_them_itself(checked_stack_run: Callable[[str], ProgramRun]) -> None:
    run = checked_stack_run("prod")
    assert not [r for r in run.of_type(CONFIG_FILE) if r.name == "gateway-api-crds"]
    assert not run.of_type(CRD)
    (cluster,) = run.of_type("gcp:container/cluster:Cluster")
    assert cluster.inputs["gatewayApiConfig"] == {"channel": "CHANNEL_STANDARD"}


def test_a_shared_cluster_must_already_have_each_crd_the_stack_uses(tmp_path: Path) -> None:
    """The shared stack with a front door and an incremental upgrade: each CRD is read (so
    `up` stops on a missing one, and `destroy` leaves the platform's CRDs alone)."""
    document = yaml.safe_load(stack_file("shared").read_text())
    config = document["config"]
    config["servestack:gateway"] = {
        "enabled": True, "class_name": "platform-gateway",
        "listeners": [{"name": "https", "hostname": "search.platform.internal",
                       "tls": {"secret": "search-tls"}}],
        "data_plane": {"namespace": "gateway-system", "pod_labels": {"app": "gateway"}},
    }
    config["servestack:rayservice"]["upgrade_strategy"] = "NewClusterWithIncrementalUpgrade"
    path = tmp_path / "Pulumi.shared.yaml"
    path.write_text(yaml.safe_dump(document))
    run = run_stack_file(path).check()
    assert not [r for r in run.of_type(CONFIG_FILE) if r.name == "gateway-api-crds"]
    reads = run.of_type(CRD)
    assert sorted(r.name for r in reads) == [
        f"gateway-api-crd-{PLURALS[kind]}" for kind in ("Gateway", "HTTPRoute")]
    # The class it names but does not create: read too, so a missing controller stops `up`.
    (gateway_class,) = [r for r in run.resources if r.name == "gateway-class"]
    assert gateway_class.type == f"{CUSTOM_RESOURCE_PREFIX}GatewayClass"
    assert _depends_on_crds(run, {r.urn for r in [*reads, gateway_class]}) == []


@pytest.mark.parametrize("stack", ["dev", "local"])
def test_no_gateway_no_crds(stack: str, checked_stack_run: Callable[[str], ProgramRun]) -> None:
    run = checked_stack_run(stack)
    assert not [r for r in run.of_type(CONFIG_FILE) if r.name == "gateway-api-crds"]
    assert not [r for r in run.of_type(CRD) if GATEWAY_API in r.name or "gateway" in r.name]
