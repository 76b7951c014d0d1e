"""SmtpParser: every case fed whole, byte by byte and at Hypothesis-chosen splits."""

from __future__ import annotations

import base64
import hmac
import json
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailsniff.limits import MAX_LINE
from mailsniff.protocols.base import Anomaly, SaslStep, StreamGap, TlsStarted
from mailsniff.protocols.replies import ReplyClass, classify, is_negative, parse_enhanced
from mailsniff.protocols.smtp import (
    TRANSITIONS,
    ClientState,
    Command,
    Greeting,
    MessageData,
    MessageEnd,
    MessageGap,
    Reply,
    SmtpAnomalyKind,
    SmtpEvent,
    SmtpParser,
    parse_path,
)
from tests.helpers import C, S, Step, feed_all_ways, feed_steps, normalize


def events(steps: Sequence[Step], close: bool = True) -> list[Any]:
    return feed_all_ways(SmtpParser, steps, (MessageData,), close=close)


def of(evs: Sequence[SmtpEvent], kind: type) -> list[Any]:
    return [e for e in evs if isinstance(e, kind)]


def challenges(evs: Sequence[SmtpEvent]) -> list[SaslStep]:
    return [e for e in of(evs, SaslStep) if e.direction is S]


def responses(evs: Sequence[SmtpEvent]) -> list[SaslStep]:
    return [e for e in of(evs, SaslStep) if e.direction is C]


def kinds(evs: Sequence[SmtpEvent]) -> list[str]:
    return [e.kind for e in of(evs, Anomaly)]


def content(evs: Sequence[SmtpEvent]) -> bytes:
    return b"".join(e.data for e in of(evs, MessageData))


GREET: Step = (S, b"220 mx.example.org ESMTP\r\n")


# ------------------------------------------------------------------ replies


def test_smtp_reply_table_classifies_codes() -> None:
    assert classify(250) is ReplyClass.POSITIVE_COMPLETION
    assert classify(354) is ReplyClass.POSITIVE_INTERMEDIATE
    assert classify(421) is ReplyClass.TRANSIENT_NEGATIVE
    assert classify(553) is ReplyClass.PERMANENT_NEGATIVE
    assert classify(999) is None
    assert is_negative(450) and is_negative(535) and not is_negative(334)
    assert parse_enhanced("2.1.0 Ok") == "2.1.0"
    assert parse_enhanced("250 ok") is None
    assert parse_enhanced("5.7.1") == "5.7.1"


def test_smtp_greeting_is_first_reply_and_pairs_with_no_command() -> None:
    evs = events(
        [
            (S, b"220-mx.example.org ESMTP\r\n220 no UCE\r\n"),
            (C, b"NOOP\r\n"),
            (S, b"250 2.0.0 Ok\r\n"),
        ]
    )
    (g,) = of(evs, Greeting)
    assert g.code == 220 and g.lines == ("mx.example.org ESMTP", "no UCE")
    (r,) = of(evs, Reply)
    assert (r.for_command, r.code, r.enhanced, r.first_line) == (
        "NOOP",
        250,
        "2.0.0",
        "250 2.0.0 Ok",
    )
    assert kinds(evs) == []


def test_smtp_multiline_reply_with_continuations_and_final_line() -> None:
    evs = events(
        [
            GREET,
            (C, b"EHLO me\r\n"),
            (S, b"250-mx\r\n250-PIPELINING\r\n250-SIZE 100\r\n250 8BITMIME\r\n"),
        ]
    )
    (r,) = of(evs, Reply)
    assert r.lines == ("mx", "PIPELINING", "SIZE 100", "8BITMIME")
    assert r.first_line == "250 mx" and r.last_line == "250 8BITMIME"


def test_smtp_bare_code_reply_line_is_a_complete_reply() -> None:
    evs = events([GREET, (C, b"NOOP\r\nRSET\r\n"), (S, b"250\r\n250 \r\n")])
    replies = of(evs, Reply)
    assert [(r.for_command, r.lines, r.first_line) for r in replies] == [
        ("NOOP", ("",), "250"),
        ("RSET", ("",), "250"),
    ]


def test_smtp_reply_without_command_is_flagged_not_paired() -> None:
    evs = events([GREET, (S, b"250 surprise\r\n")])
    (r,) = of(evs, Reply)
    assert r.for_command is None and r.seq is None
    assert "reply-without-command" in kinds(evs)


def test_smtp_malformed_server_line_is_an_anomaly() -> None:
    evs = events([GREET, (C, b"NOOP\r\n"), (S, b"hello there\r\n250 ok\r\n")])
    assert "malformed-reply" in kinds(evs)
    assert of(evs, Reply)[0].for_command == "NOOP"


# ------------------------------------------------------------------ commands


def test_smtp_command_verbs_are_case_insensitive() -> None:
    evs = events([GREET, (C, b"ehlo x\r\nmail from:<a@b.c>\r\nrcpt To:<d@e.f>\r\nQuIt\r\n")])
    cmds = of(evs, Command)
    assert [c.verb for c in cmds] == ["EHLO", "MAIL", "RCPT", "QUIT"]
    assert [c.address for c in cmds] == [None, "a@b.c", "d@e.f", None]
    assert cmds[0].argument == "x"


def test_smtp_mail_and_rcpt_parameters_and_null_sender() -> None:
    evs = events(
        [
            GREET,
            (C, b"MAIL FROM:<> SIZE=1024 BODY=8BITMIME SMTPUTF8\r\n"),
            (C, b"RCPT TO:<b@c.d> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b@c.d\r\n"),
        ]
    )
    mail, rcpt = of(evs, Command)
    assert mail.address == ""
    assert mail.params == (("SIZE", "1024"), ("BODY", "8BITMIME"), ("SMTPUTF8", None))
    assert rcpt.params == (("NOTIFY", "SUCCESS,FAILURE"), ("ORCPT", "rfc822;b@c.d"))


