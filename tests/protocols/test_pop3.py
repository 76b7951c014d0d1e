"""Tests for the sans-IO POP3 parser: every case fed whole, byte by byte and at random splits."""

from __future__ import annotations

import base64
import random
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from unittest.mock import patch

from hypothesis import given
from hypothesis import strategies as st

from mailsniff.limits import MAX_LINE, MAX_PENDING_COMMANDS
from mailsniff.protocols.base import Anomaly, Direction, SaslStep, StreamGap, TlsStarted
from mailsniff.protocols.pop3 import (
    Command,
    Greeting,
    MultilineData,
    Pop3Event,
    Pop3Parser,
    Response,
    ResponseEnd,
)
from tests.seed_dialogues import SEED_RETR, SEED_SESSION, SEED_TOP

C, S = Direction.CLIENT, Direction.SERVER

#: A dialogue step: bytes of one direction, or ("gap", direction, length).
Step = tuple[Direction, bytes] | tuple[str, Direction, int]
Splitter = Callable[[bytes], Iterable[bytes]]


def _whole(data: bytes) -> Iterable[bytes]:
    return [data]


def _bytewise(data: bytes) -> Iterable[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def _random_splits(seed: int) -> Splitter:
    def split(data: bytes) -> Iterable[bytes]:
        rng = random.Random(seed * 7919 + len(data))
        cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, 5))) if data else []
        bounds = [0, *cuts, len(data)]
        return [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]

    return split


def run(steps: Sequence[Step], split: Splitter = _whole) -> list[Pop3Event]:
    """Feed `steps` (timestamp = step index) through one parser, each chunk cut by `split`."""
    parser = Pop3Parser()
    events: list[Pop3Event] = []
    for ts, step in enumerate(steps):
        if len(step) == 3:
            _, direction, length = step
            assert isinstance(direction, Direction) and isinstance(length, int)
            events += parser.gap(ts, direction, length)
        else:
            direction, data = step
            assert isinstance(direction, Direction) and isinstance(data, bytes)
            for piece in split(data):
                events += parser.feed(ts, direction, piece)
    events += parser.close(len(steps))
    return events


def merged(events: list[Pop3Event]) -> list[Pop3Event]:
    """`events` with each run of RETR/TOP body MultilineData of one instant joined into one.

    How such a body is cut into events depends on how its bytes arrived; its content, where it
    lies among the other events and when each byte of it was delivered must not. Listing lines
    and the lines of a body after a gap are one event per line and stay unmerged.
    """
    out: list[Pop3Event] = []
    chunked = False  # inside a RETR/TOP body not yet damaged by a gap
    for event in events:
        last = out[-1] if out else None
        if isinstance(event, Response):
            verb = event.command.verb if event.command is not None else ""
            chunked = event.multiline and verb in ("RETR", "TOP")
        elif isinstance(event, ResponseEnd) or (
            isinstance(event, StreamGap) and event.inside is not None
        ):
            chunked = False
        if (
            chunked
            and isinstance(event, MultilineData)
            and isinstance(last, MultilineData)
            and last.ts_ns == event.ts_ns
        ):
            out[-1] = MultilineData(
                ts_ns=event.ts_ns,
                direction=event.direction,
                raw=last.raw + event.raw,
                data=last.data + event.data,
            )
        else:
            out.append(event)
    return out


def feed_all_ways(steps: Sequence[Step]) -> list[Pop3Event]:
    """The events of `steps` fed whole, asserting that however the bytes are chunked every event
    is identical, body content aside, and that the body content is the same at the same times.
    """
    expected = run(steps)
    want = merged(expected)
    assert merged(run(steps, _bytewise)) == want
    for seed in range(5):
        assert merged(run(steps, _random_splits(seed))) == want
    return expected


def of(events: list[Pop3Event], kind: type) -> list:  # type: ignore[type-arg]
    return [e for e in events if isinstance(e, kind)]


def body(events: list[Pop3Event]) -> bytes:
    return b"".join(e.data for e in of(events, MultilineData))


# --------------------------------------------------------------------------------------------
# The seed session
# --------------------------------------------------------------------------------------------


def test_pop3_seed_session_pairs_every_response_with_its_command() -> None:
    events = feed_all_ways(SEED_SESSION)
    greeting = of(events, Greeting)
    assert [g.text for g in greeting] == ["Welcome to coremail Mail Pop3 Server (163com[20050206])"]
    pairs = [(r.command.raw if r.command else None, r.raw) for r in of(events, Response)]
    assert pairs == [
        (b"USER crazywill", b"+OK core mail"),
        (b"PASS mypassword", b"+OK 254 message(s) [27676669 byte(s)]"),
        (b"STAT", b"+OK 254 27676669"),
        (b"LIST", b"+OK 254 27676669"),
        (b"TOP 254 0", b"+OK core mail"),
        (b"RETR 254", b"+OK 354 octets"),
        (b"DELE 254", b"+OK core mail"),
        (b"STAT", b"+OK 253 27676315"),
        (b"QUIT", b"+OK core mail"),
    ]
    assert [r.multiline for r in of(events, Response)] == [
        False, False, False, True, True, True, False, False, False,
    ]  # fmt: skip
    assert not of(events, Anomaly)


