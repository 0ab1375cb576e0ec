"""An existing cluster, without an SDK: how its kubeconfig is found, and its fakes."""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Self

from pydantic import Field, model_validator

from apps.spec import SpecModel
from infra.clusters.spec import BACKEND_DESCRIPTION, FAKE_KUBECONFIG, ClusterSpec
from infra.names import KUBECONFIG_KEY

KUBECONFIG_MEANING = "the kubeconfig of the existing cluster"


class StackReferenceKubeconfig(SpecModel):
    stack: str = Field(description="Fully qualified stack name, e.g. acme/platform/prod.")
    output: str = Field("kubeconfig", description="Name of that stack's kubeconfig output.")


class ExistingCluster(ClusterSpec):
    """A cluster someone else runs; its kubeconfig comes from a secret config key or from
    another stack's output."""

    listing_order: ClassVar[int] = 90
    knows_api_server: ClassVar[bool] = False
    shared: ClassVar[bool] = True

    backend: Literal["existing"] = Field(description=BACKEND_DESCRIPTION)
    kubeconfig_from: Literal["secret", "stack_reference"] = Field(
        "secret",
        description=f"`secret` (the secret key `{KUBECONFIG_KEY}`) or `stack_reference`.",
    )
    stack_reference: StackReferenceKubeconfig | None = Field(
        None, description="Another stack exporting the kubeconfig."
    )
    context: str | None = Field(
        None, description="kubeconfig context to use (default: its current context)."
    )

    @model_validator(mode="after")
    def _source(self) -> Self:
        if self.kubeconfig_from == "stack_reference" and self.stack_reference is None:
            raise ValueError(
                "kubeconfig_from: stack_reference needs a stack_reference: {stack, output}"
            )
        return self

    def required_secrets(self) -> dict[str, str]:
        if self.kubeconfig_from != "secret":
            return {}
        return {KUBECONFIG_KEY: KUBECONFIG_MEANING}

    @classmethod
    def fake_outputs(cls, typ: str, name: str, state: dict[str, Any]) -> dict[str, Any] | None:
        if typ != "pulumi:pulumi:StackReference":
            return None
        return {**state, "outputs": {"kubeconfig": FAKE_KUBECONFIG},
                "secretOutputNames": ["kubeconfig"]}


SPEC = ExistingCluster
