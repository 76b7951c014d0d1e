"""Community ID and the Zeek-style uid: checked against the reference implementation and
against the values Arkime published for public captures."""

from __future__ import annotations

import ipaddress
import json
import re

import communityid
from hypothesis import given, settings
from hypothesis import strategies as st

from mailsniff.analysis.ids import community_id, file_uid, flow_uid
from mailsniff.model import Endpoint
from tests.cli_runner import PUBLIC, read_json

_REFERENCE = communityid.CommunityID(seed=0)

ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(str)
ports = st.integers(min_value=0, max_value=65535)


def _reference(a: Endpoint, b: Endpoint) -> str:
    tpl = communityid.FlowTuple.make_tcp(a.ip, b.ip, a.port, b.port)
    return str(_REFERENCE.calc(tpl))


@settings(max_examples=600, deadline=None)
@given(st.one_of(st.tuples(ipv4, ipv4), st.tuples(ipv6, ipv6)), ports, ports)
def test_community_id_matches_the_reference_implementation(
    ips: tuple[str, str], p1: int, p2: int
) -> None:
    a, b = Endpoint(ips[0], p1), Endpoint(ips[1], p2)
    assert community_id(a, b) == _reference(a, b)
    assert community_id(b, a) == community_id(a, b)  # both directions are the same flow


@settings(max_examples=200, deadline=None)
@given(st.one_of(ipv4, ipv6), ports, ports)
def test_community_id_orders_by_port_when_the_addresses_are_equal(
    ip: str, p1: int, p2: int
) -> None:
    a, b = Endpoint(ip, p1), Endpoint(ip, p2)
    assert community_id(a, b) == _reference(a, b) == community_id(b, a)


def test_community_id_spec_example() -> None:
    # The spec's baseline (community-id-spec, baseline/baseline_default.json): TCP
    # 128.232.110.120:34855 -> 66.35.250.204:80, seed 0.
    a, b = Endpoint("128.232.110.120", 34855), Endpoint("66.35.250.204", 80)
    assert community_id(a, b) == "1:LQU9qZlK+B5F3KDmev6m5PMibrg="


def test_session_community_ids_match_arkime() -> None:
    """Arkime's test expectations carry the community_id of every session it saw."""
    checked = 0
    for expected_file in sorted((PUBLIC / "arkime").glob("*.arkime.test.json")):
        pcap = expected_file.with_name(expected_file.name.replace(".arkime.test.json", ".pcap"))
        arkime = {}
        for entry in json.loads(expected_file.read_text())["sessions3"]:
            body = entry["body"]
            if "community_id" not in body.get("network", {}):
                continue
            ends = frozenset(
                {
                    (str(ipaddress.ip_address(body["source"]["ip"])), body["source"]["port"]),
                    (
                        str(ipaddress.ip_address(body["destination"]["ip"])),
                        body["destination"]["port"],
                    ),
                }
            )
            arkime[ends] = body["network"]["community_id"]
        for s in read_json(pcap):
            ends = frozenset(
                {(s["client"]["ip"], s["client"]["port"]), (s["server"]["ip"], s["server"]["port"])}
            )
            if ends in arkime:
                assert s["community_id"] == arkime[ends], pcap.name
                checked += 1
    assert checked == 12, checked  # every session Arkime gave one


def test_uids_are_zeek_shaped_and_reproducible() -> None:
    c, s = Endpoint("10.0.0.1", 40000), Endpoint("10.0.0.2", 25)
    uid = flow_uid(c, s, 1_000_000_000)
    assert re.fullmatch(r"C[0-9A-Za-z]{1,17}", uid)
    assert uid == flow_uid(c, s, 1_000_000_000)
    # another start time (port reuse) or another client is another connection
    assert uid != flow_uid(c, s, 1_000_000_001)
    assert uid != flow_uid(Endpoint("10.0.0.1", 40001), s, 1_000_000_000)
    fuid = file_uid(uid, 1, 0)
    assert re.fullmatch(r"F[0-9A-Za-z]{1,17}", fuid) and fuid != file_uid(uid, 1, 1)


def test_json_uid_is_the_same_on_every_run() -> None:
    pcap = PUBLIC / "zeek" / "smtp.pcap"
    first = [(s["uid"], s["community_id"]) for s in read_json(pcap)]
    assert first == [(s["uid"], s["community_id"]) for s in read_json(pcap)]
    assert len({uid for uid, _ in first}) == len(first)
