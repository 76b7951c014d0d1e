"""The record every capture source yields."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from mypy_extensions import mypyc_attr

__all__ = ["LINKTYPE_ETHERNET", "Frame", "FrameOrTime", "time_of"]


#: The LINKTYPE_ value of Ethernet, the link type the readers route and the decoder takes fastest.
LINKTYPE_ETHERNET: Final = 1


@dataclass(slots=True, init=False)
@mypyc_attr(allow_interpreted_subclasses=True)
class Frame:
    """One captured link-layer frame. Equal by value; nothing changes one once it is made.

    One is built per packet, so its `__init__` is written out, as the parser events' are
    (protocols/base.py): the compiled build then builds it natively, in a tenth of the time a
    named tuple's interpreted `__new__` took, and reads its fields without a lookup.
    """

    ts_ns: int  # capture time, nanoseconds since the Unix epoch (UTC)
    linktype: int  # DLT / LINKTYPE_ value of the interface it was captured on
    data: bytes  # the captured bytes (caplen of them)
    wirelen: int  # original length on the wire (> len(data) when the snaplen cut it)

    def __init__(self, ts_ns: int, linktype: int, data: bytes, wirelen: int) -> None:
        self.ts_ns = ts_ns
        self.linktype = linktype
        self.data = data
        self.wirelen = wirelen


#: What a reader yields when it routes for a `read --jobs` worker (mailsniff.capture.route): a
#: Frame, or only the capture time (nanoseconds) of a frame another worker owns.
FrameOrTime = Frame | int


def time_of(item: FrameOrTime) -> int:
    """The capture time of a frame, or the time itself."""
    return item if isinstance(item, int) else item.ts_ns