def test_smtp_parse_path_tolerates_spaces_missing_brackets_and_source_routes() -> None:
    assert parse_path("FROM: <a@b>", "FROM") == ("a@b", ())
    assert parse_path("from:a@b SIZE=1", "FROM") == ("a@b", (("SIZE", "1"),))
    assert parse_path("TO:<@relay.example:u@d>", "TO") == ("u@d", ())
    assert parse_path("TO <x@y>", "TO") == (None, ())


def test_smtp_quoted_local_part_may_hold_the_closing_bracket() -> None:
    # RFC 5321 4.1.2: a Quoted-string local part may contain ">" (qtextSMTP) or escape it.
    assert parse_path('TO:<"a>b"@x> NOTIFY=NEVER', "TO") == ('"a>b"@x', (("NOTIFY", "NEVER"),))
    assert parse_path('TO:<"a\\">b"@x>', "TO") == ('"a\\">b"@x', ())
    # a quote never closed: the first ">" ends the path, as before
    assert parse_path('FROM:<"a@x> SIZE=9', "FROM") == ('"a@x', (("SIZE", "9"),))
    evs = events([GREET, (C, b'MAIL FROM:<s@x>\r\nRCPT TO:<"<svg onload=1>"@d.example> X=1\r\n')])
    _, rcpt = of(evs, Command)
    assert rcpt.address == '"<svg onload=1>"@d.example'
    assert rcpt.params == (("X", "1"),)


def test_smtp_utf8_address_and_8bit_argument_survive() -> None:
    evs = events([GREET, (C, "MAIL FROM:<用户@例子.中国> SMTPUTF8\r\n".encode())])
    (mail,) = of(evs, Command)
    assert mail.address == "用户@例子.中国"
    evs = events([GREET, (C, b"MAIL FROM:<\xff\xfe@x>\r\n")])
    assert of(evs, Command)[0].raw == b"MAIL FROM:<\xff\xfe@x>\r\n"


def test_smtp_unknown_verb_is_a_command_with_an_anomaly() -> None:
    evs = events(
        [GREET, (C, b"XYZZY plugh\r\n"), (S, b"502 5.5.2 Error: command not recognized\r\n")]
    )
    (cmd,) = of(evs, Command)
    assert cmd.verb == "XYZZY"
    assert "unknown-command" in kinds(evs)
    assert of(evs, Reply)[0].for_command == "XYZZY"


def test_smtp_garbage_line_is_an_anomaly_that_still_takes_a_reply() -> None:
    evs = events(
        [
            GREET,
            (C, b"\x16\x03\x01\x02\x00\x01\r\nNOOP\r\n"),
            (S, b"500 5.5.2 bad syntax\r\n250 ok\r\n"),
        ]
    )
    assert "garbage-command" in kinds(evs)
    replies = of(evs, Reply)
    assert [r.for_command for r in replies] == [None, "NOOP"]
    assert [r.seq for r in replies] == [1, 2]


def test_smtp_anomaly_kinds_are_members_written_as_their_names() -> None:
    evs = events([GREET, (C, b"\x16\x03\x01\r\n\r\nXYZZY\r\n"), (S, b"500 no\r\n" * 3)])
    found = [a.kind for a in of(evs, Anomaly)]
    assert found == [
        SmtpAnomalyKind.GARBAGE_COMMAND,
        SmtpAnomalyKind.EMPTY_COMMAND,
        SmtpAnomalyKind.UNKNOWN_COMMAND,
    ]
    assert all(type(kind) is SmtpAnomalyKind for kind in found)
    # Output shows and writes the machine name, never the member's repr.
    assert [f"{k}" for k in found] == ["garbage-command", "empty-command", "unknown-command"]
    assert json.dumps(found) == '["garbage-command", "empty-command", "unknown-command"]'


def test_smtp_overlong_line_is_cut_and_the_next_line_still_parses() -> None:
    long = b"NOOP " + b"x" * (MAX_LINE + 100) + b"\r\nQUIT\r\n"
    p = SmtpParser()
    evs = p.feed(0, S, b"220 hi\r\n") + p.feed(1, C, long)
    assert "line-too-long" in kinds(evs)
    assert [c.verb for c in of(evs, Command)] == ["NOOP", "QUIT"]
    assert len(of(evs, Command)[0].argument) < MAX_LINE


# ------------------------------------------------------------------ pipelining and DATA


