"""A header From whose indented continuation lines look like headers of their own."""

from __future__ import annotations

from pathlib import Path

from tests.cli_runner import read_json
from tests.e2e import synth

MESSAGE = (
    b"From: admin@example.net\r\n"
    b"    To: bob@example.org\r\n"
    b"    Subject: Python email test\r\n"
    b"\r\n"
    b"Hello\r\n"
)
STEPS: list[synth.Step] = [
    ("s", b"220 mail.example.org ESMTP\r\n"),
    ("c", b"EHLO client\r\n"),
    ("s", b"250-mail.example.org\r\n250 8BITMIME\r\n"),
    ("c", b"MAIL FROM:<admin@example.net>\r\n"),
    ("s", b"250 OK\r\n"),
    ("c", b"RCPT TO:<bob@example.org>\r\n"),
    ("s", b"250 OK\r\n"),
    ("c", b"DATA\r\n"),
    ("s", b"354 go ahead\r\n"),
    ("c", MESSAGE + b".\r\n"),
    ("s", b"250 queued\r\n"),
    ("c", b"QUIT\r\n"),
    ("s", b"221 bye\r\n"),
]


def test_indented_header_lines_are_flagged_and_invent_no_address(tmp_path: Path) -> None:
    segs = synth.tcp_segments(STEPS, synth.Conn())
    path = synth.write_pcap(tmp_path / "folded.pcap", synth.frames(segs, "ether"))
    (session,) = read_json(path)
    (tx,) = session["transactions"]
    message = tx["message"]
    assert message["from"] == [{"name": "", "address": "admin@example.net"}]
    assert message["to"] == [] and message["subject"] is None
    assert message["defects"] == [
        "From: folded continuation lines look like headers: To, Subject (not read as addresses)"
    ]
    kinds = {f["kind"] for f in session["findings"]}
    assert "from-mismatch" not in kinds
    assert not any("Subject" in f["detail"] and "@" in f["detail"] for f in session["findings"])
