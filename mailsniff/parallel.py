"""`read --jobs N`: connections sharded over N worker processes, merged in one fixed order.

Every worker reads the whole input (the same frame stream, so the same global frame numbers)
and keeps the frames of its own connections: the owner of a frame is a symmetric hash of its
TCP 4-tuple modulo N. Plain Ethernet/IPv4/TCP frames are routed from their raw header bytes
without decoding; every other frame (IPv4 fragments, VLAN, IPv6, other link types) is decoded by
every worker, so fragments are reassembled everywhere and the resulting segment lands on the
worker owning its 4-tuple. Frames that decode to no TCP segment are counted by the last worker
only (worker 0 of `read` is the parent, which merges too), so the summary's counts are the same
sums as one process makes.

`read` runs worker 0 in the parent itself (run_sharded `local`): it reads and analyses its
shard between merges, whenever the other workers have nothing waiting, so N jobs are N
processes and merging takes no core from the workers (a parent of its own, woken by each batch,
ran on the core of the worker it waited for: the one behind, which set the pace).

Determinism: a worker names each flow by (global index of the frame that created it, order
within that frame) and tags each finished session with (frame index of its end, phase, flow
key). The parent numbers flows 1, 2, ... in flow-key order over all workers (what one process
does, since it numbers flows as they start) and emits sessions in tag order, each once every
worker has reported progress past its tag: a k-way merge with bounded buffering (a worker
blocks on its pipe, of 1 MiB, when the parent does not need its output yet). Progress is a tag
too: past a frame while reading, past a flow key while the connections still open at the end of
the input are ended one at a time (in flow-key order), so that neither a worker nor the parent
holds the sessions of every connection open at the end at once.

Idle expiry runs at fixed frame numbers (every EXPIRE_EVERY frames, at the largest timestamp
read so far) in every mode, so one process and N workers end the same idle connections at the
same points.
"""

from __future__ import annotations

import fcntl
import gc
import heapq
import os
import signal
from array import array
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import Any

from mailsniff.capture.frame import FrameOrTime
from mailsniff.errors import MailsniffError, TruncatedCaptureError
from mailsniff.model import Session
from mailsniff.pipeline import Pipeline
from mailsniff.shard import (
    ENDED,
    EXPIRE_EVERY,
    PER_FRAME,
    ShardFeeder,
    drive,
    frame_owner,
    segment_owner,
)
from mailsniff.status import ExitStatus

__all__ = [
    "AUTO_JOBS_MIN_BYTES",
    "EXPIRE_EVERY",
    "OpenFrames",
    "ShardResult",
    "choose_jobs",
    "drive",
    "error_message",
    "frame_owner",
    "run_sharded",
    "segment_owner",
]

#: Opens the input in worker `me` of `n`: (reader, frames). The reader is a context manager with
#: bytes_read (and for a set of files warnings/truncated). A frame another worker owns may come
#: as its capture time only (shard.routed_frames); a live stream yields None when nothing new
#: came for a while (progress is reported then).
OpenFrames = Callable[[int, int], tuple[Any, Iterator[FrameOrTime | None]]]
#: `--jobs` default: one worker per core from this much input on, one process below it.
AUTO_JOBS_MIN_BYTES = 32 * 1024 * 1024
#: A worker's progress: every session tagged up to it has been sent.
_Tag = tuple[int, int, int]
#: Sessions per report while the connections open at the end are ended: each is a finished
#: session, held by the worker and then the parent until the merge writes it.
_END_BATCH = 256
_INF = 1 << 62
#: Sessions and flows of the in-process shard (run_sharded `local`) that may wait for the other
#: workers' before it stops to wait for them too: its lead, in memory.
_LOCAL_AHEAD = 8192
#: Bytes a worker's pipe holds (Linux; 64 KiB by default): some thirty batches, so a worker
#: ahead of the others goes on while the parent waits for theirs (with one batch's room it
#: stopped at every batch, and the two workers kept in step at the pace of the slower).
_PIPE_BYTES = 1 << 20


def usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def choose_jobs(requested: int | None, total_bytes: int | None) -> int:
    """The number of processes: `requested`, or (None) one per core for inputs of at least
    AUTO_JOBS_MIN_BYTES, one for smaller inputs and standard input."""
    if requested is not None:
        return requested
    if total_bytes is None or total_bytes < AUTO_JOBS_MIN_BYTES:
        return 1
    return usable_cores()


# -- workers ------------------------------------------------------------------------------------


@dataclass(slots=True)
class ShardResult:
    """What a worker reports once its input is done."""

    stats: dict[str, Any]
    #: The reader's own warnings (file order, overlaps, cut files of a set).
    warnings: list[str]
    #: A single capture ending inside a record: (message, records read before it).
    truncated: tuple[str, int] | None
    #: A file of a set was cut short (the rest was still read).
    set_truncated: bool
    #: The CPU time (user + system) the shard's process used while it ran the shard (a Dask
    #: worker runs other tasks; the in-process shard of `read` merges too), for benchmarks.
    cpu_seconds: float = 0.0


def _worker(
    me: int,
    n: int,
    open_frames: OpenFrames,
    make_pipeline: Callable[[], Pipeline],
    prepare: Callable[[Session], Any] | None,
    conn: Any,
) -> None:
    """Read every frame, keep this worker's connections, stream results to the parent."""
    # The parent handles Ctrl-C and SIGTERM (and ends its workers): no handler of its here.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        for message in _messages(me, n, open_frames, make_pipeline, prepare):
            conn.send(message)  # as it is made: the parent merges while this worker reads on
    except BaseException as error:  # noqa: BLE001 - reported by the parent as one line
        conn.send(error_message(error))
    finally:
        conn.close()


def error_message(error: BaseException) -> tuple[str, str, str | None, int]:
    """A failed shard's last message, which the parent raises as one line: a MailsniffError as
    it is, anything else (a bug) named by its type."""
    if isinstance(error, MailsniffError):
        return ("error", error.message, error.hint, int(error.exit_status))
    return ("error", f"{type(error).__name__}: {error}", None, int(ExitStatus.ERROR))


