"""Message bytes to Message: the seed's messages, attachments, RFC 2231, bounds, hostile input."""

from __future__ import annotations

import base64
import hashlib
import json
import random
import re
import subprocess
import sys
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailsniff.mail import mime
from mailsniff.mail.mime import (
    MAX_HEADERS,
    MAX_PARTS,
    MessageAccumulator,
    attachment_payloads,
    parse_message,
    split_header_fields,
)
from mailsniff.model import Address, Message
from tests.paths import PUBLIC
from tests.pcap_streams import client_stream

# The seed note's messages, as typed into DATA and as returned by RETR 254 (dot-unstuffed).
SEED_SERVER_TO_SERVER = (
    b"Date: Tue, 17 May 2011 10:35:22 +0800 (CST)\r\n"
    b"From: =?GBK?B?1cW3qw==?= <name@youname.com>\r\n"
    b"To: =?GBK?B?1cW3qw==?= :<tonanme@them.com>\r\n"
    b"Subject: test\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=GBK\r\n"
    b"Content-Transfer-Encoding: 7bit\r\n"
    b"X-Originating-IP: [222.177.8.218]\r\n"
    b"X-Priority: 3\r\n"
    b"\r\n"
    b"test\r\n"
)
SEED_SMTP_DATA = (
    b"TO: crazywill@163.com\r\n"
    b"FROM: cccc@163.com\r\n"
    b"SUBJECT: test by telnet/smtp\r\n"
    b"\r\n"
    b"test, just a test.\r\n"
)
SEED_POP3_RETR = (
    b"Received: from smtp.63.com (unknown [58.252.70.158])\r\n"
    b"\tby smtp5 (Coremail) with SMTP id wKjREDrA9gIfFqlEjCnRAg==.29062S4;\r\n"
    b"\tMon, 03 Jul 2006 21:07:18 +0800 (CST)\r\n"
    b"TO: crazywill@163.com\r\n"
    b"FROM : cccc@163.com\r\n"
    b"SUBJECT: test by telnet/smtp\r\n"
    b"Message-Id: <44A91687.0E6F6C.07562>\r\n"
    b"Date: Mon, 3 Jul 2006 21:07:19 +0800 (CST)\r\n"
    b"Sender: crazywill@163.com\r\n"
    b"\r\n"
    b"test, just a test.\r\n"
)


def data_messages(stream: bytes) -> list[bytes]:
    """Each DATA (dot-unstuffed) or BDAT (chunks joined) message in an SMTP client stream."""
    found: list[bytes] = []
    chunks = bytearray()
    pos = 0
    command = re.compile(rb"(DATA|BDAT (\d+)( LAST)?)\r\n", re.IGNORECASE)
    at_line_start = re.compile(rb"^" + command.pattern, re.IGNORECASE | re.MULTILINE)
    while True:
        # a BDAT command follows its previous chunk directly, wherever that ended
        match = command.match(stream, pos) if chunks else at_line_start.search(stream, pos)
        if match is None:
            break
        pos = match.end()
        if match.group(2) is not None:
            size = int(match.group(2))
            chunks += stream[pos : pos + size]
            pos += size
            if match.group(3):
                found.append(bytes(chunks))
                chunks.clear()
            continue
        end = stream.find(b"\r\n.\r\n", pos)
        body = stream[pos : end + 2] if end >= 0 else stream[pos:]
        lines = body.split(b"\r\n")
        found.append(b"\r\n".join(x[1:] if x.startswith(b".") else x for x in lines))
        pos = end + 5 if end >= 0 else len(stream)
    return found


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- the seed -------------------------------------------------------------------------------


def test_seed_server_to_server_message() -> None:
    msg = parse_message(SEED_SERVER_TO_SERVER)
    assert msg.from_ == [Address("张帆", "name@youname.com")]
    assert msg.to == [Address("张帆", "tonanme@them.com")]
    assert msg.subject == "test"
    assert msg.date == "Tue, 17 May 2011 10:35:22 +0800 (CST)"
    assert ("X-Originating-IP", "[222.177.8.218]") in msg.headers
    assert ("X-Priority", "3") in msg.headers
    assert msg.size == len(SEED_SERVER_TO_SERVER)
    assert msg.sha256 == sha(SEED_SERVER_TO_SERVER)
    assert msg.attachments == []
    assert "To: stray ':' between display name and address" in msg.defects


def test_seed_forged_headers_in_upper_case_are_read() -> None:
    msg = parse_message(SEED_SMTP_DATA)
    assert msg.to == [Address("", "crazywill@163.com")]
    assert msg.from_ == [Address("", "cccc@163.com")]
    assert msg.subject == "test by telnet/smtp"
    assert [name for name, _ in msg.headers] == ["TO", "FROM", "SUBJECT"]


def test_seed_pop3_message_headers_after_obsolete_from_still_count() -> None:
    msg = parse_message(SEED_POP3_RETR)
    assert msg.from_ == [Address("", "cccc@163.com")]
    assert msg.sender == [Address("", "crazywill@163.com")]
    assert msg.to == [Address("", "crazywill@163.com")]
    assert msg.subject == "test by telnet/smtp"
    assert msg.message_id == "<44A91687.0E6F6C.07562>"
    assert msg.date == "Mon, 3 Jul 2006 21:07:19 +0800 (CST)"
    assert msg.defects == ["obsolete header syntax: 'FROM :'"]
    assert [name for name, _ in msg.headers] == [
        "Received",
        "TO",
        "FROM",
        "SUBJECT",
        "Message-Id",
        "Date",
        "Sender",
    ]
    # folded Received is unfolded for display; hash and size cover the bytes as sent
    assert msg.headers[0][1].startswith("from smtp.63.com (unknown [58.252.70.158])\tby smtp5")
    assert msg.size == len(SEED_POP3_RETR)
    assert msg.sha256 == sha(SEED_POP3_RETR)


