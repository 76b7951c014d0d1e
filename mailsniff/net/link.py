"""Link-layer headers: Ethernet with 802.1Q/802.1ad tags, Linux SLL/SLL2, BSD NULL/LOOP, raw IP.

Link type numbers are the LINKTYPE_ values of the tcpdump.org registry
(draft-ietf-opsawg-pcaplinktype).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Final

from mailsniff.limits import MAX_VLAN_TAGS

__all__ = [
    "ETHERTYPE_IPV4",
    "ETHERTYPE_IPV6",
    "LINK_DECODERS",
    "LinkDecoder",
    "MALFORMED",
    "is_supported",
    "linktype_name",
]

ETHERTYPE_IPV4: Final = 0x0800
ETHERTYPE_IPV6: Final = 0x86DD
#: The "ethertype" a link decoder returns when the frame is too short for its header.
MALFORMED: Final = -1
#: 802.1Q C-tag, 802.1ad S-tag, and the pre-standard QinQ 0x9100.
_VLAN_TPIDS: Final = frozenset({0x8100, 0x88A8, 0x9100})
#: BSD address families: AF_INET is 2 everywhere; AF_INET6 is 24 (NetBSD, OpenBSD),
#: 28 (FreeBSD) or 30 (Darwin), 10 (Linux).
_AF_TO_ETHERTYPE: Final = {
    2: ETHERTYPE_IPV4,
    24: ETHERTYPE_IPV6,
    28: ETHERTYPE_IPV6,
    30: ETHERTYPE_IPV6,
}

_U16: Final = struct.Struct("!H").unpack_from
_U32_BE: Final = struct.Struct(">I").unpack_from
_U32_LE: Final = struct.Struct("<I").unpack_from

#: data -> (ethertype, offset of the L3 header); ethertype MALFORMED when the header is cut.
LinkDecoder = Callable[[bytes], tuple[int, int]]


def _vlan(data: bytes, ethertype: int, off: int) -> tuple[int, int]:
    """Unwrap stacked VLAN tags (IEEE 802.1Q, 802.1ad): 2 bytes TCI, then the next ethertype."""
    tags = 0
    while ethertype in _VLAN_TPIDS:
        tags += 1
        if tags > MAX_VLAN_TAGS or off + 4 > len(data):
            return MALFORMED, 0
        ethertype = _U16(data, off + 2)[0]
        off += 4
    return ethertype, off


def ethernet(data: bytes) -> tuple[int, int]:
    """Ethernet II (IEEE 802.3): 6 dst, 6 src, 2 ethertype, then optional VLAN tags."""
    if len(data) < 14:
        return MALFORMED, 0
    ethertype = _U16(data, 12)[0]
    if ethertype in _VLAN_TPIDS:
        return _vlan(data, ethertype, 14)
    return ethertype, 14


def _raw_version(data: bytes, off: int) -> tuple[int, int]:
    if len(data) <= off:
        return MALFORMED, 0
    version = data[off] >> 4
    if version == 4:
        return ETHERTYPE_IPV4, off
    if version == 6:
        return ETHERTYPE_IPV6, off
    return 0, off


def raw_ip(data: bytes) -> tuple[int, int]:
    """Raw IP (LINKTYPE_RAW 101, and DLT 12/14 as some BSDs write it): version from the header."""
    return _raw_version(data, 0)


def raw_ipv4(data: bytes) -> tuple[int, int]:
    """LINKTYPE_IPV4 (228): every packet is IPv4."""
    return (ETHERTYPE_IPV4, 0) if data else (MALFORMED, 0)


def raw_ipv6(data: bytes) -> tuple[int, int]:
    """LINKTYPE_IPV6 (229): every packet is IPv6."""
    return (ETHERTYPE_IPV6, 0) if data else (MALFORMED, 0)


def linux_sll(data: bytes) -> tuple[int, int]:
    """Linux cooked capture v1 (113): 16-byte header, protocol type in its last 2 bytes."""
    if len(data) < 16:
        return MALFORMED, 0
    ethertype = _U16(data, 14)[0]
    if ethertype in _VLAN_TPIDS:
        return _vlan(data, ethertype, 16)
    return ethertype, 16


def linux_sll2(data: bytes) -> tuple[int, int]:
    """Linux cooked capture v2 (276): 20-byte header, protocol type in its first 2 bytes."""
    if len(data) < 20:
        return MALFORMED, 0
    ethertype = _U16(data, 0)[0]
    if ethertype in _VLAN_TPIDS:
        return _vlan(data, ethertype, 20)
    return ethertype, 20


def bsd_null(data: bytes) -> tuple[int, int]:
    """BSD loopback NULL (0): a 4-byte address family in the *capturing host's* byte order."""
    if len(data) < 4:
        return MALFORMED, 0
    family = _U32_LE(data, 0)[0]
    if family > 0xFFFF:  # written by a big-endian host
        family = _U32_BE(data, 0)[0]
    return _AF_TO_ETHERTYPE.get(family, 0), 4


def bsd_loop(data: bytes) -> tuple[int, int]:
    """OpenBSD LOOP (108): a 4-byte address family in network byte order."""
    if len(data) < 4:
        return MALFORMED, 0
    return _AF_TO_ETHERTYPE.get(_U32_BE(data, 0)[0], 0), 4


#: LINKTYPE_ value -> decoder of its header.
LINK_DECODERS: dict[int, LinkDecoder] = {
    0: bsd_null,
    1: ethernet,
    12: raw_ip,
    14: raw_ip,
    101: raw_ip,
    108: bsd_loop,
    113: linux_sll,
    228: raw_ipv4,
    229: raw_ipv6,
    276: linux_sll2,
}

_NAMES: Final = {
    0: "BSD loopback NULL",
    1: "Ethernet",
    9: "PPP",
    12: "raw IP",
    14: "raw IP",
    50: "PPP in HDLC framing",
    101: "raw IP",
    104: "Cisco HDLC",
    105: "IEEE 802.11",
    108: "OpenBSD loopback LOOP",
    113: "Linux cooked SLL",
    119: "IEEE 802.11 Prism",
    127: "IEEE 802.11 radiotap",
    143: "DOCSIS",
    192: "PPI",
    195: "IEEE 802.15.4",
    201: "Bluetooth HCI H4",
    220: "USB Linux mmapped",
    228: "raw IPv4",
    229: "raw IPv6",
    249: "USB pcap",
    276: "Linux cooked SLL2",
}


def is_supported(linktype: int) -> bool:
    """Whether mailsniff decodes frames of this LINKTYPE_ value."""
    return linktype in LINK_DECODERS


def linktype_name(linktype: int) -> str:
    """A human name for a LINKTYPE_ value ("Ethernet", "Linux cooked SLL", ...)."""
    if 147 <= linktype <= 162:
        return "user-defined"
    return _NAMES.get(linktype, "unknown")
