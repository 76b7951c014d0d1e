"""Timestamps outside years 1-9999 (a damaged or forged pcapng) are carried, never fatal."""

from __future__ import annotations

import json
import mailbox
import struct
from pathlib import Path

from mailsniff.export.mbox import from_line
from mailsniff.render.text import format_timestamp
from tests.cli_runner import run_cli
from tests.e2e.synth import Conn, frames, tcp_segments
from tests.export.captures import smtp_steps
from tests.jsonschema_check import validate_lines

NORMAL_S = 1_700_000_000
#: Past 9999-12-31 (the first case the issue reported) and 2**62 s (the mbox case).
FAR_S = (253_402_300_800 + 86_400, 2**62)


def _block(btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    return struct.pack("<II", btype, len(body) + 12) + body + struct.pack("<I", len(body) + 12)


def pcapng_seconds(path: Path, sessions: list[tuple[int, list[bytes]]]) -> Path:
    """pcapng with if_tsresol 0 (whole seconds), so a 64-bit timestamp reaches 2**64 s."""
    shb = _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    idb = _block(1, struct.pack("<HHI", 1, 0, 0) + struct.pack("<HHB3x", 9, 1, 0) + bytes(4))
    parts = [shb, idb]
    for start, packets in sessions:
        for i, frame in enumerate(packets):
            ts = start + i
            head = struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, len(frame), len(frame))
            parts.append(_block(6, head + frame))
    path.write_bytes(b"".join(parts))
    return path


def message(n: int) -> bytes:
    return f"From: a@example.com\r\nSubject: m{n}\r\n\r\nbody {n}\r\n".encode()


def capture(tmp_path: Path, far: int) -> Path:
    """Session 1 at a normal time, session 2 at `far` seconds, session 3 normal again."""
    sessions = []
    for n, start in enumerate((NORMAL_S, far, NORMAL_S + 10), 1):
        steps = smtp_steps([message(n)], login=("user", f"pw{n}"))
        conn = Conn(client_port=40000 + n)
        sessions.append((start, frames(tcp_segments(steps, conn))))
    return pcapng_seconds(tmp_path / f"far{far}.pcapng", sessions)


def test_format_timestamp_is_iso_in_range_and_marked_raw_outside() -> None:
    assert format_timestamp(0) == "1970-01-01T00:00:00.000000Z"
    assert format_timestamp(253_402_300_799_999_999_999) == "9999-12-31T23:59:59.999999Z"
    assert format_timestamp(-62_135_596_800 * 10**9) == "0001-01-01T00:00:00.000000Z"
    assert format_timestamp(253_402_300_800 * 10**9 + 5000) == "@253402300800.000005"
    assert format_timestamp(2**62 * 10**9, micro=False) == f"@{2**62}"
    assert format_timestamp(-62_135_596_801 * 10**9) == "@-62135596801.000000"


def test_from_line_for_a_time_no_date_can_hold() -> None:
    # mbox readers parse an asctime date: the epoch stands in (the capture time is in the
    # X-Mailsniff-Time header, see test_far_timestamps_reach_every_output).
    assert from_line("a@b", 2**62 * 10**9) == b"From a@b Thu Jan  1 00:00:00 1970\n"


def test_far_timestamps_reach_every_output(tmp_path: Path) -> None:
    for far in FAR_S:
        cap = capture(tmp_path, far)
        out = tmp_path / f"x{far}"
        proc = run_cli("read", str(cap), "--json", "--extract", str(out))
        assert proc.returncode == 0, proc.stderr
        records = validate_lines(proc.stdout)  # the schema accepts the raw form
        sessions = [r for r in records if r["type"] == "session"]
        assert [r["type"] for r in records][-1] == "summary"
        assert len(sessions) == 3
        odd = [s for s in sessions if s["start"].startswith("@")]
        assert [s["start"] for s in odd] == [f"@{far}.000000"]
        assert any("timestamp outside years 1-9999" in a for a in odd[0]["anomalies"])
        assert all(not s["anomalies"] for s in sessions if s not in odd)
        manifest = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
        assert len(manifest) == 3 == len(list(out.glob("*.eml")))
        assert sorted(m["time"][:1] for m in manifest) == ["2", "2", "@"]

        proc = run_cli("creds", str(cap), "--json")
        assert proc.returncode == 0, proc.stderr
        creds = [json.loads(x) for x in proc.stdout.splitlines()]
        assert {c["first_seen"][:1] for c in creds} == {"2", "@"} and len(creds) == 3

        proc = run_cli("creds", str(cap))
        assert proc.returncode == 0, proc.stderr
        assert f"@{str(far)[:8]}" in proc.stdout  # first / last seen (AUTH comes a bit later)

        proc = run_cli("read", str(cap))
        assert proc.returncode == 0, proc.stderr
        assert f"@{far}" in proc.stdout and "timestamp outside" in proc.stdout

        box = tmp_path / f"{far}.mbox"
        proc = run_cli("read", str(cap), "--mbox", str(box), "--summary")
        assert proc.returncode == 0, proc.stderr
        got = list(mailbox.mbox(box))
        assert [m["Subject"] for m in got] == ["m1", "m2", "m3"]
        assert got[1]["X-Mailsniff-Time"].startswith(f"@{str(far)[:8]}")
        assert got[0].get_from().endswith("2023")  # a from_line the readers parse
        assert got[1].get_from().endswith("Thu Jan  1 00:00:00 1970")
