"""Pool and deployment paths are spelled once, in infra/field_paths.py: a second spelling is
how messages came to name the same field two ways."""

from __future__ import annotations

import ast
from pathlib import Path

from infra.config import REPO_ROOT, NodePool
from infra.field_paths import deployment_path, pool_path

SCANNED = ("infra", "policies", "servestack")
SPELLINGS = ("pools[", ".deployments.")
HOME = Path("infra/field_paths.py")
ALLOWED: dict[Path, str] = {}


def _string_pieces(path: Path) -> list[tuple[int, str]]:
    """Every string constant, f-string pieces included, minus docstrings and comments."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
                  and node.body and isinstance(node.body[0], ast.Expr)}
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and id(node) not in docstrings]


def test_no_module_spells_a_pool_or_deployment_path_itself() -> None:
    found = []
    for room in SCANNED:
        for path in sorted((REPO_ROOT / room).rglob("*.py")):
            relative = path.relative_to(REPO_ROOT)
            if relative == HOME or relative in ALLOWED:
                continue
            found += [f"{relative}:{line}: {text!r}" for line, text in _string_pieces(path)
                      if any(spelling in text for spelling in SPELLINGS)]
    assert found == []


def test_a_pools_own_path_is_the_one_spelling() -> None:
    pool = NodePool(name="gpu", cpu=4, memory="16GiB", max_nodes=1)
    assert pool.path("max_nodes") == pool_path("gpu", "max_nodes") == "pools[gpu].max_nodes"
    assert pool_path("gpu") == "pools[gpu]"
    assert deployment_path("embed", "Embedder", "resources") == \
        "apps.embed.deployments.Embedder.resources"
