"""--plain (and plain by default when stdout is not a terminal), conflicting flags."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from mailsniff.cli import app
from mailsniff.model import Address, AuthAttempt, Finding, Message, RcptAttempt, Transaction
from mailsniff.render.plain import session_lines
from tests.cli_runner import PCAPS, REPO
from tests.factories import make_session

SEED = str(PCAPS / "seed-telnet.pcap")
RECORDS = {
    "session",
    "auth",
    "mail",
    "rcpt",
    "message",
    "attachment",
    "retrieved",
    "gap",
    "finding",
    "anomaly",
    "sent_copy",
    "sent_copy_rcpt",
    "line",
    "summary",
    "warning",
}


def _box_drawing(text: str) -> list[str]:
    return [ch for ch in text if 0x2500 <= ord(ch) <= 0x259F]


def _check_plain(text: str) -> list[list[str]]:
    """Every line a record: known type first, no trailing space, no box drawing."""
    assert text.endswith("\n")
    assert not _box_drawing(text)
    rows = []
    for line in text.splitlines():
        assert line == line.rstrip(), repr(line)
        fields = line.split("\t")
        assert fields[0] in RECORDS, line
        rows.append(fields)
    return rows


def test_plain_read_gives_one_record_per_line() -> None:
    result = CliRunner().invoke(app, ["read", SEED, "--plain", "--transcript"])
    assert result.exit_code == 0, result.output
    rows = _check_plain(result.stdout)
    sessions = [r for r in rows if r[0] == "session"]
    assert [r[1] for r in sessions] == ["1", "2", "3"]
    assert "findings=cleartext-credentials,auth-failed,sender-rejected,from-mismatch" in sessions[0]
    auth = [r for r in rows if r[0] == "auth" and r[1] == "1"]
    assert [r[-2] for r in auth] == ["result=failed", "result=ok"]
    assert ["rcpt", "1", "t2", "crazywill@163.com", "role=to", "reply=250 Mail OK"] in rows
    # a line longer than any terminal stays one line (no wrapping)
    assert max(len(line) for line in result.stdout.splitlines()) > 200
    assert any(r[0] == "line" and r[1] == "2" for r in rows)  # --transcript lines
    [summary] = [r for r in rows if r[0] == "summary"]
    assert "sessions=3" in summary and "filtered_out=0" in summary


def test_plain_summary_is_the_session_lines_and_the_summary() -> None:
    result = CliRunner().invoke(app, ["read", SEED, "--plain", "--summary", "--port", "110"])
    rows = _check_plain(result.stdout)
    assert [r[0] for r in rows] == ["session", "summary"]
    assert "filtered_out=2" in rows[-1]


def test_plain_escapes_captured_control_characters_so_records_stay_whole() -> None:
    hostile = "Q3\treport\n\x1b[31mred\u202e"
    message = Message(
        size=10,
        sha256="0" * 64,
        subject=hostile,
        from_=[Address("", "a@x.example")],
        to=[Address("", "b\tc@x.example")],
    )
    tx = Transaction(mail_from="a@x.example", rcpts=[RcptAttempt("b\tc@x.example")])
    tx.message = message
    session = make_session(
        transactions=[tx],
        auth=[AuthAttempt("PLAIN", username="u\x1b]0;", password="p\n")],
        findings=[Finding("bcc", "who\tnot\nhere")],
    )
    lines = list(session_lines(session, summary_only=False, transcript=False))
    for line in lines:
        assert "\n" not in line and "\x1b" not in line and "\u202e" not in line
    [msg] = [line.split("\t") for line in lines if line.startswith("message\t")]
    assert "subject=Q3\\treport\\n\\x1b[31mred\\u202e" in msg
    [finding] = [line.split("\t") for line in lines if line.startswith("finding\t")]
    assert finding[-1] == "who\\tnot\\nhere"


def _run(*args: str, plain_env: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "MAILSNIFF_PLAIN"}
    if plain_env is not None:
        env["MAILSNIFF_PLAIN"] = plain_env
    return subprocess.run(
        [sys.executable, "-m", "mailsniff", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
    )


def test_piped_output_is_plain_by_default_and_no_plain_or_the_setting_keep_the_boxes() -> None:
    piped = _run("read", SEED, plain_env=None)
    assert piped.returncode == 0, piped.stderr
    _check_plain(piped.stdout)
    for args, env in (((), "0"), (("--no-plain",), None)):
        boxed = _run("read", SEED, *args, plain_env=env)
        assert boxed.returncode == 0, boxed.stderr
        assert "Sessions (3)" in boxed.stdout and _box_drawing(boxed.stdout)
    creds = _run("creds", SEED, plain_env=None)
    rows = [line.split("\t") for line in creds.stdout.splitlines()]
    assert [r[:3] for r in rows] == [
        ["credential", "192.168.1.100", "202.108.5.81:25"],
        ["credential", "192.168.1.100", "202.108.5.104:110"],
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["read", SEED, "--summary", "--json"], "--summary and --json cannot be used together"),
        (
            ["read", SEED, "--summary", "--transcript"],
            "--summary and --transcript cannot be used together",
        ),
        (["read", SEED, "--json", "--plain"], "--json and --plain cannot be used together"),
        (["creds", SEED, "--json", "--plain"], "--json and --plain cannot be used together"),
    ],
)
def test_flags_that_cannot_go_together_are_one_usage_error(args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.strip() == f"mailsniff: error: {message}"


def test_a_missing_session_names_the_range_even_in_plain_mode() -> None:
    result = CliRunner().invoke(app, ["read", SEED, "--plain", "--session", "7"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "no such session (the capture has sessions 1-3)" in result.stderr


def test_a_missing_session_names_the_ids_when_they_are_few_and_not_a_range() -> None:
    from mailsniff.commands.read import _missing_sessions

    def message(known: list[int], few: list[int]) -> str:
        error = _missing_sessions(frozenset({3}), set(), known, few)
        assert error is not None
        return error.message

    # IDs count every TCP connection, so a capture's mail sessions may be 1, 2 and 5
    assert message([1, 5], [1, 2, 5]) == (
        "--session 3: no such session (the capture has sessions 1, 2, 5)"
    )
    assert message([1, 2], [1, 2]).endswith("(the capture has sessions 1-2)")
    many = list(range(1, 30, 2))
    assert message([1, 29], many[:11]).endswith("(the capture has sessions 1-29)")
    assert message([], []).endswith("(the capture has no matching session)")
