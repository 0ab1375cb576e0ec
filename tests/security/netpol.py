"""A small model of Kubernetes NetworkPolicy semantics, to ask "may A reach B on port P?".

Only what the stack's policies use: matchLabels and `In` selectors, named and numbered
TCP/UDP ports, ipBlock peers (any address given matches 0.0.0.0/0-style CIDRs by
containment). A pod is
isolated in a direction once any policy of its namespace selects it for that direction;
then a connection is allowed if some selecting policy has a rule admitting the peer and port.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Pod:
    namespace: str
    labels: Mapping[str, str]
    ports: Mapping[str, int] = field(default_factory=dict)  # container port name → number
    ip: str = "10.0.0.1"


@dataclass(frozen=True)
class Address:
    """Something outside the pod network (the API server, an external Redis)."""

    ip: str


def _matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    if selector is None:
        return False
    wanted = dict(selector.get("matchLabels") or {})
    for expression in selector.get("matchExpressions") or []:
        assert expression["operator"] == "In", "the model handles matchLabels and In only"
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return wanted.items() <= dict(labels).items()


def _peer_matches(peer: Mapping[str, Any], policy_namespace: str, other: Pod | Address,
                  namespace_labels: Mapping[str, Mapping[str, str]]) -> bool:
    if "ipBlock" in peer:
        network = ipaddress.ip_network(peer["ipBlock"]["cidr"])
        return ipaddress.ip_address(other.ip) in network
    if isinstance(other, Address):
        return False
    pods = peer.get("podSelector")
    namespaces = peer.get("namespaceSelector")
    if namespaces is None:
        in_namespace = other.namespace == policy_namespace
    else:
        in_namespace = _matches(namespaces, namespace_labels.get(other.namespace, {}))
    return in_namespace and (pods is None or _matches(pods, other.labels))


def _port_matches(ports: Sequence[Mapping[str, Any]] | None, target: Pod | Address, port: int,
                  protocol: str) -> bool:
    if not ports:
        return True
    for entry in ports:
        if entry.get("protocol", "TCP") != protocol:
            continue
        wanted = entry.get("port")
        if wanted is None:
            return True
        if isinstance(wanted, str):
            if isinstance(target, Pod) and target.ports.get(wanted) == port:
                return True
        elif int(wanted) == port:
            return True
    return False


@dataclass(frozen=True)
class Cluster:
    policies: Sequence[Mapping[str, Any]]
    namespace_labels: Mapping[str, Mapping[str, str]]

    def _selecting(self, pod: Pod, direction: str) -> list[Mapping[str, Any]]:
        return [p for p in self.policies
                if p["metadata"]["namespace"] == pod.namespace
                and direction in p["spec"].get("policyTypes", ["Ingress"])
                and _matches(p["spec"].get("podSelector", {}), pod.labels)]

    def _ingress_allows(self, source: Pod, target: Pod, port: int, protocol: str) -> bool:
        selecting = self._selecting(target, "Ingress")
        if not selecting:
            return True
        return any(
            _port_matches(rule.get("ports"), target, port, protocol)
            and (not rule.get("from") or any(
                _peer_matches(peer, target.namespace, source, self.namespace_labels)
                for peer in rule["from"]))
            for policy in selecting for rule in policy["spec"].get("ingress") or [])

    def _egress_allows(self, source: Pod, target: Pod | Address, port: int,
                       protocol: str) -> bool:
        selecting = self._selecting(source, "Egress")
        if not selecting:
            return True
        return any(
            _port_matches(rule.get("ports"), target, port, protocol)
            and (not rule.get("to") or any(
                _peer_matches(peer, source.namespace, target, self.namespace_labels)
                for peer in rule["to"]))
            for policy in selecting for rule in policy["spec"].get("egress") or [])

    def allows(self, source: Pod, target: Pod | Address, port: int, protocol: str = "TCP") -> bool:
        """Both ends must agree: the source's egress and the target's ingress."""
        if not self._egress_allows(source, target, port, protocol):
            return False
        return isinstance(target, Address) or self._ingress_allows(source, target, port, protocol)


def namespace_labels(names: Iterable[str], extra: Mapping[str, Mapping[str, str]] | None = None
                     ) -> dict[str, dict[str, str]]:
    """The API server labels every namespace with kubernetes.io/metadata.name."""
    labels = {name: {"kubernetes.io/metadata.name": name} for name in names}
    for name, more in (extra or {}).items():
        labels.setdefault(name, {"kubernetes.io/metadata.name": name}).update(more)
    return labels
