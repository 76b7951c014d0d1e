"""Tests for the sans-IO IMAP parser: every case fed whole, byte by byte and at random splits."""

from __future__ import annotations

import base64
import struct
import zlib
from collections.abc import Sequence
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailsniff.protocols.imap import (
    MAX_INLINE_LITERAL,
    MAX_PENDING,
    Anomaly,
    AuthResult,
    Capabilities,
    Command,
    Completion,
    CompressionStarted,
    Continuation,
    Copy,
    Enabled,
    Expunged,
    Fetch,
    Greeting,
    IdInfo,
    IdleDone,
    ImapParser,
    ListEntry,
    MailboxSelected,
    MailboxStatus,
    MessageData,
    MessageEnd,
    MessageGap,
    MessageStart,
    Namespace,
    SaslStep,
    SearchResult,
    ServerStatus,
    Store,
    StreamGap,
    TlsStarted,
    Untagged,
)
from mailsniff.protocols.imap_grammar import MAX_TOKENS, Atom, LiteralRef, decode_mailbox, tokenize
from tests.helpers import C, S, Step, feed_all_ways, feed_steps

GREETING = (S, b"* OK [CAPABILITY IMAP4rev1 SASL-IR LITERAL+ AUTH=PLAIN] Dovecot ready.\r\n")
MESSAGE = (
    b"From: Alice <alice@example.com>\r\n"
    b"To: Bob <bob@example.com>\r\n"
    b"Subject: hello\r\n"
    b"\r\n"
    b"Body line one\r\n"
    b")\r\n"  # a line that would close a list if the literal were misread
    b"a1 OK not a response\r\n"
    b"* 9 FETCH (this is content)\r\n"
)


def run(steps: Sequence[Step], close: bool = True) -> list[Any]:
    return feed_all_ways(ImapParser, steps, mergeable=(MessageData,), close=close)


def of(events: list[Any], kind: type) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


def one(events: list[Any], kind: type) -> Any:
    found = of(events, kind)
    assert len(found) == 1, found
    return found[0]


def message_bytes(events: list[Any], message_id: int) -> bytes:
    return b"".join(e.data for e in of(events, MessageData) if e.message_id == message_id)


def kinds(events: list[Any]) -> list[str]:
    return [e.kind for e in of(events, Anomaly)]


# ------------------------------------------------------------------------------ login, tags


def test_login_with_synchronising_literal_and_quoted_escapes() -> None:
    events = run(
        [
            GREETING,
            (C, b"a1 LOGIN {5}\r\n"),
            (S, b"+ Ready for literal data\r\n"),
            (C, b'alice "p\\"a\\\\ss"\r\n'),
            (S, b"a1 OK [CAPABILITY IMAP4rev1 IDLE MOVE] Logged in\r\n"),
        ]
    )
    greeting = one(events, Greeting)
    assert greeting.status == "OK" and greeting.code == "CAPABILITY"
    caps = of(events, Capabilities)
    assert [c.source for c in caps] == ["greeting", "response-code"]
    assert caps[0].auth_mechanisms == ("PLAIN",)
    assert caps[1].has("move")
    assert one(events, Continuation).purpose == "literal"
    command = one(events, Command)
    assert command.name == "LOGIN" and command.args == (b"alice", b'p"a\\ss')
    auth = one(events, AuthResult)
    assert (auth.method, auth.user, auth.secret, auth.success) == (
        "LOGIN",
        "alice",
        'p"a\\ss',
        True,
    )
    assert auth.secret_raw == b'p"a\\ss'  # the bytes a redaction must mask
    assert kinds(events) == []


def test_pipelined_completions_match_by_tag_not_order() -> None:
    events = run(
        [
            GREETING,
            (C, b"t1 LOGIN bob pw\r\nt2 SELECT INBOX\r\nt3 NOOP\r\n"),
            (S, b"t3 OK noop\r\nt1 OK in\r\n* 2 EXISTS\r\nt2 NO [NONEXISTENT] none\r\n"),
        ]
    )
    done = of(events, Completion)
    assert [(c.tag, c.command.name) for c in done] == [
        ("t3", "NOOP"),
        ("t1", "LOGIN"),
        ("t2", "SELECT"),
    ]
    assert one(events, AuthResult).success is True
    selected = one(events, MailboxSelected)
    assert selected.ok is False and selected.exists == 2 and selected.mailbox == "INBOX"
    assert kinds(events) == []


def test_unknown_tag_and_duplicate_tag_are_anomalies() -> None:
    events = run([GREETING, (C, b"x NOOP\r\nx NOOP\r\n"), (S, b"x OK\r\nx OK\r\ny OK\r\n")])
    assert kinds(events) == ["duplicate-tag", "unknown-tag"]
    assert [c.command is not None for c in of(events, Completion)] == [True, True, False]


