"""read --mbox FILE: mboxrd (RFC 4155) readable by Python's mailbox module."""

from __future__ import annotations

import io
import mailbox
import re
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from mailsniff.export.mbox import MboxWriter, envelope_sender, from_line
from mailsniff.model import Message, RetrievedMessage, Transaction
from tests.cli_runner import PCAPS, run_cli
from tests.export.captures import smtp_steps, write_smtp_capture

ASCTIME = r"[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4}"


def write_mbox(capture: Path, target: Path, *extra: str) -> None:
    proc = run_cli("read", str(capture), "--mbox", str(target), "--summary", *extra)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr


def as_stored(message: bytes) -> bytes:
    """What a Unix mbox holds for a message: LF line ends, ending with one LF."""
    data = message.replace(b"\r\n", b"\n")
    return data if data.endswith(b"\n") or not data else data + b"\n"


def unquote(data: bytes) -> bytes:
    """The message of an entry: without mailsniff's three header lines, From_ lines unquoted."""
    lines = data.split(b"\n", 3)
    assert lines[0].startswith(b"X-Mailsniff-SHA256: "), data
    assert lines[1].startswith(b"X-Mailsniff-Time: ")
    assert re.fullmatch(rb"X-Mailsniff-Length: \d{20}", lines[2])
    return re.sub(rb"(?m)^>(>*From )", rb"\1", lines[3])


def sha(i: int) -> str:
    return f"{i:064x}"


def test_mbox_round_trips_through_the_mailbox_module(tmp_path: Path) -> None:
    first = b"Subject: one\r\n\r\nFrom here on, quoting.\r\n>From already quoted\r\nend\r\n"
    second = b"Subject: two\r\n\r\nFrom the start\r\n.dot\r\n"
    third = b"Subject: three\r\n\r\nno final line end"
    capture = write_smtp_capture(tmp_path / "c.pcap", smtp_steps([first, second]))
    target = tmp_path / "out.mbox"
    write_mbox(capture, target)
    box = mailbox.mbox(target)
    keys = box.keys()
    assert len(keys) == 2
    stored = [box.get_bytes(k) for k in keys]
    assert [unquote(s) for s in stored] == [as_stored(first), as_stored(second)]
    assert b"\n>From here on, quoting.\n>>From already quoted\n" in stored[0]
    assert b"\n>From the start\n" in stored[1]
    for k in keys:
        assert re.fullmatch(rf"alice@example\.com {ASCTIME}", box[k].get_from())
    box.close()
    # a message without a final line end still ends its entry cleanly
    with MboxWriter(tmp_path / "w.mbox") as writer:
        writer.append(io.BytesIO(third), "a@b", 0, sha(3))
        writer.append(io.BytesIO(first), "a@b", 0, sha(1))
    box = mailbox.mbox(tmp_path / "w.mbox")
    assert [unquote(box.get_bytes(k)) for k in box.keys()] == [
        as_stored(third),
        as_stored(first),
    ]
    box.close()


def test_mbox_holds_every_message_of_the_seed_capture(tmp_path: Path) -> None:
    target = tmp_path / "seed.mbox"
    write_mbox(PCAPS / "seed-telnet.pcap", target)
    box = mailbox.mbox(target)
    froms = [box[k].get_from() for k in box.keys()]
    assert [f.split(" ", 1)[0] for f in froms] == [
        "crazywill@163.com",
        "MAILER-DAEMON",  # POP3 TOP: no envelope, no Return-Path
        "MAILER-DAEMON",  # POP3 RETR
        "name@youname.com",
    ]
    assert froms[0].endswith("Jul  3 13:07:55 2006")
    subjects = [box[k]["Subject"] for k in box.keys()]
    assert subjects == ["test by telnet/smtp", None, None, "test"]
    assert b"test, just a test." in box.get_bytes(box.keys()[2])
    box.close()


def test_a_second_run_adds_nothing_to_the_mbox(tmp_path: Path) -> None:
    target = tmp_path / "out.mbox"
    target.write_bytes(b"From x@y Thu Jan  1 00:00:00 1970\nSubject: old\n\nold body")  # open end
    write_mbox(PCAPS / "cc-bcc-smtplib.pcap", target)
    once = target.read_bytes()
    write_mbox(PCAPS / "cc-bcc-smtplib.pcap", target)
    assert target.read_bytes() == once
    box = mailbox.mbox(target)
    assert [box[k]["Subject"] for k in box.keys()][0] == "old"
    assert len(box.keys()) == 2
    assert box.get_bytes(box.keys()[0]) == b"Subject: old\n\nold body\n"
    box.close()


def test_from_line_sender_falls_back_to_mailer_daemon() -> None:
    message = Message(size=0, sha256="")
    assert envelope_sender(message, Transaction(mail_from="")) == "MAILER-DAEMON"
    assert envelope_sender(message, Transaction(mail_from="a b@c")) == "MAILER-DAEMON"
    assert envelope_sender(message, Transaction(mail_from="a\udcff@c")) == "MAILER-DAEMON"
    assert envelope_sender(message, Transaction(mail_from="a@c")) == "a@c"
    message.headers.append(("Return-Path", "<bounce@example.com>"))
    retrieved = RetrievedMessage(command="RETR 1", number=1, partial=False, message=message)
    assert envelope_sender(message, retrieved) == "bounce@example.com"
    assert from_line("a@c", 1_151_932_038_000_000_000) == b"From a@c Mon Jul  3 13:07:18 2006\n"


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.binary(max_size=200)
        | st.lists(
            st.sampled_from([b"From ", b">From ", b"\r\n", b"\n", b"\r", b"x", b" ", b">"]),
            max_size=30,
        ).map(b"".join),
        min_size=1,
        max_size=4,
    )
)
def test_any_messages_round_trip_through_the_mailbox_module(messages: list[bytes]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / "p.mbox"
        with MboxWriter(target) as writer:
            for i, message in enumerate(messages):
                writer.append(io.BytesIO(message), "a@b", 0, sha(i))
        box = mailbox.mbox(target)
        stored = [unquote(box.get_bytes(k)) for k in box.keys()]
        box.close()
    assert stored == [as_stored(m) for m in messages]
