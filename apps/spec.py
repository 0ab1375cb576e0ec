"""Typed deployment and application specs: the contract between app code and infra code.

App code reads its `@serve.deployment` options from these objects; the infra derives the
Serve config, worker groups and capacity plan from the same objects. Every model is
immutable and rejects unknown fields, so a typo fails loudly instead of being ignored.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal, Self, TypeVar

from pydantic import (
    BaseModel,
    ByteSize,
    ConfigDict,
    Field,
    SerializeAsAny,
    ValidationError,
    field_validator,
    model_validator,
)

from apps.field_path import child, path_from_loc
from apps.kubernetes_rules import extended_resource_name, raise_problems
from apps.quantity import CpuCount, Memory

REQUEST_LIMIT_FIELD = "max_request_bytes"
"""The field of an app's settings that bounds its request bodies (413 above it)."""
WHOLE_SPEC = "(the whole spec)"
"""How a problem of the spec itself, path "", is shown where no outer path names it."""


class SpecModel(BaseModel):
    """Base for every spec type: frozen, strict about unknown keys."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)


class SpecError(ValueError):
    """A spec or override is invalid; `problems` are (field path, message) pairs."""

    def __init__(self, problems: Iterable[tuple[str, str]]) -> None:
        self.problems: tuple[tuple[str, str], ...] = tuple(problems)
        lines = [f"  {path or WHOLE_SPEC}: {message}" for path, message in self.problems]
        super().__init__("invalid spec:\n" + "\n".join(lines))

    @classmethod
    def from_validation_error(
        cls, error: ValidationError, prefix: str = "", raw: Any = None,
    ) -> SpecError:
        """pydantic's errors as problems, their paths spelled from `raw`, the input validated."""
        problems: list[tuple[str, str]] = []
        errors = error.errors()
        for item in errors:
            if _follows_from_an_item(item, errors):
                continue
            path = child(prefix, path_from_loc(item["loc"], raw))
            nested = (item.get("ctx") or {}).get("error")
            if isinstance(nested, SpecError):
                # A model validator that checks several fields names each one itself.
                problems += nested.prefixed(path).problems
            else:
                problems.append((path, _friendly(item)))
        return cls(problems)

    def prefixed(self, prefix: str) -> SpecError:
        """The problems of a part, as paths of the whole; "" is the part itself."""
        return SpecError((child(prefix, path), msg) for path, msg in self.problems)


def _follows_from_an_item(item: Mapping[str, Any], errors: Iterable[Mapping[str, Any]]) -> bool:
    """A list "too short after validation" only because one of its items failed."""
    loc = tuple(item["loc"])
    return item["type"] == "too_short" and any(
        len(other["loc"]) > len(loc) and tuple(other["loc"][:len(loc)]) == loc
        for other in errors)


def _friendly(item: Mapping[str, Any]) -> str:
    message = str(item["msg"])
    if item["type"] == "extra_forbidden":
        return f"unknown field {item['loc'][-1]!r}; remove it or check its spelling"
    # pydantic prefixes custom validator messages with "Value error, ".
    return message.removeprefix("Value error, ")


class Resources(SpecModel):
    """What one replica reserves from Ray, and which Kubernetes resource backs its GPUs."""

    num_cpus: CpuCount = Field(
        1.0, ge=0, description="Ray logical CPUs per replica, e.g. 1 or 500m."
    )
    num_gpus: float = Field(0.0, ge=0, description="Ray GPUs per replica (fractions share one).")
    memory: Memory = Field(
        ByteSize(512 * 1024**2), description="Heap memory per replica, e.g. 2Gi."
    )
    accelerator_resource: str | None = Field(
        None,
        description="Kubernetes extended resource that provides the GPU: nvidia.com/gpu, "
        "or a MIG profile such as nvidia.com/mig-2g.20gb.",
    )
    accelerator_type: str | None = Field(
        None,
        description="Ray accelerator type label (e.g. L4, A100) to pin the replica's GPU model.",
    )

    @field_validator("accelerator_resource")
    @classmethod
    def _resource_name(cls, value: str | None) -> str | None:
        if value is not None:
            raise_problems(value, extended_resource_name(value))
        return value

    @model_validator(mode="after")
    def _gpu_needs_accelerator(self) -> Self:
        if self.num_gpus > 0 and self.accelerator_resource is None:
            raise ValueError(
                "num_gpus > 0 requires accelerator_resource (for example nvidia.com/gpu or "
                "nvidia.com/mig-2g.20gb) so a GPU node pool can be chosen"
            )
        if self.num_gpus == 0 and (self.accelerator_resource or self.accelerator_type):
            raise ValueError(
                "accelerator_resource/accelerator_type are set but num_gpus is 0; "
                "set num_gpus or remove the accelerator fields"
            )
        if self.num_gpus > 1 and self.num_gpus != int(self.num_gpus):
            raise ValueError(
                "num_gpus above 1 must be a whole number; Ray cannot split across GPUs"
            )
        return self

    @property
    def is_gpu(self) -> bool:
        return self.num_gpus > 0


