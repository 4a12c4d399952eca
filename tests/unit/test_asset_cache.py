"""The asset cache: fetch once, verify before unpacking, unpack safely, choose the build."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest
import trio
from prometheus_client import CollectorRegistry

from pipeline.assets import AssetCache, AssetMetrics, RuntimeAsset, asset_environment
from pipeline.assets.unpack import UnpackError, unpack
from pipeline.errors import AssetError
from pipeline.model import ObjectMeta
from pipeline.model.asset import Asset, AssetBuild
from tests.asset_support import asset_server, free_port_url, sha512, tarball

LINUX: dict[str, Any] = {"metadata": {"name": "web1"}, "system": {"os": "linux", "arch": "amd64"}}


def make_cache(tmp_path: Path, **kwargs: Any) -> tuple[AssetCache, CollectorRegistry]:
    registry = CollectorRegistry()
    return AssetCache(tmp_path / "cache", lambda: LINUX, AssetMetrics.create(registry, "t"), **kwargs), registry


def asset(url: str, sha: str, name: str = "my-asset", **kwargs: Any) -> Asset:
    return Asset(metadata=ObjectMeta(name=name, namespace="default"), url=url, sha512=sha, **kwargs)


async def test_an_asset_is_fetched_once_and_unpacked_under_its_sha512(tmp_path: Path) -> None:
    data = tarball()
    cache, registry = make_cache(tmp_path)
    with asset_server({"/a.tgz": data}) as server:
        definition = asset(f"{server.url}/a.tgz", sha512(data), headers={"Authorization": "Bearer s3cret"})
        async with trio.open_nursery() as nursery:  # runs wanting it at once wait for the one fetch
            for _ in range(5):
                nursery.start_soon(cache.get, definition)
        installed = await cache.get(definition)
    assert installed == RuntimeAsset("my-asset", tmp_path / "cache" / sha512(data))
    assert (installed.path / "bin" / "mycheck").read_bytes().startswith(b"#!/bin/sh")
    assert server.count("/a.tgz") == 1
    assert server.requests[0][1]["Authorization"] == "Bearer s3cret"
    assert registry.get_sample_value("t_assets_installed_total", {"asset": "my-asset"}) == 1
    again, _ = make_cache(tmp_path)  # a restarted daemon finds it installed
    assert await again.get(definition) == installed


async def test_a_bad_checksum_is_refused_before_anything_is_unpacked(tmp_path: Path) -> None:
    data = tarball()
    cache, registry = make_cache(tmp_path)
    with asset_server({"/a.tgz": data}) as server, pytest.raises(AssetError) as caught:
        await cache.get(asset(f"{server.url}/a.tgz", "ab" * 64))
    assert str(caught.value).startswith(f'asset "my-asset": sha512 mismatch: expected abababababababab..., '
                                        f"got {sha512(data)[:16]}...")  # fmt: skip
    assert [p.name for p in (tmp_path / "cache").iterdir()] == []
    assert registry.get_sample_value("t_asset_failures_total", {"asset": "my-asset", "reason": "sha512"}) == 1


async def test_not_found_and_nothing_listening_name_the_asset(tmp_path: Path) -> None:
    cache, registry = make_cache(tmp_path)
    with asset_server({}) as server, pytest.raises(AssetError) as missing:
        await cache.get(asset(f"{server.url}/gone.tgz?token=x", "ab" * 64))
    assert str(missing.value) == f'asset "my-asset": fetching {server.url}/gone.tgz: HTTP 404'
    with pytest.raises(AssetError) as down:
        await cache.get(asset(f"{free_port_url()}/a.tgz", "ab" * 64, name="other"))
    assert str(down.value).startswith('asset "other": fetching http://127.0.0.1:')
    assert "ConnectError" in str(down.value)
    assert registry.get_sample_value("t_asset_failures_total", {"asset": "other", "reason": "fetch"}) == 1


async def test_a_local_archive_and_a_missing_one(tmp_path: Path) -> None:
    data = tarball(compressed=False)
    (tmp_path / "a.tar").write_bytes(data)
    cache, _ = make_cache(tmp_path)
    installed = await cache.get(asset(f"file://{tmp_path / 'a.tar'}", sha512(data)))
    assert installed is not None
    assert (installed.path / "bin" / "mycheck").exists()
    with pytest.raises(AssetError, match=r"cannot read /nonexistent/a.tar: No such file"):
        await cache.get(asset("/nonexistent/a.tar", "cd" * 64))


async def test_the_first_build_whose_filters_match_is_used(tmp_path: Path) -> None:
    arm, amd = tarball({"bin/which": b"arm"}), tarball({"bin/which": b"amd"})
    (tmp_path / "arm.tgz").write_bytes(arm)
    (tmp_path / "amd.tgz").write_bytes(amd)
    builds = [AssetBuild(url=str(tmp_path / "arm.tgz"), sha512=sha512(arm), filters=["entity.system.arch == 'arm64'"]),
              AssetBuild(url=str(tmp_path / "amd.tgz"), sha512=sha512(amd),
                         filters=["entity.system.os == 'linux'", "entity.system.arch == 'amd64'"])]  # fmt: skip
    cache, _ = make_cache(tmp_path)
    installed = await cache.get(Asset(metadata=ObjectMeta(name="multi"), builds=builds))
    assert installed is not None
    assert (installed.path / "bin" / "which").read_bytes() == b"amd"
    windows_only = asset(str(tmp_path / "arm.tgz"), sha512(arm), filters=["entity.system.os == 'windows'"])
    assert await cache.get(windows_only) is None  # not for this host: not installed, as in Sensu Go


async def test_environment_puts_bin_lib_and_include_first(tmp_path: Path) -> None:
    one, two = RuntimeAsset("one", Path("/c/1")), RuntimeAsset("two", Path("/c/2"))
    env = asset_environment({"PATH": "/usr/bin", "LD_LIBRARY_PATH": "/opt/lib"}, [one, two])
    assert env == {"PATH": "/c/1/bin:/c/2/bin:/usr/bin", "LD_LIBRARY_PATH": "/c/1/lib:/c/2/lib:/opt/lib",
                   "CPATH": "/c/1/include:/c/2/include"}  # fmt: skip
    cache, _ = make_cache(tmp_path)
    with pytest.raises(AssetError, match='asset "nope": no Asset of that name'):
        await cache.environment({}, ["nope"], lambda name: None)


def evil_tar(member: tarfile.TarInfo, data: bytes = b"x") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        member.size = len(data) if member.isfile() else 0
        tar.addfile(member, io.BytesIO(data) if member.isfile() else None)
    return buffer.getvalue()


def link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


@pytest.mark.parametrize(
    "archive",
    [
        evil_tar(tarfile.TarInfo("../escaped")),
        evil_tar(link("bin/x", "/etc/passwd")),
        evil_tar(link("bin/x", "../../outside")),
        evil_tar(link("bin/x", "/etc/passwd", tarfile.LNKTYPE)),
        b"plain text, not an archive",
    ],
    ids=["dotdot", "absolute symlink", "symlink out", "hard link out", "not an archive"],
)
def test_archives_that_would_write_outside_are_refused(tmp_path: Path, archive: bytes) -> None:
    (tmp_path / "a").write_bytes(archive)
    with pytest.raises(UnpackError):
        unpack(tmp_path / "a", tmp_path / "out" / "target")
    assert not (tmp_path / "escaped").exists()
    assert not (tmp_path / "out" / "escaped").exists()


def test_an_absolute_member_lands_inside(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(evil_tar(tarfile.TarInfo("/escaped")))
    unpack(tmp_path / "a", tmp_path / "target")
    assert (tmp_path / "target" / "escaped").exists()


def test_zip_unpacks_with_its_executable_bit_and_refuses_traversal(tmp_path: Path) -> None:
    good, bad = io.BytesIO(), io.BytesIO()
    with zipfile.ZipFile(good, "w") as z:
        info = zipfile.ZipInfo("bin/tool")
        info.external_attr = 0o100755 << 16
        z.writestr(info, "#!/bin/sh\n")
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("../../escaped", "x")
    (tmp_path / "good.zip").write_bytes(good.getvalue())
    (tmp_path / "bad.zip").write_bytes(bad.getvalue())
    unpack(tmp_path / "good.zip", tmp_path / "g")
    assert (tmp_path / "g" / "bin" / "tool").stat().st_mode & 0o111
    with pytest.raises(UnpackError, match="outside the asset's directory"):
        unpack(tmp_path / "bad.zip", tmp_path / "b")


def test_an_archive_unpacking_past_the_limit_is_refused(tmp_path: Path) -> None:
    (tmp_path / "big.tgz").write_bytes(tarball({"big": b"\0" * 100_000}))
    with pytest.raises(UnpackError, match="unpacks to 100000 bytes, more than 1000"):
        unpack(tmp_path / "big.tgz", tmp_path / "out", max_bytes=1000)
