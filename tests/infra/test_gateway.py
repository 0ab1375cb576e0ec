"""The front door: every Gateway API object passes the vendored CRDs (CEL included), the
HTTPRoute covers exactly the apps' route prefixes, and only the data plane reaches Serve."""

from __future__ import annotations

import copy

import pytest

from infra.gateway import front_door_manifests, http_route_manifest
from infra.network_policies import network_policy_manifests
from infra.stack_file import load_stack
from tests.infra.gateway_crd import validate_gateway_object

GATEWAY_KINDS = {"Gateway", "GatewayClass", "HTTPRoute", "ReferenceGrant"}


@pytest.mark.parametrize("stack", ["prod", "staging"])
def test_every_front_door_object_passes_the_gateway_api_crds(stack: str) -> None:
    objects = [m for m in front_door_manifests(load_stack(stack).stack)
               if m["kind"] in GATEWAY_KINDS]
    assert {"Gateway", "HTTPRoute"} <= {m["kind"] for m in objects}
    for manifest in objects:
        validate_gateway_object(manifest)


def test_the_cel_rules_run_and_catch_what_the_schema_cannot() -> None:
    gateway = next(m for m in front_door_manifests(load_stack("prod").stack)
                   if m["kind"] == "Gateway")
    twice = copy.deepcopy(gateway)
    twice["spec"]["listeners"].append(copy.deepcopy(twice["spec"]["listeners"][0]))
    with pytest.raises(AssertionError, match="CEL"):
        validate_gateway_object(twice)
    plain = copy.deepcopy(gateway)
    plain["spec"]["listeners"][0]["protocol"] = "HTTP"  # keeps its tls: refused by CEL
    with pytest.raises(AssertionError, match="CEL"):
        validate_gateway_object(plain)


def test_the_route_has_one_rule_per_app_prefix_and_nothing_else() -> None:
    stack = load_stack("prod").stack
    route = http_route_manifest(stack)
    prefixes = [rule["matches"][0]["path"]["value"] for rule in route["spec"]["rules"]]
    assert sorted(prefixes) == sorted(app.route_prefix for app in stack.applications)
    assert route["spec"]["hostnames"] == ["api.servestack.example.com"]


def test_a_cert_manager_listener_gets_its_certificate_in_the_secret_the_gateway_reads() -> None:
    objects = front_door_manifests(load_stack("prod").stack)
    certificate = next(m for m in objects if m["kind"] == "Certificate")
    gateway = next(m for m in objects if m["kind"] == "Gateway")
    ref = gateway["spec"]["listeners"][0]["tls"]["certificateRefs"][0]["name"]
    assert certificate["spec"]["secretName"] == ref
    assert certificate["spec"]["issuerRef"]["name"] == "letsencrypt-prod"


def test_only_the_gateway_data_plane_reaches_the_serve_port() -> None:
    stack = load_stack("prod").stack
    policies = {p["metadata"]["name"]: p for p in network_policy_manifests(stack, ["10.0.0.1/32"])}
    rule = policies["serve-from-gateway"]["spec"]["ingress"]
    assert rule == [{"from": [{"ipBlock": {"cidr": "35.191.0.0/16"}},
                              {"ipBlock": {"cidr": "130.211.0.0/22"}}],
                     "ports": [{"port": "serve", "protocol": "TCP"}]}]


def test_no_gateway_no_front_door() -> None:
    stack = load_stack("dev").stack
    assert front_door_manifests(stack) == []
    assert "serve-from-gateway" not in {
        p["metadata"]["name"] for p in network_policy_manifests(stack, ["10.0.0.1/32"])}
