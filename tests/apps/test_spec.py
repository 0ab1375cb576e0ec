"""The typed specs refuse impossible combinations with a message naming the field path."""

from __future__ import annotations

from typing import Any

import pytest
from ray.serve.schema import DeploymentSchema, ServeApplicationSchema

from apps.catalog import CATALOG
from apps.classifier.spec import CLASSIFIER, TILE_CLASSIFIER, ClassifierSettings
from apps.embeddings.spec import EMBEDDER, EMBEDDINGS, EmbedderSettings
from apps.search.spec import SEARCH
from apps.spec import (
    ApplicationSpec,
    Autoscaling,
    Batching,
    DeploymentSpec,
    ReplicaUserConfig,
    Resources,
    SpecError,
    check_unique_applications,
)


def problems(error: pytest.ExceptionInfo[SpecError]) -> dict[str, str]:
    return dict(error.value.problems)


def deployment(**fields: Any) -> DeploymentSpec:
    return DeploymentSpec.model_validate({"name": "D", "num_replicas": 1, **fields})


@pytest.mark.parametrize(
    ("autoscaling", "fragment"),
    [
        ({"min_replicas": 3, "max_replicas": 2}, "min_replicas (3) > max_replicas (2)"),
        ({"min_replicas": 1, "initial_replicas": 5, "max_replicas": 4},
         "initial_replicas (5) must lie between min_replicas (1) and max_replicas (4)"),
        ({"min_replicas": 2, "initial_replicas": 1, "max_replicas": 4},
         "initial_replicas (1) must lie between"),
    ],
)
def test_replica_bounds_must_be_ordered_min_initial_max(
    autoscaling: dict[str, int], fragment: str
) -> None:
    with pytest.raises(SpecError) as error:
        EMBEDDER.with_overrides({"autoscaling": autoscaling})
    assert fragment in problems(error)["autoscaling"]


def test_initial_replicas_inside_bounds_is_accepted() -> None:
    spec = EMBEDDER.with_overrides(
        {"autoscaling": {"min_replicas": 0, "initial_replicas": 1, "max_replicas": 3}}
    )
    assert spec.serve_options()["autoscaling_config"]["initial_replicas"] == 1


@pytest.mark.parametrize(
    ("fields", "bounds"),
    [
        ({"autoscaling": {"min_replicas": 0, "initial_replicas": 1, "max_replicas": 3}},
         (0, 1, 3)),
        ({"autoscaling": {"min_replicas": 2, "max_replicas": 5}}, (2, 2, 5)),
        ({"num_replicas": 4}, (4, 4, 4)),
    ],
)
def test_replica_bounds_read_min_initial_max_from_autoscaling_or_the_fixed_count(
    fields: dict[str, Any], bounds: tuple[int, int, int]
) -> None:
    """A fresh cluster starts at initial_replicas, else min_replicas; a fixed count is all three."""
    spec = deployment(**{"num_replicas": None, **fields})
    assert (spec.min_replicas, spec.initial_replicas, spec.max_replicas) == bounds


def test_target_ongoing_requests_cannot_exceed_max_ongoing_requests() -> None:
    with pytest.raises(SpecError) as error:
        EMBEDDER.with_overrides({"autoscaling": {"target_ongoing_requests": 100}})
    message = problems(error)["autoscaling.target_ongoing_requests"]
    assert "target_ongoing_requests (100.0) > max_ongoing_requests (64)" in message


def test_max_ongoing_requests_must_fit_a_full_batch() -> None:
    with pytest.raises(SpecError) as error:
        EMBEDDER.with_overrides({"batching": {"max_batch_size": 128}})
    assert "max_ongoing_requests (64) < batching.max_batch_size (128)" in problems(error)[
        "batching.max_batch_size"]


def test_gpus_need_an_accelerator_resource_to_pick_a_pool() -> None:
    with pytest.raises(SpecError) as error:
        TILE_CLASSIFIER.with_overrides({"resources": {"num_gpus": 1}})
    assert "requires accelerator_resource" in problems(error)["resources"]
    gpu = TILE_CLASSIFIER.with_overrides(
        {"resources": {"num_gpus": 1, "accelerator_resource": "nvidia.com/gpu"}}
    )
    assert gpu.serve_options()["ray_actor_options"]["num_gpus"] == 1


def test_exactly_one_of_num_replicas_and_autoscaling() -> None:
    with pytest.raises(SpecError) as error:
        EMBEDDER.with_overrides({"num_replicas": 2})
    assert "set exactly one of num_replicas or autoscaling" in problems(error)["num_replicas"]
    fixed = EMBEDDER.with_overrides({"num_replicas": 2, "autoscaling": None})
    assert fixed.serve_options()["num_replicas"] == 2
    # Explicitly cleared, so the code-level autoscaling of the default spec does not win.
    assert fixed.serve_options()["autoscaling_config"] is None


def test_deployment_names_are_unique_within_an_application() -> None:
    with pytest.raises(ValueError, match="deployment name 'Embedder' is used twice"):
        ApplicationSpec(
            name="twice", import_path="apps.x:app", route_prefix="/twice",
            deployments=(EMBEDDER, EMBEDDER),
        )