def test_pop3_seed_retr_body_is_the_message_bytes() -> None:
    events = feed_all_ways(SEED_SESSION)
    ends = of(events, ResponseEnd)
    assert [(e.command.verb if e.command else None, e.lines, e.complete) for e in ends] == [
        ("LIST", 8, True),
        ("TOP", 9, True),
        ("RETR", 11, True),
    ]
    # Split the body events at each ResponseEnd.
    chunks: list[bytes] = []
    current = b""
    for e in events:
        if isinstance(e, MultilineData):
            current += e.data
        elif isinstance(e, ResponseEnd):
            chunks.append(current)
            current = b""
    assert chunks[1] == SEED_TOP
    assert chunks[2] == SEED_RETR


def test_pop3_commands_are_upper_cased_with_the_argument_as_sent() -> None:
    events = feed_all_ways(
        [
            (S, b"+OK POP server ready H migmxus005\r\n"),
            (C, b"user cicciopernacchio@mail.com\r\n"),
            (S, b"+OK password required\r\n"),
            (C, b"pass pippozzo \r\n"),
            (S, b"+OK mailbox has 2 messages\r\n"),
            (C, b"retr 2\r\n"),
            (S, b"+OK\r\nSubject: x\r\n\r\nhi\r\n.\r\n"),
        ]
    )
    cmds = of(events, Command)
    assert [(c.verb, c.argument, c.args) for c in cmds] == [
        ("USER", "cicciopernacchio@mail.com", ("cicciopernacchio@mail.com",)),
        ("PASS", "pippozzo ", ("pippozzo",)),
        ("RETR", "2", ("2",)),
    ]
    assert body(events) == b"Subject: x\r\n\r\nhi\r\n"


# --------------------------------------------------------------------------------------------
# Multi-line or not
# --------------------------------------------------------------------------------------------


def test_pop3_list_and_uidl_with_an_argument_are_single_line() -> None:
    events = feed_all_ways(
        [
            (S, b"+OK ready\r\n"),
            (C, b"LIST 2\r\n"),
            (S, b"+OK 2 200\r\n"),
            (C, b"UIDL 2\r\n"),
            (S, b"+OK 2 QhdPYR:00WBw1Ph7x7\r\n"),
            (C, b"UIDL\r\n"),
            (S, b"+OK\r\n1 whqtswO00WBw418f9t5JxYwZ\r\n2 QhdPYR:00WBw1Ph7x7\r\n.\r\n"),
            (C, b"NOOP\r\n"),
            (S, b"+OK\r\n"),
        ]
    )
    responses = of(events, Response)
    assert [(r.command.verb, r.multiline) for r in responses if r.command] == [
        ("LIST", False),
        ("UIDL", False),
        ("UIDL", True),
        ("NOOP", False),
    ]
    assert [d.raw for d in of(events, MultilineData)] == [
        b"1 whqtswO00WBw418f9t5JxYwZ",
        b"2 QhdPYR:00WBw1Ph7x7",
    ]
    assert not of(events, Anomaly)


def test_pop3_err_is_always_a_single_line() -> None:
    events = feed_all_ways(
        [
            (S, b"+OK ready\r\n"),
            (C, b"RETR 9\r\nLIST\r\n"),
            (S, b"-ERR [SYS/PERM] no such message\r\n+OK 1 messages\r\n1 120\r\n.\r\n"),
        ]
    )
    first, second = of(events, Response)
    assert (first.ok, first.multiline, first.code, first.command.verb) == (
        False,
        False,
        "SYS/PERM",
        "RETR",
    )
    assert (second.ok, second.multiline, second.command.verb) == (True, True, "LIST")
    assert [d.raw for d in of(events, MultilineData)] == [b"1 120"]


def test_pop3_pipelined_commands_pair_first_in_first_out() -> None:
    events = feed_all_ways(
        [
            (S, b"+OK ready\r\n"),
            (C, b"STAT\r\nLIST\r\nRETR 1\r\nDELE 1\r\nQUIT\r\n"),
            (
                S,
                b"+OK 1 20\r\n+OK\r\n1 20\r\n.\r\n+OK\r\nSubject: a\r\n\r\nb\r\n.\r\n"
                b"+OK deleted\r\n+OK bye\r\n",
            ),
        ]
    )
    assert [(r.command.verb, r.text) for r in of(events, Response) if r.command] == [
        ("STAT", "1 20"),
        ("LIST", ""),
        ("RETR", ""),
        ("DELE", "deleted"),
        ("QUIT", "bye"),
    ]


def test_pop3_auth_without_argument_lists_mechanisms_as_a_body() -> None:
    events = feed_all_ways(
        [
            (S, b"+OK ready\r\n"),
            (C, b"AUTH\r\n"),
            (S, b"+OK methods\r\nPLAIN\r\nLOGIN\r\n.\r\n"),
            (C, b"AUTH\r\n"),
            (S, b"-ERR 1 argument required\r\n"),
            (C, b"CAPA\r\n"),
            (S, b"+OK Capability list follows\r\nTOP\r\nSASL PLAIN\r\n.\r\n"),
        ]
    )
    assert [d.raw for d in of(events, MultilineData)] == [b"PLAIN", b"LOGIN", b"TOP", b"SASL PLAIN"]
    assert not of(events, SaslStep)


# --------------------------------------------------------------------------------------------
# Dot-stuffing and terminators
# --------------------------------------------------------------------------------------------


def test_pop3_body_lines_are_dot_unstuffed() -> None:
    events = feed_all_ways(
        [
            (S, b"+OK ready\r\n"),
            (C, b"RETR 1\r\n"),
            (S, b"+OK\r\nSubject: dots\r\n\r\n..\r\n...leading\r\n.x\r\n. \r\nend\r\n.\r\n"),
        ]
    )
    assert body(events) == b"Subject: dots\r\n\r\n.\r\n..leading\r\nx\r\n \r\nend\r\n"
    assert of(events, ResponseEnd)[0].complete


