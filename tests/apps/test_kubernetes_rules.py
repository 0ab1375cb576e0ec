"""Kubernetes' rules, held to apimachinery's own examples (the good and bad values of
pkg/api/validate/content/{dns,kube}_test.go and pkg/util/validation/validation_test.go)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from apps import kubernetes_rules as k8s

Rule = Callable[[str], list[str]]

CASES: list[tuple[Rule, list[str], list[str]]] = [
    (k8s.dns1123_label,
     ["a", "ab", "abc", "a1", "a-1", "a--1--2--b", "0", "01", "012", "1a", "1-a", "1--a--b--2",
      "a" * 63],
     ["", "A", "ABC", "aBc", "A1", "A-1", "1-A", "-", "a-", "-a", "1-", "-1", "_", "a_", "_a",
      "a_b", "1_", "_1", "1_2", ".", "a.", ".a", "a.b", "1.", ".1", "1.2", " ", "a ", " a",
      "a b", "1 ", " 1", "1 2", "a" * 64]),
    (k8s.dns1123_subdomain,
     ["a", "ab", "abc", "a1", "a-1", "a--1--2--b", "0", "01", "012", "1a", "1-a", "1--a--b--2",
      "a.a", "ab.a", "abc.a", "a1.a", "a-1.a", "a--1--2--b.a", "a.1", "ab.1", "abc.1", "a1.1",
      "a-1.1", "a--1--2--b.1", "0.a", "01.a", "012.a", "1a.a", "1-a.a", "0.1", "01.1",
      "012.1", "1a.1", "1-a.1", "1--a--b--2.1", "a.b.c.d.e", "aa.bb.cc.dd.ee", "1.2.3.4.5",
      "11.22.33.44.55", "a" * 253],
     ["", "A", "ABC", "aBc", "A1", "A-1", "1-A", "-", "a-", "-a", "1-", "-1", "_", "a_", "_a",
      "a_b", "1_", "_1", "1_2", ".", "a.", ".a", "a..b", "1.", ".1", "1..2", " ", "a ", " a",
      "a b", "1 ", " 1", "1 2", "A.a", "aB.a", "ab.A", "A1.a", "a1.A", "A.1", "aB.1", "A1.1",
      "1A.1", "0.A", "01.A", "012.A", "1A.a", "1a.A", "A.B.C.D.E", "AA.BB.CC.DD.EE",
      "a.B.c.d.e", "aa.bB.cc.dd.ee", "a@b", "a,b", "a_b", "a;b", "a:b", "a%b", "a?b", "a$b",
      "a" * 254]),
    (k8s.dns1035_label,
     ["a", "ab", "abc", "a1", "a-1", "a--1--2--b", "a" * 63],
     ["0", "01", "012", "1a", "1-a", "1--a--b--2", "", "A", "ABC", "aBc", "A1", "A-1", "1-A",
      "-", "a-", "-a", "1-", "-1", "_", "a_", "_a", "a_b", "1_", "_1", "1_2", ".", "a.", ".a",
      "a.b", "1.", ".1", "1.2", " ", "a ", " a", "a b", "1 ", " 1", "1 2", "a" * 64]),
    (k8s.qualified_name,
     ["simple", "now-with-dashes", "1-starts-with-num", "1234", "simple/simple",
      "now-with-dashes/simple", "now-with-dashes/now-with-dashes", "now.with.dots/simple",
      "now-with.dashes-and.dots/simple", "1-num.2-num/3-num", "1234/5678", "1.2.3.4/5678",
      "Uppercase_Is_OK_123", "example.com/Uppercase_Is_OK_123", "requests.storage-foo",
      "a" * 63, "a" * 253 + "/" + "b" * 63],
     ["nospecialchars%^=@", "cantendwithadash-", "-cantstartwithadash-", "only/one/slash",
      "Example.com/abc", "example_com/abc", "example.com/", "/simple", "a" * 64,
      "a" * 254 + "/abc"]),
    (k8s.label_value,
     ["simple", "now-with-dashes", "1-starts-with-num", "end-with-num-1", "1234", "a" * 63, ""],
     ["nospecialchars%^=@", "Tama-nui-te-rā.is.Māori.sun", "\\backslashes\\are\\bad",
      "-starts-with-dash", "ends-with-dash-", ".starts.with.dot", "ends.with.dot.", "a" * 64]),
    (k8s.annotation_key,
     ["simple", "Example.com/abc", "example.com/Uppercase_Is_OK_123"],
     ["only/one/slash", "example.com/", "a" * 64]),
    (k8s.extended_resource_name,
     ["nvidia.com/gpu", "nvidia.com/mig-2g.20gb", "example.com/dongle"],
     ["gpu", "kubernetes.io/gpu", "node.kubernetes.io/thing", "nvidia.com/", "a/b/c"]),
]


@pytest.mark.parametrize(("rule", "good", "bad"), CASES, ids=[c[0].__name__ for c in CASES])
def test_each_rule_takes_apimachinerys_good_values_and_refuses_its_bad_ones(
    rule: Rule, good: list[str], bad: list[str],
) -> None:
    assert {value: rule(value) for value in good if rule(value)} == {}
    assert [value for value in bad if not rule(value)] == []


def test_ports_are_1_to_65535() -> None:
    assert [port for port in (1, 80, 65535) if k8s.port_number(port)] == []
    refused = ["must be between 1 and 65535, inclusive"]
    assert k8s.port_number(0) == k8s.port_number(70000) == refused


def test_messages_are_apimachinerys() -> None:
    assert k8s.dns1123_label("a.b") == ["must not contain dots"]
    assert k8s.label_value("a" * 64)[0] == "must be no more than 63 characters"
    assert k8s.qualified_name("Example.com/abc")[0].startswith("prefix part a lowercase RFC 1123")
