"""One reply grammar and one classification: the parser, the stored lines and the client agree."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailsniff.model import (
    ReplyClass,
    outcome_of,
    reply_failed,
    reply_outcome,
    reply_positive,
    stored_reply_class,
)
from mailsniff.protocols.replies import Reply, ReplyLine, classify, parse_line


@pytest.mark.parametrize(
    ("raw", "line"),
    [
        (b"250-PIPELINING", ReplyLine(250, "PIPELINING", True)),
        (b"250 OK", ReplyLine(250, "OK", False)),
        (b"354", ReplyLine(354, "", False)),
        (b"550 5.1.1 \xe7\x94\xa8\xe6\x88\xb7", ReplyLine(550, "5.1.1 用户", False)),
    ],
)
def test_reply_lines_parse_to_code_text_and_continuation(raw: bytes, line: ReplyLine) -> None:
    assert parse_line(raw) == line


@pytest.mark.parametrize("raw", [b"", b"25", b"250x", b"199 too low", b"600 too high", b"OK"])
def test_lines_that_are_not_replies_are_refused(raw: bytes) -> None:
    assert parse_line(raw) is None


@pytest.mark.parametrize(
    ("code", "outcome", "positive"),
    [(250, "accepted", True), (354, "unknown", True), (451, "deferred", False),
     (550, "rejected", False)],
)  # fmt: skip
def test_a_reply_record_and_its_stored_line_are_classified_alike(
    code: int, outcome: str, positive: bool
) -> None:
    reply = Reply(code, ("text",))
    assert reply.text == f"{code} text"
    assert reply.reply_class is classify(code) is ReplyClass(code // 100)
    assert (reply.outcome, reply.positive) == (outcome, positive)
    assert (reply_outcome(reply.text), reply_positive(reply.text)) == (outcome, positive)
    assert reply_failed(reply.text) is (outcome in ("deferred", "rejected"))


def test_pop3_status_indicators_are_classified_as_replies() -> None:
    assert (reply_outcome("+OK 2 messages"), reply_positive("+OK")) == ("accepted", True)
    assert (reply_outcome("-ERR no such message"), reply_failed("-ERR")) == ("rejected", True)
    assert (reply_outcome(None), reply_positive(None), reply_failed("")) == (
        "unknown",
        False,
        False,
    )


@given(st.text(alphabet="0123456789+-OK ERabc\t", max_size=8))
def test_a_reply_outcome_is_that_of_its_class_every_time_it_is_asked(reply: str) -> None:
    """reply_outcome remembers outcomes by the reply's first three characters: a second ask,
    and any reply sharing them, gets the class's outcome too."""
    expected = outcome_of(stored_reply_class(reply))
    assert reply_outcome(reply) == expected
    assert reply_outcome(reply) == expected
    assert reply_outcome(reply[:3] + " something else") == outcome_of(
        stored_reply_class(reply[:3] + " something else")
    )
