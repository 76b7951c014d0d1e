"""Option values coerced without pydantic where the result is certain.

typer 0.29 coerces every parameter's value through a pydantic `TypeAdapter` it builds for the
parameter before looking at the value (a parameter not given, None, included), and importing
pydantic alone takes about 50 ms: a fifth of the start-up of every command. Most of mailsniff's
parameters are strings, flags, whole numbers and lists of strings. For those, when the value is
one the adapter would return as it is (a str, a bool, a float, an int, a list of str) or read
plainly (a decimal number), this gives the same value itself. Any other value, and every other
kind of parameter, goes to typer's own coercion, built when first needed.
tests/cli/test_coercion.py holds the two to the same results.

It reaches into typer's internals (`typer._coercion`, a parameter's `_runtime_param`), as
commands/manual.py does; pyproject.toml pins typer below 0.30 for both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from typer import _click as click
from typer._coercion import RuntimeParam, TypeDescriptor, build_runtime_param
from typer.core import _TyperParameter

from mailsniff.commands.manual import each_parameter

__all__ = ["PlainRuntimeParam", "plain_coercion"]

#: A decimal integer every reader reads the same (no sign but minus, no leading zero, no `_`,
#: no spaces, and short of Python's 4300-digit limit on int()).
_DECIMAL = re.compile(r"-?[1-9][0-9]{0,17}|0")
#: What a parameter takes, for the short cut (_OTHER: none, typer's coercion for every value).
_STR, _INT, _BOOL, _FLOAT, _STR_LIST, _INT_LIST, _OTHER = range(7)
_SCALARS: dict[type, int] = {str: _STR, int: _INT, bool: _BOOL, float: _FLOAT}


@dataclass(frozen=True)
class PlainRuntimeParam(RuntimeParam):
    """typer's coercion for one parameter, short-cut for the plain values of plain types.

    typer builds a parameter's coercion before it looks at the value, None included: every
    parameter of the command gets one of these, so that a parameter not given (None) or given
    a plain value never builds typer's.
    """

    descriptor: TypeDescriptor
    kind: int  # _STR ... _OTHER
    #: typer's own coercion, once built (a frozen dataclass, as typer's are: held in a list).
    built: list[RuntimeParam] = field(default_factory=list)

    def _coerce_value(self, value: Any, param: Any, ctx: click.Context) -> Any:
        plain = self._plain(value)
        if plain is not None:
            return plain
        if not self.built:
            self.built.append(build_runtime_param(self.descriptor))
        return self.built[0]._coerce_value(value, param=param, ctx=ctx)

    def _plain(self, value: Any) -> Any:
        """The value typer's coercion would give for `value`, or None to ask it."""
        kind = self.kind
        if kind == _STR:
            return value if type(value) is str else None
        if kind == _BOOL:
            return value if type(value) is bool else None
        if kind == _FLOAT:
            return value if type(value) is float else None
        if kind == _INT:
            number = _integer(value)
            info = self.parameter_info
            if number is None or (info.min is not None and number < info.min):
                return None
            return None if info.max is not None and number > info.max else number
        if kind == _STR_LIST or kind == _INT_LIST:
            if not isinstance(value, list | tuple):
                return None
            if kind == _STR_LIST:
                return list(value) if all(type(item) is str for item in value) else None
            numbers = [_integer(item) for item in value]
            return None if None in numbers else numbers
        return None


def _integer(value: object) -> int | None:
    if type(value) is int:
        return value
    if type(value) is str and _DECIMAL.fullmatch(value):
        return int(value)
    return None


def _kind(descriptor: TypeDescriptor) -> int:
    info = descriptor.parameter_info
    if descriptor.file_annotation is not None or info.parser is not None:
        return _OTHER
    annotation = descriptor.annotation
    if isinstance(annotation, type) and annotation in _SCALARS:
        if annotation is float and (info.min is not None or info.max is not None):
            return _OTHER
        return _SCALARS[annotation]
    if annotation == list[str]:
        return _STR_LIST
    if annotation == list[int] and info.min is None and info.max is None:
        return _INT_LIST
    return _OTHER


def plain_coercion(command: click.Command) -> None:
    """Give every parameter of `command` the short cut (typer's own is built when needed)."""
    each_parameter(command, _plain_param)


def _plain_param(param: click.Parameter) -> None:
    if not isinstance(param, _TyperParameter) or param._runtime_param is not None:
        return
    descriptor = param.type_descriptor
    param._runtime_param = PlainRuntimeParam(
        annotation=descriptor.annotation,
        parameter_info=descriptor.parameter_info,
        descriptor=descriptor,
        kind=_kind(descriptor),
    )
