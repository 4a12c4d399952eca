"""Sensu Go's check hooks API: assign hooks to a check for a type of result, or take one off."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pipeline.backend.api.common import json_body, not_found
from pipeline.backend.api.writes import API_VERSION
from pipeline.backend.resources import ResourceService
from pipeline.core.check_hooks import HookLists, with_hooks, without_hook
from pipeline.errors import ValidationError
from pipeline.http_answers import error_response
from pipeline.model.check import CheckConfig
from pipeline.model.codec import encode

HOOKS = "/api/core/v2/namespaces/{namespace}/checks/{check}/hooks/{type}"


def hook_request(body: object, hook_type: str) -> list[str]:
    """The hook names of a ``{"<type>": [names]}`` body for the URL's type (raises ValidationError)."""
    if not isinstance(body, dict) or list(body) != [hook_type]:
        raise ValidationError("", f'expected {{"{hook_type}": [hook names]}}, the type of the URL')
    names = body[hook_type]
    if not isinstance(names, list) or not names or not all(isinstance(name, str) and name for name in names):
        raise ValidationError(hook_type, "expected a list of hook names")
    return names


def check_hook_routes(resources: ResourceService) -> list[Route]:
    async def replace_hooks(check: CheckConfig, check_hooks: HookLists) -> None:
        spec = {key: value for key, value in encode(check).items() if key != "metadata"}
        spec["check_hooks"] = check_hooks
        await resources.put({"type": "CheckConfig", "api_version": API_VERSION, "metadata": encode(check.metadata),
                             "spec": spec})  # fmt: skip

    async def assign(request: Request) -> Response:
        p = request.path_params
        check = resources.get("CheckConfig", p["namespace"], p["check"])
        if check is None:
            return not_found("check", p["check"], p["namespace"])
        body = await json_body(request)
        if isinstance(body, Response):
            return body
        try:
            await replace_hooks(check, with_hooks(check.check_hooks, p["type"], hook_request(body, p["type"])))
        except ValidationError as exc:
            return error_response(400, str(exc))
        return Response(status_code=201)

    async def remove(request: Request) -> Response:
        p = request.path_params
        check = resources.get("CheckConfig", p["namespace"], p["check"])
        if check is None:
            return not_found("check", p["check"], p["namespace"])
        remaining = without_hook(check.check_hooks, p["type"], p["hook"])
        if remaining is None:
            return error_response(404, f"check {p['check']} has no {p['type']} hook {p['hook']}")
        try:
            await replace_hooks(check, remaining)
        except ValidationError as exc:
            return error_response(400, str(exc))
        return Response(status_code=204)

    return [
        Route(HOOKS, assign, methods=["PUT"]),
        Route(HOOKS + "/hook/{hook}", remove, methods=["DELETE"]),
    ]
