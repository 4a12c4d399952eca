"""StatsD and DogStatsD lines, read as etsy StatsD reads them. Pure.

``key:value|type[|@rate][|#tag:v,tag][|c:container][|T<unix>]``, several ``value|type``
samples per key (``a:1|c:2|c``), newline-separated lines per datagram. As etsy: an empty
counter value counts 1, an empty timer or gauge value is 0, a set value defaults to ``0``, a
type letter other than ``g``, ``s`` and the timers with a numeric value is a counter, key
names are sanitised. Unlike etsy: ``h`` and ``d`` are timers (DogStatsD's histogram and
distribution), tags are kept apart as point tags rather than folded into the key, and the
DogStatsD extension fields are accepted (``|T`` sets the timestamp) instead of making the
line bad. DogStatsD service checks (``_sc|...``) and events (``_e{t,l}:title|text|...``) are
parsed into their own records.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from dataclasses import dataclass, field

from pipeline.core.numbers import UNIX_SECONDS, parse_decimal, parse_int

TIMER_TYPES = frozenset({"ms", "h", "d"})

_WHITESPACE = re.compile(r"\s+")
_NOT_KEY = re.compile(r"[^a-zA-Z_\-0-9.;=]")


class BadLine(ValueError):
    """A line etsy StatsD would count in ``bad_lines_seen``; the message says why."""


@functools.lru_cache(maxsize=65536)
def sanitize(name: str) -> str:
    """etsy's ``sanitizeKeyName`` (cached: the same keys arrive over and over)."""
    return _NOT_KEY.sub("", _WHITESPACE.sub("_", name).replace("/", "-"))


def js_number(text: str) -> float | None:
    """The number JavaScript's ``Number()`` reads in ``text`` (decimal forms), else None. Unlike
    etsy, ``Infinity`` and numbers too large for a double are refused: a point that is not
    finite cannot be sent (Sensu Go's JSON cannot carry it either)."""
    return parse_decimal(text)


def unix_time(text: str) -> int | None:
    """A ``|T`` or ``d:`` timestamp: Unix seconds in ASCII digits, within :data:`UNIX_SECONDS`."""
    return parse_int(text, UNIX_SECONDS) if text[:1] not in "+-" else None


Tags = tuple[tuple[str, str], ...]


@dataclass(slots=True)  # not frozen: frozen dataclasses are slow to build, and one is built per metric
class Sample:
    key: str
    tags: Tags
    kind: str  # "c", "g", "ms" (also for h and d) or "s"
    value: float | str
    rate: float = 1.0
    delta: bool = False  # a gauge value written with a sign
    timestamp: int | None = None


@dataclass(slots=True, frozen=True)
class ServiceCheck:
    name: str
    status: int
    message: str = ""
    hostname: str = ""
    timestamp: int | None = None
    tags: Tags = ()


@dataclass(slots=True, frozen=True)
class DogEvent:
    title: str
    text: str
    hostname: str = ""
    timestamp: int | None = None
    priority: str = "normal"
    alert_type: str = "info"
    aggregation_key: str = ""
    source_type: str = ""
    tags: Tags = ()


@dataclass(slots=True)
class Datagram:
    samples: list[Sample] = field(default_factory=list)
    service_checks: list[ServiceCheck] = field(default_factory=list)
    events: list[DogEvent] = field(default_factory=list)
    #: (line, reason) for every bad line or sample
    bad: list[tuple[str, str]] = field(default_factory=list)
    lines: int = 0


def parse_tags(text: str) -> Tags:
    """DogStatsD tags ``k:v,flag`` as (name, value) pairs, sanitised like keys."""
    tags = []
    for raw in text.split(","):
        if raw:
            name, _, value = raw.partition(":")
            tags.append((sanitize(name), sanitize(value)))
    return tuple(tags)


