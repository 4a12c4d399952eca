"""The webhook handler: an event as a JSON POST, for Slack, Teams, PagerDuty and the like.

In-process as ``type: plugin, plugin: webhook`` (options ``url``, ``body_template``,
``headers``, ``timeout``), and as the pipe program ``handlers/webhook`` (``--url``,
``--body-template``, ``--header 'Name: value'`` repeated, ``--timeout``). The body is the
Sensu event JSON, or ``body_template`` rendered with :mod:`pipeline.core.templates` (which
must give valid JSON). An answer other than 2xx, or no answer, is a failure.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from pipeline.core.templates import RenderError, Template, compile_template, render
from pipeline.errors import HandlerError
from pipeline.model import Event
from pipeline.plugins import run_pipe_program

OPTIONS = {"url", "body_template", "headers", "timeout"}


def origin(url: str) -> str:
    """``scheme://host:port`` of ``url``: what errors show, as webhook URLs often hold a secret in their path."""
    parsed = httpx.URL(url)
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.scheme}://{parsed.host}{port}"


async def post(
    url: str, body: bytes, headers: Mapping[str, str], timeout: float, auth: tuple[str, str] | None = None
) -> None:
    """POST ``body``; no answer, or an answer other than 2xx, is a HandlerError."""
    try:
        # A client per request: a plugin has no close hook that would let it keep a pool open.
        async with httpx.AsyncClient(timeout=timeout, auth=auth) as client:
            response = await client.post(url, content=body, headers=dict(headers))
    except httpx.HTTPError as exc:
        raise HandlerError(f"POST to {origin(url)} failed: {type(exc).__name__}: {exc}") from None
    if not response.is_success:
        status = response.status_code
        reason = response.reason_phrase or httpx.codes.get_reason_phrase(status)  # HTTP/2 and some servers send none
        raise HandlerError(f"POST to {origin(url)} answered {status} {reason}: {response.text[:500]}")


def check_options(options: Mapping[str, Any], known: set[str], required: Sequence[str]) -> None:
    """Reject unknown options (typos) and missing required ones, naming them."""
    unknown = set(options) - known
    if unknown:
        raise ValueError(f"unknown options {sorted(unknown)} (expected {', '.join(sorted(known))})")
    for name in required:
        if options.get(name) in (None, ""):
            raise ValueError(f"option {name!r} is required")


def url_option(options: Mapping[str, Any]) -> str:
    """The ``url`` option, checked at startup so that a typo does not wait for the first event."""
    url = options["url"]
    try:
        parsed = httpx.URL(url)
    except (TypeError, httpx.InvalidURL) as exc:
        raise ValueError(f"option 'url': {url!r} is not a URL: {exc}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError(f"option 'url': expected an http:// or https:// URL, got {url!r}")
    return str(url)


def timeout_option(options: Mapping[str, Any], default: float = 10.0) -> float:
    value = options.get("timeout", default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValueError(f"option 'timeout': expected a positive number of seconds, got {value!r}")
    return float(value)


def _headers_option(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values()):
        raise ValueError(f"option 'headers': expected a mapping of header names to strings, got {value!r}")
    return {str(k): v for k, v in value.items()}


class WebhookHandler:
    """``handle`` POSTs the event (or the rendered ``body_template``) as JSON to ``url``."""

    def __init__(self, options: Mapping[str, Any]) -> None:
        check_options(options, OPTIONS, ["url"])
        self.url = url_option(options)
        self.timeout = timeout_option(options)
        self.headers = {"Content-Type": "application/json", **_headers_option(options.get("headers", {}))}
        body_template = options.get("body_template")
        self.template: Template | None = None
        if body_template is not None:
            self.template = compile_template(body_template, "body_template")

    def body(self, event: Event) -> bytes:
        """The request body; a template that does not render JSON is a RenderError naming it."""
        if self.template is None:
            return event.to_json()
        text = render(self.template, event)
        try:
            json.loads(text)
        except ValueError as exc:
            raise RenderError(self.template.name, f"rendered body is not JSON ({exc}): {text[:200]!r}") from None
        return text.encode()

    async def handle(self, event: Event) -> None:
        await post(self.url, self.body(event), self.headers, self.timeout)


def _header(text: str) -> tuple[str, str]:
    name, colon, value = text.partition(":")
    if not colon or not name.strip():
        raise argparse.ArgumentTypeError(f"expected 'Name: value', got {text!r}")
    return name.strip(), value.strip()


def main(argv: Sequence[str] | None = None) -> int:
    """The pipe program: one event as JSON on stdin."""
    parser = argparse.ArgumentParser(prog="webhook", description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--body-template")
    parser.add_argument("--header", type=_header, action="append", default=[], dest="headers")
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args(argv)
    options = {k: v for k, v in vars(args).items() if v is not None}
    options["headers"] = dict(args.headers)
    return run_pipe_program(parser, WebhookHandler, options, failures=(HandlerError, RenderError))
