"""Every exception pipeline raises on purpose, in one place.

Hierarchy::

    PipelineError                 base of everything below
    ├── ValidationError           a value that does not fit the model (path, message)
    │   ├── EventTooLarge         an event over the maximum event size (size, limit)
    │   ├── MalformedJsonError    bytes that are not acceptable JSON (reason, line, column)
    │   ├── SelectorError         a label or field selector that does not parse (selector, position)
    │   └── ResourceInUse         a resource others still name cannot be deleted (kind, name, referrers)
    ├── DocumentsRefused          documents applied together, refused together (index, error) each
    ├── ConfigError               a resource file that does not load (file, document, resource, path)
    ├── ConfigErrors              every ConfigError of a directory, reported together
    ├── ProtocolError             a peer broke the agent transport's protocol: its connection is closed (field)
    │   └── MessageError          a frame that is a map but not a message: unknown type, a field missing or not
    │                             of its type or range (field: ``<type>.<field>``)
    ├── StoreError                the event store failed or holds something unreadable
    │   └── StoreRefused          it refused what it was given (a constraint, a trigger, a number past its
    │                             column, an event that cannot be serialised): writing it again cannot help
    ├── DataDirInUse              another daemon holds the data directory (directory, role, holder)
    ├── HandlerError              a handler could not be started or run
    ├── ScriptError               a filter expression or javascript mutator failed (source, message)
    │   ├── ScriptTimeout         it ran past its time limit and was stopped (limit)
    │   └── ScriptOutOfMemory     it needed more than its memory limit and was stopped (limit)
    ├── SecretUnavailable         a command's secret has no value (name, secret, reason)
    ├── ContainmentError          subprocess containment asked for and not available (where, why)
    ├── AssetError                a runtime asset could not be had (asset, reason, detail)
    ├── DockerEventsError         the Docker Engine's event stream failed (socket, reason, detail)
    ├── KubernetesError           the Kubernetes API answered what a source cannot use (url, reason, detail)
    ├── HostRecordError           a host record an agent source cannot read (source, record, reason)
    └── UnknownSource             an agent source name no source has (name, known)

Each carries what a log line or an operator needs to find the offending input.
"""

from __future__ import annotations


class PipelineError(Exception):
    """Base class of pipeline's own errors."""


class ValidationError(PipelineError):
    """A value does not fit the model.

    ``path`` is the dotted location of the value (``check.status``, ``entity.metadata.name``);
    it is empty when the whole object is at fault.
    """

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)

    def within(self, prefix: str) -> ValidationError:
        """The same error located under ``prefix`` (``spec`` + ``interval`` -> ``spec.interval``)."""
        path = f"{prefix}.{self.path}" if self.path else prefix
        return type(self)(path, self.message)


class UnknownFieldError(ValidationError):
    """A key the model does not have (refused in resource files, ignored in submitted events)."""


class UnknownQueryParameter(ValidationError):
    """A query parameter the HTTP route does not take (``takes``: the ones it does)."""

    def __init__(self, name: str, takes: tuple[str, ...]) -> None:
        self.name, self.takes = name, takes
        allowed = f"this path takes: {', '.join(takes)}" if takes else "this path takes none"
        super().__init__(name[:60], f"unknown query parameter ({allowed})")


class EventTooLarge(ValidationError):
    """An event whose msgpack encoding is over the maximum event size."""

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__("", f"event of {size} bytes exceeds the maximum event size of {limit} bytes")

    def within(self, prefix: str) -> ValidationError:
        return self  # about the whole event, wherever it sits


class ConfigError(PipelineError):
    """A resource file that cannot be loaded, located as precisely as we can.

    Reads like ``config/checks.yml: document 2: CheckConfig 'disk': spec.interval: expected
    integer, got 'ten'``.
    """

    def __init__(
        self,
        file: str,
        message: str,
        *,
        document: int | None = None,
        resource: str | None = None,
        line: int | None = None,
    ) -> None:
        self.file = file
        self.document = document
        self.resource = resource
        self.line = line
        self.message = message
        parts = [file if line is None else f"{file}: line {line}"]
        if document is not None:
            parts.append(f"document {document}")
        if resource:
            parts.append(resource)
        parts.append(message)
        super().__init__(": ".join(parts))