class Autoscaling(SpecModel):
    """Ray Serve autoscaling; min_replicas 0 means scale to zero."""

    min_replicas: int = Field(
        1, ge=0, description="Fewest replicas Serve keeps; 0 scales to zero when idle."
    )
    initial_replicas: int | None = Field(
        None, ge=0, description="Replicas started on deploy; default: min_replicas."
    )
    max_replicas: int = Field(
        1, ge=1, description="Most replicas Serve starts; the capacity plan must hold them all."
    )
    target_ongoing_requests: float = Field(
        2.0, gt=0, description="Requests in flight per replica that the autoscaler aims for."
    )
    upscale_delay_s: float = Field(
        30.0, ge=0, description="Seconds demand must stay above target before replicas are added."
    )
    downscale_delay_s: float = Field(
        600.0, ge=0, description="Seconds demand must stay below target before replicas go."
    )

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"min_replicas ({self.min_replicas}) > max_replicas ({self.max_replicas}); "
                "raise max_replicas or lower min_replicas"
            )
        initial = self.initial_replicas
        if initial is not None and not self.min_replicas <= initial <= self.max_replicas:
            raise ValueError(
                f"initial_replicas ({initial}) must lie between min_replicas "
                f"({self.min_replicas}) and max_replicas ({self.max_replicas})"
            )
        return self


class Batching(SpecModel):
    """Dynamic batching (apps/batching.py, queue-driven); changeable live via reconfigure."""

    max_batch_size: int = Field(8, ge=1, description="Most requests one batch call handles.")
    batch_wait_timeout_s: float = Field(
        0.0, ge=0,
        description="Seconds a batch waits to fill before it runs partly full. 0 (default): "
        "none; batches still fill under load, from what queued during the previous pass.",
    )


class UserConfig(SpecModel):
    """Base for an app's own live-tunable settings (Ray's `user_config`)."""

    def model_uris(self) -> tuple[str, ...]:
        """The model URIs these settings load (infra grants access and egress from them)."""
        return ()

    def request_limit(self) -> int | None:
        """The largest body the app promises to take (its `max_request_bytes`), if it says;
        the stack's ingress must let such a body through."""
        value = getattr(self, REQUEST_LIMIT_FIELD, None)
        return int(value) if value is not None else None


UserConfigT = TypeVar("UserConfigT", bound=UserConfig)