def test_pop3_terminator_split_across_segments_ends_the_body() -> None:
    events = feed_all_ways(
        [
            (S, b"+OK ready\r\n"),
            (C, b"RETR 1\r\n"),
            (S, b"+OK\r\nline\r"),
            (S, b"\n"),
            (S, b"."),
            (S, b"\r"),
            (S, b"\n+OK "),
            (C, b"QUIT\r\n"),
            (S, b"bye\r\n"),
        ]
    )
    assert body(events) == b"line\r\n"
    assert [r.text for r in of(events, Response)] == ["", "bye"]
    assert of(events, ResponseEnd)[0].complete


def test_pop3_bare_lf_line_endings_are_tolerated_and_kept() -> None:
    events = feed_all_ways(
        [
            (S, b"+OK ready\n"),
            (C, b"RETR 1\n"),
            (S, b"+OK\nSubject: lf\n\n..dot\nbody\n.\n"),
            (C, b"QUIT\n"),
            (S, b"+OK bye\n"),
        ]
    )
    assert body(events) == b"Subject: lf\n\n.dot\nbody\n"
    assert [r.text for r in of(events, Response)] == ["", "bye"]


def test_pop3_a_message_may_quote_status_lines() -> None:
    events = feed_all_ways(
        [
            (S, b"+OK ready\r\n"),
            (C, b"RETR 1\r\nQUIT\r\n"),
            (S, b"+OK\r\n\r\n+OK this is text\r\n-ERR so is this\r\n.\r\n+OK bye\r\n"),
        ]
    )
    assert body(events) == b"\r\n+OK this is text\r\n-ERR so is this\r\n"
    assert [r.text for r in of(events, Response)] == ["", "bye"]


# --------------------------------------------------------------------------------------------
# SASL (RFC 5034)
# --------------------------------------------------------------------------------------------

PLAIN = base64.b64encode(b"\x00digitalinvestigator@networksims.com\x00napier123")


def test_pop3_auth_plain_after_continuation_is_a_decoded_sasl_step() -> None:
    events = feed_all_ways(
        [
            (S, b"+OK POP server ready\r\n"),
            (C, b"AUTH PLAIN\r\n"),
            (S, b"+ \r\n"),
            (C, PLAIN + b"\r\n"),
            (S, b'+OK mailbox "digitalinvestigator@networksims.com" has 3 messages\r\n'),
            (C, b"STAT\r\n"),
            (S, b"+OK 3 19191\r\n"),
        ]
    )
    steps = of(events, SaslStep)
    assert [(s.direction, s.mechanism, s.data, s.base64) for s in steps] == [
        (S, "PLAIN", b"", True),
        (C, "PLAIN", b"\x00digitalinvestigator@networksims.com\x00napier123", True),
    ]
    assert [r.command.verb for r in of(events, Response) if r.command] == ["AUTH", "STAT"]
    assert [c.verb for c in of(events, Command)] == ["AUTH", "STAT"]


def test_pop3_auth_initial_response_is_a_sasl_step_and_the_next_line_a_command() -> None:
    events = feed_all_ways(
        [
            (S, b"+OK ready\r\n"),
            (C, b"AUTH PLAIN " + PLAIN + b"\r\n"),
            (S, b"+OK logged in\r\n"),
            (C, b"STAT\r\n"),
            (S, b"+OK 3 19191\r\n"),
        ]
    )
    (step,) = of(events, SaslStep)
    assert step.initial and step.data.endswith(b"napier123")
    assert [c.verb for c in of(events, Command)] == ["AUTH", "STAT"]


def test_pop3_auth_login_takes_two_client_lines_after_challenges() -> None:
    events = feed_all_ways(
        [
            (S, b"+OK ready\r\n"),
            (C, b"AUTH LOGIN\r\n"),
            (S, b"+ VXNlcm5hbWU6\r\n"),
            (C, b"Y3Jhenl3aWxs\r\n"),
            (S, b"+ UGFzc3dvcmQ6\r\n"),
            (C, b"mypassword\r\n"),
            (S, b"-ERR [AUTH] authentication failed\r\n"),
        ]
    )
    steps = of(events, SaslStep)
    assert [(s.direction, s.text, s.base64) for s in steps] == [
        (S, "Username:", True),
        (C, "crazywill", True),
        (S, "Password:", True),
        (C, "mypassword", False),
    ]
    (resp,) = [r for r in of(events, Response) if r.command]
    assert (resp.ok, resp.code) == (False, "AUTH")


def test_pop3_auth_cancel_with_star() -> None:
    events = feed_all_ways(
        [
            (S, b"+OK ready\r\n"),
            (C, b"AUTH CRAM-MD5\r\n"),
            (S, b"+ PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+\r\n"),
            (C, b"*\r\n"),
            (S, b"-ERR cancelled\r\n"),
            (C, b"QUIT\r\n"),
        ]
    )
    steps = of(events, SaslStep)
    assert steps[0].text == "<1896.697170952@postoffice.reston.mci.net>"
    assert steps[1].cancelled
    assert [c.verb for c in of(events, Command)] == ["AUTH", "QUIT"]


