"""The record every capture source yields."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from mypy_extensions import mypyc_attr

from mailsniff import _compiled

__all__ = ["LINKTYPE_ETHERNET", "NATIVE", "Frame", "FrameOrTime", "time_of"]

#: Whether this process runs the compiled build (mailsniff._compiled decides for all the
#: compiled modules at once). The pcap reader and the decoder read header fields byte by byte
#: when it does: machine integers, a third of the time of a struct unpack, which builds a tuple
#: and an int object per field. Interpreted, a dozen byte reads are the slower: they use struct.
NATIVE: Final = _compiled.STATUS == "compiled"


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