class DeploymentSpec(SpecModel):
    """One Ray Serve deployment: the options Ray needs plus the resources infra provisions."""

    name: str = Field(
        pattern=r"^[A-Za-z][A-Za-z0-9_-]*$",
        description="Deployment name, unique in its app; overrides address it by this name.",
    )
    resources: Resources = Field(
        Resources(), description="What one replica reserves; worker groups are sized from it."
    )
    num_replicas: int | None = Field(
        None, ge=1, description="Fixed replica count (no autoscaling)."
    )
    autoscaling: Autoscaling | None = Field(
        None, description="Serve autoscaling; set this or num_replicas, not both."
    )
    max_ongoing_requests: int = Field(
        5, ge=1, description="Requests one replica works on at once; more wait in the queue."
    )
    max_queued_requests: int | None = Field(
        None,
        ge=1,
        description="Requests waiting per handle before callers get 503; None = unbounded.",
    )
    batching: Batching | None = Field(
        None, description="`@serve.batch` settings, changeable live; None: no batching."
    )
    health_check_period_s: float = Field(
        10.0, gt=0, description="Seconds between Serve's health checks of a replica."
    )
    health_check_timeout_s: float = Field(
        30.0, gt=0, description="Seconds a health check may take before the replica is replaced."
    )
    graceful_shutdown_wait_loop_s: float = Field(
        2.0, ge=0, description="Seconds between a stopping replica's checks for requests left."
    )
    graceful_shutdown_timeout_s: float = Field(
        20.0, ge=0, description="Seconds a stopping replica may drain before it is killed."
    )
    user_config: SerializeAsAny[UserConfig] | None = Field(
        None, description="The app's own live settings, applied by `reconfigure` without restart."
    )

    @model_validator(mode="after")
    def _cross_field_rules(self) -> Self:
        if (self.num_replicas is None) == (self.autoscaling is None):
            raise SpecError([(
                "num_replicas" if self.num_replicas is not None else "autoscaling",
                "set exactly one of num_replicas or autoscaling; when overriding one with the "
                "other, set the old one to null (e.g. `autoscaling: null`)",
            )])
        target = self.autoscaling.target_ongoing_requests if self.autoscaling else None
        if target is not None and target > self.max_ongoing_requests:
            raise SpecError([(
                "autoscaling.target_ongoing_requests",
                f"autoscaling.target_ongoing_requests ({target}) > max_ongoing_requests "
                f"({self.max_ongoing_requests}); the target could never be reached. Raise "
                "max_ongoing_requests or lower the target",
            )])
        if self.batching and self.max_ongoing_requests < self.batching.max_batch_size:
            raise SpecError([(
                "batching.max_batch_size",
                f"max_ongoing_requests ({self.max_ongoing_requests}) < batching.max_batch_size "
                f"({self.batching.max_batch_size}); batches could never fill. Raise "
                "max_ongoing_requests to at least max_batch_size",
            )])
        return self

    @property
    def max_replicas(self) -> int:
        """Worst-case replica count, which the capacity plan must hold."""
        if self.autoscaling is not None:
            return self.autoscaling.max_replicas
        assert self.num_replicas is not None
        return self.num_replicas

    @property
    def min_replicas(self) -> int:
        if self.autoscaling is not None:
            return self.autoscaling.min_replicas
        assert self.num_replicas is not None
        return self.num_replicas

    @property
    def initial_replicas(self) -> int:
        """Replicas a freshly started cluster deploys before it takes traffic: Serve starts an
        autoscaling deployment at initial_replicas, else at min_replicas."""
        if self.autoscaling is not None:
            initial = self.autoscaling.initial_replicas
            return initial if initial is not None else self.autoscaling.min_replicas
        assert self.num_replicas is not None
        return self.num_replicas

    def ray_actor_options(self) -> dict[str, Any]:
        """Ray's per-replica resource request, derived from `resources`."""
        res = self.resources
        options: dict[str, Any] = {"num_cpus": res.num_cpus, "num_gpus": res.num_gpus}
        if res.memory:
            options["memory"] = int(res.memory)
        if res.accelerator_type:
            options["accelerator_type"] = res.accelerator_type
        return options

    def replica_user_config(self) -> dict[str, Any] | None:
        """The `user_config` Ray hands to `reconfigure`: batching plus the app's own settings."""
        if self.batching is None and self.user_config is None:
            return None
        return ReplicaUserConfig(
            batching=self.batching,
            settings=self.user_config.model_dump(mode="json") if self.user_config else None,
        ).model_dump(mode="json", exclude_none=True)

    def serve_options(self) -> dict[str, Any]:
        """Keyword arguments for `@serve.deployment` / `.options()`; also the Serve config entry."""
        options: dict[str, Any] = {
            "name": self.name,
            "max_ongoing_requests": self.max_ongoing_requests,
            "health_check_period_s": self.health_check_period_s,
            "health_check_timeout_s": self.health_check_timeout_s,
            "graceful_shutdown_wait_loop_s": self.graceful_shutdown_wait_loop_s,
            "graceful_shutdown_timeout_s": self.graceful_shutdown_timeout_s,
            "ray_actor_options": self.ray_actor_options(),
        }
        if self.max_queued_requests is not None:
            options["max_queued_requests"] = self.max_queued_requests
        if self.autoscaling is not None:
            options["autoscaling_config"] = self.autoscaling.model_dump(exclude_none=True)
        else:
            options["num_replicas"] = self.num_replicas
            # Explicit null: a Serve config entry without it keeps the autoscaling the app's
            # code was decorated with, and Ray lets autoscaling win over num_replicas.
            options["autoscaling_config"] = None
        user_config = self.replica_user_config()
        if user_config is not None:
            options["user_config"] = user_config
        return options

    def with_overrides(self, patch: Mapping[str, Any]) -> DeploymentSpec:
        """Deep-merge a partial document onto this spec and validate it with the same types."""
        if not isinstance(patch, Mapping):
            raise SpecError([("", f"expected a mapping of deployment fields, got {patch!r}")])
        base = self.model_dump(exclude={"user_config"}, exclude_defaults=False)
        merged = deep_merge(base, {k: v for k, v in patch.items() if k != "user_config"})
        user_config = self.user_config
        if "user_config" in patch:
            if user_config is None:
                raise SpecError([("user_config", f"deployment {self.name!r} takes no user_config")])
            try:
                user_config = type(user_config).model_validate(
                    deep_merge(user_config.model_dump(), patch["user_config"] or {})
                )
            except ValidationError as error:
                raise SpecError.from_validation_error(
                    error, "user_config", patch["user_config"]) from None
        merged["user_config"] = user_config
        try:
            return type(self).model_validate(merged)
        except ValidationError as error:
            raise SpecError.from_validation_error(error, raw=merged) from None


