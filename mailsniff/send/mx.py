"""MX lookup with dnspython: preference order, implicit MX (RFC 5321 5.1), null MX (RFC 7505)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import dns.exception
import dns.name
import dns.resolver

from mailsniff.errors import UsageError
from mailsniff.send import NetworkError

__all__ = ["MxHost", "MxResult", "host_port", "lookup_mx", "make_resolver", "resolve_addresses"]

DNS_PORT = 53


@dataclass(slots=True, frozen=True)
class MxHost:
    """One mail exchanger: its preference, name and addresses (A then AAAA)."""

    preference: int
    host: str
    addresses: tuple[str, ...]
    #: Why there are no addresses ("NXDOMAIN", "no A/AAAA"), None when there are some.
    problem: str | None = None
    #: Lookups that failed although others answered (`mx1.example AAAA: ... REFUSED`).
    warnings: tuple[str, ...] = ()


@dataclass(slots=True, frozen=True)
class MxResult:
    """Where mail for `domain` goes, most preferred first."""

    domain: str
    hosts: tuple[MxHost, ...]
    #: No MX records: the domain itself is the mail exchanger (RFC 5321 5.1).
    implicit: bool = False
    #: The domain publishes `MX 0 .`: it accepts no mail (RFC 7505).
    null_mx: bool = False


def host_port(text: str, default_port: int, what: str = "--server") -> tuple[str, int]:
    """`HOST`, `HOST:PORT`, `[IPv6]:PORT` or a bare IPv6 address -> (host, port)."""
    text = text.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise UsageError(f"{what}: bad address {text!r}")
        port_text = rest[1:] if rest else ""
    elif text.count(":") > 1:  # a bare IPv6 address
        host, port_text = text, ""
    else:
        host, _, port_text = text.partition(":")
    if not host:
        raise UsageError(f"{what}: no host in {text!r}")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise UsageError(f"{what}: bad port in {text!r}")
    return host, int(port_text)


def make_resolver(server: str | None = None, timeout: float = 5.0) -> dns.resolver.Resolver:
    """A resolver asking `server` (`IP[:PORT]`), or the system's (/etc/resolv.conf)."""
    if server is None:
        try:
            resolver = dns.resolver.Resolver()
        except dns.exception.DNSException as error:
            raise NetworkError(f"no DNS resolver configured: {error}") from None
    else:
        host, port = host_port(server, DNS_PORT, "--resolver")
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise UsageError(f"--resolver: not an IP address: {host!r}") from None
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [host]
        resolver.port = port
    resolver.timeout = timeout
    resolver.lifetime = timeout
    return resolver


def _dns_error(name: str, rdtype: str, error: Exception, resolver: dns.resolver.Resolver) -> str:
    if isinstance(error, dns.resolver.NXDOMAIN):
        return f"{name}: no such domain (NXDOMAIN)"
    if isinstance(error, dns.exception.Timeout):
        servers = ", ".join(f"{ns}:{resolver.port}" for ns in resolver.nameservers)
        return f"{name} {rdtype}: DNS timeout after {resolver.lifetime:g}s asking {servers}"
    if isinstance(error, dns.resolver.NoNameservers):
        return f"{name} {rdtype}: no DNS server answered (SERVFAIL or REFUSED)"
    return f"{name} {rdtype}: DNS lookup failed: {error}"


def resolve_addresses(
    host: str, resolver: dns.resolver.Resolver
) -> tuple[tuple[str, ...], str | None, tuple[str, ...]]:
    """A then AAAA addresses of `host` (an IP literal is returned as is).

    Returns (addresses, problem when there are none, warnings): one of the two queries
    failing while the other answered is a warning, not the end.

    Raises:
        NetworkError: no DNS server answered either query (timeout, SERVFAIL, REFUSED).
    """
    try:
        return (str(ipaddress.ip_address(host)),), None, ()
    except ValueError:
        pass
    addresses: list[str] = []
    problem: str | None = None
    failures: list[str] = []
    for rdtype in ("A", "AAAA"):
        try:
            answer = resolver.resolve(host, rdtype, search=False)
        except dns.resolver.NoAnswer:
            continue
        except dns.resolver.NXDOMAIN:
            return (), "NXDOMAIN", ()
        except dns.exception.DNSException as error:
            if isinstance(error, dns.exception.Timeout | dns.resolver.NoNameservers):
                failures.append(_dns_error(host, rdtype, error, resolver))
            else:
                problem = str(error)
            continue
        addresses.extend(str(r.address) for r in answer)
    if failures and not addresses:
        raise NetworkError("; ".join(failures))
    if not addresses and problem is None:
        problem = "no A/AAAA records"
    return tuple(addresses), problem if not addresses else None, tuple(failures)


def lookup_mx(domain: str, resolver: dns.resolver.Resolver) -> MxResult:
    """MX hosts of `domain`, sorted by preference, each with its addresses.

    Raises:
        NetworkError: NXDOMAIN, timeout, no server answered, or no MX and no address.
    """
    domain = domain.strip().rstrip(".").lower()
    if not domain:
        raise UsageError("no domain given")
    try:
        answer = resolver.resolve(domain, "MX", search=False)
    except dns.resolver.NoAnswer:
        addresses, problem, warnings = resolve_addresses(domain, resolver)
        if not addresses:
            raise NetworkError(
                f"{domain}: no MX records and no A/AAAA address ({problem})"
            ) from None
        return MxResult(domain, (MxHost(0, domain, addresses, None, warnings),), implicit=True)
    except dns.exception.DNSException as error:
        raise NetworkError(_dns_error(domain, "MX", error, resolver)) from None
    records = sorted(
        ((int(r.preference), r.exchange) for r in answer),
        key=lambda pair: (pair[0], str(pair[1]).lower()),
    )
    if len(records) == 1 and records[0][1] == dns.name.root:
        return MxResult(domain, (), null_mx=True)
    hosts: list[MxHost] = []
    failed: list[NetworkError] = []
    for preference, exchange in records:
        if exchange == dns.name.root:
            continue  # a null MX beside real ones is a misconfiguration: skip it
        name = exchange.to_text(omit_final_dot=True)
        try:
            addresses, problem, warnings = resolve_addresses(name, resolver)
        except NetworkError as error:  # this host's lookups failed; the others may answer
            failed.append(error)
            hosts.append(MxHost(preference, name, (), error.message))
            continue
        hosts.append(MxHost(preference, name, addresses, problem, warnings))
    if failed and not any(h.addresses for h in hosts):
        raise failed[0]
    return MxResult(domain, tuple(hosts))
