"""Kubernetes' own rules for the strings and numbers a manifest carries, written once.

Ported from k8s.io/apimachinery (pkg/util/validation, pkg/api/validate/content) and the
core API's validation of resource names and taints, with their messages: no PyPI package
implements them (kubernetes-validate checks manifests against the OpenAPI schema, which
does not carry these formats). Each rule returns its problems, empty when the value is
valid, so a caller can name the field path. Stdlib only: the app specs, the stack config
and the policy pack all check with these.
"""

from __future__ import annotations

import re
from typing import Final

DNS_1123_LABEL_FORMAT: Final = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS_1123_LABEL: Final = f"^{DNS_1123_LABEL_FORMAT}$"
"""A DNS-1123 label: namespaces, most object names, node pool names."""
DNS_1123_LABEL_MAX: Final = 63
_DNS_1123_SUBDOMAIN_FORMAT: Final = rf"{DNS_1123_LABEL_FORMAT}(\.{DNS_1123_LABEL_FORMAT})*"
DNS_1123_SUBDOMAIN_MAX: Final = 253
_DNS_1035_LABEL_FORMAT: Final = "[a-z]([-a-z0-9]*[a-z0-9])?"
DNS_1035_LABEL_MAX: Final = 63
_LABEL_KEY_FORMAT: Final = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_VALUE_FORMAT: Final = f"({_LABEL_KEY_FORMAT})?"
LABEL_VALUE_MAX: Final = 63
_NAME_PART_MAX: Final = 63
PORT_MIN: Final = 1
PORT_MAX: Final = 65535
_KUBERNETES_DOMAIN: Final = "kubernetes.io"

_DNS_1123_LABEL_RE: Final = re.compile(DNS_1123_LABEL)
_DNS_1123_SUBDOMAIN_RE: Final = re.compile(f"^{_DNS_1123_SUBDOMAIN_FORMAT}$")
_DNS_1035_LABEL_RE: Final = re.compile(f"^{_DNS_1035_LABEL_FORMAT}$")
_LABEL_KEY_RE: Final = re.compile(f"^{_LABEL_KEY_FORMAT}$")
_LABEL_VALUE_RE: Final = re.compile(f"^{_LABEL_VALUE_FORMAT}$")


def _max_length(value: str, limit: int) -> list[str]:
    return [f"must be no more than {limit} characters"] if len(value) > limit else []


def _regex(message: str, fmt: str, *examples: str) -> str:
    shown = " or ".join(f"'{example}'" for example in examples)
    return f"{message} (e.g. {shown}, regex used for validation is '{fmt}')"


def dns1123_label(value: str) -> list[str]:
    """Namespaces and most object names (apimachinery IsDNS1123Label)."""
    problems = _max_length(value, DNS_1123_LABEL_MAX)
    if not _DNS_1123_LABEL_RE.match(value):
        problems.append("must not contain dots" if _DNS_1123_SUBDOMAIN_RE.match(value) else _regex(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or "
            "'-', and must start and end with an alphanumeric character",
            DNS_1123_LABEL_FORMAT, "my-name", "123-abc"))
    return problems


def _formatted(value: str, limit: int, pattern: re.Pattern[str], message: str, fmt: str,
               *examples: str) -> list[str]:
    """apimachinery's shape of most rules: a length limit, then a format with examples."""
    problems = _max_length(value, limit)
    if not pattern.match(value):
        problems.append(_regex(message, fmt, *examples))
    return problems


def dns1123_subdomain(value: str) -> list[str]:
    """Secret and claim names, hostnames, label key prefixes (IsDNS1123Subdomain)."""
    return _formatted(
        value, DNS_1123_SUBDOMAIN_MAX, _DNS_1123_SUBDOMAIN_RE,
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
        "'-' or '.', and must start and end with an alphanumeric character",
        _DNS_1123_SUBDOMAIN_FORMAT, "example.com")


def dns1035_label(value: str) -> list[str]:
    """Service names, and so a RayService's (IsDNS1035Label)."""
    return _formatted(
        value, DNS_1035_LABEL_MAX, _DNS_1035_LABEL_RE,
        "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start "
        "with an alphabetic character, and end with an alphanumeric character",
        _DNS_1035_LABEL_FORMAT, "my-name", "abc-123")


def qualified_name(value: str) -> list[str]:
    """Label keys, taint keys, resource names: `[prefix/]name` (IsQualifiedName)."""
    parts = value.split("/")
    if len(parts) > 2:
        return ["a qualified name " + _regex(
            "must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
            "with an alphanumeric character", _LABEL_KEY_FORMAT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]
    problems = []
    if len(parts) == 2:
        prefix = parts[0]
        prefix_problems = dns1123_subdomain(prefix) if prefix else ["must be non-empty"]
        problems += [f"prefix part {problem}" for problem in prefix_problems]
    name = parts[-1]
    if not name:
        problems.append("name part must be non-empty")
    problems += [f"name part {problem}" for problem in _max_length(name, _NAME_PART_MAX)]
    if not _LABEL_KEY_RE.match(name):
        problems.append("name part " + _regex(
            "must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
            "with an alphanumeric character", _LABEL_KEY_FORMAT, "MyName", "my.name", "123-abc"))
    return problems


def is_qualified_name(value: str) -> bool:
    return not qualified_name(value)


label_key = qualified_name
taint_key = qualified_name


def label_value(value: str) -> list[str]:
    """Label values, and so nodeSelector values and taint values (IsValidLabelValue)."""
    return _formatted(
        value, LABEL_VALUE_MAX, _LABEL_VALUE_RE,
        "a valid label must be an empty string or consist of alphanumeric characters, '-', "
        "'_' or '.', and must start and end with an alphanumeric character",
        _LABEL_VALUE_FORMAT, "MyValue", "my_value", "12345")


taint_value = label_value


def annotation_key(value: str) -> list[str]:
    """A qualified name in which case does not matter (ValidateAnnotations)."""
    return qualified_name(value.lower())


def extended_resource_name(value: str) -> list[str]:
    """A container resource beyond cpu/memory: a domain-prefixed name outside kubernetes.io
    (core validation's validateContainerResourceName, IsExtendedResourceName)."""
    problems = qualified_name(value)
    prefix, slash, _ = value.partition("/")
    if not slash:
        problems.append("must be fully qualified with a domain prefix, e.g. nvidia.com/gpu")
    elif prefix == _KUBERNETES_DOMAIN or prefix.endswith(f".{_KUBERNETES_DOMAIN}"):
        problems.append(f"the {_KUBERNETES_DOMAIN} domain is reserved for Kubernetes' own "
                        "resources")
    return problems


def port_number(value: int) -> list[str]:
    """A container, Service or NetworkPolicy port (IsValidPortNum)."""
    if PORT_MIN <= value <= PORT_MAX:
        return []
    return [f"must be between {PORT_MIN} and {PORT_MAX}, inclusive"]


def hostname(value: str) -> list[str]:
    """A DNS name a pod resolves, e.g. an external Redis (IsDNS1123Subdomain)."""
    return dns1123_subdomain(value)


def raise_problems(value: object, problems: list[str]) -> None:
    """For pydantic validators: the problems as one ValueError, quoting the value."""
    if problems:
        raise ValueError(f"{value!r}: " + "; ".join(problems))
