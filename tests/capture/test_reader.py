"""open_capture: format sniffing, gzip, stdin, input errors, and the public captures."""

from __future__ import annotations

import gzip
import io
import os
import random
import struct
import subprocess
import sys
import threading
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailsniff.capture import reader as reader_module
from mailsniff.capture.frame import Frame
from mailsniff.capture.reader import open_capture
from mailsniff.errors import InputError, NotACaptureError, TruncatedCaptureError
from mailsniff.status import ExitStatus
from tests.capture.capture_builders import epb, idb, pcap_header, pcap_record, shb
from tests.paths import EQUIVALENTS, PUBLIC, REPO

RECORDS = [(1_600_000_000 + i, i, bytes([i]) * (40 + i)) for i in range(50)]
PCAP = pcap_header() + b"".join(pcap_record(s, us, d) for s, us, d in RECORDS)
EXPECTED = [Frame(s * 10**9 + us * 1000, 1, d, len(d)) for s, us, d in RECORDS]


def _read(path: str) -> list[Frame]:
    with open_capture(path) as reader:
        return list(reader)


def test_open_capture_reads_a_gzip_compressed_pcap(tmp_path):
    path = tmp_path / "x.pcap.gz"
    path.write_bytes(gzip.compress(PCAP))
    with open_capture(str(path)) as reader:
        assert list(reader) == EXPECTED
        assert reader.format == "pcap"
        assert reader.total_bytes == path.stat().st_size
        assert reader.bytes_read == path.stat().st_size  # compressed bytes, for a progress bar


def test_open_capture_reads_a_gzip_compressed_pcapng(tmp_path):
    eth = b"\x02" * 12 + b"\x08\x00" + b"payload"
    path = tmp_path / "x.pcapng.gz"
    path.write_bytes(gzip.compress(shb() + idb(1) + epb(0, 5, eth)))
    assert _read(str(path)) == [Frame(5000, 1, eth, len(eth))]