def test_logindisabled_then_login_is_flagged() -> None:
    events = run(
        [
            (S, b"* OK ready\r\n"),
            (C, b"a CAPABILITY\r\n"),
            (S, b"* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED\r\na OK\r\n"),
            (C, b"b LOGIN u p\r\n"),
            (S, b"b NO [PRIVACYREQUIRED] no\r\n"),
        ]
    )
    caps = one(events, Capabilities)
    assert caps.source == "untagged" and caps.login_disabled
    assert "login-disabled" in kinds(events)
    assert one(events, AuthResult).success is False


def test_preauth_and_bye() -> None:
    events = run(
        [
            (S, b"* PREAUTH [CAPABILITY IMAP4rev2] logged in as bob\r\n"),
            (C, b"a LOGOUT\r\n"),
            (S, b"* BYE [ALERT] logging out\r\na OK bye\r\n"),
        ]
    )
    assert one(events, Greeting).status == "PREAUTH"
    bye = one(events, ServerStatus)
    assert (bye.status, bye.code, bye.text) == ("BYE", "ALERT", "logging out")
    assert one(events, Completion).command.name == "LOGOUT"


# ------------------------------------------------------------------------------ SASL


def _b64(data: bytes) -> bytes:
    return base64.b64encode(data)


def _auth(steps: list[Step]) -> AuthResult:
    events = run([GREETING, *steps])
    return one(events, AuthResult)


def test_authenticate_plain_initial_response_and_continuation() -> None:
    ir = _auth(
        [(C, b"a AUTHENTICATE PLAIN " + _b64(b"admin\0bob\0s3cret") + b"\r\n"), (S, b"a OK\r\n")]
    )
    assert (ir.mechanism, ir.user, ir.authzid, ir.secret, ir.success) == (
        "PLAIN",
        "bob",
        "admin",
        "s3cret",
        True,
    )
    steps: list[Step] = [
        (C, b"a AUTHENTICATE PLAIN\r\n"),
        (S, b"+ \r\n"),
        (C, _b64(b"\0carol\0pw") + b"\r\n"),
        (S, b"a NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"),
    ]
    events = run([GREETING, *steps])
    sasl = of(events, SaslStep)
    assert [(s.direction, s.initial) for s in sasl] == [(S, False), (C, False)]
    auth = one(events, AuthResult)
    assert (auth.user, auth.success, auth.status_text) == ("carol", False, "Authentication failed.")


def test_authenticate_login_cram_xoauth2_oauthbearer() -> None:
    login = _auth(
        [
            (C, b"a AUTHENTICATE LOGIN\r\n"),
            (S, b"+ " + _b64(b"Username:") + b"\r\n"),
            (C, _b64(b"dave") + b"\r\n"),
            (S, b"+ " + _b64(b"Password:") + b"\r\n"),
            (C, _b64(b"hunter2") + b"\r\n"),
            (S, b"a OK\r\n"),
        ]
    )
    assert (login.user, login.secret, login.success) == ("dave", "hunter2", True)
    cram = _auth(
        [
            (C, b"a AUTHENTICATE CRAM-MD5\r\n"),
            (S, b"+ " + _b64(b"<1896.697170952@postoffice.example.net>") + b"\r\n"),
            (C, _b64(b"tim b913a602c7eda7a495b4e6e7334d3890") + b"\r\n"),
            (S, b"a OK\r\n"),
        ]
    )
    assert (cram.user, cram.secret) == ("tim", "b913a602c7eda7a495b4e6e7334d3890")
    xoauth = _auth(
        [
            (
                C,
                b"a AUTHENTICATE XOAUTH2 "
                + _b64(b"user=eve@example.com\1auth=Bearer ya29.tok\1\1")
                + b"\r\n",
            ),
            (S, b"+ eyJzdGF0dXMiOiI0MDAifQ==\r\n"),
            (C, b"\r\n"),
            (S, b"a NO [AUTHENTICATIONFAILED] Invalid credentials\r\n"),
        ]
    )
    assert (xoauth.user, xoauth.secret, xoauth.success) == ("eve@example.com", "ya29.tok", False)
    bearer = _auth(
        [
            (
                C,
                b"a AUTHENTICATE OAUTHBEARER "
                + _b64(
                    b"n,a=frank@example.com,\1host=imap.example.com\1port=993\1"
                    b"auth=Bearer vF9dft4qmT\1\1"
                )
                + b"\r\n",
            ),
            (S, b"a OK\r\n"),
        ]
    )
    assert (bearer.user, bearer.secret) == ("frank@example.com", "vF9dft4qmT")
    assert (bearer.secret_raw, xoauth.secret_raw, cram.secret_raw) == (
        b"vF9dft4qmT",
        b"ya29.tok",
        b"b913a602c7eda7a495b4e6e7334d3890",
    )
    assert login.secret_raw == b"hunter2"


def _ntlm_type3(user: str, domain: str) -> bytes:
    u, d, w = user.encode("utf-16-le"), domain.encode("utf-16-le"), "WS".encode("utf-16-le")
    offset = 64
    fields = []
    payload = b""
    for blob in (b"", b"", d, u, w, b""):  # LM, NT, domain, user, workstation, session key
        fields.append(struct.pack("<HHI", len(blob), len(blob), offset + len(payload)))
        payload += blob
    head = b"NTLMSSP\0" + struct.pack("<I", 3) + b"".join(fields) + struct.pack("<I", 0x1)
    return head + payload