def _messages(
    me: int,
    n: int,
    open_frames: OpenFrames,
    make_pipeline: Callable[[], Pipeline],
    prepare: Callable[[Session], Any] | None,
) -> Generator[tuple[Any, ...], None, None]:
    """Worker `me` of `n`: its ("batch", progress tag, flows, sessions, bytes read, dropped)
    messages as it reads, then ("done", ShardResult)."""
    cpu = sum(os.times()[:2])
    pipeline = make_pipeline()
    pipeline.auto_expire = False
    # The bound on open sessions held in memory is for the whole run: each worker parks past
    # its share of it (n workers would otherwise hold n times as many idle sessions).
    pipeline.park_at = max(2, pipeline.park_at // n)
    pipeline.dropped = []  # sent with each batch: the parent stops waiting for their sessions
    side = make_pipeline().decoder  # decodes the frames that cannot be routed raw (all workers)
    # The per-frame loop (mailsniff.shard, compiled in the fast build) comes back here only
    # when there is something to send.
    feeder = ShardFeeder(me, n, pipeline, side)
    sessions: list[tuple[tuple[int, int, int], Any]] = []
    truncated: tuple[str, int] | None = None

    def batch(tag: _Tag) -> tuple[Any, ...]:
        nonlocal sessions
        flows, feeder.flows = feeder.flows, []
        message = ("batch", tag, flows, sessions, reader.bytes_read, pipeline.dropped)
        sessions = []
        pipeline.dropped = []
        return message

    reader, frames = open_frames(me, n)
    with reader:
        try:
            for event in feeder.run(frames):
                if event == ENDED:
                    index, phase = feeder.index, feeder.phase
                    for session in pipeline.drain():
                        tag = (index, phase, session.id)
                        sessions.append((tag, session if prepare is None else prepare(session)))
                else:  # IDLE (a live source with nothing new) or REPORT (a batch read)
                    yield batch((feeder.index, _INF, 0))
        except TruncatedCaptureError as error:
            truncated = (error.message, error.records_read)
        side.finish()
        # The connections open at the end, ended one at a time (in flow-key order), their
        # sessions sent in batches as they come.
        end = feeder.index + 1
        for session in pipeline.finish_each():
            tag = (end, 0, session.id)
            sessions.append((tag, session if prepare is None else prepare(session)))
            if len(sessions) >= _END_BATCH:
                yield batch(tag)
        first = feeder.first
        pipeline.stats.first_ts_ns = first
        pipeline.stats.last_ts_ns = feeder.latest if first is not None else None
        yield batch((_INF, 0, 0))
        result = ShardResult(
            stats=_stats(pipeline, side if me == n - 1 else None),
            warnings=list(getattr(reader, "warnings", [])),
            truncated=truncated,
            set_truncated=bool(getattr(reader, "truncated", False)),
            cpu_seconds=sum(os.times()[:2]) - cpu,
        )
    yield ("done", result)


def _stats(pipeline: Pipeline, side: Any) -> dict[str, Any]:
    """The counts this worker adds to the summary."""
    d = pipeline.decoder.stats
    out: dict[str, Any] = {
        "frames": pipeline.stats.frames,
        "segments": pipeline.stats.segments,
        "candidate_segments": pipeline.stats.candidate_segments,
        "filtered": pipeline.stats.filtered,
        "first_ts_ns": pipeline.stats.first_ts_ns,
        "last_ts_ns": pipeline.stats.last_ts_ns,
        "evicted_empty": pipeline.reassembler.evicted_empty,
        "evicted_with_data": pipeline.reassembler.evicted_with_data,
    }
    decoders = [d] if side is None else [d, side.stats]
    for name in ("non_ip", "non_tcp", "malformed", "truncated", "fragments", "fragments_dropped"):
        out[name] = sum(getattr(s, name) for s in decoders)
    unsupported: dict[int, int] = {}
    for s in decoders:
        for k, v in s.unsupported_linktype.items():
            unsupported[k] = unsupported.get(k, 0) + v
    out["unsupported_linktype"] = unsupported
    return out


def add_stats(pipeline: Pipeline, stats: dict[str, Any]) -> None:
    """Add a worker's counts to the parent's (summary-only) pipeline."""
    pipeline.stats.frames += stats["frames"]
    pipeline.stats.segments += stats["segments"]
    pipeline.stats.candidate_segments += stats["candidate_segments"]
    pipeline.stats.filtered += stats["filtered"]
    pipeline.reassembler.evicted_empty += stats["evicted_empty"]
    pipeline.reassembler.evicted_with_data += stats["evicted_with_data"]
    mine = pipeline.stats
    first, last = stats["first_ts_ns"], stats["last_ts_ns"]
    if first is not None and (mine.first_ts_ns is None or first < mine.first_ts_ns):
        mine.first_ts_ns = first
    if last is not None and (mine.last_ts_ns is None or last > mine.last_ts_ns):
        mine.last_ts_ns = last
    d = pipeline.decoder.stats
    for name in ("non_ip", "non_tcp", "malformed", "truncated", "fragments", "fragments_dropped"):
        setattr(d, name, getattr(d, name) + stats[name])
    for k, v in stats["unsupported_linktype"].items():
        d.unsupported_linktype[k] = d.unsupported_linktype.get(k, 0) + v


# -- the parent ---------------------------------------------------------------------------------


@dataclass(slots=True)
class _Shard:
    """One worker as the merge sees it: its connection (or in-process messages), what it
    sent that is not merged yet, and its progress."""

    conn: Any
    process: Any
    #: The in-process shard's messages (run_sharded with `local`): read by running it on.
    local: Generator[tuple[Any, ...], None, None] | None = None
    progress: _Tag = (-1, 0, 0)
    bytes_read: int = 0
    flows: deque[tuple[int, bool]] = field(default_factory=deque)
    sessions: deque[tuple[tuple[int, int, int], Any]] = field(default_factory=deque)
    #: Keys of flows counted as sessions that ended without one (a heap).
    dropped: list[int] = field(default_factory=list)
    result: ShardResult | None = None


def run_sharded(
    n: int,
    open_frames: OpenFrames,
    make_pipeline: Callable[[], Pipeline],
    prepare: Callable[[Session], Any] | None = None,
    on_progress: Callable[[int], None] | None = None,
    *,
    local: bool = False,
) -> Iterator[tuple[int, Any] | list[ShardResult]]:
    """Run `n` workers; yield (session id, session) in the one-process order and numbering,
    then the list of the workers' ShardResults. With `prepare`, a worker sends
    prepare(session) instead of the session (e.g. its JSON line: the parent only writes it).
    With `local`, worker 0 is this process: it runs its shard between merges (n - 1 are
    forked), so merging takes no core from the workers and its sessions are not pickled.

    `open_frames(me, n)` is called in each worker (see OpenFrames).

    Raises:
        MailsniffError: a worker failed (its one-line message).
    """
    import multiprocessing  # here: one process (and every other command) never needs it

    methods = multiprocessing.get_all_start_methods()
    ctx: Any = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    shards: list[_Shard] = []
    # Objects made so far (the modules, the options) are left out of later collections, here
    # and in the forked workers: a collection writes to every object it visits, and each page
    # it writes stops being shared between the parent and its workers.
    gc.freeze()
    try:
        if local:  # started by the merge's first read of it, after the forks
            own = _messages(0, n, open_frames, make_pipeline, prepare)
            shards.append(_Shard(conn=None, process=None, local=own))
        for me in range(1 if local else 0, n):
            receive, send = ctx.Pipe(duplex=False)
            _widen(send)
            process = ctx.Process(
                target=_worker,
                args=(me, n, open_frames, make_pipeline, prepare, send),
                daemon=True,
            )
            process.start()
            send.close()
            shards.append(_Shard(conn=receive, process=process))
        yield from _merge(shards, on_progress)
        yield [s.result for s in shards if s.result is not None]
    finally:
        for shard in shards:
            if shard.local is not None:
                shard.local.close()  # its reader closed, if it stopped early
                continue
            shard.conn.close()
            if shard.result is not None:
                shard.process.join(5)  # done: it is only exiting
            if shard.process.is_alive():
                shard.process.terminate()
            shard.process.join()


def _widen(conn: Any) -> None:
    """Give a worker's pipe _PIPE_BYTES of room where the system allows it (else it keeps its
    default: the merge is the same, only the workers wait more)."""
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)
    if set_size is not None:
        try:
            fcntl.fcntl(conn.fileno(), set_size, _PIPE_BYTES)
        except OSError:
            pass