def test_seed_message_without_empty_line_before_body() -> None:
    raw = b"TO: crazywill@163.com\r\nFROM: cccc@163.com\r\nSUBJECT: x\r\ntest, just a test.\r\n"
    msg = parse_message(raw)
    assert msg.subject == "x"
    assert msg.from_ == [Address("", "cccc@163.com")]
    assert "no empty line between header and body" in msg.defects


def test_pop3_top_headers_only_message() -> None:
    headers_only = SEED_POP3_RETR.split(b"\r\n\r\n")[0] + b"\r\n"
    msg = parse_message(headers_only)
    assert msg.sender == [Address("", "crazywill@163.com")]
    assert msg.subject == "test by telnet/smtp"


# -- header fields --------------------------------------------------------------------------


def test_header_fields_keep_raw_value_and_decoded_value() -> None:
    raw = b"Subject: =?utf-8?B?5byg?=\r\n =?utf-8?B?5biG?= \xe2\x9c\x93\r\nX-A : b\r\n\r\nbody"
    fields, body, defects = split_header_fields(raw)
    assert [(f.name, f.value) for f in fields] == [("Subject", "张帆 ✓"), ("X-A", "b")]
    assert fields[0].raw_value == b" =?utf-8?B?5byg?=\r\n =?utf-8?B?5biG?= \xe2\x9c\x93"
    assert body == b"body"
    assert defects == ["obsolete header syntax: 'X-A :'"]


def test_windows_1252_header_bytes_are_decoded_and_recorded() -> None:
    msg = parse_message(b"Subject: What\x92s Next\r\n\r\n")
    assert msg.subject == "What\u2019s Next"
    assert msg.defects == ["Subject: 8-bit header bytes not UTF-8: decoded as windows-1252"]
    (field,), _, _ = split_header_fields(b"Subject: What\x92s Next\r\n\r\n")
    assert field.raw_value == b" What\x92s Next"  # the bytes as sent stay available


def test_bare_lf_line_endings() -> None:
    msg = parse_message(SEED_POP3_RETR.replace(b"\r\n", b"\n"))
    assert msg.sender == [Address("", "crazywill@163.com")]
    assert msg.subject == "test by telnet/smtp"


def test_every_from_to_and_cc_header_counts() -> None:
    raw = b"To: a@x\r\nCc: c@x\r\nTo: b@x\r\nBcc: d@x\r\nReply-To: r@x\r\n\r\n"
    msg = parse_message(raw)
    assert [a.address for a in msg.to] == ["a@x", "b@x"]
    assert [a.address for a in msg.cc] == ["c@x"]
    assert [a.address for a in msg.bcc] == ["d@x"]
    assert [a.address for a in msg.reply_to] == ["r@x"]
    assert "2 to headers" in msg.defects


def test_first_subject_wins_and_duplicates_are_a_defect() -> None:
    msg = parse_message(b"Subject: one\r\nSubject: two\r\n\r\n")
    assert msg.subject == "one"
    assert "2 subject headers" in msg.defects


def test_mbox_from_line_is_skipped() -> None:
    msg = parse_message(b"From someone@x Mon Jul  3 21:07:19 2006\r\nSubject: s\r\n\r\nb")
    assert msg.subject == "s"
    assert [n for n, _ in msg.headers] == ["Subject"]


def test_empty_message() -> None:
    msg = parse_message(b"")
    assert (msg.size, msg.sha256, msg.headers, msg.subject) == (0, sha(b""), [], None)


# -- attachments ----------------------------------------------------------------------------


def build_mixed() -> tuple[bytes, dict[str, bytes]]:
    files = {
        "report.pdf": b"%PDF-1.4 " + bytes(range(256)) * 40,
        "naïve 文件.bin": b"\x00\xff" * 333,
        "a" * 90 + ".txt": b"long name, RFC 2231 continuations\n",
    }
    msg = EmailMessage()
    msg["From"] = "Alice <alice@example.org>"
    msg["To"] = "bob@example.org"
    msg["Subject"] = "files"
    msg.set_content("see attached")
    msg.add_attachment(
        files["report.pdf"], maintype="application", subtype="pdf", filename="report.pdf"
    )
    msg.add_attachment(
        files["naïve 文件.bin"],
        maintype="application",
        subtype="octet-stream",
        filename="naïve 文件.bin",
    )
    msg.add_attachment(
        files["a" * 90 + ".txt"], maintype="text", subtype="plain", filename="a" * 90 + ".txt"
    )
    return msg.as_bytes(policy=msg.policy.clone(linesep="\r\n")), files


