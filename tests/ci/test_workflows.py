"""The GitHub workflows, validated offline: schema, security audit, and what they must run."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.stack_file import available_stacks, read_stack_file, stack_file

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / ".github" / "workflows"
FILES = sorted(WORKFLOWS.glob("*.yml"))


def tool(name: str) -> str:
    """A dev-extra tool from this venv (or PATH); skip with the install hint when missing."""
    candidate = Path(sys.executable).parent / name
    found = str(candidate) if candidate.exists() else shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed; run `make install` (it is in the dev extra)")
    return found


def load(name: str) -> dict[str, Any]:
    document = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the `on:` key as True.
    document["on"] = document.pop(True, document.get("on"))
    return document


def steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def test_workflows_exist() -> None:
    assert {p.name for p in FILES} == {"ci.yml", "preview.yml", "release.yml"}


def test_workflows_match_the_github_workflow_schema() -> None:
    result = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *map(str, FILES)],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_zizmor_finds_nothing_even_as_auditor() -> None:
    """The strictest persona, offline; no zizmor.yml ignores exist, so nothing is hidden."""
    assert not (REPO / "zizmor.yml").exists() and not (REPO / ".github" / "zizmor.yml").exists()
    result = subprocess.run(
        [tool("zizmor"), "--offline", "--persona", "auditor", *map(str, FILES)],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings" in result.stdout


@pytest.mark.parametrize("name", ["ci.yml", "preview.yml", "release.yml"])
def test_every_action_is_pinned_to_a_commit_sha(name: str) -> None:
    for step in steps(load(name)):
        if "uses" in step:
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", step["uses"]), step["uses"]


@pytest.mark.parametrize("name", ["ci.yml", "preview.yml", "release.yml"])
def test_read_only_token_and_no_persisted_credentials(name: str) -> None:
    workflow = load(name)
    assert workflow["permissions"] == {"contents": "read"}
    for step in steps(workflow):
        if step.get("uses", "").startswith("actions/checkout@"):
            assert step["with"]["persist-credentials"] is False


def test_ci_runs_make_test_on_python_311_for_pushes_and_prs() -> None:
    workflow = load("ci.yml")
    assert set(workflow["on"]) == {"push", "pull_request"}
    all_steps = steps(workflow)
    assert any(s.get("run", "").startswith("make test") for s in all_steps)
    python = [s for s in all_steps if s.get("uses", "").startswith("actions/setup-python@")]
    assert python and python[0]["with"]["python-version"] == "3.11"


def test_preview_posts_the_offline_diff_without_template_injection() -> None:
    workflow = load("preview.yml")
    assert set(workflow["on"]) == {"pull_request"}
    job = workflow["jobs"]["offline-diff"]
    runs = "\n".join(s.get("run", "") for s in job["steps"])
    assert 'servestack diff --base "origin/$BASE_REF"' in runs
    assert "servestack check" in runs
    # GitHub context reaches shell scripts only through env vars.
    assert "${{" not in runs


def test_pulumi_preview_covers_every_cloud_stack_with_the_policy_pack() -> None:
    job = load("preview.yml")["jobs"]["pulumi-preview"]
    cloud_stacks = sorted(
        s for s in available_stacks()
        if (read_stack_file(stack_file(s)).get("cluster") or {}).get("backend") != "kind"
    )
    assert sorted(job["strategy"]["matrix"]["stack"]) == cloud_stacks
    action = next(s for s in job["steps"] if s.get("uses", "").startswith("pulumi/actions@"))
    assert action["with"]["command"] == "preview"
    assert action["with"]["policyPacks"] == "policies"
    assert action["with"]["comment-on-pr"] is True
    # Only runs where credentials exist.
    assert action["if"] == "env.HAS_PULUMI_TOKEN == 'true'"
    assert "secrets.PULUMI_ACCESS_TOKEN" in job["env"]["HAS_PULUMI_TOKEN"]


def test_gke_previews_authenticate_with_workload_identity_and_the_auth_plugin() -> None:
    """The GKE kubeconfig runs gke-gcloud-auth-plugin: the job needs an OIDC token exchanged
    for Google credentials (no JSON key) and the plugin installed."""
    job = load("preview.yml")["jobs"]["pulumi-preview"]
    assert job["permissions"]["id-token"] == "write"
    backends = {entry["stack"]: entry["backend"] for entry in job["strategy"]["matrix"]["include"]}
    for stack, backend in backends.items():
        assert read_stack_file(stack_file(stack))["cluster"]["backend"] == backend
    by_action = {s["uses"].split("@")[0]: s for s in job["steps"] if "uses" in s}
    auth = by_action["google-github-actions/auth"]
    provider = auth["with"]["workload_identity_provider"]
    assert provider == "${{ vars.GCP_WORKLOAD_IDENTITY_PROVIDER }}"
    assert "credentials_json" not in auth["with"]
    assert "gke" in auth["if"]
    gcloud = by_action["google-github-actions/setup-gcloud"]
    assert gcloud["with"]["install_components"] == "gke-gcloud-auth-plugin"
    action = by_action["pulumi/actions"]
    assert "GOOGLE_CREDENTIALS" not in action["env"]


def _release_commands(workflow: dict[str, Any]) -> list[str]:
    return [s["run"] for s in steps(workflow) if s.get("id") == "release"]


def test_the_release_is_the_last_commit_that_changed_what_the_dockerfile_copies() -> None:
    """A commit touching nothing in the image keeps the release, so `up` rolls nothing out."""
    dockerfile = (REPO / "Dockerfile").read_text()
    sources = [part for line in dockerfile.splitlines() if line.startswith("COPY ")
               for part in line.split()[1:-1] if not part.startswith("--")]
    assert "apps" in sources
    expected = f"git log -1 --format=%h --abbrev=12 -- Dockerfile {' '.join(sources)}"
    for name in ("preview.yml", "release.yml"):
        (command,) = _release_commands(load(name))
        assert expected in command, name


def test_release_builds_both_flavours_by_the_stacks_tag_and_deploys_that_release() -> None:
    workflow = load("release.yml")
    assert set(workflow["on"]) == {"push"} and workflow["on"]["push"]["branches"] == ["main"]
    jobs = workflow["jobs"]
    image = jobs["image"]
    assert image["strategy"]["matrix"]["flavour"] == ["cpu", "gpu"]
    build = "\n".join(s.get("run", "") for s in image["steps"])
    assert ".venv/bin/servestack image" in build and '--release "$RELEASE"' in build
    assert "docker build" in build and "docker push" in build
    assert "${{" not in build
    (up,) = [s for s in jobs["deploy"]["steps"] if s.get("uses", "").startswith("pulumi/actions@")]
    assert up["with"]["command"] == "up" and set(jobs["deploy"]["needs"]) == {"release", "image"}
    config = yaml.safe_load(up["with"]["config-map"])
    assert config == {"servestack:image.release": {
        "value": "${{ needs.release.outputs.release }}", "secret": False}}


def test_pulumi_preview_is_given_the_release_the_merge_would_deploy() -> None:
    job = load("preview.yml")["jobs"]["pulumi-preview"]
    action = next(s for s in job["steps"] if s.get("uses", "").startswith("pulumi/actions@"))
    config = yaml.safe_load(action["with"]["config-map"])
    assert config == {"servestack:image.release": {
        "value": "${{ steps.release.outputs.release }}", "secret": False}}
