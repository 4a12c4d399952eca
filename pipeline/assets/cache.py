"""The runtime asset cache of an agent or a backend (Sensu Go's asset manager).

An asset is fetched once (over http(s) with its headers, or copied from a local path), its
sha512 verified before anything is unpacked, and unpacked into ``<cache>/<sha512>/``. That
directory appears by one rename once the archive is completely unpacked, so its existence
means the asset is installed, across restarts too. Runs that need the same asset at once wait
for the one fetch (a lock per sha512). A failure is not cached: the next run tries again; it is
counted every time and logged once per distinct error until the asset installs.

The build used is the first whose filters match the host's entity (Sensu Go's filtered
manager); when none does, the asset is not installed for this host and the command runs
without it, as in Sensu Go.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import trio
from prometheus_client import CollectorRegistry, Counter

from pipeline.assets.unpack import MAX_UNPACKED_BYTES, UnpackError, unpack
from pipeline.core.asset_filters import AssetFilterError, matches
from pipeline.errors import AssetError
from pipeline.logs import get_logger
from pipeline.model.asset import Asset, AssetBuild, local_path

log = get_logger("assets")

#: How long one download may take, in seconds.
FETCH_TIMEOUT = 120.0
#: The largest archive fetched, in bytes.
MAX_ARCHIVE_BYTES = 512 * 1024 * 1024
CHUNK = 256 * 1024

Lookup = Callable[[str], Asset | None]


@dataclass(slots=True)
class AssetMetrics:
    installed: Counter
    failures: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry, prefix: str) -> AssetMetrics:
        """``prefix``: ``pipeline_agent`` or ``pipeline_backend``."""
        return cls(
            installed=Counter(f"{prefix}_assets_installed", "Runtime assets fetched, verified and unpacked",
                              ["asset"], registry=registry),
            failures=Counter(f"{prefix}_asset_failures", "Runtime assets that could not be had, by reason "
                             "(missing, filter, fetch, sha512, unpack)", ["asset", "reason"], registry=registry),
        )  # fmt: skip


@dataclass(slots=True, frozen=True)
class RuntimeAsset:
    """An installed asset: its directory, whose ``bin``, ``lib`` and ``include`` a command gets."""

    name: str
    path: Path


def asset_environment(base: Mapping[str, str], installed: Sequence[RuntimeAsset]) -> dict[str, str]:
    """``base`` with each asset's ``bin`` first on ``PATH``, ``lib`` on ``LD_LIBRARY_PATH`` and
    ``include`` on ``CPATH``, in the order the assets are named (Sensu Go's ``RuntimeAssetSet.Env``)."""
    env = dict(base)
    if not installed:
        return env
    for variable, sub in (("PATH", "bin"), ("LD_LIBRARY_PATH", "lib"), ("CPATH", "include")):
        paths = [str(asset.path / sub) for asset in installed]
        rest = env.get(variable, os.defpath if variable == "PATH" else "")
        env[variable] = os.pathsep.join([*paths, rest] if rest else paths)
    return env


class AssetCache:
    """Installs assets for the host whose entity ``entity()`` returns (its JSON)."""

    def __init__(
        self,
        directory: Path | None,
        entity: Callable[[], Mapping[str, Any]],
        metrics: AssetMetrics,
        *,
        fetch_timeout: float = FETCH_TIMEOUT,
        max_archive_bytes: int = MAX_ARCHIVE_BYTES,
        max_unpacked_bytes: int = MAX_UNPACKED_BYTES,
    ) -> None:
        self._directory = directory
        self._entity = entity
        self.metrics = metrics
        self.fetch_timeout = fetch_timeout
        self.max_archive_bytes = max_archive_bytes
        self.max_unpacked_bytes = max_unpacked_bytes
        self._locks: dict[str, trio.Lock] = {}
        self._reported: set[str] = set()

    @property
    def directory(self) -> Path:
        """The cache directory (a temporary one when the daemon keeps no data directory)."""
        if self._directory is None:
            self._directory = Path(tempfile.mkdtemp(prefix="pipeline-assets-"))
        return self._directory

    async def environment(self, base: Mapping[str, str], names: Sequence[str], lookup: Lookup) -> dict[str, str]:
        """``base`` with the assets ``names`` names on its paths, installing them first; raises
        AssetError naming the first asset that cannot be had."""
        return asset_environment(base, await self.installed(names, lookup))

    async def installed(self, names: Sequence[str], lookup: Lookup) -> list[RuntimeAsset]:
        """The assets ``names`` names, installed (each once, in order; those with no build for
        this host left out); raises AssetError naming the first that cannot be had."""
        installed = []
        for name in dict.fromkeys(names):
            asset = lookup(name)
            if asset is None:
                raise self._failed(AssetError(name, "missing", "no Asset of that name"))
            runtime = await self.get(asset)
            if runtime is not None:
                installed.append(runtime)
        return installed

    async def get(self, asset: Asset) -> RuntimeAsset | None:
        """The installed asset (fetched first if need be); None when no build applies to this host."""
        build = self._select(asset)
        if build is None:
            return None
        sha = build.sha512.lower()
        target = self.directory / sha
        if not target.is_dir():
            lock = self._locks.setdefault(sha, trio.Lock())
            async with lock:
                if not target.is_dir():  # another run may have installed it while this one waited
                    try:
                        await self._install(asset.name, build, target)
                    except AssetError as exc:
                        raise self._failed(exc) from None
        self._reported = {key for key in self._reported if not key.startswith(f"{asset.name}\0")}
        return RuntimeAsset(asset.name, target)

    def _select(self, asset: Asset) -> AssetBuild | None:
        entity = self._entity()
        for build in asset.candidates():
            try:
                if matches(build.filters, entity):
                    return build
            except AssetFilterError as exc:
                raise self._failed(AssetError(asset.name, "filter", f"filter not evaluated: {exc}")) from None
        return None

    def _failed(self, error: AssetError) -> AssetError:
        """Count every failure; log each distinct one once until the asset installs."""
        self.metrics.failures.labels(error.asset, error.reason).inc()
        key = f"{error.asset}\0{error.detail}"
        if key not in self._reported:
            self._reported.add(key)
            log.error("runtime asset not available", asset=error.asset, reason=error.reason, error=error.detail)
        return error

    async def _install(self, name: str, build: AssetBuild, target: Path) -> None:
        try:
            await self._install_into(name, build, target)
        except OSError as exc:  # the cache's disk (full, read-only): the asset cannot be had either
            raise AssetError(name, "cache", f"cache {self.directory}: {exc.strerror or exc}") from None
        self.metrics.installed.labels(name).inc()
        log.info("runtime asset installed", asset=name, url=_where(build.url), path=str(target))

    async def _install_into(self, name: str, build: AssetBuild, target: Path) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        work = Path(await trio.to_thread.run_sync(lambda: tempfile.mkdtemp(prefix=".part-", dir=self.directory)))
        try:
            archive = work / "archive"
            digest = await self._fetch(name, build, archive)
            if digest != build.sha512.lower():
                raise AssetError(name, "sha512", f"sha512 mismatch: expected {build.sha512[:16].lower()}..., "
                                                 f"got {digest[:16]}... ({_where(build.url)})")  # fmt: skip
            unpacked = work / "unpacked"
            try:
                await trio.to_thread.run_sync(unpack, archive, unpacked, self.max_unpacked_bytes)
            except UnpackError as exc:
                raise AssetError(name, "unpack", f"cannot unpack {_where(build.url)}: {exc}") from None
            try:
                await trio.to_thread.run_sync(os.rename, unpacked, target)
            except OSError:
                if not await trio.to_thread.run_sync(target.is_dir):  # else another process installed it first
                    raise
        finally:
            await trio.to_thread.run_sync(lambda: shutil.rmtree(work, ignore_errors=True))

    async def _fetch(self, name: str, build: AssetBuild, archive: Path) -> str:
        """Write the archive to ``archive``; its sha512 (hex)."""
        path = local_path(build.url)
        if path is not None:
            try:
                return await trio.to_thread.run_sync(_copy_hashing, Path(path), archive, self.max_archive_bytes)
            except OSError as exc:
                raise AssetError(name, "fetch", f"cannot read {path}: {exc.strerror or exc}") from None
            except ValueError as exc:
                raise AssetError(name, "fetch", f"{path}: {exc}") from None
        try:
            with trio.fail_after(self.fetch_timeout):
                return await self._download(name, build, archive)
        except trio.TooSlowError:
            raise AssetError(name, "fetch", f"fetching {_where(build.url)}: no answer within "
                                            f"{self.fetch_timeout:g} s") from None  # fmt: skip

    async def _download(self, name: str, build: AssetBuild, archive: Path) -> str:
        digest, size = hashlib.sha512(), 0
        where = _where(build.url)
        try:
            async with (
                httpx.AsyncClient(follow_redirects=True, timeout=self.fetch_timeout) as client,
                client.stream("GET", build.url, headers=build.headers) as response,
            ):
                if response.status_code != 200:
                    raise AssetError(name, "fetch", f"fetching {where}: HTTP {response.status_code}")
                async with await trio.open_file(archive, "wb") as file:
                    async for chunk in response.aiter_bytes(CHUNK):
                        size += len(chunk)
                        if size > self.max_archive_bytes:
                            raise AssetError(name, "fetch", f"fetching {where}: larger than "
                                                            f"{self.max_archive_bytes} bytes")  # fmt: skip
                        digest.update(chunk)
                        await file.write(chunk)
        except httpx.HTTPError as exc:
            raise AssetError(name, "fetch", f"fetching {where}: {type(exc).__name__}: {exc}") from None
        return digest.hexdigest()


def _where(url: str) -> str:
    """The URL as said in an output or a log: no user, password or query (they may hold a token)."""
    if local_path(url) is not None:
        return url
    parts = httpx.URL(url)
    return str(parts.copy_with(userinfo=b"", query=None, fragment=None))


def _copy_hashing(source: Path, destination: Path, limit: int) -> str:
    digest, size = hashlib.sha512(), 0
    with source.open("rb") as reading, destination.open("wb") as writing:
        while chunk := reading.read(CHUNK):
            size += len(chunk)
            if size > limit:
                raise ValueError(f"larger than {limit} bytes")
            digest.update(chunk)
            writing.write(chunk)
    return digest.hexdigest()
