"""Sensu Go's ``Asset`` (core/v2): an archive of programs a check, hook, handler or mutator runs.

An asset is one archive (``url`` + ``sha512``, with ``filters`` saying on which hosts it
applies and ``headers`` sent with the download) or several ``builds`` of it, of which the first
whose filters match the host is used (Sensu Go's filtered manager). ``url`` is http(s), or a
local file (an absolute path or a ``file://`` URL), which pipeline also accepts so that an
archive on a shared disk needs no web server.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from pipeline.errors import ValidationError
from pipeline.model.codec import field
from pipeline.model.meta import ObjectMeta, validate_name

SHA512_PATTERN = re.compile(r"\A[0-9a-fA-F]{128}\Z")
#: RFC 9110 field names; a value may hold neither a line break nor a NUL (header injection).
HEADER_NAME = re.compile(r"\A[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
MAX_FILTERS = 32
MAX_BUILDS = 64


def _at(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


@dataclass(slots=True)
class AssetBuild:
    """One build of an asset (``spec.builds[i]``)."""

    url: str = field("")
    sha512: str = field("")
    filters: list[str] = field([])
    headers: dict[str, str] = field({})

    def validate(self, path: str) -> None:
        validate_source(self.url, self.sha512, self.headers, path)
        _validate_filters(self.filters, path)


@dataclass(slots=True)
class Asset:
    """Sensu Go's ``Asset``."""

    url: str = field("", omitempty=True)
    sha512: str = field("", omitempty=True)
    filters: list[str] = field([])
    metadata: ObjectMeta = field(factory=ObjectMeta)
    headers: dict[str, str] = field({})
    builds: list[AssetBuild] = field([])

    @property
    def name(self) -> str:
        return self.metadata.name

    def validate(self, path: str = "") -> None:
        validate_name(self.metadata.name, _at(path, "metadata.name"))
        if len(self.builds) > MAX_BUILDS:
            raise ValidationError(_at(path, "builds"), f"at most {MAX_BUILDS} builds, got {len(self.builds)}")
        if not self.builds:
            validate_source(self.url, self.sha512, self.headers, path)
            _validate_filters(self.filters, path)
            return
        for name in ("url", "sha512", "filters", "headers"):
            if getattr(self, name):  # Sensu Go ignores them beside builds: say so instead
                raise ValidationError(_at(path, name), "not used when builds are given: set it in each build")
        for i, build in enumerate(self.builds):
            build.validate(_at(path, f"builds[{i}]"))

    def candidates(self) -> list[AssetBuild]:
        """The builds to choose from, in order (an asset without builds is its own only build)."""
        if self.builds:
            return list(self.builds)
        return [AssetBuild(url=self.url, sha512=self.sha512, filters=list(self.filters), headers=dict(self.headers))]


def validate_source(url: str, sha512: str, headers: dict[str, str], path: str) -> None:
    """``url`` is http(s) or an absolute local path; ``sha512`` is 128 hex digits; headers are
    well-formed."""
    if not url:
        raise ValidationError(_at(path, "url"), "required")
    if local_path(url) is None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValidationError(
                _at(path, "url"), f"expected an http(s) URL or an absolute file path, got {url[:200]!r}"
            )
    if not SHA512_PATTERN.match(sha512):
        raise ValidationError(_at(path, "sha512"), f"expected 128 hexadecimal digits, got {sha512[:200]!r}")
    for name, value in headers.items():
        if not HEADER_NAME.match(name):
            raise ValidationError(_at(path, f"headers.{name[:60]}"), "not a valid HTTP header name")
        if any(c in value for c in "\r\n\0"):
            raise ValidationError(_at(path, f"headers.{name}"), "a header value may not hold a line break")


def _validate_filters(filters: list[str], path: str) -> None:
    if len(filters) > MAX_FILTERS:
        raise ValidationError(_at(path, "filters"), f"at most {MAX_FILTERS} filters, got {len(filters)}")
    for i, text in enumerate(filters):
        if not text.strip():
            raise ValidationError(_at(path, f"filters[{i}]"), "must not be empty")


def local_path(url: str) -> str | None:
    """The file an asset URL names on this host (``/srv/a.tar.gz`` or ``file:///srv/a.tar.gz``),
    or None for a URL fetched over the network."""
    if url.startswith("/"):
        return url
    if url.startswith("file://"):
        rest = url.removeprefix("file://")
        return rest if rest.startswith("/") else None
    return None
