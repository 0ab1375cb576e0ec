"""The Ray defaults servestack adopts (infra/ray_defaults.py) are Ray's, and spelled once."""

from __future__ import annotations

import ast

from infra.config import REPO_ROOT, HttpOptions
from infra.ray_defaults import SERVE_HTTP_PORT
from servestack.local.free_ports import RAY_DEFAULT_PORTS

ROOMS = ("apps", "infra", "servestack", "policies")


def test_serves_default_http_port_is_rays() -> None:
    from ray.serve.config import HTTPOptions

    assert HTTPOptions().port == SERVE_HTTP_PORT


def test_the_stack_adopts_it_and_local_clusters_steer_around_it() -> None:
    assert HttpOptions().port == SERVE_HTTP_PORT
    assert SERVE_HTTP_PORT in RAY_DEFAULT_PORTS


def test_no_other_module_spells_serves_default_port() -> None:
    spelled = sorted(
        f"{path.relative_to(REPO_ROOT)}:{node.lineno}"
        for room in ROOMS for path in sorted((REPO_ROOT / room).rglob("*.py"))
        if path != REPO_ROOT / "infra" / "ray_defaults.py"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and type(node.value) is int
        and node.value == SERVE_HTTP_PORT
    )
    assert spelled == [], "import SERVE_HTTP_PORT from infra.ray_defaults (or HttpOptions())"
