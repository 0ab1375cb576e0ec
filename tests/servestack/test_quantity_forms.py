"""A stack written in Kubernetes quantities plans, and the policy pack reads what it renders:
`plan` and `check` agree on every form (the pack once misread `Ki`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, get_args

import yaml
from pydantic import ByteSize, TypeAdapter
from typer.testing import CliRunner

from infra.config.kuberay import KubeRayConfig
from infra.config.rayservice import RayServiceConfig
from infra.quantities import memory_quantity
from infra.stack_file import load_stack, stack_file
from servestack.cli import app, commands  # noqa: F401  (commands register themselves on app)
from servestack.config_reference import user_models

GI = 2**30


def kubernetes_spelled_local(stacks_dir: Path) -> Path:
    document = yaml.safe_load(stack_file("local").read_text())
    config = document["config"]
    config["servestack:pools"][0].update(cpu="4000m", memory="12Gi")
    config["servestack:rayservice"].update(head={"cpu": "1", "memory": "3e9"},
                                           worker_overhead={"cpu": "250m", "memory": "1048577Ki"})
    deployments = config["servestack:apps"]["search"]["deployments"]
    deployments["VectorIndex"]["resources"] = {"num_cpus": "250m", "memory": "524289Ki"}
    deployments["SearchIngress"]["resources"] = {"num_cpus": "0.25", "memory": "0.25Gi"}
    config["servestack:apps"]["embeddings"]["deployments"]["Embedder"]["resources"] = {
        "num_cpus": "500m", "memory": "1.5Gi"}
    path = stacks_dir / "Pulumi.local.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def test_plan_and_check_agree_on_kubernetes_quantities(tmp_path: Path) -> None:
    kubernetes_spelled_local(tmp_path)
    valid = load_stack("local", tmp_path)
    assert valid.stack.pools[0].memory == 12 * GI and valid.stack.pools[0].cpu == 4
    assert valid.stack.rayservice.head.memory == 3 * 10**9
    pod_memory = memory_quantity(valid.plan.group("cpu").pod.memory)
    assert pod_memory.endswith("Ki"), "the render must carry the suffix the pack once misread"

    plan = CliRunner().invoke(app, ["plan", "--stack", "local", "--stacks-dir", str(tmp_path)])
    assert plan.exit_code == 0, plan.output
    assert "500m CPU, 1.5Gi" in plan.stdout

    check = CliRunner().invoke(app, ["check", "--stack", "local", "--stacks-dir", str(tmp_path)])
    assert check.exit_code == 0, check.output
    assert "missing requests" not in check.output


def test_a_bare_memory_is_refused_by_plan_with_the_unit_to_add(tmp_path: Path) -> None:
    path = kubernetes_spelled_local(tmp_path)
    document = yaml.safe_load(path.read_text())
    document["config"]["servestack:rayservice"]["head"]["memory"] = 3072
    path.write_text(yaml.safe_dump(document))
    result = CliRunner().invoke(app, ["plan", "--stack", "local", "--stacks-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "rayservice.head.memory" in result.stderr
    assert "did you mean 3072Mi" in result.stderr


def _holds_byte_size(annotation: object) -> bool:
    return annotation is ByteSize or any(_holds_byte_size(arg) for arg in get_args(annotation))


def test_every_byte_size_a_user_writes_reads_kubernetes_units() -> None:
    """`2Gi` is how people write a size: no field of a stack, app spec or app settings may
    take only pydantic's own spellings (`2GiB`)."""
    sized = [(model, name, field) for model in user_models()
             for name, field in model.model_fields.items() if _holds_byte_size(field.annotation)]
    assert len(sized) >= 5
    for model, name, field in sized:
        spelled = Annotated[field.annotation, *field.metadata] if field.metadata else (
            field.annotation)
        assert TypeAdapter(spelled).validate_python("2Gi") == 2 * GI, f"{model.__name__}.{name}"


def test_a_pod_size_given_in_part_keeps_the_rest_of_its_default(tmp_path: Path) -> None:
    path = kubernetes_spelled_local(tmp_path)
    document = yaml.safe_load(path.read_text())
    config = document["config"]
    config["servestack:rayservice"]["head"] = {"memory": "2Gi"}
    config["servestack:rayservice"]["autoscaler"] = {"resources": {"cpu": "250m"}}
    config["servestack:kuberay"] = {"resources": {"memory": "1Gi"}}
    path.write_text(yaml.safe_dump(document))
    stack = load_stack("local", tmp_path).stack
    defaults = RayServiceConfig(upgrade_strategy="None")
    assert stack.rayservice.head.memory == 2 * GI
    assert stack.rayservice.head.cpu == defaults.head.cpu
    assert stack.rayservice.autoscaler.resources.cpu == 0.25
    assert stack.rayservice.autoscaler.resources.memory == defaults.autoscaler.resources.memory
    assert stack.kuberay.resources.memory == GI
    assert stack.kuberay.resources.cpu == KubeRayConfig().resources.cpu
