"""tcpdump filter expressions compiled by libpcap: the one compiler behind `-f` on capture files
(analysis.select, which runs the programs with libpcap's interpreter) and the live capture's
socket filter (capture.sniff).

libpcap is called directly (through scapy's ctypes bindings) on a "dead" handle for the link
type wanted, so no interface or privilege is needed and libpcap's own reason for a bad
expression comes back as it is, not parsed out of another library's message.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from mailsniff.capture.writer import SNAPLEN
from mailsniff.errors import UsageError

__all__ = [
    "DLT_RAW",
    "BpfProgram",
    "FilterError",
    "bpf_interpreter",
    "compile_filter",
    "dlt_of_linktype",
]

#: libpcap's DLT for raw IP on Linux (LINKTYPE_RAW, 101, in capture files).
DLT_RAW = 12
#: Link types whose number in a capture file differs from libpcap's DLT number.
_LINKTYPE_TO_DLT = {101: DLT_RAW}
#: pcap_compile's netmask when none is known (only `ip broadcast` needs one).
_NETMASK_UNKNOWN = -1  # 0xffffffff as the signed int scapy's binding declares


class FilterError(UsageError):
    """A filter expression libpcap cannot compile, or libpcap itself missing."""


def dlt_of_linktype(linktype: int) -> int:
    """The DLT libpcap compiles for, of a capture file's link type."""
    return _LINKTYPE_TO_DLT.get(linktype, linktype)


@dataclass(slots=True)
class BpfProgram:
    """A program libpcap compiled (its `struct bpf_program`), valid until free()."""

    _program: Any

    @property
    def instructions(self) -> Any:
        """The `struct bpf_insn *` array, as libpcap's `bpf_filter` takes it."""
        return self._program.bf_insns

    def code(self) -> bytes:
        """The instructions as bytes: the `struct sock_filter` array a Linux socket takes."""
        return ctypes.string_at(self._program.bf_insns, int(self._program.bf_len) * 8)

    def free(self) -> None:
        _libpcap().pcap_freecode(ctypes.byref(self._program))


def compile_filter(expression: str, dlt: int) -> BpfProgram | str:
    """libpcap's program for `expression` on DLT `dlt`, or one line saying why there is none
    (libpcap's reason, such as "syntax error" or "unknown port 'nope'").

    Raises FilterError when libpcap cannot be loaded at all.
    """
    if "\0" in expression:
        return "the expression contains a NUL character"
    from scapy.libs.structures import bpf_program

    pcap = _libpcap()
    handle = pcap.pcap_open_dead(dlt, SNAPLEN)
    if not handle:
        return f"libpcap cannot compile filters for link type {dlt}"
    program = bpf_program()
    try:
        text = expression.encode("utf-8", "surrogateescape")
        if pcap.pcap_compile(handle, ctypes.byref(program), text, 1, _NETMASK_UNKNOWN) != 0:
            reason = bytes(pcap.pcap_geterr(handle) or b"").decode("utf-8", "replace")
            return " ".join(reason.split()) or "libpcap gave no reason"
    finally:
        pcap.pcap_close(handle)
    return BpfProgram(program)


def bpf_interpreter() -> Callable[[Any, bytes, int, int], int]:
    """libpcap's `u_int bpf_filter(const struct bpf_insn *, const u_char *, u_int wirelen,
    u_int caplen)`: nonzero when the program keeps the packet."""
    run = _libpcap()._lib.bpf_filter
    run.restype = ctypes.c_uint
    run.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint, ctypes.c_uint]
    return cast(Callable[[Any, bytes, int, int], int], run)


def _libpcap() -> Any:
    """scapy's ctypes bindings of libpcap (FilterError when libpcap cannot be loaded)."""
    try:
        from scapy.libs import winpcapy
    except (ImportError, OSError) as error:
        raise FilterError(
            f"cannot load libpcap: {error}", hint="install libpcap (Debian: libpcap0.8)"
        ) from None
    return winpcapy
