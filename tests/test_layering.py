"""The rooms import only downwards: apps/ ← infra/ ← servestack/, with policies/ beside the tool.

Every import counts, the lazy ones inside functions and `importlib.import_module("…")` with
a literal (or f-string) prefix included, because a lazy import is how layers used to leak
into each other (the pack importing the program to read its config).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SPEC_SUFFIX = "_spec"
ROOMS = ("apps", "infra", "policies", "servestack")

POLICY_HELPERS = {
    "infra.config": "StackConfig: the typed stack the stack rules judge against (pydantic)",
    "infra.clusters.spec": "what every cluster backend declares without its SDK (pydantic); "
                           "each backend's `<backend>_spec` module is pure the same way",
    "infra.capacity": "the capacity plan, pure functions, recomputed by capacity-plan-fits",
    "infra.ray_answers": "a disk cache of Ray's pure answers (schema check, translation), "
                         "keyed by Ray's version and the arguments; pure otherwise",
    "infra.upgrade_plan": "the incremental upgrade's steps from the capacity plan, pure "
                          "(validation sizes clusterUpgradeOptions with it)",
    "infra.cost": "prices x the plan's node counts, pure (a typed price table read from a "
                  "file); stack-within-budget compares it with the budget",
    "infra.pod_preview": "reads the pods out of registered RayService props, pure",
    "infra.names": "labels, port names and taint effects, spelled once",
    "infra.ray_defaults": "Ray's defaults the schema adopts, literals importing nothing",
    "infra.field_types": "the stack's shared field types and their rules (pydantic), pure",
    "infra.field_paths": "pool and deployment field paths, spelled once (apps.field_path)",
    "infra.quantities": "Kubernetes quantities parsed and written one way, pure",
    "infra.stack_reading": "reads the stack from Pulumi config as the program does, without "
                           "importing the program (the pack gets the same config)",
    "infra.validation": "validate_stack, the one decision on a stack the program also makes: "
                        "config, secrets, plans, no resources",
    "infra.pod_ports": "the ports a Ray pod listens on and who chose each, pure (worker_groups)",
    "infra.contradictions": "settings that contradict each other, pure (validation)",
    "infra.environment": "which environment a stack is (local/dev/staging/prod), pure",
    "infra.serve_config": "specs → serveConfigV2, checked by Ray's schema; pure (validation)",
    "infra.ingress_environment": "the ingress env of Ray's HTTP processes as a dict, pure "
                                 "(worker_groups)",
    "infra.autoscaler_fit": "Ray's autoscaler translation of the groups, pure (validation)",
    "infra.worker_groups": "the RayCluster groups as dicts, pure (autoscaler_fit)",
    "infra.ray_internals": "the private Ray APIs behind one door, each imported only when "
                           "called; nothing registered (autoscaler_fit, worker_groups)",
    "infra.model_access": "model URIs → cache volume, env, egress rules as dicts, pure "
                          "(worker_groups)",
}
"""The infra modules the policy pack may import, and why each is safe to: none of them
registers a resource or imports the program."""


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _package(path: Path) -> str:
    name = module_name(path)
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def _literal_prefix(node: ast.expr) -> str | None:
    """The module a literal (or f-string with a literal head) names, up to its last dot."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if (isinstance(node, ast.JoinedStr) and node.values
            and isinstance(head := node.values[0], ast.Constant)
            and isinstance(head.value, str)):
        return head.value.rpartition(".")[0] or None
    return None


def imports_of(path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) for every import in the file, relative ones made absolute. `from m
    import x` yields m and m.x, since x may be a submodule (`from infra import program`)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = _package(path).split(".")
                anchor = ".".join(package[: len(package) - node.level + 1])
                base = f"{anchor}.{base}" if base else anchor
            yield node.lineno, base
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}"
        elif (isinstance(node, ast.Call) and node.args
              and isinstance(node.func, ast.Attribute | ast.Name)
              and (node.func.attr if isinstance(node.func, ast.Attribute)
                   else node.func.id) in ("import_module", "__import__")):
            name = _literal_prefix(node.args[0])
            if name:
                yield node.lineno, name


def sources(room: str) -> list[Path]:
    return sorted((REPO / room).rglob("*.py"))


def room_of(module: str) -> str:
    return module.split(".")[0]


def infra_module(module: str) -> str:
    """`infra.config.StackConfig` → `infra.config`: the module of infra/ a name lives in; a
    backend's SDK-free spec (`infra.clusters.kind_spec`) counts as one with the spec base."""
    parts = module.split(".")
    if parts[:2] == ["infra", "clusters"] and len(parts) > 2 and (
            parts[2] == "spec" or parts[2].endswith(SPEC_SUFFIX)):
        return "infra.clusters.spec"
    return ".".join(parts[:2])


