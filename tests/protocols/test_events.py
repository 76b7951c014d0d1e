"""The dataclasses whose `__init__` is written out (protocols/base.py says why: the parser
events, the helpers made per token, line, reply, mailbox or MIME part, and the frame, segment
and stream data records made per packet) take exactly their dataclass fields, with the same
defaults, and set each of them. Compiled, the written `__init__` also checks each
argument's type, so the values given here are of the declared types."""

from __future__ import annotations

import ast
import dataclasses
import enum
import functools
import sys
import types
import typing
from email.message import Message as EmailMessage
from pathlib import Path

import pytest

import mailsniff
from mailsniff.capture.frame import Frame
from mailsniff.mail import addresses, mime, rfc2047
from mailsniff.mail.mime import HeaderField
from mailsniff.net.segment import Segment
from mailsniff.protocols import base, pop3, sasl, smtp
from mailsniff.protocols.replies import ReplyLine
from mailsniff.reassembly import Flow, FlowData
from mailsniff.session import smtp as smtp_session

WRITTEN = [
    smtp.Greeting,
    smtp.Command,
    smtp.Reply,
    smtp.MessageData,
    smtp.MessageEnd,
    pop3.Greeting,
    pop3.Command,
    pop3.Response,
    pop3.MultilineData,
    pop3.ResponseEnd,
    base.SaslStep,
    base.Line,
    sasl.Decoded,
    HeaderField,
    addresses._Token,
    rfc2047._Word,
    smtp._Pending,
    smtp._Reassembly,
    addresses._Mailbox,
    smtp_session._Awaited,
    mime._Part,
    mime._Walk,
    ReplyLine,
    Frame,
    Segment,
    FlowData,
]


@functools.cache
def _class_nodes(module_name: str) -> dict[str, ast.ClassDef]:
    """The classes of a mailsniff module, as its source declares them (parsed once)."""
    package = Path(mailsniff.__file__).parent
    source = package.joinpath(*module_name.split(".")[1:]).with_suffix(".py")
    return {
        node.name: node
        for node in ast.walk(ast.parse(source.read_text()))
        if isinstance(node, ast.ClassDef)
    }


def _hints(cls: type) -> dict[str, object]:
    """Each field's declared type, read from the source (the compiled build keeps only erased
    annotations, `type` for a union) and evaluated in the class's module."""
    module = sys.modules[cls.__module__]
    classes = _class_nodes(cls.__module__)
    hints: dict[str, object] = {}
    for klass in reversed(cls.__mro__):
        node = classes.get(klass.__name__) if klass.__module__ == cls.__module__ else None
        for stmt in node.body if node is not None else []:
            if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                hints[stmt.target.id] = eval(ast.unparse(stmt.annotation), vars(module))
    return hints


def _value(hint: object, i: int) -> object:
    """A value of type `hint`, distinct per `i` where the type allows."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        choices = [a for a in typing.get_args(hint) if a is not type(None)]
        try:
            return _value(choices[0], i)
        except AssertionError:
            return None  # an optional record (a Transaction, a Command): None is of the type
    if origin is typing.Literal:
        return typing.get_args(hint)[0]
    if origin is tuple:
        return (f"item{i}",)
    if origin is list:
        return []
    if hint is bool:
        return i % 2 == 0
    if hint is int:
        return 1000 + i
    if hint is str:
        return f"text{i}"
    if hint is bytes:
        return f"bytes{i}".encode()
    if hint is bytearray:
        return bytearray(f"bytes{i}".encode())
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return list(hint)[i % len(hint)]
    if hint is EmailMessage:
        return EmailMessage()
    if hint is Flow:
        return Flow(id=i, key=(b"\x0a\0\0\1", 1025, b"\x0a\0\0\2", 25), start_ns=i, last_ns=i)
    raise AssertionError(f"no sample value for {hint!r}")


@pytest.mark.parametrize("cls", WRITTEN, ids=lambda c: f"{c.__module__}.{c.__qualname__}")
def test_written_init_takes_and_sets_every_field(cls: type) -> None:
    fields = dataclasses.fields(cls)
    hints = _hints(cls)
    kw_only = all(f.kw_only for f in fields)
    # Every field given: each lands on its own attribute (a swapped assignment shows).
    given = {f.name: _value(hints[f.name], i) for i, f in enumerate(fields)}
    made = cls(**given) if kw_only else cls(*given.values())
    assert {f.name: getattr(made, f.name) for f in fields} == given
    # Only the required ones given: the others take the dataclass's defaults, a default made by
    # a factory (an empty list) made afresh for each instance.
    missing = dataclasses.MISSING
    required = {
        f.name: given[f.name]
        for f in fields
        if f.default is missing and f.default_factory is missing
    }
    made = cls(**required) if kw_only else cls(*required.values())
    other = cls(**required) if kw_only else cls(*required.values())
    for f in fields:
        if f.name in required:
            assert getattr(made, f.name) == required[f.name], f.name
        elif f.default_factory is not missing:
            assert getattr(made, f.name) == f.default_factory(), f.name
            assert getattr(made, f.name) is not getattr(other, f.name), f.name
        else:
            assert getattr(made, f.name) == f.default, f.name
    # And nothing else is accepted.
    with pytest.raises(TypeError):
        cls(**given, unknown=1)
