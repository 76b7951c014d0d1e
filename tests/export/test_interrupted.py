"""An extraction killed part-way leaves no incomplete file under a final name."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.cli_runner import REPO
from tests.export.captures import fast_pcap, message_with_attachments, smtp_steps

DEADLINE_S = 60


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_final_files(folder: Path) -> list[str]:
    """Every file under a final name is whole: its name is the sha256 of its bytes."""
    names = []
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.name.startswith("."):
            continue  # temporary files: ".mailsniff-*.part"
        rel = str(path.relative_to(folder))
        names.append(rel)
        if rel == "manifest.jsonl":
            for line in path.read_bytes().splitlines():
                json.loads(line)  # whole lines only
            continue
        assert sha256(path.read_bytes()) == path.name.removesuffix(".eml"), rel
    return names


def test_sigkill_during_a_large_extraction_leaves_only_whole_files(tmp_path: Path) -> None:
    small = [
        message_with_attachments([(f"a{i}.bin".encode(), os.urandom(200_000))]) for i in range(2)
    ]
    big = message_with_attachments([(b"big.bin", os.urandom(3_000_000))])
    capture = fast_pcap(tmp_path / "c.pcap", smtp_steps([*small, big]))
    data = capture.read_bytes()
    out = tmp_path / "out"

    proc = subprocess.Popen(
        [sys.executable, "-m", "mailsniff", "read", "-", "--extract", str(out), "--summary"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=REPO,
    )
    assert proc.stdin is not None
    try:
        # Everything but the last megabyte: the process now waits for input in the middle of
        # the big message, its bytes going to a temporary file.
        proc.stdin.write(data[: len(data) - 1_000_000])
        proc.stdin.flush()
        deadline = time.monotonic() + DEADLINE_S
        while True:
            parts = [p for p in out.glob(".mailsniff-*.part") if p.stat().st_size > 0]
            emls = list(out.glob("*.eml"))
            if parts and len(emls) == 2:
                break
            assert proc.poll() is None, "the reader ended before its input did"
            assert time.monotonic() < deadline, "the extraction never reached the big message"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=DEADLINE_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=DEADLINE_S)
        proc.stdin.close()

    names = check_final_files(out)
    assert f"{sha256(big)}.eml" not in names  # only its temporary file exists
    assert {f"{sha256(m)}.eml" for m in small} <= set(names)
    assert list(out.glob(".mailsniff-*.part"))

    # A new run into the same folder completes the evidence.
    done = subprocess.run(
        [sys.executable, "-m", "mailsniff", "read", str(capture), "--extract", str(out)],
        capture_output=True,
        cwd=REPO,
        timeout=DEADLINE_S,
    )
    assert done.returncode == 0, done.stderr
    names = check_final_files(out)
    assert {f"{sha256(m)}.eml" for m in [*small, big]} <= set(names)
    lines = (out / "manifest.jsonl").read_bytes().splitlines()
    assert [json.loads(line)["sha256"] for line in lines] == [sha256(m) for m in [*small, big]]
