"""IMAP through the registry: the session record, JSON, creds, --redact and --extract."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from mailsniff.capture.reader import open_capture
from mailsniff.cli import app
from mailsniff.pipeline import Pipeline
from mailsniff.session import registry
from tests.e2e import synth
from tests.jsonschema_check import validate_lines

PUBLIC = Path(__file__).parents[1] / "data/public/suricata-verify/imap-detection.pcap"

FETCHED = (
    b"From: Alice <alice@example.org>\r\nTo: bob@example.net\r\n"
    b"Subject: =?utf-8?q?caf=C3=A9?=\r\nMessage-ID: <f1@example.org>\r\n\r\nhello bob\r\n"
)
SENT = (
    b"From: bob@example.net\r\nTo: carol@example.com\r\nBcc: dave@example.com\r\n"
    b"Subject: filed\r\nMessage-ID: <s1@example.net>\r\n\r\nmy copy\r\n"
)
STEPS = [
    ("s", b"* OK [CAPABILITY IMAP4rev1 LITERAL+ ID AUTH=PLAIN] Dovecot ready.\r\n"),
    ("c", b'a1 ID ("name" "Thunderbird" "version" "115.3")\r\n'),
    ("s", b'* ID ("name" "Dovecot")\r\na1 OK ID completed.\r\n'),
    ("c", b'a2 LOGIN bob "s3cr3t-pw"\r\n'),
    ("s", b"a2 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"),
    ("c", b"a3 AUTHENTICATE PLAIN AGJvYgBzM2NyM3QtcHcy\r\n"),  # \0bob\0s3cr3t-pw2
    ("s", b"a3 OK Logged in\r\n"),
    ("c", b"a4 SELECT INBOX\r\n"),
    (
        "s",
        b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n* 2 EXISTS\r\n"
        b"* 0 RECENT\r\n* OK [UIDVALIDITY 1700000000] UIDs valid\r\n"
        b"* OK [UIDNEXT 9] Predicted next UID\r\na4 OK [READ-WRITE] Select completed.\r\n",
    ),
    ("c", b"a5 UID FETCH 7 (UID FLAGS BODY.PEEK[])\r\n"),
    (
        "s",
        b"* 1 FETCH (UID 7 FLAGS (\\Seen) BODY[] {%d}\r\n" % len(FETCHED)
        + FETCHED
        + b")\r\na5 OK Fetch completed.\r\n",
    ),
    ("c", b"a6 FETCH 2 (BODY.PEEK[HEADER]<0.20>)\r\n"),
    ("s", b"* 2 FETCH (BODY[HEADER]<0> {20}\r\nFrom: x@example.org\r\n)\r\na6 OK Done\r\n"),
    ("c", b"a7 APPEND Sent (\\Seen) {%d+}\r\n" % len(SENT) + SENT + b"\r\n"),
    ("s", b"a7 OK [APPENDUID 1700000001 3] Append completed.\r\n"),
    ("c", b"a8 STORE 1 +FLAGS.SILENT (\\Deleted)\r\n"),
    ("s", b"a8 OK Store completed.\r\n"),
    ("c", b"a9 EXPUNGE\r\n"),
    ("s", b"* 1 EXPUNGE\r\na9 OK Expunge completed.\r\n"),
    ("c", b"a10 UID MOVE 8 Archive\r\n"),
    ("s", b"* OK [COPYUID 1700000002 8 1] Moved\r\n* 1 EXPUNGE\r\na10 OK Move completed.\r\n"),
    ("c", b"a11 LOGOUT\r\n"),
    ("s", b"* BYE Logging out\r\na11 OK Logout completed.\r\n"),
]


def capture(tmp_path: Path, port: int = 143) -> Path:
    segs = synth.tcp_segments(STEPS, synth.Conn(server_port=port))
    return synth.write_pcap(tmp_path / "imap.pcap", synth.frames(segs))


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout


def test_registry_knows_imap_by_port_and_greeting() -> None:
    imap = registry.entry("imap")
    assert imap is not None and imap.handler is not None
    assert registry.for_port(143) == (imap, False)
    assert registry.for_port(993) == (imap, True)
    assert registry.detect_greeting(b"* OK [CAPABILITY IMAP4rev1] ready\r\n") is imap
    assert registry.detect_greeting(b"* PREAUTH logged in as bob\r\n") is imap
    assert registry.detect_greeting(b"+OK POP3 ready\r\n") is not imap


def test_session_record(tmp_path: Path) -> None:
    with open_capture(str(capture(tmp_path))) as reader:
        (s,) = Pipeline().run(reader)
    assert s.protocol == "imap"
    assert s.imap is not None
    assert s.imap.client_id == [("name", "Thunderbird"), ("version", "115.3")]
    assert s.imap.server_id == [("name", "Dovecot")]
    assert "AUTH=PLAIN" in s.capabilities
    assert [(a.mechanism, a.username, a.password, a.success) for a in s.auth] == [
        ("LOGIN", "bob", "s3cr3t-pw", False),
        ("PLAIN", "bob", "s3cr3t-pw2", True),
    ]
    (inbox,) = s.imap.mailboxes
    assert (inbox.name, inbox.exists, inbox.uidvalidity, inbox.uidnext) == (
        "INBOX",
        2,
        1700000000,
        9,
    )
    whole, header, appended = s.messages
    assert whole.imap is not None and not whole.partial
    assert (whole.imap.source, whole.imap.mailbox, whole.imap.uid) == ("FETCH", "INBOX", 7)
    assert whole.imap.flags == ["\\Seen"]
    assert whole.message.subject == "café"
    assert whole.message.size == len(FETCHED)
    assert header.partial and header.imap is not None
    assert (header.imap.section, header.imap.origin, header.number) == ("HEADER", 0, 2)
    assert appended.imap is not None and not appended.partial
    assert (appended.imap.source, appended.imap.mailbox) == ("APPEND", "Sent")
    assert (appended.imap.flags, appended.imap.outcome, appended.imap.uid) == (
        ["\\Seen"],
        "OK",
        3,
    )
    assert [b.address for b in appended.message.bcc] == ["dave@example.com"]
    assert [(c.action, c.messages, c.flags, c.destination) for c in s.imap.changes] == [
        ("store", "1", ["\\Deleted"], None),
        ("expunge", "1", [], None),
        ("expunge", "1", [], None),  # the MOVE's own expunge comes before its OK
        ("move", "8", [], "Archive"),
    ]
    commands = [(e.command, e.reply) for e in s.exchanges]
    assert ("UID FETCH", "a5 OK Fetch completed.") in commands
    assert ("LOGOUT", "a11 OK Logout completed.") in commands


def test_json_validates_and_redact_masks_both_passwords(tmp_path: Path) -> None:
    path = str(capture(tmp_path, port=40143))  # found by its greeting off its port
    code, out = cli("read", path, "--json")
    assert code == 0
    (record,) = [r for r in validate_lines(out) if r["type"] == "session"]
    assert record["protocol"] == "imap"
    assert record["imap"]["client_id"] == {"name": "Thunderbird", "version": "115.3"}
    assert [m["imap"]["source"] for m in record["messages"]] == ["FETCH", "FETCH", "APPEND"]
    assert record["messages"][2]["message"]["subject"] == "filed"

    code, out = cli("read", path, "--json", "--redact", "--transcript")
    assert code == 0
    assert "s3cr3t-pw" not in out
    assert "AGJvYgBzM2NyM3QtcHcy" not in out  # the PLAIN blob carrying it


def test_creds_and_extract(tmp_path: Path) -> None:
    path = str(capture(tmp_path))
    code, out = cli("creds", path)
    assert code == 0
    assert "s3cr3t-pw2" in out and "bob" in out
    out_dir = tmp_path / "out"
    code, _ = cli("read", path, "--json", "--extract", str(out_dir))
    assert code == 0
    emls = sorted(p.read_bytes() for p in out_dir.rglob("*.eml"))
    assert FETCHED in emls and SENT in emls


def test_public_capture_end_to_end() -> None:
    code, out = cli("read", str(PUBLIC), "--json")
    assert code == 0
    (record,) = [r for r in validate_lines(out) if r["type"] == "session"]
    assert record["protocol"] == "imap"
    assert record["banner"].startswith("* OK Microsoft Exchange IMAP4rev1")
    assert [(a["mechanism"], a["username"], a["success"]) for a in record["auth"]] == [
        ("LOGIN", "neulingern", True)
    ]
    assert "cleartext-credentials" in {f["kind"] for f in record["findings"]}
    messages = record["messages"]
    assert messages and all(m["imap"]["source"] == "FETCH" for m in messages)
    whole = [m for m in messages if not m["partial"]]
    assert whole and all(m["imap"]["section"] == "" for m in whole)
    assert json.dumps(record["imap"]["mailboxes"])  # the mailboxes the client opened
    assert {m["name"] for m in record["imap"]["mailboxes"]} == {"INBOX"}


def test_findings_login_disabled_ignored_and_expunge(tmp_path: Path) -> None:
    steps = [
        ("s", b"* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] ready\r\n"),
        ("c", b"a1 LOGIN bob hunter2\r\n"),
        ("s", b"a1 NO [PRIVACYREQUIRED] Plaintext authentication disallowed\r\n"),
        ("c", b"a2 LOGOUT\r\n"),
        ("s", b"* BYE bye\r\na2 OK done\r\n"),
    ]
    segs = synth.tcp_segments(steps, synth.Conn(server_port=143))
    path = synth.write_pcap(tmp_path / "ld.pcap", synth.frames(segs))
    code, out = cli("read", str(path), "--json")
    assert code == 0
    (record,) = [r for r in validate_lines(out) if r["type"] == "session"]
    kinds = {f["kind"]: f for f in record["findings"]}
    assert record["imap"]["login_disabled"] is True
    assert "bob" in kinds["login-disabled-ignored"]["detail"]
    assert kinds["login-disabled-ignored"]["severity"] == "medium"
    assert "auth-failed" in kinds and "cleartext-credentials" in kinds
    assert "messages-expunged" not in kinds

    code, out = cli("read", str(capture(tmp_path)), "--json")
    (record,) = [r for r in validate_lines(out) if r["type"] == "session"]
    kinds = {f["kind"]: f for f in record["findings"]}
    assert "login-disabled-ignored" not in kinds
    assert kinds["messages-expunged"]["detail"] == "marked \\Deleted: INBOX 1; 2 expunged"
    assert kinds["messages-expunged"]["severity"] == "info"


def test_console_session_view(tmp_path: Path) -> None:
    code, out = cli("read", str(capture(tmp_path)))
    assert code == 0
    # the overview row (after the title and, at 80 columns, the note on hidden columns)
    assert any(line.split()[:2] == ["1", "imap"] for line in out.splitlines()[:6]), out
    assert "name=Thunderbird, version=115.3" in out
    assert "Mailboxes" in out and "1700000000" in out
    assert "+FLAGS \\Deleted" in out and "-> Archive (OK)" in out
    assert "Retrieved FETCH 1 BODY[]" in out and "café" in out
    assert "Filed APPEND Sent" in out and "UID 3" in out
    assert "UID FETCH" in out and "a5 OK" in out  # commands and replies by tag