PIPELINED: list[Step] = [
    GREET,
    (C, b"EHLO client.example\r\n"),
    (S, b"250-mx\r\n250 PIPELINING\r\n"),
    (C, b"MAIL FROM:<a@x.org>\r\nRCPT TO:<b@y.org>\r\nRCPT TO:<nobody@y.org>\r\nDATA\r\n"),
    (S, b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550 5.1.1 <nobody@y.org>: unknown\r\n354 go ahead\r\n"),
    (C, b"Subject: hi\r\n\r\nline\r\n..dotted\r\n.\r\n"),
    (S, b"250 2.0.0 Ok: queued as ABC\r\n"),
]


def test_smtp_pipelined_commands_pair_with_replies_in_order() -> None:
    evs = events(PIPELINED)
    pairs = [(r.for_command, r.code) for r in of(evs, Reply)]
    assert pairs == [
        ("EHLO", 250),
        ("MAIL", 250),
        ("RCPT", 250),
        ("RCPT", 550),
        ("DATA", 354),
        ("DATA", 250),
    ]
    assert [r.ends_message for r in of(evs, Reply)][-2:] == [False, True]
    assert kinds(evs) == []


def test_smtp_data_content_is_dot_unstuffed_and_ends_at_crlf_dot_crlf() -> None:
    evs = events(PIPELINED)
    assert content(evs) == b"Subject: hi\r\n\r\nline\r\n.dotted\r\n"
    (end,) = of(evs, MessageEnd)
    assert (end.body_command, end.size, end.complete, end.raw) == ("DATA", 30, True, b".\r\n")
    data = of(evs, MessageData)
    assert len(data) == 1 and data[0].raw == b"Subject: hi\r\n\r\nline\r\n..dotted\r\n"


def test_smtp_data_content_waits_for_354_when_sent_in_the_same_segment() -> None:
    # A client that does not wait: DATA and content in one write, 354 captured after it.
    evs = events(
        [
            GREET,
            (C, b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nQUIT: not a command\r\n.\r\n"),
            (S, b"250 ok\r\n250 ok\r\n354 go\r\n250 queued\r\n"),
        ]
    )
    assert [c.verb for c in of(evs, Command)] == ["MAIL", "RCPT", "DATA"]
    assert content(evs) == b"QUIT: not a command\r\n"
    assert [r.for_command for r in of(evs, Reply)] == ["MAIL", "RCPT", "DATA", "DATA"]


def test_smtp_refused_data_keeps_the_client_in_command_mode() -> None:
    evs = events(
        [
            GREET,
            (C, b"DATA\r\n"),
            (S, b"554 5.5.1 Error: no valid recipients\r\n"),
            (C, b"QUIT\r\n"),
        ]
    )
    assert [c.verb for c in of(evs, Command)] == ["DATA", "QUIT"]
    assert of(evs, MessageData) == [] and of(evs, MessageEnd) == []


def test_smtp_data_terminator_split_across_segments() -> None:
    evs = events(
        [
            GREET,
            (C, b"DATA\r\n"),
            (S, b"354 go\r\n"),
            (C, b"body\r\n."),
            (C, b"\r"),
            (C, b"\nQUIT\r\n"),
        ]
    )
    assert content(evs) == b"body\r\n"
    assert of(evs, Command)[-1].verb == "QUIT"
    assert kinds(evs) == []


def test_smtp_empty_message_and_dot_lines_that_are_not_terminators() -> None:
    evs = events([GREET, (C, b"DATA\r\n"), (S, b"354 go\r\n"), (C, b".\r\n")])
    (end,) = of(evs, MessageEnd)
    assert end.size == 0 and end.complete
    evs = events([GREET, (C, b"DATA\r\n"), (S, b"354 go\r\n"), (C, b"a\r\n.x\r\n.\rb\r\n.\r\n")])
    assert content(evs) == b"a\r\nx\r\n\rb\r\n"


def test_smtp_bare_lf_terminator_ends_data_with_a_smuggling_anomaly() -> None:
    evs = events([GREET, (C, b"DATA\r\n"), (S, b"354 go\r\n"), (C, b"x\n.\nMAIL FROM:<e@vil>\r\n")])
    assert content(evs) == b"x\n"
    assert "data-terminator-not-crlf" in kinds(evs)
    assert of(evs, Command)[-1].address == "e@vil"
    evs = events([GREET, (C, b"DATA\r\n"), (S, b"354 go\r\n"), (C, b"x\r\n.\n")])
    assert "data-terminator-not-crlf" in kinds(evs)


def test_smtp_message_content_is_streamed_not_buffered() -> None:
    p = SmtpParser()
    p.feed(0, S, b"220 hi\r\n")
    p.feed(1, C, b"DATA\r\n")
    p.feed(2, S, b"354 go\r\n")
    total = 0
    for i in range(200):
        evs = p.feed(3 + i, C, b"y" * 10_000 + b"\r\n")
        total += len(content(evs))
        assert len(p._buf[C]) <= 3  # nothing held beyond a possible ".\r"
    assert total == 200 * 10_002


def test_smtp_unterminated_message_ends_incomplete_at_close() -> None:
    evs = events([GREET, (C, b"DATA\r\n"), (S, b"354 go\r\n"), (C, b"partial body\r\nno end")])
    assert content(evs) == b"partial body\r\nno end"
    (end,) = of(evs, MessageEnd)
    assert end.complete is False
    assert "message-unterminated" in kinds(evs)


def test_smtp_client_bytes_waiting_for_a_missing_354_are_released_when_too_many() -> None:
    p = SmtpParser()
    p.feed(0, S, b"220 hi\r\n")
    evs = p.feed(1, C, b"DATA\r\n" + b"z" * (MAX_LINE + 10) + b"\r\n.\r\n")
    assert "reply-not-seen" in kinds(evs)
    assert len(content(evs)) == MAX_LINE + 12
    assert of(evs, MessageEnd)[0].complete


# ------------------------------------------------------------------ BDAT (RFC 3030)


def test_smtp_bdat_chunk_pipelined_with_its_command_and_the_next_transaction() -> None:
    evs = events(
        [
            GREET,
            (
                C,
                b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n"
                b"BDAT 12\r\nhello\r\n.worlBDAT 3 LAST\r\nd\r\n",
            ),
            (C, b"mail from:<e@f>\r\nrcpt to:<g@h>\r\n"),
            (S, b"250 ok\r\n250 ok\r\n250 12 octets\r\n250 queued\r\n250 ok\r\n250 ok\r\n"),
        ]
    )
    assert content(evs) == b"hello\r\n.world\r\n"
    (end,) = of(evs, MessageEnd)
    assert (end.body_command, end.size) == ("BDAT", 15)
    cmds = [(c.verb, c.argument) for c in of(evs, Command)]
    assert cmds == [
        ("MAIL", "FROM:<a@b>"),
        ("RCPT", "TO:<c@d>"),
        ("BDAT", "12"),
        ("BDAT", "3 LAST"),
        ("MAIL", "from:<e@f>"),
        ("RCPT", "to:<g@h>"),
    ]
    replies = of(evs, Reply)
    assert [(r.for_command, r.ends_message) for r in replies] == [
        ("MAIL", False),
        ("RCPT", False),
        ("BDAT", False),
        ("BDAT", True),
        ("MAIL", False),
        ("RCPT", False),
    ]
    assert kinds(evs) == []


def test_smtp_bdat_zero_last_ends_the_message() -> None:
    evs = events([GREET, (C, b"BDAT 4\r\nabcdBDAT 0 LAST\r\nQUIT\r\n")])
    assert content(evs) == b"abcd"
    assert of(evs, MessageEnd)[0].size == 4
    assert [c.verb for c in of(evs, Command)] == ["BDAT", "BDAT", "QUIT"]


@pytest.mark.parametrize(
    "argument", [b"", b"12x", b"-5 LAST", b"5 LAST junk", b"99999999999999999999"]
)
def test_smtp_invalid_bdat_argument_is_an_anomaly_and_no_chunk_follows(argument: bytes) -> None:
    evs = events(
        [GREET, (C, b"BDAT " + argument + b"\r\nNOOP\r\n"), (S, b"501 5.5.4 Syntax\r\n250 ok\r\n")]
    )
    assert "bdat-invalid" in kinds(evs)
    assert [c.verb for c in of(evs, Command)] == ["BDAT", "NOOP"]
    assert of(evs, MessageData) == []


# ------------------------------------------------------------------ AUTH (RFC 4954)


def b64(s: bytes) -> bytes:
    return base64.b64encode(s)


def test_smtp_auth_login_two_steps_decodes_challenges_and_responses() -> None:
    evs = events(
        [
            GREET,
            (C, b"AUTH LOGIN\r\n"),
            (S, b"334 VXNlcm5hbWU6\r\n"),
            (C, b64(b"user") + b"\r\n"),
            (S, b"334 UGFzc3dvcmQ6\r\n"),
            (C, b64(b"secret") + b"\r\n"),
            (S, b"235 2.7.0 Authentication successful\r\n"),
            (C, b"MAIL FROM:<u@x>\r\n"),
        ]
    )
    assert [c.text for c in challenges(evs)] == ["Username:", "Password:"]
    assert [(r.initial, r.text, r.base64) for r in responses(evs)] == [
        (False, "user", True),
        (False, "secret", True),
    ]
    assert of(evs, Reply)[0].for_command == "AUTH"
    assert of(evs, Command)[-1].verb == "MAIL"


def test_smtp_auth_login_with_initial_response() -> None:
    evs = events(
        [
            GREET,
            (C, b"AUTH LOGIN " + b64(b"user") + b"\r\n"),
            (S, b"334 UGFzc3dvcmQ6\r\n"),
            (C, b64(b"pw") + b"\r\n"),
            (S, b"235 ok\r\n"),
        ]
    )
    assert [(r.initial, r.text) for r in responses(evs)] == [(True, "user"), (False, "pw")]


def test_smtp_auth_responses_typed_without_base64_are_kept_as_sent() -> None:
    evs = events(
        [
            GREET,
            (C, b"AUTH LOGIN\r\n"),
            (S, b"334 dXNlcm5hbWU6\r\n"),
            (C, b"crazywill\r\n"),
            (S, b"334 UGFzc3dvcmQ6\r\n"),
            (C, b"mypassword\r\n"),
            (S, b"535 Error: authentication failed\r\n"),
        ]
    )
    assert [(r.text, r.base64) for r in responses(evs)] == [
        ("crazywill", False),
        ("mypassword", False),
    ]
    assert of(evs, Reply)[0].code == 535
    assert of(evs, Command)[0].verb == "AUTH" and len(of(evs, Command)) == 1


def test_smtp_auth_plain_inline_and_after_empty_challenge() -> None:
    blob = b64(b"admin\x00alice\x00pw")
    evs = events([GREET, (C, b"AUTH PLAIN " + blob + b"\r\n"), (S, b"235 ok\r\n")])
    (r,) = responses(evs)
    assert (r.mechanism, r.initial, r.data) == ("PLAIN", True, b"admin\x00alice\x00pw")
    evs = events(
        [GREET, (C, b"AUTH PLAIN\r\n"), (S, b"334 \r\n"), (C, blob + b"\r\n"), (S, b"535 no\r\n")]
    )
    (ch,) = challenges(evs)
    assert ch.text == "" and ch.base64
    assert responses(evs)[0].data == b"admin\x00alice\x00pw"


def test_smtp_auth_cram_md5_challenge_and_response() -> None:
    challenge = b"<1896.697170952@postoffice.example.net>"
    digest = hmac.new(b"tanstaaftanstaaf", challenge, "md5").hexdigest().encode()
    evs = events(
        [
            GREET,
            (C, b"AUTH CRAM-MD5\r\n"),
            (S, b"334 " + b64(challenge) + b"\r\n"),
            (C, b64(b"tim " + digest) + b"\r\n"),
            (S, b"235 ok\r\n"),
        ]
    )
    assert challenges(evs)[0].text == challenge.decode()
    assert responses(evs)[0].text == "tim " + digest.decode()


def test_smtp_auth_xoauth2_initial_response() -> None:
    blob = b64(b"user=someone@example.com\x01auth=Bearer ya29.token\x01\x01")
    evs = events([GREET, (C, b"AUTH XOAUTH2 " + blob + b"\r\n"), (S, b"235 2.7.0 Accepted\r\n")])
    (r,) = responses(evs)
    assert r.mechanism == "XOAUTH2" and b"ya29.token" in r.data


def test_smtp_auth_cancel_with_star() -> None:
    evs = events(
        [
            GREET,
            (C, b"AUTH LOGIN\r\n"),
            (S, b"334 VXNlcm5hbWU6\r\n"),
            (C, b"*\r\n"),
            (S, b"501 5.7.0 Authentication aborted\r\n"),
            (C, b"QUIT\r\n"),
        ]
    )
    (r,) = responses(evs)
    assert r.cancelled
    assert of(evs, Reply)[0].code == 501
    assert of(evs, Command)[-1].verb == "QUIT"


def test_smtp_auth_refused_at_once_returns_to_commands() -> None:
    evs = events(
        [GREET, (C, b"AUTH GSSAPI\r\n"), (S, b"504 5.5.4 Unrecognized\r\n"), (C, b"QUIT\r\n")]
    )
    assert [c.verb for c in of(evs, Command)] == ["AUTH", "QUIT"]
    assert responses(evs) == []


# ------------------------------------------------------------------ STARTTLS (RFC 3207)


def test_smtp_starttls_accepted_stops_parsing_and_counts_encrypted_bytes() -> None:
    hello = b"\x16\x03\x01\x00\x05hello"
    steps: list[Step] = [
        GREET,
        (C, b"STARTTLS\r\n"),
        (S, b"220 2.0.0 Ready to start TLS\r\n"),
        (C, hello),
        (S, b"\x16\x03\x03\x00\x02hi"),
    ]
    evs = events(steps)
    assert len(of(evs, TlsStarted)) == 1
    assert [type(e).__name__ for e in evs][-2:] == ["Reply", "TlsStarted"]
    p = SmtpParser()
    feed_steps(lambda: p, steps)
    assert p.tls and p.encrypted_bytes[C] == len(hello) and p.encrypted_bytes[S] == 7


def test_smtp_starttls_refused_continues_in_clear() -> None:
    evs = events(
        [
            GREET,
            (C, b"STARTTLS\r\n"),
            (S, b"454 4.7.0 TLS not available\r\n"),
            (C, b"MAIL FROM:<a@b>\r\n"),
        ]
    )
    assert of(evs, TlsStarted) == []
    assert of(evs, Command)[-1].verb == "MAIL"


# ------------------------------------------------------------------ gaps and partial captures


def test_smtp_gap_inside_data_is_noted_and_the_terminator_still_found() -> None:
    evs = events(
        [
            GREET,
            (C, b"DATA\r\n"),
            (S, b"354 go\r\n"),
            (C, b"first line\r\nsecond li"),
            (C, 500),
            (C, b"ne tail\r\n.\r\nQUIT\r\n"),
            (S, b"250 queued\r\n221 bye\r\n"),
        ]
    )
    gaps = of(evs, MessageGap)
    assert [g.length for g in gaps] == [500]
    assert content(evs) == b"first line\r\nsecond line tail\r\n"
    assert of(evs, MessageEnd)[0].complete
    assert [r.for_command for r in of(evs, Reply)][-2:] == ["DATA", "QUIT"]


def test_smtp_gap_in_commands_resyncs_at_the_next_known_command() -> None:
    evs = events(
        [GREET, (C, b"MAIL FROM:<a@b>\r\nRCPT TO:<c"), (C, 40), (C, b"d>\r\nRCPT TO:<e@f>\r\n")]
    )
    assert [c.verb for c in of(evs, Command)] == ["MAIL", "RCPT"]
    assert of(evs, Command)[-1].address == "e@f"
    assert "resync" in kinds(evs)
    assert [g.length for g in of(evs, StreamGap)] == [40]


def test_smtp_server_gap_drops_pairing_and_assumes_354() -> None:
    evs = events(
        [
            GREET,
            (C, b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n"),
            (S, 30),
            (C, b"Subject: x\r\n\r\nbody\r\n.\r\n"),
            (S, b"250 2.0.0 queued\r\n"),
        ]
    )
    assert "replies-lost" in kinds(evs)
    assert content(evs) == b"Subject: x\r\n\r\nbody\r\n"
    assert of(evs, Reply)[-1].ends_message


def test_smtp_midstream_capture_has_no_greeting_and_resyncs_on_both_sides() -> None:
    evs = events(
        [
            (C, 0),
            (S, 0),
            (C, b"ine of a message body\r\n.\r\nMAIL FROM:<x@y>\r\n"),
            (S, b"eued as 1\r\n250 2.1.0 Ok\r\n"),
        ]
    )
    assert of(evs, Greeting) == []
    assert [c.verb for c in of(evs, Command)] == ["MAIL"]
    assert [r.for_command for r in of(evs, Reply)] == ["MAIL"]


def test_smtp_midstream_capture_starting_at_a_line_boundary_keeps_the_first_line() -> None:
    evs = events([(C, 0), (S, 0), (C, b"RCPT TO:<x@y>\r\n"), (S, b"250 ok\r\n")])
    assert [c.verb for c in of(evs, Command)] == ["RCPT"]
    assert of(evs, Reply)[0].for_command == "RCPT"


def test_smtp_one_side_only_capture_enters_data_at_once() -> None:
    evs = events(
        [
            (C, b"EHLO a\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n"),
            (C, b"Subject: one\r\n\r\nQUIT is not a command here\r\n.\r\n"),
            (C, b"AUTH LOGIN\r\n" + b64(b"u") + b"\r\n" + b64(b"p") + b"\r\nQUIT\r\n"),
        ]
    )
    assert content(evs) == b"Subject: one\r\n\r\nQUIT is not a command here\r\n"
    assert [c.verb for c in of(evs, Command)] == ["EHLO", "MAIL", "RCPT", "DATA", "AUTH", "QUIT"]
    assert [r.text for r in responses(evs)] == ["u", "p"]


def test_smtp_one_side_starttls_is_recognised_by_the_tls_record() -> None:
    evs = events([(C, b"EHLO a\r\nSTARTTLS\r\n\x16\x03\x01\x00\x10binary")])
    assert len(of(evs, TlsStarted)) == 1
    evs = events([(C, b"EHLO a\r\nSTARTTLS\r\nQUIT\r\n")])
    assert of(evs, TlsStarted) == [] and of(evs, Command)[-1].verb == "QUIT"


def test_smtp_events_after_close_are_none() -> None:
    p = SmtpParser()
    p.close(0)
    assert p.feed(1, C, b"QUIT\r\n") == [] and p.gap(2, S, 5) == [] and p.close(3) == []


def test_smtp_unterminated_last_lines_are_parsed_at_close() -> None:
    evs = events([GREET, (C, b"QUIT"), (S, b"221 bye")])
    assert of(evs, Command)[0].verb == "QUIT"
    assert of(evs, Reply)[0].code == 221
    assert kinds(evs).count("unterminated-line") == 2


def test_smtp_state_table_names_every_client_state() -> None:
    named = {s for pair in TRANSITIONS for s in pair}
    assert named == set(ClientState)


# ------------------------------------------------------------------ properties


DIALOGUES: list[list[Step]] = [
    PIPELINED,
    [
        GREET,
        (C, b"EHLO x\r\nAUTH PLAIN\r\n"),
        (S, b"250 ok\r\n334 \r\n"),
        (C, b64(b"\x00u\x00p") + b"\r\nBDAT 5 LAST\r\nabcdeQUIT\r\n"),
        (S, b"235 ok\r\n250 ok\r\n221 bye\r\n"),
    ],
    [GREET, (C, b"STARTTLS\r\n"), (S, b"220 go\r\n"), (C, b"\x16\x03\x01junk")],
    [
        (
            C,
            b"EHLO a\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nSubject: x\r\n\r\n..hi\r\n"
            b".\r\nAUTH LOGIN\r\ndXNlcg==\r\ncGFzcw==\r\nSTARTTLS\r\n\x16\x03",
        )
    ],
    [
        (C, 0),
        (S, 0),
        (C, b"x\r\nMAIL FROM:<a@b>\r\nBDAT 3\r\nabcBDAT 0 LAST\r\n"),
        (S, b"250 ok\r\n250 ok\r\n250 ok\r\n"),
        (C, b"DATA\r\nfoo\r\n.\r\n"),
        (S, b"354 go\r\n250 ok\r\n"),
    ],
    [
        GREET,
        (C, b"AUTH CRAM-MD5\r\n"),
        (S, b"334 PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UuZXhhbXBsZS5uZXQ+\r\n"),
        (C, b"dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw\r\n"),
        (S, b"235 ok\r\n"),
        (C, b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nx\n.\n"),
        (S, b"250 ok\r\n250 ok\r\n354 go\r\n250 ok\r\n"),
    ],
]


def _mutate(steps: list[Step], data: st.DataObject) -> list[Step]:
    out: list[Step] = []
    for direction, item in steps:
        if isinstance(item, int):
            out.append((direction, item))
            continue
        b = bytearray(item)
        for _ in range(data.draw(st.integers(0, 3))):
            op = data.draw(st.sampled_from(["flip", "cut", "insert", "gap"]))
            pos = data.draw(st.integers(0, max(len(b) - 1, 0)))
            if op == "flip" and b:
                b[pos] = data.draw(st.integers(0, 255))
            elif op == "cut":
                del b[pos : pos + data.draw(st.integers(1, 8))]
            elif op == "insert":
                b[pos:pos] = data.draw(
                    st.sampled_from([b"\r\n", b"\n", b".", b"\r\n.\r\n", b"\x00"])
                )
            else:
                out.append((direction, data.draw(st.integers(0, 100))))
        side = data.draw(st.sampled_from([direction, direction.other]))
        out.append((side, bytes(b)))
    return out


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([C, S]), st.binary(max_size=200) | st.integers(0, 50))))
def test_smtp_parser_never_raises_on_arbitrary_bytes(steps: list[Step]) -> None:
    feed_steps(SmtpParser, steps)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(DIALOGUES), st.data())
