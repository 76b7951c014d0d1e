"""The record every capture source yields."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Frame"]


@dataclass(slots=True, frozen=True)
class Frame:
    """One captured link-layer frame."""

    ts_ns: int  # capture time, nanoseconds since the Unix epoch (UTC)
    linktype: int  # DLT / LINKTYPE_ value of the interface it was captured on
    data: bytes  # the captured bytes (caplen of them)
    wirelen: int  # original length on the wire (> len(data) when the snaplen cut it)
