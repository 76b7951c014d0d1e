"""TCP reassembly per connection and direction, gap-aware, sequence numbers mod 2**32 (RFC 9293).

`Reassembler.feed()` takes decoded `Segment`s and returns flow events in stream order:
`FlowStart`, then per direction `FlowData` / `FlowGap`, then one `FlowEnd`. Policies:

* **Offsets.** Each direction counts stream offsets from 0 = the first byte after the SYN (the
  three-way handshake gives the ISN; a SYN-ACK alone gives both ISNs, and the client's first ACK
  after its SYN gives the server's ISN when the SYN-ACK itself was not captured). Sequence numbers
  are unwrapped around the next expected byte (RFC 9293 3.4: comparisons mod 2**32), so a stream
  crossing 2**32 and streams longer than 4 GiB are seamless.
* **Midstream start.** A direction whose SYN was never seen starts at the first payload byte
  captured, preceded by `FlowGap(offset=0, length=0)` ("unknown bytes before this"), so a parser
  resynchronises at the next line boundary. That marker is not recorded in `Flow.gaps` (it has no
  length; `Flow.midstream` says the same thing). Pure ACKs, FINs and RSTs of unknown connections
  create no flow. When the opener's SYN was seen but the other direction's data comes before
  its SYN-ACK (capture reordering, a SYN-ACK lost to the capture), that data is held, not
  delivered: copies that start earlier move its start back, and the SYN-ACK (or the opener's
  handshake ACK) places it at its true offset. It is delivered then, or when the other side
  sends data, a FIN/RST arrives, the flow ends, or 64 KiB / 16 pieces are held (as midstream).
* **Overlaps: the first copy received wins.** Exact retransmissions are dropped. When a
  retransmission overlaps bytes already received (delivered or buffered) with *different* bytes,
  the bytes received first are kept, `Flow.overlap_conflicts` is incremented and the conflict is
  recorded in `Flow.conflicts` (direction, offset, length, SHA-256 of both copies: the classic
  evasion of a passive monitor, which Zeek and Suricata flag too). The first copy is
  what the receiving endpoint most likely accepted: BSD and Linux keep data already queued and
  trim the overlapping part of a later segment. (Zeek and Suricata make this a per-host policy
  because targets differ - Windows and Solaris favour the new copy in some cases; a passive
  analyzer without knowledge of the receiver picks the common case and reports the conflict.
  suricata-verify's smtp-bug-5981.pcap yields Suricata's published attachment only this way.)
  Conflicts with already delivered bytes are detected against the last two delivered chunks only.
* **Holes become gaps.** A missing range is reported as `FlowGap(direction, offset, length)` and
  delivery resumes after it when (a) the other side ACKs beyond it (the receiver got bytes we
  never captured) and something the sender sent after the hole was seen (some captures show
  ACKs before the data they acknowledge, so a hole at the tail waits for later data or the end),
  (b) the out-of-order data buffered for that direction exceeds `max_buffer` bytes or
  `max_segments` segments, or (c) the flow ends (FIN/RST/idle/end of input) with data still
  buffered beyond it, before a FIN whose position is known, or short of the highest ACK. A
  segment the snaplen cut delivers the bytes it has, then a gap for the rest. At the end, the
  last sequence number an ACK covers is not counted as missing unless a FIN was seen after it:
  it is most likely a FIN that was not captured. Every gap is also recorded in `Flow.gaps`
  (adjacent gaps merged, at most `MAX_GAPS_RECORDED`).
* **End.** A flow ends with "fin" once both directions sent FIN and every byte up to each FIN was
  delivered (or declared a gap), "rst" on RST, "idle" from `expire()`, "eof" from `flush()`, and
  "reused" when a new SYN (a different ISN) arrives on the 4-tuple of a live flow. An ended 4-tuple
  is kept as a bounded tombstone so trailing ACKs and retransmissions don't open a midstream flow;
  a new SYN on it starts a new flow.
* **Pressure.** At most `max_flows` connections are tracked at once. When a new one would pass
  the bound, the sixteenth of the open flows idle the longest is ended ("evicted"), those that
  never carried a byte (half-open scans) first, each with `FlowEnd(reason="evicted")` (counted in
  `Reassembler.evicted_empty` / `evicted_with_data`). A flow that carried data is ended like any
  other, its buffered bytes delivered, so that its session is reported; no tombstone is kept, so
  a later packet of it starts a new, midstream flow.
  Connections that have seen nothing but their opening SYN (a scan, a SYN flood) are bounded
  on their own (`max_half_open`): past it the oldest sixteenth of them is evicted the same way
  (they carried nothing; a later SYN-ACK of one starts it again).
"""

from __future__ import annotations

import hashlib
import heapq
from bisect import bisect_right, insort
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Final

from mypy_extensions import mypyc_attr

from mailsniff.limits import (
    IDLE_TIMEOUT_NS,
    MAX_CONFLICTS_RECORDED,
    MAX_FLOW_BUFFER,
    MAX_FLOWS,
    MAX_GAPS_RECORDED,
    MAX_HALF_OPEN,
    MAX_OUT_OF_ORDER,
    MAX_PRE_HANDSHAKE_BYTES,
    MAX_PRE_HANDSHAKE_SEGMENTS,
    MAX_TOMBSTONES,
)
from mailsniff.model import Direction, Gap
from mailsniff.net.segment import TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, Segment

