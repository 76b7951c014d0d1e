"""JSON Lines mapping: contract field names, timestamps, hostile text."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from mailsniff.analysis.findings import analyse
from mailsniff.model import (
    Address,
    Attachment,
    AuthAttempt,
    Endpoint,
    Gap,
    Message,
    Protocol,
    RcptAttempt,
    RetrievedMessage,
    Session,
    Transaction,
)
from mailsniff.protocols.base import Direction
from mailsniff.render.jsonl import dumps, iso8601, session_record, summary_record
from tests.jsonschema_check import validate_lines

T0 = 1151932038 * 1_000_000_000  # 2006-07-03T13:07:18Z


def _session() -> Session:
    s = Session(
        id=2,
        protocol=Protocol.SMTP,
        client=Endpoint("192.168.1.100", 40001),
        server=Endpoint("202.108.5.81", 25),
        start_ns=T0,
        end_ns=T0 + 9_500_000_001,
        complete=True,
        banner="220 163.com Coremail SMTP(Anti Spam) System",
        helo="smtp.163.com",
    )
    ok = "235 Authentication successful"
    s.auth = [AuthAttempt("LOGIN", "crazywill", "mypassword", True, ok)]
    msg = Message(
        size=100,
        sha256="a" * 64,
        from_=[Address("张帆", "name@youname.com")],
        to=[Address("", "crazywill@163.com")],
        subject="test by telnet/smtp",
        attachments=[Attachment("a.txt", "text/plain", 3, "b" * 64)],
    )
    s.transactions = [
        Transaction(
            mail_from="",
            mail_from_reply="250 Mail OK",
            rcpts=[
                RcptAttempt("crazywill@163.com", reply="250 Mail OK"),
                RcptAttempt("dave@163.com", reply="250 Mail OK"),
                RcptAttempt("x@163.com", reply="550 no"),
            ],
            message=msg,
            data_reply="250 Mail OK queued",
        )
    ]
    s.gaps = [Gap(Direction.SERVER, 10, 20)]
    return analyse(s)


def test_iso8601_has_microseconds_and_z() -> None:
    assert iso8601(T0) == "2006-07-03T13:07:18.000000Z"
    assert iso8601(T0 + 1_234_567_891) == "2006-07-03T13:07:19.234567Z"


def test_session_record_follows_contract_and_schema() -> None:
    record = session_record(_session())
    [checked] = validate_lines(dumps(record))
    assert checked["type"] == "session"
    assert checked["client"] == {"ip": "192.168.1.100", "port": 40001}
    assert checked["end"] == "2006-07-03T13:07:27.500000Z"
    tx = checked["transactions"][0]
    assert tx["mail_from"] == ""
    assert tx["rcpt_to"] == ["crazywill@163.com", "dave@163.com", "x@163.com"]
    assert tx["rcpt_accepted"] == ["crazywill@163.com", "dave@163.com"]
    assert tx["bcc"] == ["dave@163.com"]
    assert tx["message"]["from"] == [{"name": "张帆", "address": "name@youname.com"}]
    assert checked["gaps"] == [{"direction": "server", "offset": 10, "length": 20}]
    gap = {"kind": "gap", "detail": "20 server bytes never captured at offset 10"}
    found = {**gap, "severity": "medium", "transaction": None, "message": None}
    assert found in checked["findings"]
    assert "transcript" not in checked


def test_pop3_record_validates() -> None:
    s = _session()
    s.protocol = Protocol.POP3
    s.transactions = []
    s.messages = [RetrievedMessage("TOP 254 0", 254, True, Message(size=1, sha256="c" * 64))]
    s.deleted = [254]
    [checked] = validate_lines(dumps(session_record(s)))
    assert checked["messages"][0]["partial"] is True
    assert checked["deleted"] == [254]


def test_summary_record_validates() -> None:
    validate_lines(dumps(summary_record({"sessions": 3, "warnings": []})))


def test_dumps_keeps_non_ascii_and_escapes_controls() -> None:
    line = dumps({"banner": "220 \x1b[31m张帆\u202e"})
    assert "\n" not in line and "\x1b" not in line
    assert "张帆" in line
    assert json.loads(line)["banner"] == "220 \x1b[31m张帆\u202e"


@given(st.text())
def test_dumps_any_text_is_one_line_and_round_trips(text: str) -> None:
    line = dumps({"t": text})
    assert "\n" not in line and "\r" not in line
    decoded = json.loads(line)["t"]
    # lone surrogates cannot be UTF-8 and come back escaped; everything else round-trips
    if not any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        assert decoded == text


def test_dumps_escapes_unicode_line_breaks_so_records_stay_one_line() -> None:
    # U+0085 (a latin-1 byte 0x85 in a garbage server line), U+2028, U+2029: str.splitlines()
    # and JavaScript readers split on them.
    line = dumps({"banner": "220 a\x85b\u2028c\u2029d"})
    assert len(line.splitlines()) == 1
    assert json.loads(line)["banner"] == "220 a\x85b\u2028c\u2029d"


@given(st.text())
def test_dumps_is_always_one_line_for_splitlines(text: str) -> None:
    assert len(dumps({"t": text}).splitlines()) == 1


_TEXT = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8"),  # any character that has UTF-8
        st.sampled_from(["\x00", "\x1f", '"', "\\", "\x7f", "\x9b", "\u2028", "\u202e", "\ud800"]),
    ),
    max_size=12,
)
_JSON = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),  # past 64 bits too
        _TEXT,
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_TEXT, inner, max_size=4)),
    max_leaves=20,
)


@given(st.dictionaries(_TEXT, _JSON, max_size=6))
def test_the_fast_encoder_writes_what_the_stdlib_encoder_writes(record: dict[str, object]) -> None:
    """orjson, and the stdlib encoder where orjson refuses a value, write the text
    json.dumps(ensure_ascii=False, separators=(",", ":")) writes, for every type a record holds:
    the JSON Lines stay the same bytes whichever writes them."""
    from mailsniff.render import jsonl

    assert jsonl._encode(record) == json.dumps(record, ensure_ascii=False, separators=(",", ":"))
