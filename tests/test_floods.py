"""Bounded memory under floods: flows evicted under pressure, lazy end-of-capture flush, the
console view's spilled sessions, the memory one half-open connection costs."""

from __future__ import annotations

import io
import json
import struct
import tracemalloc
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from rich.console import Console

from mailsniff.capture.frame import Frame
from mailsniff.capture.reader import open_capture
from mailsniff.commands.read import ReadOptions, Tally, read_capture, summarise
from mailsniff.errors import MailsniffError
from mailsniff.export.exporter import Exporter, ExportOptions
from mailsniff.model import AnomalyKind, Session
from mailsniff.parallel import drive
from mailsniff.pipeline import Pipeline
from mailsniff.reassembly import Reassembler
from mailsniff.render import console as console_render
from mailsniff.render.jsonl import session_record
from tests.paths import EQUIVALENTS, PCAPS, PUBLIC

_ETH = b"\x00\x0f\xe2\x8c\x71\x04" + b"\x00\x0c\x29\x5b\x3d\xa1" + b"\x08\x00"
_SYN, _ACK, _PSH, _FIN = 0x02, 0x10, 0x08, 0x01
_SERVER = bytes([192, 0, 2, 25])
_SECOND = 1_000_000_000


def _frame(
    ts: int,
    src: bytes,
    dst: bytes,
    sport: int,
    dport: int,
    seq: int,
    ack: int,
    flags: int,
    payload: bytes = b"",
) -> Frame:
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 0x50, flags, 65535, 0, 0)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40 + len(payload), 0, 0x4000, 64, 6, 0, src, dst)
    data = _ETH + ip + tcp + payload
    return Frame(ts_ns=ts, linktype=1, data=data, wirelen=len(data))


