"""Jinja2's sandbox, bounded in what one template can make. Pure.

Jinja2's sandbox keeps templates away from Python's internals, but not from size: ``{{ "x" *
10**9 }}``, ``{{ "x".ljust(10**9) }}``, ``{{ "{:>999999999}".format(1) }}``, ``{{ "x" |
center(10**9) }}`` or ``{{ "%999999999d" % 1 }}`` each build a gigabyte in the backend's own
thread (some already while the template is compiled, by constant folding), and a loop can
write without end. Here every operation that makes something of a size it is given (a repeat
count, a width, a precision, a number of slices or paragraphs) is refused past
:data:`MAX_TEMPLATE_SIZE`, and :func:`bounded_render` stops a template whose output passes
:data:`MAX_OUTPUT_CHARS`. What stays possible is a loop that writes nothing for a long time
over event data; a template is an operator's resource, and that one is on them.
"""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Callable, Iterable
from typing import Any

from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

#: The largest count, width or precision one template operation may be given.
MAX_TEMPLATE_SIZE = 100_000
#: The most characters a template may write (a webhook body, an email, a mutated event).
MAX_OUTPUT_CHARS = 4 * 1024 * 1024
#: Filters that take a size: ``center(width)``, ``indent(width)``, ``wordwrap(width)``,
#: ``truncate(length)``, ``slice(slices)``, ``batch(linecount)``, ``format`` (``%`` formatting).
_SIZED_FILTERS = ("center", "indent", "wordwrap", "truncate", "slice", "batch", "format")
#: String methods that make a string as long as they are told.
_SIZED_METHODS = frozenset({"ljust", "rjust", "center", "zfill", "expandtabs"})
_PERCENT_SIZES = re.compile(r"%[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")
_SPEC_SIZES = re.compile(r"\d+")


def _refuse(what: str) -> SecurityError:
    return SecurityError(f"{what} is larger than a template may make ({MAX_TEMPLATE_SIZE})")


def _check_sizes(values: Iterable[Any]) -> None:
    for value in values:
        if isinstance(value, int | float) and not isinstance(value, bool) and abs(value) > MAX_TEMPLATE_SIZE:
            raise _refuse(f"the argument {value!r}")


def _check_percent_format(text: Any) -> None:
    if isinstance(text, str):
        for width, precision in _PERCENT_SIZES.findall(text):
            if "*" in (width, precision):
                raise SecurityError("a '*' width or precision is not allowed in a template")
            _check_sizes(int(number) for number in (width, precision) if number)


def _check_format_string(text: str) -> None:
    try:
        fields = list(string.Formatter().parse(text))
    except ValueError:
        return  # str.format will raise its own error
    for _, _, spec, _ in fields:
        if spec and "{" in spec:
            raise SecurityError("a nested '{}' in a format spec is not allowed in a template")
        _check_sizes(int(number) for number in _SPEC_SIZES.findall(spec or ""))


def _check_binop(operator: str, left: Any, right: Any) -> None:
    if operator == "*":
        for sized, count in ((left, right), (right, left)):
            repeats = isinstance(sized, str | list | tuple) and isinstance(count, int)
            if repeats and len(sized) * max(count, 0) > MAX_OUTPUT_CHARS:
                raise _refuse(f"repeating {len(sized)} items {count} times")
    elif operator == "**" and isinstance(left, int) and isinstance(right, int) and abs(left) > 1:
        if right > MAX_TEMPLATE_SIZE or left.bit_length() * right > 8 * MAX_TEMPLATE_SIZE:
            raise _refuse(f"the power {right}")
    elif operator == "%":
        _check_percent_format(left)


def _sized_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    # the value filtered comes first, after the context or environment jinja passes to some
    first = 2 if getattr(function, "jinja_pass_arg", None) is not None else 1

    @functools.wraps(function)  # keeps jinja's pass_context/pass_environment marks
    def bounded(*args: Any, **kwargs: Any) -> Any:
        if name == "format":  # the values formatted may be anything; the format string may not
            _check_percent_format(args[first - 1] if len(args) >= first else None)
        else:
            _check_sizes([*args[first:], *kwargs.values()])
        return function(*args, **kwargs)

    return bounded


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox with the size checks above (and without ``lipsum``, which writes
    paragraphs by the thousand)."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.globals.pop("lipsum", None)
        for name in _SIZED_FILTERS:
            self.filters[name] = _sized_filter(name, self.filters[name])

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _check_binop(operator, left, right)
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(getattr(__obj, "__self__", None), str) and getattr(__obj, "__name__", "") in _SIZED_METHODS:
            _check_sizes([*args, *kwargs.values()])  # "x".ljust(10**9), "x".zfill(...)
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        bound = getattr(value, "__self__", None)
        if isinstance(bound, str):
            _check_format_string(bound)
        return super().wrap_str_format(value)


def bounded_render(chunks: Iterable[str]) -> str:
    """The chunks a template generates, stopped once they pass :data:`MAX_OUTPUT_CHARS`."""
    parts, size = [], 0
    for chunk in chunks:
        size += len(chunk)
        if size > MAX_OUTPUT_CHARS:
            raise SecurityError(f"the template wrote more than {MAX_OUTPUT_CHARS} characters")
        parts.append(chunk)
    return "".join(parts)
