"""The Sent copy in the report: the SMTP message and its IMAP APPEND copy, linked both ways."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.cli_runner import PCAPS
from tests.e2e.synth import Conn, frames, tcp_segments, write_pcap
from tests.report.conftest import wait_until
from tests.report.test_report_browser import assert_clean_load, count, make_report, visible_rows

MUTT = PCAPS / "sent-copy-mutt.pcap"
SAME = "the same in the Sent copy"
KEPT = "kept as a Bcc header in the Sent copy"


def test_mutt_report_links_the_message_and_its_sent_copy(tmp_path: Path, open_report: Any) -> None:
    path = make_report(tmp_path, MUTT)
    seen = open_report(path)
    page = seen.page
    assert_clean_load(seen, path)
    custody = page.inner_text("table.custody")
    assert "Sent copies\t1 (SMTP message filed by IMAP APPEND" in custody

    # the SMTP session: which APPEND filed its message, and per recipient what differs
    smtp = page.locator("#s1-1 .sentcopy")
    assert smtp.count() == 1
    assert (
        smtp.locator("h4")
        .inner_text()
        .startswith("Sent copy of transaction 1: filed by session 2, APPEND Sent (UID 1, OK)")
    )
    rows = smtp.locator("tr").all_inner_texts()
    assert rows[0].split(None, 2)[2] == "Message-ID axCjySQSYMi1Lxi6@example.com"
    assert "differ: sent 327, filed 350" in rows[1]
    assert [r.split("\t") for r in rows[2:]] == [
        ["To", f"bob@example.com: in RCPT TO, in the sent headers as To, {SAME} (To)"],
        ["Cc", f"alice@example.com: in RCPT TO, in the sent headers as Cc, {SAME} (Cc)"],
        ["Bcc", f"dave@example.com: in RCPT TO, not in the sent headers, {KEPT}"],
    ]
    assert count(page, "#s1-1 .sentcopy tr.role-bcc") == 1

    # the IMAP session names the transaction it copies; each points at the other half
    imap = page.locator("#s1-2 .sentcopy h4")
    assert imap.inner_text().startswith(
        "Sent copy session 2, APPEND Sent (UID 1, OK): sent by session 1, transaction 1"
    )
    smtp.locator("h4 a").click()
    wait_until(page, "location.hash === '#s1-2-m1'")
    assert "APPEND Sent" in page.inner_text("#s1-2-m1")
    imap.locator("a").click()
    wait_until(page, "location.hash === '#s1-1-t1'")


def test_session_list_marks_and_finds_the_sessions_with_a_sent_copy(
    tmp_path: Path, open_report: Any
) -> None:
    """Beside the seed capture's three sessions, the list tags the mutt capture's two halves
    and the search box finds them by "sent copy" or by the Message-ID that links them."""
    page = open_report(make_report(tmp_path, MUTT, PCAPS / "seed-telnet.pcap")).page
    tagged = page.eval_on_selector_all(
        "tr.srow:has(span.sentcopy)", "rows => rows.map(r => r.dataset.s)"
    )
    assert sorted(tagged) == ["s1-1", "s1-2"]
    assert len(visible_rows(page)) == 5
    page.fill("#q", "sent copy")
    assert visible_rows(page) == ["s1-1", "s1-2"]
    page.fill("#q", "axCjySQSYMi1Lxi6@example.com")
    assert visible_rows(page) == ["s1-1", "s1-2"]
    page.fill("#q", "")
    assert len(visible_rows(page)) == 5


MARKUP_ID = "id<script>window.__pwned=1</script>\u202e@evil.example"
MAILBOX = "<img src=x onerror=window.__pwned=2>"
RCPT = '"<svg onload=window.__pwned=3>"@x.example'


def hostile_pair(path: Path) -> Path:
    message = (
        "From: bob@example.net\r\nTo: carol@example.com\r\n"
        f"Message-ID: <{MARKUP_ID}>\r\nSubject: hi\r\n\r\nbody\r\n"
    ).encode()
    copy = message.replace(b"Subject: hi", f"Bcc: {RCPT}\r\nSubject: hi".encode())
    smtp = [
        ("s", b"220 mx ESMTP\r\n"),
        ("c", b"EHLO c\r\n"),
        ("s", b"250 mx\r\n"),
        ("c", b"MAIL FROM:<bob@example.net>\r\n"),
        ("s", b"250 OK\r\n"),
        ("c", b"RCPT TO:<carol@example.com>\r\n"),
        ("s", b"250 OK\r\n"),
        ("c", b"DATA\r\n"),
        ("s", b"354 go on\r\n"),
        ("c", message + b".\r\n"),
        ("s", b"250 queued\r\n"),
        ("c", b"QUIT\r\n"),
        ("s", b"221 bye\r\n"),
    ]
    imap = [
        ("s", b"* OK [CAPABILITY IMAP4rev1 LITERAL+] ready\r\n"),
        ("c", b"a1 LOGIN bob pw\r\n"),
        ("s", b"a1 OK Logged in\r\n"),
        ("c", b'a2 APPEND "%s" {%d+}\r\n' % (MAILBOX.encode(), len(copy)) + copy + b"\r\n"),
        ("s", b"a2 OK [APPENDUID 7 12] Append completed.\r\n"),
        ("c", b"a3 LOGOUT\r\n"),
        ("s", b"* BYE\r\na3 OK bye\r\n"),
    ]
    segs = tcp_segments(smtp, Conn(client_port=40001, server_port=587))
    segs += tcp_segments(imap, Conn(client_port=40002, server_port=143))
    return write_pcap(path, frames(segs))


def test_captured_strings_in_the_sent_copy_stay_text(tmp_path: Path, open_report: Any) -> None:
    path = make_report(tmp_path, hostile_pair(tmp_path / "pair.pcap"))
    assert "\u202e" not in path.read_text(encoding="utf-8")
    seen = open_report(path)
    page = seen.page
    assert_clean_load(seen, path)
    assert page.evaluate("typeof window.__pwned") == "undefined" and seen.dialogs == []
    assert count(page, "script") == 1 and count(page, "img, svg svg") == 0
    text = page.inner_text("#s1-1 .sentcopy")
    assert f"APPEND {MAILBOX} (UID 12, OK)" in text
    assert "Message-ID " + MARKUP_ID.replace("\u202e", "\\u202e") in text
    assert f"{RCPT}: not in RCPT TO, not in the sent headers, {KEPT}" in text
