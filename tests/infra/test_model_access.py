"""Stacks whose apps load models from S3, GCS or MLflow, run under Pulumi mocks: identity
binding, egress to exactly the stores, cache volume and env on the workers, validated by the
KubeRay CRD, kubernetes-validate and the policy pack; broken model_sources fail first."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from infra.environment import environment_for
from infra.model_access import MODEL_CACHE_MOUNT, MODEL_CACHE_VOLUME
from servestack.offline import ProgramRun, run_stack_file
from servestack.policy_check import check_stack_file
from tests.infra.kuberay_crd import from_wire, validate_rayservice

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
STACKS = {"models-gke": FIXTURES / "models-gke.yaml", "models-eks": FIXTURES / "models-eks.yaml"}
BASED_ON = {"models-gke": "dev", "models-eks": "staging"}
"""The shipped stack each fixture adds model sources to: the policies of its environment."""


@functools.cache
def _run(stack: str) -> ProgramRun:
    return run_stack_file(STACKS[stack], stack).check()


@pytest.fixture(params=sorted(STACKS))
def run(request: pytest.FixtureRequest) -> ProgramRun:
    return _run(request.param)


def _workers(run: ProgramRun) -> list[Mapping[str, Any]]:
    rayservice = run.one("kubernetes:ray.io/v1:RayService").inputs
    groups: list[Mapping[str, Any]] = rayservice["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    return groups


def _head(run: ProgramRun) -> Mapping[str, Any]:
    rayservice = run.one("kubernetes:ray.io/v1:RayService").inputs
    head: Mapping[str, Any] = rayservice["spec"]["rayClusterConfig"]["headGroupSpec"]
    return head


def test_the_rendered_objects_pass_the_fields_own_validators(run: ProgramRun) -> None:
    validate_rayservice(dict(run.one("kubernetes:ray.io/v1:RayService").inputs))
    for type_ in ("kubernetes:core/v1:ServiceAccount",
                  "kubernetes:networking.k8s.io/v1:NetworkPolicy"):
        for resource in run.of_type(type_):
            kubernetes_validate.validate(from_wire(dict(resource.inputs)), "1.33", strict=True)
    report = check_stack_file(STACKS[run.stack], run.stack,
                              environment=environment_for(BASED_ON[run.stack]))
    assert report.passed, [f"{v.policy}: {v.message}" for v in report.mandatory]


def test_every_worker_mounts_the_cache_and_runs_as_the_model_reader(run: ProgramRun) -> None:
    account = run.one("kubernetes:core/v1:ServiceAccount").inputs["metadata"]["name"]
    for group in _workers(run):
        pod = group["template"]["spec"]
        assert pod["serviceAccountName"] == account
        [volume] = [v for v in pod["volumes"] if v["name"] == MODEL_CACHE_VOLUME]
        [container] = pod["containers"]
        assert {"mountPath": MODEL_CACHE_MOUNT, "name": MODEL_CACHE_VOLUME} in \
            container["volumeMounts"]
        env = {e["name"]: e for e in container["env"]}
        assert env["SERVESTACK_MODEL_CACHE_DIR"]["value"] == MODEL_CACHE_MOUNT
        if run.stack == "models-gke":
            assert volume["emptyDir"] == {"sizeLimit": "20Gi"}
            assert container["resources"]["requests"]["ephemeral-storage"] == "20Gi"
            assert env["MLFLOW_TRACKING_URI"]["value"] == "https://mlflow.acme.internal"
            assert env["MLFLOW_TRACKING_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == \
                run.one("kubernetes:core/v1:Secret", "model-access-mlflow-token"
                        ).inputs["metadata"]["name"]
        else:
            assert volume["hostPath"]["path"] == "/var/cache/servestack-models"
            assert "ephemeral-storage" not in container["resources"]["requests"]
    # The head runs no replica (num-cpus 0): it gets neither the cache nor the identity.
    head = _head(run)["template"]["spec"]
    assert "serviceAccountName" not in head
    assert MODEL_CACHE_VOLUME not in {v["name"] for v in head["volumes"]}


def test_workers_may_reach_exactly_the_model_stores(run: ProgramRun) -> None:
    [policy] = [p.inputs for p in run.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")
                if p.inputs["metadata"]["name"].endswith("ray-workers-egress-models")]
    spec = policy["spec"]
    assert spec["podSelector"]["matchLabels"]["ray.io/node-type"] == "worker"
    destinations = {(rule["ports"][0]["port"], peer["ipBlock"]["cidr"])
                    for rule in spec["egress"] for peer in rule["to"]}
    if run.stack == "models-gke":
        assert destinations == {(443, "199.36.153.8/30"), (443, "10.20.0.5/32")}
    else:
        assert destinations == {(443, "3.5.76.0/22"), (443, "18.34.244.0/22"),
                                (443, "52.92.128.0/17")}


def test_gke_binds_the_ray_pods_to_a_reader_of_exactly_the_bucket() -> None:
    run = _run("models-gke")
    account = run.one("gcp:serviceaccount/account:Account", "servestack-dev-model-reader")
    [grant] = run.of_type("gcp:storage/bucketIAMMember:BucketIAMMember")
    assert (grant.inputs["bucket"], grant.inputs["role"]) == \
        ("acme-models", "roles/storage.objectViewer")
    [binding] = run.of_type("gcp:serviceaccount/iAMMember:IAMMember")
    assert binding.inputs["role"] == "roles/iam.workloadIdentityUser"
    assert binding.inputs["member"] == \
        "serviceAccount:acme-servestack-dev.svc.id.goog[servestack-dev/servestack-ray]"
    ksa = run.one("kubernetes:core/v1:ServiceAccount").inputs["metadata"]
    assert ksa["name"] == "servestack-ray"
    assert ksa["annotations"]["iam.gke.io/gcp-service-account"].startswith(
        account.inputs["accountId"])


def test_eks_grants_the_ray_pods_get_object_on_exactly_the_uris() -> None:
    run = _run("models-eks")
    [association] = [a for a in run.of_type("aws:eks/podIdentityAssociation:PodIdentityAssociation")
                     if a.name.endswith("model-reader")]
    assert (association.inputs["namespace"], association.inputs["serviceAccount"]) == \
        ("servestack", "servestack-ray")
    [policy] = [p for p in run.of_type("aws:iam/rolePolicy:RolePolicy")
                if p.name.endswith("model-reader")]
    statements = json.loads(policy.inputs["policy"])["Statement"]
    assert statements[0] == {"Action": ["s3:GetObject"], "Effect": "Allow", "Resource": [
        "arn:aws:s3:::acme-models/encoders/minilm/*",
        "arn:aws:s3:::acme-models/tile-classifier/v3.pt*"]}
    assert statements[1]["Condition"] == {"StringLike": {"s3:prefix": [
        "encoders/minilm/*", "tile-classifier/v3.pt*"]}}


def _broken(tmp_path: Path, base: str, edit: dict[str, Any]) -> Path:
    document = yaml.safe_load(STACKS[base].read_text())
    for key, value in edit.items():
        document["config"][f"servestack:{key}"] = value
    path = tmp_path / "Pulumi.broken.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


@pytest.mark.parametrize(("base", "edit", "path", "message"), [
    ("models-gke", {"model_sources": {"object_store_cidrs": ["199.36.153.8/30"],
                                      "mlflow_cidrs": ["10.20.0.5/32"]}},
     "model_sources.mlflow_tracking_uri", "give the MLflow server's URL"),
    ("models-eks", {"model_sources": {}},
     "model_sources.object_store_cidrs", "NetworkPolicies match addresses"),
    ("models-eks", {"model_sources": {"object_store_cidrs": ["3.5.76.0/22"],
                                      "cache": {"volume": "hostPath"}}},
     "model_sources.cache", "volume hostPath needs host_path"),
])
def test_broken_model_sources_fail_before_anything_registers(
    tmp_path: Path, base: str, edit: dict[str, Any], path: str, message: str
) -> None:
    run = run_stack_file(_broken(tmp_path, base, edit), "broken")
    problems = getattr(run.error, "problems", None)
    assert problems, run.error
    assert any(p == path and message in m for p, m in problems), problems
    assert run.resources == ()


def test_a_remote_model_without_model_sources_is_refused_naming_the_section(
    tmp_path: Path,
) -> None:
    document = yaml.safe_load(STACKS["models-gke"].read_text())
    del document["config"]["servestack:model_sources"]
    path = tmp_path / "Pulumi.bare.yaml"
    path.write_text(yaml.safe_dump(document))
    run = run_stack_file(path, "bare")
    problems = getattr(run.error, "problems", None)
    assert problems, run.error
    assert any(p == "model_sources" and "declare servestack:model_sources" in m
               for p, m in problems), problems
    assert run.resources == ()


def test_the_pods_stay_the_same_when_the_last_app_loading_a_remote_model_leaves(
    tmp_path: Path,
) -> None:
    """The cache, identity and environment follow from model_sources, not from which apps
    load remote models: a pod template that changed would replace the Ray cluster."""
    document = yaml.safe_load(STACKS["models-gke"].read_text())
    apps = document["config"]["servestack:apps"]
    apps["embeddings"] = {}
    apps["classifier"]["deployments"]["TileClassifier"].pop("user_config")
    path = tmp_path / "Pulumi.models-gke.yaml"
    path.write_text(yaml.safe_dump(document))
    local = run_stack_file(path, "models-gke").check()
    assert "mlflow://" not in path.read_text() and "gs://" not in path.read_text()
    remote = _run("models-gke")
    assert {g["groupName"]: g["template"] for g in _workers(local)} == {
        g["groupName"]: g["template"] for g in _workers(remote)}
    assert _head(local)["template"] == _head(remote)["template"]
