"""Labels, annotations, port names and taint effects are spelled once: in infra/names.py, or,
for the label a platform puts on every node of a pool, in that backend's spec.

Selectors only match while both sides spell a label the same way, so a second spelling is a
NetworkPolicy or PodMonitor that silently selects nothing after a rename. The hunt reads every
string constant of the code (f-string pieces included, docstrings and other bare string
statements excluded, so prose may still mention a name) and compares whole strings.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from infra import names
from infra.clusters.spec import cluster_specs
from infra.config import REPO_ROOT, Taint

SCANNED = ("apps", "benchmarks", "infra", "policies", "servestack")
HOME = Path(names.__file__).resolve()

ALLOWED: Mapping[tuple[str, str], str] = {
    ("apps/http_contract.py", "http"): "the ASGI scope type, not the operator's port",
    ("apps/ingress.py", "http"): "the ASGI scope type, not the operator's port",
    ("benchmarks/workloads.py", "serve"): "a word of the synthetic texts the load generator sends",
    ("infra/field_types.py", "http"): "a URL scheme (model_sources endpoints), not the "
                                      "operator's port",
    ("infra/kuberay.py", "release"): "the component's output named after its Helm release",
    ("servestack/cli/local.py", "serve"): "the `servestack serve` command",
    ("servestack/cli/registry.py", "serve"): "the `servestack serve` command",
    ("servestack/config_reference.py", "serve"): "the `serve` section of the stack file",
}
"""Generic words that are port names too, where they mean something else: (file, string)."""


def hunted() -> dict[str, str]:
    """Every spelling infra.names and the backend specs own, mapped to the name that owns it."""
    owned = {value: f"infra.names.{attr}" for attr, value in vars(names).items()
             if attr.endswith(("_LABEL", "_ANNOTATION", "_PORT_NAME")) and isinstance(value, str)}
    for mode in names.POD_SECURITY_MODES:
        owned[names.pod_security_version_label(mode)] = (
            f"infra.names.pod_security_version_label({mode!r})")
    for effect in names.TAINT_EFFECTS:
        owned[effect] = "infra.names.TaintEffect"
    for effect, cloud in names.CLOUD_TAINT_EFFECTS.items():
        owned[cloud] = f"infra.names.CLOUD_TAINT_EFFECTS[{effect!r}]"
    for spec in cluster_specs():
        if spec.node_pool_label is not None:
            owned[spec.node_pool_label] = f"{spec.__module__}.{spec.__name__}.node_pool_label"
    return owned


def spec_homes() -> dict[str, str]:
    """Each backend's node-pool label → its spec module, the one file that may spell it."""
    return {spec.node_pool_label: f"{spec.__module__.replace('.', '/')}.py"
            for spec in cluster_specs() if spec.node_pool_label is not None}


def string_constants(source: str) -> Iterator[tuple[int, str]]:
    """(line, text) of each string constant that is code, not prose."""
    tree = ast.parse(source)
    prose = {id(node.value) for node in ast.walk(tree)
             if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in prose:
            yield node.lineno, node.value


def strays(path: Path, source: str, owned: Mapping[str, str]) -> list[str]:
    relative = path.resolve().relative_to(REPO_ROOT).as_posix()
    homes = spec_homes()
    return [f"{relative}:{line}: {text!r} is {owned[text]}"
            for line, text in string_constants(source)
            if text in owned and (relative, text) not in ALLOWED and homes.get(text) != relative]


def sources() -> Iterator[Path]:
    for room in SCANNED:
        for path in sorted((REPO_ROOT / room).rglob("*.py")):
            if path.resolve() != HOME:
                yield path


def test_the_hunt_covers_labels_ports_and_taint_effects() -> None:
    owned = hunted()
    for spelling in ("app.kubernetes.io/name", "ray.io/node-type", "servestack.io/stack",
                     "eks.amazonaws.com/nodegroup", "cloud.google.com/gke-nodepool",
                     "pod-security.kubernetes.io/enforce-version", "prometheus.io/port",
                     "metrics", "as-metrics", "dash-metrics", "dashboard", "serve", "http",
                     "NoSchedule", "NO_EXECUTE"):
        assert spelling in owned, spelling


def test_a_literal_in_code_is_found_and_prose_is_not() -> None:
    source = '''"""Selects ray.io/node-type."""
HEAD = {"ray.io/node-type": "head"}
"""The head's ray.io/node-type."""
def f(kind: str) -> str:
    """Port metrics."""
    return f"{kind}" + "metrics"
'''
    found = strays(REPO_ROOT / "infra" / "example.py", source, hunted())
    assert found == [
        "infra/example.py:2: 'ray.io/node-type' is infra.names.RAY_NODE_TYPE_LABEL",
        "infra/example.py:6: 'metrics' is infra.names.METRICS_PORT_NAME",
    ]


def test_no_label_port_name_or_taint_effect_is_spelled_outside_names() -> None:
    owned = hunted()
    found = [stray for path in sources() for stray in strays(path, path.read_text(), owned)]
    assert not found, "import these from where they are spelled instead:\n" + "\n".join(found)


@pytest.mark.parametrize("effect", names.TAINT_EFFECTS)
def test_every_taint_effect_the_stack_admits_has_a_cloud_spelling(
    effect: names.TaintEffect,
) -> None:
    assert Taint(key="nvidia.com/gpu", effect=effect).effect in names.CLOUD_TAINT_EFFECTS


def test_the_stack_admits_exactly_the_taint_effects_names_owns() -> None:
    schema = Taint.model_json_schema()["properties"]["effect"]
    assert tuple(schema["enum"]) == names.TAINT_EFFECTS
    assert schema["default"] == names.NO_SCHEDULE


def test_names_imports_nothing_of_ours() -> None:
    """As its docstring says: any room may import it without pulling in another."""
    from tests.test_layering import ROOMS, imports_of, room_of

    assert [module for _, module in imports_of(HOME) if room_of(module) in ROOMS] == []