def test_pop3_auth_xoauth2_with_continuation_as_in_suricata_pop3_auth_01() -> None:
    blob = b"dXNlcj1qb2Uuc3BlZWRib2F0AWF1dGg9QmVhcmVyIEFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUEBAQ=="
    events = feed_all_ways(
        [
            (C, b"CAPA\r\n"),
            (S, b"+OK Capability list follows\r\nUSER\r\nSASL PLAIN XOAUTH2 OAUTHBEARER\r\n.\r\n"),
            (C, b"AUTH XOAUTH2\r\n"),
            (S, b"+ \r\n"),
            (C, blob + b"\r\n"),
            (S, b"+OK Welcome.\r\n"),
        ]
    )
    # The client spoke first: the greeting was not captured, "+OK Capability..." answers CAPA.
    assert not of(events, Greeting)
    assert [a.kind for a in of(events, Anomaly)] == ["no-greeting"]
    assert [d.raw for d in of(events, MultilineData)] == [
        b"USER",
        b"SASL PLAIN XOAUTH2 OAUTHBEARER",
    ]
    client_step = [s for s in of(events, SaslStep) if s.direction is C][0]
    assert client_step.data.startswith(b"user=joe.speedboat\x01auth=Bearer ")


# --------------------------------------------------------------------------------------------
# APOP, STLS
# --------------------------------------------------------------------------------------------


def test_pop3_greeting_carries_the_apop_challenge() -> None:
    events = feed_all_ways(
        [
            (S, b"+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>\r\n"),
            (C, b"APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\n"),
            (S, b"+OK maildrop has 1 message (369 octets)\r\n"),
        ]
    )
    (greeting,) = of(events, Greeting)
    assert greeting.challenge == "<1896.697170952@dbc.mtview.ca.us>"
    (cmd,) = of(events, Command)
    assert cmd.args == ("mrose", "c4c9334bac560ecc979e58001b3e22fb")


