"""Greeting detection on ports that are not mail ports: what the pipeline's probe asks of the
first server bytes of every flow it watches."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mailsniff.protocols import pop3, smtp
from mailsniff.session import imap_entry

# The first line as the RFCs define a greeting, read the plain way: cut at the first newline,
# case folded. The parsers answer without copying that line for the flows that are not mail.
_PIECES = st.sampled_from(
    [b"220", b" ", b"-", b"smtp", b"ESMTP", b"+ok", b"+OK", b"+O", b"\n", b"\r\n", b"x", b"2"]
    + [b"*", b"* ", b"ok", b"OK", b"preauth", b"BYE", b"\r"]
)
_PAYLOADS = st.lists(_PIECES, max_size=12).map(b"".join) | st.binary(max_size=40)


def _first_line(payload: bytes) -> bytes:
    return payload[:512].split(b"\n", 1)[0].upper()


@given(_PAYLOADS)
def test_smtp_greeting_is_a_220_line_naming_smtp(payload: bytes) -> None:
    line = _first_line(payload)
    expected = line.startswith((b"220 ", b"220-")) and b"SMTP" in line
    assert smtp.is_greeting(payload) == expected


@given(_PAYLOADS)
def test_pop3_greeting_is_a_first_line_opening_with_ok(payload: bytes) -> None:
    assert pop3.is_greeting(payload) == _first_line(payload).startswith(b"+OK")


@given(_PAYLOADS)
def test_imap_greeting_is_an_untagged_ok_preauth_or_bye(payload: bytes) -> None:
    expected = payload[:12].upper().startswith((b"* OK ", b"* OK\r", b"* PREAUTH", b"* BYE "))
    assert imap_entry.is_greeting(payload) == expected


def test_greetings_of_real_servers() -> None:
    assert smtp.is_greeting(b"220 mx.example.org ESMTP Postfix\r\n")
    assert smtp.is_greeting(b"220-mx.example.org ESMTP\r\n220 ready\r\n")
    assert not smtp.is_greeting(b"220 ProFTPD Server ready.\r\n")
    assert not smtp.is_greeting(b"HTTP/1.1 200 OK\r\n\r\nSMTP")
    assert pop3.is_greeting(b"+OK Dovecot ready.\r\n")
    assert pop3.is_greeting(b"+ok\r\n")
    assert not pop3.is_greeting(b"+O\nK")
    assert not pop3.is_greeting(b"* OK IMAP4rev1 ready\r\n")
    assert imap_entry.is_greeting(b"* OK [CAPABILITY IMAP4rev1] Dovecot ready.\r\n")
    assert imap_entry.is_greeting(b"* ok\r\n")
    assert not imap_entry.is_greeting(b"+OK Dovecot ready.\r\n")
