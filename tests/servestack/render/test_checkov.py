"""checkov over every stack's rendered manifests and KubeRay preview Pods, offline.

Zero failed checks; the only skips are the ones listed, with reasons, in
policies/checkov-skips.yaml. checkov lives in .venv-tools (its pins clash with Ray's);
`make pytest` creates it, so CI always runs this.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.config import REPO_ROOT
from infra.stack_file import available_stacks

SKIPS_FILE = REPO_ROOT / "policies" / "checkov-skips.yaml"


def checkov() -> str:
    candidates = [os.environ.get("CHECKOV", ""), str(REPO_ROOT / ".venv-tools" / "bin" / "checkov"),
                  shutil.which("checkov") or ""]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return candidate
    pytest.skip("checkov is not installed; run `make tools` (make pytest does) to create "
                ".venv-tools with it")


def skips() -> dict[str, Any]:
    document = yaml.safe_load(SKIPS_FILE.read_text())
    assert isinstance(document, dict)
    return document


def run_checkov(directory: Path) -> dict[str, Any]:
    result = subprocess.run(
        [checkov(), "-d", str(directory), "--framework", "kubernetes", "--compact", "--quiet",
         "-o", "json", "--skip-download", "--skip-check", ",".join(sorted(skips()))],
        capture_output=True, text=True, check=False, timeout=300,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
    )
    assert result.returncode in (0, 1), result.stderr
    report = json.loads(result.stdout)
    return report[0] if isinstance(report, list) else report


def test_every_skip_names_a_check_and_gives_a_reason() -> None:
    for check_id, entry in skips().items():
        assert check_id.startswith(("CKV_K8S_", "CKV2_K8S_")), check_id
        assert isinstance(entry, dict) and set(entry) == {"reason"}, check_id
        assert len(str(entry["reason"]).split()) >= 12, f"{check_id}: say why, not just what"


@pytest.fixture(scope="module")
def scan(rendered: Path) -> dict[str, Any]:
    """One checkov run over every stack's render (checks are grouped by file path below)."""
    return run_checkov(rendered)


def _of_stack(checks: list[dict[str, Any]], stack: str) -> list[dict[str, Any]]:
    return [c for c in checks if c["file_path"].lstrip("/").split("/")[0] == stack]


def test_checkov_parsed_every_manifest_and_preview_pod(
    rendered: Path, scan: dict[str, Any]
) -> None:
    summary = scan["summary"]
    objects = len(list(rendered.glob("*/kubernetes/*.yaml")))
    pods = len(list(rendered.glob("*/preview-pods/*.yaml")))
    assert summary["parsing_errors"] == 0
    assert pods > 0 and summary["resource_count"] >= pods  # it really looked at the Pods
    assert summary["resource_count"] <= objects + pods
    assert summary["passed"] > 0


@pytest.mark.parametrize("stack", available_stacks())
def test_checkov_finds_nothing_beyond_the_listed_skips(stack: str, scan: dict[str, Any]) -> None:
    failed = _of_stack(scan["results"]["failed_checks"], stack)
    assert [(c["check_id"], c["resource"], c["check_name"]) for c in failed] == []