def test_attachments_with_filename_size_and_sha256() -> None:
    raw, files = build_mixed()
    assert b"filename*=utf-8''na%C3%AFve" in raw
    assert b"filename*0*=" in raw
    msg = parse_message(raw)
    assert msg.subject == "files"
    got = [(a.filename, a.content_type, a.size, a.sha256, a.disposition) for a in msg.attachments]
    assert got == [
        (
            "report.pdf",
            "application/pdf",
            len(files["report.pdf"]),
            sha(files["report.pdf"]),
            "attachment",
        ),
        (
            "naïve 文件.bin",
            "application/octet-stream",
            666,
            sha(files["naïve 文件.bin"]),
            "attachment",
        ),
        (
            "a" * 90 + ".txt",
            "text/plain",
            len(files["a" * 90 + ".txt"]),
            sha(files["a" * 90 + ".txt"]),
            "attachment",
        ),
    ]
    assert msg.defects == []


def test_rfc2231_continuations_without_charset() -> None:
    raw = (
        b"Content-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\n"
        b"Content-Type: application/zip\r\n"
        b"Content-Disposition: attachment;\r\n"
        b" filename*0=part-one-;\r\n filename*1=part-two.zip\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\nUEsDBA==\r\n--XX--\r\n"
    )
    (att,) = parse_message(raw).attachments
    assert att.filename == "part-one-part-two.zip"
    assert (att.size, att.sha256) == (4, sha(b"PK\x03\x04"))


def test_rfc2047_encoded_filename_as_outlook_writes_it() -> None:
    raw = (
        b"Content-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\n"
        b'Content-Type: application/pdf; name="=?GBK?B?1cW3qw==?=.pdf"\r\n\r\nx\r\n--XX--\r\n'
    )
    assert [a.filename for a in parse_message(raw).attachments] == ["张帆.pdf"]


@pytest.mark.parametrize(
    ("disposition", "filename"),
    [
        (
            b'attachment; filename="\xe6\x96\x87\xe4\xbb\xb6.pdf"',
            "文件.pdf",
        ),  # raw UTF-8 (SMTPUTF8)
        (b'attachment; filename="caf\xe9.txt"', "café.txt"),  # raw 8-bit, windows-1252 fallback
        (b"attachment; filename*=gbk''%D5%C5%B7%AB.txt", "张帆.txt"),
        (b"attachment; filename*0*=utf-8''%E5%BC;\r\n filename*1*=%A0.txt", "张.txt"),
        (b"attachment; filename*=x-bogus''ab%E9.txt", "abé.txt"),
    ],
)
def test_filename_parameters_in_every_encoding(disposition: bytes, filename: str) -> None:
    raw = (
        b"Content-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\n"
        b"Content-Type: application/octet-stream\r\nContent-Disposition: "
        + disposition
        + b"\r\n\r\nx\r\n--XX--\r\n"
    )
    assert [a.filename for a in parse_message(raw).attachments] == [filename]


def test_suricata_rfc2231_capture_filename() -> None:
    spec = (PUBLIC / "suricata-verify" / "smtp-rfc2231.smtp-rfc2231.test.yaml").read_text("utf-8")
    (expected,) = re.findall(r"fileinfo\.filename: (\S+)", spec)
    (raw,) = data_messages(client_stream(PUBLIC / "suricata-verify" / "smtp-rfc2231.pcap"))
    msg = parse_message(raw)
    assert [a.filename for a in msg.attachments] == [expected]
    assert msg.attachments[0].content_type == "application/zip"
    assert msg.attachments[0].size > 50_000


def test_message_rfc822_attachment_does_not_leak_inner_headers() -> None:
    (raw,) = data_messages(client_stream(PUBLIC / "zeek" / "smtp-attachment-msg.pcap"))
    msg = parse_message(raw)
    # Zeek smtp.log: from sender@example.com, to recipient@example.com, subject "subject"
    assert msg.from_ == [Address("", "sender@example.com")]
    assert msg.to == [Address("", "recipient@example.com")]
    assert msg.subject == "subject"
    assert all("attachment@example.com" not in value for _, value in msg.headers)
    inner = b"From: <attachment@example.com>\r\n\r\n"
    assert [(a.filename, a.content_type, a.size, a.sha256) for a in msg.attachments] == [
        ("test.msg", "message/rfc822", len(inner), sha(inner))
    ]


def test_built_rfc822_attachment_keeps_outer_headers() -> None:
    inner = EmailMessage()
    inner["From"] = "inner@example.com"
    inner["Subject"] = "inner subject"
    inner.set_content("inner body")
    outer = EmailMessage()
    outer["From"] = "outer@example.com"
    outer["Subject"] = "outer subject"
    outer.set_content("see forwarded")
    outer.add_attachment(inner)
    msg = parse_message(outer.as_bytes())
    assert msg.from_ == [Address("", "outer@example.com")]
    assert msg.subject == "outer subject"
    assert [a.content_type for a in msg.attachments] == ["message/rfc822"]
    assert msg.attachments[0].size == len(inner.as_bytes())


def test_body_parts_are_not_attachments_but_named_files_are() -> None:
    alt = EmailMessage()
    alt.set_content("plain")
    alt.add_alternative("<p>html</p>", subtype="html")
    assert parse_message(alt.as_bytes()).attachments == []
    raw = b"Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERg==\r\n"
    assert parse_message(raw).attachments == []  # the whole message is the body, not a file
    named = raw.replace(b"\r\n\r\n", b"\r\nContent-Disposition: attachment; filename=a.pdf\r\n\r\n")
    assert [(a.filename, a.size, a.sha256) for a in parse_message(named).attachments] == [
        ("a.pdf", 4, sha(b"%PDF"))
    ]
    inline_image = EmailMessage()
    inline_image.set_content("see image")
    inline_image.add_related(b"\x89PNG", maintype="image", subtype="png", cid="<i1>")
    (att,) = parse_message(inline_image.as_bytes()).attachments
    assert (att.content_type, att.size, att.filename) == ("image/png", 4, None)


