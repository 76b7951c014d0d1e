"""The record the L2-L4 decoder hands to TCP reassembly."""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["Segment", "TCP_FIN", "TCP_SYN", "TCP_RST", "TCP_PSH", "TCP_ACK", "TCP_URG"]

TCP_FIN = 0x01
TCP_SYN = 0x02
TCP_RST = 0x04
TCP_PSH = 0x08
TCP_ACK = 0x10
TCP_URG = 0x20


class Segment(NamedTuple):
    """One TCP segment (after IP defragmentation), addresses as packed bytes (4 or 16).

    A named tuple, built once per packet: immutable, hashable, equal by value, and four times
    as fast to build as a frozen dataclass (see `capture.frame.Frame`).
    """

    ts_ns: int
    src: bytes  # packed IPv4 (4 bytes) or IPv6 (16 bytes) address
    sport: int
    dst: bytes
    dport: int
    seq: int
    ack: int
    flags: int  # TCP_* bits
    payload: bytes
    #: Payload bytes the snaplen cut off (the segment carried len(payload) + this on the wire).
    missing: int = 0
