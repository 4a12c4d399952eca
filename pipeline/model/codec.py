"""Declarative conversion between model dataclasses and Sensu Go v2 shaped dicts.

A model class is a slotted dataclass whose fields are declared with :func:`field`. The field
says whether Sensu Go always emits it or omits it when empty (gogo's ``omitempty``), so that
``encode(decode(cls, d)) == d`` for every dict Sensu Go itself would produce.

Decoding is strict: unknown keys, wrong types, integers outside the field's range and numbers
that are not finite raise :class:`ValidationError` naming the dotted path and the offending
value. ``null`` is read as the field's zero value, as Go does. Every integer field declares its
range (``bounds``), the Go type Sensu Go stores it as, so that nothing Sensu Go could not hold
reaches the store, the wire or a scheduler.
The per-class field table is built once and cached, so the hot path is a loop over closures.
"""

from __future__ import annotations

import dataclasses
import math
import reprlib
import threading
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from pipeline.errors import UnknownFieldError, ValidationError
from pipeline.model import strict_json
from pipeline.model.codec_compiled import Slow, compile_copier, compile_decoder, compile_encoder, plain_slotted

T = TypeVar("T")

#: A JSON value kept as it was given (for parts of the Sensu shape we carry but do not use).
JSON = Any

Decoder = Callable[[Any, str], Any]
Encoder = Callable[[Any], Any]
Bounds = tuple[int, int]

#: The ranges of the Go integer types Sensu Go declares its fields with (core/v2 ``*.proto``).
UINT32: Bounds = (0, 2**32 - 1)
INT32: Bounds = (-(2**31), 2**31 - 1)
INT64: Bounds = (-(2**63), 2**63 - 1)


def field(
    default: Any = dataclasses.MISSING,
    *,
    omitempty: bool = False,
    key: str | None = None,
    factory: Callable[[], Any] | None = None,
    bounds: Bounds | None = None,
) -> Any:
    """A model field. List and dict defaults, and ``factory``, give each instance a fresh value.
    ``bounds`` is the inclusive range of an integer field (required for integers)."""
    metadata = {"omitempty": omitempty, "key": key, "bounds": bounds}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    if default is dataclasses.MISSING:
        return dataclasses.field(metadata=metadata)
    if isinstance(default, (list, dict)):
        factory = type(default)
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


_SHORT = reprlib.Repr()
_SHORT.maxlevel = 3


def describe(value: Any) -> str:
    """A short rendering of an offending value for error messages (reprlib: a value nested
    thousands deep would make ``repr`` raise RecursionError)."""
    if isinstance(value, int) and not isinstance(value, bool):
        text = _int_text(value)
    else:
        text = _SHORT.repr(value) if isinstance(value, (list, dict, tuple, set)) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "list", dict: "mapping"}.get(
        type(value), type(value).__name__
    )


def _expected(what: str, value: Any, path: str) -> ValidationError:
    return ValidationError(path, f"expected {what}, got {_type_name(value)} {describe(value)}")


