"""An existing cluster: credentials from a secret or another stack, pools described, MIG too."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pulumi
import yaml

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
