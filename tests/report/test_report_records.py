"""The record fields the report reads: RCPT roles, findings tied to their transaction or
retrieved message, first and last packet times (docs/jsonl.md)."""

from __future__ import annotations

from tests.cli_runner import PCAPS, read_json, run_cli
from tests.jsonschema_check import validate_lines


def test_rcpt_roles_say_to_cc_bcc_and_rejected() -> None:
    (session,) = read_json(PCAPS / "cc-bcc-smtplib.pcap")
    tx = session["transactions"][0]
    assert [(r["address"], r["role"]) for r in tx["rcpts"]] == [
        ("bob@example.com", "to"),
        ("carol@example.com", "cc"),
        ("dave@example.com", "bcc"),
    ]
    (session,) = read_json(PCAPS / "pipelining-bdat.pcap")
    roles = {r["address"]: r["role"] for tx in session["transactions"] for r in tx["rcpts"]}
    assert roles["nobody@example.com"] == "rejected"
    assert roles["bob@example.com"] == "to"


def test_findings_name_their_transaction_or_retrieved_message() -> None:
    smtp, pop3, _ = sorted(read_json(PCAPS / "seed-telnet.pcap"), key=lambda s: s["id"])
    where = [(f["kind"], f["transaction"], f["message"]) for f in smtp["findings"]]
    assert ("sender-rejected", 1, None) in where
    assert ("from-mismatch", 2, None) in where
    assert ("cleartext-credentials", None, None) in where
    where = [(f["kind"], f["transaction"], f["message"]) for f in pop3["findings"]]
    assert ("from-mismatch", None, 1) in where and ("from-mismatch", None, 2) in where


def test_summary_gives_first_and_last_packet_times() -> None:
    proc = run_cli("read", str(PCAPS / "seed-telnet.pcap"), "--json")
    assert proc.returncode == 0, proc.stderr
    summary = validate_lines(proc.stdout)[-1]
    assert summary["first_packet"] == "2006-07-03T13:07:18.000000Z"
    assert summary["last_packet"] == "2011-05-17T02:36:46.445790Z"