def test_open_capture_yields_every_record_before_the_cut_of_a_gzip_cut_short(tmp_path):
    rng = random.Random(7)
    datas = [rng.randbytes(1000) for _ in range(300)]  # incompressible: the cut lands mid-file
    whole = pcap_header() + b"".join(pcap_record(i, 0, d) for i, d in enumerate(datas))
    compressed = gzip.compress(whole)
    path = tmp_path / "cut.pcap.gz"
    path.write_bytes(compressed[: len(compressed) // 2])
    frames: list[Frame] = []
    with pytest.raises(TruncatedCaptureError, match="gzip") as info:
        for frame in open_capture(str(path)):
            frames.append(frame)
    # Every record wholly inside the decompressible half comes out (~150 of 300).
    assert 140 <= len(frames) < 300
    assert [f.data for f in frames] == datas[: len(frames)]
    assert info.value.records_read == len(frames)
    assert info.value.exit_status == ExitStatus.TRUNCATED


def test_open_capture_rejects_gzip_corrupt_at_the_start(tmp_path):
    path = tmp_path / "bad.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00" + b"\xff" * 60)
    with pytest.raises(NotACaptureError, match="gzip"):
        open_capture(str(path))


def test_open_capture_reads_stdin_as_a_binary_stream(monkeypatch):
    stdin = io.TextIOWrapper(io.BytesIO(gzip.compress(PCAP)))
    monkeypatch.setattr(sys, "stdin", stdin)
    with open_capture("-") as reader:
        assert list(reader) == EXPECTED
        assert reader.total_bytes is None
        assert reader.path == "-"


def test_open_capture_reads_a_pipe_on_stdin(tmp_path):
    script = (
        "from mailsniff.capture.reader import open_capture\n"
        "r = open_capture('-')\n"
        "print(r.format, sum(len(f.data) for f in r), r.records_read)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        input=PCAP,
        capture_output=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=True,
    )
    assert result.stdout.decode().split() == ["pcap", str(sum(len(d) for *_, d in RECORDS)), "50"]


def test_open_capture_names_what_it_saw_in_a_file_that_is_not_a_capture(tmp_path):
    path = tmp_path / "page.html"
    path.write_bytes(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    with pytest.raises(NotACaptureError) as info:
        open_capture(str(path))
    assert "not a pcap or pcapng file" in info.value.message
    assert "'GET / HT'" in info.value.message
    assert "\n" not in info.value.message


def test_open_capture_shows_binary_junk_as_hex(tmp_path):
    path = tmp_path / "junk"
    path.write_bytes(b"\x00\x01\x02\x03\xff")
    with pytest.raises(NotACaptureError, match="00 01 02 03 ff"):
        open_capture(str(path))


def test_open_capture_rejects_a_file_shorter_than_a_magic(tmp_path):
    path = tmp_path / "tiny"
    path.write_bytes(b"ab")
    with pytest.raises(NotACaptureError):
        open_capture(str(path))


def test_open_capture_reports_an_empty_file_as_an_input_error(tmp_path):
    path = tmp_path / "empty.pcap"
    path.write_bytes(b"")
    with pytest.raises(InputError, match="empty") as info:
        open_capture(str(path))
    assert type(info.value) is InputError
    assert info.value.exit_status == ExitStatus.INPUT_ERROR


def test_open_capture_reports_a_missing_file(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        open_capture(str(tmp_path / "nope.pcap"))


def test_open_capture_reports_a_directory(tmp_path):
    with pytest.raises(InputError, match="is a directory"):
        open_capture(str(tmp_path))


def test_open_capture_reports_a_file_it_may_not_read(tmp_path, monkeypatch):
    # Tests run as root, which chmod cannot lock out: make open() fail as it would.
    def denied(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(reader_module, "open", denied, raising=False)
    path = tmp_path / "locked.pcap"
    path.write_bytes(PCAP)
    with pytest.raises(InputError, match="permission denied"):
        open_capture(str(path))


def test_capture_reader_close_closes_the_file(tmp_path):
    path = tmp_path / "x.pcap"
    path.write_bytes(PCAP)
    reader = open_capture(str(path))
    with reader:
        next(reader)
    assert reader._raw.closed


def test_capture_reader_counts_progress_as_it_goes(tmp_path):
    path = tmp_path / "x.pcap"
    path.write_bytes(PCAP)
    with open_capture(str(path)) as reader:
        assert (reader.records_read, reader.bytes_read) == (0, 24)
        next(reader)
        assert (reader.records_read, reader.bytes_read) == (1, 24 + 16 + 40)


# Frame counts, link types and first/last timestamps: from capinfos and tshark -T fields
# -e frame.time_epoch on each file (PROVENANCE.md gives the same counts).
PUBLIC_CAPTURES = [
    ("zeek/pop3-starttls.pcap", "pcap", [0], 33, 1400173552423915000, 1400173554912978000),
    ("suricata-verify/smtp-pipelining.pcap", "pcap", [0], 18, 1544773457768725000,
     1544773457775268000),
    ("ndpi/smtp-starttls.pcap", "pcap", [1], 69, 1388017124762850000, 1524746968663137000),
    ("ndpi/pop3.pcapng", "pcapng", [1], 144, 1349776771892023000, 1377201785011707000),
    ("zeek/smtp-bdat-cmd-invalid.pcapng", "pcapng", [1], 66, 1705333298367948000,
     1705333415080240000),
]  # fmt: skip


@pytest.mark.parametrize(("name", "fmt", "linktypes", "count", "first", "last"), PUBLIC_CAPTURES)
def test_open_capture_reads_public_captures_like_capinfos(name, fmt, linktypes, count, first, last):
    path = PUBLIC / name
    with open_capture(str(path)) as reader:
        frames = list(reader)
        assert reader.format == fmt
        assert reader.linktypes == linktypes
        assert reader.bytes_read == reader.total_bytes == path.stat().st_size
    assert len(frames) == count
    assert (frames[0].ts_ns, frames[-1].ts_ns) == (first, last)


def test_open_capture_yields_18_records_of_the_damaged_smtp_to_comma_then_raises():
    frames: list[Frame] = []
    with pytest.raises(TruncatedCaptureError) as info:
        for frame in open_capture(str(EQUIVALENTS / "smtp-to-comma.pcap")):
            frames.append(frame)
    assert len(frames) == 18
    assert frames[0].ts_ns == 1564419705390017000
    assert frames[-1].ts_ns == 1564419707068972000
    assert info.value.records_read == 18
    assert info.value.offset == 3695
    assert "3925868813" in info.value.message
    assert "record 19" in info.value.message


def test_open_capture_reads_a_large_file_in_constant_memory(tmp_path):
    # 40 MB of records: the reader may hold a chunk or two (1 MiB each), never the file.
    path = tmp_path / "large.pcap"
    record = pcap_record(1, 0, b"\xab" * 1000)
    with path.open("wb") as out:
        out.write(pcap_header())
        for _ in range(40):
            out.write(record * 1000)
    tracemalloc.start()
    try:
        with open_capture(str(path)) as reader:
            count = sum(1 for _ in reader)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 40_000
    assert peak < 8 * 1024 * 1024


@given(
    st.sampled_from([pcap_header(), pcap_header(order=">", nano=True), shb() + idb(1)]),
    st.binary(max_size=300),
)
def test_open_capture_raises_nothing_but_truncation_on_arbitrary_record_bytes(head, tail):
    stdin = io.TextIOWrapper(io.BytesIO(head + tail))
    original = sys.stdin
    sys.stdin = stdin
    try:
        with open_capture("-") as reader:
            try:
                for frame in reader:
                    assert isinstance(frame, Frame)
            except TruncatedCaptureError as exc:
                assert exc.records_read == reader.records_read
                assert "\n" not in exc.message
    finally:
        sys.stdin = original


def test_open_capture_reads_a_named_pipe_without_a_size(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    def feed() -> None:
        with fifo.open("wb") as out:
            out.write(PCAP)

    writer = threading.Thread(target=feed)
    writer.start()
    try:
        with open_capture(str(fifo)) as reader:
            assert reader.total_bytes is None
            assert list(reader) == EXPECTED
    finally:
        writer.join()


def _peak_reading(path: Path) -> tuple[int, TruncatedCaptureError]:
    """Read the capture at `path` to its error; return tracemalloc's peak and the error."""
    tracemalloc.start()
    try:
        with pytest.raises(TruncatedCaptureError) as caught:
            with open_capture(str(path)) as reader:
                for _ in reader:
                    pass
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, caught.value


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_a_record_claiming_256_mib_is_refused_before_it_is_read(tmp_path, fmt):
    """A record that claims 256 MiB (and has them) costs no more than a normal read: it is
    reported as oversize, after every record before it."""
    claim = 256 * 1024 * 1024
    good = bytes(range(60))
    if fmt == "pcap":
        head = pcap_header(snaplen=0x7FFFFFFF) + pcap_record(1, 0, good)
        head += struct.pack("<IIII", 2, 0, claim, claim)
    else:
        head = shb() + idb(1) + epb(0, 1, good)
        head += struct.pack("<II", 6, claim + 32)
    path = tmp_path / f"huge.{fmt}"
    with path.open("wb") as out:
        out.write(head)
        out.truncate(len(head) + claim + 32)  # the bytes are there (a sparse file)
    peak, error = _peak_reading(path)
    assert error.records_read == 1
    assert "oversize" in error.message and "limit" in error.message
    assert peak < 8 * 1024 * 1024