def test_smtp_parser_never_raises_on_mutated_real_dialogues(
    dialogue: list[Step], data: st.DataObject
) -> None:
    feed_steps(SmtpParser, _mutate(dialogue, data))


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(DIALOGUES), st.data())
def test_smtp_chunking_never_changes_the_events_of_mutated_dialogues(
    dialogue: list[Step], data: st.DataObject
) -> None:
    steps = _mutate(dialogue, data)
    whole = normalize(feed_steps(SmtpParser, steps), (MessageData,))
    cuts = [data.draw(st.lists(st.integers(0, 300), max_size=5)) for _ in steps]

    def cut(i: int, b: bytes) -> list[bytes]:
        bounds = sorted({0, len(b), *(c % (len(b) + 1) for c in cuts[i])})
        return [b[x:y] for x, y in zip(bounds, bounds[1:], strict=False) if y > x] or [b]

    assert normalize(feed_steps(SmtpParser, steps, cut), (MessageData,)) == whole


def test_smtp_cleartext_pipelined_after_starttls_is_flagged() -> None:
    # CVE-2011-0411: commands sent with STARTTLS, in clear, before the handshake.
    evs = events([GREET, (C, b"STARTTLS\r\nRSET\r\n"), (S, b"220 2.0.0 Ready\r\n")])
    assert len(of(evs, TlsStarted)) == 1
    assert "cleartext-after-starttls" in kinds(evs)
    assert [c.verb for c in of(evs, Command)] == ["STARTTLS"]