class ReplicaUserConfig(SpecModel):
    """Envelope of the `user_config` a replica receives: batching plus the app's settings."""

    batching: Batching | None = Field(
        None, description="Batching to apply; None keeps the batcher's settings."
    )
    settings: dict[str, Any] | None = Field(
        None, description="The deployment's user_config, as its settings model dumps it."
    )

    @classmethod
    def parse(
        cls, raw: Mapping[str, Any] | None, settings_model: type[UserConfigT]
    ) -> tuple[Batching | None, UserConfigT]:
        """Validate what `reconfigure` received; raises SpecError naming the bad field."""
        try:
            envelope = cls.model_validate(raw or {})
        except ValidationError as error:
            raise SpecError.from_validation_error(error, "user_config", raw) from None
        try:
            settings = settings_model.model_validate(envelope.settings or {})
        except ValidationError as error:
            raise SpecError.from_validation_error(
                error, "user_config.settings", envelope.settings) from None
        return envelope.batching, settings


IDEMPOTENT_PATHS_ENV = "SERVESTACK_IDEMPOTENT_PATHS"
"""An app's `idempotent_paths` as a JSON list, in its own runtime_env (serveConfigV2), so
its replicas know them and a change to them stays a Serve config change."""


class RuntimeEnv(SpecModel):
    """Only env vars: code reaches the cluster in the image, never via working_dir uploads."""

    env_vars: dict[str, str] = Field(
        default_factory=dict, description="Environment variables of every replica of the app."
    )

    @field_validator("env_vars")
    @classmethod
    def _names(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
                raise ValueError(f"{key!r} is not a valid environment variable name")
            if key == IDEMPOTENT_PATHS_ENV:
                raise ValueError(f"{key} is set by servestack from the app's idempotent_paths; "
                                 "drop it from runtime_env.env_vars")
        return dict(sorted(value.items()))


class ServiceLevel(SpecModel):
    """What an app promises its callers; the stack's alerts fire when Serve's metrics break it."""

    p99_latency_ms: float = Field(
        1000.0, gt=0, description="p99 end-to-end HTTP latency (ms) measured at Serve's proxy."
    )
    max_error_ratio: float = Field(
        0.05, gt=0, le=1, description="Largest share of HTTP responses that may be 5xx."
    )


class ApplicationSpec(SpecModel):
    """One Serve application: where its code lives, its route, and its deployments."""

    name: str = Field(
        pattern=r"^[a-z][a-z0-9-]*$", description="Serve application name, unique per stack."
    )
    import_path: str = Field(
        pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
        description="module:attribute of the bound app in the image, e.g. apps.embeddings.app:app.",
    )
    route_prefix: str = Field(
        pattern=r"^/[\w\-/]*$", description="HTTP path the app serves under, e.g. /embed."
    )
    deployments: tuple[SerializeAsAny[DeploymentSpec], ...] = Field(
        min_length=1, description="The app's deployments, each one Serve config entry."
    )
    runtime_env: RuntimeEnv = Field(
        RuntimeEnv(), description="Ray runtime_env of the app (environment variables only)."
    )
    slo: ServiceLevel = Field(
        ServiceLevel(), description="Latency and error objectives the stack's alerts check."
    )
    idempotent_paths: tuple[str, ...] = Field(
        (),
        description="Paths below route_prefix (\"/\" is the app's root) whose POSTs are pure "
        "inference: the ingress retries them once when their replica dies.",
    )

    @field_validator("idempotent_paths")
    @classmethod
    def _paths(cls, paths: tuple[str, ...]) -> tuple[str, ...]:
        for path in paths:
            if not path.startswith("/"):
                raise ValueError(f"{path!r} must start with '/'")
        return paths

    def env_vars(self) -> dict[str, str]:
        """The env of the app's replicas: its runtime_env, plus its idempotent paths for the
        ingress (apps/http_contract.py marks their answers, apps/ingress.py retries them)."""
        env = dict(self.runtime_env.env_vars)
        if self.idempotent_paths:
            env[IDEMPOTENT_PATHS_ENV] = json.dumps(sorted(self.idempotent_paths))
        return env

    @model_validator(mode="after")
    def _unique_deployments(self) -> Self:
        seen: set[str] = set()
        for dep in self.deployments:
            if dep.name in seen:
                raise ValueError(
                    f"deployment name {dep.name!r} is used twice; names must be unique"
                )
            seen.add(dep.name)
        return self

    def deployment(self, name: str) -> DeploymentSpec:
        for dep in self.deployments:
            if dep.name == name:
                return dep
        known = ", ".join(d.name for d in self.deployments)
        raise KeyError(f"application {self.name!r} has no deployment {name!r}; known: {known}")

    def with_overrides(self, patch: Mapping[str, Any]) -> ApplicationSpec:
        """Apply a partial override: top-level fields plus `deployments: {name: {...}}`."""
        if not isinstance(patch, Mapping):
            raise SpecError([("", f"expected a mapping, got {patch!r}")])
        allowed = {"route_prefix", "runtime_env", "deployments", "slo"}
        unknown = sorted(set(patch) - allowed)
        if unknown:
            raise SpecError(
                (key, f"unknown field {key!r}; an app override may set {sorted(allowed)}")
                for key in unknown
            )
        dep_patches = patch.get("deployments") or {}
        if not isinstance(dep_patches, Mapping):
            raise SpecError([("deployments", "expected a mapping from deployment name to fields")])
        names = [d.name for d in self.deployments]
        problems = [
            (f"deployments.{name}", f"unknown deployment {name!r}; known: {', '.join(names)}")
            for name in dep_patches
            if name not in names
        ]
        if problems:
            raise SpecError(problems)
        deployments = []
        for dep in self.deployments:
            if dep.name in dep_patches:
                try:
                    dep = dep.with_overrides(dep_patches[dep.name] or {})
                except SpecError as error:
                    raise error.prefixed(f"deployments.{dep.name}") from None
            deployments.append(dep)
        top = {k: v for k, v in patch.items() if k != "deployments"}
        data = deep_merge(self.model_dump(exclude={"deployments"}), top)
        data["deployments"] = tuple(deployments)
        try:
            return type(self).model_validate(data)
        except ValidationError as error:
            raise SpecError.from_validation_error(error, raw=data) from None


def check_unique_applications(apps: Iterable[ApplicationSpec]) -> None:
    """Ray routes by prefix and addresses apps by name: both must be unique in one Serve config."""
    problems: list[tuple[str, str]] = []
    names: dict[str, str] = {}
    prefixes: dict[str, str] = {}
    for app in apps:
        if app.name in names:
            problems.append(
                (f"apps.{app.name}.name", f"application name {app.name!r} is used twice")
            )
        names[app.name] = app.name
        if app.route_prefix in prefixes:
            problems.append((
                f"apps.{app.name}.route_prefix",
                f"route_prefix {app.route_prefix!r} is already used by app "
                f"{prefixes[app.route_prefix]!r}; give each app its own prefix",
            ))
        prefixes[app.route_prefix] = app.name
    if problems:
        raise SpecError(problems)


def deep_merge(base: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive dict merge: mappings merge, everything else (lists, null) replaces."""
    merged = dict(base)
    for key, value in patch.items():
        current = merged.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            merged[key] = deep_merge(current, value)
        else:
            merged[key] = value
    return merged


ProxyLocation = Literal["EveryNode", "HeadOnly", "Disabled"]
