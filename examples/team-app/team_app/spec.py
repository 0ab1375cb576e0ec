"""The greeter's default spec: what servestack plans, renders and deploys. No Ray import."""

from __future__ import annotations

from pydantic import ByteSize, Field

from apps.quantity import Size
from apps.spec import ApplicationSpec, Autoscaling, DeploymentSpec, Resources, UserConfig


class GreeterSettings(UserConfig):
    """Live settings: a change reaches the replica through `reconfigure`, no restart."""

    greeting: str = Field("hello", min_length=1, max_length=40, description="Word before a name.")
    max_names: int = Field(16, ge=1, le=1000, description="More names in one request get 413.")
    max_request_bytes: Size = Field(
        ByteSize(64 * 1024), ge=1024, description="Larger HTTP bodies get 413 before parsing."
    )


GREETER_DEPLOYMENT = DeploymentSpec(
    name="Greeter",
    resources=Resources(num_cpus=0.25, memory=ByteSize(256 * 1024**2)),
    autoscaling=Autoscaling(min_replicas=1, max_replicas=2),
    max_ongoing_requests=32,
    user_config=GreeterSettings(),
)

GREETER = ApplicationSpec(
    name="greeter",
    import_path="team_app.app:app",
    route_prefix="/greet",
    deployments=(GREETER_DEPLOYMENT,),
    idempotent_paths=("/",),
)
