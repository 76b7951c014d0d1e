"""The record the L2-L4 decoder hands to TCP reassembly."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from mypy_extensions import mypyc_attr

__all__ = ["Segment", "TCP_FIN", "TCP_SYN", "TCP_RST", "TCP_PSH", "TCP_ACK", "TCP_URG"]

TCP_FIN: Final = 0x01
TCP_SYN: Final = 0x02
TCP_RST: Final = 0x04
TCP_PSH: Final = 0x08
TCP_ACK: Final = 0x10
TCP_URG: Final = 0x20


@dataclass(slots=True, init=False)
@mypyc_attr(allow_interpreted_subclasses=True)
class Segment:
    """One TCP segment (after IP defragmentation), addresses as packed bytes (4 or 16).

    Equal by value; nothing changes one once it is made. Built once per packet, with its
    `__init__` written out (see `capture.frame.Frame`).
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

    def __init__(
        self,
        ts_ns: int,
        src: bytes,
        sport: int,
        dst: bytes,
        dport: int,
        seq: int,
        ack: int,
        flags: int,
        payload: bytes,
        missing: int = 0,
    ) -> None:
        self.ts_ns = ts_ns
        self.src = src
        self.sport = sport
        self.dst = dst
        self.dport = dport
        self.seq = seq
        self.ack = ack
        self.flags = flags
        self.payload = payload
        self.missing = missing