def helper_files(helper: str) -> list[Path]:
    """The files of a helper: a module, a package's modules, or the backend spec modules."""
    path = REPO / helper.replace(".", "/")
    if helper == "infra.clusters.spec":
        return sorted({path.with_suffix(".py"), *path.parent.glob(f"*{SPEC_SUFFIX}.py")})
    return sorted(path.rglob("*.py")) if path.is_dir() else [path.with_suffix(".py")]


def forbidden(importer: str, module: str) -> str | None:
    """Why `importer` may not import `module`, or None when it may."""
    layer, target = room_of(importer), room_of(module)
    if layer == "apps" and target in ("infra", "policies", "servestack"):
        return "apps/ sit below the program and the tool"
    if layer == "infra" and target in ("servestack", "policies"):
        return "infra/ is the program: it never imports the tool or the pack"
    if layer == "policies" and target == "servestack":
        return "the pack sits beside the tool, not above it"
    if (layer == "policies" and target == "infra" and module != "infra"
            and infra_module(module) not in POLICY_HELPERS):
        return f"the pack may use only the pure helpers {sorted(POLICY_HELPERS)}"
    return None


def violations(rooms: tuple[str, ...] = ROOMS) -> list[str]:
    found = []
    for room in rooms:
        for path in sources(room):
            importer = module_name(path)
            for line, module in imports_of(path):
                reason = forbidden(importer, module)
                if reason:
                    found.append(f"{path.relative_to(REPO)}:{line}: {importer} imports "
                                 f"{module}: {reason}")
    return sorted(set(found))


def test_every_room_imports_only_the_rooms_below_it() -> None:
    assert violations() == []


def helper_leaks() -> list[str]:
    """Imports by a pure helper of anything outside the helpers (apps/ and third party aside):
    through one, the pack would reach the program."""
    leaks = []
    for helper in sorted(POLICY_HELPERS):
        for path in helper_files(helper):
            leaks.extend(_leaks_of(path))
    return leaks


def _leaks_of(path: Path) -> list[str]:
    leaks = []
    for line, module in imports_of(path) if path.exists() else ():
        if room_of(module) in ("servestack", "policies") or (
                room_of(module) == "infra" and module != "infra"
                and infra_module(module) not in POLICY_HELPERS):
            leaks.append(f"{path.relative_to(REPO)}:{line}: {module}")
    return leaks


def test_the_helpers_the_pack_may_use_import_no_other_infra_module() -> None:
    assert helper_leaks() == []


def test_every_helper_the_pack_may_use_exists() -> None:
    """A helper that moved (a module become a package) must not drop out of the check."""
    missing = [helper for helper in POLICY_HELPERS
               if not all(path.exists() for path in helper_files(helper))]
    assert missing == []


def test_a_helper_reaching_the_program_is_caught(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A relative import counts too: `from .program import run` in infra/capacity.py."""
    monkeypatch.setattr(__name__ + ".REPO", tmp_path)
    (tmp_path / "infra").mkdir()
    (tmp_path / "infra" / "capacity.py").write_text("def f():\n    from .program import run\n")
    assert helper_leaks() == ["infra/capacity.py:2: infra.program",
                              "infra/capacity.py:2: infra.program.run"]


@pytest.mark.parametrize(("importer", "source", "reason"), [
    ("infra/program.py", "from servestack.offline import run_stack", "never imports the tool"),
    ("infra/rayservice.py", "def f():\n    from policies.rules import RULES",
     "never imports the tool or the pack"),
    ("policies/rules/x.py", "from infra import program", "only the pure helpers"),
    ("policies/x.py", "import servestack.render", "beside the tool"),
    ("apps/x/app.py", "import importlib\nimportlib.import_module('infra.config')", "below"),
    ("infra/clusters/base.py", "importlib.import_module(f'servestack.{name}')", "the tool"),
])
def test_a_forbidden_import_is_caught_wherever_it_hides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, importer: str, source: str, reason: str,
) -> None:
    """The checker itself, on planted files: top-level, lazy and dynamic imports."""
    monkeypatch.setattr(__name__ + ".REPO", tmp_path)
    planted = tmp_path / importer
    planted.parent.mkdir(parents=True)
    planted.write_text(source + "\n")
    found = violations()
    assert found, f"{source!r} in {importer} went unnoticed"
    assert all(v.startswith(f"{importer}:") and reason in v for v in found), found


@pytest.mark.parametrize("source", [
    "from infra.config import StackConfig",
    "from infra.capacity import plan_capacity",
    "def f():\n    from infra.stack_reading import read_stack_config",
    "import pulumi_policy",
])
def test_the_pack_may_import_the_pure_helpers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str,
) -> None:
    monkeypatch.setattr(__name__ + ".REPO", tmp_path)
    planted = tmp_path / "policies" / "rules" / "ok.py"
    planted.parent.mkdir(parents=True)
    planted.write_text(source + "\n")
    assert violations() == []