def test_smtp_content_waiting_for_354_at_close_is_taken_as_content() -> None:
    evs = events([GREET, (C, b"MAIL FROM:<a@b>\r\nDATA\r\nSubject: s\r\n\r\nbody\r\n.\r\n")])
    assert content(evs) == b"Subject: s\r\n\r\nbody\r\n"
    assert "reply-not-seen" in kinds(evs)
    assert of(evs, MessageEnd)[0].complete


def test_smtp_data_after_unfinished_bdat_ends_the_chunked_message_incomplete() -> None:
    evs = events(
        [GREET, (C, b"BDAT 3\r\nabcDATA\r\n"), (S, b"250 ok\r\n354 go\r\n"), (C, b"x\r\n.\r\n")]
    )
    ends = of(evs, MessageEnd)
    assert [(e.body_command, e.size, e.complete) for e in ends] == [
        ("BDAT", 3, False),
        ("DATA", 3, True),
    ]


def test_smtp_reply_with_endless_continuation_lines_stays_bounded() -> None:
    p = SmtpParser()
    p.feed(0, S, b"220 hi\r\n")
    p.feed(1, C, b"EHLO x\r\n")
    for _ in range(2000):
        p.feed(2, S, b"250-" + b"k" * 1000 + b"\r\n")
    evs = p.feed(3, S, b"250 end\r\n")
    (r,) = of(evs, Reply)
    assert len(r.raw) <= MAX_LINE + 1010
    assert len(r.lines) < 100


