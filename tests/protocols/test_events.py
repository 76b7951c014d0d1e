"""The dataclasses whose `__init__` is written out (protocols/base.py says why: the parser
events and the helpers made per token, line or MIME part) take exactly their dataclass fields,
with the same defaults, and set each of them."""

from __future__ import annotations

import dataclasses

import pytest

from mailsniff.mail import addresses, mime, rfc2047
from mailsniff.mail.mime import HeaderField
from mailsniff.protocols import base, pop3, sasl, smtp
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
    smtp_session._Awaited,
    mime._Part,
    mime._Walk,
]


def _marker(field: dataclasses.Field[object], i: int) -> object:
    return ("value", field.name, i)


@pytest.mark.parametrize("cls", WRITTEN, ids=lambda c: f"{c.__module__}.{c.__qualname__}")
def test_written_init_takes_and_sets_every_field(cls: type) -> None:
    fields = dataclasses.fields(cls)
    kw_only = all(f.kw_only for f in fields)
    # Every field given: each lands on its own attribute (a swapped assignment shows).
    given = {f.name: _marker(f, i) for i, f in enumerate(fields)}
    made = cls(**given) if kw_only else cls(*given.values())
    assert {f.name: getattr(made, f.name) for f in fields} == given
    # Only the required ones given: the others take the dataclass's defaults.
    required = {n: v for n, v in given.items() if _default(cls, n) is dataclasses.MISSING}
    made = cls(**required) if kw_only else cls(*required.values())
    for f in fields:
        want = required[f.name] if f.name in required else f.default
        assert getattr(made, f.name) == want, f.name
    # And nothing else is accepted.
    with pytest.raises(TypeError):
        cls(**given, unknown=1)


def _default(cls: type, name: str) -> object:
    return next(f.default for f in dataclasses.fields(cls) if f.name == name)