def test_authenticate_ntlm_user_and_cancel() -> None:
    events = run(
        [
            GREETING,
            (C, b"a AUTHENTICATE NTLM\r\n"),
            (S, b"+ \r\n"),
            (C, _b64(b"NTLMSSP\0\1\0\0\0" + b"\0" * 24) + b"\r\n"),
            (S, b"+ " + _b64(b"NTLMSSP\0\2\0\0\0" + b"\0" * 40) + b"\r\n"),
            (C, _b64(_ntlm_type3("grace", "CORP")) + b"\r\n"),
            (S, b"a OK\r\n"),
            (C, b"b AUTHENTICATE PLAIN\r\n"),
            (S, b"+ \r\n"),
            (C, b"*\r\n"),
            (S, b"b BAD cancelled\r\n"),
        ]
    )
    ntlm, cancelled = of(events, AuthResult)
    assert (ntlm.mechanism, ntlm.user, ntlm.success) == ("NTLM", "CORP\\grace", True)
    assert cancelled.user is None and cancelled.success is False
    assert [s.cancelled for s in of(events, SaslStep) if s.tag == "b"] == [False, True]


def test_command_after_sasl_ir_without_server_answer_is_a_command() -> None:
    events = run([(C, b"a AUTHENTICATE PLAIN " + _b64(b"\0u\0p") + b"\r\nb SELECT INBOX\r\n")])
    assert [c.name for c in of(events, Command)] == ["AUTHENTICATE", "SELECT"]
    assert one(events, AuthResult).success is None  # never answered: still reported
    assert "authenticate-abandoned" in kinds(events)


# ------------------------------------------------------------------------------ mailboxes


def test_select_stats_list_status_search_namespace_id_enable() -> None:
    events = run(
        [
            GREETING,
            (C, b'a ID ("name" "Thunderbird" "version" "115.3.1")\r\n'),
            (S, b'* ID ("name" "Dovecot" "version" NIL)\r\na OK\r\n'),
            (C, b"b ENABLE CONDSTORE\r\n"),
            (S, b"* ENABLED CONDSTORE\r\nb OK\r\n"),
            (C, b"c NAMESPACE\r\n"),
            (S, b'* NAMESPACE (("" "/")) NIL (("Shared/" "/"))\r\nc OK\r\n'),
            (C, b'd LIST "" "*"\r\n'),
            (
                S,
                b'* LIST (\\HasNoChildren) "/" INBOX\r\n'
                b'* LIST (\\HasNoChildren \\Sent) "/" "Gesendete Objekte"\r\n'
                b'* LIST (\\HasNoChildren) "/" "&ZeVnLIqe-"\r\n'
                b"* LIST (\\Noselect) NIL {4}\r\nA(b)\r\n"
                b"d OK\r\n",
            ),
            (C, b"e STATUS INBOX (MESSAGES UNSEEN)\r\n"),
            (S, b"* STATUS INBOX (MESSAGES 17 UNSEEN 3)\r\ne OK\r\n"),
            (C, b"f EXAMINE INBOX\r\n"),
            (
                S,
                b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n"
                b"* OK [PERMANENTFLAGS ()] Read-only mailbox.\r\n"
                b"* 17 EXISTS\r\n* 1 RECENT\r\n* OK [UNSEEN 12] first unseen\r\n"
                b"* OK [UIDVALIDITY 1700000000] UIDs valid\r\n* OK [UIDNEXT 4392] next\r\n"
                b"* OK [HIGHESTMODSEQ 715194045007] modseq\r\n"
                b"f OK [READ-ONLY] Examine completed\r\n",
            ),
            (C, b"g UID SEARCH UNSEEN\r\n"),
            (S, b"* SEARCH 4390 4391\r\ng OK\r\n"),
        ]
    )
    client_id, server_id = of(events, IdInfo)
    assert client_id.direction is C and client_id.get("name") == "Thunderbird"
    assert client_id.get("version") == "115.3.1"
    assert server_id.fields == (("name", "Dovecot"), ("version", None))
    assert one(events, Enabled).capabilities == ("CONDSTORE",)
    ns = one(events, Namespace)
    assert ns.personal == (("", "/"),) and ns.other == () and ns.shared == (("Shared/", "/"),)
    names = [(e.mailbox, e.flags) for e in of(events, ListEntry)]
    assert names == [
        ("INBOX", ("\\HasNoChildren",)),
        ("Gesendete Objekte", ("\\HasNoChildren", "\\Sent")),
        ("日本語", ("\\HasNoChildren",)),
        ("A(b)", ("\\Noselect",)),
    ]
    assert one(events, MailboxStatus).items == (("MESSAGES", 17), ("UNSEEN", 3))
    sel = one(events, MailboxSelected)
    assert (sel.mailbox, sel.read_only, sel.exists, sel.recent, sel.unseen) == (
        "INBOX",
        True,
        17,
        1,
        12,
    )
    assert (sel.uidvalidity, sel.uidnext, sel.highestmodseq) == (1700000000, 4392, 715194045007)
    assert "\\Draft" in sel.flags and sel.permanent_flags == ()
    search = one(events, SearchResult)
    assert search.numbers == (4390, 4391) and search.uid and search.tag == "g"
    assert kinds(events) == []


