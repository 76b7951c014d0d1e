"""`mailsniff read` options on the shipped seed capture: filters, views, stdin, gzip."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

from tests.cli_runner import PCAPS, REPO, read_json, run_cli
from tests.jsonschema_check import validate_lines

SEED = PCAPS / "seed-telnet.pcap"


def test_read_seed_console_shows_the_dialogues() -> None:
    proc = run_cli("read", str(SEED))
    assert proc.returncode == 0 and proc.stderr == ""
    out = proc.stdout
    assert "220 163.com Coremail SMTP(Anti Spam) System" in out
    assert "crazywill" in out and "mypassword" in out
    assert "553 You are not authorized to send mail" in out
    assert "cccc@163.com" in out and "Sender" in out
    assert "张帆" in out  # the GBK From name of the server-to-server dialogue
    assert "\x1b" not in out  # not a terminal: no escape sequences


def test_read_summary_is_only_the_table_and_totals() -> None:
    full = run_cli("read", str(SEED)).stdout
    summary = run_cli("read", str(SEED), "--summary").stdout
    assert "Coremail" not in summary  # no per-session detail
    assert len(summary) < len(full) / 3
    assert "202.108.5.104" in summary


def test_read_session_option_selects_one() -> None:
    [only] = read_json(SEED, "--session", "2")
    assert only["id"] == 2 and only["protocol"] == "pop3"


def test_read_protocol_host_and_port_filters() -> None:
    assert [s["protocol"] for s in read_json(SEED, "--protocol", "pop3")] == ["pop3"]
    smtp = read_json(SEED, "--protocol", "smtp")
    assert sorted(s["server"]["ip"] for s in smtp) == ["202.108.5.81", "220.181.12.11"]
    [by_host] = read_json(SEED, "--host", "222.177.8.218")
    assert by_host["client"]["ip"] == "222.177.8.218"
    assert [s["server"]["port"] for s in read_json(SEED, "--port", "110")] == [110]
    assert read_json(SEED, "--port", "143") == []


def test_read_transcript_only_when_asked() -> None:
    plain = read_json(SEED, "--session", "1")[0]
    assert "transcript" not in plain
    full = read_json(SEED, "--session", "1", "--transcript")[0]
    lines = full["transcript"]
    assert lines[0]["direction"] == "server" and lines[0]["text"].startswith("220 163.com")
    notes = {(line["text"], line["note"]) for line in lines}
    assert ("Y3Jhenl3aWxs", "crazywill") in notes
    assert ("bXlwYXNzd29yZA==", "mypassword") in notes
    assert ("334 dXNlcm5hbWU6", "username:") in notes
    console = run_cli("read", str(SEED), "--session", "1", "--transcript").stdout
    assert "Y3Jhenl3aWxs" in console and "crazywill" in console


def test_read_from_stdin_and_gzip_give_the_same_records(tmp_path: Path) -> None:
    direct = read_json(SEED)
    packed = tmp_path / "seed.pcap.gz"
    packed.write_bytes(gzip.compress(SEED.read_bytes()))
    assert read_json(packed) == direct
    proc = subprocess.run(
        [sys.executable, "-m", "mailsniff", "read", "-", "--json"],
        input=SEED.read_bytes(),
        capture_output=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    records = validate_lines(proc.stdout.decode())
    assert [r for r in records if r["type"] == "session"] == direct


def test_read_json_summary_counts() -> None:
    proc = run_cli("read", str(SEED), "--json")
    summary = validate_lines(proc.stdout)[-1]
    assert summary["sessions"] == 3
    assert summary["sessions_by_protocol"] == {"smtp": 2, "pop3": 1}
    assert summary["credentials"] == 3
    assert summary["messages"] == 4  # two SMTP DATA, POP3 TOP and RETR
    assert summary["frames"] == summary["tcp_segments"]


def test_version_and_help() -> None:
    assert run_cli("--version").stdout.startswith("mailsniff ")
    help_text = run_cli("read", "--help").stdout
    for option in ("--json", "--transcript", "--summary", "--session", "--protocol", "--host"):
        assert option in help_text


def test_progress_bar_on_a_terminal_keeps_json_on_stdout(tmp_path: Path) -> None:
    # stderr is a terminal (a pty), stdout a file: the bar goes to stderr, every record to stdout.
    import os
    import pty

    master, slave = pty.openpty()
    out = tmp_path / "out.jsonl"
    with out.open("wb") as stdout:
        proc = subprocess.run(
            [sys.executable, "-m", "mailsniff", "read", str(SEED), "--json"],
            stdout=stdout,
            stderr=slave,
            cwd=REPO,
            timeout=120,
        )
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    assert proc.returncode == 0
    records = validate_lines(out.read_text())
    assert [r["type"] for r in records] == ["session"] * 3 + ["summary"]
    assert b"reading" in b"".join(chunks)  # the bar itself (the console is made on first use)
    assert b'"type"' not in b"".join(chunks)
