"""--extract/--mbox with the filters that need the analysed session (--address, --finding,
--since/--until): only the messages of the sessions shown are written, although each message
is spooled while its session is still open."""

from __future__ import annotations

import json
import mailbox
import os
import re
from pathlib import Path
from typing import Any

from tests.cli_runner import PCAPS, run_cli
from tests.jsonschema_check import validate_lines

SEED = str(PCAPS / "seed-telnet.pcap")
IMAP = str(PCAPS / "imap-dovecot.pcap")


def read(capture: str, *args: str) -> list[dict[str, Any]]:
    proc = run_cli("read", capture, "--json", *args)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return validate_lines(proc.stdout)


def manifest(folder: Path) -> list[tuple[int, str, str]]:
    """(session, message, sha256) of each manifest line."""
    path = folder / "manifest.jsonl"
    if not path.exists():
        return []
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return sorted((r["session"]["id"], r["key"].split("/")[-2], r["sha256"]) for r in lines)


def mbox_hashes(path: Path) -> list[str]:
    box = mailbox.mbox(path)
    found = [re.search(rb"X-Mailsniff-SHA256: (\w+)", box.get_bytes(k)) for k in box.keys()]
    return sorted(m.group(1).decode() for m in found if m is not None)


def no_spools_left(*folders: Path) -> None:
    for folder in folders:
        names = [n for n in os.listdir(folder) if n.startswith(".")]
        assert names == [], names


def test_address_filter_writes_only_the_messages_of_the_sessions_shown(tmp_path: Path) -> None:
    everything = tmp_path / "all"
    read(SEED, "--extract", str(everything / "dir"), "--mbox", str(everything / "box"))
    some = tmp_path / "some"
    records = read(
        SEED,
        "--address",
        "@them.com",
        "--extract",
        str(some / "dir"),
        "--mbox",
        str(some / "box"),
    )
    shown = [r["id"] for r in records if r["type"] == "session"]
    assert shown == [3] and records[-1]["sessions_filtered_out"] == 2

    wanted = [m for m in manifest(everything / "dir") if m[0] == 3]
    assert wanted and manifest(some / "dir") == wanted
    assert len(manifest(everything / "dir")) > len(wanted)
    # the mbox and the folder hold the same messages: those of session 3
    assert mbox_hashes(some / "box") == sorted({sha for _, _, sha in wanted})
    emls = sorted(p.name for p in (some / "dir").glob("*.eml"))
    assert emls == sorted({f"{sha}.eml" for _, _, sha in wanted})
    no_spools_left(some / "dir", some)


def test_finding_filter_and_extract_agree_with_what_read_prints(tmp_path: Path) -> None:
    records = read(IMAP, "--address", "zhangsan@example.com", "--extract", str(tmp_path / "dir"))
    shown = {r["id"] for r in records if r["type"] == "session"}
    assert shown == {1, 3}
    everything = tmp_path / "all"
    read(IMAP, "--extract", str(everything))
    expected = [m for m in manifest(everything) if m[0] in shown]
    assert manifest(tmp_path / "dir") == expected and len(expected) < len(manifest(everything))
    no_spools_left(tmp_path / "dir")

    # --finding with --mbox on the console path (no --json): the same selection
    proc = run_cli(
        "read", SEED, "--finding", "from-mismatch", "--plain", "--mbox", str(tmp_path / "fm")
    )
    assert proc.returncode == 0, proc.stderr
    sessions = [ln.split("\t")[1] for ln in proc.stdout.splitlines() if ln.startswith("session")]
    kept = read(SEED, "--finding", "from-mismatch")
    assert sessions == [str(r["id"]) for r in kept if r["type"] == "session"]
    messages = [
        r["transactions"][n]["message"]["sha256"]
        for r in kept
        if r["type"] == "session"
        for n in range(len(r["transactions"]))
        if r["transactions"][n]["message"] is not None
    ] + [m["message"]["sha256"] for r in kept if r["type"] == "session" for m in r["messages"]]
    assert mbox_hashes(tmp_path / "fm") == sorted(set(messages))


def test_a_window_that_keeps_no_session_writes_no_message(tmp_path: Path) -> None:
    records = read(
        SEED,
        "--since",
        "2030-01-01T00:00Z",
        "--extract",
        str(tmp_path / "dir"),
        "--mbox",
        str(tmp_path / "box"),
    )
    assert [r["type"] for r in records] == ["summary"]
    assert records[0]["sessions_filtered_out"] == 3
    assert manifest(tmp_path / "dir") == [] and not list((tmp_path / "dir").glob("*.eml"))
    assert mbox_hashes(tmp_path / "box") == []
    no_spools_left(tmp_path / "dir", tmp_path)
