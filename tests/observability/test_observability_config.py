"""`servestack:observability` and `apps.<app>.slo`: bad values name the field and the fix."""

from __future__ import annotations

from typing import Any

import pytest

from infra.config import StackConfigError, parse_stack_config
from infra.stack_file import read_stack_file, stack_file


def parse(**changes: Any) -> Any:
    return parse_stack_config("local", {**read_stack_file(stack_file("local")), **changes})


@pytest.mark.parametrize(("observability", "path", "words"), [
    ({"metrics_port": 0}, "observability.metrics_port", "must be between 1 and 65535"),
    ({"kube_prometheus_stack_version": "latest"}, "observability.kube_prometheus_stack_version",
     "should match pattern"),
    ({"monitoring_namespace": "Monitoring"}, "observability.monitoring_namespace",
     "a lowercase RFC 1123 label"),
    ({"grafana": True}, "observability.grafana", "unknown field"),
])
def test_bad_observability_settings_name_the_field(
    observability: dict[str, Any], path: str, words: str
) -> None:
    with pytest.raises(StackConfigError) as caught:
        parse(observability=observability)
    assert any(p == path and words in m for p, m in caught.value.problems), caught.value.problems


def test_installing_the_chart_implies_the_operator() -> None:
    config = parse(observability={"install_kube_prometheus_stack": True})
    assert config.observability.uses_prometheus_operator


@pytest.mark.parametrize(("slo", "path"), [
    ({"p99_latency_ms": 0}, "apps.embeddings.slo.p99_latency_ms"),
    ({"max_error_ratio": 1.5}, "apps.embeddings.slo.max_error_ratio"),
    ({"p50_latency_ms": 10}, "apps.embeddings.slo.p50_latency_ms"),
])
def test_bad_slo_overrides_name_the_app_and_field(slo: dict[str, Any], path: str) -> None:
    raw = read_stack_file(stack_file("local"))
    apps = {**raw["apps"], "embeddings": {"slo": slo}}
    with pytest.raises(StackConfigError) as caught:
        parse(apps=apps)
    assert [p for p, _ in caught.value.problems] == [path], caught.value.problems
