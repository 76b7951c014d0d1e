"""Hostile captures through the whole read path: only MailsniffError escapes; output is valid."""

from __future__ import annotations

import io
import random
import resource
import signal
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from mailsniff.capture.reader import open_capture
from mailsniff.errors import MailsniffError
from mailsniff.pipeline import Pipeline
from mailsniff.render import console as console_render
from mailsniff.render import jsonl
from mailsniff.status import ExitStatus
from tests.jsonschema_check import validate_lines
from tests.paths import PCAPS, PUBLIC, REPO

SEEDS = [
    (PCAPS / "seed-telnet.pcap").read_bytes(),
    (PUBLIC / "zeek" / "smtp.pcap").read_bytes(),
    (PUBLIC / "suricata-verify" / "pop3-02-bug-7709.pcap").read_bytes(),
]


def run_whole_path(data: bytes, tmp: Path) -> None:
    path = tmp / "fuzz.pcap"
    path.write_bytes(data)
    pipeline = Pipeline(keep_transcript=True)
    out = Console(file=io.StringIO(), width=120, force_terminal=True)
    try:
        with open_capture(str(path)) as reader:
            sessions = list(pipeline.run(reader))
    except MailsniffError:
        pipeline.finish()
        sessions = pipeline.drain()
    lines = "\n".join(jsonl.dumps(jsonl.session_record(s, transcript=True)) for s in sessions)
    if lines:
        validate_lines(lines)
    console_render.render_overview(out, sessions)
    for session in sessions:
        console_render.render_session(out, session, transcript=True)


@settings(max_examples=60)
@given(
    st.sampled_from(range(len(SEEDS))),
    st.lists(st.tuples(st.integers(0, 2**31), st.integers(0, 255)), min_size=1, max_size=40),
)
def test_mutated_captures_never_crash(
    tmp_path_factory: pytest.TempPathFactory, which: int, edits: list[tuple[int, int]]
) -> None:
    data = bytearray(SEEDS[which])
    for pos, value in edits:
        # skip the file header so most mutations reach records, payloads and the parsers
        data[24 + pos % (len(data) - 24)] = value
    run_whole_path(bytes(data), tmp_path_factory.mktemp("f"))


@settings(max_examples=30)
@given(st.sampled_from(range(len(SEEDS))), st.integers(25, 10**6))
def test_cut_captures_never_crash(
    tmp_path_factory: pytest.TempPathFactory, which: int, cut: int
) -> None:
    data = SEEDS[which]
    run_whole_path(data[: cut % len(data)], tmp_path_factory.mktemp("c"))


# --- structured mutations, fixed seed ---------------------------------------------------------
# Each class corrupts one layer of the captures the suite ships: the bits anywhere, the file's
# end, the pcap/pcapng record lengths, the IPv4 and TCP headers, the record timestamps.

STRUCTURED_SEEDS = {
    "seed-telnet.pcap": PCAPS / "seed-telnet.pcap",
    "smtp.pcap": PUBLIC / "zeek" / "smtp.pcap",
    "pop3-02-bug-7709.pcap": PUBLIC / "suricata-verify" / "pop3-02-bug-7709.pcap",
    "smtp-bdat-cmd-invalid.pcapng": PUBLIC / "zeek" / "smtp-bdat-cmd-invalid.pcapng",
}
CASES_PER_CLASS = 40  # x 6 classes, in-process; a few more as subprocesses below
SECONDS_PER_CASE = 10.0
IN_PROCESS_GROWTH = 256 << 20  # the seeds are < 50 KB: no case may need hundreds of MB
EXTREMES32 = [0, 1, 0x7F, 0xFF, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]


def records(data: bytes) -> list[tuple[int, int]]:
    """(offset of the record/block, offset of its frame bytes) for each packet record."""
    out = []
    if data[:4] == b"\x0a\x0d\x0d\x0a":  # pcapng: Enhanced Packet Blocks (little-endian here)
        pos = 0
        while pos + 12 <= len(data):
            kind, length = struct.unpack_from("<II", data, pos)
            if kind == 6:
                out.append((pos, pos + 28))
            if length < 12:
                break
            pos += length
    else:  # pcap, little-endian
        pos = 24
        while pos + 16 <= len(data):
            (incl,) = struct.unpack_from("<I", data, pos + 8)
            out.append((pos, pos + 16))
            pos += 16 + incl
    return out


def ipv4_offsets(data: bytes) -> list[int]:
    """Offsets of IPv4 headers in Ethernet frames (other link types are left to bit flips)."""
    found = []
    for _, frame in records(data):
        if data[frame + 12 : frame + 14] == b"\x08\x00" and data[frame + 14] >> 4 == 4:
            found.append(frame + 14)
        elif data[frame : frame + 4] in (b"\x02\x00\x00\x00", b"\x00\x00\x00\x02"):
            found.append(frame + 4)  # BSD loopback
    return found


def put32(data: bytearray, pos: int, value: int) -> None:
    if pos + 4 <= len(data):
        struct.pack_into("<I", data, pos, value & 0xFFFFFFFF)