# -- bounds and hostile input ---------------------------------------------------------------


def test_broken_base64_and_missing_close_boundary_are_defects() -> None:
    raw = (
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
        b"Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        b"QUJD!!!R\r\n--b\r\nContent-Type: text/plain\r\n\r\nno end"
    )
    msg = parse_message(raw)
    assert [a.content_type for a in msg.attachments] == ["application/pdf"]
    assert "MIME: close boundary not found" in msg.defects
    assert "MIME: invalid base64 length" in msg.defects


def test_multipart_without_boundary_is_a_defect() -> None:
    msg = parse_message(b"Content-Type: multipart/mixed\r\n\r\nstuff")
    assert "MIME: no boundary in multipart" in msg.defects


def test_parts_walked_are_capped() -> None:
    parts = b"".join(
        b"--b\r\nContent-Type: application/octet-stream\r\n\r\nx\r\n" for _ in range(MAX_PARTS + 10)
    )
    msg = parse_message(b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + parts + b"--b--")
    assert len(msg.attachments) == MAX_PARTS - 1  # the root multipart counts as one part
    assert f"more than {MAX_PARTS} MIME parts: the rest not listed" in msg.defects


def test_header_count_is_capped() -> None:
    raw = b"".join(b"X-H%d: v\r\n folded\r\n" % i for i in range(MAX_HEADERS + 7)) + b"\r\n"
    msg = parse_message(raw)
    assert len(msg.headers) == MAX_HEADERS
    assert msg.headers[-1] == (f"X-H{MAX_HEADERS - 1}", "v folded")
    assert f"more than {MAX_HEADERS} header fields: 7 dropped" in msg.defects


def nested(depth: int, beside: bytes = b"", at: int = -1) -> bytes:
    """`depth` multiparts one inside the other around one attachment; `beside` is one more part
    next to the multipart at level `at`."""
    raw = bytearray(b"Subject: deep\r\n")
    for i in range(depth):
        raw += b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i)
    raw += b"Content-Type: application/x-leaf\r\nContent-Disposition: attachment; filename=leaf\r\n"
    raw += b"Content-Transfer-Encoding: base64\r\n\r\nbGVhZg==\r\n"
    for i in reversed(range(depth)):
        if i == at:
            raw += b"--b%d\r\n" % i + beside
        raw += b"--b%d--\r\n" % i
    return bytes(raw)


@pytest.mark.parametrize("depth", [30, mime.MAX_DEPTH, mime.MAX_DEPTH + 1, 1000, 3000])
def test_deeply_nested_multiparts_keep_their_attachment(depth: int) -> None:
    raw = nested(depth)
    msg = parse_message(raw)
    assert msg.subject == "deep"
    assert [(a.filename, a.content_type, a.size) for a in msg.attachments] == [
        ("leaf", "application/x-leaf", 4)
    ]
    bound = f"MIME: nesting deeper than {mime.MAX_DEPTH} levels, the parts below listed without it"
    assert msg.defects == ([bound] if depth > mime.MAX_DEPTH else [])
    assert [(a.filename, data) for a, data in attachment_payloads(raw)] == [("leaf", b"leaf")]


FORWARDED = b"Content-Type: message/rfc822\r\n\r\nFrom: x@example.org\r\n\r\nhi\r\n"


@pytest.mark.parametrize(("depth", "at"), [(30, 1), (1000, 1), (1000, 500)])
def test_deep_nesting_with_a_part_only_the_stdlib_reads_keeps_every_attachment(
    depth: int, at: int
) -> None:
    """A message/rfc822 part sends the message to the stdlib parser, which cannot recurse 1000
    levels: the walker reads it again, tolerantly, and says so."""
    raw = nested(depth, FORWARDED, at)
    msg = parse_message(raw)
    inner = b"From: x@example.org\r\n\r\nhi"
    listed = [(a.filename, a.content_type, a.size, a.sha256) for a in msg.attachments]
    assert listed[0] == ("leaf", "application/x-leaf", 4, sha(b"leaf"))
    assert listed[1][1] == "message/rfc822" and listed[1][2] in (len(inner), len(inner) + 2)
    assert [a for a, _ in attachment_payloads(raw)] == msg.attachments
    assert not any(d.startswith("MIME structure unreadable") for d in msg.defects)
    if depth > mime.MAX_DEPTH:
        assert any(d.startswith("MIME: nesting deeper than") for d in msg.defects)


def test_accumulator_hashes_everything_but_keeps_only_max_bytes() -> None:
    raw, files = build_mixed()
    acc = MessageAccumulator(max_bytes=600)
    for i in range(0, len(raw), 97):
        acc.feed(raw[i : i + 97])
    assert acc.size == len(raw)
    msg = acc.finish()
    assert (msg.size, msg.sha256, msg.truncated) == (len(raw), sha(raw), True)
    assert msg.subject == "files"  # the headers fit in what was kept
    assert f"only the first 600 of {len(raw)} bytes parsed" in msg.defects


