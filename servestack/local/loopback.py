"""Start Serve with its HTTP proxy on 127.0.0.1 before the REST deploy.

The stack's Serve config says `http_options.host: 0.0.0.0`, which a pod needs. Ray applies
`http_options` only when a deploy *starts* Serve; once Serve runs it keeps its binding and
the dashboard just logs a warning. So a short driver starts Serve with the stack's HTTP
options except the host (loopback) and port (the local one), and the unchanged config is
deployed afterwards. The driver runs as a subprocess so `ray.init` state and auth env
never leak into the CLI process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

from infra.config import ServeOptions
from servestack.local.head import LOOPBACK, LocalPorts, output_tail

DRIVER_TIMEOUT_S = 120.0


class LoopbackError(RuntimeError):
    """Serve could not be started on loopback; carries the driver's output."""


def loopback_http_options(serve: ServeOptions, port: int) -> dict[str, Any]:
    """The stack's HTTP options with host and port made local."""
    options: dict[str, Any] = serve.http.model_dump(exclude_none=True)
    options.update(host=LOOPBACK, port=port)
    return options


def start_serve_on_loopback(serve: ServeOptions, ports: LocalPorts, env: Mapping[str, str],
                            timeout_s: float = DRIVER_TIMEOUT_S) -> None:
    request = {
        "address": ports.gcs_address,
        "http_options": loopback_http_options(serve, ports.http),
        "proxy_location": serve.proxy_location,
    }
    argv = [sys.executable, "-m", "servestack.local.loopback", json.dumps(request, sort_keys=True)]
    try:
        result = subprocess.run(argv, env=dict(env), capture_output=True, text=True,
                                timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise LoopbackError(f"starting Serve did not finish within {timeout_s:.0f} s") from None
    if result.returncode != 0:
        raise LoopbackError("starting Serve on loopback failed:\n"
                            + output_tail(result.stdout + result.stderr))


def main(argv: list[str]) -> None:
    """Driver entry point: connect, `serve.start`, disconnect; the controller is detached."""
    import logging

    import ray
    from ray import serve

    request = json.loads(argv[0])
    ray.init(address=request["address"], logging_level=logging.WARNING, log_to_driver=False)
    try:
        serve.start(http_options=request["http_options"],
                    proxy_location=request["proxy_location"])
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main(sys.argv[1:])