def mutate(kind: str, seed: bytes, rng: random.Random) -> bytes:
    data = bytearray(seed)
    recs = records(seed)
    if kind == "bit-flips":
        for _ in range(rng.randint(1, 16)):
            pos = rng.randrange(24, len(data))
            data[pos] ^= 1 << rng.randrange(8)
    elif kind == "truncation":
        return bytes(data[: rng.randrange(0, len(data))])
    elif kind == "record-length":
        for _ in range(rng.randint(1, 3)):
            rec, frame = rng.choice(recs)
            field = rec + 4 if seed[:4] == b"\x0a\x0d\x0d\x0a" and rng.random() < 0.5 else frame - 8
            value = rng.choice([*EXTREMES32, rng.randrange(2**32)])
            put32(data, field, value)
    elif kind == "ip-tcp-header":
        for _ in range(rng.randint(1, 3)):
            ip = rng.choice(ipv4_offsets(seed))
            ihl = (seed[ip] & 0x0F) * 4
            choice = rng.randrange(6)
            if choice == 0:  # IPv4 total length
                struct.pack_into(">H", data, ip + 2, rng.choice([0, 1, 19, 20, 40, 0xFFFF]))
            elif choice == 1:  # IHL / version
                data[ip] = rng.choice([0x40, 0x41, 0x4F, 0x45, 0x65, 0x00])
            elif choice == 2:  # fragment flags and offset
                struct.pack_into(">H", data, ip + 6, rng.choice([0x2000, 0x1FFF, 0x3FFF, 0x0001]))
            elif choice == 3:  # TCP data offset
                data[ip + ihl + 12] = rng.choice([0x00, 0x10, 0x40, 0xF0, 0xFF])
            elif choice == 4:  # TCP sequence number
                struct.pack_into(">I", data, ip + ihl + 4, rng.randrange(2**32))
            else:  # TCP flags
                data[ip + ihl + 13] = rng.randrange(256)
    elif kind == "timestamp":
        for _ in range(rng.randint(1, 4)):
            rec, frame = rng.choice(recs)
            if seed[:4] == b"\x0a\x0d\x0d\x0a":  # EPB timestamp words: microseconds past 9999
                high = rng.choice([0x7FFFFFFF, 0xFFFFFFFF, rng.randrange(2**26, 2**32)])
                put32(data, rec + 12, high)
                put32(data, rec + 16, rng.choice([0, 0xFFFFFFFF, rng.randrange(2**32)]))
            else:  # ts_sec, ts_usec: past 2038, before 1970 as signed, usec >= 10**6
                put32(data, rec, rng.choice([0, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]))
                put32(data, rec + 4, rng.choice([0, 999_999, 1_000_000, 0xFFFFFFFF]))
    else:
        raise AssertionError(kind)
    return bytes(data)


class CaseTimeout(Exception):
    pass


def bounded(data: bytes, tmp: Path) -> None:
    """The whole read path on `data`, failing if one case takes longer than SECONDS_PER_CASE."""

    def expire(signum: int, frame: object) -> None:
        raise CaseTimeout(f"one case took more than {SECONDS_PER_CASE} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, SECONDS_PER_CASE)
    try:
        run_whole_path(data, tmp)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


MUTATION_CLASSES = [
    "bit-flips",
    "truncation",
    "record-length",
    "ip-tcp-header",
    "timestamp",
]


@pytest.mark.parametrize("kind", MUTATION_CLASSES)
def test_structured_mutations_never_crash_or_hang(kind: str, tmp_path: Path) -> None:
    rng = random.Random(f"mailsniff-fuzz-{kind}")
    seeds = {name: path.read_bytes() for name, path in STRUCTURED_SEEDS.items()}
    usable = [n for n in sorted(seeds) if kind != "ip-tcp-header" or ipv4_offsets(seeds[n])]
    # ru_maxrss is the process's high-water mark: growth over the class bounds any one case
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for case in range(CASES_PER_CLASS):
        name = rng.choice(usable)
        data = mutate(kind, seeds[name], rng)
        try:
            bounded(data, tmp_path)
        except (CaseTimeout, AssertionError):
            raise
        except Exception as error:
            (tmp_path / "failing.pcap").write_bytes(data)
            error.add_note(f"{kind} case {case} of {name}: {tmp_path / 'failing.pcap'}")
            raise
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib * 1024 < IN_PROCESS_GROWTH, f"peak RSS grew by {grown_kib} KiB"


# The exit-code contract, as a user sees it: a subprocess per case under a memory cap.
MEMORY_CAP = 1 << 30  # RLIMIT_AS of each run: 1 GiB of address space
CLI_CLASSES = [
    "bit-flips",
    "truncation",
    "record-length",
    "ip-tcp-header",
    "timestamp",
]


def limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


@pytest.mark.parametrize("kind", CLI_CLASSES)
def test_mutated_captures_through_the_cli_keep_the_exit_code_contract(
    kind: str, tmp_path: Path
) -> None:
    rng = random.Random(f"mailsniff-cli-fuzz-{kind}")
    seeds = {name: path.read_bytes() for name, path in STRUCTURED_SEEDS.items()}
    usable = [n for n in sorted(seeds) if kind != "ip-tcp-header" or ipv4_offsets(seeds[n])]
    for name in usable:  # one run per capture format and seed
        path = tmp_path / f"{kind}-{name}"
        path.write_bytes(mutate(kind, seeds[name], rng))
        proc = subprocess.run(
            [sys.executable, "-m", "mailsniff", "read", str(path), "--json", "--transcript"],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=60,
            preexec_fn=limit_memory,
        )
        # read to the end, not a capture at all, or damaged part-way: never 1 (internal error)
        allowed = (ExitStatus.SUCCESS, ExitStatus.INPUT_ERROR, ExitStatus.TRUNCATED)
        assert proc.returncode in allowed, (path, proc.returncode, proc.stderr)
        assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
        if proc.stdout:
            records = validate_lines(proc.stdout)
            assert records[-1]["type"] == "summary"
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    assert peak_kib * 1024 < MEMORY_CAP, f"a run peaked at {peak_kib} KiB"
