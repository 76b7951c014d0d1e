"""The read path: frames -> TCP segments -> reassembled flows -> protocol sessions -> analysis.

Streaming: sessions are yielded as their connections end, so memory depends on the number of
connections open at once, not on the size of the capture. Only TCP segments of candidate flows
(mail ports, or a flow whose first payload is an SMTP/POP3 greeting, or a bare `220` greeting
answered by EHLO/HELO) reach reassembly.
"""

from __future__ import annotations

import ipaddress
import socket
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from mailsniff.analysis.findings import analyse
from mailsniff.analysis.select import Selection
from mailsniff.capture.frame import Frame
from mailsniff.limits import (
    HELD_BYTES,
    MAX_CONFLICTS_RECORDED,
    MAX_HELD_FLOWS,
    MAX_UNDECIDED_FLOWS,
    PARK_SESSIONS_AT,
    PROBE_PAYLOADS,
)
from mailsniff.model import (
    AnomalyKind,
    Endpoint,
    Session,
    SessionAnomaly,
    timestamp_in_range,
)
from mailsniff.net.decoder import PacketDecoder
from mailsniff.net.segment import TCP_SYN, Segment
from mailsniff.park import ParkingLot
from mailsniff.protocols.base import CLIENT
from mailsniff.reassembly import Flow, FlowData, FlowEnd, FlowEvent, FlowGap, FlowStart, Reassembler
from mailsniff.session import registry
from mailsniff.session.base import ParserDriven, SessionHandler
from mailsniff.session.entry import ProtocolEntry
from mailsniff.session.opaque import OpaqueHandler
from mailsniff.sink import OpenSink

if TYPE_CHECKING:
    from mailsniff.tls import KeyLog

# mailsniff.session.tls_layer (and the TLS modules) are imported where TLS happens
# (`_tls_layer`) or a key log is given: reading cleartext mail never loads them.

__all__ = ["SessionFilter", "Pipeline", "server_ports"]

#: Check idle flows every this many candidate segments.
_EXPIRE_EVERY: Final = 4096


def server_ports() -> frozenset[int]:
    """Every registered protocol's default ports, cleartext and implicit TLS."""
    return frozenset(p for e in registry.entries() for p in e.all_ports)


def _is_greeting(data: bytes) -> bool:
    return registry.detect_greeting(data) is not None


def _conflict_anomalies(flow: Flow) -> list[SessionAnomaly]:
    """One `overlap-conflict` anomaly per range captured twice with different content."""
    conflicts = flow.conflicts
    if not conflicts:
        return []
    kind = AnomalyKind.OVERLAP_CONFLICT
    out = [
        SessionAnomaly(
            kind,
            f"{c.length} {c.direction.value} bytes at offset {c.offset} captured twice with "
            f"different content; the first copy was kept (sha256 {c.kept_sha256}), the later "
            f"one discarded (sha256 {c.other_sha256})",
            c.direction,
            c.offset,
        )
        for c in conflicts
    ]
    if len(conflicts) >= MAX_CONFLICTS_RECORDED:
        detail = (
            f"{flow.overlap_conflicts} conflicting segments in all, "
            f"only the first {MAX_CONFLICTS_RECORDED} ranges listed"
        )
        out.append(SessionAnomaly(kind, detail))
    return out


def _ip_text(packed: bytes) -> str:
    if len(packed) == 4:  # inet_ntoa (C) writes what ipaddress writes for IPv4
        return socket.inet_ntoa(packed)
    return str(ipaddress.ip_address(packed))


#: Which sessions to keep: the command line's filters (analysis/select.py).
SessionFilter = Selection


@dataclass(slots=True)
class _Watch:
    """A flow on an unknown port not yet recognised: its SYNs, and payloads seen so far."""

    syns: list[Segment] = field(default_factory=list)
    payloads: int = 0
    #: After a greeting that may open a protocol (SMTP's `220` that does not name SMTP): that
    #: protocol, its sender, and the segments held (the greeting's, then the client's) until the
    #: client's first line tells.
    candidate: ProtocolEntry | None = None
    server: tuple[bytes, int] | None = None
    held: list[Segment] = field(default_factory=list)
    held_bytes: int = 0
    hello: bytes = b""