def test_imap4rev2_enabled_names_are_utf8() -> None:
    events = run(
        [
            (S, b"* OK [CAPABILITY IMAP4rev1 IMAP4rev2 AUTH=PLAIN] ready\r\n"),
            (C, b"a ENABLE IMAP4rev2\r\n"),
            (S, b"* ENABLED IMAP4rev2\r\na OK\r\n"),
            (C, b'b LIST "" "*"\r\n'),
            (S, b'* LIST () "/" "Caf\xc3\xa9 &ZeVnLIqe-"\r\nb OK\r\n'),
            (C, b"c UID SEARCH RETURN (ALL) UNSEEN\r\n"),
            (S, b'* ESEARCH (TAG "c") UID ALL 4:6\r\nc OK\r\n'),
        ]
    )
    assert one(events, Enabled).capabilities == ("IMAP4rev2",)
    assert one(events, ListEntry).mailbox == "Café &ZeVnLIqe-"  # no modified UTF-7 in rev2
    esearch = one(events, Untagged)
    assert esearch.keyword == "ESEARCH" and esearch.args[-1] == "4:6"


def test_store_expunge_copy_move_vanished() -> None:
    events = run(
        [
            GREETING,
            (C, b"a SELECT Archive\r\n"),
            (S, b"* 3 EXISTS\r\na OK [READ-WRITE] ok\r\n"),
            (
                C,
                b"b UID STORE 7:9 +FLAGS.SILENT (\\Deleted \\Seen)\r\n"
                b"c STORE 1 -FLAGS \\Flagged\r\n",
            ),
            (S, b"b OK\r\n* 1 FETCH (FLAGS ())\r\nc OK\r\n"),
            (C, b"d UID COPY 7 Trash\r\n"),
            (S, b"d OK [COPYUID 38505 7 3956] Done\r\n"),
            (C, b"e MOVE 2 Junk\r\n"),
            (S, b"e NO [TRYCREATE] no Junk\r\n"),
            (C, b"f EXPUNGE\r\n"),
            (S, b"* 3 EXPUNGE\r\n* 2 EXPUNGE\r\n* VANISHED (EARLIER) 300:310\r\nf OK\r\n"),
        ]
    )
    add, remove = of(events, Store)
    assert (add.uid, add.messages, add.operation, add.silent, add.flags) == (
        True,
        "7:9",
        "+",
        True,
        ("\\Deleted", "\\Seen"),
    )
    assert (remove.operation, remove.flags, remove.mailbox) == ("-", ("\\Flagged",), "Archive")
    assert one(events, Fetch).flags == ()
    copy, move = of(events, Copy)
    assert (copy.ok, copy.copyuid, copy.source, copy.destination, copy.move) == (
        True,
        "38505 7 3956",
        "Archive",
        "Trash",
        False,
    )
    assert (move.ok, move.move, move.destination) == (False, True, "Junk")
    gone = of(events, Expunged)
    assert [(e.seq, e.uids, e.earlier, e.mailbox) for e in gone] == [
        (3, None, False, "Archive"),
        (2, None, False, "Archive"),
        (None, "300:310", True, "Archive"),
    ]


def test_idle_done() -> None:
    events = run(
        [
            GREETING,
            (C, b"a IDLE\r\n"),
            (S, b"+ idling\r\n* 4 EXISTS\r\n"),
            (C, b"DONE\r\n"),
            (S, b"a OK Idle completed\r\n"),
            (C, b"b NOOP\r\n"),
        ]
    )
    assert one(events, Continuation).purpose == "idle"
    assert one(events, IdleDone).tag == "a"
    assert one(events, Untagged).keyword == "EXISTS"
    assert [c.name for c in of(events, Command)] == ["IDLE", "NOOP"]
    assert kinds(events) == []


# ------------------------------------------------------------------------------ messages


def _fetch_dialogue(body: bytes) -> list[Step]:
    n = len(body)
    return [
        GREETING,
        (C, b"a SELECT INBOX\r\n"),
        (S, b"* 1 EXISTS\r\na OK\r\n"),
        (C, b"b UID FETCH 42 (UID RFC822.SIZE BODY.PEEK[])\r\n"),
        (
            S,
            b"* 1 FETCH (UID 42 RFC822.SIZE %d BODY[] {%d}\r\n" % (n, n)
            + body
            + b" FLAGS (\\Seen))\r\nb OK\r\n",
        ),
    ]


