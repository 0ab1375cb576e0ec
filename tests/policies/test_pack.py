"""The real CrossGuard pack, started the way `pulumi preview --policy-pack policies` starts it.

`python -m pulumi.policy <engine> .` in policies/ with the stack's PULUMI_* environment; the
test then speaks the analyzer gRPC protocol to it, as the Pulumi engine would. This is the
only place policies/__main__.py runs (importing it would block forever).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

from infra.config import PROJECT, REPO_ROOT
from infra.pod_preview import RAYSERVICE_TYPE, plain
from infra.stack_file import stack_file
from policies.enforcement import levels_for
from servestack.offline import RegisteredResource, run_stack, stack_config

STACK = "dev"
GPU_GROUP = "gpu-nvidia-com-gpu-l4"


@pytest.fixture(scope="module")
def analyzer() -> Iterator[analyzer_pb2_grpc.AnalyzerStub]:
    config, _secret_keys = stack_config(stack_file(STACK))
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "PULUMI_PROJECT": PROJECT,
        "PULUMI_STACK": STACK,
        "PULUMI_DRY_RUN": "true",
        "PULUMI_CONFIG": json.dumps(config),
    }
    process = subprocess.Popen(
        [sys.executable, "-u", "-m", "pulumi.policy", "127.0.0.1:1", "."],
        cwd=REPO_ROOT / "policies", env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        port = process.stdout.readline().decode().strip()
        if not port.isdigit():
            assert process.stderr is not None
            pytest.fail(f"the pack did not start: {port!r} {process.stderr.read().decode()}")
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        yield analyzer_pb2_grpc.AnalyzerStub(channel)
        channel.close()
    finally:
        process.kill()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def dev_resources() -> list[RegisteredResource]:
    return list(run_stack(STACK).check().resources)


def _struct(props: dict[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(props)
    return struct


def _rayservice(resources: list[RegisteredResource]) -> RegisteredResource:
    return next(r for r in resources if r.type == RAYSERVICE_TYPE)


def _stack_request(resources: list[RegisteredResource],
                   props: dict[str, dict[str, Any]]) -> analyzer_pb2.AnalyzeStackRequest:
    return analyzer_pb2.AnalyzeStackRequest(resources=[
        analyzer_pb2.AnalyzerResource(
            type=r.type, urn=r.urn, name=r.name, parent=r.parent or "",
            properties=_struct(props.get(r.urn, plain(r.inputs))),
        )
        for r in resources
    ])


def test_the_pack_serves_every_policy_at_the_stack_environment_levels(
    analyzer: analyzer_pb2_grpc.AnalyzerStub,
) -> None:
    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty())
    assert info.name == "servestack"
    served = {p.name: analyzer_pb2.EnforcementLevel.Name(p.enforcementLevel).lower()
              for p in info.policies}
    assert served == {name: level.value for name, level in levels_for(STACK).items()}


def test_a_resource_violation_arrives_over_grpc_as_mandatory(
    analyzer: analyzer_pb2_grpc.AnalyzerStub, dev_resources: list[RegisteredResource],
) -> None:
    rayservice = _rayservice(dev_resources)
    props = plain(rayservice.inputs)
    props["spec"]["rayClusterConfig"]["rayVersion"] = "2.59.0"
    response = analyzer.Analyze(analyzer_pb2.AnalyzeRequest(
        type=rayservice.type, urn=rayservice.urn, name=rayservice.name,
        properties=_struct(props),
    ))
    tripped = {(d.policyName, analyzer_pb2.EnforcementLevel.Name(d.enforcementLevel))
               for d in response.diagnostics}
    # dev: gcs-fault-tolerance and gpu-deployments-stay-warm are advisory there.
    assert ("ray-version-matches-image", "MANDATORY") in tripped
    assert {name for name, level in tripped if level == "MANDATORY"} == {
        "ray-version-matches-image"}


def test_stack_policies_read_the_stack_config_pulumi_hands_the_pack(
    analyzer: analyzer_pb2_grpc.AnalyzerStub, dev_resources: list[RegisteredResource],
) -> None:
    clean = analyzer.AnalyzeStack(_stack_request(dev_resources, {}))
    assert [d.policyName for d in clean.diagnostics] == []

    rayservice = _rayservice(dev_resources)
    props = plain(rayservice.inputs)
    for group in props["spec"]["rayClusterConfig"]["workerGroupSpecs"]:
        if group["groupName"] == GPU_GROUP:
            del group["template"]["spec"]["tolerations"]
    broken = analyzer.AnalyzeStack(_stack_request(dev_resources, {rayservice.urn: props}))
    assert [d.policyName for d in broken.diagnostics] == ["gpu-workers-target-their-pool"]
    (diagnostic,) = broken.diagnostics
    assert diagnostic.urn == rayservice.urn
    assert "nvidia.com/gpu=present:NoSchedule" in diagnostic.message