def test_accumulator_whole_message_equals_parse_message() -> None:
    acc = MessageAccumulator()
    for line in SEED_POP3_RETR.splitlines(keepends=True):
        acc.feed(line)
    acc.note_gap(10)
    msg = acc.finish()
    direct = parse_message(SEED_POP3_RETR)
    assert (msg.truncated, msg.gap_bytes) == (False, 10)
    assert (msg.size, msg.sha256, msg.sender, msg.headers) == (
        direct.size,
        direct.sha256,
        direct.sender,
        direct.headers,
    )


@settings(max_examples=300)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    msg = parse_message(raw)
    assert (msg.size, msg.sha256) == (len(raw), sha(raw))
    assert not any(d.startswith("MIME structure unreadable") for d in msg.defects)


def _mutate(raw: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    data = bytearray(raw)
    for pos, cut, insert in edits:
        at = pos % (len(data) + 1)
        data[at : at + cut] = insert
    return bytes(data)


_insert = st.one_of(
    st.binary(max_size=8),
    st.sampled_from(
        [b"\r\n", b"\r\n\r\n", b":", b" ", b"=?", b"?=", b"--", b";", b'"', b"<", b"*0=", b"=\r\n"]
    ),
)
_edits = st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 20), _insert), max_size=12)


@settings(max_examples=300)
@given(st.sampled_from(["mixed", "seed-pop3", "seed-gbk"]), _edits)
def test_mutated_real_messages_never_raise(which: str, edits: list[tuple[int, int, bytes]]) -> None:
    base = {
        "mixed": build_mixed()[0],
        "seed-pop3": SEED_POP3_RETR,
        "seed-gbk": SEED_SERVER_TO_SERVER,
    }[which]
    raw = _mutate(base, edits)
    msg = parse_message(raw)
    assert msg.sha256 == sha(raw)
    assert all(isinstance(a.sha256, str) and a.size >= 0 for a in msg.attachments)
    assert not any(d.startswith("MIME structure unreadable") for d in msg.defects)


# -- other analyzers' published results -----------------------------------------------------


def _arkime_sessions(capture: str) -> list[dict[str, Any]]:
    record = json.loads((PUBLIC / "arkime" / f"{capture}.arkime.test.json").read_text("utf-8"))
    return [s["body"] for s in record["sessions3"] if "email" in s["body"]]


@pytest.mark.parametrize(
    "capture",
    [
        "smtp-decrypted",
        "smtp-subject-8859-q",
        "smtp-subject-encoded-empty",
        "smtp-subject-gb2312-b",
        "smtp-subject-utf8-mixed",
        "smtp-subject-windows",
        "smtp-zip",
    ],
)
def test_messages_match_arkime_addresses_subjects_and_attachments(capture: str) -> None:
    sessions = _arkime_sessions(capture)
    assert sessions
    for session in sessions:
        email = session["email"]
        port = session["destination"]["port"]
        parsed = [
            parse_message(raw)
            for raw in data_messages(client_stream(PUBLIC / "arkime" / f"{capture}.pcap", port))
        ]
        if "id" in email:
            (msg,) = [m for m in parsed if m.message_id == f"<{email['id'][0]}>"]
        else:
            (msg,) = parsed
        assert [msg.subject] == email["subject"]
        assert [a.address.lower() for a in msg.from_] == email["src"]
        assert sorted(a.address.lower() for a in msg.to + msg.cc) == sorted(email["dst"])
        assert [a.filename for a in msg.attachments] == email.get("filename", [])
        assert {a.sha256 for a in msg.attachments} <= set(email.get("sha256", []))


def _zeek_smtp_log(name: str) -> list[dict[str, str]]:
    lines = (PUBLIC / "zeek" / name).read_text("utf-8").splitlines()
    (fields,) = [line.split("\t")[1:] for line in lines if line.startswith("#fields")]
    rows = [line.split("\t") for line in lines if line and not line.startswith("#")]
    return [dict(zip(fields, row, strict=True)) for row in rows]


def _zeek_addresses(value: str) -> list[str]:
    if value in ("-", "(empty)"):
        return []
    return re.findall(r"[^\s<>,\"]+@[^\s<>,\"]+", re.sub(r'"[^"]*"', "", value))


@pytest.mark.parametrize(
    ("capture", "log"),
    [
        ("smtp", "smtp.zeek.smtp-basic.smtp.log"),
        ("smtp-attachment-msg", "smtp-attachment-msg.zeek.smtp-attachment-msg.smtp.log"),
        (
            "smtp-bdat-pipeline-8bitmime",
            "smtp-bdat-pipeline-8bitmime.zeek.bdat-pipeline-8bitmime.smtp.log",
        ),
        ("rfc3030-bdat-example1", "rfc3030-bdat-example1.zeek.bdat.smtp.log"),
        (
            "rfc3030-bdat-multipart-chunked",
            "rfc3030-bdat-multipart-chunked.zeek.bdat-multipart-chunked.smtp.log",
        ),
    ],
)
def test_messages_match_zeek_smtp_log_headers(capture: str, log: str) -> None:
    rows = [r for r in _zeek_smtp_log(log) if r["from"] != "-" or r["subject"] != "-"]
    parsed = [
        parse_message(raw)
        for raw in data_messages(client_stream(PUBLIC / "zeek" / f"{capture}.pcap"))
    ]
    assert len(parsed) == len(rows)
    for row, msg in zip(rows, parsed, strict=True):
        assert (msg.subject or "-") == row["subject"]
        assert (msg.date or "-") == row["date"]
        assert (msg.message_id or "-") == row["msg_id"]
        assert [a.address for a in msg.from_] == _zeek_addresses(row["from"])
        assert sorted(a.address for a in msg.to) == sorted(_zeek_addresses(row["to"]))
        assert sorted(a.address for a in msg.cc) == sorted(_zeek_addresses(row["cc"]))


