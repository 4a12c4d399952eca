"""Sensu Go's ad hoc execution: run a check now on its agents, whatever its schedule."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pipeline.backend.api.common import client_of, json_body, not_found
from pipeline.errors import ValidationError
from pipeline.http_answers import error_response
from pipeline.logs import get_logger

log = get_logger("backend.api")

EXECUTE = "/api/core/v2/namespaces/{namespace}/checks/{check}/execute"
#: (namespace, check, subscriptions or None for the check's own) -> agents asked, None: no such check
Execute = Callable[[str, str, list[str] | None], Awaitable[int | None]]


def execute_routes(execute: Execute, *, wall_clock: Callable[[], float] = time.time) -> list[Route]:
    async def execute_check(request: Request) -> Response:
        """``{check?, subscriptions?, reason?, creator?}``, 202 once the agents are asked."""
        p = request.path_params
        data = await json_body(request) if (await request.body()).strip() else {}
        if isinstance(data, Response):
            return data
        try:
            subscriptions = execution_request(data, p["check"])
        except ValidationError as exc:
            return error_response(400, str(exc))
        asked = await execute(p["namespace"], p["check"], subscriptions)
        if asked is None:
            return not_found("check", p["check"], p["namespace"])
        log.info("ad hoc execution", check=p["check"], agents=asked, reason=data.get("reason", ""),
                 creator=data.get("creator", ""), client=client_of(request))  # fmt: skip
        return JSONResponse({"issued": int(wall_clock()), "agents": asked}, status_code=202)

    return [Route(EXECUTE, execute_check, methods=["POST"])]


def execution_request(data: Any, check: str) -> list[str] | None:
    """The subscriptions an ad hoc request names (None: the check's own); ValidationError naming the field."""
    if not isinstance(data, dict):
        raise ValidationError("", "expected a JSON object")
    if data.get("check", check) != check:
        raise ValidationError("check", f"{data['check']!r} does not match {check!r} in the URL")
    subscriptions = data.get("subscriptions")
    if subscriptions is None or subscriptions == []:
        return None
    if not isinstance(subscriptions, list) or not all(isinstance(s, str) and s for s in subscriptions):
        raise ValidationError("subscriptions", "expected a list of subscription names")
    return subscriptions
