"""The stack fields that name a secret config key are marked once, on the field
(infra/config/secret_keys.py), and one reader finds the keys they name in the raw values (for
validate_stack, before parsing) and in the parsed stack (for `required_secrets`)."""

from __future__ import annotations

import pytest

from infra.config import StackConfig
from infra.config.model_sources import MLFLOW_TOKEN_MEANING
from infra.config.rayservice import REDIS_PASSWORD_MEANING
from infra.config.secret_keys import named_secrets, secret_key_fields
from infra.names import KUBECONFIG_KEY
from infra.stack_file import available_stacks, load_stack_config, source_from_stack_file, stack_file


def test_the_fields_that_name_a_secret() -> None:
    assert secret_key_fields(StackConfig) == (
        (("rayservice", "gcs_fault_tolerance", "password_secret_key"), "redisPassword",
         REDIS_PASSWORD_MEANING),
        (("model_sources", "mlflow_token_secret_key"), None, MLFLOW_TOKEN_MEANING),
    )


@pytest.mark.parametrize("stack", available_stacks())
def test_the_raw_values_and_the_parsed_stack_name_the_same_secrets(stack: str) -> None:
    values = source_from_stack_file(stack_file(stack), fill_secrets=False).values
    config = load_stack_config(stack)
    assert named_secrets(StackConfig, values) == named_secrets(StackConfig, config)
    # What a stack needs is among what validate_stack takes out of the values.
    assert set(config.required_secrets()) <= {KUBECONFIG_KEY, *named_secrets(StackConfig, config)}


@pytest.mark.parametrize(("values", "expected"), [
    ({}, {"redisPassword": REDIS_PASSWORD_MEANING}),
    ({"rayservice": "not a mapping", "model_sources": {"mlflow_token_secret_key": 5}},
     {"redisPassword": REDIS_PASSWORD_MEANING}),
    ({"rayservice": {"gcs_fault_tolerance": {"password_secret_key": None}}},
     {"redisPassword": REDIS_PASSWORD_MEANING}),
    ({"rayservice": {"gcs_fault_tolerance": {"password_secret_key": "pw"}},
      "model_sources": {"mlflow_token_secret_key": "token"}},
     {"pw": REDIS_PASSWORD_MEANING, "token": MLFLOW_TOKEN_MEANING}),
], ids=["defaults", "not-keys", "null", "named"])
def test_a_raw_value_that_names_no_key_stands_for_the_fields_default(
    values: dict[str, object], expected: dict[str, str],
) -> None:
    assert named_secrets(StackConfig, values) == expected