def _receive(shard: _Shard) -> None:
    if shard.local is not None:
        message = next(shard.local)  # the in-process shard: its next batch, read and analysed
    else:
        try:
            message = shard.conn.recv()
        except EOFError:
            raise MailsniffError("a --jobs worker ended without its results") from None
    kind = message[0]
    if kind == "batch":
        _, shard.progress, flows, sessions, shard.bytes_read, dropped = message
        shard.flows.extend(flows)
        shard.sessions.extend(sessions)
        for key in dropped:
            heapq.heappush(shard.dropped, key)
    elif kind == "done":
        shard.result = message[1]
    else:
        _, text, hint, code = message
        error = MailsniffError(text, hint=hint)
        error.exit_status = ExitStatus(code)
        raise error


class _Numbers:
    """Flow key -> number of the flows whose session has not come yet, as two arrays of
    machine integers sorted by key (keys are numbered in increasing order): a 100k-connection
    flood leaves 100k of them waiting, which a dict of Python ints held in ten times the memory.
    A number taken is marked -1 and the arrays are compacted once most entries are taken."""

    __slots__ = ("_keys", "_numbers", "_taken")

    def __init__(self) -> None:
        self._keys = array("q")
        self._numbers = array("q")
        self._taken = 0

    def __len__(self) -> int:
        return len(self._keys) - self._taken

    def add(self, key: int, number: int) -> None:
        """Number `key`, larger than every key added before (the merge numbers flows in key
        order)."""
        assert not self._keys or key > self._keys[-1], "flow keys out of order"
        self._keys.append(key)
        self._numbers.append(number)

    def pop(self, key: int) -> int | None:
        """The number of `key` (forgotten now), or None when it has none."""
        keys = self._keys
        i = bisect_left(keys, key)
        if i == len(keys) or keys[i] != key:
            return None
        number = self._numbers[i]
        if number < 0:
            return None
        self._numbers[i] = -1
        self._taken += 1
        if self._taken > 1024 and self._taken * 2 > len(keys):
            self._compact()
        return number

    def _compact(self) -> None:
        live = [i for i, number in enumerate(self._numbers) if number >= 0]
        keys, numbers = self._keys, self._numbers
        self._keys = array("q", [keys[i] for i in live])
        self._numbers = array("q", [numbers[i] for i in live])
        self._taken = 0