def _sample(key: str, tags: Tags, text: str) -> Sample:
    fields = text.split("|")
    if len(fields) < 2:
        raise BadLine("no type")
    raw, kind = fields[0], fields[1].strip()
    rate, timestamp = 1.0, None
    for extra in fields[2:]:
        if extra.startswith("@"):
            parsed = js_number(extra[1:])
            if not extra[1:] or parsed is None or extra[1:].lstrip().startswith("-"):
                raise BadLine(f"bad sample rate {extra!r}")
            if parsed == 0:
                # etsy would add value * Infinity; a counter that is infinite forever helps nobody
                raise BadLine(f"sample rate {extra!r} must be greater than 0")
            rate = parsed
        elif extra.startswith("T") and extra[1:].isdigit():  # isdigit: T² too, which unix_time refuses
            timestamp = unix_time(extra[1:])
            if timestamp is None:
                raise BadLine(f"bad timestamp {extra!r}")
        # other fields (DogStatsD's future extensions) are accepted and ignored
    if kind == "s":
        return Sample(key, tags, "s", raw or "0", rate, timestamp=timestamp)
    value = js_number(raw) if raw else None
    if kind == "g":
        if value is None:
            raise BadLine(f"gauge value {raw!r} is not a number")
        return Sample(key, tags, "g", value, rate, delta=raw.lstrip()[:1] in "+-", timestamp=timestamp)
    if kind in TIMER_TYPES:
        if value is None:
            raise BadLine(f"timer value {raw!r} is not a number")
        if kind == "ms" and value < 0:
            raise BadLine(f"timer value {raw!r} is negative")
        return Sample(key, tags, "ms", value, rate, timestamp=timestamp)
    if not raw:
        return Sample(key, tags, "c", 1.0, rate, timestamp=timestamp)
    if value is None:
        raise BadLine(f"counter value {raw!r} is not a number")
    return Sample(key, tags, "c", value, rate, timestamp=timestamp)


_EXTENSION = re.compile(r"(c:|e:|card:)|T\d+\Z")  # \d: ``T²`` is taken off too, then refused


def _strip_extensions(body: str) -> tuple[str, int | None]:
    """The line without its trailing DogStatsD fields (container, external data, cardinality,
    timestamp), and the ``|T`` timestamp. Only trailing fields count, so that etsy's
    ``a:1|c:2|c`` stays two counter samples."""
    fields = body.split("|")
    timestamp = None
    while len(fields) > 2 and _EXTENSION.match(fields[-1]):
        extra = fields.pop()
        if extra.startswith("T"):
            timestamp = unix_time(extra[1:])
            if timestamp is None:
                raise BadLine(f"bad timestamp {extra!r}")
    return "|".join(fields), timestamp


#: The shape nearly every line has: a clean key, one plain number, a type, maybe a rate. The
#: rate is written so that one way only can match it (``[0-9]*\.?[0-9]+`` took seconds of
#: backtracking on a rate of 20,000 digits followed by a letter).
_PLAIN = r"([a-zA-Z0-9_.\-]+):([0-9]{1,300}(?:\.[0-9]+)?)\|(c|ms|h|d)(?:\|@([0-9]+(?:\.[0-9]+)?|\.[0-9]+))?"
_SIMPLE = re.compile(_PLAIN + r"\Z", re.ASCII)
#: A datagram of plain lines only (empty lines allowed anywhere), checked in one C pass...
_ALL_PLAIN = re.compile(r"\n*(?:" + re.sub(r"\((?!\?)", "(?:", _PLAIN) + r"(?:\n+|\Z))*", re.ASCII)
#: ...and then read in a second one: a datagram of ten metrics costs two regex calls, not ten.
_PLAIN_LINES = re.compile(r"^" + _PLAIN + r"$", re.ASCII | re.MULTILINE)
#: A rate of a plain line that is zero (its digits are all 0): etsy would divide by it.
_ZERO_RATE = re.compile(r"\|@[0.]+$", re.MULTILINE)
_KINDS = {"c": "c", "ms": "ms", "h": "ms", "d": "ms"}

#: One plain line as its regex groups: key, value, type (c, ms, h or d), rate ("" if none).
PlainLine = tuple[str, str, str, str]


def plain_lines(text: str) -> list[PlainLine] | None:
    """The groups of every line of a datagram made only of plain lines (``key:value|type``
    with an optional positive ``|@rate``), else None for :func:`parse_text` to read. For such a
    datagram the aggregate is exactly what the samples of :func:`parse_text` would give."""
    lines: list[PlainLine] = _PLAIN_LINES.findall(text)
    # Each match is a whole line, so as many matches as lines means every line is plain.
    # Counting newlines is cheaper than a second regex, but needs no empty lines to count.
    if "\n\n" in text or text[:1] == "\n":
        if _ALL_PLAIN.fullmatch(text) is None:
            return None
    elif len(lines) != text.count("\n") + (text[-1:] not in "\n"):  # "" is in "\n": no line
        return None
    if "@" in text and _ZERO_RATE.search(text):
        return None  # a zero rate is refused, which the general path reports
    return lines


def parse_line(line: str) -> tuple[list[Sample], list[str]]:
    """The samples of one metric line, and why each bad sample of it was refused."""
    simple = _SIMPLE.match(line)
    if simple is not None:  # the fast path gives exactly what the general one would
        key, value, kind, rate = simple.groups()
        sample_rate = float(rate) if rate else 1.0
        if sample_rate > 0:
            return [Sample(key, (), _KINDS[kind], float(value), sample_rate)], []
    return parse_line_general(line)


