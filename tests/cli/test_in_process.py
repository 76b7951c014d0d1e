"""The commands run in-process with their output on an injected console: every record and table
lands there, nothing on the process's own stdout (exit codes and signals stay with the subprocess
tests)."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from mailsniff.commands.creds import CredsOptions, read_credentials
from mailsniff.commands.read import ReadOptions, read_capture
from mailsniff.commands.send import SendRequest, run_send
from mailsniff.send.client import SmtpOptions
from mailsniff.send.message import MessageSpec
from mailsniff.status import ExitStatus
from tests.jsonschema_check import validate_lines
from tests.paths import PCAPS


def _console(buffer: io.StringIO) -> Console:
    return Console(file=buffer, width=160, highlight=False, soft_wrap=True, color_system=None)


def test_read_json_goes_to_the_given_console(capsys: pytest.CaptureFixture[str]) -> None:
    out, err = io.StringIO(), io.StringIO()
    options = ReadOptions(path=str(PCAPS / "seed-telnet.pcap"), json=True, progress=False)
    result = read_capture(options, _console(out), _console(err))
    assert result.status is ExitStatus.SUCCESS
    records = validate_lines(out.getvalue())
    sessions = [r for r in records if r["type"] == "session"]
    assert records[-1]["type"] == "summary" and len(sessions) == result.sessions > 0
    assert capsys.readouterr().out == ""


def test_read_console_view_goes_to_the_given_console(capsys: pytest.CaptureFixture[str]) -> None:
    out, err = io.StringIO(), io.StringIO()
    options = ReadOptions(path=str(PCAPS / "cc-bcc-smtplib.pcap"), progress=False)
    read_capture(options, _console(out), _console(err))
    assert "Bcc (envelope only)" in out.getvalue()
    assert capsys.readouterr().out == ""


def test_creds_json_goes_to_the_given_console(capsys: pytest.CaptureFixture[str]) -> None:
    out, err = io.StringIO(), io.StringIO()
    options = CredsOptions(path=str(PCAPS / "seed-telnet.pcap"), json=True, progress=False)
    result = read_credentials(options, _console(out), _console(err))
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(rows) == result.credentials > 0
    assert {r["type"] for r in rows} == {"credential"}
    assert capsys.readouterr().out == ""


def test_send_dry_run_json_goes_to_the_given_console(capsys: pytest.CaptureFixture[str]) -> None:
    out = io.StringIO()
    spec = MessageSpec(
        "boss@example.com", to=["a@example.com"], cc=["b@example.com"], bcc=["c@example.com"]
    )
    run_send(SendRequest(spec, SmtpOptions(), dry_run=True, json=True), _console(out))
    (record,) = [json.loads(line) for line in out.getvalue().splitlines()]
    assert record["type"] == "send" and record["dry_run"] is True
    assert [(r["address"], r["as"]) for r in record["recipients"]] == [
        ("a@example.com", "to"),
        ("b@example.com", "cc"),
        ("c@example.com", "bcc"),
    ]
    assert capsys.readouterr().out == ""