def test_fetch_whole_message_streams_byte_exact() -> None:
    events = run(_fetch_dialogue(MESSAGE))
    start = one(events, MessageStart)
    assert (start.source, start.mailbox, start.seq, start.uid, start.section) == (
        "FETCH",
        "INBOX",
        1,
        42,
        "",
    )
    assert start.whole and not start.partial and start.size == len(MESSAGE) and start.tag == "b"
    assert message_bytes(events, start.message_id) == MESSAGE
    end = one(events, MessageEnd)
    assert end.complete and end.size == len(MESSAGE)
    fetch = one(events, Fetch)
    assert (fetch.uid, fetch.size, fetch.flags, fetch.message_ids) == (
        42,
        len(MESSAGE),
        ("\\Seen",),
        (1,),
    )
    assert LiteralRef(len(MESSAGE), 1) in fetch.items
    assert kinds(events) == [] and [u.keyword for u in of(events, Untagged)] == ["EXISTS"]


def test_fetch_large_literal_in_chunks_never_one_event() -> None:
    body = b"".join(b"line %07d of a long message\r\n" % i for i in range(60000))  # ~1.9 MB
    events = feed_steps(
        ImapParser,
        _fetch_dialogue(body),
        cuts=lambda i, b: [b[k : k + 65536] for k in range(0, len(b), 65536)],
    )
    chunks = of(events, MessageData)
    assert len(chunks) > 20 and max(len(c.data) for c in chunks) <= 65536
    assert b"".join(c.data for c in chunks) == body


def test_partial_header_rfc822_and_quoted_bodies() -> None:
    events = run(
        [
            GREETING,
            (C, b"a SELECT INBOX\r\n"),
            (S, b"a OK\r\n"),
            (C, b"b FETCH 1:4 (BODY.PEEK[]<0.16> BODY.PEEK[HEADER] RFC822)\r\n"),
            (
                S,
                b"* 1 FETCH (BODY[]<0> {16}\r\nFrom: Alice <ali BODY[HEADER] {6}\r\nA: b\r\n)\r\n"
                b"* 2 FETCH (RFC822 {5}\r\nhello UID 9)\r\n"
                b'* 3 FETCH (BODY[1.2.MIME] "Content-Type: text/plain\\r" BODY[TEXT] NIL)\r\n'
                b"* 4 FETCH (BINARY[1] ~{3}\r\n\x00\x01\x02)\r\n"
                b"b OK\r\n",
            ),
        ]
    )
    starts = of(events, MessageStart)
    got = [
        (s.seq, s.item, s.section, s.origin, s.requested_length, s.partial, s.whole) for s in starts
    ]
    assert got == [
        (1, "BODY[]<0>", "", 0, 16, True, False),
        (1, "BODY[HEADER]", "HEADER", None, None, False, False),
        (2, "RFC822", "", None, None, False, True),
        (3, "BODY[1.2.MIME]", "1.2.MIME", None, None, False, False),
        (4, "BINARY[1]", "1", None, None, False, False),
    ]
    assert [message_bytes(events, s.message_id) for s in starts] == [
        b"From: Alice <ali",
        b"A: b\r\n",
        b"hello",
        b"Content-Type: text/plain\\r"[:-2] + b"r",
        b"\x00\x01\x02",
    ]
    fetches = of(events, Fetch)
    assert fetches[1].uid == 9  # UID after the body still reaches the Fetch event
    assert all(e.complete for e in of(events, MessageEnd))
    assert kinds(events) == []


def test_append_flags_date_literal_plus_and_multiappend() -> None:
    bcc = b"From: me@example.com\r\nBcc: hidden@example.com\r\nSubject: s\r\n\r\nbody\r\n"
    events = run(
        [
            GREETING,
            (
                C,
                b'a APPEND Sent (\\Seen $MDNSent) "02-Dec-2026 10:00:00 +0100" {%d+}\r\n' % len(bcc)
                + bcc
                + b"\r\n",
            ),
            (S, b"a OK [APPENDUID 1700000000 12] Append completed.\r\n"),
            (C, b"b APPEND Drafts {3}\r\n"),
            (S, b"+ OK\r\n"),
            (C, b"one (\\Draft) {3}\r\n"),
            (S, b"+ OK\r\n"),
            (C, b"two\r\n"),
            (S, b"b OK\r\n"),
        ]
    )
    first, second, third = of(events, MessageStart)
    assert (first.source, first.mailbox, first.flags, first.date, first.tag) == (
        "APPEND",
        "Sent",
        ("\\Seen", "$MDNSent"),
        "02-Dec-2026 10:00:00 +0100",
        "a",
    )
    assert message_bytes(events, first.message_id) == bcc
    assert (second.mailbox, second.flags, third.flags) == ("Drafts", (), ("\\Draft",))
    assert (
        message_bytes(events, second.message_id) + message_bytes(events, third.message_id)
        == b"onetwo"
    )
    assert [c.name for c in of(events, Command)] == ["APPEND", "APPEND"]
    assert of(events, Completion)[0].code_args == (Atom("1700000000"), Atom("12"))
    assert kinds(events) == []


def test_refused_synchronising_literal_is_not_read() -> None:
    events = run(
        [
            GREETING,
            (C, b"a APPEND Missing {310}\r\n"),
            (S, b"a NO [TRYCREATE] Mailbox doesn't exist\r\n"),
            (C, b"b CREATE Missing\r\n"),
            (S, b"b OK\r\n"),
        ]
    )
    assert [c.name for c in of(events, Command)] == ["APPEND", "CREATE"]
    assert [c.command.tag for c in of(events, Completion)] == ["a", "b"]
    assert of(events, MessageStart) == [] and kinds(events) == []


