"""The email handler: an event as a plain-text mail over SMTP.

In-process as ``type: plugin, plugin: email``, and as the pipe program ``handlers/email`` (the
same options as flags; ``--to`` repeated, ``--no-starttls``). Options: ``host`` (default
localhost), ``port`` (587), ``starttls`` (true; the server's certificate is verified against
the system's CAs, or ``SSL_CERT_FILE``), ``username`` and ``password`` (log in when given),
``from``, ``to`` (a list), ``subject_template``, ``body_template`` (Jinja2, see
:mod:`pipeline.core.templates`) and ``timeout`` (10 s). smtplib blocks, so it runs in a thread.
"""

from __future__ import annotations

import argparse
import smtplib
import ssl
from collections.abc import Mapping, Sequence
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

import trio

from pipeline.core.templates import RenderError, compile_template, render
from pipeline.errors import HandlerError
from pipeline.model import Event
from pipeline.plugins import run_pipe_program

OPTIONS = {"host", "port", "starttls", "username", "password", "from", "to", "subject_template", "body_template",
           "timeout"}  # fmt: skip

DEFAULT_SUBJECT = (
    "{{ event.entity.metadata.name }}/{{ event.check.metadata.name }}: "
    "{{ event.check.state | default('unknown', true) }} (status {{ event.check.status }})"
)
DEFAULT_BODY = """\
{{ event.check.output | trim }}

Entity:      {{ event.entity.metadata.name }}
Check:       {{ event.check.metadata.name }}
Status:      {{ event.check.status }} ({{ event.check.state }})
Occurrences: {{ event.check.occurrences }}
Namespace:   {{ event.entity.metadata.namespace }}
Event:       {{ event.id }}
"""


def _option(options: Mapping[str, Any], name: str, kind: type, default: Any) -> Any:
    value = options.get(name, default)
    if isinstance(value, bool) and kind is not bool:
        raise ValueError(f"option {name!r}: expected {kind.__name__}, got {value!r}")
    if kind is float and isinstance(value, int):  # YAML reads `timeout: 5` as an int
        value = float(value)
    if not isinstance(value, kind):
        raise ValueError(f"option {name!r}: expected {kind.__name__}, got {value!r}")
    return value


def _addresses(value: Any) -> list[str]:
    addresses = [value] if isinstance(value, str) else value
    if not isinstance(addresses, list) or not addresses or not all(isinstance(a, str) and a for a in addresses):
        raise ValueError(f"option 'to': expected a list of addresses, got {value!r}")
    return addresses


class EmailHandler:
    """``handle`` sends one mail per event; an SMTP or connection failure raises HandlerError."""

    def __init__(self, options: Mapping[str, Any]) -> None:
        unknown = set(options) - OPTIONS
        if unknown:
            raise ValueError(f"unknown options {sorted(unknown)} (expected {', '.join(sorted(OPTIONS))})")
        self.host = _option(options, "host", str, "localhost")
        self.port = _option(options, "port", int, 587)
        self.starttls = _option(options, "starttls", bool, True)
        self.username = _option(options, "username", str, "")
        self.password = _option(options, "password", str, "")
        if bool(self.username) != bool(self.password):
            raise ValueError("options 'username' and 'password' go together")
        self.sender = _option(options, "from", str, "")
        if not self.sender:
            raise ValueError("option 'from' is required")
        self.to = _addresses(options.get("to"))
        self.timeout = _option(options, "timeout", float, 10.0)
        if self.timeout <= 0:
            raise ValueError(f"option 'timeout': expected a positive number of seconds, got {self.timeout!r}")
        self.subject = compile_template(options.get("subject_template", DEFAULT_SUBJECT), "subject_template")
        self.body = compile_template(options.get("body_template", DEFAULT_BODY), "body_template")

    def message(self, event: Event) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = ", ".join(self.to)
        # A header cannot hold line breaks, and check output in a subject often has some.
        message["Subject"] = " ".join(render(self.subject, event).split())
        message["Date"] = formatdate(localtime=True)
        message.set_content(render(self.body, event))
        return message

    def _send(self, message: EmailMessage) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if self.username:
                smtp.login(self.username, self.password)
            smtp.send_message(message)

    async def handle(self, event: Event) -> None:
        message = self.message(event)
        try:
            await trio.to_thread.run_sync(self._send, message)
        except OSError as exc:  # smtplib's errors, ssl's and the socket's are all OSErrors
            raise HandlerError(f"mail to {message['To']} via {self.host}:{self.port} failed: {exc}") from None


def main(argv: Sequence[str] | None = None) -> int:
    """The pipe program: one event as JSON on stdin."""
    parser = argparse.ArgumentParser(prog="email", description=__doc__)
    parser.add_argument("--host", default="localhost")
    parser.add_argument("--port", type=int, default=587)
    parser.add_argument("--starttls", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--username")
    parser.add_argument("--password")
    parser.add_argument("--from", dest="from", required=True)
    parser.add_argument("--to", action="append", required=True)
    parser.add_argument("--subject-template")
    parser.add_argument("--body-template")
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args(argv)
    options = {k: v for k, v in vars(args).items() if v is not None}
    return run_pipe_program(parser, EmailHandler, options, failures=(HandlerError, RenderError))
