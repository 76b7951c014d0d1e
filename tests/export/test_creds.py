"""mailsniff creds: one row per distinct credential (RFC 4954, 4616, 2195, 1939)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mailsniff.model import AuthAttempt, Protocol
from mailsniff.render.creds import CredentialTable
from tests.cli_runner import PCAPS, run_cli
from tests.e2e.synth import Conn, frames, interleave, tcp_segments, write_pcap
from tests.export.captures import smtp_steps
from tests.export.schemas import validated
from tests.factories import make_session


def creds_json(capture: Path, *extra: str) -> list[dict[str, Any]]:
    proc = run_cli("creds", str(capture), "--json", *extra)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return [validated(json.loads(line), "creds") for line in proc.stdout.splitlines()]


def test_creds_lists_the_seed_credentials_once_each_with_outcome(tmp_path: Path) -> None:
    rows = creds_json(PCAPS / "seed-telnet.pcap")
    assert [
        (r["protocol"], r["server"], r["mechanism"], r["username"], r["password"]) for r in rows
    ] == [
        ("smtp", {"ip": "202.108.5.81", "port": 25}, "LOGIN", "crazywill", "mypassword"),
        ("pop3", {"ip": "202.108.5.104", "port": 110}, "USER", "crazywill", "mypassword"),
    ]
    smtp, pop3 = rows
    # typed without base64 and refused, then in base64 and accepted: one credential, worked
    assert (smtp["count"], smtp["succeeded"], smtp["failed"], smtp["worked"]) == (2, 1, 1, True)
    assert smtp["first_seen"] == "2006-07-03T13:07:25.825830Z"
    assert smtp["last_seen"] == "2006-07-03T13:07:35.795190Z"
    assert (pop3["count"], pop3["worked"]) == (1, True)


def test_creds_deduplicates_across_sessions_and_keeps_distinct_servers(tmp_path: Path) -> None:
    steps = smtp_steps([b"Subject: x\r\n\r\ny\r\n"], login=("alice", "wonderland"))
    conns = [
        Conn(client_port=40001),
        Conn(client_port=40002),
        Conn(client_port=40003, server_ip="198.51.100.7"),
    ]
    capture = write_pcap(
        tmp_path / "three.pcap", frames(interleave([tcp_segments(steps, c) for c in conns]))
    )
    rows = creds_json(capture)
    assert [(r["server"]["ip"], r["count"]) for r in rows] == [
        ("202.108.5.81", 2),
        ("198.51.100.7", 1),
    ]
    assert all(r["password"] == "wonderland" and r["worked"] is True for r in rows)


def test_creds_shows_challenge_and_response_for_cram_md5() -> None:
    session = make_session(Protocol.SMTP, start_ns=5, end_ns=9)
    for ts, challenge in ((7, "<1@x>"), (8, "<2@x>"), (9, "<2@x>")):
        session.auth.append(
            AuthAttempt(
                "CRAM-MD5",
                username="tim",
                challenge=challenge,
                response="b913a602c7eda7a495b4e6e7334d3890",
                success=False,
                ts_ns=ts,
            )
        )
    session.auth.append(AuthAttempt("LOGIN", cancelled=True, ts_ns=9))  # revealed nothing
    table = CredentialTable()
    table.add_session(session)
    rows = table.rows()
    assert [(r.challenge, r.count, r.worked, r.first_ns, r.last_ns) for r in rows] == [
        ("<1@x>", 1, False, 7, 7),
        ("<2@x>", 2, False, 8, 9),
    ]
    assert all(r.password is None for r in rows)


def test_creds_table_on_the_console_names_each_credential() -> None:
    proc = run_cli("creds", str(PCAPS / "pipelining-bdat.pcap"))
    assert proc.returncode == 0, proc.stderr
    assert "Credentials (1)" in proc.stdout
    for text in ("PLAIN", "alice", "wonderland", "yes"):
        assert text in proc.stdout


def test_creds_on_unreadable_input_is_one_error_line(tmp_path: Path) -> None:
    bogus = tmp_path / "not.pcap"
    bogus.write_bytes(b"this is not a capture")
    proc = run_cli("creds", str(bogus))
    assert proc.returncode == 3
    assert proc.stderr.startswith("mailsniff: error:")
    assert "Traceback" not in proc.stderr
