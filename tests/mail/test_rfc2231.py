"""RFC 2231 parameters: the linear parser gives the stdlib's results, without its quadratic cost."""

from __future__ import annotations

from email import policy
from email.message import Message
from email.utils import collapse_rfc2231_value

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from mailsniff.mail.rfc2231 import ParamMessage, parse_params


def both(name: str, value: str) -> tuple[Message, ParamMessage]:
    reference, ours = Message(policy=policy.compat32), ParamMessage(policy=policy.compat32)
    reference[name] = value
    ours[name] = value
    return reference, ours


NORMAL = [
    'multipart/mixed; boundary="===============1234=="',
    "multipart/alternative;\r\n boundary=XX; charset=utf-8",
    'attachment; filename="report.pdf"',
    "attachment; filename*=utf-8''na%C3%AFve%20%E6%96%87%E4%BB%B6.bin",
    "attachment;\r\n filename*0*=utf-8''%E5%BC;\r\n filename*1*=%A0.txt",
    "attachment; filename*0=part-one-;\r\n filename*1=part-two.zip",
    "attachment; filename*0*=gbk'zh-cn'%D5%C5; filename*1=%B7%AB.txt",  # section 1 not decoded
    "attachment; filename*1=b.txt; filename*0=a-",  # out of order
    'application/pdf; name="=?GBK?B?1cW3qw==?=.pdf"',
    'text/plain; name="semi;colon \\"quoted\\".txt"; x=1',
    "text/plain; name=<angle>; bare; =novalue; empty=",
    "attachment; filename*=x-bogus''ab%E9.txt",
    "attachment; filename*=''no-charset.txt; filename*=twice",
    'inline; FileName = "Spaced Out.doc" ; SIZE=42',
]


@pytest.mark.parametrize("value", NORMAL)
@pytest.mark.parametrize("header", ["Content-Type", "Content-Disposition"])
def test_same_parameters_as_the_stdlib(header: str, value: str) -> None:
    reference, ours = both(header, value)
    for unquote in (True, False):
        assert ours.get_params(header=header, unquote=unquote) == reference.get_params(
            header=header, unquote=unquote
        )
    assert ours.get_filename() == reference.get_filename()
    assert ours.get_boundary() == reference.get_boundary()
    assert ours.get_content_charset() == reference.get_content_charset()
    for name in ("filename", "name", "boundary", "x", "missing"):
        got, want = ours.get_param(name, header=header), reference.get_param(name, header=header)
        assert got == want
        if got is not None:
            assert collapse_rfc2231_value(got) == collapse_rfc2231_value(want)  # type: ignore[arg-type]


_pieces = st.sampled_from(
    ["filename", "name", "*", "*0", "*1*", "*2", "=", ";", " ", '"', "\\", "'", "%41", "%e9", "%",
     "utf-8", "gbk", "a", "Z", "<", ">", ".", "\r\n ", "boundary", "xx"]
)  # fmt: skip


@settings(max_examples=1000)
@given(st.lists(_pieces, max_size=30))
def test_any_parameter_soup_reads_as_the_stdlib_reads_it(pieces: list[str]) -> None:
    value = "attachment; " + "".join(pieces)
    reference, ours = both("Content-Disposition", value)
    try:
        want = reference.get_params(header="content-disposition", unquote=False)
    except TypeError:  # the stdlib cannot sort `name*` next to `name*0`; ours reads on
        assume(False)
    assert parse_params(value) == want


def test_sections_the_stdlib_refuses_are_read() -> None:
    params = parse_params("attachment; filename*=a; filename*0=b; filename*" + "9" * 5000 + "=c")
    assert params == [("attachment", ""), ("filename", (None, None, '"abc"'))]
