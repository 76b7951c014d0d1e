"""Link-layer decoders and the link-type table."""

from __future__ import annotations

import struct

import pytest

from mailsniff.net.link import (
    ETHERTYPE_IPV4,
    ETHERTYPE_IPV6,
    MALFORMED,
    bsd_loop,
    bsd_null,
    ethernet,
    is_supported,
    linktype_name,
    linux_sll,
    linux_sll2,
    raw_ip,
)

MACS = b"\x02" * 12


@pytest.mark.parametrize("linktype", [0, 1, 12, 14, 101, 108, 113, 228, 229, 276])
def test_is_supported_for_every_decoded_link_type(linktype):
    assert is_supported(linktype)


@pytest.mark.parametrize("linktype", [105, 127, 9, 147, 9999])
def test_is_supported_false_for_other_link_types(linktype):
    assert not is_supported(linktype)


def test_linktype_name_names_known_types_and_admits_unknown_ones():
    assert linktype_name(1) == "Ethernet"
    assert linktype_name(113) == "Linux cooked SLL"
    assert linktype_name(276) == "Linux cooked SLL2"
    assert linktype_name(105) == "IEEE 802.11"
    assert linktype_name(150) == "user-defined"
    assert linktype_name(31337) == "unknown"


def test_ethernet_unwraps_three_stacked_tags():
    frame = MACS + b"\x88\xa8\x00\x01" + b"\x91\x00\x00\x02" + b"\x81\x00\x00\x03" + b"\x86\xdd"
    assert ethernet(frame) == (ETHERTYPE_IPV6, 26)


def test_ethernet_reports_a_cut_tag_as_malformed():
    assert ethernet(MACS + b"\x81\x00\x00") == (MALFORMED, 0)
    assert ethernet(MACS + b"\x08") == (MALFORMED, 0)


def test_ethernet_gives_up_on_an_absurd_tag_stack():
    assert ethernet(MACS + b"\x81\x00\x00\x01" * 20 + b"\x08\x00")[0] == MALFORMED


def test_ethernet_passes_other_ethertypes_through():
    assert ethernet(MACS + b"\x08\x06" + b"\0" * 28) == (0x0806, 14)


def test_bsd_null_reads_the_family_in_either_host_byte_order():
    assert bsd_null(struct.pack("<I", 2)) == (ETHERTYPE_IPV4, 4)
    assert bsd_null(struct.pack(">I", 2)) == (ETHERTYPE_IPV4, 4)
    assert bsd_null(struct.pack(">I", 30)) == (ETHERTYPE_IPV6, 4)
    assert bsd_null(struct.pack("<I", 7)) == (0, 4)


def test_bsd_loop_reads_the_family_in_network_byte_order():
    assert bsd_loop(struct.pack(">I", 28)) == (ETHERTYPE_IPV6, 4)
    assert bsd_loop(b"\0\0") == (MALFORMED, 0)


def test_linux_cooked_headers_give_the_protocol_and_offset():
    assert linux_sll(b"\0" * 14 + b"\x08\x00") == (ETHERTYPE_IPV4, 16)
    assert linux_sll2(b"\x86\xdd" + b"\0" * 18) == (ETHERTYPE_IPV6, 20)
    assert linux_sll2(b"\x86\xdd") == (MALFORMED, 0)


def test_raw_ip_reads_the_version_nibble():
    assert raw_ip(b"\x45") == (ETHERTYPE_IPV4, 0)
    assert raw_ip(b"\x60") == (ETHERTYPE_IPV6, 0)
    assert raw_ip(b"\x10") == (0, 0)
    assert raw_ip(b"") == (MALFORMED, 0)