@dataclass(slots=True)
class _Active:
    session: Session
    handler: SessionHandler
    flow: Flow
    #: No TLS layer reads the connection yet and its handler's parser may report TLS started
    #: (STARTTLS, STLS): the stream bytes handed to the handler so far, per direction, say where
    #: the layer takes over (see `_tls_layer`).
    clear: bool = False
    client_fed: int = 0
    server_fed: int = 0


@dataclass(slots=True)
class PipelineStats:
    frames: int = 0
    segments: int = 0
    candidate_segments: int = 0
    sessions: int = 0
    greeting_detected: int = 0
    #: mail connections and sessions the filters (--host, --address, ...) left out
    filtered: int = 0
    #: capture times of the earliest and the latest frame read (None before any)
    first_ts_ns: int | None = None
    last_ts_ns: int | None = None


@dataclass(slots=True)
class Pipeline:
    """Turns frames into finished, analysed Sessions. Feed frames, collect sessions.

    The same object serves offline reading (`run`) and live capture (`feed` / `expire` /
    `finish` called by the capture loop).
    """

    session_filter: SessionFilter = field(default_factory=SessionFilter)
    decoder: PacketDecoder = field(default_factory=PacketDecoder)
    reassembler: Reassembler = field(
        default_factory=lambda: Reassembler(server_ports=server_ports())
    )
    stats: PipelineStats = field(default_factory=PipelineStats)
    on_session: Callable[[Session], None] | None = None
    #: Keep each session's line-by-line transcript (for --transcript and live views).
    keep_transcript: bool = False
    #: Export hook: asked for a sink at the start of every message (None: no export).
    open_sink: OpenSink | None = None
    #: Check for idle flows every _EXPIRE_EVERY candidate segments (False: the caller calls
    #: `expire` at points of its own, as `read` does to give the same result with --jobs).
    auto_expire: bool = True
    #: TLS key log (--keylog): STARTTLS and implicit-TLS sessions are decrypted with it.
    keylog: KeyLog | None = None
    #: Live capture: hold records whose keys are not logged yet (see `retry_keys`).
    wait_for_keys: bool = False
    _active: dict[int, _Active] = field(default_factory=dict)
    #: Accepted flows with no data yet: (protocol, implicit TLS, greeting after a preamble).
    _waiting: dict[int, tuple[ProtocolEntry, bool, bool]] = field(default_factory=dict)
    _shapes: dict[tuple[str, bool, bool], tuple[ProtocolEntry, bool, bool]] = field(
        default_factory=dict
    )
    _detected: dict[tuple[bytes, int, bytes, int], tuple[ProtocolEntry, tuple[bytes, int]]] = field(
        default_factory=dict
    )
    _undecided: OrderedDict[tuple[bytes, int, bytes, int], _Watch] = field(
        default_factory=OrderedDict
    )
    #: Flows whose mail dialogue began after other bytes (keys: server first), and the ids of
    #: the Flows made of them: their start is trusted as a line start, not a midstream guess.
    _after_preamble: set[tuple[bytes, int, bytes, int]] = field(default_factory=set)
    _starts_at_greeting: set[int] = field(default_factory=set)
    _ignored: OrderedDict[tuple[bytes, int, bytes, int], None] = field(default_factory=OrderedDict)
    #: Undecided flows holding segments while their client's first line is awaited.
    _holding: OrderedDict[tuple[bytes, int, bytes, int], None] = field(default_factory=OrderedDict)
    _ready: list[Session] = field(default_factory=list)
    _last_ts: int = 0
    #: More sessions than this in memory at an expiry check: the idlest are parked on disk
    #: (mailsniff.park) until their connection's next event, down to half of it.
    park_at: int = PARK_SESSIONS_AT
    #: Parked sessions: flow id -> ticket in `_lot`.
    _parked: dict[int, int] = field(default_factory=dict)
    _lot: ParkingLot | None = None
    #: Sessions found unfit to park (a handler that cannot be pickled, an export in progress)
    #: at the last attempt: not tried again before their next event.
    _unparkable: set[int] = field(default_factory=set)
    #: When a list: the ids of accepted flows that ended without a session after all (evicted
    #: before their first byte, or left out by a filter on the analysed session), for --jobs'
    #: numbering (mailsniff.parallel), which otherwise waits for their sessions for ever.
    dropped: list[int] | None = None
    #: The registered protocols' ports, read once (segments on them go straight to reassembly).
    _ports: frozenset[int] = field(default_factory=server_ports)

    # -- input ------------------------------------------------------------------------------

    def run(self, frames: Iterable[Frame]) -> Iterator[Session]:
        """Feed every frame and yield sessions as their connections end, then the rest."""
        for frame in frames:
            self.feed(frame)
            if self._ready:
                yield from self._drain()
        yield from self.finish_each()

    def feed(self, frame: Frame) -> None:
        self.stats.frames += 1
        stats, ts = self.stats, frame.ts_ns
        if stats.first_ts_ns is None or ts < stats.first_ts_ns:
            stats.first_ts_ns = ts
        if stats.last_ts_ns is None or ts > stats.last_ts_ns:
            stats.last_ts_ns = ts
        seg = self.decoder.decode(frame)
        if seg is not None:
            self.feed_segment(seg)

    def feed_segment(self, seg: Segment) -> None:
        """Take a segment decoded elsewhere (the frame was counted by the caller)."""
        self.stats.segments += 1
        if seg.dport in self._ports or seg.sport in self._ports:
            self._reassemble(seg, None)
        else:
            self._probe(seg)

    def expire(self, now_ns: int) -> None:
        self._handle(self.reassembler.expire(now_ns))
        if len(self._active) > self.park_at:
            self._park()

    @property
    def parked_sessions(self) -> int:
        """Open sessions parked on disk right now (not in `open_sessions`)."""
        return len(self._parked)

    def _park(self) -> None:
        """Park the sessions idle the longest until half of `park_at` stay in memory."""
        from mailsniff.session.tls_layer import TlsLayer

        if self._lot is None:
            # Shared objects are parked by reference: the export hook and the key log.
            self._lot = ParkingLot({"open_sink": self.open_sink, "keylog": self.keylog})
        lot, active, parked, unfit = self._lot, self._active, self._parked, self._unparkable
        idlest = sorted((a.flow.last_ns, fid) for fid, a in active.items() if fid not in unfit)
        excess = len(active) - self.park_at // 2
        for _, fid in idlest:
            if excess <= 0:
                break
            a = active[fid]
            ticket = (
                lot.park((a.session, a.handler, a.clear, a.client_fed, a.server_fed))
                if isinstance(a.handler, ParserDriven | TlsLayer)
                else None
            )
            if ticket is None:
                unfit.add(fid)
                continue
            del active[fid]
            parked[fid] = ticket
            excess -= 1

    def finish(self) -> None:
        """End of input: deliver what is buffered and end every open connection."""
        # Collect first: finish_each() drains `_ready` while it runs, so extending `_ready`
        # from it directly would hand every session back to it for ever.
        ended = list(self.finish_each())
        self._ready.extend(ended)

    def finish_each(self) -> Iterator[Session]:
        """`finish()` as a generator: each open connection is ended, its session built and
        yielded before the next one's, so the end of a capture with many open connections
        does not hold all their sessions at once."""
        self.decoder.finish()
        yield from self._drain()
        for events in self.reassembler.flush_each():
            self._handle(events)
            yield from self._drain()

    def drain(self) -> list[Session]:
        out, self._ready = self._ready, []
        return out

    def _drain(self) -> Iterator[Session]:
        while self._ready:
            yield self._ready.pop(0)

    def retry_keys(self, now_ns: int) -> None:
        """Read what was appended to the key log and decrypt the records held for it."""
        if self.keylog is None or not self.keylog.refresh():
            return
        from mailsniff.session.tls_layer import TlsLayer

        for active in self._active.values():
            if isinstance(active.handler, TlsLayer) and active.handler.waiting_for_keys:
                active.handler.retry_keys(now_ns)

    @property
    def open_sessions(self) -> list[Session]:
        return [a.session for a in self._active.values()]

    # -- flows on unknown ports -------------------------------------------------------------

    def _probe(self, seg: Segment) -> None:
        """Watch a flow on a port that is not a mail port for an SMTP/POP3 greeting.

        The greeting is looked for in the first PROBE_PAYLOADS payload segments, so that a
        dialogue behind a proxy handshake (SOCKS) is found too; such a flow starts at the
        greeting, and what came before it is not parsed.
        """
        key = (seg.src, seg.sport, seg.dst, seg.dport)
        rkey = (seg.dst, seg.dport, seg.src, seg.sport)
        detected = self._detected.get(key) or self._detected.get(rkey)
        if detected is not None:
            self._reassemble(seg, detected[1])
            return
        if key in self._ignored or rkey in self._ignored:
            return
        ukey = key if key in self._undecided or rkey not in self._undecided else rkey
        watch = self._undecided.get(ukey)
        if watch is None:
            watch = self._undecided[ukey] = _Watch()
            if len(self._undecided) > MAX_UNDECIDED_FLOWS:
                self._undecided.popitem(last=False)
        if watch.server is not None:
            self._await_hello(ukey, watch, seg)
            return
        if not seg.payload:
            if seg.flags & TCP_SYN and len(watch.syns) < 4:
                watch.syns.append(seg)
            return
        found = registry.detect_greeting(seg.payload)
        if found is not None:
            self._detect(ukey, watch, seg, found)
        elif (maybe := registry.detect_maybe(seg.payload)) is not None:
            # `220 Greetings`: SMTP if the client answers with EHLO/HELO (FTP's answer is USER).
            watch.candidate = maybe
            watch.server = (seg.src, seg.sport)
            watch.held.append(seg)
            watch.held_bytes = len(seg.payload)
            self._holding[ukey] = None
            if len(self._holding) > MAX_HELD_FLOWS:
                self._undecided.pop(self._holding.popitem(last=False)[0], None)
        else:
            watch.payloads += 1
            if watch.payloads >= PROBE_PAYLOADS:
                self._give_up(ukey)

    def _await_hello(
        self, ukey: tuple[bytes, int, bytes, int], watch: _Watch, seg: Segment
    ) -> None:
        """A flow greeted by what may open `watch.candidate`: decide on the client's first bytes."""
        if not seg.payload:
            return
        watch.held_bytes += len(seg.payload)
        if watch.held_bytes > HELD_BYTES:
            self._give_up(ukey)
            return
        if (seg.src, seg.sport) == watch.server:
            watch.held.append(seg)  # more of the greeting
            return
        watch.hello += seg.payload[:8]
        assert watch.candidate is not None and watch.candidate.hello is not None
        verdict = watch.candidate.hello(watch.hello)
        if verdict is None:
            watch.held.append(seg)
        elif verdict:
            greeting = watch.held.pop(0)
            watch.held.append(seg)
            self._detect(ukey, watch, greeting, watch.candidate)
        else:
            self._give_up(ukey)

    def _give_up(self, ukey: tuple[bytes, int, bytes, int]) -> None:
        """Not a mail dialogue: stop watching the flow."""
        self._undecided.pop(ukey, None)
        self._holding.pop(ukey, None)
        self._ignored[ukey] = None
        if len(self._ignored) > MAX_UNDECIDED_FLOWS:
            self._ignored.popitem(last=False)

    def _detect(
        self,
        ukey: tuple[bytes, int, bytes, int],
        watch: _Watch,
        seg: Segment,
        protocol: ProtocolEntry,
    ) -> None:
        """`seg` holds the greeting of `protocol`: reassemble the flow from there (with the
        segments the watch held after it)."""
        del self._undecided[ukey]
        self._holding.pop(ukey, None)
        self.stats.greeting_detected += 1
        key = (seg.src, seg.sport, seg.dst, seg.dport)
        server = (seg.src, seg.sport)
        self._detected[key] = (protocol, server)
        if len(self._detected) > MAX_UNDECIDED_FLOWS:
            self._detected.pop(next(iter(self._detected)))
        if watch.payloads:
            # Other bytes came first (a proxy handshake): the mail dialogue starts here.
            self._after_preamble.add(key)
        else:
            for syn in watch.syns:
                self._reassemble(syn, server)
        self._reassemble(seg, server)
        for held in watch.held:
            self._reassemble(held, server)

    # -- reassembly -> sessions -------------------------------------------------------------

    def _reassemble(self, seg: Segment, server: tuple[bytes, int] | None) -> None:
        self.stats.candidate_segments += 1
        events = self.reassembler.feed(seg, server=server)
        if events:
            self._handle(events)
        if seg.ts_ns > self._last_ts:
            self._last_ts = seg.ts_ns
        if self.auto_expire and self.stats.candidate_segments % _EXPIRE_EVERY == 0:
            self.expire(self._last_ts)

    def _protocol_of(self, flow: Flow) -> tuple[ProtocolEntry, bool] | None:
        found = registry.for_port(flow.server[1])
        if found is not None:
            return found
        for key in (
            (flow.server[0], flow.server[1], flow.client[0], flow.client[1]),
            (flow.client[0], flow.client[1], flow.server[0], flow.server[1]),
        ):
            if key in self._detected:
                return self._detected[key][0], False
        # The side holding a mail port may have been taken for the client (no SYN seen and a
        # mail port on both ends, e.g. MTA port 25 -> 25): fall back on the client port.
        return registry.for_port(flow.client[1])

    def _start(self, flow: Flow) -> None:
        found = self._protocol_of(flow)
        if found is None:
            return
        entry, implicit_tls = found
        if not self.session_filter.keeps_protocol(entry.name) or not self.session_filter.keeps_flow(
            flow.client, flow.server
        ):
            self.stats.filtered += 1
            return
        self.stats.sessions += 1
        key = (flow.server[0], flow.server[1], flow.client[0], flow.client[1])
        preamble = key in self._after_preamble
        if preamble:
            self._after_preamble.discard(key)
            self._starts_at_greeting.add(flow.id)
        # The session and its parser are built when the flow's first event after its start
        # comes: a half-open connection (a scan) costs only the reassembler's state meanwhile
        # (and one entry here: the few distinct triples are shared, not one per flow).
        shape = (entry, implicit_tls, preamble)
        self._waiting[flow.id] = self._shapes.setdefault(
            (entry.name, implicit_tls, preamble), shape
        )

    def _activate(self, flow: Flow) -> _Active | None:
        """The session of an accepted flow that had no data or end yet, built now, or read back
        from where it was parked (or None)."""
        ticket = self._parked.pop(flow.id, None)
        if ticket is not None:
            assert self._lot is not None
            session, handler, clear, client_fed, server_fed = self._lot.unpark(ticket)
            active = self._active[flow.id] = _Active(
                session, handler, flow, clear, client_fed, server_fed
            )
            return active
        waiting = self._waiting.pop(flow.id, None)
        if waiting is None:
            return None
        entry, implicit_tls, preamble = waiting
        session = Session(
            id=flow.id,
            protocol=entry.name,
            client=Endpoint(_ip_text(flow.client[0]), flow.client[1]),
            server=Endpoint(_ip_text(flow.server[0]), flow.server[1]),
            start_ns=flow.start_ns,
            end_ns=flow.start_ns,
            implicit_tls=implicit_tls,
            tls=implicit_tls,
            keep_transcript=self.keep_transcript,
        )
        if preamble:
            detail = (
                f"{entry.label} greeting found after other bytes on this connection "
                "(a proxy or tunnel handshake, not parsed)"
            )
            session.anomalies.append(SessionAnomaly(AnomalyKind.PREAMBLE, detail))
        inner = None if entry.handler is None else entry.handler(session, self.open_sink)
        active = self._active[flow.id] = _Active(
            session, inner or OpaqueHandler(session), flow, clear=inner is not None
        )
        if implicit_tls:
            self._tls_layer(active, None)
        return active

    def _tls_layer(self, active: _Active, ts_ns: int | None) -> None:
        """Put a TLS layer under the connection's protocol handler, the moment TLS can happen:
        before the first byte on an implicit-TLS port (`ts_ns` None), or as the handler's parser
        reports TLS started (STARTTLS, STLS). The layer decrypts with the key log, or at least
        describes the TLS; a dialogue that stays in clear never has one."""
        from mailsniff.session.tls_layer import TlsLayer

        session, inner = active.session, active.handler
        if ts_ns is None:
            active.handler = TlsLayer(
                session,
                inner if active.clear else None,
                self.keylog,
                implicit=True,
                wait_for_keys=self.wait_for_keys,
                greeting=_is_greeting,
            )
        else:
            active.handler = TlsLayer.take_over(
                session,
                inner,
                self.keylog,
                fed=(active.client_fed, active.server_fed),
                ts_ns=ts_ns,
                wait_for_keys=self.wait_for_keys,
            )
        active.clear = False

    def _handle(self, events: list[FlowEvent]) -> None:
        for event in events:
            if isinstance(event, FlowData):
                flow, ts_ns, direction, data = event.flow, event.ts_ns, event.direction, event.data
                active = self._active.get(flow.id) or self._activate(flow)
                if active is not None:
                    active.handler.data(ts_ns, direction, data)
                    if active.clear:
                        if direction is CLIENT:
                            active.client_fed += len(data)
                        else:
                            active.server_fed += len(data)
                        if active.session.tls:
                            self._tls_layer(active, ts_ns)
                    if self._unparkable:  # it moved on: may be fit to park when idle again
                        self._unparkable.discard(flow.id)
            elif isinstance(event, FlowStart):
                self._start(event.flow)
            elif isinstance(event, FlowGap):
                active = self._active.get(event.flow.id) or self._activate(event.flow)
                if active is not None:
                    if event.length == 0 and event.flow.id in self._starts_at_greeting:
                        continue  # began at the greeting: a line start, nothing lost after it
                    active.handler.gap(event.ts_ns, event.direction, event.length)
                    if active.clear:
                        if event.direction is CLIENT:
                            active.client_fed += event.length
                        else:
                            active.server_fed += event.length
            elif isinstance(event, FlowEnd):
                if event.reason == "evicted" and not (
                    event.flow.id in self._active or event.flow.id in self._parked
                ):
                    # Evicted under pressure before it carried a byte (a scan's half-open
                    # connection): forgotten, counted in the reassembler's evicted_empty.
                    if (
                        self._waiting.pop(event.flow.id, None) is not None
                        and self.dropped is not None
                    ):
                        self.dropped.append(event.flow.id)
                    self._starts_at_greeting.discard(event.flow.id)
                    continue
                self._activate(event.flow)
                active = self._active.pop(event.flow.id, None)
                self._starts_at_greeting.discard(event.flow.id)
                self._unparkable.discard(event.flow.id)
                if active is not None:
                    self._finish_session(active, event.flow, event.ts_ns, event.reason)

    def _finish_session(self, active: _Active, flow: Flow, ts_ns: int, reason: str) -> None:
        session = active.session
        handler = active.handler
        if self.keylog is not None:
            from mailsniff.session.tls_layer import TlsLayer

            if isinstance(handler, TlsLayer) and handler.waiting_for_keys:
                self.keylog.refresh()  # live: the client may have logged its keys just now
                handler.retry_keys(ts_ns)
        handler.close(ts_ns)
        session.start_ns = flow.start_ns
        session.end_ns = max(flow.last_ns, flow.start_ns)
        session.close_reason = reason
        session.handshake_seen = flow.handshake_seen
        session.gaps = [g for g in flow.gaps if g.length > 0]
        session.client_bytes = flow.client_bytes
        session.server_bytes = flow.server_bytes
        session.packets = flow.packets
        session.anomalies.extend(_conflict_anomalies(flow))
        if reason == "evicted":
            bound = self.reassembler.max_flows
            detail = (
                f"connection evicted under memory pressure (more than {bound} "
                "connections open at once): reported as it stood; its later packets, if any, "
                "appear as a new midstream session"
            )
            session.anomalies.append(SessionAnomaly(AnomalyKind.EVICTED, detail))
        session.complete = flow.handshake_seen and reason in ("fin", "rst") and not session.gaps
        if not (timestamp_in_range(session.start_ns) and timestamp_in_range(session.end_ns)):
            detail = (
                "timestamp outside years 1-9999 (damaged or forged capture clock): times are "
                "given as @SECONDS since the epoch"
            )
            session.anomalies.append(SessionAnomaly(AnomalyKind.TIMESTAMP_RANGE, detail))
        analyse(session, tls_from_ns=session.tls_from_ns)
        if self.session_filter.after_analysis and not self.session_filter.keeps_session(session):
            self.stats.filtered += 1
            if self.dropped is not None:
                self.dropped.append(flow.id)
            return
        if self.on_session is not None:
            self.on_session(session)
        self._ready.append(session)
