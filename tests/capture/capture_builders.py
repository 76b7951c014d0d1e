"""Byte-exact pcap and pcapng builders for reader tests (formats scapy cannot write)."""

from __future__ import annotations

import struct


def pcap_header(*, order: str = "<", nano: bool = False, snaplen: int = 65535, linktype: int = 1):
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    return struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)


def pcap_record(
    ts_sec: int, ts_frac: int, data: bytes, *, order: str = "<", wirelen: int | None = None
) -> bytes:
    wire = len(data) if wirelen is None else wirelen
    return struct.pack(order + "IIII", ts_sec, ts_frac, len(data), wire) + data


def _pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def option(code: int, value: bytes, order: str = "<") -> bytes:
    return struct.pack(order + "HH", code, len(value)) + _pad(value)


def end_of_options(order: str = "<") -> bytes:
    return struct.pack(order + "HH", 0, 0)


def block(btype: int, body: bytes, order: str = "<") -> bytes:
    body = _pad(body)
    length = 12 + len(body)
    return struct.pack(order + "II", btype, length) + body + struct.pack(order + "I", length)


def shb(order: str = "<") -> bytes:
    return block(0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1), order)


def idb(linktype: int, *, snaplen: int = 0, options: bytes = b"", order: str = "<") -> bytes:
    body = struct.pack(order + "HHI", linktype, 0, snaplen)
    if options:
        body += options + end_of_options(order)
    return block(1, body, order)


def epb(ifid: int, ts: int, data: bytes, *, wirelen: int | None = None, order: str = "<"):
    wire = len(data) if wirelen is None else wirelen
    body = struct.pack(order + "IIIII", ifid, ts >> 32, ts & 0xFFFFFFFF, len(data), wire)
    return block(6, body + _pad(data), order)


def spb(data: bytes, *, wirelen: int | None = None, order: str = "<") -> bytes:
    wire = len(data) if wirelen is None else wirelen
    return block(3, struct.pack(order + "I", wire) + _pad(data), order)


def packet_block(ifid: int, ts: int, data: bytes, order: str = "<") -> bytes:
    body = struct.pack(order + "HHIIII", ifid, 0, ts >> 32, ts & 0xFFFFFFFF, len(data), len(data))
    return block(2, body + _pad(data), order)
