"""The agent's executor with runtime assets: checks and hooks find the asset's programs."""

from __future__ import annotations

from pathlib import Path

from pipeline.agent.executor import CheckExecutor
from pipeline.model import CheckConfig, Entity, ObjectMeta
from pipeline.model.asset import Asset
from pipeline.model.check import HookConfig
from tests.asset_support import sha512, tarball

AGENT = Entity(entity_class="agent", metadata=ObjectMeta(name="web1", namespace="default"))


def executor(tmp_path: Path) -> CheckExecutor:
    data = tarball({"bin/why": b"#!/bin/sh\necho diagnosed by the asset\n", "lib/libx.so": b""})
    (tmp_path / "tools.tgz").write_bytes(data)
    runner = CheckExecutor(AGENT, {"PATH": "/usr/bin:/bin"}, wall_clock=lambda: 1_800_000_000)
    runner.assets = {"tools": Asset(metadata=ObjectMeta(name="tools"), url=str(tmp_path / "tools.tgz"),
                                    sha512=sha512(data))}  # fmt: skip
    return runner


async def test_a_hook_runs_the_program_of_its_runtime_assets(tmp_path: Path) -> None:
    runner = executor(tmp_path)
    runner.hooks = {"why": HookConfig(metadata=ObjectMeta(name="why"), command="why", runtime_assets=["tools"])}
    config = CheckConfig(metadata=ObjectMeta(name="c", namespace="default"), command="exit 1", interval=10,
                         check_hooks=[{"non-zero": ["why"]}])  # fmt: skip
    event = await runner.execute(config, issued=0)
    assert [(h.status, h.output) for h in event.check.hooks] == [(0, "diagnosed by the asset\n")]  # type: ignore[union-attr]


async def test_a_hook_whose_asset_cannot_be_had_says_so(tmp_path: Path) -> None:
    runner = executor(tmp_path)
    runner.hooks = {"why": HookConfig(metadata=ObjectMeta(name="why"), command="why", runtime_assets=["gone"])}
    config = CheckConfig(metadata=ObjectMeta(name="c", namespace="default"), command="exit 1", interval=10,
                         check_hooks=[{"non-zero": ["why"]}])  # fmt: skip
    event = await runner.execute(config, issued=0)
    (hook,) = event.check.hooks  # type: ignore[union-attr]
    assert (hook.status, hook.output, hook.command) == (
        3,
        'error getting assets for hook: asset "gone": no Asset of that name\n',
        "why",
    )


async def test_a_check_gets_bin_on_path_and_lib_on_ld_library_path(tmp_path: Path) -> None:
    runner = executor(tmp_path)
    config = CheckConfig(metadata=ObjectMeta(name="c", namespace="default"), interval=10, runtime_assets=["tools"],
                         command='why && echo "$LD_LIBRARY_PATH" && echo "$CPATH"')  # fmt: skip
    event = await runner.execute(config, issued=0)
    root = runner.asset_cache.directory / next(iter(runner.assets.values())).sha512
    assert event.check.output == f"diagnosed by the asset\n{root}/lib\n{root}/include\n"  # type: ignore[union-attr]
