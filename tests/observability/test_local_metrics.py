"""Serve's metrics on a real local Ray: what `servestack serve` prints is where they are.

One head (module-scoped, own ports, temp dir, token and HOME) runs the local stack. Each
app gets a good and a malformed request; then Ray's metrics endpoint must show, per app,
the request counter, the latency histogram and the error counter — the very series the
stack's alert rules query. Ray reports metrics every few seconds, so the scrape is polled.
The same run checks two facts the security docs rely on: the metrics endpoint needs no
token (hence the NetworkPolicy on the metrics ports) and Ray writes nothing under HOME
(hence a read-only root with /tmp as the only writable path).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from infra.capacity import plan_capacity
from infra.observability import alert_rules
from infra.stack_file import load_stack_config
from servestack.local.examples import example_requests
from tests.servestack.local.private_cli import PrivateCli, private_cli

pytestmark = pytest.mark.ray

SCRAPE_TIMEOUT_S = 120.0
KUBE_STATE_METRICS = ("kube_",)


@dataclass(frozen=True)
class ServedStack:
    cli: PrivateCli
    output: str

    @property
    def home(self) -> Path:
        return Path(self.cli.env["HOME"])


@pytest.fixture(scope="module")
def served() -> Iterator[ServedStack]:
    dirs = {"HOME": "home", "TMPDIR": "tmp", "XDG_CACHE_HOME": "cache"}
    with private_cli("sso-", own_dirs=dirs) as cli:
        result = cli.servestack("serve", "--timeout", "420", timeout=600)
        assert result.returncode == 0, result.stdout + result.stderr
        yield ServedStack(cli, result.stdout)


@pytest.fixture(scope="module")
def scraped(served: ServedStack) -> dict[str, list[dict[str, str]]]:
    """Metric name → label sets, once every app's request series has been reported."""
    apps = load_stack_config("local").applications
    for app in apps:
        for example in example_requests(app, served.cli.ports.http_url):
            assert requests.post(example.url, json=example.body, timeout=60).ok, example.url
        broken = requests.post(served.cli.ports.http_url + app.route_prefix, data=b"{not json",
                               headers={"content-type": "application/json"}, timeout=60)
        assert 400 <= broken.status_code < 500, (app.name, broken.status_code)
    deadline = time.monotonic() + SCRAPE_TIMEOUT_S
    while True:
        series = parse(requests.get(served.cli.ports.metrics_url, timeout=10).text)
        missing = [app.name for app in apps if not all(
            any(labels.get("application") == app.name for labels in series.get(name, []))
            for name in ("ray_serve_num_http_requests_total",
                         "ray_serve_num_http_error_requests_total",
                         "ray_serve_http_request_latency_ms_bucket"))]
        if not missing or time.monotonic() > deadline:
            return series
        time.sleep(2)


def parse(text: str) -> dict[str, list[dict[str, str]]]:
    series: dict[str, list[dict[str, str]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            series.setdefault(sample.name, []).append(dict(sample.labels))
    return series


def test_serve_prints_the_metrics_endpoint_it_started_ray_with(served: ServedStack) -> None:
    assert served.cli.ports.metrics_url in served.output


def test_every_app_has_request_latency_and_error_series(scraped: dict[str, list[dict[str, str]]]
                                                        ) -> None:
    for app in load_stack_config("local").applications:
        requests_ = [s for s in scraped["ray_serve_num_http_requests_total"]
                     if s.get("application") == app.name]
        assert {s["status_code"] for s in requests_} >= {"200"}, app.name
        errors = [s for s in scraped.get("ray_serve_num_http_error_requests_total", [])
                  if s.get("application") == app.name]
        assert errors and all(s["error_code"].startswith("4") for s in errors), app.name
        buckets = [s for s in scraped["ray_serve_http_request_latency_ms_bucket"]
                   if s.get("application") == app.name]
        assert any(s.get("le") == "+Inf" for s in buckets), app.name


def test_every_ray_metric_the_alerts_query_is_exported(scraped: dict[str, list[dict[str, str]]]
                                                       ) -> None:
    import promql_parser

    config = load_stack_config("prod")  # the stack with every kind of alert
    names: set[str] = set()
    for rule in alert_rules(config, plan_capacity(config)):
        promql_parser.walk(promql_parser.parse(rule["expr"]), lambda node: names.add(node.name)
                           if isinstance(node, promql_parser.VectorSelector) else None)
    ray_names = {n for n in names if not n.startswith(KUBE_STATE_METRICS)}
    assert ray_names and ray_names <= set(scraped), ray_names - set(scraped)
    healthy = scraped["ray_serve_deployment_replica_healthy"]
    assert {"application", "deployment"} <= set(healthy[0])


def test_the_metrics_endpoint_needs_no_token_while_the_dashboard_does(
    served: ServedStack, scraped: dict[str, list[dict[str, str]]]
) -> None:
    assert requests.get(served.cli.ports.metrics_url, timeout=10).status_code == 200
    dashboard = requests.get(served.cli.ports.dashboard_url + "/api/serve/applications/",
                             timeout=10)
    assert dashboard.status_code in (401, 403)


def test_ray_and_the_apps_write_nothing_under_home(
    served: ServedStack, scraped: dict[str, list[dict[str, str]]]
) -> None:
    """The CLI's own answer cache follows XDG_CACHE_HOME, so HOME shows only what Ray and
    the apps write."""
    written = sorted(str(p.relative_to(served.home)) for p in served.home.rglob("*"))
    assert written == []
    cache = Path(served.cli.env["XDG_CACHE_HOME"])
    assert {p.name for p in cache.iterdir()} <= {"servestack"}
