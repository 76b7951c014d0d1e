"""The Sent copy: an SMTP transaction joined with the IMAP APPEND of the same message."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from mailsniff.analysis.sent_copy import (
    Candidate,
    CopySide,
    SentCopies,
    SentCopyIndex,
    _unpack,
    candidates,
    pack,
)
from mailsniff.analysis.summary import Summary
from mailsniff.capture.reader import open_capture
from mailsniff.pipeline import Pipeline
from tests.cli_runner import PCAPS, REPO, run_cli
from tests.e2e import synth
from tests.jsonschema_check import validate_lines

# No Message-ID: the two are matched by the body. The client sent To + Cc + Bcc, hid the Bcc in
# what it sent, and dropped it from its Sent copy as well; the copy also lists an address that
# was never a recipient.
BODY = b"Meet at noon.\r\n"
SENT = b"From: bob@example.net\r\nTo: carol@example.com\r\nCc: erin@example.com\r\n"
SENT += b"Subject: lunch\r\n\r\n" + BODY
COPY = b"From: bob@example.net\r\nTo: carol@example.com\r\nCc: erin@example.com\r\n"
COPY += b"Cc: frank@example.com\r\nSubject: lunch\r\nX-Mailer: test\r\n\r\n" + BODY

SMTP_STEPS = [
    ("s", b"220 mx.example.com ESMTP\r\n"),
    ("c", b"EHLO client\r\n"),
    ("s", b"250 mx.example.com\r\n"),
    ("c", b"MAIL FROM:<bob@example.net>\r\n"),
    ("s", b"250 OK\r\n"),
    ("c", b"RCPT TO:<carol@example.com>\r\n"),
    ("s", b"250 OK\r\n"),
    ("c", b"RCPT TO:<erin@example.com>\r\n"),
    ("s", b"250 OK\r\n"),
    ("c", b"RCPT TO:<dave@example.com>\r\n"),
    ("s", b"250 OK\r\n"),
    ("c", b"DATA\r\n"),
    ("s", b"354 go on\r\n"),
    ("c", SENT + b".\r\n"),
    ("s", b"250 queued\r\n"),
    ("c", b"QUIT\r\n"),
    ("s", b"221 bye\r\n"),
]
IMAP_STEPS = [
    ("s", b"* OK [CAPABILITY IMAP4rev1 LITERAL+] ready\r\n"),
    ("c", b"a1 LOGIN bob pw\r\n"),
    ("s", b"a1 OK Logged in\r\n"),
    ("c", b"a2 APPEND Sent (\\Seen) {%d+}\r\n" % len(COPY) + COPY + b"\r\n"),
    ("s", b"a2 OK [APPENDUID 7 12] Append completed.\r\n"),
    ("c", b"a3 LOGOUT\r\n"),
    ("s", b"* BYE\r\na3 OK bye\r\n"),
]


def capture(tmp_path: Path, imap_first: bool) -> Path:
    smtp = synth.tcp_segments(SMTP_STEPS, synth.Conn(client_port=40001, server_port=587))
    imap = synth.tcp_segments(IMAP_STEPS, synth.Conn(client_port=40002, server_port=143))
    segs = imap + smtp if imap_first else smtp + imap
    return synth.write_pcap(tmp_path / "sent.pcap", synth.frames(segs))


def records(path: Path, *extra: str) -> list[dict[str, Any]]:
    proc = run_cli("read", str(path), "--json", *extra)
    assert proc.returncode == 0, proc.stderr
    return validate_lines(proc.stdout)


def test_matched_by_body_when_there_is_no_message_id_whatever_ends_first(tmp_path: Path) -> None:
    path = capture(tmp_path, imap_first=True)
    out = records(path)
    imap, smtp, link, summary = out
    assert (imap["protocol"], smtp["protocol"], link["type"]) == ("imap", "smtp", "sent_copy")
    # The SMTP record is written second: it names the APPEND; the IMAP one could not yet.
    assert smtp["transactions"][0]["sent_copy"] == [
        {"session": imap["id"], "uid": imap["uid"], "message": 0}
    ]
    assert "sent_copy" not in imap["messages"][0]
    assert link["matched_by"] == "body-sha256" and not link["identical"]
    assert link["smtp"] == {"session": smtp["id"], "uid": smtp["uid"], "transaction": 0}
    assert (link["imap"]["mailbox"], link["imap"]["imap_uid"], link["imap"]["outcome"]) == (
        "Sent",
        12,
        "OK",
    )
    texts = [r["text"] for r in link["recipients"]]
    assert texts == [
        "To carol@example.com: in RCPT TO, in the sent headers as To, "
        "the same in the Sent copy (To)",
        "Cc erin@example.com: in RCPT TO, in the sent headers as Cc, "
        "the same in the Sent copy (Cc)",
        "Bcc dave@example.com: in RCPT TO, not in the sent headers, not in the Sent copy",
        "Cc frank@example.com: not in RCPT TO, not in the sent headers, as Cc in the Sent copy",
    ]
    assert summary["sent_copies"] == 1

    # The other order: the IMAP record comes second and names the transaction.
    imap2, smtp2 = [r for r in records(capture(tmp_path, imap_first=False)) if "protocol" in r][
        ::-1
    ]
    assert imap2["messages"][0]["sent_copy"] == [
        {"session": smtp2["id"], "uid": smtp2["uid"], "transaction": 0}
    ]
    assert "sent_copy" not in smtp2["transactions"][0]


def test_jobs_give_the_same_lines(tmp_path: Path) -> None:
    path = capture(tmp_path, imap_first=False)
    one = run_cli("read", str(path), "--json", "--jobs", "1")
    two = run_cli("read", str(path), "--json", "--jobs", "2")
    assert one.returncode == two.returncode == 0
    assert one.stdout == two.stdout and '"type":"sent_copy"' in one.stdout


def test_console_shows_the_comparison_in_both_sessions(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mailsniff", "read", str(capture(tmp_path, imap_first=True))],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "COLUMNS": "200"},
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "Sent copy of transaction 1: filed by session 1, APPEND Sent (UID 12, OK)" in out
    assert "Sent copy session 1, APPEND Sent (UID 12, OK): sent by session 2, transaction 1" in out
    assert out.count("dave@example.com: in RCPT TO, not in the sent headers") == 2
    assert "sent copies" in out


def test_the_index_is_bounded_and_links_each_pair_once(tmp_path: Path) -> None:
    with open_capture(str(capture(tmp_path, imap_first=True))) as reader:
        imap, smtp = Pipeline().run(reader)
    index = SentCopyIndex(max_candidates=1)
    assert index.add(candidates(imap)) == []
    (link,) = index.add(candidates(smtp))
    assert (link.smtp.session, link.imap.session) == (smtp.id, imap.id)
    # a second APPEND of another message pushes the first out of the bounded index
    other = candidates(imap)[0]
    index.add([type(other)(other.side, other.kind, "another-key", (), other.headers)])
    assert index.forgotten == 1
    assert index.add(candidates(smtp)) == []


def test_session_filter_keeps_the_link_of_the_session_shown(tmp_path: Path) -> None:
    path = capture(tmp_path, imap_first=True)  # session 1 IMAP, session 2 SMTP
    (imap, link, summary) = records(path, "--session", "1")
    assert (imap["id"], link["type"], summary["sent_copies"]) == (1, "sent_copy", 1)
    assert link["smtp"]["session"] == 2  # named, although not shown


def test_a_run_counts_each_link_once_and_keeps_it_for_both_sessions(tmp_path: Path) -> None:
    with open_capture(str(capture(tmp_path, imap_first=True))) as reader:
        imap, smtp = Pipeline().run(reader)
    summary = Summary()
    run = SentCopies(summary, keep=True)
    assert run.session_done(imap) == []
    (link,) = run.session_done(smtp)
    assert summary.sent_copies == 1
    assert run.of(imap.id) == run.of(smtp.id) == [link]
    # --session 1: the link of the IMAP session shown is counted; none when neither is shown
    only_imap = SentCopies(Summary(), shown=frozenset({imap.id}))
    only_imap.session_done(imap), only_imap.session_done(smtp)
    assert (only_imap.summary.sent_copies, only_imap.of(imap.id)) == (1, ())  # not kept
    neither = SentCopies(Summary(), shown=frozenset({99}), keep=True)
    neither.session_done(imap), neither.session_done(smtp)
    assert (neither.summary.sent_copies, neither.by_session) == (0, {})


def test_plain_output_carries_the_link_and_the_count_of_the_console_and_json() -> None:
    """One count, from analysis: --plain, --json and the console agree on the mutt capture."""
    path = str(PCAPS / "sent-copy-mutt.pcap")
    plain = run_cli("read", path, "--plain")
    assert plain.returncode == 0, plain.stderr
    lines = [line.split("\t") for line in plain.stdout.splitlines()]
    copies = [r for r in lines if r[0] == "sent_copy"]
    assert [r[:4] for r in copies] == [
        ["sent_copy", "1", "t1", "copy=2/m1"],
        ["sent_copy", "2", "m1", "sent=1/t1"],
    ]
    assert "bytes=differ" in copies[0] and "mailbox=Sent" in copies[0]
    rcpts = [r for r in lines if r[0] == "sent_copy_rcpt" and r[1] == "1"]
    assert rcpts[-1] == [
        "sent_copy_rcpt",
        "1",
        "t1",
        "dave@example.com",
        "role=Bcc",
        "envelope=accepted",
        "sent_headers=-",
        "sent_copy_headers=Bcc",
    ]
    [summary] = [r for r in lines if r[0] == "summary"]
    assert "sent_copies=1" in summary
    assert records(PCAPS / "sent-copy-mutt.pcap")[-1]["sent_copies"] == 1
    console = run_cli("read", path, "--no-plain")
    assert "sent copies     1 (SMTP message filed by IMAP)" in console.stdout


def test_a_packed_candidate_reads_back_whole_under_its_final_session_id() -> None:
    """The index keeps candidates packed as plain tuples: every field of both records must come
    back (a field added to CopySide or Candidate and not packed would come back as its
    default, and this fails), with the session numbered by the parent."""
    side = CopySide(
        "imaps", 7, "Cuid", 3, mailbox="Sent", imap_uid=42, flags=("\\Seen",), outcome="OK",
        sha256="ab" * 32, size=1234,
    )  # fmt: skip
    cand = Candidate(
        side, "message-id", "x@y", (("a@b", "accepted"),), {"To": [("a@b", "A")]}, "s@t"
    )
    blank = CopySide("", 0, None, 0)
    others = [f.name for f in fields(CopySide) if f.name != "session"]
    assert all(getattr(side, name) != getattr(blank, name) for name in others)
    (packed,) = pack([cand])
    assert packed[:3] == ("imap", "message-id", "x@y")
    assert _unpack(7, packed[3]) == cand
    assert _unpack(9, packed[3]) == replace(cand, side=replace(side, session=9))
