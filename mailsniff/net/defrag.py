"""Bounded IP fragment reassembly (RFC 791 3.2, RFC 8200 4.5; overlaps as in RFC 5722).

Policy for overlapping fragments: **the first copy wins**. Bytes already received are never
overwritten; a later fragment only fills the holes it covers. The first fragment that says
"last" (MF=0) fixes the datagram's length; a later, different claim is ignored and bytes past
that length are dropped. This is deterministic whatever the order of arrival, and it is what
the receiving host most likely did with the bytes it got first.
"""

from __future__ import annotations

from mailsniff import limits

__all__ = ["Defragmenter", "FragmentKey"]

#: (source address, destination address, protocol, identification)
FragmentKey = tuple[bytes, bytes, int, int]


class _FragmentSet:
    __slots__ = ("first_ts", "buf", "covered", "total", "count")

    def __init__(self, ts_ns: int) -> None:
        self.first_ts = ts_ns
        self.buf = bytearray()
        self.covered: list[tuple[int, int]] = []  # sorted, disjoint, non-adjacent intervals
        self.total = -1  # datagram payload length, once the last fragment is seen
        self.count = 0  # fragments received

    def add(self, start: int, data: bytes) -> None:
        """Copy the bytes of [start, start+len(data)) that no earlier fragment supplied."""
        end = start + len(data)
        if self.total >= 0 and end > self.total:
            end = self.total
        if end <= start:
            return
        buf = self.buf
        if len(buf) < end:
            buf.extend(bytes(end - len(buf)))
        cursor = start
        merged: list[tuple[int, int]] = []
        new_start, new_end = start, end
        for lo, hi in self.covered:
            if hi < start or lo > end:  # disjoint and not adjacent: keep as is
                merged.append((lo, hi))
                continue
            if lo > cursor:
                buf[cursor:lo] = data[cursor - start : lo - start]
            cursor = max(cursor, hi)
            new_start, new_end = min(new_start, lo), max(new_end, hi)
        if cursor < end:
            buf[cursor:end] = data[cursor - start : end - start]
        merged.append((new_start, new_end))
        merged.sort()
        self.covered = merged

    def complete(self) -> bool:
        covered = self.covered
        return (
            self.total >= 0
            and len(covered) >= 1
            and covered[0][0] == 0
            and covered[0][1] >= self.total
        )


class Defragmenter:
    """Rebuilds fragmented datagrams, holding a bounded number of bounded sets.

    Attributes:
        reassembled: datagrams completed.
        dropped: fragments discarded (their set expired, was evicted or grew too large).
        expired: sets dropped because they stayed incomplete longer than the timeout.
        evicted: sets dropped to make room when too many were pending.
        oversized: sets dropped because they would exceed the largest datagram size.
    """

    def __init__(
        self,
        *,
        max_bytes: int = limits.MAX_FRAGMENT_BYTES,
        max_sets: int = limits.MAX_PENDING_FRAGMENT_SETS,
        timeout_ns: int = limits.FRAGMENT_TIMEOUT_NS,
    ) -> None:
        self.max_bytes = max_bytes
        self.max_sets = max_sets
        self.timeout_ns = timeout_ns
        self._sets: dict[FragmentKey, _FragmentSet] = {}
        self.reassembled = 0
        self.dropped = 0
        self.expired = 0
        self.evicted = 0
        self.oversized = 0

    @property
    def pending(self) -> int:
        """Fragment sets waiting for more fragments."""
        return len(self._sets)

    def add(
        self, ts_ns: int, key: FragmentKey, offset: int, more: bool, data: bytes
    ) -> bytes | None:
        """Add one fragment.

        Args:
            ts_ns: its capture time (sets older than the timeout are expired first).
            key: which datagram it belongs to.
            offset: its byte offset in the datagram payload.
            more: the More Fragments flag.
            data: its payload bytes.

        Returns:
            The whole datagram payload when this fragment completed it, else None.
        """
        self.expire(ts_ns)
        sets = self._sets
        frag_set = sets.get(key)
        if frag_set is None:
            if len(sets) >= self.max_sets:
                oldest = next(iter(sets))
                self.dropped += sets.pop(oldest).count
                self.evicted += 1
            frag_set = sets[key] = _FragmentSet(ts_ns)
        frag_set.count += 1
        end = offset + len(data)
        if end > self.max_bytes:
            del sets[key]
            self.dropped += frag_set.count
            self.oversized += 1
            return None
        if not more and frag_set.total < 0:
            frag_set.total = end
        frag_set.add(offset, data)
        if not frag_set.complete():
            return None
        del sets[key]
        self.reassembled += 1
        return bytes(frag_set.buf[: frag_set.total])

    def expire(self, now_ns: int) -> None:
        """Drop the sets whose first fragment is older than the timeout."""
        sets = self._sets
        limit = now_ns - self.timeout_ns
        while sets:
            key = next(iter(sets))
            frag_set = sets[key]
            if frag_set.first_ts >= limit:
                break
            del sets[key]
            self.dropped += frag_set.count
            self.expired += 1

    def flush(self) -> None:
        """Drop every pending set (end of capture); their fragments count as dropped."""
        for frag_set in self._sets.values():
            self.dropped += frag_set.count
            self.expired += 1
        self._sets.clear()
