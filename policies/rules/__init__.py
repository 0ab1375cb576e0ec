"""The rule catalog: each policy's name, why it exists, and the pure check behind it.

Checks are plain functions over resource props (and, for stack rules, the stack config) so
they can be tested on dicts; `build_policies` wraps them in CrossGuard policy objects, which
both the pack and `servestack check` run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from infra.config import StackConfig
from policies.rules.availability import (
    check_explicit_upgrade_strategy,
    check_gcs_fault_tolerance,
    check_no_deprecated_rayservice_fields,
)
from policies.rules.budget import check_stack_within_budget
from policies.rules.front_door import (
    check_httproute_covers_app_routes,
    check_tls_on_internet_facing_listeners,
)
from policies.rules.hardening import check_namespaces_enforce_pod_security, check_pods_hardened
from policies.rules.images import check_images_pinned, check_ray_version_matches_image
from policies.rules.placement import check_capacity_plan_fits, check_gpu_workers_target_their_pool
from policies.rules.resources import (
    check_containers_have_resources,
    check_head_runs_no_replicas,
    check_ray_gpus_match_pod_limits,
)
from policies.rules.security import (
    check_network_policies_isolate_ray,
    check_no_plain_secrets,
    check_ray_namespaces_restricted,
    check_ray_token_auth,
)
from policies.rules.serving import check_gpu_deployments_stay_warm, check_serve_config_valid
from policies.rules.upgrades import check_upgrade_steps_fit

ResourceCheck = Callable[[str, Mapping[str, Any]], Iterable[str]]
StackCheck = Callable[[Sequence[Any], StackConfig], Iterable[tuple[str, str | None]]]
StackConfigSource = Callable[[], StackConfig]


@dataclass(frozen=True)
class ResourceRule:
    name: str
    description: str
    check: ResourceCheck


@dataclass(frozen=True)
class StackRule:
    name: str
    description: str
    check: StackCheck


RESOURCE_RULES: tuple[ResourceRule, ...] = (
    ResourceRule(
        "images-pinned",
        "Images and runtime_env archives are pinned: no moving tag (a word such as latest "
        "or main) without a digest, no untagged images, no branch archives as working_dir.",
        check_images_pinned,
    ),
    ResourceRule(
        "ray-version-matches-image",
        "rayVersion equals the Ray version in every Ray image tag.",
        check_ray_version_matches_image,
    ),
    ResourceRule(
        "containers-have-resources",
        "Every container (Ray, autoscaler sidecar, operator) has CPU and memory requests "
        "and limits.",
        check_containers_have_resources,
    ),
    ResourceRule(
        "head-runs-no-replicas",
        "The Ray head advertises no CPUs or GPUs, so no Serve replica runs on it.",
        check_head_runs_no_replicas,
    ),
    ResourceRule(
        "ray-gpus-match-pod-limits",
        "rayStartParams num-gpus equals the GPU limit of the group's Ray container.",
        check_ray_gpus_match_pod_limits,
    ),
    ResourceRule(
        "serve-config-valid",
        "serveConfigV2 is a Serve config Ray's ServeDeploySchema accepts.",
        check_serve_config_valid,
    ),
    ResourceRule(
        "no-deprecated-rayservice-fields",
        "The RayService sets no deprecated, ignored fields.",
        check_no_deprecated_rayservice_fields,
    ),
    ResourceRule(
        "explicit-upgrade-strategy",
        "The RayService states how cluster changes roll out (spec.upgradeStrategy.type).",
        check_explicit_upgrade_strategy,
    ),
    ResourceRule(
        "pods-hardened",
        "Containers run as non-root, without privilege escalation, with all capabilities "
        "dropped and the RuntimeDefault seccomp profile.",
        check_pods_hardened,
    ),
    ResourceRule(
        "namespaces-enforce-pod-security",
        "Namespaces carry a Pod Security Admission enforce label (baseline or restricted).",
        check_namespaces_enforce_pod_security,
    ),
    ResourceRule(
        "ray-token-auth",
        "The RayService turns on Ray token authentication (rayClusterConfig.authOptions).",
        check_ray_token_auth,
    ),
    ResourceRule(
        "no-plain-secrets",
        "No secret-looking env var, runtime_env variable or Helm value is a literal; secrets "
        "come from Kubernetes Secrets.",
        check_no_plain_secrets,
    ),
    ResourceRule(
        "gcs-fault-tolerance",
        "The RayService keeps GCS state in external storage so Serve survives a head restart.",
        check_gcs_fault_tolerance,
    ),
    ResourceRule(
        "gpu-deployments-stay-warm",
        "Serve deployments that use GPUs keep at least one replica.",
        check_gpu_deployments_stay_warm,
    ),
)

STACK_RULES: tuple[StackRule, ...] = (
    StackRule(
        "gpu-workers-target-their-pool",
        "GPU worker groups select a pool that has their GPU and tolerate its taints.",
        check_gpu_workers_target_their_pool,
    ),
    StackRule(
        "network-policies-isolate-ray",
        "Every namespace with a RayService denies ingress by default, and no NetworkPolicy "
        "admits the whole cluster.",
        check_network_policies_isolate_ray,
    ),
    StackRule(
        "ray-namespaces-restricted",
        "Namespaces that run Ray pods are part of the stack and enforce the restricted Pod "
        "Security Standard.",
        check_ray_namespaces_restricted,
    ),
    StackRule(
        "capacity-plan-fits",
        "The capacity plan fits the node pools and every RayService matches it.",
        check_capacity_plan_fits,
    ),
    StackRule(
        "stack-within-budget",
        "What the node pools cost per month (at max, and at min when set) stays within "
        "servestack:budget.",
        check_stack_within_budget,
    ),
    StackRule(
        "upgrade-steps-fit",
        "An incremental upgrade's steps (clusterUpgradeOptions) fit every pool's max_nodes "
        "with the old cluster at max.",
        check_upgrade_steps_fit,
    ),
    StackRule(
        "tls-on-internet-facing-listeners",
        "Every listener of a Gateway that faces the internet is HTTPS with a terminating "
        "certificate.",
        check_tls_on_internet_facing_listeners,
    ),
    StackRule(
        "httproute-covers-app-routes",
        "The HTTPRoute matches every Serve application's route prefix and nothing else, to "
        "the Serve Service on Serve's port.",
        check_httproute_covers_app_routes,
    ),
)

RULES: tuple[ResourceRule | StackRule, ...] = (*RESOURCE_RULES, *STACK_RULES)


def _resource_validation(
    rule: ResourceRule,
) -> Callable[[ResourceValidationArgs, ReportViolation], None]:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        for message in rule.check(args.resource_type, args.props):
            report_violation(message, None)

    return validate


def _stack_validation(
    rule: StackRule, stack_config: StackConfigSource
) -> Callable[[StackValidationArgs, ReportViolation], None]:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        try:
            config = stack_config()
        except (ValueError, KeyError) as error:  # StackConfigError, SpecError, missing keys
            report_violation(f"cannot evaluate: the stack config does not load:\n{error}", None)
            return
        for message, urn in rule.check(args.resources, config):
            report_violation(message, urn)

    return validate


def build_policies(
    levels: Mapping[str, EnforcementLevel], stack_config: StackConfigSource
) -> list[Policy]:
    """CrossGuard policy objects for every rule, at the given levels (see policies.enforcement)."""
    policies: list[Policy] = []
    for rule in RULES:
        level = levels[rule.name]
        if isinstance(rule, ResourceRule):
            policies.append(
                ResourceValidationPolicy(
                    name=rule.name,
                    description=rule.description,
                    validate=_resource_validation(rule),
                    enforcement_level=level,
                )
            )
        else:
            policies.append(
                StackValidationPolicy(
                    name=rule.name,
                    description=rule.description,
                    validate=_stack_validation(rule, stack_config),
                    enforcement_level=level,
                )
            )
    return policies
