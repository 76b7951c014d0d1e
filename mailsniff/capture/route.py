"""Which `read --jobs` worker owns a frame, told from its raw bytes (compiled in the fast build).

Every worker reads the whole input and keeps the frames of its own connections. The owner is a
hash of the connection's two addresses and two ports, symmetric (the same for both
directions), modulo the number of workers. For a plain Ethernet/IPv4/TCP frame the readers tell
it from the record's bytes where they lie in the read buffer, so a frame another worker owns
never becomes a Frame: the reader yields its capture time instead (capture.frame.FrameOrTime).
IPv4 that is not TCP goes to the last worker, which counts it (worker 0 of `read` also merges).
Every other frame (fragments, VLAN, IPv6, other link types) must be decoded to tell, by every
worker.
"""

from __future__ import annotations

from typing import Final

from mypy_extensions import i64

from mailsniff.capture.frame import LINKTYPE_ETHERNET

__all__ = ["elsewhere", "mix", "raw_owner"]

#: An odd multiplier below 2**30 (Knuth's golden ratio, scaled): both factors of the product in
#: `_mix` stay below 2**30, so it fits a machine integer (i64) in the compiled build.
_GOLDEN30: Final = 0x278DDE6D
_LOW30: Final = (1 << 30) - 1
#: IPv4 address sums are below this; IPv6 sums (decoded segments only) are folded under it.
_IPV4_SUMS: Final = 1 << 33
#: A prime under _IPV4_SUMS: an IPv6 sum folded modulo it keeps every bit's influence.
_FOLD: Final = (1 << 33) - 9


def mix(ips: int, ports: int, n: int) -> int:
    """Worker (0 .. n-1) of a connection from the sum of its two addresses (as integers) and the
    sum of its two ports: both sums are the same for the two directions."""
    if ips >= _IPV4_SUMS:  # IPv6
        ips %= _FOLD
    return _mix(ips, ports, n)


def _mix(ips: i64, ports: i64, n: i64) -> i64:
    """`mix` of an address sum below _IPV4_SUMS, on machine integers."""
    x = ((ips & _LOW30) ^ (ips >> 30) ^ (ports << 13)) & _LOW30
    h = (x * _GOLDEN30) >> 30
    if n & (n - 1) == 0:  # 2, 4, 8 workers: the same remainder, without a division
        return h & (n - 1)
    return h % n


def raw_owner(linktype: i64, buf: bytes, at: i64, end: i64, n: i64) -> i64:
    """The worker of the frame `buf[at:end]` if it is Ethernet and IPv4, not a fragment: TCP by
    its connection, any other protocol n - 1 (no connection: the last worker decodes and counts
    it; worker 0 is the parent of `read`, which merges too).
    -1 when the frame must be decoded to tell (fragments, VLAN, IPv6, other link types, ...).

    Every worker runs it on every frame: offsets and bytes are machine integers (i64), a sixth
    of the time the same reads took as Python ints in the compiled build."""
    if linktype != LINKTYPE_ETHERNET or end - at < 34:  # the only link type routed raw
        return -1
    version_ihl: i64 = buf[at + 14]
    if (
        buf[at + 12] != 0x08
        or buf[at + 13] != 0x00
        or version_ihl & 0xF0 != 0x40
        or buf[at + 20] & 0x3F
        or buf[at + 21]
    ):
        return -1
    if buf[at + 23] != 6:
        return n - 1
    tcp = at + 14 + (version_ihl & 0x0F) * 4
    if tcp < at + 34 or end - tcp < 20:
        return -1  # a header too short for what it claims: the decoder reports it
    # The sums of the two addresses and of the two ports, byte column by byte column.
    src0: i64 = buf[at + 26]
    src1: i64 = buf[at + 27]
    src2: i64 = buf[at + 28]
    src3: i64 = buf[at + 29]
    dst0: i64 = buf[at + 30]
    dst1: i64 = buf[at + 31]
    dst2: i64 = buf[at + 32]
    dst3: i64 = buf[at + 33]
    ips = ((src0 + dst0) << 24) + ((src1 + dst1) << 16) + ((src2 + dst2) << 8) + src3 + dst3
    sport0: i64 = buf[tcp]
    sport1: i64 = buf[tcp + 1]
    dport0: i64 = buf[tcp + 2]
    dport1: i64 = buf[tcp + 3]
    return _mix(ips, ((sport0 + dport0) << 8) + sport1 + dport1, n)


def elsewhere(linktype: i64, buf: bytes, at: i64, end: i64, me: i64, n: i64) -> bool:
    """Whether the frame `buf[at:end]` is, by its raw bytes, another worker's than `me` of `n`:
    what a routing reader yields only the capture time of."""
    owner = raw_owner(linktype, buf, at, end, n)
    return owner >= 0 and owner != me