def test_smtp_terminator_right_after_a_gap_in_data_still_ends_the_message() -> None:
    evs = events(
        [
            GREET,
            (C, b"DATA\r\n"),
            (S, b"354 go\r\n"),
            (C, b"Subject: s\r\n\r\nbody"),
            (C, 700),
            (C, b".\r\nQUIT\r\n"),
        ]
    )
    assert of(evs, MessageEnd)[0].complete
    assert of(evs, Command)[-1].verb == "QUIT"
    evs = events(
        [GREET, (C, b"DATA\r\n"), (S, b"354 go\r\n"), (C, b"a"), (C, 9), (C, b".5 kg\r\n.\r\n")]
    )
    assert content(evs) == b"a.5 kg\r\n"  # a dot after a gap is not taken as stuffing


def test_smtp_server_reply_during_content_ends_a_message_whose_end_was_not_captured() -> None:
    # The client's "\r\n.\r\n" fell into a capture gap; the server's 250 proves DATA ended.
    parser = SmtpParser()
    events = []
    events += parser.feed(1, S, b"220 mx ESMTP\r\n")
    events += parser.feed(2, C, b"MAIL FROM:<a@x>\r\n")
    events += parser.feed(3, S, b"250 ok\r\n")
    events += parser.feed(4, C, b"RCPT TO:<b@x>\r\n")
    events += parser.feed(5, S, b"250 ok\r\n")
    events += parser.feed(6, C, b"DATA\r\n")
    events += parser.feed(7, S, b"354 go\r\n")
    events += parser.feed(8, C, b"Subject: hi\r\n\r\nbody line\r\n")
    events += parser.feed(9, S, b"250 queued as 1\r\n")
    events += parser.gap(10, C, 3)
    events += parser.feed(11, C, b"QUIT\r\n")
    events += parser.feed(12, S, b"221 bye\r\n")
    [end] = [e for e in events if isinstance(e, MessageEnd)]
    assert not end.complete and end.size == len(b"Subject: hi\r\n\r\nbody line\r\n")
    replies = [e for e in events if isinstance(e, Reply)]
    assert [(r.code, r.for_command, r.ends_message) for r in replies[-2:]] == [
        (250, "DATA", True),
        (221, "QUIT", False),
    ]
    kinds = [e.kind for e in events if isinstance(e, Anomaly)]
    assert "end-of-data-not-captured" in kinds
    assert "reply-without-command" not in kinds


