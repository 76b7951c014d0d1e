"""E2E: SMTP told from its dialogue on any port, and replies paired with the right commands when
a server's reply is cut short or lost (RFC 5321 4.2, 4.3.2; RFC 2920 3.1). Scapy-made captures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.cli_runner import read_json
from tests.e2e import synth
from tests.e2e.synth import Conn, Step

MESSAGE = b"From: a@example.org\r\nTo: b@example.net\r\nSubject: field test\r\n\r\nhello\r\n"


def dialogue(
    greeting: bytes, ehlo_reply: bytes, mail_reply: bytes = b"250 2.1.0 Ok\r\n"
) -> list[Step]:
    return [
        ("s", greeting),
        ("c", b"EHLO client.example.org\r\n"),
        ("s", ehlo_reply),
        ("c", b"MAIL FROM:<a@example.org>\r\n"),
        ("s", mail_reply),
        ("c", b"RCPT TO:<b@example.net>\r\n"),
        ("s", b"250 2.1.5 Ok\r\n"),
        ("c", b"DATA\r\n"),
        ("s", b"354 End data with <CR><LF>.<CR><LF>\r\n"),
        ("c", MESSAGE + b".\r\n"),
        ("s", b"250 2.0.0 Ok: queued as 4F2A\r\n"),
        ("c", b"QUIT\r\n"),
        ("s", b"221 2.0.0 Bye\r\n"),
    ]


def read(tmp_path: Path, steps: list[Step], port: int = 25, cut: synth.Cut | None = None) -> Any:
    segs = synth.tcp_segments(steps, Conn(server_port=port), cut)
    path = synth.write_pcap(tmp_path / "c.pcap", synth.frames(segs))
    return read_json(path, "--transcript")


def assert_transaction(record: dict[str, Any]) -> None:
    assert record["protocol"] == "smtp"
    (tx,) = record["transactions"]
    assert tx["mail_from"] == "a@example.org"
    assert tx["mail_from_reply"] == "250 2.1.0 Ok"
    assert [(r["address"], r["reply"]) for r in tx["rcpts"]] == [("b@example.net", "250 2.1.5 Ok")]
    assert tx["rcpt_accepted"] == ["b@example.net"]
    assert tx["data_reply"] == "250 2.0.0 Ok: queued as 4F2A"
    assert tx["message"]["subject"] == "field test"
    assert tx["message"]["size"] == len(MESSAGE)


# --- a greeting that does not say SMTP ---------------------------------------------------------


def greeting_whole(then: synth.Cut) -> synth.Cut:
    """The greeting in one segment (as servers write it), every other write cut by `then`."""

    def cut(side: str, data: bytes) -> list[int]:
        return [len(data)] if data.startswith(b"220") else then(side, data)

    return cut


@pytest.mark.parametrize(
    "cut",
    [None, greeting_whole(synth.by_size(1)), greeting_whole(synth.random_sizes(2526, 1, 7))],
)
def test_greeting_without_smtp_on_an_unknown_port_is_smtp_once_the_client_says_ehlo(
    tmp_path: Path, cut: synth.Cut | None
) -> None:
    steps = dialogue(b"220 Greetings\r\n", b"250-mail.example.org\r\n250 PIPELINING\r\n")
    (record,) = read(tmp_path, steps, port=2526, cut=cut)
    assert record["server"]["port"] == 2526
    assert record["banner"] == "220 Greetings"
    assert record["helo"] == "client.example.org"
    assert record["complete"] is True
    assert_transaction(record)
    assert record["anomalies"] == []


def test_ftp_greeting_and_user_on_port_21_is_not_smtp(tmp_path: Path) -> None:
    steps: list[Step] = [
        ("s", b"220 ProFTPD Server (Debian) [192.0.2.1]\r\n"),
        ("c", b"USER anonymous\r\n"),
        ("s", b"331 Anonymous login ok, send your complete email address as your password\r\n"),
        ("c", b"PASS guest@example.org\r\n"),
        ("s", b"230 Anonymous access granted, restrictions apply\r\n"),
        ("c", b"QUIT\r\n"),
        ("s", b"221 Goodbye.\r\n"),
    ]
    assert read(tmp_path, steps, port=21) == []


def test_pop3_on_an_unknown_port_is_still_pop3_not_smtp(tmp_path: Path) -> None:
    steps: list[Step] = [
        ("s", b"+OK POP3 ready\r\n"),
        ("c", b"USER bob\r\n"),
        ("s", b"+OK\r\n"),
        ("c", b"PASS secret\r\n"),
        ("s", b"+OK 0 messages\r\n"),
        ("c", b"QUIT\r\n"),
        ("s", b"+OK bye\r\n"),
    ]
    (record,) = read(tmp_path, steps, port=2110)
    assert record["protocol"] == "pop3"
    assert [a["username"] for a in record["auth"]] == ["bob"]


# --- replies cut short -------------------------------------------------------------------------


def test_lone_continuation_line_in_the_ehlo_reply_leaves_the_transaction_intact(
    tmp_path: Path,
) -> None:
    (record,) = read(tmp_path, dialogue(b"220 mx ESMTP\r\n", b"250-mail.example.org\r\n"))
    assert_transaction(record)
    assert any(a.startswith("reply-unterminated") for a in record["anomalies"])


def test_lone_continuation_line_in_the_mail_reply_leaves_the_transaction_intact(
    tmp_path: Path,
) -> None:
    steps = dialogue(b"220 mx ESMTP\r\n", b"250 mail.example.org\r\n", b"250-2.1.0 Ok\r\n")
    (record,) = read(tmp_path, steps)
    assert_transaction(record)
    assert any(a.startswith("reply-unterminated") for a in record["anomalies"])


def test_greeting_without_crlf_leaves_the_transaction_intact(tmp_path: Path) -> None:
    (record,) = read(tmp_path, dialogue(b"220 mx ESMTP", b"250 mail.example.org\r\n"))
    assert record["banner"] == "220 mx ESMTP"
    assert_transaction(record)
    assert any(a.startswith("unterminated-line") for a in record["anomalies"])


def test_pipelined_commands_with_a_lost_reply_still_deliver_the_message(tmp_path: Path) -> None:
    steps: list[Step] = [
        ("s", b"220 mx ESMTP\r\n"),
        ("c", b"EHLO client.example.org\r\n"),
        ("s", b"250-mail.example.org\r\n250 PIPELINING\r\n"),
        ("c", b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n"),
        ("s", b"250 2.1.0 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"),  # RCPT's reply lost
        ("c", MESSAGE + b".\r\n"),
        ("s", b"250 2.0.0 Ok: queued as 4F2A\r\n"),
        ("c", b"QUIT\r\n"),
        ("s", b"221 2.0.0 Bye\r\n"),
    ]
    (record,) = read(tmp_path, steps)
    (tx,) = record["transactions"]
    assert tx["mail_from_reply"] == "250 2.1.0 Ok"
    assert tx["rcpts"][0]["reply"] is None and tx["rcpts"][0]["status"] == "unknown"
    assert tx["data_reply"] == "250 2.0.0 Ok: queued as 4F2A"
    assert tx["message"]["subject"] == "field test"
    assert "reply-lost: RCPT: no reply before the 354 answering DATA" in record["anomalies"]
