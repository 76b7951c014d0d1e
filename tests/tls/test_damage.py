"""Damaged captures of real sessions: corrupted, truncated and lost records are reported with
their position, and no plaintext is ever made up."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailsniff.protocols.base import Direction
from mailsniff.tls import (
    DecryptFailure,
    KeyLog,
    TlsAnomaly,
    TlsAnomalyKind,
    TlsConnection,
    TlsData,
    TlsDecryptError,
    TlsGap,
    TlsUndecryptable,
)
from tests.tls.recording import PythonSession, decrypt, python_session, records, replay

C, S = Direction.CLIENT, Direction.SERVER

# TLS 1.3 (AES-GCM, record numbers in the nonce) and TLS 1.2 CBC (record numbers in the MAC).
VARIANTS = {"tls13": ("1.3", None), "tls12-cbc": ("1.2", "ECDHE-RSA-AES256-SHA384")}


@pytest.fixture(scope="module", params=list(VARIANTS))
def session(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[
    PythonSession, KeyLog, dict[int, bytes]
]:  # fmt: skip
    version, ciphers = VARIANTS[request.param]
    tmp = tmp_path_factory.mktemp(request.param)
    s = python_session(tmp, os.urandom(30_000), os.urandom(100_000), version=version,
                       ciphers=ciphers)  # fmt: skip
    keylog = KeyLog(s.keylog)
    keylog.refresh()
    clean = decrypt(s.relay.chunks, keylog)
    assert clean.conn.info.decrypted and clean.plain[S] == s.server_sent
    by_offset = {
        e.offset: e.data for e in clean.events if isinstance(e, TlsData) and e.direction is S
    }
    return s, keylog, by_offset


def _data_records(stream: bytes, by_offset: dict[int, bytes]) -> list[tuple[int, int, int]]:
    """Server records that carry application data (offset, type, size), in order."""
    return [r for r in records(stream) if r[0] in by_offset]


def test_corrupted_record_fails_authentication_with_its_position(session) -> None:  # type: ignore[no-untyped-def]
    s, keylog, by_offset = session
    stream = s.relay.stream(S)
    all_records = records(stream)
    offset, _, size = _data_records(stream, by_offset)[3]
    number = [r[0] for r in all_records].index(offset)
    damaged = bytearray(stream)
    damaged[offset + size - 1] ^= 0x01  # last byte of the tag / MAC
    result = replay(s.relay.chunks, keylog, direction=S, stream=bytes(damaged))
    errors = [e for e in result.events if isinstance(e, TlsDecryptError)]
    assert [(e.direction, e.offset, e.record) for e in errors] == [(S, offset, number)]
    info = result.conn.info
    assert info.failures == (DecryptFailure(S, offset, number),)
    assert not info.decrypted
    assert f"server: record {number} at offset {offset} failed authentication" in info.problems
    # Every other record still decrypts (their numbers are known): only that one is missing.
    want = b"".join(d for o, d in by_offset.items() if o != offset)
    assert result.plain[S] == want and result.plain[C] == s.client_sent


def test_truncated_capture_reports_the_cut_record(session) -> None:  # type: ignore[no-untyped-def]
    s, keylog, by_offset = session
    stream = s.relay.stream(S)
    offset, _, size = _data_records(stream, by_offset)[-1]
    chunks, kept = [], 0
    for d, data in s.relay.chunks:  # the server's bytes stop in the middle of its last record
        if d is S:
            data = data[: max(0, offset + size // 2 - kept)]
            kept += len(data)
        if data:
            chunks.append((d, data))
    result = decrypt(chunks, keylog)
    anomalies = [e for e in result.events if isinstance(e, TlsAnomaly)]
    assert [(a.kind, a.offset) for a in anomalies] == [(TlsAnomalyKind.TRUNCATED_RECORD, offset)]
    assert result.plain[S] == b"".join(d for o, d in by_offset.items() if o < offset)


def test_gap_inside_one_record_loses_only_that_record(session) -> None:  # type: ignore[no-untyped-def]
    s, keylog, by_offset = session
    stream = s.relay.stream(S)
    offset, _, size = _data_records(stream, by_offset)[2]
    result = replay(s.relay.chunks, keylog, direction=S, cut=(offset + 100, offset + 600))
    gaps = [e for e in result.events if isinstance(e, TlsGap)]
    assert [(g.offset, g.length) for g in gaps] == [(offset + 100, 500)]
    lost = [e for e in result.events if isinstance(e, TlsUndecryptable)]
    assert [(e.offset, e.rest) for e in lost] == [(offset, False)]
    assert "lost in a gap" in lost[0].reason
    assert result.plain[S] == b"".join(d for o, d in by_offset.items() if o != offset)
    assert not result.conn.info.decrypted


def test_gap_across_records_makes_the_rest_undecryptable(session) -> None:  # type: ignore[no-untyped-def]
    s, keylog, by_offset = session
    stream = s.relay.stream(S)
    data_records = _data_records(stream, by_offset)
    offset, _, size = data_records[2]
    start, end = offset + size - 50, data_records[3][0] + 50
    result = replay(s.relay.chunks, keylog, direction=S, cut=(start, end))
    lost = [e for e in result.events if isinstance(e, TlsUndecryptable)]
    assert [(e.direction, e.offset, e.rest) for e in lost] == [(S, start, True)]
    assert "record boundary" in lost[0].reason
    # Nothing after the gap: the record numbers (nonces, MAC input) are no longer known.
    assert result.plain[S] == b"".join(d for o, d in by_offset.items() if o < offset)
    assert all(
        e.offset < start for e in result.events if isinstance(e, TlsData) and e.direction is S
    )
    assert result.plain[C] == s.client_sent  # the other direction is not affected
    assert any(f"from offset {start}" in p for p in result.conn.info.problems)


def test_capture_starting_mid_connection(session) -> None:  # type: ignore[no-untyped-def]
    s, keylog, by_offset = session
    stream = s.relay.stream(S)
    offset = _data_records(stream, by_offset)[1][0]
    conn = TlsConnection(keylog)
    events = conn.feed(1, S, stream[offset:])  # starts at a record boundary, no handshake
    events += conn.close(2)
    assert not [e for e in events if isinstance(e, TlsData)]
    info = conn.info
    assert "handshake not captured (no ClientHello)" in info.problems
    assert any("server: handshake not captured" in p for p in info.problems)
    conn = TlsConnection(keylog)
    events = conn.gap(1, S, 0) + conn.feed(1, S, stream[offset + 7 :])
    assert [type(e) for e in events] == [TlsGap, TlsUndecryptable]
    assert "capture starts inside the connection" in events[1].reason  # type: ignore[union-attr]


def test_keys_arriving_later_are_used(session, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Live capture: the key log line is written after the records were seen."""
    s, _, _ = session
    path = tmp_path / "live.log"
    path.write_text("# keys will follow\n")
    keylog = KeyLog(path)
    keylog.refresh()
    conn = TlsConnection(keylog, wait_for_keys=True)
    events = []
    for i, (d, data) in enumerate(s.relay.chunks):
        events += conn.feed(i, d, data)
    assert conn.waiting_for_keys and not [e for e in events if isinstance(e, TlsData)]
    path.write_bytes(path.read_bytes() + s.keylog.read_bytes())
    assert keylog.refresh() >= 1
    events += conn.retry_keys(99)
    events += conn.close(100)
    plain = {d: b"".join(e.data for e in events if isinstance(e, TlsData) and e.direction is d)
             for d in Direction}  # fmt: skip
    assert plain == {C: s.client_sent, S: s.server_sent}
    assert conn.info.decrypted, conn.info.problems


