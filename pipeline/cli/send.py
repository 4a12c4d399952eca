"""``pipeline event send``: a change event from a script on a host (a deploy, a restart), as
StackState's ``stac event send``.

It is the change event the push routes make (:func:`pipeline.core.push.common.change_event`):
the check is named by ``--type``, its output is ``--message``, its labels come from ``--tag
k:v`` and its annotations ``link/<title>`` from ``--link "title: url"``; status 0 unless
``--status``. It goes to the backend's Sensu events API, which any status and any annotation
fit and which an ingest key may post to, as the entity ``--host`` (default: this machine's
name). With ``--agent`` it goes to the local agent's API instead, which answers once the
event is in its spool: it reaches the backend when the backend is back. There the event is
about the agent's own entity, or about ``--host`` as a proxy entity when given.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from typing import Any

from pipeline.cli import http_client
from pipeline.cli.operator import ApiError, api_request, in_namespace, refusal
from pipeline.core.push.common import change_event, labels_of
from pipeline.errors import ValidationError
from pipeline.model.meta import validate_name


def links_of(links: list[str]) -> dict[str, str]:
    """``["Runbook: https://wiki/x"]`` as annotations ``{"link/Runbook": "https://wiki/x"}``; a link
    without a title is titled by its URL."""
    annotations = {}
    for i, link in enumerate(links):
        title, sep, url = link.partition(": ")
        title, url = (title.strip(), url.strip()) if sep else (link.strip(), link.strip())
        if not title or not url:
            raise ValidationError(f"--link[{i}]", f'expected "title: url", got {link!r}')
        annotations[f"link/{title}"] = url
    return annotations


def tags_of(tags: list[str]) -> dict[str, str]:
    """``--tag`` values as labels (``k:v``, ``k=v``, or ``k`` for ``k: "true"``); one without a key
    is refused (``:v`` made a label with an empty key)."""
    for i, tag in enumerate(tags):
        if not tag.partition(":" if ":" in tag else "=")[0].strip():
            raise ValidationError(f"--tag[{i}]", f"expected KEY:VALUE, got {tag!r}")
    return labels_of(tags, "--tag")


def event_body(args: argparse.Namespace, now: float) -> dict[str, Any]:
    """The event to send, as Sensu Go's event JSON (raises ValidationError naming the flag). The
    names are the operator's own, refused rather than made valid: the push formats' free text is
    rewritten (``a b`` to ``a_b``), but here the event would not be the one asked for."""
    validate_name(args.type, "--type")
    if args.host:
        validate_name(args.host, "--host")
    event = change_event(
        host=args.host or socket.gethostname(),
        name=args.type,
        output=args.message,
        status=args.status,
        timestamp=int(now),
        namespace=args.namespace,
        labels=tags_of(args.tag),
        annotations=links_of(args.link),
        handlers=[],
    )
    event.validate()
    body = event.to_dict()
    if args.agent and not args.host:
        del body["entity"]  # the agent's own
    return body


def cmd_event_send(args: argparse.Namespace) -> int:
    try:
        body = event_body(args, time.time())
    except ValidationError as exc:
        print(f"pipeline event send: error: {exc}", file=sys.stderr)
        return 2
    if args.agent:
        _post_to_agent(args.agent_url, body)
        where = f"the agent at {args.agent_url} (spooled)"
    else:
        api_request(args, "POST", in_namespace(args, "events"), expect=201, json=body)
        where = f"the backend at {args.api_url}"
    print(f"event {body['id']} ({args.type}) sent to {where}")
    return 0


def _post_to_agent(url: str, body: dict[str, Any]) -> None:
    try:
        response = http_client.request("POST", url.rstrip("/") + "/events", content=json.dumps(body), timeout=30.0)
    except http_client.ClientError as exc:
        raise ApiError(f"cannot reach the agent at {url}: {exc}") from None
    if response.status_code != 202:
        raise ApiError(f"the agent at {url} refused the event: {refusal(response)}")