def test_one_sided_capture_reads_synchronising_literals() -> None:
    events = run(
        [(C, b"a LOGIN {3}\r\nbob {2}\r\npw\r\nb APPEND INBOX {4}\r\nabcd\r\nc LOGOUT\r\n")]
    )
    assert [c.name for c in of(events, Command)] == ["LOGIN", "APPEND", "LOGOUT"]
    assert one(events, AuthResult).user == "bob"
    assert message_bytes(events, one(events, MessageStart).message_id) == b"abcd"


def test_continuation_assumed_when_client_keeps_sending() -> None:
    body = b"x" * 70000
    events = run(
        [
            GREETING,
            (C, b"a APPEND INBOX {70000}\r\n" + body + b"\r\nb NOOP\r\n"),
            (S, b"a OK\r\nb OK\r\n"),
        ]
    )
    assert "continuation-assumed" in kinds(events)
    assert message_bytes(events, one(events, MessageStart).message_id) == body
    assert [c.command.name for c in of(events, Completion)] == ["APPEND", "NOOP"]


# ------------------------------------------------------------------------------ TLS, COMPRESS


def test_starttls_keeps_what_came_before_and_stops() -> None:
    events = run(
        [
            GREETING,
            (C, b"a STARTTLS\r\n"),
            (S, b"a OK Begin TLS negotiation now.\r\n"),
            (C, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\nb LOGIN x y\r\n"),
            (S, b"\x16\x03\x03\x00\x5a\x02\r\n"),
        ]
    )
    assert [type(e).__name__ for e in events] == [
        "Greeting",
        "Capabilities",
        "Command",
        "Completion",
        "TlsStarted",
    ]


def test_starttls_without_server_side_detects_tls_record() -> None:
    events = run([(C, b"a STARTTLS\r\n\x16\x03\x01\x00\x05hello")])
    assert of(events, TlsStarted) and len(of(events, Command)) == 1


def test_commands_pipelined_after_starttls_are_flagged() -> None:
    events = run([GREETING, (C, b"a STARTTLS\r\nb LOGIN u p\r\n"), (S, b"a OK go\r\n")])
    assert kinds(events) == ["pipelined-after-starttls"]
    # a command sent before STARTTLS and still unanswered is not one sent after it
    events = run([GREETING, (C, b"z NOOP\r\na STARTTLS\r\n"), (S, b"a OK go\r\n")])
    assert kinds(events) == []
    assert of(events, TlsStarted)


def _deflate(*parts: bytes) -> list[bytes]:
    z = zlib.compressobj(wbits=-15)
    return [z.compress(p) + z.flush(zlib.Z_SYNC_FLUSH) for p in parts]


def test_compress_deflate_inflates_both_directions() -> None:
    client = _deflate(b"c SELECT INBOX\r\n", b"d FETCH 1 BODY[]\r\n", b"e LOGOUT\r\n")
    server = _deflate(
        b"* 1 EXISTS\r\nc OK\r\n",
        b"* 1 FETCH (BODY[] {%d}\r\n" % len(MESSAGE) + MESSAGE + b")\r\nd OK\r\n",
        b"* BYE\r\ne OK\r\n",
    )
    events = run(
        [
            GREETING,
            (C, b"a LOGIN u p\r\n"),
            (S, b"a OK\r\n"),
            (C, b"b COMPRESS DEFLATE\r\n"),
            (S, b"b OK DEFLATE active\r\n" + server[0][:3]),
            (C, client[0]),
            (S, server[0][3:]),
            (C, client[1]),
            (S, server[1]),
            (C, client[2]),
            (S, server[2]),
        ]
    )
    assert one(events, CompressionStarted).mechanism == "DEFLATE"
    assert [c.name for c in of(events, Command)] == [
        "LOGIN",
        "COMPRESS",
        "SELECT",
        "FETCH",
        "LOGOUT",
    ]
    assert one(events, MailboxSelected).exists == 1
    assert message_bytes(events, one(events, MessageStart).message_id) == MESSAGE
    assert kinds(events) == []


def test_corrupt_deflate_and_bomb_are_anomalies() -> None:
    base = [GREETING, (C, b"b COMPRESS DEFLATE\r\n"), (S, b"b OK\r\n")]
    events = run([*base, (S, b"\xff\xff\xff\xff garbage")])
    assert "inflate-error" in kinds(events)
    bomb = zlib.compressobj(wbits=-15)
    blob = bomb.compress(b"\0" * (70 * 1024 * 1024)) + bomb.flush(zlib.Z_SYNC_FLUSH)
    events = feed_steps(ImapParser, [*base, (S, blob)])
    assert "decompression-bomb" in kinds(events)
    finished = zlib.compressobj(wbits=-15)
    last = finished.compress(b"* BYE\r\n") + finished.flush(zlib.Z_FINISH)
    assert kinds(run([*base, (S, last)])) == []  # a stream finished at logout is fine
    events = run([*base, (S, last + b"* 1 EXISTS\r\n")])
    assert kinds(events) == ["deflate-end"] and of(events, Untagged) == []


# ------------------------------------------------------------------------------ damage


def test_gap_inside_message_marks_it_incomplete() -> None:
    dialogue = _fetch_dialogue(MESSAGE)
    head, tail = dialogue[-1][1].split(b"Body line one")
    events = run([*dialogue[:-1], (S, head), (S, 13), (S, tail)])
    start = one(events, MessageStart)
    assert one(events, MessageGap).length == 13
    end = one(events, MessageEnd)
    assert not end.complete and end.size == len(MESSAGE) - 13
    assert message_bytes(events, start.message_id) == MESSAGE.replace(b"Body line one", b"")
    assert [c.tag for c in of(events, Completion)] == ["a", "b"]


def test_gap_in_lines_resynchronises() -> None:
    events = run(
        [
            GREETING,
            (C, b"a LOGIN u p\r\nb SEL"),
            (C, 100),
            (C, b"ECT junk\r\nmore junk\r\nc NOOP\r\n"),
            (S, b"a OK\r\n* 1 EXI"),
            (S, 10),
            (S, b"garbage\r\nc OK\r\n"),
        ]
    )
    assert [c.tag for c in of(events, Command)] == ["a", "c"]
    assert [c.tag for c in of(events, Completion)] == ["a", "c"]
    assert len(of(events, StreamGap)) == 2 and "skipped-lines" in kinds(events)


def test_close_inside_literal_is_incomplete_and_unanswered_commands_reported() -> None:
    events = run([GREETING, (C, b"a LOGIN bob pw\r\n"), (C, b"b APPEND INBOX {100+}\r\nonly some")])
    end = one(events, MessageEnd)
    assert not end.complete and end.size == 9
    assert one(events, AuthResult).success is None
    assert "literal-cut" in kinds(events)


def test_malformed_lines_are_anomalies_not_exceptions() -> None:
    events = run(
        [
            (S, b"hello there\r\n"),
            (C, b'\r\nlonelytag\r\nx FETCH (((\r\ny LOGIN "unterminated\r\n'),
            (S, b"* 1 FETCH (BODY[] {99999999999999999999}\r\n"),
        ]
    )
    got = kinds(events)
    assert {"no-greeting", "bad-response", "empty-line", "bad-command", "syntax"} <= set(got)


def test_inline_literal_is_bounded() -> None:
    big = b"m" * (MAX_INLINE_LITERAL + 10)
    events = run([GREETING, (C, b"a SELECT {%d+}\r\n" % len(big) + big + b"\r\n")], close=True)
    command = one(events, Command)
    assert command.args == (b"m" * MAX_INLINE_LITERAL,)
    assert "literal-too-long" in kinds(events)


def test_deep_nesting_and_token_flood_stay_bounded() -> None:
    events = feed_steps(
        ImapParser, [GREETING, (S, b"* 1 FETCH " + b"(" * 10000 + b")" * 10000 + b"\r\n")]
    )
    assert one(events, Fetch).seq == 1
    segment = b"1 " * 30000 + b"{1}\r\nx"
    flood = b"* XFLOOD " + segment * 4 + b"\r\n"
    events = feed_steps(ImapParser, [GREETING, (S, flood)])
    assert len(one(events, Untagged).args) == MAX_TOKENS
    assert any("beyond the bounds" in a.detail for a in of(events, Anomaly))


def test_literal_minus_is_not_waited_for_and_oversize_is_flagged() -> None:
    events = run(
        [
            (S, b"* OK [CAPABILITY IMAP4rev1 LITERAL-] ready\r\n"),
            (C, b"a APPEND INBOX {3-}\r\nabc\r\n"),
            (C, b"b APPEND INBOX {5000-}\r\n" + b"z" * 5000 + b"\r\n"),
            (S, b"a OK\r\nb OK\r\n"),
        ]
    )
    first, second = of(events, MessageStart)
    assert message_bytes(events, first.message_id) == b"abc"
    assert message_bytes(events, second.message_id) == b"z" * 5000
    assert kinds(events) == ["literal-minus-too-long"]
    assert of(events, Continuation) == []


def test_unanswered_commands_are_bounded_in_number_and_bytes() -> None:
    many = b"".join(b"t%d NOOP\r\n" % i for i in range(MAX_PENDING + 5))
    events = feed_steps(ImapParser, [GREETING, (C, many), (S, b"t0 OK\r\nt4100 OK\r\n")])
    assert kinds(events).count("too-many-pending") == 5
    assert [c.command is None for c in of(events, Completion)] == [True, False]
    big = b"x" * 60000
    fat = b"".join(b"a%d LOGIN %s pw\r\n" % (i, big) for i in range(300))  # ~18 MB of commands
    events = feed_steps(ImapParser, [GREETING, (C, fat)], close=False)
    assert "too-many-pending" in kinds(events)
    forgotten = of(events, AuthResult)  # a forgotten LOGIN still reports its attempt
    assert forgotten and all(a.success is None and a.secret == "pw" for a in forgotten)


# ------------------------------------------------------------------------------ grammar


def test_grammar_helpers() -> None:
    assert decode_mailbox(b"&ZeVnLIqe-") == "日本語"
    assert decode_mailbox(b"Tom &- Jerry") == "Tom & Jerry"
    assert decode_mailbox(b"bad &!!!- name") == "bad &!!!- name"
    assert decode_mailbox(b"caf\xc3\xa9 &-", utf8=True) == "café &-"
    assert tokenize(b'BODY[HEADER.FIELDS (FROM TO)]<0.100> "a\\"b" (x (y)) NIL') == (
        Atom("BODY[HEADER.FIELDS (FROM TO)]<0.100>"),
        b'a"b',
        (Atom("x"), (Atom("y"),)),
        Atom("NIL"),
    )


# ------------------------------------------------------------------------------ properties

_SEED: list[Step] = [
    GREETING,
    (C, b"a LOGIN {3}\r\n"),
    (S, b"+ go\r\n"),
    (C, b'bob "pw"\r\nb SELECT INBOX\r\n'),
    (S, b"a OK\r\n* 2 EXISTS\r\n* OK [UIDVALIDITY 7] v\r\nb OK\r\n"),
    (
        C,
        b"c UID FETCH 1:* (UID FLAGS BODY.PEEK[]<0.50>)\r\n"
        b"d APPEND Sent (\\Seen) {5+}\r\nhello\r\n",
    ),
    (S, b"* 1 FETCH (UID 3 FLAGS (\\Seen) BODY[]<0> {12}\r\nFrom: a\r\n\r\nx)\r\nc OK\r\nd OK\r\n"),
    (C, b"e AUTHENTICATE PLAIN\r\n"),
    (S, b"+ \r\n"),
    (C, b"AGJvYgBwdw==\r\nf IDLE\r\n"),
    (S, b"e OK\r\n+ idling\r\n"),
    (C, b"DONE\r\ng COMPRESS DEFLATE\r\n"),
    (S, b"f OK\r\ng OK\r\n"),
]

_STEP = st.tuples(st.sampled_from([C, S]), st.binary(max_size=80) | st.integers(0, 40))


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(_STEP, max_size=20))
def test_never_raises_on_arbitrary_input(steps: list[Step]) -> None:
    feed_steps(ImapParser, steps)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_never_raises_on_mutated_dialogues(data: st.DataObject) -> None:
    steps = list(_SEED)
    for _ in range(data.draw(st.integers(1, 6))):
        i = data.draw(st.integers(0, len(steps) - 1))
        direction, item = steps[i]
        if not isinstance(item, bytes):
            continue
        op = data.draw(st.sampled_from(["flip", "cut", "insert", "gap", "dup"]))
        pos = data.draw(st.integers(0, len(item)))
        if op == "flip" and item:
            k = min(pos, len(item) - 1)
            item = item[:k] + bytes([item[k] ^ data.draw(st.integers(1, 255))]) + item[k + 1 :]
        elif op == "cut":
            item = item[:pos]
        elif op == "insert":
            item = (
                item[:pos]
                + data.draw(
                    st.sampled_from(
                        [b"{5}\r\n", b"(", b")", b'"', b"\r\n", b"* ", b"{99+}\r\n", b"\x00"]
                    )
                )
                + item[pos:]
            )
        elif op == "dup":
            steps.insert(i, (direction, item))
        steps[i] = (direction, item) if op != "gap" else (direction, pos)
    events = feed_steps(ImapParser, steps)
    for e in of(events, MessageEnd):
        assert e.size == len(message_bytes(events, e.message_id))


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    body=st.binary(max_size=5000),
    append_body=st.binary(max_size=3000),
    plus=st.booleans(),
    points=st.lists(st.integers(0, 20000), max_size=12),
)
def test_literals_of_any_size_and_split_come_out_byte_exact(
    body: bytes, append_body: bytes, plus: bool, points: list[int]
) -> None:
    marker = b"{%d+}" % len(append_body) if plus else b"{%d}" % len(append_body)
    steps: list[Step] = [
        GREETING,
        (C, b"a APPEND INBOX " + marker + b"\r\n"),
    ]
    if not plus:
        steps.append((S, b"+ go\r\n"))
    steps += [
        (C, append_body + b"\r\nb FETCH 1 BODY[]\r\n"),
        (S, b"a OK\r\n* 1 FETCH (BODY[] {%d}\r\n" % len(body) + body + b")\r\nb OK\r\n"),
    ]

    def cuts(i: int, data: bytes) -> list[bytes]:
        bounds = sorted({p % (len(data) + 1) for p in points} | {0, len(data)})
        return [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False) if b > a] or [data]

    events = feed_steps(ImapParser, steps, cuts)
    appended, fetched = of(events, MessageStart)
    assert message_bytes(events, appended.message_id) == append_body
    assert message_bytes(events, fetched.message_id) == body
    assert all(e.complete for e in of(events, MessageEnd))
    assert kinds(events) == []