def test_keys_never_arriving_are_reported_at_close(session) -> None:  # type: ignore[no-untyped-def]
    s, _, _ = session
    result = decrypt(s.relay.chunks, KeyLog(), wait_for_keys=True)
    undecryptable = [e for e in result.events if isinstance(e, TlsUndecryptable)]
    assert {e.direction for e in undecryptable} == {C, S}
    assert all(e.reason.startswith("no key for client random") for e in undecryptable)
    assert result.plain == {C: b"", S: b""}


def test_random_damage_never_fabricates_plaintext(session) -> None:  # type: ignore[no-untyped-def]
    """Flip bytes anywhere in a real session: whatever comes out decrypted is exactly a
    record of the undamaged session, at the same offset."""
    s, keylog, by_offset = session
    stream = s.relay.stream(S)
    rng = random.Random(5)
    for _ in range(40):
        damaged = bytearray(stream)
        for _ in range(rng.randint(1, 4)):
            damaged[rng.randrange(len(damaged))] ^= 1 << rng.randrange(8)
        result = replay(s.relay.chunks, keylog, direction=S, stream=bytes(damaged))
        for e in result.events:
            if isinstance(e, TlsData) and e.direction is S:
                assert by_offset.get(e.offset) == e.data


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.sampled_from([C, S]), st.binary(max_size=300), st.integers(0, 3000)),
        max_size=12,
    )
)
def test_arbitrary_bytes_never_raise(feeds: list[tuple[Direction, bytes, int]]) -> None:
    keylog = KeyLog()
    keylog.add_text(f"CLIENT_RANDOM {'00' * 32} {'11' * 48}\n")
    conn = TlsConnection(keylog, wait_for_keys=True)
    for i, (d, data, gap) in enumerate(feeds):
        # half the time make the bytes look like records, so the deeper layers are reached
        if i % 2 and len(data) >= 5:
            data = bytes([20 + data[0] % 5, 3, data[2] % 5]) + data[3:]
        conn.feed(i, d, data)
        if gap % 7 == 0:
            conn.gap(i, d, gap)
    conn.close(99)
    conn.info  # noqa: B018


def test_absurd_and_hostile_records() -> None:
    conn = TlsConnection(KeyLog())
    events = conn.feed(1, C, b"\x16\x03\x01\xff\xff" + b"x" * 100)
    assert [(type(e), getattr(e, "kind", None)) for e in events] == [
        (TlsAnomaly, TlsAnomalyKind.RECORD_TOO_LONG), (TlsUndecryptable, None)
    ]  # fmt: skip
    assert conn.feed(2, C, b"y" * 10_000_000) == []  # the rest of a dead direction: dropped
    events = conn.feed(3, S, b"HTTP/1.1 200 OK\r\n")
    assert events[0].kind == TlsAnomalyKind.NOT_A_RECORD  # type: ignore[union-attr]
    # A handshake message claiming 16 MB, sent as real maximum-size records: skipped, bounded.
    conn = TlsConnection(KeyLog())
    body = b"\x01\xff\xff\xff" + bytes(2**14 - 4)
    events = conn.feed(1, C, b"\x16\x03\x01\x40\x00" + body)
    for i in range(200):
        events += conn.feed(2 + i, C, b"\x16\x03\x03\x40\x00" + bytes(2**14))
    assert [e.kind for e in events if isinstance(e, TlsAnomaly)] == [
        TlsAnomalyKind.HANDSHAKE_TOO_LONG
    ]
    assert not conn.close(999)