#: The directions as Final constants, as `protocols.base.CLIENT` / `SERVER` are for the layers
#: above (reassembly sits below them): a C global compiled.
_CLIENT: Final = Direction.CLIENT
_SERVER: Final = Direction.SERVER

__all__ = [
    "Flow",
    "FlowData",
    "FlowEnd",
    "FlowEvent",
    "FlowGap",
    "FlowStart",
    "MAX_CONFLICTS_RECORDED",
    "MAX_GAPS_RECORDED",
    "OverlapConflict",
    "MAX_TOMBSTONES",
    "Reassembler",
]


_MASK: Final = 0xFFFFFFFF
_HALF: Final = 0x80000000
#: Largest TCP window (RFC 7323 2.3): no retransmission lies further behind the next byte.
_MAX_BEHIND: Final = 1 << 30
_SLOW_FLAGS: Final = TCP_SYN | TCP_FIN | TCP_RST
#: Shared empty buffers of a direction with nothing out of order (most of them, always for a
#: half-open flow): `_add` gives a direction its own before the first piece is buffered, and
#: `Flow.gaps` is replaced by a list of its own at the first gap.
_NO_STARTS: list[int] = []
_NO_PENDING: dict[int, bytes | int] = {}
_NO_GAPS: list[Gap] = []
#: Addresses `Reassembler` shares between flows at most (then it starts again).
_SHARED_ADDRESSES: Final = 4096

Address = tuple[bytes, int]
_Key = tuple[bytes, int, bytes, int]


@dataclass(slots=True, frozen=True)
class OverlapConflict:
    """Bytes of one direction captured twice with different content; the first copy was kept."""

    direction: Direction
    offset: int  # stream offset of the first differing range's start
    length: int
    kept_sha256: str  # the copy received first (delivered)
    other_sha256: str  # the later copy (discarded)
    ts_ns: int


@dataclass(slots=True, eq=False)
class Flow:
    """One TCP connection as seen on the wire (identity-compared; mutated until it ends)."""

    id: int
    #: (client address, client port, server address, server port), addresses packed: the client
    #: is the side that opened / sends commands. The reassembler's key for the connection.
    key: _Key
    start_ns: int
    last_ns: int
    handshake_seen: bool = False  # a SYN or SYN-ACK was seen: offsets are exact from byte 0
    midstream: bool = False  # the capture began mid-connection (no SYN seen first)
    close_reason: str | None = None  # "fin" | "rst" | "idle" | "eof" | "reused" | "evicted"
    gaps: list[Gap] = field(default_factory=lambda: _NO_GAPS)
    client_bytes: int = 0  # stream bytes delivered per direction
    server_bytes: int = 0
    packets: int = 0
    overlap_conflicts: int = 0  # retransmissions whose bytes differed from the first copy
    retransmissions: int = 0  # segments carrying only bytes already received
    gap_count: int = 0  # every gap declared (Flow.gaps may hold fewer, merged and capped)
    gap_bytes: int = 0
    #: Overlap conflicts recorded (None until the first: most flows have none).
    conflicts: list[OverlapConflict] | None = None

    @property
    def client(self) -> Address:
        """(packed address, port) of the side that opened / sends commands."""
        key = self.key
        return (key[0], key[1])

    @property
    def server(self) -> Address:
        key = self.key
        return (key[2], key[3])


@dataclass(slots=True, frozen=True, kw_only=True)
class FlowStart:
    flow: Flow
    ts_ns: int


@dataclass(slots=True, init=False)
@mypyc_attr(allow_interpreted_subclasses=True)
class FlowData:
    """Stream bytes of one direction, in order. One per data segment, so its `__init__` is
    written out (see `capture.frame.Frame`); nothing changes one once it is made."""

    flow: Flow
    ts_ns: int
    direction: Direction
    data: bytes

    def __init__(self, flow: Flow, ts_ns: int, direction: Direction, data: bytes) -> None:
        self.flow = flow
        self.ts_ns = ts_ns
        self.direction = direction
        self.data = data


@dataclass(slots=True, frozen=True, kw_only=True)
class FlowGap:
    """`length` bytes at stream `offset` never captured; offset 0, length 0 = midstream start."""

    flow: Flow
    ts_ns: int
    direction: Direction
    offset: int
    length: int


@dataclass(slots=True, frozen=True, kw_only=True)
class FlowEnd:
    flow: Flow
    ts_ns: int
    reason: str


FlowEvent = FlowStart | FlowData | FlowGap | FlowEnd


