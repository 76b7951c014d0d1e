"""MX lookup against a real DNS server (dnsmasq on loopback), and `mailsniff mx`."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from mailsniff.errors import UsageError
from mailsniff.send import NetworkError
from mailsniff.send.mx import host_port, lookup_mx, make_resolver
from mailsniff.status import ExitStatus
from tests.cli_runner import run_cli
from tests.servers import (
    DNS_DOMAIN,
    DNS_NO_MX,
    DNS_NULL_MX,
    DNS_NXDOMAIN,
    DnsServer,
)


def test_mx_hosts_come_sorted_by_preference_with_their_addresses(dns_server: DnsServer) -> None:
    result = lookup_mx(DNS_DOMAIN, make_resolver(dns_server.address))
    assert not result.implicit and not result.null_mx
    assert [(h.preference, h.host, h.addresses) for h in result.hosts] == [
        (10, f"mx1.{DNS_DOMAIN}", ("127.0.0.2",)),
        (20, f"mx2.{DNS_DOMAIN}", ("127.0.0.1", "::1")),
    ]


def test_a_domain_without_mx_is_its_own_exchanger(dns_server: DnsServer) -> None:
    result = lookup_mx(DNS_NO_MX, make_resolver(dns_server.address))
    assert result.implicit
    assert [(h.preference, h.host, h.addresses) for h in result.hosts] == [
        (0, DNS_NO_MX, ("127.0.0.1",))
    ]


def test_null_mx_says_the_domain_takes_no_mail(dns_server: DnsServer) -> None:
    result = lookup_mx(DNS_NULL_MX, make_resolver(dns_server.address))
    assert result.null_mx and result.hosts == ()


def test_nxdomain_is_a_network_error_naming_the_domain(dns_server: DnsServer) -> None:
    with pytest.raises(NetworkError, match=r"missing\.test: no such domain \(NXDOMAIN\)"):
        lookup_mx(DNS_NXDOMAIN, make_resolver(dns_server.address))


@pytest.fixture
def silent_dns() -> Iterator[str]:
    """A UDP port on loopback that receives DNS queries and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{s.getsockname()[1]}"


def test_a_dns_server_that_never_answers_is_a_timeout_error(silent_dns: str) -> None:
    with pytest.raises(NetworkError, match="DNS timeout after 0.5s"):
        lookup_mx(DNS_DOMAIN, make_resolver(silent_dns, timeout=0.5))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail.example.com", ("mail.example.com", 25)),
        ("mail.example.com:2525", ("mail.example.com", 2525)),
        ("127.0.0.1:53", ("127.0.0.1", 53)),
        ("[::1]:5353", ("::1", 5353)),
        ("::1", ("::1", 25)),
    ],
)
def test_host_port_forms(text: str, expected: tuple[str, int]) -> None:
    assert host_port(text, 25) == expected


@pytest.mark.parametrize("text", ["", "host:0", "host:99999", "host:x", "[::1", ":25"])
def test_bad_host_port_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError):
        host_port(text, 25)


def test_resolver_must_be_an_ip_address() -> None:
    with pytest.raises(UsageError, match="not an IP address"):
        make_resolver("dns.example.com")


def test_mx_command_lists_hosts_and_addresses(dns_server: DnsServer) -> None:
    proc = run_cli("mx", DNS_DOMAIN, "--resolver", dns_server.address, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.index(f"mx1.{DNS_DOMAIN}") < out.index(f"mx2.{DNS_DOMAIN}")
    assert "127.0.0.2" in out and "::1" in out


def test_mx_command_explains_the_implicit_mx(dns_server: DnsServer) -> None:
    proc = run_cli("mx", DNS_NO_MX, "--resolver", dns_server.address, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "implicit MX" in proc.stdout and "127.0.0.1" in proc.stdout


def test_mx_command_nxdomain_is_one_line_and_the_network_status(dns_server: DnsServer) -> None:
    proc = run_cli("mx", DNS_NXDOMAIN, "--resolver", dns_server.address, timeout=60)
    assert proc.returncode == ExitStatus.NETWORK
    assert proc.stderr.strip().splitlines() == [
        "mailsniff: error: missing.test: no such domain (NXDOMAIN)"
    ]
