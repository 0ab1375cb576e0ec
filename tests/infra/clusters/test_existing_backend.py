"""An existing cluster: credentials from a secret or another stack, pools described, MIG too."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pulumi
import pytest
import yaml

from infra.config import StackConfigError
from infra.kuberay import operator_pod_labels
from infra.names import KUBERAY_CHART
from infra.stack_file import load_stack_config, source_from_stack_file, stack_file
from infra.validation import validate_stack
from servestack.offline import ProgramRun, run_stack_file
from tests.infra.kuberay_crd import validate_rayservice

FIXTURES = Path(__file__).resolve().parent.parent.parent / "fixtures"
MIG = FIXTURES / "onprem-mig.yaml"
KUBECONFIG = "apiVersion: v1\nkind: Config\n# the on-prem admin kubeconfig\n"


def mig_run() -> ProgramRun:
    return run_stack_file(MIG, secrets={"kubeconfig": KUBECONFIG}).check()


def test_an_onprem_cluster_with_mig_slices_is_expressible() -> None:
    run = mig_run()
    cluster = run.one("kubernetes:ray.io/v1:RayService").inputs["spec"]["rayClusterConfig"]
    validate_rayservice(dict(run.one("kubernetes:ray.io/v1:RayService").inputs))
    (mig,) = [g for g in cluster["workerGroupSpecs"] if "mig" in g["groupName"]]
    pod = mig["template"]["spec"]
    limits = pod["containers"][0]["resources"]["limits"]
    slices = int(limits["nvidia.com/mig-2g.20gb"])
    assert 1 <= slices <= 12
    assert mig["rayStartParams"]["num-gpus"] == str(slices)
    assert pod["nodeSelector"] == {"node.acme.internal/class": "a100-mig"}
    assert pod["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}]


def test_nothing_but_the_provider_touches_the_cluster_itself() -> None:
    run = mig_run()
    assert not [r for r in run.resources if r.type.startswith(("gcp:", "aws:", "eks:", "command:"))]
    provider = run.one("pulumi:providers:kubernetes")
    assert provider.inputs["kubeconfig"] == KUBECONFIG
    assert provider.inputs["context"] == "onprem-admin"
    assert "kubeconfig" in provider.secret_inputs
    assert "kubeconfig" not in run.outputs  # not ours to hand out


def test_missing_kubeconfig_secret_stops_the_program() -> None:
    run = run_stack_file(MIG, fill_secrets=False)
    assert isinstance(run.error, pulumi.RunError)
    assert "servestack:kubeconfig: missing" in str(run.error)
    assert run.resources == ()


def test_kubeconfig_can_come_from_another_stack(tmp_path: Path) -> None:
    document = yaml.safe_load(MIG.read_text())
    document["config"]["servestack:cluster"] = {
        "backend": "existing", "kubeconfig_from": "stack_reference",
        "stack_reference": {"stack": "acme/platform/onprem", "output": "kubeconfig"}}
    path = tmp_path / "Pulumi.onprem-ref.yaml"
    path.write_text(yaml.safe_dump(document))
    run = run_stack_file(path, fill_secrets=False).check()
    reference = run.one("pulumi:pulumi:StackReference")
    assert reference.inputs["name"] == "acme/platform/onprem"
    provider = run.one("pulumi:providers:kubernetes")
    assert provider.inputs["kubeconfig"]
    assert "kubeconfig" in provider.secret_inputs


def test_the_cluster_wide_kuberay_crds_are_read_never_owned() -> None:
    """Other teams' RayClusters live on these CRDs: `destroy` of this stack must not delete
    them, so on `existing` they are only read (and `up` stops when they are missing)."""
    run = mig_run()
    assert not [r for r in run.resources if r.type == "kubernetes:yaml/v2:ConfigFile"]
    crds = run.of_type("kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition")
    assert sorted(r.name for r in crds) == [
        "kuberay-crd-rayclusters", "kuberay-crd-rayjobs", "kuberay-crd-rayservices"]
    release = run.one("kubernetes:helm.sh/v3:Release", "kuberay")
    assert release.inputs["skipCrds"] is True
    assert {r.urn for r in crds} <= set(release.options.depends_on)


def test_owned_clusters_still_install_the_crds(
    checked_stack_run: Callable[[str], ProgramRun],
) -> None:
    run = checked_stack_run("local")
    assert len(run.of_type("kubernetes:yaml/v2:ConfigFile")) == 3
    assert run.of_type("kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition") == []


# --- kuberay.install: false, the shipped `shared` stack ----------------------------------

OPERATOR_TYPES = ("servestack:index:KubeRayOperator", "kubernetes:helm.sh/v3:Release",
                  "kubernetes:yaml/v2:ConfigFile",
                  "kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition")


def test_a_stack_using_the_clusters_operator_registers_nothing_of_it(
    checked_stack_run: Callable[[str], ProgramRun],
) -> None:
    """No operator release, no CRDs, not even a read of them: the RayService depends on
    nothing the stack would have to own, and `destroy` cannot touch the operator."""
    run = checked_stack_run("shared")
    assert load_stack_config("shared").kuberay.install is False
    assert [r.type for r in run.resources if r.type in OPERATOR_TYPES] == []
    service = run.one("kubernetes:ray.io/v1:RayService")
    validate_rayservice(dict(service.inputs))
    registered = {r.urn: r.type for r in run.resources}
    for urn in service.options.depends_on:
        assert registered.get(urn) not in OPERATOR_TYPES, urn


def test_the_clusters_operator_is_admitted_from_its_own_namespace(
    checked_stack_run: Callable[[str], ProgramRun],
) -> None:
    run = checked_stack_run("shared")
    policies = {r.inputs["metadata"]["name"]: r.inputs["spec"]
                for r in run.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")}
    (peer,) = policies["ray-head-from-operator"]["ingress"][0]["from"]
    assert peer == {"namespaceSelector": {"matchLabels": {
                        "kubernetes.io/metadata.name": "kuberay-system"}},
                    "podSelector": {"matchLabels": operator_pod_labels()}}
    assert "operator-metrics-from-monitoring" not in policies  # its owner's to admit
    monitors = [r.inputs["metadata"]["name"]
                for r in run.of_type("kubernetes:monitoring.coreos.com/v1:ServiceMonitor")]
    assert KUBERAY_CHART not in monitors


def _shared_with(tmp_path: Path, **changes: object) -> Path:
    document = yaml.safe_load(stack_file("shared").read_text())
    document["config"].update({f"servestack:{key}": value for key, value in changes.items()})
    path = tmp_path / "Pulumi.shared.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_a_shared_operator_takes_no_room_on_the_head_pool(tmp_path: Path) -> None:
    """Its pod runs wherever the cluster's owner put it: its size is not ours to place."""
    path = _shared_with(tmp_path, kuberay={"install": False, "operator_namespace": "kuberay",
                                           "resources": {"cpu": 500, "memory": "1TiB"}})
    valid = validate_stack(source_from_stack_file(path))
    installed = _shared_with(tmp_path, kuberay={"resources": {"cpu": 500, "memory": "1TiB"}})
    with pytest.raises(StackConfigError) as error:
        validate_stack(source_from_stack_file(installed))
    assert "kuberay.resources" in dict(error.value.problems)
    assert valid.stack.kuberay.operator_namespace == "kuberay"


@pytest.mark.parametrize(("changes", "path", "words"), [
    ({"kuberay": {"install": False}}, "kuberay.operator_namespace", "namespace it runs in"),
    ({"kuberay": {"install": False, "operator_namespace": "kuberay"},
      "cluster": {"backend": "kind", "name": "servestack"}}, "kuberay.install",
     "keep install true"),
])
def test_without_its_own_operator_the_stack_must_name_the_clusters(
    tmp_path: Path, changes: dict[str, object], path: str, words: str,
) -> None:
    with pytest.raises(StackConfigError) as error:
        validate_stack(source_from_stack_file(_shared_with(tmp_path, **changes)))
    assert words in dict(error.value.problems)[path]