def test_bdat_chunked_png_attachment_is_the_file_zeek_hashed() -> None:
    (raw,) = data_messages(client_stream(PUBLIC / "zeek" / "rfc3030-bdat-multipart-chunked.pcap"))
    files = (
        PUBLIC / "zeek" / "rfc3030-bdat-multipart-chunked.zeek.bdat-multipart-chunked.files.log.cut"
    )
    (zeek_sha1,) = [
        line.split("\t")[-1]
        for line in files.read_text("utf-8").splitlines()
        if "zeek-logo.png" in line
    ]
    (att,) = parse_message(raw).attachments
    assert (att.filename, att.content_type) == ("zeek-logo.png", "image/png")
    png = next(
        p.get_payload(decode=True)
        for p in message_from_bytes(raw).walk()
        if p.get_filename() == "zeek-logo.png"
    )
    assert isinstance(png, bytes)
    assert hashlib.sha1(png).hexdigest() == zeek_sha1
    assert (att.size, att.sha256) == (len(png), sha(png))


def test_mail_layer_imports_no_capture_or_display_code() -> None:
    code = (
        "import sys, mailsniff.mail.mime, mailsniff.mail.rfc2047, mailsniff.mail.addresses; "
        "print(sorted(m for m in ('scapy', 'rich', 'logging', 'typer') if m in sys.modules))"
    )
    repo = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, check=True
    )
    # (the stdlib email package itself imports socket, via email.utils; nothing here uses it)
    assert out.stdout.strip() == "[]"


# -- the fast MIME walker against the stdlib parser -----------------------------------------


_MIME_DEFECTS = ("MIME: ", "MIME structure", f"more than {MAX_PARTS} MIME parts")


def stdlib_reference(raw: bytes) -> tuple[list[tuple[str | None, str, int, str]], list[str]]:
    """Attachments and MIME defects as the stdlib parser alone reads the message."""
    msg = Message(size=len(raw), sha256=sha(raw))
    block = mime._split(raw)
    parser = BytesParser(policy=policy.compat32)
    head = parser.parsebytes(block.normalised, headersonly=True)
    if head.get_content_maintype() in ("multipart", "message") or mime._is_attachment(
        head, mime._filename(head), is_root=True
    ):
        try:
            mime._mime_stdlib(block, raw, msg)
        except Exception as exc:  # as parse_message reports it
            msg.defects.append(f"MIME structure unreadable: {type(exc).__name__}")
    else:
        msg.defects.extend(mime._defect_text(d) for d in head.defects)
    got = [(a.filename, a.content_type, a.size, a.sha256) for a in msg.attachments]
    return got, list(dict.fromkeys(d for d in msg.defects if d.startswith(_MIME_DEFECTS)))


def fast_result(raw: bytes) -> tuple[list[tuple[str | None, str, int, str]], list[str]]:
    msg = parse_message(raw)
    got = [(a.filename, a.content_type, a.size, a.sha256) for a in msg.attachments]
    # The top-level header block's own defects are not MIME's, even when a damaged field is
    # named `MIME` and its defect reads "MIME: 8-bit header bytes ..." (hypothesis found one).
    block = mime._split(raw)
    headers = Message(size=len(raw), sha256="")
    headers.defects.extend(block.defects)
    mime._fill_headers(block.fields, headers)
    return got, [d for d in msg.defects if d.startswith(_MIME_DEFECTS) and d not in headers.defects]


_names = st.one_of(
    st.none(),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=30),
)
_leaf_types = st.sampled_from(
    [("application", "octet-stream"), ("image", "png"), ("text", "plain"), ("application", "pdf")]
)
_ascii = st.characters(max_codepoint=127)


@st.composite
def built_messages(draw: st.DrawFn, depth: int = 0) -> EmailMessage:
    msg = EmailMessage()
    if depth == 0:
        msg["From"] = "a@example.org"
        msg["Subject"] = "differential"
    msg.set_content(draw(st.text(max_size=200)) or "body")
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["leaf", "leaf", "nested", "text"]))
        if kind == "nested" and depth < 2:
            msg.add_attachment(draw(built_messages(depth + 1)))  # message/rfc822: stdlib path
            continue
        if kind == "text":
            text = draw(st.text(max_size=300))
            name = draw(_names)
            cte = draw(st.sampled_from(["quoted-printable", "base64", "8bit"]))
            msg.add_attachment(text, filename=name, cte=cte)
            continue
        maintype, subtype = draw(_leaf_types)
        data = draw(st.binary(max_size=3000))
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=draw(_names))
    if draw(st.booleans()):
        msg.preamble = draw(st.text(_ascii, max_size=50))
        msg.epilogue = draw(st.text(_ascii, max_size=50))
    return msg


@settings(max_examples=300, deadline=None)
@given(built_messages(), st.sampled_from(["\r\n", "\n"]))
def test_fast_walker_lists_what_the_stdlib_parser_lists(built: EmailMessage, linesep: str) -> None:
    raw = built.as_bytes(policy=built.policy.clone(linesep=linesep))
    assert fast_result(raw) == stdlib_reference(raw)


