"""Real model stores on loopback, started by the tests on free ports: S3 (moto's server),
GCS (gcp-storage-emulator) and an MLflow tracking server (sqlite, local artifact root).

Each one is pointed at through the clients' own environment variables, exactly what a
pod gets (apps/model_source/environment.py), so replicas started later inherit them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import requests

from servestack.local.free_ports import free_port


def _wait_http(url: str, timeout_s: float, process: subprocess.Popen[bytes] | None = None,
               log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{url} exited: {log.read_text()[-2000:] if log else ''}")
        try:
            requests.get(url, timeout=2)
            return
        except requests.RequestException:
            time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout_s}s")


@dataclass(frozen=True)
class S3Server:
    """moto's S3 endpoint, with its request recorder: what the server really served."""

    endpoint: str

    def start_recording(self) -> None:
        requests.post(f"{self.endpoint}/moto-api/recorder/reset-recording", timeout=10)
        requests.post(f"{self.endpoint}/moto-api/recorder/start-recording", timeout=10)

    def object_downloads(self, bucket: str, key: str) -> int:
        """GET requests for exactly this object since start_recording."""
        log = requests.get(f"{self.endpoint}/moto-api/recorder/download-recording", timeout=10)
        wanted = f"/{bucket}/{key}"
        count = 0
        for line in filter(None, log.text.splitlines()):
            entry = json.loads(line)
            path = urlsplit(entry["url"]).path
            host = entry["headers"].get("Host", "")
            if host.startswith(f"{bucket}."):  # virtual-hosted style
                path = f"/{bucket}{path}"
            count += entry["method"] == "GET" and path == wanted
        return count


@contextmanager
def s3_server(workdir: Path) -> Iterator[S3Server]:
    """moto in server mode, recording requests to a file under `workdir`."""
    os.environ["MOTO_RECORDER_FILEPATH"] = str(workdir / "moto-recording.jsonl")
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield S3Server(endpoint=f"http://127.0.0.1:{port}")
    finally:
        server.stop()


@contextmanager
def gcs_server() -> Iterator[str]:
    """gcp-storage-emulator (GCS JSON API, in memory); yields STORAGE_EMULATOR_HOST."""
    from gcp_storage_emulator.server import create_server

    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@contextmanager
def mlflow_server(root: Path) -> Iterator[str]:
    """`mlflow server` with a sqlite backend and a local artifact root; yields its URI."""
    port = free_port()
    log = root / "mlflow.log"
    root.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1",
             "--port", str(port), "--workers", "1",
             "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
             "--artifacts-destination", str(root / "artifacts")],
            stdout=out, stderr=subprocess.STDOUT, cwd=root, start_new_session=True,
        )
    uri = f"http://127.0.0.1:{port}"
    try:
        _wait_http(f"{uri}/health", 120, process, log)
        yield uri
    finally:
        os.killpg(process.pid, 15)
        process.wait(30)
