"""Versions, settings and allowed values named in README.md and docs/ agree with the code's own
constants (the generated config tables are checked by tests/servestack/test_config_reference.py)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args

import pytest

from infra.clusters.eks import AUTOSCALER_CHART_VERSION, DEVICE_PLUGIN_VERSION
from infra.config.kuberay import KubeRayConfig
from infra.config.observability import KUBE_PROMETHEUS_STACK_VERSION
from infra.config.rayservice import RayServiceConfig

REPO = Path(__file__).resolve().parents[1]
DOCS = sorted([REPO / "README.md", *(REPO / "docs").glob("*.md")])
KUBERAY_VERSION = get_args(KubeRayConfig.model_fields["chart_version"].annotation)[0]
STRATEGIES = get_args(RayServiceConfig.model_fields["upgrade_strategy"].annotation)
KUBERAY_STRATEGIES = ("NewCluster", "NewClusterWithIncrementalUpgrade", "None")


def mentions(pattern: str) -> list[tuple[str, str]]:
    """(document, captured version) for every match of `pattern` in README and docs/."""
    found = []
    for path in DOCS:
        text = " ".join(path.read_text().split())  # a mention may wrap across lines
        found += [(path.name, match) for match in re.findall(pattern, text)]
    return found


@pytest.mark.parametrize(("pattern", "version"), [
    (r"device plugin chart \((\d+\.\d+\.\d+)\)", DEVICE_PLUGIN_VERSION),
    (r"NVIDIA device plugin[^.]*?\b(\d+\.\d+\.\d+)", DEVICE_PLUGIN_VERSION),
    (r"cluster-autoscaler[^.]*? chart (\d+\.\d+\.\d+)", AUTOSCALER_CHART_VERSION),
    (r"KubeRay v(\d+\.\d+\.\d+)", KUBERAY_VERSION),
    (r"`kuberay-operator` (\d+\.\d+\.\d+)", KUBERAY_VERSION),
    (r"kube-prometheus-stack (\d+\.\d+\.\d+)", KUBE_PROMETHEUS_STACK_VERSION),
])
def test_every_pinned_version_the_docs_name_is_the_code_s(pattern: str, version: str) -> None:
    wrong = [(doc, found) for doc, found in mentions(pattern) if found != version]
    assert not wrong, f"docs name {wrong}; the code pins {version}"


def test_the_pinned_versions_are_named_at_all() -> None:
    assert mentions(r"device plugin chart \((\d+\.\d+\.\d+)\)")
    assert mentions(r"KubeRay v(\d+\.\d+\.\d+)")
    assert mentions(r"kube-prometheus-stack (\d+\.\d+\.\d+)")


def test_an_upgrade_strategy_the_schema_refuses_is_documented_as_refused() -> None:
    """A table row of docs/capacity.md naming a KubeRay strategy the stack schema does not
    accept must say so (the README's config table is generated from the same Literal)."""
    rows = [line for line in (REPO / "docs" / "capacity.md").read_text().splitlines()
            if line.startswith("| `")]
    for strategy in KUBERAY_STRATEGIES:
        (row,) = [r for r in rows if r.startswith(f"| `{strategy}` |")]
        assert (strategy in STRATEGIES) != ("refused" in row), row


def test_every_variable_and_secret_the_workflows_read_is_documented() -> None:
    names = set()
    for workflow in (REPO / ".github" / "workflows").glob("*.yml"):
        names |= set(re.findall(r"\b(?:vars|secrets)\.([A-Z][A-Z0-9_]*)", workflow.read_text()))
    names.discard("GITHUB_TOKEN")
    text = "\n".join(path.read_text() for path in DOCS)
    assert names and not {n for n in names if f"`{n}`" not in text}


def test_the_crds_directory_make_test_uses_is_the_one_the_readme_names() -> None:
    makefile = (REPO / "Makefile").read_text()
    (default,) = re.findall(r"KUBERAY_CRDS_DIR \?= \$\(abspath ([^)]+)\)", makefile)
    readme = " ".join((REPO / "README.md").read_text().split())
    assert f"`{default}`" in readme and "`$KUBERAY_CRDS_DIR`" in readme


def test_docs_name_only_documents_that_exist() -> None:
    """Links resolve, and a document named in passing (an `ARCHITECTURE.md`) is in the repo."""
    folders = [d for d in REPO.iterdir() if d.is_dir() and not d.name.startswith(".")]
    present = {p.name for p in REPO.glob("*.md")}
    present |= {p.name for d in folders for p in d.rglob("*.md")}
    missing = []
    for path in DOCS:
        for target in re.findall(r"\]\(([^)#\s]+\.md)(?:#[^)]*)?\)", path.read_text()):
            if not (path.parent / target).is_file() and not (REPO / target).is_file():
                missing.append((path.name, target))
        for name in re.findall(r"`?([A-Z][A-Z-]+\.md)`?", path.read_text()):
            if name not in present:
                missing.append((path.name, name))
    assert not missing