class _Half:
    """One direction of a flow: where the next byte is and what waits out of order."""

    __slots__ = (
        "flow",
        "direction",
        "peer",
        "started",
        "next_seq",
        "next_off",
        "syn_isn",
        "starts",
        "pending",
        "pending_bytes",
        "fin_off",
        "fin_seen",
        "acked_off",
        "last_off",
        "last_data",
        "prev_off",
        "prev_data",
        "provisional",
    )
    #: `Reassembler._end` deletes `peer` to break the two directions' cycle (compiled classes
    #: allow `del` only on the attributes listed here).
    __deletable__ = ["peer"]

    def __init__(self, flow: Flow, direction: Direction) -> None:
        self.flow = flow
        self.direction = direction
        self.peer: _Half = self
        self.started = False  # next_seq / next_off (and so `base`) are meaningful
        # Stream offset 0 is sequence number `base` = next_seq - next_off (mod 2**32): computed,
        # not kept (a flood's hundred thousand open flows held 2 Python ints more each).
        self.next_seq = 0  # sequence number of the next byte to deliver (mod 2**32)
        self.next_off = 0  # its stream offset (unbounded)
        self.syn_isn: int | None = None
        # Out-of-order pieces, disjoint, keyed by stream offset: bytes, or an int length for a
        # range known to be missing (snaplen cut). `starts` is their sorted offsets.
        self.starts: list[int] = _NO_STARTS
        self.pending: dict[int, bytes | int] = _NO_PENDING
        self.pending_bytes = 0
        self.fin_off: int | None = None
        self.fin_seen = False
        self.acked_off = 0  # highest offset the peer acknowledged
        # The last two chunks delivered, to spot a retransmission that differs from them (a
        # longer copy of the first segment overlaps the first and the next one; kept to two
        # chunks so that an idle flow holds no more than two segments' bytes).
        self.last_off = 0
        self.last_data = b""
        self.prev_off = 0
        self.prev_data = b""
        # Started from data before this direction's SYN was seen while the opener's SYN was:
        # offsets are relative to the first byte captured, nothing is delivered until they
        # are settled (see Reassembler._settle).
        self.provisional = False

    @property
    def base(self) -> int:
        """The sequence number of stream offset 0."""
        return (self.next_seq - self.next_off) & _MASK

    def start(self, seq: int) -> None:
        self.started = True
        self.next_seq = seq & _MASK
        self.next_off = 0

    def advance(self, off: int) -> None:
        """Move the next expected byte to stream offset `off`."""
        self.next_seq = (self.next_seq + off - self.next_off) & _MASK
        self.next_off = off

    def offset(self, seq: int) -> int:
        """Stream offset of sequence number `seq`, the nearest one to the next expected byte."""
        return self.next_off + ((seq - self.next_seq + _HALF) & _MASK) - _HALF

    def data_offset(self, seq: int) -> int:
        """Stream offset of data (or a FIN) at `seq`: never further behind than a window.

        RFC 7323 2.3 caps the window at 2**30 bytes, so a sender never retransmits bytes more
        than 2**30 behind the next expected one: such a sequence number lies ahead (a jump of
        2**31 or more, say after bytes the capture missed), and what it carries is delivered
        after a gap instead of being taken for an old copy and dropped.
        """
        off = self.next_off + ((seq - self.next_seq + _HALF) & _MASK) - _HALF
        return off + _MASK + 1 if off < self.next_off - _MAX_BEHIND else off

    @property
    def closed(self) -> bool:
        """FIN seen and every byte before it delivered or declared missing."""
        if not self.fin_seen:
            return False
        return self.fin_off is None or self.next_off >= self.fin_off


