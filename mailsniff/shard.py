"""The per-frame loops of `read`: the link-type check on the reader's frames, the one-process
loop (`drive`), and the routing of a `read --jobs` worker (mailsniff.parallel), compiled in the
fast build.

Every worker reads every frame of the input and keeps those of its own connections, so what a
worker does with a frame it does not own is paid once per worker: with two workers, that cost
alone bounds the speedup. Here the routing runs in compiled code and only comes back to the
worker's (interpreted) loop at the points where it has something to do: sessions ready, a batch
of progress to report, a live source with nothing new.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Final, Protocol, TypeVar

from mailsniff.capture.frame import Frame, FrameOrTime
from mailsniff.capture.route import mix, raw_owner
from mailsniff.errors import UnsupportedLinkTypeError
from mailsniff.model import Session
from mailsniff.net.decoder import PacketDecoder
from mailsniff.net.link import is_supported, linktype_name
from mailsniff.net.segment import Segment
from mailsniff.pipeline import Pipeline

__all__ = [
    "BATCH",
    "EXPIRE_EVERY",
    "PER_FRAME",
    "ShardFeeder",
    "checked_frames",
    "drive",
    "frame_owner",
    "mix",
    "routed_frames",
]

#: Idle flows are checked before every this many frames (global frame numbers; a power of 2).
EXPIRE_EVERY: Final = 4096
#: Flow keys: frame index * PER_FRAME + flows created earlier within that frame.
PER_FRAME: Final = 1 << 12
#: Frames between two progress reports of a worker (a power of 2).
BATCH: Final = 2048
#: What `ShardFeeder.run` stops for.
IDLE: Final = 0  # a live source had nothing new: report progress
ENDED: Final = 1  # sessions are ready in the pipeline (`ShardFeeder.phase` says which phase)
REPORT: Final = 2  # the last frame of a batch was read: report progress

_Item = TypeVar("_Item", Frame, FrameOrTime)


class FrameReader(Protocol):
    """What `checked_frames` reads: frames, and the link types the input declares."""

    @property
    def linktypes(self) -> Sequence[int]: ...

    def __iter__(self) -> Iterator[Frame]: ...


class RoutingReader(FrameReader, Protocol):
    """A reader that can route for a `read --jobs` worker (mailsniff.capture.route)."""

    def routed(self, me: int, n: int) -> Iterator[FrameOrTime]: ...


def checked_frames(
    reader: FrameReader, progress: Callable[[], None] | None = None, every: int = 2048
) -> Iterator[Frame]:
    """The reader's frames, each new link type checked (an input of none that can be decoded is
    an UnsupportedLinkTypeError), `progress()` called every `every` frames."""
    return _checked(reader, iter(reader), progress, every)


def routed_frames(reader: RoutingReader, me: int, n: int) -> Iterator[FrameOrTime]:
    """`checked_frames` for worker `me` of `n`: each frame another worker owns only as its
    capture time, where the reader can tell from the raw bytes."""
    return _checked(reader, reader.routed(me, n), None, 0)


def _checked(
    reader: FrameReader, items: Iterator[_Item], progress: Callable[[], None] | None, every: int
) -> Iterator[_Item]:
    checked: set[int] = set()
    count = 0
    for frame in items:
        if not isinstance(frame, int):  # (a routed-away frame: Ethernet, supported)
            linktype = frame.linktype
            if linktype not in checked:
                checked.add(linktype)
                if not is_supported(linktype) and not any(
                    is_supported(lt) for lt in reader.linktypes
                ):
                    raise UnsupportedLinkTypeError(linktype, name=linktype_name(linktype))
        if progress is not None:
            count += 1
            if count % every == 0:
                progress()
        yield frame


def drive(pipeline: Pipeline, frames: Iterable[Frame], emit: Callable[[Session], None]) -> None:
    """One process: feed every frame, expiring idle flows at the fixed frame numbers, and hand
    each finished session to `emit` in the order they end."""
    pipeline.auto_expire = False
    expire_mask = EXPIRE_EVERY - 1
    latest = 0
    index = 0
    for frame in frames:
        if index and not index & expire_mask:
            pipeline.expire(latest)
            for session in pipeline.drain():
                emit(session)
        index += 1
        if frame.ts_ns > latest:
            latest = frame.ts_ns
        pipeline.feed(frame)
        if pipeline._ready:
            for session in pipeline.drain():
                emit(session)
    # The connections still open are ended one at a time, each session handed on before the
    # next is built (not all built first: 100k open connections held 100k sessions at once).
    for session in pipeline.finish_each():
        emit(session)


def frame_owner(frame: Frame, n: int) -> int:
    """The worker of a frame told from its raw bytes (capture.route.raw_owner); -1 when the
    frame must be decoded to tell."""
    data = frame.data
    return raw_owner(frame.linktype, data, 0, len(data), n)


class ShardFeeder:
    """Worker `me` of `n`: reads every frame, feeds `pipeline` those of its own connections.

    Ethernet/IPv4 frames that are not fragments are routed from their raw bytes
    (capture.route.raw_owner; by the reader already with `routed_frames`, which leaves only the
    capture time of another worker's frame); every other frame is decoded by `side` (in every
    worker: IP fragments are reassembled everywhere) and routed by its segment. Frames that
    decode to no TCP segment are counted by the last worker only. Idle flows
    are expired at fixed frame numbers. Flows are keyed by (frame index, order within the frame)
    and listed in `flows` as (key, has a session) for the parent's numbering.
    """

    def __init__(self, me: int, n: int, pipeline: Pipeline, side: PacketDecoder) -> None:
        self.me = me
        self.n = n
        self.pipeline = pipeline
        self.side = side
        #: Global index of the last frame read (-1 before any).
        self.index = -1
        #: Largest and smallest capture time read so far (every worker sees every frame).
        self.latest = 0
        self.first: int | None = None
        #: Flows created since the caller last took them: (key, has a session).
        self.flows: list[tuple[int, bool]] = []
        #: With ENDED: 0 for sessions ended by an expiry check, 1 for those ended by a frame.
        self.phase = 0

    def run(self, frames: Iterable[FrameOrTime | None]) -> Iterator[int]:
        """Feed `frames` (a frame another worker owns may come as its capture time only); stops
        (yields IDLE, ENDED or REPORT) when the caller has work."""
        pipeline = self.pipeline
        expire_mask = EXPIRE_EVERY - 1
        batch_mask = BATCH - 1
        index = self.index
        latest = self.latest
        # The smallest time as a plain int (no None to box it): `any_time` says if there is one.
        any_time = self.first is not None
        first = self.first if self.first is not None else 0
        # The counters live in locals and reach the attributes at each stop and at the end (an
        # error from the reader included): half the frames are another worker's, and each
        # costs only the few lines below.
        try:
            for frame in frames:
                if frame is None:  # a live source with nothing new
                    self.index = index
                    yield IDLE
                    continue
                index += 1
                if index and not index & expire_mask:
                    pipeline.expire(latest)
                    if pipeline._ready:
                        self.index = index
                        self.phase = 0
                        yield ENDED
                # A frame another worker owns comes as its capture time only (routed_frames).
                ts = frame if isinstance(frame, int) else frame.ts_ns
                if ts > latest:
                    latest = ts
                if not any_time or ts < first:
                    first = ts
                    any_time = True
                if not isinstance(frame, int) and self._take(index, frame):
                    self.index = index
                    self.latest = latest
                    self.phase = 1
                    yield ENDED
                if index & batch_mask == batch_mask:
                    self.index = index
                    yield REPORT
        finally:
            self.index = index
            self.latest = latest
            self.first = first if any_time else None

    def _take(self, index: int, frame: Frame) -> bool:
        """Feed `frame` if it is this worker's; True when sessions are then ready."""
        me, n = self.me, self.n
        owner = frame_owner(frame, n)
        if owner == me:
            self._feed_own(index, frame, None)
        elif owner < 0:
            seg = self.side.decode(frame)
            if seg is None:
                if me == n - 1:
                    self.pipeline.stats.frames += 1
                return False
            if segment_owner(seg, n) != me:
                return False
            self._feed_own(index, None, seg)
        else:
            return False
        return bool(self.pipeline._ready)

    def _feed_own(self, index: int, frame: Frame | None, seg: Segment | None) -> None:
        pipeline = self.pipeline
        reassembler = pipeline.reassembler
        base = index * PER_FRAME
        reassembler._next_id = base
        if seg is None:
            assert frame is not None
            pipeline.feed(frame)
        else:
            pipeline.stats.frames += 1
            pipeline.feed_segment(seg)
        created = reassembler._next_id - base
        if created:
            done = {s.id for s in pipeline._ready}
            waiting, active = pipeline._waiting, pipeline._active
            for key in range(base, base + created):
                self.flows.append((key, key in waiting or key in active or key in done))


def segment_owner(seg: Segment, n: int) -> int:
    """The worker of a decoded segment: the same hash the routing computes from raw bytes."""
    ips = int.from_bytes(seg.src, "big") + int.from_bytes(seg.dst, "big")
    return mix(ips, seg.sport + seg.dport, n)
