"""nDPI captures: every flow ndpiReader classifies, its credentials, STARTTLS and packet counts."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from tests.cli_runner import read_json
from tests.paths import PUBLIC

NDPI = PUBLIC / "ndpi"
OUTPUTS = {
    "pop3.ndpiReader.out": "pop3.pcapng",
    "smtp-starttls.ndpiReader.out": "smtp-starttls.pcap",
}

FLOW = re.compile(
    r"^\t\d+\tTCP \[?(?P<cip>[0-9a-f.:]+?)\]?:(?P<cport>\d+) <-> "
    r"\[?(?P<sip>[0-9a-f.:]+?)\]?:(?P<sport>\d+) (?P<rest>.*)$"
)


@dataclass(frozen=True, slots=True)
class Flow:
    client: tuple[str, int]
    server: tuple[str, int]
    proto: str
    encrypted: bool
    packets: int
    user: str | None
    password: str | None
    risks: str


def parse(out: Path) -> list[Flow]:
    flows = []
    for line in out.read_text().splitlines():
        m = FLOW.match(line)
        if m is None:
            continue
        rest = m["rest"]
        proto = re.search(r"\[proto: [\d.]+/([\w.]+)\]", rest)
        pkts = re.search(r"\[(\d+) pkts/\d+ bytes <-> (\d+) pkts/\d+ bytes\]", rest)
        user = re.search(r"\[User: ([^\]]*)\]", rest)
        pwd = re.search(r"\[Pwd: ([^\]]*)\]", rest)
        risk = re.search(r"\[Risk: ([^\]]*)\]", rest)
        assert proto and pkts, line
        flows.append(
            Flow(
                client=(m["cip"], int(m["cport"])),
                server=(m["sip"], int(m["sport"])),
                proto=proto.group(1),
                encrypted="[Encrypted]" in rest,
                packets=int(pkts.group(1)) + int(pkts.group(2)),
                user=user.group(1) if user else None,
                password=pwd.group(1) if pwd else None,
                risks=risk.group(1) if risk else "",
            )
        )
    return flows


@cache
def sessions(capture: str) -> tuple[dict[str, Any], ...]:
    return tuple(read_json(NDPI / capture))


def session_for(capture: str, flow: Flow) -> dict[str, Any]:
    found = [
        s
        for s in sessions(capture)
        if (s["client"]["ip"], s["client"]["port"]) == flow.client
        and (s["server"]["ip"], s["server"]["port"]) == flow.server
    ]
    assert len(found) == 1, f"no session {flow.client} -> {flow.server}"
    return found[0]


def cases() -> list[Any]:
    out = []
    for name, capture in OUTPUTS.items():
        for flow in parse(NDPI / name):
            out.append(pytest.param(capture, flow, id=f"{capture}-{flow.client[1]}"))
    return out


def test_every_ndpi_flow_is_parsed() -> None:
    assert [len(parse(NDPI / name)) for name in OUTPUTS] == [6, 2]


@pytest.mark.parametrize(("capture", "flow"), cases())
def test_flow_protocol_and_encryption(capture: str, flow: Flow) -> None:
    session = session_for(capture, flow)
    if flow.proto.startswith("POP3"):
        assert session["protocol"] == "pop3"
    else:
        assert flow.proto.startswith("SMTP")
        assert session["protocol"] == "smtp"
    # nDPI: SMTPS + [Encrypted] for a flow that went through STARTTLS
    assert session["tls"] is flow.encrypted


@pytest.mark.parametrize(("capture", "flow"), cases())
def test_flow_cleartext_credentials(capture: str, flow: Flow) -> None:
    session = session_for(capture, flow)
    if flow.user is not None:
        assert (flow.user, flow.password) in {
            (a["username"], a["password"]) for a in session["auth"]
        }
    if "Clear-Text Credentials" in flow.risks:
        assert any(f["kind"] == "cleartext-credentials" for f in session["findings"])


def test_lowercase_pop3_commands_are_understood() -> None:
    # 143.225.229.181 -> 74.208.5.28: user/pass/list/uidl/retr/quit typed in lower case
    [flow] = [f for f in parse(NDPI / "pop3.ndpiReader.out") if f.user]
    session = session_for("pop3.pcapng", flow)
    [auth] = session["auth"]
    assert auth["mechanism"] == "USER" and auth["success"] is True
    assert [m["command"].split()[0].upper() for m in session["messages"]] == ["RETR"]


@pytest.mark.xfail(
    strict=True,
    reason="session 'packets' is one less than nDPI's c2s+s2c count on every flow: the packet "
    "after the close is not counted (the ACK after both FINs; on the IPv6 flow the server's FIN "
    "after the client's RST), e.g. 192.168.0.4:26272 nDPI 6+6=12, mailsniff 11; IPv6 flow "
    "16+17=33, mailsniff 32; Zeek conn.log and Suricata flow counts agree with nDPI",
)
@pytest.mark.parametrize(("capture", "flow"), cases())
def test_flow_packet_count(capture: str, flow: Flow) -> None:
    assert session_for(capture, flow)["packets"] == flow.packets