class Reassembler:
    """Turns TCP segments into ordered per-direction byte streams with explicit gaps.

    Args:
        server_ports: ports that identify the server side when no SYN was seen.
        idle_timeout_ns: `expire()` ends flows with no packet for longer than this.
        max_buffer: out-of-order bytes one direction may hold before a gap is declared.
        max_segments: out-of-order pieces one direction may hold before a gap is declared.
        max_flows: connections tracked at once; past it the idlest are evicted (see above).
        max_half_open: of those, connections seen only by their opening SYN (see above).
    """

    def __init__(
        self,
        *,
        server_ports: frozenset[int] = frozenset(),
        idle_timeout_ns: int = IDLE_TIMEOUT_NS,
        max_buffer: int = MAX_FLOW_BUFFER,
        max_segments: int = MAX_OUT_OF_ORDER,
        max_flows: int = MAX_FLOWS,
        max_half_open: int = MAX_HALF_OPEN,
    ) -> None:
        self._server_ports = server_ports
        self._idle = idle_timeout_ns
        self._max_buffer = max_buffer
        self._max_segments = max_segments
        # A direction whose handshake was not seen holds no more than any direction may.
        self._hold_bytes = min(MAX_PRE_HANDSHAKE_BYTES, max_buffer)
        self._hold_segments = min(MAX_PRE_HANDSHAKE_SEGMENTS, max_segments)
        self._max_flows = max(1, max_flows)
        self._max_half_open = max(1, max_half_open)
        #: Flows evicted under pressure: never carried data (forgotten), carried data (ended).
        self.evicted_empty = 0
        self.evicted_with_data = 0
        #: The open flows, oldest first: each flow's key -> its client direction (the server
        #: direction is its `peer`; a segment from the server is found under the reversed key).
        self._halves: dict[_Key, _Half] = {}
        self._tombstones: dict[_Key, int] = {}
        #: Flows opened by a bare SYN and seen by no other packet yet, oldest first (flow key ->
        #: client direction). A flow whose second packet took the in-order fast path may stay
        #: listed: eviction checks again.
        self._half_open: dict[_Key, _Half] = {}
        #: Addresses of recent flows, shared by later flows with the same address (a flood's
        #: server, a scanner's address): one bytes object instead of one per flow.
        self._addresses: dict[bytes, bytes] = {}
        self._next_id = 1
        self._next_check: int | None = None  # no flow can be idle before this time

    @property
    def max_flows(self) -> int:
        return self._max_flows

    @property
    def open_flows(self) -> int:
        return len(self._halves)

    def flows(self) -> list[Flow]:
        """The connections open now (for live views: bytes and packets so far)."""
        return [half.flow for half in self._halves.values()]

    # -- input ---------------------------------------------------------------------------------

    def feed(self, seg: Segment, *, server: Address | None = None) -> list[FlowEvent]:
        """Take one segment; return the events it completes, in order.

        Args:
            seg: the decoded segment.
            server: the server endpoint, when the caller knows it (used only to create a flow).

        Returns:
            Events for this and possibly earlier segments (buffered data it made contiguous).
        """
        halves = self._halves
        half = halves.get((seg.src, seg.sport, seg.dst, seg.dport))
        if half is None:
            client = halves.get((seg.dst, seg.dport, seg.src, seg.sport))
            if client is None:
                return self._feed_unknown(seg, server)
            half = client.peer
        flow = half.flow
        flow.last_ns = seg.ts_ns
        flow.packets += 1
        payload = seg.payload
        # Fast path: in-order data (or a pure ACK) on a known flow, nothing buffered, no news in
        # the ACK field.
        if (
            not seg.flags & _SLOW_FLAGS
            and not seg.missing
            and half.started
            and seg.seq == half.next_seq
            and not half.starts
            and not half.fin_seen
            and not half.peer.provisional
        ):
            peer = half.peer
            if not seg.flags & TCP_ACK or (
                peer.started and not 0 < (seg.ack - peer.next_seq) & _MASK < _HALF
            ):
                if not payload:
                    return []
                n = len(payload)
                off = half.next_off
                half.next_off = off + n
                half.next_seq = (seg.seq + n) & _MASK
                half.prev_off, half.prev_data = half.last_off, half.last_data
                half.last_off = off
                half.last_data = payload
                if half.direction is _CLIENT:
                    flow.client_bytes += n
                else:
                    flow.server_bytes += n
                return [FlowData(flow, seg.ts_ns, half.direction, payload)]
        events: list[FlowEvent] = []
        self._process(half, seg, events)
        return events

    def expire(self, now_ns: int) -> list[FlowEvent]:
        """End flows idle for longer than the timeout ("idle"), delivering what they buffered.

        Args:
            now_ns: the current time on the capture's clock (the latest packet's timestamp).
        """
        events: list[FlowEvent] = []
        tombstones = self._tombstones
        while tombstones:
            key = next(iter(tombstones))
            if now_ns - tombstones[key] <= self._idle:
                break
            del tombstones[key]
        if self._next_check is None or now_ns < self._next_check:
            return events
        soonest: int | None = None
        for client in list(self._halves.values()):
            flow = client.flow
            if now_ns - flow.last_ns > self._idle:
                self._end(client, "idle", flow.last_ns, events)
            else:
                due = flow.last_ns + self._idle
                soonest = due if soonest is None else min(soonest, due)
        self._next_check = soonest
        return events

    def flush(self) -> list[FlowEvent]:
        """End of input: deliver what is buffered (holes become gaps) and end every flow ("eof")."""
        return [event for events in self.flush_each() for event in events]

    def flush_each(self) -> Iterator[list[FlowEvent]]:
        """`flush()` one flow at a time: the events that end each open flow, oldest first.

        Lazy: a flow is ended only when its list is asked for, so the caller can finish and
        release each connection's session before the next one's is built.
        """
        self._next_check = None
        while self._halves:
            client = next(iter(self._halves.values()))
            events: list[FlowEvent] = []
            self._end(client, "eof", client.flow.last_ns, events)
            yield events

    def _evict(self, events: list[FlowEvent]) -> None:
        """Too many flows: end the sixteenth idle the longest, those that never carried data
        first (see the module's *Pressure*)."""
        count = max(1, len(self._halves) // 16)

        def rank(client: _Half) -> tuple[bool, int]:
            return (_carried_data(client), client.flow.last_ns)

        for client in heapq.nsmallest(count, self._halves.values(), key=rank):
            if _carried_data(client):
                self.evicted_with_data += 1
            else:
                self.evicted_empty += 1
            self._end(client, "evicted", client.flow.last_ns, events)

    def _evict_half_open(self, events: list[FlowEvent]) -> None:
        """Too many flows seen only by their SYN: end the oldest sixteenth of them."""
        half_open = self._half_open
        for client in list(islice(half_open.values(), max(1, len(half_open) // 16))):
            flow = client.flow
            key = flow.key
            del half_open[key]
            if flow.packets == 1 and self._halves.get(key) is client and not _carried_data(client):
                self.evicted_empty += 1
                self._end(client, "evicted", flow.last_ns, events)

    # -- flows ---------------------------------------------------------------------------------

    def _feed_unknown(self, seg: Segment, server: Address | None) -> list[FlowEvent]:
        flags = seg.flags
        syn = flags & TCP_SYN and not flags & TCP_RST
        if not syn and not (seg.payload or seg.missing):
            return []  # ACK/FIN/RST of a connection we know nothing about
        key = (seg.src, seg.sport, seg.dst, seg.dport)
        if key in self._tombstones:
            if not syn:
                return []  # trailing retransmission of an ended flow
            del self._tombstones[key]
            self._tombstones.pop((seg.dst, seg.dport, seg.src, seg.sport), None)
        src: Address = (seg.src, seg.sport)
        dst: Address = (seg.dst, seg.dport)
        if syn:
            # RFC 9293 3.5: the SYN's sender opens; a SYN-ACK's receiver did.
            sender_is_client = not flags & TCP_ACK
        elif server is not None and server in (src, dst):
            sender_is_client = server == dst
        elif (seg.dport in self._server_ports) != (seg.sport in self._server_ports):
            sender_is_client = seg.dport in self._server_ports
        elif seg.sport != seg.dport:
            sender_is_client = seg.dport < seg.sport
        else:
            sender_is_client = True
        client, srv = (src, dst) if sender_is_client else (dst, src)
        events: list[FlowEvent] = []
        bare_syn = syn and not flags & TCP_ACK and not seg.payload and not seg.missing
        if bare_syn and len(self._half_open) >= self._max_half_open:
            self._evict_half_open(events)
        if len(self._halves) >= self._max_flows:
            self._evict(events)
        flow_key = (self._address(client[0]), client[1], self._address(srv[0]), srv[1])
        flow = Flow(
            id=self._next_id,
            key=flow_key,
            start_ns=seg.ts_ns,
            last_ns=seg.ts_ns,
            midstream=not syn,
            packets=1,
        )
        self._next_id += 1
        c = _Half(flow, _CLIENT)
        s = _Half(flow, _SERVER)
        c.peer, s.peer = s, c
        self._halves[flow_key] = c
        if bare_syn:
            self._half_open[flow_key] = c
        due = seg.ts_ns + self._idle
        if self._next_check is None or due < self._next_check:
            self._next_check = due
        events.append(FlowStart(flow=flow, ts_ns=seg.ts_ns))
        self._process(c if sender_is_client else s, seg, events)
        return events

    def _address(self, address: bytes) -> bytes:
        """`address`, or the equal bytes object a recent flow already holds."""
        known = self._addresses.get(address)
        if known is None:
            if len(self._addresses) >= _SHARED_ADDRESSES:
                self._addresses.clear()
            known = self._addresses[address] = address
        return known

    def _end(self, client: _Half, reason: str, ts: int, events: list[FlowEvent]) -> None:
        """End the flow whose client direction is `client` (an open flow's)."""
        flow = client.flow
        server = client.peer
        for half in (client, server):
            self._flush_half(half, ts, events)
        # The two directions point at each other: break the cycle, so that an ended flow is
        # freed at once rather than by the cyclic collector, long after (a flood ends many).
        del client.peer, server.peer
        flow.close_reason = reason
        events.append(FlowEnd(flow=flow, ts_ns=ts, reason=reason))
        a = flow.key
        del self._halves[a]
        if self._half_open:
            self._half_open.pop(a, None)
        for key in (a, (a[2], a[3], a[0], a[1])):
            self._tombstones.pop(key, None)
            if reason != "evicted":  # an evicted connection's later packets start a new flow
                self._tombstones[key] = ts
        while len(self._tombstones) > 2 * MAX_TOMBSTONES:
            del self._tombstones[next(iter(self._tombstones))]

    # -- one segment ---------------------------------------------------------------------------

    def _process(self, half: _Half, seg: Segment, events: list[FlowEvent]) -> None:
        flow = half.flow
        if flow.packets == 2 and self._half_open:
            self._half_open.pop(flow.key, None)  # no longer seen only by its SYN
        flags = seg.flags
        ts = seg.ts_ns
        peer = half.peer
        seq = seg.seq
        if peer.provisional and (seg.payload or seg.missing or flags & (TCP_FIN | TCP_RST)):
            self._settle(peer, None, ts, events)  # the peer's bytes came before these
        if half.provisional and flags & (TCP_FIN | TCP_RST):
            self._settle(half, None, ts, events)
        if flags & TCP_SYN and not flags & TCP_RST:
            if not self._on_syn(half, seg, events):
                return
            seq = (seq + 1) & _MASK  # the SYN occupies one sequence number (RFC 9293 3.4)
        if flags & TCP_ACK:
            if peer.provisional:
                if flags & TCP_SYN or (
                    half.syn_isn is not None and half.started and seq == half.next_seq
                ):
                    self._settle(peer, seg.ack, ts, events)
                    flow.handshake_seen = True
            elif peer.started:
                d = (seg.ack - peer.next_seq) & _MASK
                if 0 < d < _HALF:
                    self._ack_to(peer, peer.next_off + d, ts, events)
            elif flags & TCP_SYN or (
                half.syn_isn is not None
                and half.started
                and seq == half.next_seq
                and half.next_off == 0
            ):
                # A SYN-ACK acknowledges the opener's SYN; the opener's first ACK acknowledges
                # the SYN-ACK. Either way the ACK number is the peer's byte 0.
                peer.start(seg.ack)
                flow.handshake_seen = True
        if seg.payload or seg.missing:
            if not half.started:
                half.start(seq)
                if peer.syn_isn is not None and half.syn_isn is None:
                    half.provisional = True  # SYN-ACK not seen (yet): hold the bytes
                else:
                    self._gap(half, 0, 0, ts, events)
            self._on_data(half, seq, seg.payload, seg.missing, ts, events)
        if flags & TCP_FIN and not half.fin_seen:
            half.fin_seen = True
            if half.started:
                fin = half.fin_off = half.data_offset(seq + len(seg.payload) + seg.missing)
                while half.starts and half.starts[-1] >= fin:  # buffered bytes past the FIN
                    v = half.pending.pop(half.starts.pop())
                    if isinstance(v, bytes):
                        half.pending_bytes -= len(v)
                self._resolve_ack(half, ts, events)
        if flags & TCP_RST:
            client = self._halves.get(flow.key)
            if client is not None and client.flow is flow:
                self._end(client, "rst", ts, events)
            return
        if half.closed and peer.closed:
            client = self._halves.get(flow.key)
            if client is not None and client.flow is flow:
                self._end(client, "fin", ts, events)

    def _on_syn(self, half: _Half, seg: Segment, events: list[FlowEvent]) -> bool:
        """Handle the SYN bit; False when the segment was handed to a new flow instead."""
        flow = half.flow
        seq = seg.seq
        if half.syn_isn == seq:
            return True  # retransmitted SYN / SYN-ACK
        if (
            half.syn_isn is None
            and half.started
            and half.next_off == 0
            and half.next_seq == (seq + 1) & _MASK
        ):
            half.syn_isn = seq  # late copy of the SYN that started this direction
            return True
        if half.provisional:
            half.syn_isn = seq
            flow.handshake_seen = True
            self._settle(half, seq + 1, seg.ts_ns, events)
            return True
        if half.syn_isn is None and not half.started:
            half.start(seq + 1)
            half.syn_isn = seq
            flow.handshake_seen = True
            return True
        if seg.flags & TCP_ACK:
            return True  # stray SYN-ACK on a running flow: ignore the SYN bit
        # A new SYN with another ISN on a live 4-tuple: the port was reused (RFC 9293 3.10.7.4
        # allows a new SYN to reopen a connection in TIME-WAIT).
        self._end(self._halves[flow.key], "reused", flow.last_ns, events)
        events.extend(self._feed_unknown(seg, None))
        return False

    def _on_data(
        self, half: _Half, seq: int, payload: bytes, missing: int, ts: int, events: list[FlowEvent]
    ) -> None:
        if half.provisional:
            self._hold(half, seq, payload, missing, ts, events)
            return
        o = half.data_offset(seq)
        n = len(payload)
        fin = half.fin_off
        if fin is not None and o + n + missing > fin:  # bytes past the FIN are not stream data
            room = max(0, fin - o)
            if n > room:
                payload, n, missing = payload[:room], room, 0
            else:
                missing = room - n
        if n:
            if o == half.next_off and not half.starts:
                half.advance(o + n)
                self._emit_data(half, o, payload, ts, events)
            else:
                self._add(half, o, payload, ts)
        if missing:
            mo = o + n
            if mo == half.next_off and not half.starts:
                half.advance(mo + missing)
                self._gap(half, mo, missing, ts, events)
            else:
                self._add(half, mo, missing, ts)
        if half.starts:
            self._drain(half, ts, events)
            self._enforce_limits(half, ts, events)
            if half.acked_off > half.next_off:
                self._resolve_ack(half, ts, events)

    def _hold(
        self, half: _Half, seq: int, payload: bytes, missing: int, ts: int, events: list[FlowEvent]
    ) -> None:
        """Buffer data of a provisional direction; bytes before the first seen move its start."""
        o = half.offset(seq)
        if o < 0:
            self._rebase(half, seq)
            o = 0
        if payload:
            self._add(half, o, payload, ts)
        if missing:
            self._add(half, o + len(payload), missing, ts)
        if half.pending_bytes > self._hold_bytes or len(half.starts) > self._hold_segments:
            self._settle(half, None, ts, events)

    def _rebase(self, half: _Half, base: int) -> None:
        """Make sequence number `base` stream offset 0, moving (and trimming) what is buffered."""
        shift = ((half.base - base + _HALF) & _MASK) - _HALF  # old offset 0 -> new offset
        half.next_seq = base & _MASK  # offset 0: the next byte to deliver
        half.next_off = 0
        if not shift:
            return
        pending: dict[int, bytes | int] = {}
        for s in half.starts:
            v = half.pending[s]
            new = s + shift
            if new < 0:
                size = len(v) if isinstance(v, bytes) else v
                if new + size <= 0:
                    if isinstance(v, bytes):
                        half.pending_bytes -= size
                    continue
                if isinstance(v, bytes):
                    half.pending_bytes += new
                    v = v[-new:]
                else:
                    v = size + new
                new = 0
            pending[new] = v
        half.pending = pending
        half.starts = sorted(pending)

    def _settle(self, half: _Half, base: int | None, ts: int, events: list[FlowEvent]) -> None:
        """End a provisional start: `base` is the sequence number of byte 0 when the handshake
        told it (the SYN-ACK, or the opener's ACK of it); without it the first byte captured is
        offset 0, after the midstream marker. Then deliver what is contiguous."""
        half.provisional = False
        if base is not None and half.starts:
            lowest = (half.base + half.starts[0]) & _MASK
            if ((lowest - base) & _MASK) >= _HALF:
                base = None  # the ACK is past bytes we hold: not the handshake's
        if base is None:
            if half.starts:
                self._rebase(half, half.base + half.starts[0])
            self._gap(half, 0, 0, ts, events)
        else:
            self._rebase(half, base)
        if half.starts:
            self._drain(half, ts, events)

    def _add(self, half: _Half, o: int, value: bytes | int, ts: int) -> None:
        """Buffer a piece out of order; bytes received first win over any overlapping copy."""
        flow = half.flow
        size = len(value) if isinstance(value, bytes) else value
        end = o + size
        nxt = half.next_off
        if o < nxt:
            # A one-byte segment just below the window edge is a keep-alive (RFC 9293 3.8.4;
            # some stacks send a garbage byte): old data, but not a conflicting copy.
            if isinstance(value, bytes) and not (size == 1 and o == nxt - 1):
                self._compare_recent(half, o, value, ts)
            if end <= nxt:
                flow.retransmissions += 1
                return
            value = value[nxt - o :] if isinstance(value, bytes) else end - nxt
            o = nxt
        starts = half.starts
        pending = half.pending
        if starts is _NO_STARTS:
            starts = half.starts = []
            pending = half.pending = {}
        pieces: list[tuple[int, int]] = []
        differing: list[tuple[int, bytes, bytes]] = []  # (offset, kept, later copy)
        cur = o
        j = max(0, bisect_right(starts, o) - 1)
        while j < len(starts) and cur < end:
            s = starts[j]
            pv = pending[s]
            pe = s + (len(pv) if isinstance(pv, bytes) else pv)
            j += 1
            if pe <= cur:
                continue
            if s >= end:
                break
            if s > cur:
                pieces.append((cur, s))
            a, b = max(s, cur), min(pe, end)
            if isinstance(pv, bytes) and isinstance(value, bytes):
                kept, later = pv[a - s : b - s], value[a - o : b - o]
                if kept != later:
                    differing.append((a, kept, later))
            cur = pe
        if cur < end:
            pieces.append((cur, end))
        if differing:
            self._conflict(half, differing, ts)
        if not pieces:
            flow.retransmissions += 1
            return
        for a, b in pieces:
            piece: bytes | int
            if isinstance(value, bytes):
                piece = value[a - o : b - o]
                half.pending_bytes += b - a
            else:
                piece = b - a
            insort(starts, a)
            pending[a] = piece

    def _compare_recent(self, half: _Half, o: int, data: bytes, ts: int) -> None:
        """Record a retransmission whose bytes differ from what was already delivered (of the
        last two chunks)."""
        differing: list[tuple[int, bytes, bytes]] = []
        for ro, rd in ((half.prev_off, half.prev_data), (half.last_off, half.last_data)):
            a, b = max(o, ro), min(o + len(data), ro + len(rd))
            if a < b:
                kept, later = rd[a - ro : b - ro], data[a - o : b - o]
                if kept != later:
                    differing.append((a, kept, later))
        if differing:
            self._conflict(half, differing, ts)

    def _conflict(self, half: _Half, ranges: list[tuple[int, bytes, bytes]], ts: int) -> None:
        """One segment overlapped earlier bytes with different content: count and record it.

        `ranges` are the overlapping (offset, kept, later) pieces that differ, in stream order;
        adjacent pieces make one record.
        """
        flow = half.flow
        flow.overlap_conflicts += 1
        conflicts = flow.conflicts
        if conflicts is None:
            conflicts = flow.conflicts = []
        merged: list[tuple[int, bytes, bytes]] = []
        for off, kept, later in ranges:
            if merged and merged[-1][0] + len(merged[-1][1]) == off:
                m_off, m_kept, m_later = merged[-1]
                merged[-1] = (m_off, m_kept + kept, m_later + later)
            else:
                merged.append((off, kept, later))
        for off, kept, later in merged:
            if len(conflicts) >= MAX_CONFLICTS_RECORDED:
                return
            conflicts.append(
                OverlapConflict(
                    half.direction,
                    off,
                    len(kept),
                    hashlib.sha256(kept).hexdigest(),
                    hashlib.sha256(later).hexdigest(),
                    ts,
                )
            )

    def _drain(self, half: _Half, ts: int, events: list[FlowEvent]) -> None:
        """Deliver buffered pieces that became contiguous with the stream (up to any FIN)."""
        starts = half.starts
        pending = half.pending
        fin = half.fin_off
        chunks: list[bytes] = []
        first = half.next_off
        nxt = first
        while starts and starts[0] <= nxt:
            s = starts.pop(0)
            v = pending.pop(s)
            if isinstance(v, bytes):
                half.pending_bytes -= len(v)
                end = s + len(v) if fin is None else min(s + len(v), fin)
                if end > nxt:
                    chunks.append(v[nxt - s : end - s])
                    nxt = end
            else:
                end = s + v if fin is None else min(s + v, fin)
                if end > nxt:
                    if chunks:
                        half.advance(nxt)
                        self._emit_data(half, first, b"".join(chunks), ts, events)
                        chunks = []
                    half.advance(end)
                    self._gap(half, nxt, end - nxt, ts, events)
                    first = nxt = end
        if chunks:
            half.advance(nxt)
            self._emit_data(half, first, b"".join(chunks), ts, events)
        if not starts:  # all delivered: drop the buffers (a dict keeps its size when emptied)
            half.starts = _NO_STARTS
            half.pending = _NO_PENDING

    def _enforce_limits(self, half: _Half, ts: int, events: list[FlowEvent]) -> None:
        """Bounded memory: past either limit, give up on the first hole and deliver what follows."""
        while half.starts and (
            half.pending_bytes > self._max_buffer or len(half.starts) > self._max_segments
        ):
            self._skip_to(half, half.starts[0], ts, events)

    def _skip_to(self, half: _Half, off: int, ts: int, events: list[FlowEvent]) -> None:
        """Declare [next_off, off) missing, then deliver what became contiguous."""
        if off > half.next_off:
            start = half.next_off
            half.advance(off)
            self._gap(half, start, off - start, ts, events)
        self._drain(half, ts, events)

    def _ack_to(self, half: _Half, off: int, ts: int, events: list[FlowEvent]) -> None:
        """The peer acknowledged `half`'s bytes up to stream offset `off`."""
        if off > half.acked_off:
            half.acked_off = off
        self._resolve_ack(half, ts, events)

    def _resolve_ack(self, half: _Half, ts: int, events: list[FlowEvent]) -> None:
        """Bytes the receiver acknowledged but we never saw become gaps (rule a).

        The hole must be followed by something the sender sent later (data or its FIN): some
        captures hold ACKs before the data they acknowledge (mirror ports, merged or synthesised
        traces; arkime's smtp-decrypted.pcap shows two such ACKs in a row), and that data must
        still be delivered when it comes. A hole at the tail waits for later data or the end.
        """
        fin = half.fin_off
        limit = half.acked_off if fin is None else min(half.acked_off, fin)
        while half.next_off < limit:
            starts = half.starts
            if starts and starts[0] < limit:
                self._skip_to(half, starts[0], ts, events)
                continue
            if starts or fin is not None:  # the sender already sent what follows the hole
                self._skip_to(half, limit, ts, events)
            break

    def _flush_half(self, half: _Half, ts: int, events: list[FlowEvent]) -> None:
        """The flow ends: buffered data is delivered, holes before it and before a FIN are gaps.

        Acknowledged bytes never seen are gaps too, except the last acknowledged sequence number
        when no FIN was seen: it is most likely that FIN, not a byte of data.
        """
        if not half.started:
            return
        if half.provisional:
            self._settle(half, None, ts, events)
        while half.starts:
            self._skip_to(half, half.starts[0], ts, events)
        if half.fin_off is not None:
            if half.fin_off > half.next_off:
                self._skip_to(half, half.fin_off, ts, events)
        elif half.acked_off - 1 > half.next_off:
            self._skip_to(half, half.acked_off - 1, ts, events)

    # -- events --------------------------------------------------------------------------------

    def _emit_data(
        self, half: _Half, off: int, data: bytes, ts: int, events: list[FlowEvent]
    ) -> None:
        half.prev_off, half.prev_data = half.last_off, half.last_data
        half.last_off = off
        half.last_data = data
        flow = half.flow
        if half.direction is _CLIENT:
            flow.client_bytes += len(data)
        else:
            flow.server_bytes += len(data)
        events.append(FlowData(flow, ts, half.direction, data))

    def _gap(self, half: _Half, offset: int, length: int, ts: int, events: list[FlowEvent]) -> None:
        flow = half.flow
        direction = half.direction
        events.append(
            FlowGap(flow=flow, ts_ns=ts, direction=direction, offset=offset, length=length)
        )
        if not length:
            return  # the midstream marker: no known bytes are missing
        flow.gap_count += 1
        flow.gap_bytes += length
        gaps = flow.gaps
        if gaps is _NO_GAPS:
            gaps = flow.gaps = []
        for i in range(len(gaps) - 1, -1, -1):  # merge with this direction's previous gap
            last = gaps[i]
            if last.direction is direction:
                if last.offset + last.length == offset:
                    gaps[i] = Gap(direction, last.offset, last.length + length, last.ts_ns)
                    return
                break
        if len(gaps) < MAX_GAPS_RECORDED:
            gaps.append(Gap(direction, offset, length, ts))


def _carried_data(client: _Half) -> bool:
    """Whether the flow of `client` (an open flow's client direction) delivered, buffered or
    lost any byte of data."""
    flow = client.flow
    server = client.peer
    return bool(
        flow.client_bytes
        or flow.server_bytes
        or flow.gap_count
        or client.starts
        or server.starts
        or client.provisional
        or server.provisional
    )
