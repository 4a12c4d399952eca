"""Runtime assets: archives of programs fetched, verified and unpacked for the commands that
name them (:mod:`pipeline.assets.cache`)."""

from pipeline.assets.cache import AssetCache, AssetMetrics, RuntimeAsset, asset_environment

__all__ = ["AssetCache", "AssetMetrics", "RuntimeAsset", "asset_environment"]
