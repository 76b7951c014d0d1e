"""The message `send` builds: Bcc only in the envelope, RFC 2047 in the asked charset, parts."""

from __future__ import annotations

import email
import email.policy
from email.header import decode_header, make_header
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailsniff.errors import UsageError
from mailsniff.mail.mime import parse_message
from mailsniff.send.message import (
    MessageSpec,
    build_message,
    dot_stuff,
    envelope_recipients,
    envelope_roles,
    parse_header_option,
    split_addresses,
)


def _spec(**kw: object) -> MessageSpec:
    base: dict[str, object] = {
        "envelope_from": "boss@example.com",
        "to": ["to@example.com"],
        "cc": ["cc@example.com"],
        "bcc": ["hidden@example.com"],
        "subject": "hello",
        "body": "body text\n",
    }
    base.update(kw)
    return MessageSpec(**base)  # type: ignore[arg-type]


def test_bcc_address_is_in_the_envelope_and_nowhere_in_the_message() -> None:
    spec = _spec()
    data = build_message(spec)
    assert b"hidden" not in data
    assert b"Bcc" not in data
    assert envelope_recipients(spec) == ["to@example.com", "cc@example.com", "hidden@example.com"]


def test_to_and_cc_are_headers() -> None:
    msg = email.message_from_bytes(build_message(_spec()), policy=email.policy.default)
    assert msg["To"] == "to@example.com"
    assert msg["Cc"] == "cc@example.com"
    assert msg["From"] == "boss@example.com"
    assert msg["Message-ID"] and msg["Date"]


def test_header_from_differs_from_the_envelope_sender() -> None:
    data = build_message(_spec(header_from="CEO <ceo@example.org>"))
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert msg["From"] == "CEO <ceo@example.org>"


def test_gbk_charset_encodes_names_and_subject_as_gbk_encoded_words() -> None:
    spec = _spec(
        to=split_addresses(["张三 <zs@example.com>"]),
        subject="测试邮件",
        body="你好\n",
        charset="gbk",
    )
    data = build_message(spec)
    assert data.isascii()
    assert b"=?gbk?" in data
    assert "测试".encode("gbk") not in data
    msg = email.message_from_bytes(data)
    assert str(make_header(decode_header(msg["Subject"]))) == "测试邮件"
    assert str(make_header(decode_header(msg["To"]))) == "张三 <zs@example.com>"
    assert msg.get_content_charset() == "gbk"
    assert msg.get_payload(decode=True).decode("gbk") == "你好\r\n"


def test_mailsniff_reader_decodes_what_send_encodes() -> None:
    spec = _spec(
        to=split_addresses(["张三 <zs@example.com>, 李四 <ls@example.com>"]),
        subject="会议通知",
        charset="gbk",
    )
    message = parse_message(build_message(spec))
    assert message.subject == "会议通知"
    assert [(a.name, a.address) for a in message.to] == [
        ("张三", "zs@example.com"),
        ("李四", "ls@example.com"),
    ]


def test_attachments_are_base64_parts_with_their_file_names(tmp_path: Path) -> None:
    blob = tmp_path / "report.pdf"
    blob.write_bytes(bytes(range(256)) * 10)
    data = build_message(_spec(attachments=[blob]))
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert msg.get_content_type() == "multipart/mixed"
    parts = list(msg.iter_attachments())
    assert [p.get_filename() for p in parts] == ["report.pdf"]
    assert parts[0].get_content_type() == "application/pdf"
    assert parts[0].get_content() == blob.read_bytes()
    assert all(len(line) <= 78 for line in data.split(b"\r\n"))


def test_extra_headers_follow_the_generated_ones() -> None:
    spec = _spec(headers=[parse_header_option("X-Mailer: mailsniff"), ("Reply-To", "r@x.org")])
    msg = email.message_from_bytes(build_message(spec))
    assert msg["X-Mailer"] == "mailsniff"
    assert msg["Reply-To"] == "r@x.org"


@pytest.mark.parametrize("bad", ["NoColon", "Bad Name: x", ": value"])
def test_a_malformed_header_option_is_a_usage_error(bad: str) -> None:
    with pytest.raises(UsageError):
        parse_header_option(bad)


def test_a_header_value_cannot_inject_a_line() -> None:
    with pytest.raises(UsageError):
        build_message(_spec(headers=[("X-A", "1\r\nBcc: x@y.z")]))
    with pytest.raises(UsageError):
        build_message(_spec(subject="a\r\nBcc: x@y.z"))


def test_an_unknown_charset_or_unencodable_text_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        build_message(_spec(charset="no-such-charset"))
    with pytest.raises(UsageError):
        build_message(_spec(subject="emoji \U0001f600", charset="gbk"))


def test_comma_lists_and_repeats_give_one_address_each() -> None:
    assert split_addresses(["a@x.org, B <b@y.org>", "c@z.org"]) == [
        "a@x.org",
        '"B" <b@y.org>',
        "c@z.org",
    ]
    assert split_addresses(['"Doe, J" <j@x.org>']) == ['"Doe, J" <j@x.org>']


def test_a_recipient_given_twice_gets_one_rcpt() -> None:
    spec = _spec(to=["A@x.org"], cc=["a@x.org"], bcc=["b@x.org"])
    assert envelope_recipients(spec) == ["A@x.org", "b@x.org"]


def test_dot_stuffing_doubles_leading_dots_and_ends_with_a_lone_dot() -> None:
    assert dot_stuff(b"a\r\n.b\r\n..c\r\n") == b"a\r\n..b\r\n...c\r\n.\r\n"
    assert dot_stuff(b"no newline") == b"no newline\r\n.\r\n"
    assert dot_stuff(b"lf\n.only\n") == b"lf\r\n..only\r\n.\r\n"


_TEXT = st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=80
).filter(lambda t: t.strip() == t)
_LOCAL = st.from_regex(r"[a-z][a-z0-9.]{0,15}", fullmatch=True).filter(
    lambda s: ".." not in s and not s.endswith(".")
)


@settings(max_examples=150)
@given(subject=_TEXT, name=_TEXT, body=st.text(max_size=300), secret=_LOCAL)
def test_any_subject_and_name_survive_the_round_trip_and_bcc_never_leaks(
    subject: str, name: str, body: str, secret: str
) -> None:
    bcc = f"{secret}@hidden.example"
    spec = _spec(
        to=[f'"{name.replace(chr(92), "").replace(chr(34), "")}" <to@example.com>'],
        bcc=[bcc],
        subject=subject,
        body=body,
    )
    try:
        data = build_message(spec)
    except UsageError:
        return  # e.g. a name the address parser cannot take: refused, never a crash
    assert bcc.encode() not in data
    assert all(len(line) <= 998 for line in data.split(b"\r\n"))  # RFC 5322 2.1.1
    message = parse_message(data)
    assert message.subject == subject
    assert [a.address for a in message.to] == ["to@example.com"]


def test_each_envelope_recipient_keeps_the_header_that_first_lists_it() -> None:
    spec = _spec(
        to=["To@Example.com"],
        cc=["to@example.com", "Copy <cc@example.com>"],
        bcc=["cc@example.com", "hidden@example.com"],
    )
    assert envelope_roles(spec) == [
        ("To@Example.com", "to"),
        ("cc@example.com", "cc"),
        ("hidden@example.com", "bcc"),
    ]
    assert envelope_recipients(spec) == [a for a, _ in envelope_roles(spec)]