# ------------------------------------------------------------------ replies that went astray


def pairs(evs: Sequence[SmtpEvent]) -> list[tuple[str | None, int]]:
    return [(r.for_command, r.code) for r in of(evs, Reply)]


TRANSACTION_REPLIES: list[tuple[str | None, int]] = [
    ("MAIL", 250),
    ("RCPT", 250),
    ("DATA", 354),
    ("DATA", 250),
    ("QUIT", 221),
]


def test_smtp_lone_continuation_line_ends_when_the_client_sends_its_next_command() -> None:
    # The EHLO reply's last line never comes; the client's MAIL shows the reply was over.
    evs = events(
        [
            GREET,
            (C, b"EHLO me\r\n"),
            (S, b"250-mx.example.org\r\n"),
            (C, b"MAIL FROM:<a@b>\r\n"),
            (S, b"250 2.1.0 Ok\r\n"),
            (C, b"RCPT TO:<c@d>\r\n"),
            (S, b"250 2.1.5 Ok\r\n"),
            (C, b"DATA\r\n"),
            (S, b"354 go\r\n"),
            (C, b"Subject: s\r\n\r\nbody\r\n.\r\n"),
            (S, b"250 queued\r\n"),
            (C, b"QUIT\r\n"),
            (S, b"221 bye\r\n"),
        ]
    )
    ehlo, *rest = of(evs, Reply)
    assert (ehlo.for_command, ehlo.lines) == ("EHLO", ("mx.example.org",))
    assert [(r.for_command, r.code) for r in rest] == TRANSACTION_REPLIES
    assert [r.last_line for r in rest[:2]] == ["250 2.1.0 Ok", "250 2.1.5 Ok"]
    assert content(evs) == b"Subject: s\r\n\r\nbody\r\n"
    assert of(evs, MessageEnd)[0].complete
    assert kinds(evs) == ["reply-unterminated"]


def test_smtp_lone_continuation_to_mail_without_pipelining_does_not_shift_later_replies() -> None:
    # No PIPELINING offered: the client sends RCPT only once it has MAIL's whole reply.
    evs = events(
        [
            GREET,
            (C, b"EHLO me\r\n"),
            (S, b"250-mx\r\n250 SIZE 1000\r\n"),
            (C, b"MAIL FROM:<a@b>\r\n"),
            (S, b"250-sender ok\r\n"),
            (C, b"RCPT TO:<c@d>\r\n"),
            (S, b"250 recipient ok\r\n"),
            (C, b"DATA\r\n"),
            (S, b"354 go\r\n"),
            (C, b"body\r\n.\r\n"),
            (S, b"250 queued\r\n"),
            (C, b"QUIT\r\n"),
            (S, b"221 bye\r\n"),
        ]
    )
    assert pairs(evs)[1:] == TRANSACTION_REPLIES
    assert of(evs, Reply)[2].last_line == "250 recipient ok"
    assert content(evs) == b"body\r\n"
    assert kinds(evs) == ["reply-unterminated"]


