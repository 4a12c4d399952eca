"""The JavaScript of an installed asset, for filters and javascript mutators: every ``.js`` file
under its ``lib`` directory, as Sensu Go's ``RuntimeAssetSet.Scripts`` walks it (here in the
order of their paths, where Sensu Go's map gives none)."""

from __future__ import annotations

from pipeline.assets.cache import RuntimeAsset
from pipeline.core.js import Libraries, Library
from pipeline.errors import AssetError

#: JavaScript read from one asset, at most (every context that loads it holds it)
MAX_LIBRARY_BYTES = 8 << 20


def read_libraries(asset: RuntimeAsset) -> Libraries:
    """The ``lib/**/*.js`` files of ``asset`` (blocking I/O: call from a thread); AssetError when
    they are too large or not text."""
    lib = asset.path / "lib"
    if not lib.is_dir():
        return ()
    libraries = []
    total = 0
    for path in sorted(p for p in lib.rglob("*.js") if p.is_file()):
        name = f"{asset.name}/{path.relative_to(asset.path)}"
        data = path.read_bytes()
        total += len(data)
        if total > MAX_LIBRARY_BYTES:
            raise AssetError(asset.name, "libraries", f"more than {MAX_LIBRARY_BYTES} bytes of JavaScript in lib/")
        try:
            libraries.append(Library(name, data.decode()))
        except UnicodeDecodeError:
            raise AssetError(asset.name, "libraries", f"{name} is not UTF-8 text") from None
    return tuple(libraries)