def test_applications_need_unique_names_and_route_prefixes() -> None:
    clash = CLASSIFIER.with_overrides({"route_prefix": EMBEDDINGS.route_prefix})
    with pytest.raises(SpecError) as error:
        check_unique_applications([EMBEDDINGS, clash])
    assert "already used by app 'embeddings'" in problems(error)["apps.classifier.route_prefix"]
    with pytest.raises(SpecError) as error:
        check_unique_applications([EMBEDDINGS, EMBEDDINGS.with_overrides({"route_prefix": "/e2"})])
    assert "apps.embeddings.name" in problems(error)
    check_unique_applications(CATALOG.values())


def test_overrides_deep_merge_and_keep_untouched_fields() -> None:
    spec = SEARCH.with_overrides({
        "deployments": {
            "Embedder": {
                "autoscaling": {"max_replicas": 5},
                "user_config": {"max_text_chars": 500},
            },
        },
    })
    embedder = spec.deployment("Embedder")
    assert EMBEDDER.autoscaling is not None
    assert embedder.autoscaling == EMBEDDER.autoscaling.model_copy(update={"max_replicas": 5})
    assert embedder.resources == EMBEDDER.resources
    assert embedder.user_config == EmbedderSettings(max_text_chars=500)
    assert spec.deployment("VectorIndex") == SEARCH.deployment("VectorIndex")
    assert embedder.serve_options()["user_config"]["settings"]["max_texts_per_request"] == 64


def test_unknown_field_in_an_override_names_its_path() -> None:
    with pytest.raises(SpecError) as error:
        EMBEDDINGS.with_overrides({"deployments": {"Embedder": {"resources": {"num_cpu": 2}}}})
    assert problems(error) == {
        "deployments.Embedder.resources.num_cpu":
            "unknown field 'num_cpu'; remove it or check its spelling",
    }


def test_unknown_user_config_setting_names_its_path() -> None:
    with pytest.raises(SpecError) as error:
        CLASSIFIER.with_overrides(
            {"deployments": {"TileClassifier": {"user_config": {"checkpoint_url": "x"}}}}
        )
    assert "deployments.TileClassifier.user_config.checkpoint_url" in problems(error)


def test_unknown_deployment_lists_the_known_ones() -> None:
    with pytest.raises(SpecError) as error:
        SEARCH.with_overrides({"deployments": {"Indexer": {"num_replicas": 1}}})
    assert problems(error) == {
        "deployments.Indexer":
            "unknown deployment 'Indexer'; known: SearchIngress, Embedder, VectorIndex",
    }


def test_unknown_application_field_is_refused() -> None:
    with pytest.raises(SpecError) as error:
        EMBEDDINGS.with_overrides({"import_path": "elsewhere:app"})
    assert "import_path" in problems(error)


def test_replica_user_config_errors_name_the_setting() -> None:
    with pytest.raises(SpecError) as error:
        ReplicaUserConfig.parse({"settings": {"max_texts_per_request": 0}}, EmbedderSettings)
    assert "user_config.settings.max_texts_per_request" in problems(error)
    with pytest.raises(SpecError) as error:
        ReplicaUserConfig.parse({"batching": {"max_batch_size": "many"}}, EmbedderSettings)
    assert "user_config.batching.max_batch_size" in problems(error)
    with pytest.raises(SpecError) as error:
        ReplicaUserConfig.parse({"settings": {"checkpoint_uri": 3}}, ClassifierSettings)
    assert "user_config.settings.checkpoint_uri" in problems(error)


def test_replica_user_config_round_trips_what_the_spec_sends() -> None:
    batching, settings = ReplicaUserConfig.parse(EMBEDDER.replica_user_config(), EmbedderSettings)
    assert batching == EMBEDDER.batching
    assert settings == EMBEDDER.user_config


def test_worked_example_spec_to_serve_options_to_serve_config() -> None:
    """The README's worked example: a DeploymentSpec becomes the options Ray validates."""
    spec = DeploymentSpec(
        name="Embedder",
        resources=Resources(num_cpus=1, memory=1024**3),
        autoscaling=Autoscaling(min_replicas=1, max_replicas=2, target_ongoing_requests=16),
        max_ongoing_requests=64,
        batching=Batching(max_batch_size=32, batch_wait_timeout_s=0.01),
        user_config=EmbedderSettings(),
    )
    options = spec.serve_options()
    assert options["autoscaling_config"] == {
        "min_replicas": 1, "max_replicas": 2, "target_ongoing_requests": 16.0,
        "upscale_delay_s": 30.0, "downscale_delay_s": 600.0,
    }
    assert options["ray_actor_options"] == {"num_cpus": 1.0, "num_gpus": 0.0, "memory": 1024**3}
    assert options["user_config"] == {
        "batching": {"max_batch_size": 32, "batch_wait_timeout_s": 0.01},
        "settings": {
            "max_texts_per_request": 64, "max_text_chars": 2000, "max_request_chars": 4096,
            "max_request_bytes": 1024**2, "file_roots": ["/mnt/models"], "model_uri": None,
            "model_refresh": "", "max_model_bytes": 1024**3,
        },
    }
    DeploymentSchema.model_validate(options)


@pytest.mark.parametrize("app", sorted(CATALOG))
def test_every_catalog_app_is_a_valid_serve_application(app: str) -> None:
    spec = CATALOG[app]
    ServeApplicationSchema.model_validate({
        "name": spec.name,
        "import_path": spec.import_path,
        "route_prefix": spec.route_prefix,
        "deployments": [dep.serve_options() for dep in spec.deployments],
    })
