"""The console summary and the JSON summary record count the same facts on the same capture."""

from __future__ import annotations

import pickle
import re
from dataclasses import fields
from pathlib import Path

from typer.testing import CliRunner

from mailsniff.analysis.summary import Summary
from mailsniff.cli import app
from tests.e2e import synth
from tests.jsonschema_check import validate_lines

POP3_USER_ONLY = [
    ("s", b"+OK POP3 ready\r\n"),
    ("c", b"USER alice\r\n"),
    ("s", b"+OK\r\n"),
    ("c", b"QUIT\r\n"),
    ("s", b"+OK bye\r\n"),
]
POP3_USER_PASS = [
    ("s", b"+OK POP3 ready\r\n"),
    ("c", b"USER bob\r\n"),
    ("s", b"+OK\r\n"),
    ("c", b"PASS secret\r\n"),
    ("s", b"+OK logged in\r\n"),
    ("c", b"QUIT\r\n"),
    ("s", b"+OK bye\r\n"),
]


def capture(tmp_path: Path, *dialogues: list[tuple[str, bytes]]) -> Path:
    frames: list[bytes] = []
    for n, steps in enumerate(dialogues):
        conn = synth.Conn(server_port=110, client_port=40000 + n)
        frames += synth.frames(synth.tcp_segments(steps, conn))
    return synth.write_pcap(tmp_path / "pop3.pcap", frames)


def console_count(text: str, name: str) -> int:
    match = re.search(rf"^\W*{name}\W+(\d+)", text, re.MULTILINE)
    assert match, text
    return int(match.group(1))


def both(path: Path) -> tuple[dict[str, object], str]:
    runner = CliRunner()
    json_run = runner.invoke(app, ["read", str(path), "--json"])
    console_run = runner.invoke(app, ["read", str(path), "--summary"])
    assert json_run.exit_code == 0 and console_run.exit_code == 0
    return validate_lines(json_run.stdout)[-1], console_run.stdout


def test_user_without_pass_is_no_credential_in_either_output(tmp_path: Path) -> None:
    summary, text = both(capture(tmp_path, POP3_USER_ONLY))
    assert summary["credentials"] == 0
    assert console_count(text, "credentials") == 0


def test_console_and_json_summaries_agree(tmp_path: Path) -> None:
    summary, text = both(capture(tmp_path, POP3_USER_ONLY, POP3_USER_PASS))
    assert summary["credentials"] == console_count(text, "credentials") == 1
    assert summary["sessions"] == console_count(text, "sessions") == 2
    assert summary["messages"] == console_count(text, "messages") == 0
    assert summary["incomplete_sessions"] == console_count(text, "incomplete")
    assert summary["bcc_recipients"] == console_count(text, "bcc recipients") == 0


def test_a_summary_travels_between_processes_whole() -> None:
    """--jobs workers send one per session (Summary.__reduce__): every count comes back, and
    merging adds each one."""
    one = Summary(
        sessions=1, by_protocol={"smtp": 1}, messages=2, credentials=3, bcc_recipients=4,
        gaps=5, incomplete=6, findings={"bcc": 7}, sent_copies=8,
    )  # fmt: skip
    assert all(getattr(one, f.name) != getattr(Summary(), f.name) for f in fields(Summary))
    back = pickle.loads(pickle.dumps(one, pickle.HIGHEST_PROTOCOL))
    assert back == one
    total = Summary(by_protocol={"pop3": 1})
    total.merge(back)
    total.merge(back)
    assert total == Summary(
        sessions=2, by_protocol={"pop3": 1, "smtp": 2}, messages=4, credentials=6,
        bcc_recipients=8, gaps=10, incomplete=12, findings={"bcc": 14}, sent_copies=16,
    )  # fmt: skip
