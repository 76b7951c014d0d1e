"""Public captures with a Zeek smtp.log beside them: same envelopes, headers and subjects."""

from __future__ import annotations

from email.utils import getaddresses
from pathlib import Path
from typing import Any

import pytest

from tests.cli_runner import read_json
from tests.paths import PUBLIC

ZEEK = PUBLIC / "zeek"
LOGS = sorted(ZEEK.glob("*.smtp.log"))


def zeek_rows(log: Path) -> list[dict[str, str]]:
    fields: list[str] = []
    rows = []
    for line in log.read_text().splitlines():
        if line.startswith("#fields"):
            fields = line.split("\t")[1:]
        elif line and not line.startswith("#"):
            rows.append(dict(zip(fields, line.split("\t"), strict=True)))
    return rows


def zeek_set(value: str) -> set[str]:
    return set() if value in ("-", "(empty)") else set(value.split(","))


def header_addresses(value: str) -> set[str]:
    if value in ("-", "(empty)"):
        return set()
    # Zeek joins a multi-valued header with ","; getaddresses copes with both.
    return {a.lower() for _, a in getaddresses([value]) if a}


def capture_for(log: Path) -> Path:
    stem = log.name.split(".zeek.")[0]
    for suffix in (".pcap", ".pcapng"):
        if (ZEEK / (stem + suffix)).exists():
            return ZEEK / (stem + suffix)
    raise FileNotFoundError(stem)


def msg_addresses(message: dict[str, Any] | None, field: str) -> set[str]:
    if message is None:
        return set()
    return {a["address"].lower() for a in message[field] if a["address"]}


def test_there_are_zeek_baselines() -> None:
    assert len(LOGS) >= 10


@pytest.mark.parametrize("log", LOGS, ids=[log.name.split(".zeek.")[0] for log in LOGS])
def test_matches_zeek_smtp_log(log: Path) -> None:
    sessions = read_json(capture_for(log))
    by_conn: dict[tuple[str, int, str, int], dict[str, Any]] = {
        (s["client"]["ip"], s["client"]["port"], s["server"]["ip"], s["server"]["port"]): s
        for s in sessions
        if s["protocol"] == "smtp"
    }
    for row in zeek_rows(log):
        conn = (row["id.orig_h"], int(row["id.orig_p"]), row["id.resp_h"], int(row["id.resp_p"]))
        assert conn in by_conn, f"no session for {conn}"
        session = by_conn[conn]
        if row["helo"] != "-":
            assert session["helo"] == row["helo"]
        if row["tls"] == "T":
            assert session["tls"] is True
        if row["mailfrom"] == "-":
            continue  # Zeek logs transactions without MAIL FROM; we report per MAIL FROM
        rcpts = zeek_set(row["rcptto"])
        candidates = [
            t
            for t in session["transactions"]
            if t["mail_from"] == row["mailfrom"] and (not rcpts or set(t["rcpt_to"]) == rcpts)
        ]
        assert candidates, f"no transaction MAIL FROM {row['mailfrom']} RCPT {rcpts}"
        tx = candidates[0] if len(candidates) == 1 else None
        if tx is None:
            # several transactions share the envelope (one-side-only capture): pick by subject
            subject = None if row["subject"] == "-" else row["subject"]
            picked = [t for t in candidates if t["message"] and t["message"]["subject"] == subject]
            assert picked, f"no transaction with subject {subject!r}"
            tx = picked[0]
        message = tx["message"]
        for zeek_field, ours in (("from", "from"), ("to", "to"), ("cc", "cc")):
            expected = header_addresses(row[zeek_field])
            if expected:
                assert msg_addresses(message, ours) == expected, zeek_field
        if row["subject"] not in ("-", "(empty)") and "=?" not in row["subject"]:
            assert message is not None and message["subject"] == row["subject"]
        if row["msg_id"] not in ("-", "(empty)"):
            assert message is not None and message["message_id"] == row["msg_id"]
