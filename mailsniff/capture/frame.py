"""The record every capture source yields."""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["Frame", "FrameOrTime", "time_of"]


class Frame(NamedTuple):
    """One captured link-layer frame.

    A named tuple rather than a frozen dataclass: one is built per packet, and a frozen
    dataclass's `__init__` sets each field through `object.__setattr__` (in the compiled build
    too), which made building it four times as slow. Immutable, hashable, equal by value.
    """

    ts_ns: int  # capture time, nanoseconds since the Unix epoch (UTC)
    linktype: int  # DLT / LINKTYPE_ value of the interface it was captured on
    data: bytes  # the captured bytes (caplen of them)
    wirelen: int  # original length on the wire (> len(data) when the snaplen cut it)


#: What a reader yields when it routes for a `read --jobs` worker (mailsniff.capture.route): a
#: Frame, or only the capture time (nanoseconds) of a frame another worker owns.
FrameOrTime = Frame | int


def time_of(item: FrameOrTime) -> int:
    """The capture time of a frame, or the time itself."""
    return item if isinstance(item, int) else item.ts_ns
