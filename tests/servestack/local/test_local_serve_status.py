"""Reading Serve's REST answer: which apps run, which failed and what Ray said about it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ray.serve.schema import ServeInstanceDetails

from servestack.local.serve_status import ServeSnapshot, clean_message

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def recorded_answer() -> dict[str, Any]:
    """A real Ray 2.60 answer: embeddings RUNNING, classifier without its checkpoint, search
    failing to build."""
    answer: dict[str, Any] = json.loads(
        (FIXTURES / "serve-applications-two-failed.json").read_text()
    )
    return answer


def test_rollout_sorts_apps_into_running_failed_and_pending() -> None:
    snapshot = ServeSnapshot.model_validate(recorded_answer())
    rollout = snapshot.rollout(["search", "embeddings", "classifier", "not-deployed"])
    assert rollout.running == ("embeddings",)
    assert [app.name for app in rollout.failed] == ["classifier", "search"]
    assert rollout.pending == ("not-deployed",)
    assert not rollout.done


def test_a_failed_deployment_reports_the_exception_ray_caught() -> None:
    classifier = ServeSnapshot.model_validate(recorded_answer()).applications["classifier"]
    assert classifier.failed
    summary = classifier.failure_summary()
    assert any("CheckpointError: no checkpoint at" in line for line in summary)
    assert all("\x1b" not in message for message in classifier.failure_messages())


def test_replica_counts_come_from_replica_states() -> None:
    embedder = ServeSnapshot.model_validate(recorded_answer()).applications["embeddings"]
    deployment = embedder.deployments["Embedder"]
    assert (deployment.running_replicas, deployment.target_num_replicas) == (1, 1)


def test_serve_that_is_not_running_is_recognised() -> None:
    snapshot = ServeSnapshot.model_validate(ServeInstanceDetails.get_empty_schema_dict())
    assert not snapshot.serve_running
    assert snapshot.rollout(["embeddings"]).pending == ("embeddings",)


def test_rollout_is_done_when_every_expected_app_runs() -> None:
    snapshot = ServeSnapshot.model_validate(recorded_answer())
    assert snapshot.rollout(["embeddings"]).done


def test_terminal_colour_codes_are_stripped_from_ray_messages() -> None:
    raw = "\x1b[36mray::ServeReplica:bad:Bad.__init__()\x1b[39m (pid=6705)\n"
    assert clean_message(raw) == "ray::ServeReplica:bad:Bad.__init__() (pid=6705)"


def test_a_redeploying_app_is_pending_even_while_its_old_deployment_state_says_failed() -> None:
    answer = recorded_answer()
    answer["applications"]["classifier"]["status"] = "DEPLOYING"
    rollout = ServeSnapshot.model_validate(answer).rollout(["classifier"])
    assert rollout.pending == ("classifier",) and not rollout.failed