class ConfigErrors(PipelineError):
    """All the errors found in a config directory; ``str()`` gives one per line."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))


class ProtocolError(PipelineError):
    """A peer broke the agent transport's protocol (a frame it cannot read, a message it may not
    send then): that connection is closed, never the daemon; the peer is logged by the caller.

    ``field`` names the ``<type>.<field>`` at fault (``hello.heartbeat_timeout``); it is empty
    when the frame or the connection as a whole is. The text already names it.
    """

    def __init__(self, text: str, field: str = "") -> None:
        self.field = field
        super().__init__(text)


class MessageError(ProtocolError):
    """A frame that decodes to a map but not to a message of the protocol: an unknown ``type``,
    a field missing, or one not of its type or out of its range (the peer may be told why)."""


class StoreError(PipelineError):
    """The event store failed, or holds a record it cannot read back."""


class StoreRefused(StoreError):
    """The event store refused what it was given, not for a failure of its own (a constraint or a
    trigger, a number past its column, an event that cannot be serialised): the same write fails
    again whenever it is tried, so the event is set aside rather than offered again for ever."""


class SpoolUnavailable(StoreError):
    """A local program's event the agent's spool did not take within ``seconds`` (a full or
    failing disk): refused, and withdrawn, so that it is not spooled afterwards either."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        super().__init__(f"the agent's spool could not write the event within {seconds:g} s (a full or failing "
                         "disk?); it was not spooled: send it again later")  # fmt: skip


class DataDirInUse(PipelineError):
    """Another process holds the data directory of this ``role`` (``backend``)."""

    def __init__(self, directory: object, role: str, holder: str) -> None:
        self.directory = directory
        self.role = role
        self.holder = holder
        who = f"process {holder}" if holder else "another process"
        super().__init__(f"{directory} is in use by {who} (its {role} lock): give each daemon its own --data")


class HandlerError(PipelineError):
    """A handler is misconfigured or could not be run."""


class ScriptError(PipelineError):
    """A JavaScript filter expression or mutator that threw, could not run, or returned what its
    caller cannot use. ``source`` is the expression (or ``eval``), ``message`` the JavaScript error."""

    def __init__(self, source: str, message: str) -> None:
        self.source = source
        self.message = message
        shown = source if len(source) <= 120 else source[:117] + "..."
        super().__init__(f"{shown!r}: {message}")


class ScriptTimeout(ScriptError):
    """A script stopped at its time limit (``limit`` in seconds)."""

    def __init__(self, source: str, limit: float, message: str = "") -> None:
        self.limit = limit
        super().__init__(source, message or f"stopped after the time limit of {limit:g} s")


class ScriptOutOfMemory(ScriptError):
    """A script stopped at its memory limit (``limit`` in bytes)."""

    def __init__(self, source: str, limit: int) -> None:
        self.limit = limit
        super().__init__(source, f"stopped at the memory limit of {limit} bytes")


class SecretUnavailable(PipelineError):
    """A ``secrets`` entry whose value the backend cannot give: ``name`` is the environment variable
    the command wanted, ``secret`` the secret it named. Never carries a value."""

    def __init__(self, name: str, secret: str, reason: str) -> None:
        self.name, self.secret, self.reason = name, secret, reason
        super().__init__(f"secret {name!r} ({secret}): {reason}")


class ContainmentError(PipelineError):
    """The process containment configured cannot be used: ``where`` names the file or setting."""

    def __init__(self, where: str, reason: str) -> None:
        self.where = where
        self.reason = reason
        super().__init__(f"{where}: {reason}")


