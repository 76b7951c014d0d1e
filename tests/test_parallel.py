"""`read --jobs N` plumbing that the end-to-end comparisons (tests/e2e/test_jobs.py) cannot see."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import pytest

from mailsniff.parallel import _PIPE_BYTES, _widen


@pytest.mark.skipif(not Path("/proc/sys/fs/pipe-max-size").exists(), reason="Linux pipes only")
def test_a_worker_ahead_of_the_others_is_not_held_back_by_its_pipe() -> None:
    """A worker's pipe takes some thirty batches before the parent reads any (64 KiB, a
    pipe's default, held one: the workers then ran in step, at the pace of the slower)."""
    receive, send = multiprocessing.Pipe(duplex=False)
    allowed = os.geteuid() == 0 or int(Path("/proc/sys/fs/pipe-max-size").read_text()) >= (
        _PIPE_BYTES
    )
    if not allowed:
        pytest.skip("this system caps unprivileged pipes below 1 MiB")
    _widen(send)
    os.set_blocking(send.fileno(), False)
    batch = b"x" * 32768
    written = 0
    while written < _PIPE_BYTES - len(batch):
        written += os.write(send.fileno(), batch)  # BlockingIOError if the pipe were full
    assert written >= 30 * len(batch)
    receive.close()
    send.close()