class _Conn:
    """One client's connection to the server's port 25, its sequence numbers kept as it goes."""

    def __init__(self, i: int) -> None:
        self.ip = struct.pack("!I", 0x0A000000 + i // 50000)
        self.port = 10000 + i % 50000
        self.cs, self.ss = (i * 7919) & 0xFFFFFFFF, (i * 104729 + 5) & 0xFFFFFFFF

    def c(self, ts: int, flags: int, data: bytes = b"") -> Frame:
        f = _frame(ts, self.ip, _SERVER, self.port, 25, self.cs, self.ss, flags, data)
        self.cs = (self.cs + len(data) + (1 if flags & (_SYN | _FIN) else 0)) & 0xFFFFFFFF
        return f

    def s(self, ts: int, flags: int, data: bytes = b"") -> Frame:
        f = _frame(ts, _SERVER, self.ip, 25, self.port, self.ss, self.cs, flags, data)
        self.ss = (self.ss + len(data) + (1 if flags & (_SYN | _FIN) else 0)) & 0xFFFFFFFF
        return f

    def opening(self, ts: int, helo: bytes = b"EHLO client.example\r\n") -> list[Frame]:
        """Handshake, greeting, the client's hello: a mail connection left open."""
        return [
            self.c(ts, _SYN),
            self.s(ts + 1, _SYN | _ACK),
            self.c(ts + 2, _ACK),
            self.s(ts + 3, _PSH | _ACK, b"220 mx.example.com ESMTP\r\n"),
            self.c(ts + 4, _PSH | _ACK, helo),
        ]

    def closing(self, ts: int) -> list[Frame]:
        """QUIT, 221, FIN both ways."""
        return [
            self.c(ts, _PSH | _ACK, b"QUIT\r\n"),
            self.s(ts + 1, _PSH | _ACK, b"221 bye\r\n"),
            self.s(ts + 2, _FIN | _ACK),
            self.c(ts + 3, _FIN | _ACK),
            self.s(ts + 4, _ACK),
        ]


def _syns(n: int) -> Iterator[Frame]:
    """A port-25 scan: one unanswered SYN from each of `n` client ports."""
    for i in range(n):
        yield _Conn(i).c(i * 1000, _SYN)


def _pipeline(max_flows: int, max_half_open: int = 100_000) -> Pipeline:
    return Pipeline(
        reassembler=Reassembler(
            server_ports=frozenset({25, 110}), max_flows=max_flows, max_half_open=max_half_open
        )
    )


# -- eviction -------------------------------------------------------------------------------


def test_a_flow_evicted_with_data_is_reported_with_a_note_and_continues_midstream() -> None:
    conns = [_Conn(i) for i in range(3)]
    frames: list[Frame] = []
    for n, conn in enumerate(conns):  # three open mail connections, the first idle the longest
        frames += conn.opening(n * _SECOND, helo=f"EHLO host{n}.example\r\n".encode())
    frames += conns[0].closing(10 * _SECOND)  # the evicted one goes on afterwards
    pipeline = _pipeline(max_flows=2)
    sessions = list(pipeline.run(frames))

    evicted = [s for s in sessions if s.close_reason == "evicted"]
    # The first connection, idle the longest, made room for the third; its later packets for
    # themselves (a new flow), evicting the second in turn: nothing that carried data is lost.
    assert [s.client.port for s in evicted] == [conns[0].port, conns[1].port]
    first = evicted[0]
    assert first.helo == "host0.example"  # what it carried is reported, not dropped
    assert evicted[1].helo == "host1.example"
    assert any("evicted under memory pressure" in a.text for a in first.anomalies)
    assert not first.complete
    later = [s for s in sessions if s.client.port == conns[0].port and s is not first]
    assert len(later) == 1 and later[0].close_reason == "fin"  # its later packets: new session
    assert later[0].client_bytes == len(b"QUIT\r\n")
    assert [s.helo for s in sessions if s.close_reason == "eof"] == ["host2.example"]
    assert pipeline.reassembler.evicted_with_data == 2
    assert summarise(Tally(), pipeline, [])["flows_evicted"] == {
        "without_data": 0,
        "with_data": 2,
    }


def test_half_open_flows_are_evicted_first_and_counted() -> None:
    data_conn = _Conn(99999)
    frames = data_conn.opening(0)
    frames += list(_syns(200))
    pipeline = _pipeline(max_flows=16)
    sessions = list(pipeline.run(frames))

    reassembler = pipeline.reassembler
    assert reassembler.evicted_with_data == 0  # the connection with data outlived 200 SYNs
    assert reassembler.evicted_empty == 201 - len(sessions)
    assert len(sessions) <= 16
    [mail] = [s for s in sessions if s.helo == "client.example"]
    assert mail.close_reason == "eof"
    assert summarise(Tally(), pipeline, [])["flows_evicted"]["without_data"] > 180


def test_memory_of_a_syn_flood_is_bounded_by_the_flow_limit() -> None:
    """20,000 half-open connections, at most 2,000 tracked: the peak stays near 2,000's worth
    (tracking all of them took about 27 MB; ended flows left to the cyclic collector, 12 MB)."""
    pipeline = _pipeline(max_flows=2000)
    tracemalloc.start()
    try:
        for frame in _syns(20000):
            pipeline.feed(frame)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert pipeline.reassembler.open_flows <= 2000
    assert peak < 4 * 1024 * 1024, peak


def test_a_half_open_flow_costs_about_a_kilobyte() -> None:
    pipeline = _pipeline(max_flows=100000)
    frames = list(_syns(20000))
    tracemalloc.start()
    try:
        for frame in frames:
            pipeline.feed(frame)
        current, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert pipeline.reassembler.open_flows == 20000
    # About 800 bytes (flow, two directions, its key, one dict entry); 1,200 with two keys, an
    # open-flows entry and a tuple per address; about 1,500 before the directions and the flow
    # shared empty buffers until they need their own.
    assert current / 20000 < 1300, current / 20000


def _scan_around_a_late_handshake(syns: int) -> tuple[_Conn, _Conn, list[Frame]]:
    """A mail connection, then one whose SYN-ACK comes only after a scan of `syns` SYNs,
    then both go on and close."""
    mail, late = _Conn(49998), _Conn(49999)  # ports apart from the scan's
    frames = mail.opening(0)
    frames.append(late.c(1000, _SYN))
    frames += [_Conn(i).c(2000 + i, _SYN) for i in range(syns)]
    ts = 10 * _SECOND
    frames += [
        late.s(ts, _SYN | _ACK),
        late.c(ts + 1, _ACK),
        late.s(ts + 2, _PSH | _ACK, b"220 mx.example.com ESMTP\r\n"),
        late.c(ts + 3, _PSH | _ACK, b"EHLO late.example\r\n"),
    ]
    frames += late.closing(ts + 10) + mail.closing(ts + 20)
    return mail, late, frames


def test_a_scan_past_the_half_open_bound_forgets_only_the_oldest_bare_syns() -> None:
    """Connections seen only by their SYN are bounded on their own: a scan of 500 SYNs with a
    bound of 64 keeps at most 64 of them, never touches a connection that carried data, and a
    connection whose SYN-ACK comes after its SYN was forgotten starts again from the SYN-ACK."""
    mail, late, frames = _scan_around_a_late_handshake(500)
    pipeline = Pipeline(
        reassembler=Reassembler(server_ports=frozenset({25}), max_flows=100000, max_half_open=64)
    )
    sessions: list[Session] = []
    most = 0
    for frame in frames:
        pipeline.feed(frame)
        sessions += pipeline.drain()
        most = max(most, pipeline.reassembler.open_flows)
    sessions += pipeline.finish_each()

    reassembler = pipeline.reassembler
    assert most <= 64 + 2  # the bare SYNs, the mail connection, the one being opened
    assert reassembler.evicted_with_data == 0
    assert reassembler.evicted_empty >= 500 - 64
    by_port = {s.client.port: s for s in sessions}
    first = by_port[mail.port]
    assert first.close_reason == "fin" and first.complete and first.helo == "client.example"
    again = by_port[late.port]  # its SYN was forgotten; the SYN-ACK opened it again
    assert again.close_reason == "fin" and again.handshake_seen and again.helo == "late.example"
    assert not any(a.kind is AnomalyKind.EVICTED for s in sessions for a in s.anomalies)
    bare = [s for s in sessions if s.client_bytes == s.server_bytes == 0]
    assert 0 < len(bare) <= 64  # the scan's last SYNs, reported at the end as before
    # every flow (the scan, the mail connection, the late one twice) reported or forgotten
    assert reassembler.evicted_empty + len(sessions) == 503


def test_a_scan_past_the_half_open_bound_keeps_the_one_process_ids_with_jobs(
    tmp_path: Path,
) -> None:
    """Past the bound of bare SYNs (16,384 in each --jobs worker), the forgotten connections are
    dropped from the parent's numbering as they are forgotten: every session keeps the id one
    process gives it (the flows' order), and the mail sessions' records are the same."""
    from mailsniff.limits import MAX_HALF_OPEN

    syns = 2 * MAX_HALF_OPEN + 4000  # past the bound in each of two workers
    mail, late, frames = _scan_around_a_late_handshake(syns)
    path = tmp_path / "scan.pcap"
    _write_pcap(path, frames)
    outputs = []
    for jobs in ("1", "2"):
        records = [json.loads(line) for line in _read_json(path, jobs).splitlines()]
        summary = records[-1]
        sessions = {r["client"]["port"]: r for r in records if r["type"] == "session"}
        assert summary["flows_evicted"]["with_data"] == 0
        assert summary["flows_evicted"]["without_data"] >= 4000
        assert summary["sessions"] == len(sessions) <= MAX_HALF_OPEN * int(jobs) + 3
        # flows are numbered as they start: the mail connection, the late one's SYN, the scan
        # (scan connection i from port 10000 + i), then the late one again from its SYN-ACK
        assert sessions[mail.port]["id"] == 1 and sessions[late.port]["id"] == syns + 3
        for port, record in sessions.items():
            if port not in (mail.port, late.port):
                assert record["id"] == port - 10000 + 3 and record["client_bytes"] == 0
        outputs.append((sessions[mail.port], sessions[late.port]))
    assert outputs[0] == outputs[1]
    assert outputs[0][1]["helo"] == "late.example"


# -- end of capture -------------------------------------------------------------------------


def test_end_of_capture_builds_and_yields_one_session_at_a_time() -> None:
    frames: list[Frame] = []
    for i in range(5):
        frames += _Conn(i).opening(i * _SECOND)
    pipeline = _pipeline(max_flows=100)
    run = pipeline.run(frames)
    first = next(run)  # every connection is still open at the end of the capture
    assert first.close_reason == "eof"
    assert pipeline.reassembler.open_flows == 4  # the others not yet ended nor built
    assert not pipeline.open_sessions or len(pipeline.open_sessions) == 4
    rest = list(run)
    assert len(rest) == 4 and pipeline.reassembler.open_flows == 0
    assert sorted(s.client.port for s in [first, *rest]) == [10000 + i for i in range(5)]


def test_one_process_read_hands_on_each_session_before_ending_the_next_connection() -> None:
    """`read --jobs 1` (parallel.drive): connections open at the end of the capture are ended
    one at a time, each session handed on before the next one is built (all were built first
    before, so 100k open connections held 100k sessions at once)."""
    frames: list[Frame] = []
    for i in range(5):
        frames += _Conn(i).opening(i * _SECOND)
    pipeline = _pipeline(max_flows=100)
    still_open: list[int] = []
    drive(pipeline, frames, lambda _session: still_open.append(pipeline.reassembler.open_flows))
    assert still_open == [4, 3, 2, 1, 0]


# -- console view ---------------------------------------------------------------------------


def _write_pcap(path: Path, frames: Iterable[Frame]) -> None:
    with path.open("wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 1))
        for fr in frames:
            f.write(
                struct.pack(
                    "<IIII", fr.ts_ns // _SECOND, fr.ts_ns % _SECOND, len(fr.data), fr.wirelen
                )
            )
            f.write(fr.data)


def _read_json(path: Path, jobs: str) -> str:
    """`read --json --jobs JOBS` of `path`, which must succeed: its standard output."""
    from tests.cli_runner import run_cli

    proc = run_cli("read", str(path), "--json", "--jobs", jobs)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _console() -> Console:
    return Console(file=io.StringIO(), width=140, record=True, color_system=None)


def test_console_view_from_spilled_sessions_equals_rendering_them_in_memory(
    tmp_path: Path,
) -> None:
    """Sessions end in another order than they start (the longest starts first, and two start at
    the same time): the report lists them by start, then id, exactly as the in-memory view did."""
    frames: list[Frame] = []
    conns = [_Conn(i) for i in range(6)]
    starts = [0, 5, 5, 2, 9, 1]
    ends = [50, 10, 30, 20, 40, 60]
    for conn, start in zip(conns, starts, strict=True):
        frames += conn.opening(start * _SECOND, helo=f"EHLO h{conn.port}.example\r\n".encode())
    for conn, end in zip(conns, ends, strict=True):
        frames += conn.closing(end * _SECOND)
    frames.sort(key=lambda f: f.ts_ns)
    path = tmp_path / "order.pcap"
    _write_pcap(path, frames)

    sessions: list[Session] = list(Pipeline(keep_transcript=True).run(frames))
    ordered = sorted(sessions, key=lambda s: (s.start_ns, s.id))
    assert [s.id for s in ordered] != [s.id for s in sessions]  # the order does change
    expected = _console()
    console_render.render_overview(expected, ordered)
    for session in ordered:
        console_render.render_session(expected, session, transcript=True)
    console_render.render_summary(expected, sessions=ordered, packets=len(frames), warnings=[])

    got = _console()
    read_capture(ReadOptions(path=str(path), transcript=True, progress=False), got, _console())
    text = got.export_text()
    assert text == expected.export_text()
    assert "Sessions (6)" in text and text.count("h10004.example") >= 2


# -- idle open sessions parked on disk ------------------------------------------------------


def _transaction(conn: _Conn, ts: int, n: int) -> list[Frame]:
    """A whole transaction with a message (MAIL, RCPT, DATA, the message, 250)."""
    message = f"From: a{n}@example.org\r\nTo: b@example.net\r\nSubject: parked {n}\r\n\r\nhi\r\n"
    steps = [
        (True, f"MAIL FROM:<a{n}@example.org>\r\n"),
        (False, "250 ok\r\n"),
        (True, "RCPT TO:<b@example.net>\r\n"),
        (False, "250 ok\r\n"),
        (True, "DATA\r\n"),
        (False, "354 go\r\n"),
        (True, message + ".\r\n"),
        (False, f"250 queued as Q{n}\r\n"),
    ]
    return [
        conn.c(ts + k, _PSH | _ACK, text.encode())
        if client
        else conn.s(ts + k, _PSH | _ACK, text.encode())
        for k, (client, text) in enumerate(steps)
    ]


def _opened(n: int, ehlo_reply: bytes) -> tuple[list[_Conn], list[Frame]]:
    """`n` connections greeted and EHLO'd one after the other, answered with `ehlo_reply`."""
    conns = [_Conn(i) for i in range(n)]
    frames: list[Frame] = []
    for i, conn in enumerate(conns):
        frames += conn.opening(i * _SECOND, helo=f"EHLO h{i}.example\r\n".encode())
        frames.append(conn.s(i * _SECOND + 5, _PSH | _ACK, ehlo_reply))
    return conns, frames


def _open_then_mail(n: int) -> list[Frame]:
    """`n` connections opened, then each sends a message, QUITs and closes."""
    conns, frames = _opened(n, b"250-mx\r\n250 PIPELINING\r\n")
    for i, conn in enumerate(conns):
        ts = (n + i) * _SECOND
        frames += _transaction(conn, ts, i)
        frames += conn.closing(ts + 8)
    return frames


def _records(sessions: Iterable[Session]) -> list[object]:
    return sorted(
        (session_record(s, transcript=True) for s in sessions), key=lambda r: str(r["id"])
    )


def test_idle_sessions_parked_on_disk_resume_where_they_stopped() -> None:
    """40 connections open at once, at most 8 sessions kept in memory: the idlest are parked
    on disk and read back at their next packet; every record (transcript included) is the
    same as with all of them in memory."""
    frames = _open_then_mail(40)

    def run(park_at: int) -> tuple[list[object], int]:
        pipeline = _pipeline(max_flows=1000)
        pipeline.keep_transcript = True
        pipeline.park_at = park_at
        most_parked, sessions = 0, []
        for k, frame in enumerate(frames):
            pipeline.feed(frame)
            sessions += pipeline.drain()
            if k % 10 == 9:
                pipeline.expire(frame.ts_ns)
                assert len(pipeline.open_sessions) <= max(park_at, 10)
                most_parked = max(most_parked, pipeline.parked_sessions)
        sessions += pipeline.finish_each()
        assert pipeline.parked_sessions == 0
        return _records(sessions), most_parked

    in_memory, parked_none = run(park_at=1000)
    parked, most_parked = run(park_at=8)
    assert parked_none == 0
    assert most_parked >= 30  # most connections were parked at some point
    assert len(parked) == 40
    assert parked == in_memory
    [one] = [r for r in parked if r["helo"] == "h7.example"]
    assert one["complete"] is True
    assert one["transactions"][0]["message"]["subject"] == "parked 7"  # type: ignore[index]


def test_memory_of_many_open_mail_connections_is_bounded_by_parking() -> None:
    """20,000 mail connections open at once (greeted, EHLO answered): with at most 1,000
    sessions in memory, about 1.5 KB each (the reassembler's state and a ticket); 4.4 KB with
    every session, handler and parser in memory (6.7 KB before the parser was made compact)."""
    frames: list[Frame] = []
    for i in range(20000):
        conn = _Conn(i)
        frames += conn.opening(i * 1000)
        frames.append(conn.s(i * 1000 + 5, _PSH | _ACK, b"250 mx\r\n"))
    pipeline = _pipeline(max_flows=100000)
    pipeline.park_at = 1000
    tracemalloc.start()
    try:
        for k, frame in enumerate(frames):
            pipeline.feed(frame)
            if k % 4096 == 4095:
                pipeline.expire(frame.ts_ns)
        current, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert pipeline.reassembler.open_flows == 20000
    assert pipeline.parked_sessions > 18000
    assert current / 20000 < 1800, current / 20000
    sessions = list(pipeline.finish_each())
    assert len(sessions) == 20000 and {s.helo for s in sessions} == {"client.example"}


def _mail_then_idle(n: int) -> list[Frame]:
    """`n` connections each send a message and stay open (idle) until all have; then all
    close: the sessions are parked while their messages wait for the manifest."""
    conns, frames = _opened(n, b"250 mx\r\n")
    for i, conn in enumerate(conns):
        frames += _transaction(conn, (n + i) * _SECOND, i)
    for i, conn in enumerate(conns):
        frames += conn.closing((3 * n + i) * _SECOND)
    return frames


@pytest.mark.parametrize("hold", [False, True], ids=["at-message-end", "held-for-filters"])
def test_messages_of_parked_sessions_are_exported_with_their_manifest_lines(
    tmp_path: Path, hold: bool
) -> None:
    """A busy tap: sessions parked on disk after their message ended (read back as new
    objects) still get every .eml, mbox entry and manifest line, the same as in memory."""
    frames = _mail_then_idle(40)

    def run(park_at: int) -> tuple[list[str], list[str], bytes, int]:
        out = tmp_path / f"p{park_at}"
        exporter = Exporter(ExportOptions(extract=out / "x", mbox=out / "all.mbox", hold=hold))
        pipeline = Pipeline(
            reassembler=Reassembler(server_ports=frozenset({25})),
            open_sink=exporter.open_sink,
        )
        pipeline.park_at = park_at
        most_parked = 0
        with exporter:
            for k, frame in enumerate(frames):
                pipeline.feed(frame)
                for session in pipeline.drain():
                    exporter.session_done(session)
                if k % 10 == 9:
                    pipeline.expire(frame.ts_ns)
                    most_parked = max(most_parked, pipeline.parked_sessions)
            for session in pipeline.finish_each():
                exporter.session_done(session)
        manifest = sorted((out / "x" / "manifest.jsonl").read_text().splitlines())
        emls = sorted(p.name for p in (out / "x").glob("*.eml"))
        return manifest, emls, (out / "all.mbox").read_bytes(), most_parked

    manifest, emls, mbox, parked_none = run(park_at=1000)
    parked_manifest, parked_emls, parked_mbox, most_parked = run(park_at=8)
    assert parked_none == 0 and most_parked >= 30
    assert len(manifest) == len(emls) == 40
    assert parked_manifest == manifest
    assert parked_emls == emls
    assert parked_mbox.count(b"\nSubject: parked ") == 40
    assert sorted(parked_mbox.split(b"\nFrom ")) == sorted(mbox.split(b"\nFrom "))


def _every_capture() -> list[Path]:
    found = [*PCAPS.glob("*.pcap*"), *PUBLIC.rglob("*.pcap*"), *EQUIVALENTS.rglob("*.pcap*")]
    return sorted(found)


def _records_of(path: Path, park_every_packet: bool) -> list[str]:
    pipeline = Pipeline(keep_transcript=True)
    if park_every_packet:
        pipeline.park_at = 0
    sessions: list[Session] = []
    with open_capture(str(path)) as reader:
        try:
            for frame in reader:
                pipeline.feed(frame)
                sessions += pipeline.drain()
                if park_every_packet:
                    pipeline.expire(frame.ts_ns)
        except MailsniffError:
            pass  # a damaged capture: the sessions up to the damage are compared
    sessions += pipeline.finish_each()
    return sorted(
        json.dumps(session_record(s, transcript=True), sort_keys=True, default=str)
        for s in sessions
    )


def test_parking_every_session_after_every_packet_changes_nothing() -> None:
    """Every shipped and public capture, with every open session parked on disk after every
    packet (read back at its next one): the same records, transcripts included, as in memory.
    A POP3 login parked while it waited for +OK lost its answer before."""
    paths = _every_capture()
    assert len(paths) >= 40
    for path in paths:
        assert _records_of(path, True) == _records_of(path, False), path


def test_sessions_parked_in_clear_and_after_starttls_resume_with_tls_where_it_began() -> None:
    """30 connections greeted and EHLO'd, all idle; then each upgrades with STARTTLS and sends
    a ClientHello; then all idle again; then each closes. With at most 6 sessions in memory,
    sessions are parked both before the upgrade (no TLS layer yet) and after it (a TLS layer
    reading them): the records are the same as in memory, and TLS is placed where it began in
    each direction's stream."""
    conns = [_Conn(i) for i in range(30)]
    hello = b"\x16\x03\x01\x00\x06\x01\x00\x00\x02\x03\x03"  # a (cut) ClientHello record
    ehlo_reply = b"250-mx\r\n250 STARTTLS\r\n"
    frames: list[Frame] = []
    for i, conn in enumerate(conns):
        frames += conn.opening(i * _SECOND)
        frames.append(conn.s(i * _SECOND + 5, _PSH | _ACK, ehlo_reply))
    greeted = len(frames)
    for i, conn in enumerate(conns):
        ts = (100 + i) * _SECOND
        frames.append(conn.c(ts, _PSH | _ACK, b"STARTTLS\r\n"))
        frames.append(conn.s(ts + 1, _PSH | _ACK, b"220 ready\r\n"))
        frames.append(conn.c(ts + 2, _PSH | _ACK, hello))
    upgraded = len(frames)
    for i, conn in enumerate(conns):
        frames += conn.closing((200 + i) * _SECOND)[2:]  # FIN both ways

    def run(park_at: int) -> tuple[list[object], int, int]:
        pipeline = _pipeline(max_flows=1000)
        pipeline.park_at = park_at
        parked_in_clear = parked_in_tls = 0
        sessions: list[Session] = []
        for k, frame in enumerate(frames):
            pipeline.feed(frame)
            sessions += pipeline.drain()
            if k % 5 == 4 or k in (greeted - 1, upgraded - 1):
                pipeline.expire(frame.ts_ns)
                if k == greeted - 1:
                    parked_in_clear = pipeline.parked_sessions
                elif k == upgraded - 1:
                    parked_in_tls = pipeline.parked_sessions
        sessions += pipeline.finish_each()
        return _records(sessions), parked_in_clear, parked_in_tls

    in_memory, _, _ = run(park_at=1000)
    parked, parked_in_clear, parked_in_tls = run(park_at=6)
    assert parked_in_clear >= 20 and parked_in_tls >= 20
    assert len(parked) == 30
    assert parked == in_memory
    client_at = len(b"EHLO client.example\r\nSTARTTLS\r\n")
    server_at = len(b"220 mx.example.com ESMTP\r\n" + ehlo_reply + b"220 ready\r\n")
    for record in parked:
        assert isinstance(record, dict)
        assert record["tls"] is True
        assert record["tls_info"]["mode"] == "starttls"
        assert record["tls_info"]["start_offset"] == {"client": client_at, "server": server_at}


def test_many_connections_open_at_the_end_keep_the_one_process_records_with_jobs(
    tmp_path: Path,
) -> None:
    """6,000 mail connections opened, every third then closed, the rest still open at the end
    of the capture: with two --jobs workers (each parking past its half of the bound on
    sessions in memory, the parent keeping the numbers of 4,000 flows whose session comes at
    the end, reported in small batches) every record, id included, is what one process writes."""
    n = 6000
    conns = [_Conn(i) for i in range(n)]
    frames: list[Frame] = []
    for i, conn in enumerate(conns):
        frames += conn.opening(i * 1000, helo=f"EHLO h{i}.example\r\n".encode())
        frames.append(conn.s(i * 1000 + 5, _PSH | _ACK, b"250 mx\r\n"))
    for i, conn in enumerate(conns[::3]):
        frames += conn.closing(n * 1000 + i * 1000)
    path = tmp_path / "open.pcap"
    _write_pcap(path, frames)
    one_process = _read_json(path, "1")
    assert _read_json(path, "2") == one_process
    records = [json.loads(line) for line in one_process.splitlines()]
    sessions = [r for r in records if r["type"] == "session"]
    assert len(sessions) == n
    assert {r["id"] for r in sessions} == set(range(1, n + 1))
    by_id = {r["id"]: r for r in sessions}
    assert by_id[4]["helo"] == "h3.example" and by_id[4]["complete"] is True
    assert by_id[5]["helo"] == "h4.example" and by_id[5]["complete"] is False


def test_the_parents_numbers_of_waiting_flows_are_taken_once_in_any_order() -> None:
    """The --jobs parent's table of flow numbers (flow keys given in increasing order, taken
    in the order sessions end): each number is given once, unknown keys have none, and the
    table stays right as taken entries are compacted away."""
    from mailsniff.parallel import _Numbers

    numbers = _Numbers()
    keys = [k * 4096 + (k % 3) for k in range(1, 5001)]
    for number, key in enumerate(keys, 1):
        numbers.add(key, number)
    assert len(numbers) == 5000
    assert numbers.pop(4096 * 7) is None  # between two keys
    order = keys[::-2] + keys[-2::-2]  # every other key from the end, then the rest
    for key in order:
        assert numbers.pop(key) == keys.index(key) + 1
        assert numbers.pop(key) is None
    assert len(numbers) == 0
    numbers.add(1 << 40, 5001)
    assert numbers.pop(1 << 40) == 5001