def _next_to_read(shards: list[_Shard]) -> _Shard:
    """The shard the merge reads next: the one furthest behind, which holds up the output;
    but while that is a process with nothing sent yet, the in-process shard runs on (until
    _LOCAL_AHEAD of its sessions and flows wait to be merged) instead of leaving its core
    idle."""
    behind = min(shards, key=lambda s: s.progress)
    if behind.local is not None:
        return behind
    for s in shards:
        if s.local is not None and s.result is None:
            if len(s.sessions) + len(s.flows) < _LOCAL_AHEAD and not behind.conn.poll():
                return s
    return behind


def _merge(
    shards: list[_Shard], on_progress: Callable[[int], None] | None
) -> Iterator[tuple[int, Any]]:
    next_id = 1
    ids = _Numbers()
    while True:
        horizon = min(s.progress for s in shards)
        frame = horizon[0]
        limit = (frame + 1) * PER_FRAME if frame < _INF else _INF * PER_FRAME
        # Number the flows every worker is past, in key order.
        ready_flows = []
        for s in shards:
            taken = []
            while s.flows and s.flows[0][0] < limit:
                taken.append(s.flows.popleft())
            ready_flows.append(taken)
        for key, is_session in heapq.merge(*ready_flows):
            if is_session:
                ids.add(key, next_id)
            next_id += 1
        # Forget the numbers of flows whose session will never come (a flood's half-open
        # connections evicted before their first byte): they would pile up here.
        for s in shards:
            while s.dropped and s.dropped[0] < limit:
                ids.pop(heapq.heappop(s.dropped))
        # Emit the sessions every worker is past, in tag order.
        ready_sessions = []
        for s in shards:
            taken_s = []
            while s.sessions and s.sessions[0][0] <= horizon:
                taken_s.append(s.sessions.popleft())
            ready_sessions.append(taken_s)
        for tag, payload in heapq.merge(*ready_sessions, key=lambda item: item[0]):
            number = ids.pop(tag[2])
            if number is None:
                raise KeyError(tag[2])  # a session of a flow never numbered: a bug
            if isinstance(payload, Session):
                payload.id = number
            yield number, payload
        if frame >= _INF:
            break
        if on_progress is not None:
            on_progress(min(s.bytes_read for s in shards))
        _receive(_next_to_read(shards))
    for shard in shards:
        while shard.result is None:
            _receive(shard)