def first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first leaf of an exception group: what to log."""
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


class MalformedJsonError(ValidationError):
    """Bytes that are not acceptable JSON: syntax, encoding, nesting deeper than the limit, or a
    number out of range. ``line`` and ``column`` (1-based, 0 when unknown) locate the problem;
    ``reason`` names its kind (``syntax``, ``encoding``, ``depth``, ``number``, ``surrogate``)."""

    def __init__(self, path: str, message: str, *, reason: str = "syntax", line: int = 0, column: int = 0) -> None:
        super().__init__(path, message)
        self.reason = reason
        self.line = line
        self.column = column


class SelectorError(ValidationError):
    """A ``labelSelector`` or ``fieldSelector`` that does not parse or names an unknown field.

    ``path`` is the query parameter (``fieldSelector``), ``selector`` the text as given and
    ``position`` the 0-based character offset of the offending token in it.
    """

    def __init__(self, path: str, selector: str, position: int, message: str) -> None:
        self.selector = selector
        self.position = position
        # a hostile query can be long: the message shows its start (repr escapes control characters)
        shown = repr(selector[:200]) + ("..." if len(selector) > 200 else "")
        super().__init__(path, f"{message} at position {position} of {shown}")

    def within(self, prefix: str) -> ValidationError:
        return self  # already names its parameter and its text


class ResourceInUse(ValidationError):
    """A resource that other resources still name cannot be deleted: ``referrers`` says who, each
    as ``check 'check-cpu' (handlers)``."""

    def __init__(self, kind: str, name: str, referrers: list[str], *, word: str = "") -> None:
        self.kind = kind
        self.name = name
        self.referrers = referrers
        super().__init__("", f"{word or kind} {name!r} is named by {', '.join(referrers)}")


class DocumentsRefused(PipelineError):
    """Documents applied all or nothing, refused: ``errors`` holds (index of the document in the
    batch, or -1 for the whole batch, and the error naming the field)."""

    def __init__(self, errors: list[tuple[int, ValidationError]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"document {i + 1}: {e}" if i >= 0 else str(e) for i, e in errors))


class AssetError(PipelineError):
    """A runtime asset could not be fetched, verified or unpacked: ``asset`` names it, ``reason``
    labels the metric (``sha512``, ``fetch``, ``unpack``, ``missing``), the message says what happened
    as a check's output shows it (``asset "check-disk": sha512 mismatch: ...``)."""

    def __init__(self, asset: str, reason: str, detail: str) -> None:
        self.asset, self.reason, self.detail = asset, reason, detail
        super().__init__(f'asset "{asset}": {detail}')


class DockerEventsError(PipelineError):
    """The Docker Engine's event stream failed: ``socket`` is the daemon's socket, ``reason``
    labels the metric (``connect``, ``timeout``, ``http_status``, ``truncated``, ``ended``,
    ``bad_line``, ``line_too_long``), ``detail`` says what happened."""

    def __init__(self, socket: str, reason: str, detail: str) -> None:
        self.socket, self.reason, self.detail = socket, reason, detail
        super().__init__(f"docker events at {socket}: {reason}: {detail}")


class KubernetesError(PipelineError):
    """The Kubernetes API answered what the kubernetes source cannot use (a status, a watch
    ERROR, a line that is not JSON): ``url`` is where, ``reason`` labels the metric
    (``http``, ``bad_json``, ``watch_error``, ``disconnect``), ``detail`` says what happened."""

    def __init__(self, url: str, reason: str, detail: str, *, status: int | None = None) -> None:
        self.url, self.reason, self.detail, self.status = url, reason, detail, status
        super().__init__(f"{url}: {detail}")


class HostRecordError(PipelineError):
    """A record of the host an agent source cannot make sense of (a kernel log record, a dpkg log
    line, a package's metadata): ``source`` names where it came from, ``record`` is the offending
    text (shortened), ``reason`` what is wrong with it."""

    def __init__(self, source: str, record: str, reason: str) -> None:
        self.source, self.record, self.reason = source, record[:200], reason
        super().__init__(f"{source}: {reason}: {self.record!r}")


class UnknownSource(PipelineError):
    """``pipeline agent --source NAME`` (or the config file's ``source:``) names no known source."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name, self.known = name, known
        super().__init__(f"--source {name!r}: unknown source (known: {', '.join(known) or 'none'})")