@settings(max_examples=500, deadline=None)
@given(built_messages(), st.sampled_from(["\r\n", "\n"]), _edits)
def test_fast_walker_matches_the_stdlib_on_damaged_messages(
    built: EmailMessage, linesep: str, edits: list[tuple[int, int, bytes]]
) -> None:
    """Cut delimiters, bare CRs, stray '--', broken base64: same attachments, same defects."""
    raw = _mutate(built.as_bytes(policy=built.policy.clone(linesep=linesep)), edits)
    assert fast_result(raw) == stdlib_reference(raw)


_tricky = [
    # preamble and epilogue, whitespace after the delimiter, a close delimiter right after one
    b"--b\r\nContent-Type: image/png\r\n\r\nAAA\r\n--b  \r\n--b--\r\n"
    b"Content-Type: image/gif\r\n\r\nBBB\r\n--b--\t\r\nepilogue\r\n",
    # boundary text inside a line and a longer boundary sharing the prefix
    b"pre\r\n--b\r\nContent-Type: image/png\r\n\r\nx--b\r\n--bb\r\n--b\r\n"
    b"Content-Type: application/x\r\n\r\ny\r\n--b--",
    # nested multipart without its close delimiter, outer close still found
    b"--b\r\nContent-Type: multipart/mixed; boundary=c\r\n\r\n--c\r\n"
    b"Content-Type: image/png\r\n\r\nin\r\n--b\r\nContent-Type: image/gif\r\n\r\nout\r\n--b--\r\n",
    # bare CR before a delimiter, LF-only, missing header/body separator
    b"--b\r\nContent-Type: image/png\r\n\r\nxx\r--b\r\nContent-Type: image/gif\r\n\r\nyy\r\n--b--",
    b"--b\nContent-Type: image/png\n\nxx\n--b\nnot a header line\n\nyy\n--b--\n",
    # no start delimiter; only a close delimiter; base64 with junk and without padding
    b"just text\r\n--b--\r\n",
    b"--b\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\nQUJD!R\r\n--b\r\n"
    b"Content-Type: image/gif\r\nContent-Transfer-Encoding: base64\r\n\r\nQUI\r\n--b--\r\n",
    # uuencode and a multipart with a non-identity transfer encoding
    b"--b\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\n"
    b"begin 644 a\r\n#86)C\r\n`\r\nend\r\n--b--\r\n",
]


@pytest.mark.parametrize("body", _tricky)
@pytest.mark.parametrize("encoding", ["7bit", "base64"])
def test_fast_walker_matches_the_stdlib_on_delimiter_corner_cases(
    body: bytes, encoding: str
) -> None:
    raw = (
        b"Content-Type: multipart/mixed; boundary=b\r\nContent-Transfer-Encoding: "
        + encoding.encode()
        + b"\r\n\r\n"
        + body
    )
    assert fast_result(raw) == stdlib_reference(raw)
    assert fast_result(raw.replace(b"\r\n", b"\n")) == stdlib_reference(raw.replace(b"\r\n", b"\n"))


def test_fast_walker_decodes_attachments_of_the_benchmark_messages() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    from make_capture import AttachmentPool, build_message

    rng = random.Random(3)
    pool = AttachmentPool(rng)
    for serial in range(20):
        raw = build_message(rng, pool, serial, "a@example.org", ["b@example.org"], [], 0)
        (att,) = parse_message(raw).attachments
        assert fast_result(raw) == stdlib_reference(raw)
        assert att.size > 20_000


@settings(max_examples=300)
@given(st.sampled_from(["mixed", "seed-pop3", "seed-gbk"]), _edits)
def test_top_level_header_fields_are_read_as_the_stdlib_reads_them(
    which: str, edits: list[tuple[int, int, bytes]]
) -> None:
    base = {
        "mixed": build_mixed()[0],
        "seed-pop3": SEED_POP3_RETR,
        "seed-gbk": SEED_SERVER_TO_SERVER,
    }[which]
    block = mime._split(_mutate(base, edits))
    head = mime._root_head(block)
    reference = BytesParser(policy=policy.compat32).parsebytes(block.normalised, headersonly=True)
    assert head.items() == reference.items()
    assert [repr(d) for d in head.defects] == [repr(d) for d in reference.defects]
    assert head.get_unixfrom() == reference.get_unixfrom()


def test_typical_mail_is_walked_without_the_stdlib_body_parser() -> None:
    """The fast walker reads a typical multipart message alone, CRLF or LF-only: it does not
    hand it over to the stdlib parser (`_Fallback`), and it finds every attachment, the same
    ones `parse_message` reports."""
    raw, files = build_mixed()
    lf_only = raw.replace(b"\r\n", b"\n")
    for message in (raw, lf_only):
        block = mime._split(message)
        walked = Message(size=len(message), sha256=sha(message))
        mime._mime_fast(mime._root_head(block), block, message, walked)  # raises _Fallback
        assert [a.sha256 for a in walked.attachments] == [sha(data) for data in files.values()]
        assert not any(d.startswith("MIME structure unreadable") for d in walked.defects)
        assert parse_message(message).attachments == walked.attachments


