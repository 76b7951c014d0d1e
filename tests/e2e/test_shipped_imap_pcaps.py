"""The IMAP captures shipped in pcaps/: dovecot with imaplib and fetchmail, and mutt's Sent copy."""

from __future__ import annotations

import json
import mailbox
from functools import cache
from pathlib import Path
from typing import Any

from tests.cli_runner import PCAPS, read_json, run_cli
from tests.jsonschema_check import validate_lines
from tests.servers import IMAP_MESSAGES

DOVECOT = PCAPS / "imap-dovecot.pcap"
SENT_COPY = PCAPS / "sent-copy-mutt.pcap"
# what pcaps/make_pcaps.py APPENDs to Sent
APPENDED_SUBJECT = "会议纪要 minutes"


@cache
def dovecot(*extra: str) -> tuple[dict[str, Any], ...]:
    return tuple(read_json(DOVECOT, *extra))


def kinds(session: dict[str, Any]) -> set[str]:
    return {f["kind"] for f in session["findings"]}


def test_dovecot_capture_logins_and_clients() -> None:
    login, compressed, fetchmail = dovecot()
    assert all(s["protocol"] == "imap" and s["complete"] for s in dovecot())
    assert all(
        s["server"]["port"] == 143 and s["banner"].endswith("Dovecot (Debian) ready.")
        for s in dovecot()
    )
    auth = [
        [(a["mechanism"], a["username"], a["password"], a["success"]) for a in s["auth"]]
        for s in dovecot()
    ]
    assert auth == [
        [("LOGIN", "carol", "imap-pass", True)],
        [("PLAIN", "carol", "imap-pass", True)],
        [("LOGIN", "carol", "imap-pass", True)],
    ]
    assert login["imap"]["client_id"] == {"name": "imaplib", "version": "3.11"}
    assert login["imap"]["server_id"] == {"name": "Dovecot"}
    assert "COMPRESS=DEFLATE" in login["capabilities"]
    assert [s["imap"]["compressed"] for s in dovecot()] == [False, True, False]
    assert all("cleartext-credentials" in kinds(s) for s in dovecot())


def test_dovecot_capture_fetched_whole_partial_and_appended() -> None:
    login, compressed, fetchmail = dovecot()
    (inbox,) = login["imap"]["mailboxes"]
    assert (inbox["name"], inbox["exists"], inbox["read_only"]) == ("INBOX", 2, False)
    seen = [
        (m["command"], m["partial"], m["imap"]["source"], m["imap"]["mailbox"], m["imap"]["uid"])
        for m in login["messages"]
    ]
    assert seen == [
        ("FETCH 1 BODY[]", False, "FETCH", "INBOX", 1),
        ("FETCH 2 BODY[HEADER]", True, "FETCH", "INBOX", None),
        ("FETCH 2 BODY[]<0>", True, "FETCH", "INBOX", None),
        ("APPEND Sent", False, "APPEND", "Sent", 1),
    ]
    whole, header, first_bytes, appended = login["messages"]
    assert whole["message"]["size"] == len(IMAP_MESSAGES[0])
    assert whole["message"]["message_id"] == "<imap-one@example.com>"
    assert header["message"]["subject"] == "测试" and first_bytes["message"]["size"] == 120
    assert first_bytes["imap"]["origin"] == 0
    assert appended["message"]["subject"] == APPENDED_SUBJECT
    assert (appended["imap"]["flags"], appended["imap"]["outcome"]) == (["\\Seen"], "OK")
    assert appended["imap"]["date"] == "27-Nov-2026 10:00:00 +0000"
    # inside COMPRESS=DEFLATE: the whole message, then \Deleted and EXPUNGE
    (inflated,) = compressed["messages"]
    assert inflated["message"]["size"] == len(IMAP_MESSAGES[0]) and not inflated["partial"]
    changes = [(c["action"], c["messages"], c["flags"]) for c in compressed["imap"]["changes"]]
    assert changes == [("store", "1", ["\\Deleted"]), ("expunge", "1", [])]
    assert "messages-expunged" in kinds(compressed)
    # fetchmail: the header and the text apart, \Seen \Deleted, EXPUNGE
    parts = [(m["command"], m["partial"], m["message"]["size"]) for m in fetchmail["messages"]]
    head = IMAP_MESSAGES[1].index(b"\r\n\r\n") + 4
    assert parts == [
        ("FETCH 1 RFC822.HEADER", True, head),
        ("FETCH 1 BODY[TEXT]", True, len(IMAP_MESSAGES[1]) - head),
    ]
    assert [c["flags"] for c in fetchmail["imap"]["changes"]][0] == ["\\Seen", "\\Deleted"]


def test_dovecot_capture_transcript_shows_literals_idle_and_deflate() -> None:
    login, compressed, _ = dovecot("--transcript")
    lines = [(t["direction"], t["text"], t["note"]) for t in login["transcript"]]
    at = lines.index(("server", "From: Alice <alice@example.com>", "the literal's first line"))
    assert lines[at - 1][2] == "literal: 220 bytes (FETCH BODY[])"
    assert lines[at - 1][1].endswith("BODY[] {220}")
    assert [line[1] for line in lines].count(lines[at - 1][1]) == 1  # not again after the literal
    assert lines[at + 1][1] == ")"
    appended = [n for n, line in enumerate(lines) if line[2] == "literal: 232 bytes (APPEND)"]
    assert appended and lines[appended[0] + 1][1] == "From: Carol Example <carol@example.com>"
    clients = [t["text"] for t in login["transcript"] if t["direction"] == "client"]
    assert any(t.endswith(" IDLE") for t in clients) and "DONE" in clients
    notes = [t["note"] for t in compressed["transcript"]]
    assert "DEFLATE: inflated from here" in notes
    assert "literal: 220 bytes (FETCH BODY[])" in notes  # read from the inflated stream


