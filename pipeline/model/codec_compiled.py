"""Straight-line decoders and encoders for the model's classes, generated once per class.

The generic codec (:mod:`pipeline.model.codec`) walks a table of closures per field and builds
a dotted path for every key, in case an error must name it: about 40 us to decode an agent's
check event and 20 us to encode one, the largest part of the backend's time per check result.
What is generated here does the same checks inline, for the values every well-formed event
holds (exact ``str``, ``int`` in range, finite ``float``, ``bool``, lists of strings, maps of
strings, nested records), and gives up on anything else by raising :class:`Slow`: the caller
then decodes with the generic codec, which returns the same object or raises the error naming
the field. So the fast path only ever returns what the generic one would; it never produces an
error of its own.

Sans I/O; the generic codec hands each class's field table in (no import of it from here).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol


class Slow(Exception):
    """The value needs the generic decoder (an error to name, or a case not inlined)."""


class FieldSpec(Protocol):
    @property
    def key(self) -> str: ...
    @property
    def attr(self) -> str: ...
    @property
    def omitempty(self) -> bool: ...
    @property
    def decoder(self) -> Callable[[Any, str], Any]: ...
    @property
    def encoder(self) -> Callable[[Any], Any] | None: ...
    @property
    def tp(self) -> Any: ...
    @property
    def bounds(self) -> tuple[int, int] | None: ...


#: Integers converted to a float field inline (beyond, the generic codec says why it cannot).
_FLOAT_INT = 2**53


def _record(tp: Any) -> type | None:
    return tp if isinstance(tp, type) and dataclasses.is_dataclass(tp) else None


def _optional_of(tp: Any) -> Any:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return None


def _decode_lines(spec: FieldSpec, n: int, records: dict[str, Any], decoder_of: DecoderOf) -> list[str]:
    """The statements that check ``v`` (present in the map) and set ``kw[attr]``."""

    def record(cls: type, value: str) -> str:  # a nested record's decoder called directly when it can be
        records[f"_c{n}"] = cls
        own = decoder_of(cls)
        if own is None:
            return f"_fast(_c{n}, {value})"
        records[f"_r{n}"] = own
        return f"_r{n}({value})"

    tp, origin, args = spec.tp, typing.get_origin(spec.tp), typing.get_args(spec.tp)
    if tp is str:
        body = ["if type(v) is not str:", "    if v is not None: raise Slow", "    v = ''"]
    elif tp is int and spec.bounds is not None:
        low, high = spec.bounds
        body = [f"if type(v) is not int or not {low} <= v <= {high}:", "    if v is not None: raise Slow", "    v = 0"]
    elif tp is float:
        body = ["if type(v) is not float:",
                "    if v is None: v = 0.0",
                f"    elif type(v) is int and -{_FLOAT_INT} <= v <= {_FLOAT_INT}: v = float(v)",
                "    else: raise Slow",
                "elif v - v != 0.0: raise Slow"]  # fmt: skip
    elif tp is bool:
        body = ["if v is not True and v is not False:", "    if v is not None: raise Slow", "    v = False"]
    elif origin is list and args[0] is str:
        body = ["if type(v) is list:",
                "    for x in v:",
                "        if type(x) is not str: raise Slow",
                "    v = list(v)",
                "elif v is None: v = []",
                "else: raise Slow"]  # fmt: skip
    elif origin is dict and args == (str, str):
        body = ["if type(v) is dict:",
                "    for k, x in v.items():",
                "        if type(k) is not str or type(x) is not str: raise Slow",
                "    v = dict(v)",
                "elif v is None: v = {}",
                "else: raise Slow"]  # fmt: skip
    elif (cls := _record(tp)) is not None:
        body = [f"v = _c{n}() if v is None else {record(cls, 'v')}"]
    elif (cls := _record(_optional_of(tp))) is not None:
        body = [f"if v is not None: v = {record(cls, 'v')}"]
    elif origin is list and (cls := _record(args[0])) is not None:
        body = ["if type(v) is list:",
                f"    v = [{record(cls, 'x')} for x in v]",
                "elif v is None: v = []",
                "else: raise Slow"]  # fmt: skip
    elif origin is list:  # of maps (check_hooks): empty, nearly always
        body = ["if type(v) is not list or v:", f"    v = _d{n}(v, {spec.key!r})", "else: v = []"]
    else:  # the generic decoder of the field: it raises ValidationError, which sends the caller to the slow path
        body = [f"v = _d{n}(v, {spec.key!r})"]
    # ``in`` then an item, not ``d.get``: most keys are absent, and a membership test costs a third
    # of a method call
    return [f"if {spec.key!r} in d:", f"    v = d[{spec.key!r}]", *("    " + line for line in body)]


def plain_slotted(cls: type) -> bool:
    """A slotted dataclass whose __init__ only sets its fields (not frozen, no __post_init__)."""
    params = getattr(cls, "__dataclass_params__", None)
    return hasattr(cls, "__slots__") and not hasattr(cls, "__post_init__") and not getattr(params, "frozen", True)


def _literal(value: Any) -> bool:
    """Whether ``repr(value)`` in the generated code gives back the same value, of the same type."""
    if value is None or type(value) in (bool, int, str):
        return True
    return type(value) is float and math.isfinite(value)


def _default_lines(f: dataclasses.Field[Any], n: int, namespace: dict[str, Any]) -> list[str]:
    """The field's value when its key is absent, as the dataclass's __init__ gives it."""
    if f.default is not dataclasses.MISSING:
        if _literal(f.default):  # a constant of the code: no lookup of a global per absent key
            return ["else:", f"    o.{f.name} = {f.default!r}"]
        namespace[f"_v{n}"] = f.default
        return ["else:", f"    o.{f.name} = _v{n}"]
    if f.default_factory in (list, dict):  # a display, not a call
        return ["else:", f"    o.{f.name} = {'[]' if f.default_factory is list else '{}'}"]
    if f.default_factory is not dataclasses.MISSING:
        namespace[f"_f{n}"] = f.default_factory
        return ["else:", f"    o.{f.name} = _f{n}()"]
    return ["else: raise Slow"]  # a required field: the generic decoder says it is missing


#: A record class's generated decoder (compiled when first asked for), or None while it is being
#: compiled (a class nested in itself): then the record is decoded through ``fast``.
DecoderOf = Callable[[type], Callable[[Any], Any] | None]


def compile_decoder(
    cls: type, specs: Sequence[FieldSpec], fast: Callable[[type, Any], Any], decoder_of: DecoderOf = lambda c: None
) -> Callable[[Any], Any]:
    """``cls`` from its map, or :class:`Slow`, ``ValidationError`` or ``TypeError`` when the generic
    decoder must look at it. ``fast(record_class, value)`` decodes a nested record the same way;
    ``decoder_of`` gives the nested classes' own decoders, called directly (no lookup by class,
    one call less per record: 21 for a check's history)."""
    records: dict[str, Any] = {}
    lines = ["def decode(d):", "    if type(d) is not dict or not d.keys() <= _keys: raise Slow"]
    namespace: dict[str, Any] = {"Slow": Slow, "_cls": cls, "_fast": fast, "_new": object.__new__,
                                 "_keys": frozenset(spec.key for spec in specs)}  # fmt: skip
    # A slotted class is built without its __init__ (a keyword call with every field is a third
    # of the cost): each field is set as __init__ would set it, its default when absent.
    direct = plain_slotted(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    lines.append("    o = _new(_cls)" if direct else "    kw = {}")
    for n, spec in enumerate(specs):
        namespace[f"_d{n}"] = spec.decoder
        lines.extend("    " + line for line in _decode_lines(spec, n, records, decoder_of))
        lines.append(f"        o.{spec.attr} = v" if direct else f"        kw[{spec.attr!r}] = v")
        if direct:
            lines.extend("    " + line for line in _default_lines(fields[spec.attr], n, namespace))
    lines.append("    return o" if direct else "    return _cls(**kw)")
    namespace.update(records)
    exec("\n".join(lines), namespace)  # the source is built above from the class's own field table
    decoder: Callable[[Any], Any] = namespace["decode"]
    return decoder


def compile_encoder(
    specs: Sequence[FieldSpec],
    encode_record: Callable[[Any], dict[str, Any]],
    encoder_of: Callable[[type], Callable[[Any], dict[str, Any]]] | None = None,
    specs_of: Callable[[type], Sequence[FieldSpec]] | None = None,
    *,
    share: bool = False,
    defaults: Mapping[str, Any] | None = None,
    items: tuple[Callable[[Any], dict[str, Any]], Callable[[type], Callable[[Any], dict[str, Any]]]] | None = None,
) -> Callable[[Any], dict[str, Any]]:
    """The map of an object of the class ``specs`` describe, as the generic ``encode`` builds it
    (``encode_record``: the map of a record inside it, found by its type).

    With ``encoder_of`` (a record class's own generated encoder) and ``specs_of`` (its fields), a
    record of the field's own class (not a subclass) is encoded by that class's encoder called
    directly, not found by its type in a table; one of plain fields only (a check's history) by a
    map display inline, with no call per entry. The map itself is one display of the fields up to
    the first that may be left out or needs converting, then one store per field, in the table's
    order (the order of the map's keys).

    ``share``: lists and maps of plain values are put in the map as they are, not copied: for a
    map that is packed at once and dropped (nothing can change the object through it).

    ``defaults``: fields left out of the map when they hold their default, by attribute name:
    the default value itself, or :data:`EMPTY` for a field whose default is an empty list or map
    (a decoder gives a field that is not in the map its default, so the object comes back the same).
    ``items``: how the records in a list are encoded instead (``encode_record`` and ``encoder_of``
    for them), whole: a list of records left at their defaults keeps its size (``[{}] * 40_000``
    as metric points is 40,000 whole points, which the maximum event size must see)."""
    namespace: dict[str, Any] = {"_encode": encode_record, "_encode_item": (items or (encode_record,))[0]}
    first: list[str] = []  # the map display's entries
    rest: list[str] = []
    for n, spec in enumerate(specs):
        value = _encoded_value(spec, n, namespace, items[1] if items else encoder_of, encoder_of, specs_of, share)
        default = _KEPT if defaults is None else defaults.get(spec.attr, _KEPT)
        if spec.omitempty or default is EMPTY:
            rest.extend([f"v = o.{spec.attr}", f"if v: out[{spec.key!r}] = {value}"])
        elif default is not _KEPT:
            namespace[f"_f{n}"] = default
            kept = "v is not None" if default is None else f"v != _f{n}"
            rest.extend([f"v = o.{spec.attr}", f"if {kept}: out[{spec.key!r}] = {value}"])
        elif not rest and value == "v":
            first.append(f"{spec.key!r}: o.{spec.attr}")
        elif value == "v":
            rest.append(f"out[{spec.key!r}] = o.{spec.attr}")
        else:
            rest.extend([f"v = o.{spec.attr}", f"out[{spec.key!r}] = {value}"])
    lines = ["def encode(o):", f"    out = {{{', '.join(first)}}}", *("    " + line for line in rest), "    return out"]
    exec("\n".join(lines), namespace)  # the source is built above from the class's own field table
    encoder: Callable[[Any], dict[str, Any]] = namespace["encode"]
    return encoder


#: See :func:`compile_encoder`'s ``defaults``: a field whose default is an empty list or map.
EMPTY = object()
_KEPT = object()


def _plain_map(specs: Sequence[FieldSpec], var: str) -> str | None:
    """A map display of a record's fields (``specs``, the record named ``var``) when each encodes
    as itself and none may be left out."""
    if any(spec.omitempty or spec.encoder is not None for spec in specs):
        return None
    return "{" + ", ".join(f"{spec.key!r}: {var}.{spec.attr}" for spec in specs) + "}"


def _holds_record(tp: Any) -> bool:
    """Whether a value of type ``tp`` may hold a model record (whose encoding is a map)."""
    return _record(tp) is not None or any(_holds_record(arg) for arg in typing.get_args(tp))


def _encoded_value(
    spec: FieldSpec,
    n: int,
    namespace: dict[str, Any],
    item_encoder_of: Callable[[type], Callable[[Any], dict[str, Any]]] | None,
    encoder_of: Callable[[type], Callable[[Any], dict[str, Any]]] | None,
    specs_of: Callable[[type], Sequence[FieldSpec]] | None,
    share: bool,
) -> str:
    """The expression of the field's encoded value ``v`` (``"v"``: the value as it is)."""
    origin, args = typing.get_origin(spec.tp), typing.get_args(spec.tp)
    item = _record(args[0]) if origin is list and args else None
    record = _record(spec.tp) or _record(_optional_of(spec.tp))
    if share and not _holds_record(spec.tp):
        return "v"  # its encoder would only copy it
    if spec.encoder is list:
        return "None if v is None else list(v)"
    if item is not None:  # a history: no call per entry but the record's own
        if item_encoder_of is None or specs_of is None:
            return "None if v is None else [_encode_item(x) for x in v]"
        namespace[f"_c{n}"], namespace[f"_r{n}"] = item, item_encoder_of(item)
        inline = _plain_map(specs_of(item), "x") or f"_r{n}(x)"
        return f"None if v is None else [{inline} if type(x) is _c{n} else _encode_item(x) for x in v]"
    if record is not None:
        if encoder_of is None:
            return "None if v is None else _encode(v)"
        namespace[f"_c{n}"], namespace[f"_r{n}"] = record, encoder_of(record)
        return f"None if v is None else _r{n}(v) if type(v) is _c{n} else _encode(v)"
    if spec.encoder is not None:
        namespace[f"_e{n}"] = spec.encoder
        return f"None if v is None else _e{n}(v)"
    return "v"


def compile_copier(cls: type) -> Callable[[Any], Any]:
    """A shallow copy of a slotted dataclass ``cls`` object: every field shared, as
    ``dataclasses.replace`` with no changes makes it, without the keyword call to ``__init__``."""
    names = [f.name for f in dataclasses.fields(cls)]
    lines = ["def copy(o):", "    n = _new(_cls)", *(f"    n.{name} = o.{name}" for name in names), "    return n"]
    namespace: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    exec("\n".join(lines), namespace)  # the source is built above from the class's own fields
    copier: Callable[[Any], Any] = namespace["copy"]
    return copier
