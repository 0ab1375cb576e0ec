"""Acceptance of images per release: new app code ships as a new image tag, and diff says so.

A change to app code alone changes nothing KubeRay sees; the new image tag does, and under
NewCluster that means a new RayCluster. Render puts the tag (and digest) in every Ray
container; a moving tag stops prod.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml
from scratch_repo import committed_copy, git, prod_diff
from typer.testing import CliRunner

from infra.config import RAY_VERSION, STACKS_DIR
from infra.stack_file import load_stack_config
from servestack.cli import app, commands  # noqa: F401  (commands register themselves on app)
from servestack.diffing.report import _pair
from servestack.render import render_stack_file

RELEASE = "3f2a1b9c0d1e"
DIGEST = "sha256:" + "c0" * 32


def _give(stack_path: Path, **image: str) -> None:
    """What `pulumi config set servestack:image.<field> <value>` writes into the stack file."""
    document = yaml.safe_load(stack_path.read_text())
    document["config"].update({f"servestack:image.{k}": v for k, v in image.items()})
    stack_path.write_text(yaml.safe_dump(document, sort_keys=False))


def _ray_container_images(rayservice: dict[str, Any]) -> dict[str, str]:
    cluster = rayservice["spec"]["rayClusterConfig"]
    groups = {"head": cluster["headGroupSpec"]}
    groups |= {g["groupName"]: g for g in cluster["workerGroupSpecs"]}
    return {name: container["image"] for name, group in groups.items()
            for container in group["template"]["spec"]["containers"]
            if container["name"].startswith("ray-")}


def test_new_app_code_with_a_new_image_tag_is_a_new_image_and_a_new_cluster(
    tmp_path: Path,
) -> None:
    repo = committed_copy(tmp_path / "repo")
    app_file = repo / "apps" / "embeddings" / "app.py"
    app_file.write_text(app_file.read_text() + "\n# normalise before pooling (new code)\n")
    _give(repo / "stacks" / "Pulumi.prod.yaml", release=RELEASE)

    report = prod_diff(repo, "HEAD")
    assert "| `prod` |" in report and "**new cluster** (new image)" in report
    strategy = load_stack_config("prod").rayservice.upgrade_strategy
    assert f"**RayService `servestack`: new cluster** (upgradeStrategy `{strategy}`)" in report
    assert "New app image in the Ray containers: KubeRay starts a new RayCluster" in report
    shipped = load_stack_config("prod").image
    released = shipped.model_copy(update={"release": RELEASE})
    for gpu in (False, True):  # one line per image: the CPU and the GPU flavour
        assert f"- {_pair(shipped.reference(gpu), released.reference(gpu))}\n" in report
    assert "containers[ray-head].image" in report
    assert len(git(repo, "worktree", "list").strip().splitlines()) == 1


def test_render_puts_the_release_tag_and_digest_in_every_ray_container(tmp_path: Path) -> None:
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    shutil.copy(STACKS_DIR / "Pulumi.prod.yaml", stacks)
    _give(stacks / "Pulumi.prod.yaml", release=RELEASE, gpu_digest=DIGEST)
    render_stack_file(stacks / "Pulumi.prod.yaml", tmp_path / "out", "prod")
    rayservice = yaml.safe_load(
        (tmp_path / "out" / "prod" / "kubernetes" / "rayservice.servestack.yaml").read_text())
    images = _ray_container_images(rayservice)
    groups = rayservice["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    assert set(images) == {"head", *(g["groupName"] for g in groups)} and len(groups) >= 2
    gpu_groups = {g["groupName"] for g in groups
                  if "nvidia.com/gpu" in str(g["template"]["spec"]["containers"][0]["resources"])}
    assert gpu_groups
    for group, image in images.items():
        flavour = "gpu" if group in gpu_groups else "cpu"
        assert f":{RAY_VERSION}-{RELEASE}-py311-{flavour}" in image, (group, image)
        assert image.endswith(f"@{DIGEST}") == (flavour == "gpu"), (group, image)


def test_prod_refuses_latest_naming_the_field(tmp_path: Path) -> None:
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    shutil.copy(STACKS_DIR / "Pulumi.prod.yaml", stacks)
    _give(stacks / "Pulumi.prod.yaml", release="latest")
    result = CliRunner().invoke(app, ["check", "--stack", "prod", "--stacks-dir", str(stacks)])
    assert result.exit_code == 2, result.output
    assert "image.release" in result.output and "moving name" in result.output