def test_smtp_lone_continuation_with_pipelining_pairs_354_with_data_and_flags_the_loss() -> None:
    # With PIPELINING the client may send RCPT before MAIL's reply is over, so the "250 ok"
    # after it is taken as the rest of MAIL's reply; the 354 still fits only DATA.
    evs = events(
        [
            GREET,
            (C, b"EHLO me\r\n"),
            (S, b"250-mx\r\n250 PIPELINING\r\n"),
            (C, b"MAIL FROM:<a@b>\r\n"),
            (S, b"250-sender ok\r\n"),
            (C, b"RCPT TO:<c@d>\r\n"),
            (S, b"250 recipient ok\r\n"),
            (C, b"DATA\r\n"),
            (S, b"354 go\r\n"),
            (C, b"body\r\n.\r\n"),
            (S, b"250 queued\r\n"),
        ]
    )
    assert pairs(evs) == [("EHLO", 250), ("MAIL", 250), ("DATA", 354), ("DATA", 250)]
    assert content(evs) == b"body\r\n"
    assert of(evs, MessageEnd)[0].complete
    (lost,) = [a for a in of(evs, Anomaly) if a.kind == "reply-lost"]
    assert lost.detail == "RCPT: no reply before the 354 answering DATA"


def test_smtp_greeting_without_crlf_ends_when_the_client_says_ehlo() -> None:
    evs = events(
        [
            (S, b"220 mx.example.org ESMTP"),
            (C, b"EHLO me\r\n"),
            (S, b"250 mx.example.org\r\n"),
            (C, b"MAIL FROM:<a@b>\r\n"),
            (S, b"250 ok\r\n"),
            (C, b"RCPT TO:<c@d>\r\n"),
            (S, b"250 ok\r\n"),
            (C, b"DATA\r\n"),
            (S, b"354 go\r\n"),
            (C, b"body\r\n.\r\n"),
            (S, b"250 queued\r\n"),
            (C, b"QUIT\r\n"),
            (S, b"221 bye\r\n"),
        ]
    )
    (g,) = of(evs, Greeting)
    assert (g.code, g.lines) == (220, ("mx.example.org ESMTP",))
    assert pairs(evs) == [("EHLO", 250), *TRANSACTION_REPLIES]
    assert content(evs) == b"body\r\n"
    assert kinds(evs) == ["unterminated-line"]


def test_smtp_354_without_crlf_ends_when_content_follows() -> None:
    evs = events(
        [
            GREET,
            (C, b"DATA\r\n"),
            (S, b"354 go ahead"),
            (C, b"Subject: s\r\n\r\nbody\r\n.\r\n"),
            (S, b"250 queued\r\n"),
            (C, b"QUIT\r\n"),
            (S, b"221 bye\r\n"),
        ]
    )
    assert pairs(evs) == [("DATA", 354), ("DATA", 250), ("QUIT", 221)]
    assert content(evs) == b"Subject: s\r\n\r\nbody\r\n"
    assert kinds(evs) == ["unterminated-line"]


def test_smtp_pipelined_commands_with_a_lost_reply_pair_354_and_221_by_their_code() -> None:
    evs = events(
        [
            GREET,
            (C, b"EHLO me\r\n"),
            (S, b"250-mx\r\n250 PIPELINING\r\n"),
            (C, b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nRCPT TO:<e@f>\r\nDATA\r\n"),
            (S, b"250 ok\r\n250 ok\r\n354 go\r\n"),  # one RCPT reply missing
            (C, b"body\r\n.\r\nQUIT\r\n"),
            (S, b"221 bye\r\n"),  # the reply to the end of data missing
        ]
    )
    assert pairs(evs) == [("EHLO", 250), ("MAIL", 250), ("RCPT", 250), ("DATA", 354), ("QUIT", 221)]
    assert content(evs) == b"body\r\n"
    assert [a.detail for a in of(evs, Anomaly)] == [
        "RCPT: no reply before the 354 answering DATA",
        "DATA: no reply before the 221 answering QUIT",
    ]


def test_smtp_new_reply_code_ends_an_unfinished_reply_when_another_command_waits() -> None:
    evs = events(
        [
            GREET,
            (C, b"EHLO me\r\n"),
            (S, b"250-mx\r\n250 PIPELINING\r\n"),
            (C, b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n"),
            (S, b"250-sender ok\r\n550 5.1.1 no such user\r\n"),
        ]
    )
    assert pairs(evs) == [("EHLO", 250), ("MAIL", 250), ("RCPT", 550)]
    assert kinds(evs) == ["reply-unterminated"]


def test_smtp_reply_code_that_fits_no_waiting_command_is_flagged() -> None:
    evs = events([GREET, (C, b"RCPT TO:<c@d>\r\n"), (S, b"354 go\r\n")])
    assert pairs(evs) == [("RCPT", 354)]
    assert [a.detail for a in of(evs, Anomaly)] == ["354 does not answer RCPT"]


def test_smtp_pipelined_commands_sent_during_a_split_reply_do_not_cut_it() -> None:
    # With PIPELINING, a RCPT may be sent before MAIL's multi-line reply is over.
    evs = events(
        [
            GREET,
            (C, b"EHLO me\r\n"),
            (S, b"250-mx\r\n250 PIPELINING\r\n"),
            (C, b"MAIL FROM:<a@b>\r\n"),
            (S, b"250-one\r\n250-two"),
            (C, b"RCPT TO:<c@d>\r\n"),
            (S, b"\r\n250 three\r\n250 ok\r\n"),
        ]
    )
    mail = of(evs, Reply)[1]
    assert mail.lines == ("one", "two", "three")
    assert pairs(evs)[2:] == [("RCPT", 250)]
    assert kinds(evs) == []


def test_smtp_354_to_exchange_xexch50_is_not_taken_for_a_lost_reply() -> None:
    evs = events([GREET, (C, b"XEXCH50 120 2\r\n"), (S, b"354 Send binary data\r\n")])
    assert pairs(evs) == [("XEXCH50", 354)]
    assert kinds(evs) == []
