"""`live --jobs N`: the capture's spool analysed by N worker processes, as `read --jobs N` does.

Each worker reads the whole spool (every frame, so the same frame numbers) and keeps the
connections its share of the flow hash gives it (mailsniff.parallel); the sessions come back in
the one-process order and numbering. A worker with nothing new to read for a quarter of a
second reports its progress, so sessions that ended are printed without waiting for more
traffic. The live view of open sessions needs them in this process: it is not drawn with more
than one job; --transcript, --extract and --mbox run with one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from mailsniff.capture.frame import Frame
from mailsniff.capture.process import ProcessCapture, SpoolReader
from mailsniff.capture.writer import PcapWriter
from mailsniff.model import Session
from mailsniff.parallel import add_stats, run_sharded
from mailsniff.pipeline import Pipeline
from mailsniff.render.text import format_size
from mailsniff.session.tls_layer import open_keylog

if TYPE_CHECKING:
    from mailsniff.commands.live import _Run, _Stop

__all__ = ["run_jobs"]


def _written(frames: Iterator[Frame | None], writer: PcapWriter) -> Iterator[Frame | None]:
    """The -w file, written by one of the workers (every worker sees every frame)."""
    try:
        for frame in frames:
            if frame is not None:
                writer.write(frame)
            else:
                writer.flush()
            yield frame
    finally:
        writer.flush()


def run_jobs(run: _Run, capture: ProcessCapture, stop: _Stop, n: int) -> None:
    """Analyse until the capture ends (stop, --duration, -c), emitting sessions as they end."""
    options = run.options
    process = capture.process
    writer = capture.writer
    if writer is not None:
        writer.flush()  # the header: from here on only one worker writes the file

    def open_frames(me: int, n: int) -> tuple[SpoolReader, Iterator[Frame | None]]:
        # Worker me claims the next reader of the spool; its frames come whole (the worker's
        # loop routes them).
        reader = process.claim_reader(options.count)
        frames = reader.frames_or_idle()
        if writer is not None and reader.index == 0:
            frames = _written(frames, writer)
        return reader, frames

    def make_pipeline() -> Pipeline:
        # Each worker follows the growing key log itself (after the fork, as keys keep coming).
        keylog = open_keylog(options.keylog, live=True) if options.keylog is not None else None
        return Pipeline(keylog=keylog, wait_for_keys=keylog is not None)

    finished = threading.Event()
    deadline = None if options.duration is None else time.monotonic() + options.duration

    def watch() -> None:
        """Stop the capture on a signal, at --duration, or when it ended by itself."""
        while not stop.event.wait(0.25):
            if finished.is_set():
                return
            if deadline is not None and time.monotonic() >= deadline:
                stop.set("duration reached")
                break
            if not process.alive():
                break
        if finished.is_set():
            return
        process.stop()
        if (behind := process.backlog()) >= 4 * 1024 * 1024:
            run.err.print(
                f"mailsniff: analysing the {format_size(behind)} captured before the stop"
            )

    watcher = threading.Thread(target=watch, name="mailsniff-stop", daemon=True)
    watcher.start()
    try:
        # Sessions come back whole and go through live's own sinks (redaction, credentials,
        # counts, output), as with one process.
        for item in run_sharded(n, open_frames, make_pipeline):
            if isinstance(item, list):
                for result in item:
                    add_stats(run.pipeline, result.stats)
                continue
            run.emit(_session(item[1]))
    finally:
        finished.set()
        stop.event.set()
        watcher.join()
        process.stop()
    capture.captured = run.pipeline.stats.frames
    if stop.reason is None:
        if options.count is not None and capture.captured >= options.count:
            stop.set(f"{options.count} packets captured")
        else:
            stop.set("capture ended")


def _session(payload: Any) -> Session:
    assert isinstance(payload, Session)
    return payload
