"""The map of a model object as it is packed into msgpack (:func:`encode_to_pack`): the events
the agent spools and sends and the store keeps.

It is :func:`~pipeline.model.codec.encode`'s map less the fields that hold their default,
sharing the object's lists and maps of plain values rather than copying them (the map is packed
at once and dropped: nothing can change the object through it). :func:`~pipeline.model.codec.decode`
makes the same object again: a field not in the map is given its default. A check event's map
had 32 check fields where a result sets 5 to 10: left out, its bytes were two thirds, and their
packing, unpacking and decoding cheaper (issue 19). The records in a list are kept whole, so
that a list of records left at their defaults keeps its size against the maximum event size
(``[{}] * 40_000`` as metric points is 40,000 whole points).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from pipeline.model.codec import field_specs
from pipeline.model.codec_compiled import EMPTY, compile_encoder

Encoder = Callable[[Any], dict[str, Any]]


def _family(
    compile_for: Callable[[type, Encoder, Callable[[type], Encoder]], Encoder],
) -> tuple[Encoder, Callable[[type], Encoder]]:
    """An encoding of every model object and its class's encoder, each class's compiled on first
    use by ``compile_for(cls, encode, encoder_of)`` (the family's own two, for the records inside)."""
    compiled: dict[type, Encoder] = {}

    def encoder_of(cls: type) -> Encoder:
        encoder = compiled.get(cls)
        if encoder is None:
            encoder = compiled[cls] = compile_for(cls, encode, encoder_of)
        return encoder

    def encode(obj: Any) -> dict[str, Any]:
        encoder = compiled.get(type(obj))
        if encoder is None:
            encoder = encoder_of(type(obj))
        return encoder(obj)

    return encode, encoder_of


#: The whole map, sharing lists and maps of plain values: the records in a list.
_encode_shared, _sharing_encoder_of = _family(
    lambda cls, encode, encoder_of: compile_encoder(field_specs(cls), encode, encoder_of, field_specs, share=True)
)


def _defaults(cls: type) -> dict[str, Any]:
    """The fields left out of the map when they hold their default: a plain value, or an empty
    list or map made by the field's factory (a record made by its factory is kept: its own map
    leaves out its defaults)."""
    found: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.default is None or isinstance(f.default, (bool, int, float, str)):
            found[f.name] = f.default
        elif f.default_factory in (list, dict):
            found[f.name] = EMPTY
    return found


def _compile_packing(cls: type, encode: Encoder, encoder_of: Callable[[type], Encoder]) -> Encoder:
    return compile_encoder(field_specs(cls), encode, encoder_of, field_specs, share=True, defaults=_defaults(cls),
                           items=(_encode_shared, _sharing_encoder_of))  # fmt: skip


encode_to_pack, _packing_encoder_of = _family(_compile_packing)
encode_to_pack.__doc__ = """The map of ``obj`` to pack (see the module)."""
