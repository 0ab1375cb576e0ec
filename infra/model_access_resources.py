"""The Kubernetes objects of model access: the Ray pods' ServiceAccount and MLflow's token."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from infra.config import StackConfig
from infra.model_access import MLFLOW_TOKEN_KEY, mlflow_token_secret, ray_service_account
from infra.names import stack_labels

MODEL_ACCESS_COMPONENT = "servestack:index:ModelAccess"


@dataclass(frozen=True)
class ModelAccessArgs:
    stack: StackConfig
    annotations: Mapping[str, pulumi.Input[str]]  # Cluster.model_reader_annotations
    mlflow_token: pulumi.Output[str] | None  # a Pulumi secret; None without a token key


class ModelAccess(pulumi.ComponentResource):
    """The Ray pods' ServiceAccount (bound to the cloud identity that reads the buckets) and
    the MLflow token Secret. Registered only for stacks whose apps load remote models."""

    def __init__(self, name: str, args: ModelAccessArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(MODEL_ACCESS_COMPONENT, name, None, opts)
        stack = args.stack
        labels = stack_labels(stack.stack)
        child = pulumi.ResourceOptions(parent=self)
        self.service_account = k8s.core.v1.ServiceAccount(
            f"{name}-ray", metadata={
                "annotations": dict(sorted(args.annotations.items())) or None,
                "labels": labels, "name": ray_service_account(stack),
                "namespace": stack.namespace},
            # Ray pods never call the Kubernetes API (the autoscaler sidecar uses its own).
            automount_service_account_token=False,
            opts=child,
        )
        self.mlflow_token = None
        if args.mlflow_token is not None:
            self.mlflow_token = k8s.core.v1.Secret(
                f"{name}-mlflow-token", metadata={
                    "labels": labels, "name": mlflow_token_secret(stack),
                    "namespace": stack.namespace},
                type="Opaque", string_data={MLFLOW_TOKEN_KEY: args.mlflow_token},
                opts=child,
            )
        self.register_outputs({})