def test_accumulator_header_cut_by_a_gap_keeps_only_what_was_seen() -> None:
    acc = MessageAccumulator()
    acc.feed(b"From: a@example.com\r\nMessage-ID: <re")
    acc.note_gap(13)  # "port.20060703" never captured
    acc.feed(b"703@163.com>\r\nSubject: whole\r\n\r\nbody\r\n")
    msg = acc.finish()
    assert msg.message_id == "<re"
    assert msg.subject == "whole"
    assert ("Message-ID", "<re") in msg.headers
    assert "Message-ID: cut by a capture gap, only the part before it is shown" in msg.defects
    assert msg.gap_bytes == 13


def test_accumulator_gap_between_header_lines_cuts_nothing() -> None:
    acc = MessageAccumulator()
    acc.feed(b"From: a@example.com\r\n")
    acc.note_gap(20)
    acc.feed(b"To: b@example.com\r\n\r\nbody\r\n")
    msg = acc.finish()
    assert [a.address for a in msg.to] == ["b@example.com"]
    assert not any("capture gap" in d for d in msg.defects)


def test_indented_lines_that_look_like_headers_are_flagged_not_glued_into_from() -> None:
    raw = (
        b"From: admin@example.net\r\n"
        b"    To: bob@example.org\r\n"
        b"    Subject: Python email test\r\n"
        b"\r\nbody\r\n"
    )
    msg = parse_message(raw)
    assert msg.from_ == [Address("", "admin@example.net")]
    assert (msg.to, msg.subject) == ([], None)  # folded into From, never headers of their own
    assert msg.defects == [
        "From: folded continuation lines look like headers: To, Subject (not read as addresses)"
    ]
    # RFC 5322 unfolding: CRLF + WSP becomes WSP, the words stay apart
    assert msg.headers == [
        ("From", "admin@example.net    To: bob@example.org    Subject: Python email test")
    ]


def test_ordinary_folding_is_not_flagged() -> None:
    msg = parse_message(
        SEED_POP3_RETR.replace(b"SUBJECT: test by telnet/smtp", b"Subject: Fwd: a\r\n Re: b")
    )
    assert msg.subject == "Fwd: a Re: b"
    assert not any("look like headers" in d for d in msg.defects)


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.tuples(st.booleans(), st.booleans(), st.binary(max_size=40)), min_size=66, max_size=90
    )
)
def test_parts_below_the_nesting_bound_are_the_ones_the_stdlib_finds(
    levels: list[tuple[bool, bool, bytes]],
) -> None:
    """Leaves before and after each nested multipart: flattened below the bound, the same
    attachments in the same order as the stdlib parser's full tree (which still reads 90 levels)."""
    head = bytearray(b"Subject: deep\r\n")
    tail = bytearray()
    for i, (before, after, data) in enumerate(levels):
        leaf = b"--b%d\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\n" % i
        leaf += base64.encodebytes(data).replace(b"\n", b"\r\n") + b"\r\n"
        head += b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n' % i
        head += leaf if before else b""
        head += b"--b%d\r\n" % i
        tail = (leaf if after else b"") + b"--b%d--\r\n" % i + tail
    raw = bytes(head + b"Content-Type: application/x-leaf\r\n\r\nx\r\n" + tail)
    got, defects = fast_result(raw)
    assert got == stdlib_reference(raw)[0]
    assert (
        f"MIME: nesting deeper than {mime.MAX_DEPTH} levels, the parts below listed without it"
        in (defects)
    )


def test_parts_below_the_nesting_bound_are_capped_too() -> None:
    inner = b"".join(
        b"--deep\r\nContent-Type: application/octet-stream\r\n\r\nx\r\n" for _ in range(MAX_PARTS)
    )
    raw = nested(
        mime.MAX_DEPTH + 1,
        b'Content-Type: multipart/mixed; boundary="deep"\r\n\r\n' + inner + b"--deep--\r\n",
        mime.MAX_DEPTH,
    )
    msg = parse_message(raw)
    assert 0 < len(msg.attachments) < MAX_PARTS
    assert f"more than {MAX_PARTS} MIME parts: the rest not listed" in msg.defects
    assert "MIME: close boundary not found" not in msg.defects


_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _base64_like() -> st.SearchStrategy[bytes]:
    """Real base64 of some bytes, sometimes damaged; or bytes near the alphabet."""
    encoded = st.binary(max_size=60).map(lambda b: base64.b64encode(b))
    damaged = st.tuples(encoded, st.lists(st.tuples(st.integers(0, 100), st.sampled_from(
        list(b"=-_ .\x00\xff\r\n") + list(_B64_ALPHABET[:4])
    )), max_size=3)).map(_damage)  # fmt: skip
    near = st.lists(st.sampled_from(list(_B64_ALPHABET + b"====\r\n -_")), max_size=40).map(bytes)
    return st.one_of(encoded, damaged, near)


def _damage(spec: tuple[bytes, list[tuple[int, int]]]) -> bytes:
    data = bytearray(spec[0])
    for where, byte in spec[1]:
        if data:
            data[where % len(data)] = byte
    return bytes(data)


@settings(max_examples=3000)
@given(_base64_like())
def test_attachment_base64_decodes_as_the_stdlib_does(encoded: bytes) -> None:
    """The SIMD decoder in front of binascii changes no result and no defect: what
    Message.get_payload(decode=True) gives for the same base64 body (email._encoded_words)."""
    from email._encoded_words import decode_b  # type: ignore[import-not-found]

    data, defects = mime._decode_base64(encoded)
    want, want_defects = decode_b(encoded)
    assert data == want
    assert [type(d) for d in defects] == [type(d) for d in want_defects]
