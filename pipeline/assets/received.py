"""Assets as they arrive from the backend with the checks, checked at the edge."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pipeline.core.asset_filters import AssetFilterError, compile_asset_filter
from pipeline.errors import ValidationError
from pipeline.logs import get_logger
from pipeline.model.asset import Asset
from pipeline.model.codec import decode

log = get_logger("assets")


def received_assets(raw: Sequence[dict[str, Any]]) -> dict[str, Asset]:
    """The assets of a ``checks`` or ``execute`` message by name, each validated as the backend's
    files are; an invalid one is logged and left out (a check naming it then says there is no
    such asset). That they are a list of maps is checked with the message (pipeline.wire.messages)."""
    assets = {}
    for i, item in enumerate(raw):
        try:
            asset = decode(Asset, item, f"assets[{i}]")
            asset.validate(f"assets[{i}]")
            for build in asset.candidates():
                for text in build.filters:
                    compile_asset_filter(text)
        except (ValidationError, AssetFilterError) as exc:
            log.error("invalid asset from backend", error=exc)
            continue
        assets[asset.metadata.name] = asset
    return assets