def parse_line_general(line: str) -> tuple[list[Sample], list[str]]:
    """:func:`parse_line` for any line (tags, extensions, several samples, odd keys)."""
    body, _, tag_text = line.partition("|#")
    tag_text, _, after_tags = tag_text.partition("|")
    if after_tags:
        body = f"{body}|{after_tags}"  # fields written after the tags, e.g. |#a:b|T123
    body, timestamp = _strip_extensions(body)
    key, *parts = body.split(":")
    tags = parse_tags(tag_text)
    if not parts:
        parts = ["1"]  # etsy reads a bare key as the value "1" with no type: a bad line
    samples, errors = [], []
    key = sanitize(key)
    for part in parts:
        try:
            sample = _sample(key, tags, part)
            samples.append(sample if timestamp is None else dataclasses.replace(sample, timestamp=timestamp))
        except BadLine as exc:
            errors.append(str(exc))
    return samples, errors


def parse_service_check(line: str) -> ServiceCheck:
    fields = line.split("|")
    if len(fields) < 3 or not fields[1]:
        raise BadLine("service check needs _sc|name|status")
    if fields[2] not in ("0", "1", "2", "3"):
        raise BadLine(f"service check status {fields[2]!r} is not 0, 1, 2 or 3")
    hostname, message, timestamp = "", "", None
    tags: Tags = ()
    for extra in fields[3:]:
        if extra.startswith("d:") and extra[2:].isdigit():
            timestamp = unix_time(extra[2:])
            if timestamp is None:
                raise BadLine(f"bad service check timestamp {extra!r}")
        elif extra.startswith("h:"):
            hostname = extra[2:]
        elif extra.startswith("#"):
            tags = parse_tags(extra[1:])
        elif extra.startswith("m:"):
            message = extra[2:]
    return ServiceCheck(fields[1], int(fields[2]), message, hostname, timestamp, tags)


_EVENT_HEAD = re.compile(r"_e\{([0-9]{1,6}),([0-9]{1,6})\}:", re.ASCII)


def parse_event(line: str) -> DogEvent:
    head = _EVENT_HEAD.match(line)
    if head is None:
        raise BadLine("event needs _e{title length,text length}:title|text")
    title_length, text_length = int(head.group(1)), int(head.group(2))
    rest = line[head.end() :]
    title, separator, rest = rest[:title_length], rest[title_length : title_length + 1], rest[title_length + 1 :]
    text = rest[:text_length]
    if len(title) != title_length or separator != "|" or len(text) != text_length:
        raise BadLine("event title or text is shorter than its declared length")
    values: dict[str, str] = {}
    tags: Tags = ()
    for extra in rest[text_length:].split("|")[1:]:
        if extra.startswith("#"):
            tags = parse_tags(extra[1:])
        elif len(extra) > 2 and extra[1] == ":":
            values[extra[0]] = extra[2:]
    timestamp = unix_time(values["d"]) if values.get("d", "").isdigit() else None
    if values.get("d", "").isdigit() and timestamp is None:
        raise BadLine(f"bad event timestamp {values['d']!r}")
    return DogEvent(
        title=title,
        text=text.replace("\\n", "\n"),
        hostname=values.get("h", ""),
        timestamp=timestamp,
        priority=values.get("p", "normal"),
        alert_type=values.get("t", "info"),
        aggregation_key=values.get("k", ""),
        source_type=values.get("s", ""),
        tags=tags,
    )


def decode(data: bytes) -> str:
    """A datagram's text (bytes that are not UTF-8 become U+FFFD, as etsy's Buffer.toString)."""
    return data.decode("utf-8", errors="replace")


def parse_datagram(data: bytes) -> Datagram:
    """Every line of one datagram; bad lines are reported and the rest still counts."""
    return parse_text(decode(data))


def parse_text(text: str) -> Datagram:
    """:func:`parse_datagram` of a decoded datagram."""
    result = Datagram()
    samples = result.samples
    simple_match = _SIMPLE.match
    for line in text.split("\n"):
        if not line:
            continue
        result.lines += 1
        simple = simple_match(line)
        if simple is not None and (simple.group(4) is None or float(simple.group(4)) > 0):
            # parse_line's fast path, inlined: this loop runs for every metric received
            key, value, kind, rate = simple.groups()
            samples.append(Sample(key, (), _KINDS[kind], float(value), float(rate) if rate else 1.0))
            continue
        try:
            if line.startswith("_sc|"):
                result.service_checks.append(parse_service_check(line))
            elif line.startswith("_e{"):
                result.events.append(parse_event(line))
            else:
                line_samples, errors = parse_line(line)
                samples.extend(line_samples)
                result.bad.extend((line, error) for error in errors)
        except BadLine as exc:
            result.bad.append((line, str(exc)))
    return result
