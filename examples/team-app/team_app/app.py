"""The greeter: `POST /greet {"names": [...]}` → one greeting per name.

It takes its deployment options from its spec and servestack's error contract (4xx JSON for
every malformed request) from `apps.http_contract`, like the shipped apps.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field
from ray import serve
from ray.serve import Application, Deployment

from apps.http_contract import Text, install_error_contract, require_at_most
from apps.json_io import JsonResponse, parse_json_body
from apps.spec import ApplicationSpec, ReplicaUserConfig
from team_app.spec import GREETER, GREETER_DEPLOYMENT, GreeterSettings


class GreetRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    names: list[Text] = Field(min_length=1, description="Whom to greet, in order.")


api = install_error_contract(FastAPI(title="greeter", docs_url=None, redoc_url=None))


class GreeterReplica:
    def __init__(self) -> None:
        self._settings = GreeterSettings()

    def reconfigure(self, user_config: dict[str, Any] | None) -> None:
        _, self._settings = ReplicaUserConfig.parse(user_config, GreeterSettings)

    @property
    def max_request_bytes(self) -> int:  # read by the contract's body limit
        return int(self._settings.max_request_bytes)

    @api.get("/")
    def info(self) -> dict[str, Any]:
        return {"settings": self._settings.model_dump(mode="json")}

    @api.post("/", response_class=JsonResponse)
    async def greet(self, http_request: Request) -> JsonResponse:
        request = await parse_json_body(http_request, GreetRequest)
        require_at_most(len(request.names), self._settings.max_names,
                        field="names", setting="max_names", what="names")
        greeting = self._settings.greeting
        return JsonResponse({"greetings": [f"{greeting}, {name}" for name in request.names]})


Greeter: Deployment = serve.deployment(**GREETER_DEPLOYMENT.serve_options())(
    serve.ingress(api)(GreeterReplica)
)


def build_app(spec: ApplicationSpec = GREETER) -> Application:
    return Greeter.options(**spec.deployment(Greeter.name).serve_options()).bind()


app = build_app()
