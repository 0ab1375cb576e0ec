"""Bad input and missing Ray: clear messages and exit codes, nothing started."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

import servestack.cli.commands
from infra.config import STACKS_DIR
from infra.stack_file import stack_file
from servestack.cli import app
from servestack.local.free_ports import free_port
from servestack.local.processes import cluster_processes


def servestack(tmp_path: Path, *args: str) -> Result:
    env = {"RAY_AUTH_TOKEN_PATH": str(tmp_path / "auth_token"), "RAY_TMPDIR": str(tmp_path)}
    return CliRunner().invoke(app, list(args), env=env)


def test_serve_rejects_an_invalid_stack_with_the_field_path_and_exit_2(tmp_path: Path) -> None:
    source = stack_file("local", STACKS_DIR).read_text()
    (tmp_path / "Pulumi.typo.yaml").write_text(source.replace("num_cpus: 0.5", "num_cpu: 0.5", 1))
    ray_port = free_port()
    result = servestack(tmp_path, "serve", "--stack", "typo", "--stacks-dir", str(tmp_path),
                        "--ray-port", str(ray_port))
    assert result.exit_code == 2
    assert "servestack:apps.embeddings.deployments.Embedder.resources.num_cpu" in result.stderr
    assert "unknown field 'num_cpu'" in result.stderr
    assert cluster_processes(ray_port) == []


def test_serve_names_file_line_and_column_of_a_yaml_error_in_one_line(tmp_path: Path) -> None:
    fixture = Path(__file__).resolve().parents[2] / "fixtures" / "broken-yaml-syntax.yaml"
    (tmp_path / "Pulumi.broken.yaml").write_text(fixture.read_text())
    ray_port = free_port()
    result = servestack(tmp_path, "serve", "--stack", "broken", "--stacks-dir", str(tmp_path),
                        "--ray-port", str(ray_port))
    assert result.exit_code == 2
    assert result.stderr.strip().startswith(f"{tmp_path / 'Pulumi.broken.yaml'}:13:16: ")
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert cluster_processes(ray_port) == []


def test_serve_names_the_known_stacks_when_the_stack_does_not_exist(tmp_path: Path) -> None:
    result = servestack(tmp_path, "serve", "--stack", "nope")
    assert result.exit_code == 2
    assert "no stack 'nope'" in result.stderr and "local" in result.stderr


class _NotRay(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_error(404)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def foreign_server() -> Iterator[int]:
    """Something that is not Ray listening where the dashboard should go."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotRay)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_serve_reports_a_taken_port_and_starts_nothing(tmp_path: Path, foreign_server: int) -> None:
    ray_port = free_port()
    result = servestack(tmp_path, "serve", "--ray-port", str(ray_port),
                        "--dashboard-port", str(foreign_server))
    assert result.exit_code == 1
    assert f"{foreign_server} (--dashboard-port) already in use" in result.stderr
    assert cluster_processes(ray_port) == []


def test_status_exits_1_when_no_ray_runs(tmp_path: Path) -> None:
    result = servestack(tmp_path, "status", "--dashboard-port", str(free_port()))
    assert result.exit_code == 1
    assert "no Ray dashboard answers" in result.stderr


def test_stop_is_a_no_op_exit_0_when_nothing_runs(tmp_path: Path) -> None:
    port = free_port()
    result = servestack(tmp_path, "stop", "--ray-port", str(port),
                        "--dashboard-port", str(free_port()))
    assert result.exit_code == 0
    assert f"No Ray cluster is running on port {port}" in result.stderr
