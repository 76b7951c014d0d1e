"""The one pcap writer: live capture's -w file and the active client's --capture file."""

from __future__ import annotations

import struct
from typing import BinaryIO

from mailsniff.capture.frame import Frame
from mailsniff.errors import InputError

__all__ = ["SNAPLEN", "PcapWriter"]

#: Bytes kept of each packet (tcpdump's default): larger than any loopback or jumbo frame.
SNAPLEN = 262144


class PcapWriter:
    """Writes frames to a classic pcap file with nanosecond timestamps (magic a1b23c4d)."""

    def __init__(self, path: str, linktype: int, snaplen: int = SNAPLEN) -> None:
        try:
            self._file: BinaryIO = open(path, "wb")  # noqa: SIM115 - closed by close()
        except OSError as error:
            raise InputError(f"cannot write {path}: {error.strerror or error}") from None
        self._file.write(struct.pack("=IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, snaplen, linktype))
        self.packets = 0

    def write(self, frame: Frame) -> None:
        sec, nsec = divmod(frame.ts_ns, 1_000_000_000)
        self._file.write(struct.pack("=IIII", sec, nsec, len(frame.data), frame.wirelen))
        self._file.write(frame.data)
        self.packets += 1

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> PcapWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