def test_pop3_stls_accepted_stops_parsing() -> None:
    events = feed_all_ways(
        [
            (S, b"+OK ready\r\n"),
            (C, b"STLS\r\n"),
            (S, b"+OK Begin TLS negotiation\r\n"),
            (C, b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\nUSER x\r\n"),
            (S, b"\x16\x03\x03\x00\x5d\x02\r\n-ERR x\r\n"),
        ]
    )
    assert len(of(events, TlsStarted)) == 1
    assert of(events, Command)[-1].verb == "STLS"
    assert of(events, Response)[-1].text == "Begin TLS negotiation"
    assert not of(events, Anomaly)


def test_pop3_stls_refused_continues_in_clear() -> None:
    events = feed_all_ways(
        [
            (S, b"+OK ready\r\n"),
            (C, b"STLS\r\n"),
            (S, b"-ERR not now\r\n"),
            (C, b"USER a\r\n"),
            (S, b"+OK\r\n"),
        ]
    )
    assert not of(events, TlsStarted)
    assert [c.verb for c in of(events, Command)] == ["STLS", "USER"]


def test_pop3_commands_pipelined_after_stls_are_flagged() -> None:
    events = feed_all_ways(
        [
            (S, b"+OK ready\r\n"),
            (C, b"STLS\r\nUSER injected\r\n"),
            (S, b"+OK go ahead\r\n"),
        ]
    )
    assert of(events, TlsStarted)
    assert [a.kind for a in of(events, Anomaly)] == ["pipelined-after-stls"]


# --------------------------------------------------------------------------------------------
# Gaps, midstream, garbage
# --------------------------------------------------------------------------------------------


def test_pop3_gap_inside_retr_is_noted_and_the_terminator_still_found() -> None:
    events = feed_all_ways(
        [
            (S, b"+OK ready\r\n"),
            (C, b"RETR 1\r\n"),
            (S, b"+OK\r\nSubject: gap\r\n\r\nfirst line\r\nsecond li"),
            ("gap", S, 1400),
            (S, b"st of a cut line\r\nlast line\r\n.\r\n"),
            (C, b"QUIT\r\n"),
            (S, b"+OK bye\r\n"),
        ]
    )
    (gap,) = of(events, StreamGap)
    assert gap.length == 1400 and gap.inside is not None and gap.inside.verb == "RETR"
    assert gap.raw == b"second li"
    # Every captured byte of the body is kept, the pieces either side of the gap included.
    assert body(events) == (
        b"Subject: gap\r\n\r\nfirst line\r\nsecond list of a cut line\r\nlast line\r\n"
    )
    (end,) = of(events, ResponseEnd)
    assert end.complete
    assert of(events, Response)[-1].text == "bye"
    assert not of(events, Anomaly)


def test_pop3_pieces_cut_by_a_gap_in_a_body_are_not_unstuffed_or_terminators() -> None:
    events = feed_all_ways(
        [
            (S, b"+OK ready\r\n"),
            (C, b"RETR 1\r\n"),
            (S, b"+OK\r\nhead\r\n."),
            ("gap", S, 10),
            (S, b".tail\r\n"),
            ("gap", S, 10),
            (S, b".\r\n"),
        ]
    )
    assert [d.data for d in of(events, MultilineData)] == [b"head\r\n", b".", b".tail\r\n"]
    (end,) = of(events, ResponseEnd)
    assert end.complete and end.lines == 3


def test_pop3_gap_that_swallowed_the_terminator_ends_at_the_next_status_line() -> None:
    events = feed_all_ways(
        [
            (S, b"+OK ready\r\n"),
            (C, b"RETR 1\r\nQUIT\r\n"),
            (S, b"+OK\r\nSubject: gap\r\n\r\nbody\r\n"),
            ("gap", S, 9000),
            (S, b"+OK bye\r\n"),
        ]
    )
    (end,) = of(events, ResponseEnd)
    assert not end.complete
    assert [(r.command.verb, r.text) for r in of(events, Response) if r.command] == [
        ("RETR", ""),
        ("QUIT", "bye"),
    ]


def test_pop3_gap_right_after_the_next_status_line_of_a_message_ends_the_body() -> None:
    # The terminator was never sent; the gap cuts "+OK bye", the answer to the waiting QUIT.
    events = feed_all_ways(
        [
            (S, b"+OK ready\r\n"),
            (C, b"RETR 1\r\nQUIT\r\n"),
            (S, b"+OK\r\nbody\r\n+OK bye"),
            ("gap", S, 10),
        ]
    )
    assert body(events) == b"body\r\n"
    (end,) = of(events, ResponseEnd)
    assert (end.complete, end.lines) == (False, 1)
    assert [(r.command.verb, r.text) for r in of(events, Response) if r.command] == [
        ("RETR", ""),
        ("QUIT", "bye"),
    ]
    assert [a.kind for a in of(events, Anomaly)] == ["missing-terminator"]


def test_pop3_client_gap_resyncs_at_the_next_command() -> None:
    events = feed_all_ways(
        [
            (S, b"+OK ready\r\n"),
            (C, b"USER a\r\nPA"),
            ("gap", C, 10),
            (C, b"ret\r\nSTAT\r\n"),
            (S, b"+OK\r\n+OK 1 2\r\n"),
        ]
    )
    assert [c.verb for c in of(events, Command)] == ["USER", "STAT"]
    assert [a.kind for a in of(events, Anomaly)] == ["resync"]


def test_pop3_capture_starting_mid_response_skips_to_the_next_status_line() -> None:
    events = feed_all_ways(
        [
            ("gap", S, 0),
            ("gap", C, 0),
            (S, b"ody of a message\r\nmore body\r\n.\r\n"),
            (C, b"54\r\nDELE 3\r\n"),
            (S, b"+OK deleted\r\n"),
        ]
    )
    assert not of(events, Greeting)
    assert [(r.command.verb, r.text) for r in of(events, Response) if r.command] == [
        ("DELE", "deleted")
    ]
    kinds = [a.kind for a in of(events, Anomaly)]
    assert kinds == ["resync", "resync", "skipped-lines"]
    assert [g.length for g in of(events, StreamGap)] == [0, 0]


def test_pop3_body_whose_ok_was_lost_does_not_shift_later_pairing() -> None:
    events = feed_all_ways(
        [
            (S, b"+OK ready\r\n"),
            (C, b"STAT\r\nRETR 1\r\nDELE 1\r\n"),
            (S, b"+OK 1 300\r\n+O"),
            ("gap", S, 4),  # "K\r\nSu": the +OK to RETR and the start of the body
            (S, b"bject: lost\r\n\r\nbody\r\n.\r\n+OK deleted\r\n"),
        ]
    )
    assert [(r.command.verb, r.text) for r in of(events, Response) if r.command] == [
        ("STAT", "1 300"),
        ("DELE", "deleted"),
    ]
    (skipped,) = [a for a in of(events, Anomaly) if a.kind == "skipped-lines"]
    assert skipped.detail.endswith("the answers to 1 command(s) were lost")


def test_pop3_garbage_server_line_is_an_anomaly_as_in_zeek_bad_list_retr() -> None:
    # Zeek's bad-list-retr-crafted trace: weird "pop3_server_command_unknown GARBAGE", and a
    # LIST listing without its "." before the RETR answer.
    events = feed_all_ways(
        [
            (S, b"+OK example.com POP3-Server\r\n"),
            (C, b"LIST\r\n"),
            (S, b"GARBAGE (and LIST response missing .)\r\n"),
            (S, b"+OK 2 messages (320 octets)\r\n1 120\r\n2 200\r\n"),
            (C, b"RETR 1\r\n"),
            (
                S,
                b"+OK message follows\r\nMIME-Version: 1.0\r\nFrom: zeek@zeek.org\r\n"
                b"To: zeek@zeek.org\r\nSubject: Crafted email\r\n\r\nThe body of the email.\r\n"
                b".\r\n",
            ),
            (C, b"QUIT\r\n"),
            (S, b"+OK bye\r\n"),
        ]
    )
    anomalies = of(events, Anomaly)
    assert [(a.kind, a.raw) for a in anomalies] == [
        ("unknown-server-line", b"GARBAGE (and LIST response missing .)"),
        ("missing-terminator", b"+OK message follows"),
    ]
    assert [(r.command.verb, r.text) for r in of(events, Response) if r.command] == [
        ("LIST", "2 messages (320 octets)"),
        ("RETR", "message follows"),
        ("QUIT", "bye"),
    ]
    ends = of(events, ResponseEnd)
    assert [(e.command.verb, e.lines, e.complete) for e in ends] == [
        ("LIST", 2, False),
        ("RETR", 6, True),
    ]


def test_pop3_close_inside_a_body_ends_it_incomplete() -> None:
    events = feed_all_ways(
        [
            (S, b"+OK ready\r\n"),
            (C, b"RETR 1\r\n"),
            (S, b"+OK\r\nSubject: cut\r\n\r\nunfinished"),
        ]
    )
    assert body(events) == b"Subject: cut\r\n\r\nunfinished"
    (end,) = of(events, ResponseEnd)
    assert not end.complete and end.lines == 3


def test_pop3_unterminated_last_server_line_is_still_a_response() -> None:
    events = feed_all_ways([(S, b"+OK ready\r\n"), (C, b"QUIT\r\n"), (S, b"+OK bye")])
    assert of(events, Response)[-1].text == "bye"
    assert [a.kind for a in of(events, Anomaly)] == ["unterminated-line"]


def test_pop3_response_without_a_command_is_an_anomaly() -> None:
    events = feed_all_ways([(S, b"+OK ready\r\n-ERR autologout\r\n")])
    (resp,) = of(events, Response)
    assert resp.command is None and not resp.ok
    assert [a.kind for a in of(events, Anomaly)] == ["unpaired-response"]


def test_pop3_overlong_listing_line_is_cut_and_counted() -> None:
    long_line = b"x" * (MAX_LINE + 500)
    parser = Pop3Parser()
    events = parser.feed(0, S, b"+OK ready\r\n")
    events += parser.feed(1, C, b"CAPA\r\n")
    events += parser.feed(2, S, b"+OK\r\n" + long_line)
    events += parser.feed(3, S, b"\r\nUSER\r\n.\r\n")
    data = of(events, MultilineData)
    # the kept head keeps its line ending; exactly the bytes beyond the limit are counted
    assert data[0].dropped == 500 and data[0].data == b"x" * MAX_LINE + b"\r\n"
    assert data[1].data == b"USER\r\n"
    assert of(events, ResponseEnd)[0].complete
    assert "overlong-line" in [a.kind for a in of(events, Anomaly)]


def test_pop3_overlong_message_line_is_kept_whole() -> None:
    # A message body has no line limit (the message accumulator bounds memory): a line of
    # three and a half MAX_LINE is delivered whole, in pieces cut where the stream alone says.
    long_line = b"." + b"x" * (3 * MAX_LINE + MAX_LINE // 2)
    events = feed_all_ways(
        [
            (S, b"+OK ready\r\n"),
            (C, b"RETR 1\r\nQUIT\r\n"),
            (S, b"+OK\r\nSubject: long\r\n\r\n" + long_line + b"\r\n..\r\n.\r\n+OK bye\r\n"),
        ]
    )
    assert body(events) == b"Subject: long\r\n\r\n" + long_line[1:] + b"\r\n.\r\n"
    assert all(d.dropped == 0 for d in of(events, MultilineData))
    (end,) = of(events, ResponseEnd)
    assert end.complete and end.lines == 4
    assert [r.text for r in of(events, Response)] == ["", "bye"]
    assert not of(events, Anomaly)


def test_pop3_close_after_pieces_of_an_overlong_line_keeps_the_rest_as_content() -> None:
    # The "." closing the stream continues a long line: it is content, not a terminator.
    events = feed_all_ways(
        [(S, b"+OK ready\r\n"), (C, b"RETR 1\r\n"), (S, b"+OK\r\n" + b"y" * (MAX_LINE + 1) + b".")]
    )
    assert body(events) == b"y" * (MAX_LINE + 1) + b"."
    (end,) = of(events, ResponseEnd)
    assert (end.complete, end.lines) == (False, 1)
    assert [a.kind for a in of(events, Anomaly)] == ["unterminated-line"]


def test_pop3_gap_inside_an_overlong_message_line_keeps_what_was_captured() -> None:
    head = b"z" * (2 * MAX_LINE + 7)
    events = feed_all_ways(
        [
            (S, b"+OK ready\r\n"),
            (C, b"RETR 1\r\n"),
            (S, b"+OK\r\nSubject: z\r\n\r\n" + head),
            ("gap", S, 100),
            (S, b"tail\r\n.\r\n"),
        ]
    )
    assert body(events) == b"Subject: z\r\n\r\n" + head + b"tail\r\n"
    (gap,) = of(events, StreamGap)
    assert gap.inside is not None and gap.raw == head[-(len(head) - 2 * MAX_LINE) :]
    (end,) = of(events, ResponseEnd)
    assert end.complete and end.lines == 4  # the line cut by the gap counts on both sides


def test_pop3_message_body_arriving_in_one_segment_comes_as_one_event() -> None:
    # The body is searched and unstuffed a chunk at a time, not a line at a time.
    lines = [b"..dotted %d" % i if i % 7 == 0 else b"line %d" % i for i in range(2000)]
    content = b"".join(line + b"\r\n" for line in lines)
    events = feed_all_ways(
        [(S, b"+OK ready\r\n"), (C, b"RETR 1\r\n"), (S, b"+OK\r\n"), (S, content + b".\r\n")]
    )
    (data,) = of(events, MultilineData)
    assert data.raw == content
    assert data.data == content.replace(b"\n..", b"\n.").replace(b"..dotted 0", b".dotted 0", 1)
    assert of(events, ResponseEnd)[0].lines == 2000


def test_pop3_segment_boundaries_at_dots_and_terminators_change_nothing() -> None:
    # Cut between "\n" and a stuffed "..", between "\r\n." and "\r\n", and inside "\r\n".
    pieces = [b"+OK\r\n.", b".first\r", b"\nmid\r\n", b"..", b"x\r\n.", b"\r", b"\n+OK bye\r\n"]
    events = feed_all_ways(
        [(S, b"+OK ready\r\n"), (C, b"RETR 1\r\nQUIT\r\n"), *[(S, p) for p in pieces]]
    )
    assert body(events) == b".first\r\nmid\r\n.x\r\n"
    (end,) = of(events, ResponseEnd)
    assert end.complete and end.lines == 3
    assert [r.text for r in of(events, Response)] == ["", "bye"]


def test_pop3_empty_message_and_first_bare_lf_terminator() -> None:
    events = feed_all_ways(
        [
            (S, b"+OK ready\r\n"),
            (C, b"RETR 1\r\nRETR 2\r\nNOOP\r\n"),
            (S, b"+OK\r\n.\r\n+OK\r\na\r\n.\nb\r\n.\r\n"),
        ]
    )
    ends = of(events, ResponseEnd)
    assert [(e.command.verb if e.command else None, e.lines, e.complete) for e in ends] == [
        ("RETR", 0, True),
        ("RETR", 1, True),
    ]
    assert body(events) == b"a\r\n"
    # "b" and the second "." come after the bare-LF terminator: the NOOP answer is lost in them.
    assert [a.kind for a in of(events, Anomaly)] == ["unknown-server-line", "unknown-server-line"]


def test_pop3_unanswered_commands_are_bounded() -> None:
    parser = Pop3Parser()
    events = parser.feed(0, S, b"+OK ready\r\n")
    events += parser.feed(1, C, b"NOOP\r\n" * (MAX_PENDING_COMMANDS + 10))
    assert [a.kind for a in of(events, Anomaly)] == ["unanswered-commands"]
    events = parser.feed(2, S, b"+OK\r\n")
    # The oldest ten were forgotten; the answer pairs with the eleventh NOOP.
    (resp,) = of(events, Response)
    assert resp.command is not None and resp.command.ts_ns == 1


# --------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------

_NOISE = st.binary(max_size=64) | st.sampled_from(
    [b"\r\n", b"\n", b".\r\n", b"..", b"+OK ", b"-ERR ", b"+ ", b"RETR 1\r\n", b"AUTH PLAIN\r\n"]
)
_STEP = st.one_of(
    st.tuples(st.sampled_from([C, S]), st.lists(_NOISE, max_size=6).map(b"".join)),
    st.tuples(st.just("gap"), st.sampled_from([C, S]), st.integers(0, 5000)),
)


@given(st.lists(_STEP, max_size=25))
def test_pop3_arbitrary_bytes_never_raise_and_chunking_never_changes_events(
    steps: list[Step],
) -> None:
    feed_all_ways(steps)


_COMMANDS = st.sampled_from(
    [b"USER a", b"PASS b c", b"STAT", b"LIST", b"LIST 1", b"UIDL", b"RETR 1", b"TOP 1 0",
     b"DELE 1", b"CAPA", b"AUTH", b"AUTH PLAIN", b"AUTH LOGIN dXNlcg==", b"NOOP", b"QUIT",
     b"STLS", b"*", b"AHVzZXIAcGFzcw==", b"retr 2"]
)  # fmt: skip
_REPLIES = st.sampled_from(
    [b"+OK", b"+OK 1 20", b"-ERR no", b"+ ", b"+ VXNlcm5hbWU6", b"1 20", b"..x", b".",
     b"Subject: a", b"", b"GARBAGE"]
)  # fmt: skip


@given(
    st.lists(
        st.tuples(st.sampled_from([C, S]), st.lists(_COMMANDS | _REPLIES, min_size=1, max_size=5)),
        max_size=20,
    ),
    st.sampled_from([b"\r\n", b"\n"]),
)
def test_pop3_dialogue_shaped_input_gives_the_same_events_however_chunked(
    turns: list[tuple[Direction, list[bytes]]], eol: bytes
) -> None:
    steps: list[Step] = [(S, b"+OK ready" + eol)]
    steps += [(d, b"".join(line + eol for line in lines)) for d, lines in turns]
    events = feed_all_ways(steps)
    # Every response names a command the client really sent, in order.
    sent = [e for e in events if isinstance(e, Command)]
    answered = [e.command for e in events if isinstance(e, Response) and e.command is not None]
    positions = [next(i for i, c in enumerate(sent) if c is a) for a in answered]
    assert positions == sorted(positions)


@given(
    st.lists(
        st.one_of(
            st.tuples(st.sampled_from([C, S]), st.lists(_COMMANDS | _REPLIES, max_size=5)),
            st.tuples(st.just("gap"), st.sampled_from([C, S]), st.integers(0, 50)),
        ),
        max_size=20,
    ),
    st.sampled_from([b"\r\n", b"\n"]),
    st.booleans(),
)
def test_pop3_dialogue_with_gaps_gives_the_same_events_however_chunked(
    turns: list[tuple[Direction, list[bytes]] | tuple[str, Direction, int]],
    eol: bytes,
    unterminated: bool,
) -> None:
    # Gaps anywhere, also right after a line cut short (no line ending before the gap).
    steps: list[Step] = [(S, b"+OK ready" + eol)]
    for turn in turns:
        if len(turn) == 3:
            steps.append(turn)  # type: ignore[arg-type]
        else:
            direction, lines = turn  # type: ignore[misc]
            data = b"".join(line + eol for line in lines)
            steps.append((direction, data[: -len(eol)] if unterminated and data else data))
    feed_all_ways(steps)


_BODY_LINES = st.sampled_from(
    [b"", b".", b"..", b"...", b".x", b"x.", b"+OK", b"-ERR no", b"text", b"\r", b"a\rb",
     b"long line of text", b".long dotted line", b"\xff\x00"]
)  # fmt: skip


@given(
    st.lists(st.tuples(_BODY_LINES, st.sampled_from([b"\r\n", b"\n"])), max_size=12),
    st.sampled_from([b".\r\n", b".\n"]),
    st.lists(st.integers(1, 400), max_size=8),
    st.sampled_from(["RETR 1", "TOP 1 2"]),
)
def test_pop3_message_bodies_match_a_line_by_line_model_however_cut(
    lines: list[tuple[bytes, bytes]], terminator: bytes, cuts: list[int], command: str
) -> None:
    # The server stuffs a dot before every line that begins with one (RFC 1939 3); with
    # MAX_LINE shrunk to 8 bytes, long lines go out in pieces too.
    model = b"".join(line + eol for line, eol in lines)
    content = b"".join((b"." if line[:1] == b"." else b"") + line + eol for line, eol in lines)
    wire = b"+OK\r\n" + content + terminator + b"+OK bye\r\n"
    bounds = sorted({0, len(wire), *(c % (len(wire) + 1) for c in cuts)})
    with patch("mailsniff.protocols.pop3.MAX_LINE", 8):
        events = run(
            [
                (S, b"+OK ready\r\n"),
                (C, command.encode() + b"\r\nQUIT\r\n"),
                *[(S, wire[a:b]) for a, b in zip(bounds, bounds[1:], strict=False)],
            ]
        )
    assert body(events) == model
    assert b"".join(d.raw for d in of(events, MultilineData)) == content
    (end,) = of(events, ResponseEnd)
    assert (end.complete, end.lines) == (True, len(lines))
    assert [r.text for r in of(events, Response)] == ["", "bye"]
    assert not of(events, Anomaly)


def _modules_after_import(module: str) -> list[str]:
    code = (
        f"import sys, {module}; "
        "print(sorted(m for m in ('scapy', 'rich', 'socket') if m in sys.modules))"
    )
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    )
    return [m.strip("' ") for m in result.stdout.strip().strip("[]").split(",") if m.strip()]


def test_pop3_parser_imports_no_io_libraries() -> None:
    assert _modules_after_import("mailsniff.protocols.pop3") == []


def test_pop3_session_builder_imports_neither_scapy_nor_rich() -> None:
    # The standard library's email package (the mail layer) imports socket itself.
    assert set(_modules_after_import("mailsniff.session.pop3")) <= {"socket"}


def test_pop3_cleartext_after_stls_is_parsed_on_with_an_anomaly() -> None:
    # A capture decrypted back to cleartext: after +OK to STLS the client goes on in clear.
    events = feed_all_ways(
        [
            (S, b"+OK ready\r\n"),
            (C, b"STLS\r\n"),
            (S, b"+OK Begin TLS\r\n"),
            (C, b"USER bob\r\n"),
            (S, b"+OK\r\n"),
            (C, b"PASS secret\r\n"),
            (S, b"+OK logged in\r\n"),
        ]
    )
    assert [e.kind for e in of(events, Anomaly)] == ["cleartext-after-stls"]
    assert [e.verb for e in of(events, Command)] == ["STLS", "USER", "PASS"]
    assert of(events, Response)[-1].text == "logged in"


def test_pop3_tls_after_stls_stays_unparsed() -> None:
    events = feed_all_ways(
        [
            (S, b"+OK ready\r\n"),
            (C, b"STLS\r\n"),
            (S, b"+OK Begin TLS\r\n"),
            (C, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03USER bob\r\n"),
            (S, b"\x16\x03\x03\x00\x5a\x02\x00\x00+OK\r\n"),
        ]
    )
    assert [e.verb for e in of(events, Command)] == ["STLS"]
    assert not of(events, Anomaly)


def test_pop3_lost_dele_answer_does_not_shift_the_next_answer_onto_dele() -> None:
    # The client waits for each answer (no PIPELINING): it sent STAT after DELE's +OK, which
    # the capture lost; the server gap comes before STAT's answer.
    events = feed_all_ways(
        [
            (S, b"+OK ready\r\n"),
            (C, b"DELE 1\r\n"),
            (C, b"STAT\r\n"),
            ("gap", S, 15),
            (S, b"+OK 2 320\r\n"),
            (C, b"QUIT\r\n"),
            (S, b"+OK bye\r\n"),
        ]
    )
    assert [(r.command.verb, r.text) for r in of(events, Response) if r.command] == [
        ("STAT", "2 320"),
        ("QUIT", "bye"),
    ]
    (lost,) = of(events, Anomaly)
    assert (lost.kind, lost.detail) == ("answers-lost", "the answers to 1 command(s) were lost")


def test_pop3_lost_bytes_with_pipelining_keep_first_in_first_out_pairing() -> None:
    # With PIPELINING (RFC 2449 6.6) the client need not wait: the lost bytes may have held no
    # answer at all, so every waiting command still takes the next answer in turn.
    events = feed_all_ways(
        [
            (S, b"+OK ready\r\n"),
            (C, b"CAPA\r\n"),
            (S, b"+OK\r\nUSER\r\nPIPELINING\r\n.\r\n"),
            (C, b"DELE 1\r\nSTAT\r\n"),
            ("gap", S, 15),
            (S, b"+OK deleted\r\n+OK 2 320\r\n"),
        ]
    )
    assert [(r.command.verb, r.text) for r in of(events, Response) if r.command] == [
        ("CAPA", ""),
        ("DELE", "deleted"),
        ("STAT", "2 320"),
    ]