def test_dovecot_capture_redact_masks_login_and_authenticate() -> None:
    plain = run_cli("read", str(DOVECOT), "--json", "--transcript")
    assert "imap-pass" in plain.stdout and "AGNhcm9sAGltYXAtcGFzcw==" in plain.stdout
    proc = run_cli("read", str(DOVECOT), "--json", "--transcript", "--redact")
    assert proc.returncode == 0, proc.stderr
    assert "imap-pass" not in proc.stdout
    assert "AGNhcm9sAGltYXAtcGFzcw==" not in proc.stdout  # base64 of \0carol\0imap-pass
    sessions = [r for r in validate_lines(proc.stdout) if r["type"] == "session"]
    assert [a["username"] for s in sessions for a in s["auth"]] == ["carol"] * 3


def test_dovecot_capture_extract_and_mbox(tmp_path: Path) -> None:
    out, mbox_path = tmp_path / "out", tmp_path / "imap.mbox"
    proc = run_cli("read", str(DOVECOT), "--json", "--extract", str(out), "--mbox", str(mbox_path))
    assert proc.returncode == 0, proc.stderr
    manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    commands = [(m["command"], m["partial"]) for m in manifest]
    assert ("FETCH 1 BODY[]", False) in commands and ("APPEND Sent", False) in commands
    assert ("FETCH 2 BODY[]<0>", True) in commands  # a partial fetch is marked partial
    emls = {p.read_bytes() for p in out.glob("*.eml")}
    assert IMAP_MESSAGES[0] in emls  # fetched whole, byte for byte (also inflated from DEFLATE)
    assert any(b"Message-ID: <imap-append-1@example.com>" in e for e in emls)  # appended
    entries = list(mailbox.mbox(str(mbox_path)))
    subjects = [m["Subject"] for m in entries]
    assert "first IMAP message" in subjects
    assert "=?UTF-8?B?5Lya6K6u57qq6KaB?= minutes" in subjects  # the APPENDed copy
    # The mbox says which entries are not whole messages, as the manifest does.
    by_sha = {m["X-Mailsniff-SHA256"]: m["X-Mailsniff-Partial"] for m in entries}
    for m in manifest:
        if m["sha256"] in by_sha:
            assert (by_sha[m["sha256"]] is not None) is m["partial"], m
    assert any(by_sha.values()) and not all(by_sha.values())


# --- sent-copy-mutt.pcap ---------------------------------------------------------------------


def test_sent_copy_links_mutts_smtp_message_and_its_append() -> None:
    proc = run_cli("read", str(SENT_COPY), "--json")
    assert proc.returncode == 0, proc.stderr
    smtp, imap, link, summary = validate_lines(proc.stdout)
    assert (smtp["protocol"], imap["protocol"], link["type"]) == ("smtp", "imap", "sent_copy")
    (tx,) = smtp["transactions"]
    assert tx["rcpt_accepted"] == ["bob@example.com", "alice@example.com", "dave@example.com"]
    assert tx["bcc"] == ["dave@example.com"] and tx["message"]["bcc"] == []
    (copy,) = imap["messages"]
    assert (copy["imap"]["source"], copy["imap"]["mailbox"]) == ("APPEND", "Sent")
    assert [a["address"] for a in copy["message"]["bcc"]] == ["dave@example.com"]
    assert copy["message"]["message_id"] == tx["message"]["message_id"]
    # linked both ways: the record written second names the first, the link names both
    assert copy["sent_copy"] == [{"session": smtp["id"], "uid": smtp["uid"], "transaction": 0}]
    assert link["smtp"] == {"session": smtp["id"], "uid": smtp["uid"], "transaction": 0}
    assert (link["imap"]["session"], link["imap"]["message"]) == (imap["id"], 0)
    assert link["matched_by"] == "message-id" and not link["identical"]
    assert [r["text"] for r in link["recipients"]] == [
        "To bob@example.com: in RCPT TO, in the sent headers as To, the same in the Sent copy (To)",
        "Cc alice@example.com: in RCPT TO, in the sent headers as Cc, "
        "the same in the Sent copy (Cc)",
        "Bcc dave@example.com: in RCPT TO, not in the sent headers, "
        "kept as a Bcc header in the Sent copy",
    ]
    assert summary["sent_copies"] == 1
    assert "bcc-header-present" in kinds(imap) and "bcc" in kinds(smtp)


def test_sent_copy_console_shows_the_comparison() -> None:
    proc = run_cli("read", str(SENT_COPY))
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stdout.split())
    assert "Sent copy of transaction 1: filed by session 2, APPEND Sent (UID 1, OK)" in text
    assert (
        "Bcc dave@example.com: in RCPT TO, not in the sent headers, kept as a Bcc header in the "
        "Sent copy" in text
    )