def _decode_str(value: Any, path: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _expected("string", value, path)
    return value


def _int_text(value: int) -> str:
    """``value`` in digits, unless it is too long to print (Python refuses over 4300 digits)."""
    return str(value) if value.bit_length() <= 256 else f"an integer of {value.bit_length()} bits"


def out_of_range(value: int, bounds: Bounds, path: str) -> ValidationError:
    low, high = bounds
    return ValidationError(path, f"{_int_text(value)} is out of range ({low}..{high})")


def _int_decoder(bounds: Bounds) -> Decoder:
    low, high = bounds

    def decode(value: Any, path: str) -> int:
        if value is None:
            return 0
        if isinstance(value, bool) or not isinstance(value, int):
            raise _expected("integer", value, path)
        if not low <= value <= high:
            raise out_of_range(value, bounds, path)
        return value

    return decode


def _decode_float(value: Any, path: str) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _expected("number", value, path)
    try:
        number = float(value)
    except OverflowError:  # an integer beyond a double's range
        raise ValidationError(path, f"{_int_text(int(value))} is out of range for a number") from None
    if not math.isfinite(number):
        raise ValidationError(path, f"expected a finite number, got {number!r}")
    return number


def _decode_bool(value: Any, path: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _expected("boolean", value, path)
    return value


#: How deep a JSON value carried as it is (``subdue``, a handler's ``options``) may nest.
MAX_JSON_DEPTH = strict_json.MAX_DEPTH


def _decode_any(value: Any, path: str) -> Any:
    """A JSON value kept as given, once it is known to be one that every later stage can take:
    string keys, integers in int64, finite floats, nesting bounded (walked without recursion)."""
    stack = [(value, path, 0)]
    while stack:
        item, at, depth = stack.pop()
        if item is None or isinstance(item, (bool, str)):
            continue
        if isinstance(item, int):
            if not INT64[0] <= item <= INT64[1]:
                raise out_of_range(item, INT64, at)
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise ValidationError(at, f"expected a finite number, got {item!r}")
        elif isinstance(item, (list, dict)):
            if depth >= MAX_JSON_DEPTH:
                raise ValidationError(at, f"nested deeper than {MAX_JSON_DEPTH} levels")
            stack.extend(_children(item, at, depth + 1))
        else:
            raise _expected("a JSON value", item, at)
    return value


def _children(item: list[Any] | dict[Any, Any], path: str, depth: int) -> list[tuple[Any, str, int]]:
    if isinstance(item, list):
        return [(v, f"{path}[{i}]", depth) for i, v in enumerate(item)]
    for key in item:
        if not isinstance(key, str):
            raise _expected("string key", key, path)
    return [(v, f"{path}.{k}" if path else k, depth) for k, v in item.items()]


def _list_decoder(item: Decoder) -> Decoder:
    def decode(value: Any, path: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise _expected("list", value, path)
        if item is _decode_str and all(type(v) is str for v in value):
            return list(value)  # the common case, without a call per item
        return [item(v, f"{path}[{i}]") for i, v in enumerate(value)]

    return decode


def _map_decoder(item: Decoder) -> Decoder:
    def decode(value: Any, path: str) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise _expected("mapping", value, path)
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise _expected("string key", k, path)
            out[k] = item(v, f"{path}.{k}")
        return out

    return decode


def _optional_decoder(inner: Decoder) -> Decoder:
    def decode(value: Any, path: str) -> Any:
        return None if value is None else inner(value, path)

    return decode


_SCALARS: dict[Any, Decoder] = {str: _decode_str, float: _decode_float, bool: _decode_bool}


def _decoder_for(tp: Any, bounds: Bounds | None = None) -> Decoder:
    if tp is int:
        if bounds is None:
            raise TypeError("an integer field needs bounds (the range of its Go type)")
        return _int_decoder(bounds)
    if tp in _SCALARS:
        return _SCALARS[tp]
    if tp is Any:
        return _decode_any
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is list:
        return _list_decoder(_decoder_for(args[0], bounds))
    if origin is dict:
        return _map_decoder(_decoder_for(args[1], bounds))
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        (inner,) = [a for a in args if a is not type(None)]
        return _optional_decoder(_decoder_for(inner, bounds))
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        cls: type[Any] = tp
        return lambda value, path: cls() if value is None else decode(cls, value, path)
    raise TypeError(f"codec cannot decode {tp!r}")


def _encoder_for(tp: Any) -> Encoder | None:
    """None means the value encodes as itself."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is list:
        item = _encoder_for(args[0])
        return list if item is None else (lambda v: [item(x) for x in v])
    if origin is dict:
        return lambda v: dict(v)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        (inner_tp,) = [a for a in args if a is not type(None)]
        inner = _encoder_for(inner_tp)
        return None if inner is None else (lambda v: None if v is None else inner(v))
    if dataclasses.is_dataclass(tp):
        return encode
    return None


@dataclasses.dataclass(slots=True, frozen=True)
class _FieldSpec:
    key: str
    attr: str
    omitempty: bool
    decoder: Decoder
    encoder: Encoder | None
    tp: Any
    bounds: Bounds | None


_TABLES: dict[type, tuple[dict[str, _FieldSpec], tuple[_FieldSpec, ...]]] = {}


def _table(cls: type) -> tuple[dict[str, _FieldSpec], tuple[_FieldSpec, ...]]:
    cached = _TABLES.get(cls)
    if cached is not None:
        return cached
    hints = typing.get_type_hints(cls)
    specs = []
    for f in dataclasses.fields(cls):
        key = f.metadata.get("key") or f.name
        tp = hints[f.name]
        omitempty = f.metadata.get("omitempty", False)
        bounds = f.metadata.get("bounds")
        try:
            decoder = _decoder_for(tp, bounds)
        except TypeError as exc:
            raise TypeError(f"{cls.__name__}.{f.name}: {exc}") from None
        specs.append(_FieldSpec(key, f.name, omitempty, decoder, _encoder_for(tp), tp, bounds))
    table = ({s.key: s for s in specs}, tuple(specs))
    _TABLES[cls] = table
    return table


def decode(cls: type[T], data: Any, path: str = "") -> T:
    """Build ``cls`` from a Sensu-shaped dict, rejecting unknown keys and wrong types.

    The class's generated decoder takes what it can check inline (see
    :mod:`pipeline.model.codec_compiled`); anything else, every error included, goes through the
    generic walk below, which names the field."""
    try:
        return _fast(cls, data)  # type: ignore[no-any-return]
    except (Slow, ValidationError, TypeError):
        return _decode_checked(cls, data, path)


_DECODERS: dict[type, Callable[[Any], Any]] = {}
_ENCODERS: dict[type, Callable[[Any], dict[str, Any]]] = {}


def _fast(cls: type, data: Any) -> Any:
    decoder = _DECODERS.get(cls) or _decoder_of(cls)
    assert decoder is not None  # None only while it is compiled, and then nothing decodes
    return decoder(data)


_COMPILING: set[type] = set()
#: One thread compiles at a time (the store's threads decode too): another thread must not see a
#: class in _COMPILING, which only the compiling thread's nested classes may.
_COMPILE_LOCK = threading.RLock()


def _decoder_of(cls: type) -> Callable[[Any], Any] | None:
    decoder = _DECODERS.get(cls)
    if decoder is not None:
        return decoder
    with _COMPILE_LOCK:
        decoder = _DECODERS.get(cls)
        if decoder is None and cls not in _COMPILING:
            _COMPILING.add(cls)
            try:
                decoder = _DECODERS[cls] = compile_decoder(cls, _table(cls)[1], _fast, _decoder_of)
            finally:
                _COMPILING.discard(cls)
        return decoder


def _decode_checked(cls: type[T], data: Any, path: str = "") -> T:
    if not isinstance(data, dict):
        raise _expected("mapping", data, path or cls.__name__)
    by_key, _ = _table(cls)
    kwargs = {}
    for key, value in data.items():
        spec = by_key.get(key)
        sub = f"{path}.{key}" if path else str(key)
        if spec is None:
            raise UnknownFieldError(sub, "unknown field")
        kwargs[spec.attr] = spec.decoder(value, sub)
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a required field without default was absent
        raise ValidationError(path, str(exc)) from None


def known_fields_only(cls: type, data: Any) -> tuple[Any, list[str]]:
    """``data`` without the keys that ``cls`` and the records inside it do not have, and the
    paths of those keys: for the APIs that, as Sensu Go's do, ignore fields they do not know."""
    ignored: list[str] = []
    return _prune(cls, data, "", ignored), ignored


def _prune(tp: Any, value: Any, path: str, ignored: list[str]) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        (tp,) = [a for a in args if a is not type(None)]
        origin, args = typing.get_origin(tp), typing.get_args(tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp) and isinstance(value, dict):
        by_key, _ = _table(tp)
        kept = {}
        for key, item in value.items():
            sub = f"{path}.{key}" if path else str(key)
            spec = by_key.get(key)
            if spec is None:
                ignored.append(sub)
            else:
                kept[key] = _prune(spec.tp, item, sub, ignored)
        return kept
    if origin is list and isinstance(value, list):
        return [_prune(args[0], item, f"{path}[{i}]", ignored) for i, item in enumerate(value)]
    if origin is dict and isinstance(value, dict):
        return {key: _prune(args[1], item, f"{path}.{key}", ignored) for key, item in value.items()}
    return value  # a scalar, or a value of the wrong type, which decode() will name


def encode(obj: Any) -> dict[str, Any]:
    """The Sensu-shaped dict of a model object (fields with ``omitempty`` left out when empty:
    None, 0, "", [], {} and False, as gogo's omitempty), by the class's generated encoder."""
    encoder = _ENCODERS.get(type(obj))
    if encoder is None:
        encoder = _encoder_of(type(obj))
    return encoder(obj)


def _encoder_of(cls: type) -> Callable[[Any], dict[str, Any]]:
    encoder = _ENCODERS.get(cls)
    if encoder is None:
        encoder = _ENCODERS[cls] = compile_encoder(_table(cls)[1], encode, _encoder_of, field_specs)
    return encoder


def field_specs(cls: type) -> Sequence[Any]:
    """The fields of a model class as the codec encodes them, in order."""
    return _table(cls)[1]


_COPIERS: dict[type, Callable[[Any], Any]] = {}


def replace(obj: T, **changes: Any) -> T:
    """``dataclasses.replace(obj, **changes)`` for a model object (slotted, no ``__post_init__``),
    by a generated copy: a fifth of its cost, for the check state computed per result."""
    copier = _COPIERS.get(type(obj))
    if copier is None:
        if not plain_slotted(type(obj)):
            return dataclasses.replace(obj, **changes)  # type: ignore[type-var]
        copier = _COPIERS[type(obj)] = compile_copier(type(obj))
    new: T = copier(obj)
    for name, value in changes.items():
        setattr(new, name, value)
    return new


def shallow_copy(obj: T) -> T:
    """``replace(obj)`` with no changes: for a caller that then sets fields itself (a keyword
    call and a ``setattr`` per field cost about as much as the copy)."""
    copier = _COPIERS.get(type(obj))
    if copier is None:
        return replace(obj)
    new: T = copier(obj)
    return new


def encode_generic(obj: Any) -> dict[str, Any]:
    """:func:`encode` by walking the field table (what the generated encoders are tested against)."""
    _, specs = _table(type(obj))
    out: dict[str, Any] = {}
    for spec in specs:
        value = getattr(obj, spec.attr)
        if spec.omitempty and not value:
            continue
        out[spec.key] = value if spec.encoder is None or value is None else spec.encoder(value)
    return out


def check_ranges(obj: Any, path: str = "") -> None:
    """Raise ValidationError for the first integer outside its field's range, or number that is
    not finite, in ``obj`` and the records inside it: for objects built in code rather than
    decoded (an adapter's event, a parsed legacy result), before they reach the store or the wire."""
    _, specs = _table(type(obj))
    for spec in specs:
        value = getattr(obj, spec.attr)
        sub = f"{path}.{spec.key}" if path else spec.key
        if isinstance(value, list):
            for i, item in enumerate(value):
                _check_value(item, spec.bounds, f"{sub}[{i}]")
        else:
            _check_value(value, spec.bounds, sub)


def _check_value(value: Any, bounds: Bounds | None, path: str) -> None:
    if isinstance(value, bool):
        return
    if isinstance(value, int) and bounds is not None:
        if not bounds[0] <= value <= bounds[1]:
            raise out_of_range(value, bounds, path)
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValidationError(path, f"expected a finite number, got {value!r}")
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        check_ranges(value, path)


def load_json(data: bytes | str, *, allow_nan: bool = False) -> Any:
    """JSON that arrived from outside, parsed strictly (nesting, UTF-8, finite numbers: see
    :mod:`pipeline.model.strict_json`); a MalformedJsonError naming the line and column."""
    return strict_json.loads(data, allow_nan=allow_nan)
