"""Tests for the POP3 session builder: the seed session, auth mechanisms, messages, transcript."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from unittest.mock import patch

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailsniff.limits import MAX_LINE, MAX_TRANSCRIPT_DATA_LINES
from mailsniff.model import Protocol, Session
from mailsniff.protocols.base import Direction
from mailsniff.session.base import SessionHandler, TranscriptRecorder
from mailsniff.session.pop3 import Pop3SessionHandler, decode_oauthbearer
from tests.factories import make_session
from tests.paths import PUBLIC, REPO
from tests.seed_dialogues import SEED_RETR, SEED_SESSION, SEED_TOP

C, S = Direction.CLIENT, Direction.SERVER

Step = tuple[Direction, bytes] | tuple[str, Direction, int]


def new_session() -> Session:
    return make_session(Protocol.POP3, client=("192.0.2.10", 40000), server=("202.108.5.104", 110))


def build(steps: Sequence[Step], *, bytewise: bool = False, segment: int = 0) -> Session:
    """Fold `steps`; each step fed whole, byte by byte, or in `segment`-byte pieces."""
    session = new_session()
    handler: SessionHandler = Pop3SessionHandler(session)
    for ts, step in enumerate(steps):
        if len(step) == 3:
            _, direction, length = step
            assert isinstance(direction, Direction) and isinstance(length, int)
            handler.gap(ts, direction, length)
        else:
            direction, data = step
            assert isinstance(direction, Direction) and isinstance(data, bytes)
            size = 1 if bytewise else segment or len(data) or 1
            pieces = [data[i : i + size] for i in range(0, len(data), size)]
            for piece in pieces:
                handler.data(ts, direction, piece)
    handler.close(len(steps))
    return session


# --------------------------------------------------------------------------------------------
# The seed session
# --------------------------------------------------------------------------------------------


def test_pop3_session_seed_banner_auth_and_mailbox_stats() -> None:
    s = build(SEED_SESSION)
    assert s.banner == "+OK Welcome to coremail Mail Pop3 Server (163com[20050206])"
    assert len(s.auth) == 1
    a = s.auth[0]
    assert (a.mechanism, a.username, a.password, a.success, a.reply) == (
        "USER",
        "crazywill",
        "mypassword",
        True,
        "+OK 254 message(s) [27676669 byte(s)]",
    )
    assert s.mailbox_stats == [(254, 27676669), (253, 27676315)]
    assert s.deleted == [254]
    assert s.anomalies == []
    assert not s.tls


def test_pop3_session_seed_top_and_retr_messages() -> None:
    s = build(SEED_SESSION)
    top, retr = s.messages
    assert (top.command, top.number, top.partial) == ("TOP 254 0", 254, True)
    assert top.message.sha256 == hashlib.sha256(SEED_TOP).hexdigest()
    assert (retr.command, retr.number, retr.partial) == ("RETR 254", 254, False)
    assert retr.message.size == len(SEED_RETR) == 365
    assert retr.message.sha256 == hashlib.sha256(SEED_RETR).hexdigest()
    assert retr.message.gap_bytes == 0


def test_pop3_session_seed_exchanges_pair_commands_with_first_reply_lines() -> None:
    s = build(SEED_SESSION)
    assert [(e.command, e.argument, e.reply, e.reply_lines) for e in s.exchanges] == [
        ("USER", "crazywill", "+OK core mail", 1),
        ("PASS", "mypassword", "+OK 254 message(s) [27676669 byte(s)]", 1),
        ("STAT", "", "+OK 254 27676669", 1),
        ("LIST", "", "+OK 254 27676669", 9),
        ("TOP", "254 0", "+OK core mail", 10),
        ("RETR", "254", "+OK 354 octets", 12),
        ("DELE", "254", "+OK core mail", 1),
        ("STAT", "", "+OK 253 27676315", 1),
        ("QUIT", "", "+OK core mail", 1),
    ]


def test_pop3_session_seed_transcript_has_every_line_in_order() -> None:
    s = build(SEED_SESSION)
    texts = [(t.direction, t.text) for t in s.transcript]
    assert texts[:5] == [
        (S, "+OK Welcome to coremail Mail Pop3 Server (163com[20050206])"),
        (C, "USER crazywill"),
        (S, "+OK core mail"),
        (C, "PASS mypassword"),
        (S, "+OK 254 message(s) [27676669 byte(s)]"),
    ]
    wire_lines = sum(data.count(b"\n") for _, data in SEED_SESSION)  # type: ignore[misc]
    assert len(s.transcript) == wire_lines
    assert texts[-2:] == [(C, "QUIT"), (S, "+OK core mail")]


def test_pop3_session_is_the_same_when_fed_byte_by_byte() -> None:
    whole, bytewise = build(SEED_SESSION), build(SEED_SESSION, bytewise=True)
    assert whole.auth == bytewise.auth
    assert whole.messages == bytewise.messages
    assert whole.exchanges == bytewise.exchanges
    assert whole.transcript == bytewise.transcript


# --------------------------------------------------------------------------------------------
# Authentication
# --------------------------------------------------------------------------------------------


def test_pop3_session_failed_pass_is_recorded_with_the_err_reply() -> None:
    s = build(
        [
            (S, b"+OK CMailServer 5.2 POP3 Service Ready\r\n"),
            (C, b"USER test@tt.com\r\n"),
            (S, b"+OK welcome here\r\n"),
            (C, b"PASS 123456\r\n"),
            (S, b"-ERR the password incorrect\r\n"),
            (C, b"QUIT\r\n"),
            (S, b"+OK bye\r\n"),
        ]
    )
    (a,) = s.auth
    assert (a.username, a.password, a.success, a.reply) == (
        "test@tt.com",
        "123456",
        False,
        "-ERR the password incorrect",
    )


def test_pop3_session_user_rejected_ends_that_attempt() -> None:
    s = build(
        [
            (S, b"+OK ready\r\n"),
            (C, b"USER nobody\r\n"),
            (S, b"-ERR unknown user\r\n"),
            (C, b"USER alice\r\n"),
            (S, b"+OK\r\n"),
            (C, b"PASS s3cret\r\n"),
        ]
    )
    first, second = s.auth
    assert (first.username, first.password, first.success) == ("nobody", None, False)
    # The PASS answer was never captured: success unknown, not False.
    assert (second.username, second.password, second.success, second.reply) == (
        "alice",
        "s3cret",
        None,
        None,
    )


def test_pop3_session_apop_keeps_challenge_and_digest_without_a_password() -> None:
    challenge = "<1896.697170952@dbc.mtview.ca.us>"
    digest = hashlib.md5((challenge + "tanstaaf").encode()).hexdigest()
    s = build(
        [
            (S, b"+OK POP3 server ready " + challenge.encode() + b"\r\n"),
            (C, b"APOP mrose " + digest.encode() + b"\r\n"),
            (S, b"+OK maildrop has 1 message (369 octets)\r\n"),
        ]
    )
    (a,) = s.auth
    assert digest == "c4c9334bac560ecc979e58001b3e22fb"  # RFC 1939 7's example
    assert (a.mechanism, a.username, a.password, a.challenge, a.response, a.success) == (
        "APOP",
        "mrose",
        None,
        challenge,
        digest,
        True,
    )


def test_pop3_session_auth_plain_after_continuation_decodes_credentials() -> None:
    blob = base64.b64encode(b"admin\x00digitalinvestigator@networksims.com\x00napier123")
    s = build(
        [
            (S, b"+OK POP server ready\r\n"),
            (C, b"AUTH PLAIN\r\n"),
            (S, b"+ \r\n"),
            (C, blob + b"\r\n"),
            (S, b'+OK mailbox "digitalinvestigator@networksims.com" has 3 messages\r\n'),
        ]
    )
    (a,) = s.auth
    assert (a.mechanism, a.authzid, a.username, a.password, a.success) == (
        "PLAIN",
        "admin",
        "digitalinvestigator@networksims.com",
        "napier123",
        True,
    )
    note = [t.note for t in s.transcript if t.text == blob.decode()]
    assert note == ["authzid=admin authcid=digitalinvestigator@networksims.com password=napier123"]


def test_pop3_session_auth_plain_initial_response_failure() -> None:
    blob = base64.b64encode(b"\x00bob\x00wrong")
    s = build(
        [
            (S, b"+OK ready\r\n"),
            (C, b"AUTH PLAIN " + blob + b"\r\n"),
            (S, b"-ERR [AUTH] authentication failed\r\n"),
        ]
    )
    (a,) = s.auth
    assert (a.username, a.password, a.authzid, a.success, a.reply) == (
        "bob",
        "wrong",
        None,
        False,
        "-ERR [AUTH] authentication failed",
    )
    # The AUTH line is shown once, with its decoded initial response.
    lines = [t for t in s.transcript if t.direction is C]
    assert [(t.text, t.note) for t in lines] == [
        ("AUTH PLAIN " + blob.decode(), "authcid=bob password=wrong")
    ]


def test_pop3_session_auth_login_plain_typed_credentials_are_shown_as_sent() -> None:
    s = build(
        [
            (S, b"+OK ready\r\n"),
            (C, b"AUTH LOGIN\r\n"),
            (S, b"+ VXNlcm5hbWU6\r\n"),
            (C, b"crazywill\r\n"),
            (S, b"+ UGFzc3dvcmQ6\r\n"),
            (C, b"mypassword\r\n"),
            (S, b"-ERR authentication failed\r\n"),
            (C, b"AUTH LOGIN\r\n"),
            (S, b"+ VXNlcm5hbWU6\r\n"),
            (C, b"Y3Jhenl3aWxs\r\n"),
            (S, b"+ UGFzc3dvcmQ6\r\n"),
            (C, b"bXlwYXNzd29yZA==\r\n"),
            (S, b"+OK Authentication successful\r\n"),
        ]
    )
    typed, encoded = s.auth
    assert (typed.username, typed.password, typed.not_base64, typed.success) == (
        "crazywill",
        "mypassword",
        True,
        False,
    )
    assert (encoded.username, encoded.password, encoded.not_base64, encoded.success) == (
        "crazywill",
        "mypassword",
        False,
        True,
    )
    notes = {t.text: t.note for t in s.transcript}
    assert notes["+ VXNlcm5hbWU6"] == "decoded: Username:"
    assert notes["bXlwYXNzd29yZA=="] == "password: mypassword"


def test_pop3_session_auth_cram_md5_keeps_user_challenge_and_digest() -> None:
    challenge = b"<1896.697170952@postoffice.reston.mci.net>"
    digest = hmac.new(b"tanstaaftanstaaf", challenge, "md5").hexdigest()
    s = build(
        [
            (S, b"+OK ready\r\n"),
            (C, b"AUTH CRAM-MD5\r\n"),
            (S, b"+ " + base64.b64encode(challenge) + b"\r\n"),
            (C, base64.b64encode(b"tim " + digest.encode()) + b"\r\n"),
            (S, b"+OK\r\n"),
        ]
    )
    (a,) = s.auth
    assert digest == "b913a602c7eda7a495b4e6e7334d3890"  # RFC 2195 2's example
    assert (a.mechanism, a.username, a.password, a.challenge, a.response, a.success) == (
        "CRAM-MD5",
        "tim",
        None,
        challenge.decode(),
        digest,
        True,
    )


def test_pop3_session_auth_xoauth2_puts_the_token_in_password() -> None:
    blob = b"dXNlcj1qb2Uuc3BlZWRib2F0AWF1dGg9QmVhcmVyIEFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUEBAQ=="
    s = build(
        [
            (C, b"AUTH XOAUTH2\r\n"),
            (S, b"+ \r\n"),
            (C, blob + b"\r\n"),
            (S, b"+OK Welcome.\r\n"),
        ]
    )
    (a,) = s.auth
    assert (a.mechanism, a.username, a.password, a.response, a.success) == (
        "XOAUTH2",
        "joe.speedboat",
        "A" * 28,  # the bearer token is the secret, as in SMTP
        None,
        True,
    )


def test_pop3_session_xoauth2_error_challenge_and_empty_response() -> None:
    error = base64.b64encode(
        b'{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}'
    )
    blob = base64.b64encode(b"user=someuser@example.com\x01auth=Bearer ya29.vF9dft4qmT\x01\x01")
    s = build(
        [
            (S, b"+OK Gpop ready\r\n"),
            (C, b"AUTH XOAUTH2 " + blob + b"\r\n"),
            (S, b"+ " + error + b"\r\n"),
            (C, b"\r\n"),
            (S, b"-ERR [AUTH] Invalid credentials\r\n"),
            (C, b"QUIT\r\n"),
            (S, b"+OK bye\r\n"),
        ]
    )
    (a,) = s.auth
    assert (a.username, a.password, a.response, a.success, a.not_base64) == (
        "someuser@example.com",
        "ya29.vF9dft4qmT",
        None,
        False,
        False,
    )
    assert a.reply == "-ERR [AUTH] Invalid credentials"
    assert [e.command for e in s.exchanges] == ["AUTH", "QUIT"]
    notes = [t.note for t in s.transcript if t.text.startswith("+ ")]
    assert notes == [
        'decoded: {"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}'
    ]


def test_pop3_session_oauthbearer_decoder() -> None:
    data = b"n,a=user@example.com,\x01host=server.example.com\x01auth=Bearer vF9dft4qmT\x01\x01"
    assert decode_oauthbearer(data) == ("user@example.com", "vF9dft4qmT")
    assert decode_oauthbearer(b"\xff\x01garbage") == (None, None)


def test_pop3_session_auth_cancelled() -> None:
    s = build(
        [
            (S, b"+OK ready\r\n"),
            (C, b"AUTH LOGIN\r\n"),
            (S, b"+ VXNlcm5hbWU6\r\n"),
            (C, b"*\r\n"),
            (S, b"-ERR authentication cancelled\r\n"),
        ]
    )
    (a,) = s.auth
    assert (a.cancelled, a.success, a.username) == (True, False, None)


# --------------------------------------------------------------------------------------------
# CAPA, STLS, listings
# --------------------------------------------------------------------------------------------


def test_pop3_session_capabilities_come_from_capa() -> None:
    s = build(
        [
            (S, b"+OK ready\r\n"),
            (C, b"CAPA\r\n"),
            (
                S,
                b"+OK Capability list follows\r\nTOP\r\nUSER\r\nUIDL\r\nSTLS\r\nSASL PLAIN\r\n"
                b"IMPLEMENTATION trinity\r\n.\r\n",
            ),
        ]
    )
    assert s.capabilities == ["TOP", "USER", "UIDL", "STLS", "SASL PLAIN", "IMPLEMENTATION trinity"]
    assert s.exchanges[0].reply_lines == 7


def test_pop3_session_stls_sets_tls_and_ignores_the_rest() -> None:
    s = build(
        [
            (S, b"+OK ready\r\n"),
            (C, b"STLS\r\n"),
            (S, b"+OK Begin TLS\r\n"),
            (C, b"\x16\x03\x01\x02\x00USER x\r\nPASS y\r\n"),
            (S, b"\x16\x03\x03-ERR\r\n"),
        ]
    )
    assert s.tls
    assert s.auth == []
    assert [e.command for e in s.exchanges] == ["STLS"]
    assert s.transcript[-1].note == "TLS from here on: not parsed"


def test_pop3_session_single_line_list_and_uidl_are_one_reply_line() -> None:
    s = build(
        [
            (S, b"+OK ready\r\n"),
            (C, b"LIST 1\r\nUIDL 1\r\nUIDL\r\n"),
            (S, b"+OK 1 120\r\n+OK 1 abc\r\n+OK\r\n1 abc\r\n2 def\r\n.\r\n"),
        ]
    )
    assert [(e.command, e.argument, e.reply, e.reply_lines) for e in s.exchanges] == [
        ("LIST", "1", "+OK 1 120", 1),
        ("UIDL", "1", "+OK 1 abc", 1),
        ("UIDL", "", "+OK", 3),
    ]


def test_pop3_session_unanswered_command_has_no_reply() -> None:
    s = build([(S, b"+OK ready\r\n"), (C, b"QUIT\r\n")])
    assert [(e.command, e.reply, e.reply_lines) for e in s.exchanges] == [("QUIT", None, 0)]


# --------------------------------------------------------------------------------------------
# Damage
# --------------------------------------------------------------------------------------------


def test_pop3_session_gap_inside_retr_makes_the_message_partial() -> None:
    s = build(
        [
            (S, b"+OK ready\r\n"),
            (C, b"RETR 7\r\n"),
            (S, b"+OK\r\nSubject: gap\r\n\r\nfirst\r\nsec"),
            ("gap", S, 1000),
            (S, b"ond tail\r\nlast\r\n.\r\n"),
            (C, b"DELE 7\r\n"),
            (S, b"+OK\r\n"),
        ]
    )
    (m,) = s.messages
    assert (m.command, m.number, m.partial) == ("RETR 7", 7, True)
    assert m.message.gap_bytes == 1000
    kept = b"Subject: gap\r\n\r\nfirst\r\nsec" + b"ond tail\r\nlast\r\n"
    assert (m.message.size, m.message.sha256) == (len(kept), hashlib.sha256(kept).hexdigest())
    assert s.deleted == [7]
    assert any("1000 bytes never captured" in (t.note or "") for t in s.transcript)


def test_pop3_session_close_mid_retr_keeps_the_partial_message() -> None:
    s = build([(S, b"+OK ready\r\n"), (C, b"RETR 1\r\n"), (S, b"+OK\r\nSubject: cut\r\n\r\nab")])
    (m,) = s.messages
    assert m.partial and m.message.size == len(b"Subject: cut\r\n\r\nab")


def test_pop3_session_garbage_lines_become_anomalies_and_transcript_lines() -> None:
    s = build(
        [
            (S, b"+OK example.com POP3-Server\r\n"),
            (C, b"LIST\r\n"),
            (S, b"GARBAGE (and LIST response missing .)\r\n"),
            (S, b"+OK 2 messages (320 octets)\r\n1 120\r\n2 200\r\n"),
            (C, b"RETR 1\r\n"),
            (S, b"+OK message follows\r\nSubject: Crafted email\r\n\r\nbody\r\n.\r\n"),
        ]
    )
    assert s.anomalies[0].text.startswith("unknown-server-line: expected +OK or -ERR: 'GARBAGE")
    assert s.anomalies[1].text.startswith("missing-terminator")
    assert [m.command for m in s.messages] == ["RETR 1"]
    garbage = [t for t in s.transcript if t.text.startswith("GARBAGE")]
    assert [t.note for t in garbage] == ["unknown-server-line"]


def test_pop3_session_midstream_capture_records_what_it_can() -> None:
    s = build(
        [
            ("gap", S, 0),
            ("gap", C, 0),
            (S, b"rt of a listing\r\n3 300\r\n.\r\n"),
            (C, b"SER bob\r\nSTAT\r\n"),
            (S, b"+OK 3 900\r\n"),
        ]
    )
    assert s.banner is None
    assert s.mailbox_stats == [(3, 900)]
    assert [e.command for e in s.exchanges] == ["STAT"]


def test_pop3_session_long_message_transcript_is_capped_with_one_summary_line() -> None:
    lines = MAX_TRANSCRIPT_DATA_LINES + 50
    content = b"Subject: big\r\n\r\n" + b"".join(b"line %d\r\n" % i for i in range(lines - 2))
    s = build([(S, b"+OK ready\r\n"), (C, b"RETR 1\r\n"), (S, b"+OK\r\n" + content + b".\r\n")])
    body = [t for t in s.transcript if t.direction is S][2:]
    assert len(body) == MAX_TRANSCRIPT_DATA_LINES + 2  # shown lines, the summary, the "."
    assert body[-2].note == "50 lines not shown"
    assert body[-1].text == "."
    assert s.messages[0].message.size == len(content)
    assert s.exchanges[0].reply_lines == 1 + lines


def test_pop3_session_big_message_is_the_same_in_any_segment_size() -> None:
    lines = [b"..stuffed %d" % i if i % 9 == 0 else b"line %d" % i for i in range(3000)]
    wire = b"".join(line + (b"\n" if i % 5 == 0 else b"\r\n") for i, line in enumerate(lines))
    steps: list[Step] = [
        (S, b"+OK ready\r\n"),
        (C, b"RETR 1\r\nQUIT\r\n"),
        (S, b"+OK 3000 lines\r\nSubject: big\r\n\r\n" + wire + b".\r\n+OK bye\r\n"),
    ]
    whole = build(steps)
    content = (b"Subject: big\r\n\r\n" + wire).replace(b"\n..", b"\n.")
    (m,) = whole.messages
    assert (m.partial, m.message.size) == (False, len(content))
    assert m.message.sha256 == hashlib.sha256(content).hexdigest()
    assert [(e.command, e.reply_lines) for e in whole.exchanges] == [("RETR", 3003), ("QUIT", 1)]
    body = [t.text for t in whole.transcript if t.direction is S][2:]
    # shown as sent (still dot-stuffed), the rest counted, then the terminator and "+OK bye"
    assert body[:4] == ["Subject: big", "", "..stuffed 0", "line 1"]
    assert body[MAX_TRANSCRIPT_DATA_LINES - 1] == "line 397"
    assert body[MAX_TRANSCRIPT_DATA_LINES:] == ["[... 2602 more lines]", ".", "+OK bye"]
    for segment in (1, 7, 536, 1460, 65536):
        assert _fields(build(steps, segment=segment)) == _fields(whole)


def test_pop3_session_overlong_message_line_is_kept_and_shown_once() -> None:
    long_line = b"w" * (2 * MAX_LINE + 123)
    content = b"Subject: wide\r\n\r\n" + long_line + b"\r\nend\r\n"
    steps: list[Step] = [
        (S, b"+OK ready\r\n"),
        (C, b"RETR 1\r\n"),
        (S, b"+OK\r\n" + content + b".\r\n"),
    ]
    s = build(steps)
    (m,) = s.messages
    assert (m.partial, m.message.size, m.message.gap_bytes) == (False, len(content), 0)
    assert m.message.sha256 == hashlib.sha256(content).hexdigest()
    body = [t.text for t in s.transcript if t.direction is S][2:]
    assert body == ["Subject: wide", "", "w" * MAX_LINE, "end", "."]
    assert s.exchanges[0].reply_lines == 5
    assert s.anomalies == []
    assert _fields(build(steps, segment=1460)) == _fields(s)


_QUIET_BODY = b"Subject: quiet\r\n\r\n" + b"body line\r\n" * 50


def _lines_asked_without_transcript() -> list[str]:
    """The lines a POP3 handler asks its transcript recorder to add, the transcript not kept
    (a spy recorder patched in: the pure-Python modules only, see below)."""
    asked: list[str] = []

    class Spy(TranscriptRecorder):
        __slots__ = ()

        def add(self, ts_ns: int, direction: Direction, text: str, note: str | None = None) -> None:
            asked.append(text)
            super().add(ts_ns, direction, text, note)

    session = new_session()
    session.keep_transcript = False
    with patch("mailsniff.session.pop3.TranscriptRecorder", Spy):
        handler = Pop3SessionHandler(session)
    handler.data(0, S, b"+OK ready\r\n")
    handler.data(1, C, b"RETR 1\r\n")
    handler.data(2, S, b"+OK\r\n" + _QUIET_BODY + b".\r\n")
    handler.close(3)
    assert session.transcript == []
    (m,) = session.messages
    assert m.message.sha256 == hashlib.sha256(_QUIET_BODY).hexdigest()
    assert session.exchanges[0].reply_lines == 53
    return asked


def test_pop3_session_without_transcript_skips_the_per_line_work() -> None:
    """No body line is split out or decoded for a transcript that is not kept. Checked on the
    pure-Python modules in a process of its own: compiled code calls its classes directly,
    where no patch reaches (the compiled build is the same code; tests/test_compiled.py)."""
    code = (
        "import json; from tests.session.test_pop3_session import "
        "_lines_asked_without_transcript as f; print(json.dumps(f()))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={**os.environ, "MAILSNIFF_PURE": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == ["+OK ready", "RETR 1", "+OK", "[... 52 more lines]", "."]


@given(st.lists(st.tuples(st.sampled_from([C, S]), st.binary(max_size=80)), max_size=30))
def test_pop3_session_arbitrary_bytes_never_raise(steps: list[tuple[Direction, bytes]]) -> None:
    build([(S, b"+OK ready\r\n"), (C, b"RETR 1\r\n"), *steps])


# --------------------------------------------------------------------------------------------
# Real captures (streams extracted with scapy, in capture order)
# --------------------------------------------------------------------------------------------


def capture_sessions(name: str) -> list[Session]:
    """One Session per TCP connection to port 110 in `name`, fed in capture order."""
    scapy_all = pytest.importorskip("scapy.all")
    path = PUBLIC / name
    if not path.exists():
        pytest.skip(f"{path} not present")
    flows: dict[tuple[str, int], tuple[Session, Pop3SessionHandler, dict[Direction, int]]] = {}
    last_ts = 0
    for pkt in scapy_all.rdpcap(str(path)):
        if scapy_all.TCP not in pkt:
            continue
        tcp = pkt[scapy_all.TCP]
        ip = pkt[scapy_all.IP] if scapy_all.IP in pkt else pkt[scapy_all.IPv6]
        if 110 not in (tcp.sport, tcp.dport):
            continue
        direction = C if tcp.dport == 110 else S
        client = (ip.src, tcp.sport) if direction is C else (ip.dst, tcp.dport)
        ts = int(pkt.time * 1_000_000_000)
        last_ts = ts
        if tcp.flags & 0x02:  # SYN: a new connection on this 4-tuple
            session = new_session()
            flows[client] = (session, Pop3SessionHandler(session), {})
            flows[client][2][direction] = (tcp.seq + 1) & 0xFFFFFFFF
            continue
        if client not in flows:
            continue
        _, handler, next_seq = flows[client]
        header = ip.ihl * 4 if scapy_all.IP in pkt else 0
        size = (ip.len - header if scapy_all.IP in pkt else ip.plen) - tcp.dataofs * 4
        payload = bytes(tcp.payload)[:size]
        expected = next_seq.get(direction, tcp.seq)
        if not payload or tcp.seq != expected:  # no data, or a retransmission
            continue
        next_seq[direction] = (tcp.seq + len(payload)) & 0xFFFFFFFF
        handler.data(ts, direction, payload)
    for _, handler, _ in flows.values():
        handler.close(last_ts)
    return [session for session, _, _ in flows.values()]


def test_pop3_session_zeek_pop3_trace_auth_plain_and_three_retr() -> None:
    # 7 connections, 5 of them with a POP3 dialogue (the other two never carried data).
    sessions = [s for s in capture_sessions("zeek/pop3.pcap") if s.transcript]
    assert [s.banner.split(" H ")[0] if s.banner else None for s in sessions] == [
        "+OK POP server ready"
    ] * 5
    auth = [(a.mechanism, a.username, a.password, a.success) for s in sessions for a in s.auth]
    assert auth == [
        ("PLAIN", "digitalinvestigator@networksims.com", "napier", False),
        ("PLAIN", "digitalinvestigator@networksims.com", "napier123", True),
        ("PLAIN", "digitalinvestigator@networksims.com", "napier123", True),
    ]
    full = sessions[-1]
    assert full.mailbox_stats == [(3, 19191)]
    assert full.capabilities == [
        "TOP",
        "USER",
        "UIDL",
        "STLS",
        "SASL PLAIN",
        "IMPLEMENTATION trinity",
    ]
    # LIST said 5565, 8412, 5214 octets; RETR delivered exactly that, whole.
    assert [(m.command, m.partial, m.message.size) for m in full.messages] == [
        ("RETR 1", False, 5565),
        ("RETR 2", False, 8412),
        ("RETR 3", False, 5214),
    ]
    # Zeek's pop3_request/pop3_reply pairs (pop3-basic.out): AUTH with no argument got -ERR.
    assert [(e.command, e.reply) for e in full.exchanges][:3] == [
        ("AUTH", "-ERR 1 argument required"),
        ("CAPA", "+OK Capability list follows"),
        (
            "AUTH",
            '+OK mailbox "digitalinvestigator@networksims.com" has 3 messages (19191 octets)'
            " H mimap15",
        ),
    ]
    assert [e.command for e in full.exchanges][3:] == [
        "STAT",
        "LIST",
        "UIDL",
        "RETR",
        "RETR",
        "RETR",
        "QUIT",
    ]
    assert all(s.anomalies == [] for s in sessions)


def test_pop3_session_suricata_bug_7709_failed_and_successful_pass_and_retr() -> None:
    failed, ok = capture_sessions("suricata-verify/pop3-02-bug-7709.pcap")
    assert [(a.username, a.password, a.success, a.reply) for a in failed.auth] == [
        ("test@tt.com", "123456", False, "-ERR the password incorrect")
    ]
    assert [(a.username, a.success) for a in ok.auth] == [("test", True)]
    assert [(e.command, e.reply_lines) for e in ok.exchanges] == [
        ("USER", 1), ("PASS", 1), ("STAT", 1), ("LIST", 6), ("UIDL", 6), ("RETR", 110),
        ("QUIT", 1),
    ]  # fmt: skip
    (m,) = ok.messages
    # CMailServer announces "+OK 6668 octets"; the body as transferred ends with an extra
    # blank line and is 6670 bytes up to (not including) the ".\r\n" terminator.
    assert (m.command, m.number, m.partial, m.message.size) == ("RETR 5", 5, False, 6670)


def test_pop3_session_suricata_pop3_auth_01_xoauth2_without_greeting() -> None:
    (s,) = capture_sessions("suricata-verify/pop3-auth-01.pcap")
    assert s.banner is None
    assert s.capabilities == [
        "USER", "RESP-CODES", "EXPIRE 0", "LOGIN-DELAY 300", "TOP", "UIDL", "X-GOOGLE-RICO",
        "SASL PLAIN XOAUTH2 OAUTHBEARER",
    ]  # fmt: skip
    (a,) = s.auth
    assert (a.mechanism, a.username, a.success, a.reply) == (
        "XOAUTH2",
        "joe.speedboat",
        True,
        "+OK Welcome.",
    )
    assert s.mailbox_stats == [(1, 308661)]
    assert [(e.command, e.reply) for e in s.exchanges][-3:] == [
        ("LIST", "+OK 1 messages (308661 bytes)"),
        ("UIDL", "+OK"),
        ("QUIT", None),
    ]


def test_pop3_session_ndpi_lowercase_commands() -> None:
    sessions = capture_sessions("ndpi/pop3.pcapng")
    lower = [s for s in sessions if any(a.username == "cicciopernacchio@mail.com" for a in s.auth)]
    (s,) = lower
    (a,) = s.auth
    assert (a.mechanism, a.password, a.success) == ("USER", "pippozzo", True)
    assert [m.command for m in s.messages] == ["RETR 2"]
    assert [e.command for e in s.exchanges] == ["USER", "PASS", "LIST", "UIDL", "RETR", "QUIT"]


def test_pop3_session_zeek_bad_list_retr_crafted_garbage() -> None:
    (s,) = capture_sessions("zeek/pop3-bad-list-retr-crafted.pcap")
    assert s.banner == "+OK example.com POP3-Server"
    assert "GARBAGE" in s.anomalies[0].text
    (m,) = s.messages
    assert (m.command, m.partial) == ("RETR 1", False)
    assert [(e.command, e.reply) for e in s.exchanges] == [
        ("LIST", "+OK 2 messages (320 octets)"),
        ("RETR", "+OK message follows"),
        ("QUIT", "+OK bye"),
    ]


def test_pop3_session_zeek_pop3_starttls() -> None:
    (s,) = capture_sessions("zeek/pop3-starttls.pcap")
    assert s.tls
    assert [e.command for e in s.exchanges][-1] == "STLS"
    assert s.anomalies == []


def test_pop3_session_suricata_pop3_mailbox_sync_with_49_top() -> None:
    (s,) = [s for s in capture_sessions("suricata-verify/pop3.pcap") if s.transcript]
    # suricata-verify counts 56 pop3 events: the greeting and 55 commands, every one answered +OK.
    assert s.banner == "+OK POP server ready H mieueus020 1Mw7UO-1j88qA02mS-00sOH0"
    commands = [e.command for e in s.exchanges]
    assert commands[:6] == ["USER", "PASS", "STAT", "LIST", "RSET", "UIDL"]
    assert commands[6:] == ["TOP"] * 49
    assert all(e.reply is not None and e.reply.startswith("+OK") for e in s.exchanges)
    assert s.exchanges[0].reply == (
        '+OK password required for user "moises.nunez@ingenierianumar.com"'
    )
    (a,) = s.auth
    assert (a.username, a.success) == ("moises.nunez@ingenierianumar.com", True)
    assert len(s.messages) == 49
    assert all(m.partial and m.command.startswith("TOP ") for m in s.messages)
    assert s.anomalies == []


_LINES = st.sampled_from(
    [b"USER a", b"PASS b c", b"STAT", b"LIST", b"RETR 1", b"TOP 1 0", b"DELE 1", b"CAPA",
     b"AUTH PLAIN", b"AUTH LOGIN", b"AHVzZXIAcGFzcw==", b"*", b"STLS", b"+OK", b"+OK 1 20",
     b"-ERR no", b"+ ", b"+ VXNlcm5hbWU6", b"Subject: a", b"", b"..x", b".", b"GARBAGE"]
)  # fmt: skip


def _fields(s: Session) -> tuple[object, ...]:
    return (
        s.banner,
        s.tls,
        s.auth,
        s.messages,
        s.deleted,
        s.mailbox_stats,
        s.capabilities,
        s.exchanges,
        s.transcript,
        s.anomalies,
    )


@given(
    st.lists(
        st.tuples(st.sampled_from([C, S]), st.lists(_LINES, min_size=1, max_size=5)),
        max_size=20,
    )
)
def test_pop3_session_is_the_same_however_the_bytes_are_chunked(
    turns: list[tuple[Direction, list[bytes]]],
) -> None:
    steps: list[Step] = [(S, b"+OK ready\r\n")]
    steps += [(d, b"".join(line + b"\r\n" for line in lines)) for d, lines in turns]
    assert _fields(build(steps)) == _fields(build(steps, bytewise=True))
