"""The options `read`, `creds` and `report` share: their filters (applied by
analysis/select.py), --plain, and the check that flags which cannot go together are not given
together. One definition each, so the commands' flags and help agree."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from mailsniff.analysis.kinds import FindingKind
from mailsniff.analysis.select import (
    Selection,
    parse_addresses,
    parse_findings,
    parse_networks,
    parse_ports,
    parse_protocols,
    parse_time,
)
from mailsniff.errors import UsageError
from mailsniff.session import registry

# The filters of read, creds and report (applied by analysis/select.py).
Addresses = Annotated[
    list[str] | None,
    typer.Option(
        "--address",
        metavar="ADDR",
        help="Only sessions with this address in the envelope or a header, any role; "
        "@domain for a whole domain (comma-separated or repeated).",
        show_default=False,
    ),
]
Findings = Annotated[
    list[str] | None,
    typer.Option(
        "--finding",
        metavar="KIND",
        autocompletion=lambda incomplete: [
            (k.value, k.meaning) for k in FindingKind if k.value.startswith(incomplete)
        ],
        help="Only sessions with a finding of this kind (comma-separated or repeated).",
        show_default=False,
    ),
]
Hosts = Annotated[
    list[str] | None,
    typer.Option(
        "--host",
        metavar="IP|CIDR",
        help="Only sessions with an address in this range at either end (repeatable).",
        show_default=False,
    ),
]
Ports = Annotated[
    list[str] | None,
    typer.Option(
        "--port",
        metavar="PORT",
        help="Only sessions with this TCP port at either end (comma-separated or repeated).",
        show_default=False,
    ),
]
Protocols = Annotated[
    list[str] | None,
    typer.Option(
        "--protocol",
        "-p",
        metavar="NAME",
        autocompletion=lambda incomplete: [
            n for n in registry.names() if n.startswith(incomplete.lower())
        ],
        help=f"Only these protocols ({', '.join(registry.names())}; comma-separated).",
        show_default=False,
    ),
]
Since = Annotated[
    str | None,
    typer.Option(
        "--since",
        metavar="TIME",
        help="Only sessions active at or after TIME (ISO 8601, UTC unless a zone is given, "
        "or epoch seconds).",
        show_default=False,
    ),
]
Until = Annotated[
    str | None,
    typer.Option(
        "--until",
        metavar="TIME",
        help="Only sessions active at or before TIME.",
        show_default=False,
    ),
]
Bpf = Annotated[
    str | None,
    typer.Option(
        "-f",
        "--filter",
        metavar="EXPR",
        help="BPF filter (tcpdump syntax) run on every packet before anything else.",
        show_default=False,
    ),
]


Plain = Annotated[
    bool | None,
    typer.Option(
        "--plain/--no-plain",
        help="One record per line, tab-separated, no box drawing or padding (grep-friendly). "
        "Default: plain when standard output is not a terminal (MAILSNIFF_PLAIN=0 keeps the "
        "boxed view there).",
        show_default=False,
    ),
]


def plain_output(flag: bool | None) -> bool:
    """--plain / --no-plain, else plain when stdout is not a terminal (MAILSNIFF_PLAIN=0|1)."""
    import os

    if flag is not None:
        return flag
    setting = os.environ.get("MAILSNIFF_PLAIN", "")
    if setting in ("0", "1"):
        return setting == "1"
    try:
        return not os.isatty(sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        return True  # not a file at all (an in-process runner): not a terminal


def selection_of(
    address: list[str] | None,
    finding: list[str] | None,
    host: list[str] | None,
    port: list[str] | None,
    protocol: list[str] | None,
    since: str | None,
    until: str | None,
    bpf: str | None,
) -> Selection:
    """The filters of the command line, checked (a bad value is a usage error)."""
    since_ns, until_ns = parse_time(since, "--since"), parse_time(until, "--until")
    if since_ns is not None and until_ns is not None and since_ns > until_ns:
        raise UsageError(f"--since {since} is after --until {until}")
    selection = Selection(
        protocols=parse_protocols(protocol),
        networks=parse_networks(host),
        ports=frozenset(parse_ports(port) or ()) or None,
        addresses=parse_addresses(address),
        findings=parse_findings(finding),
        since_ns=since_ns,
        until_ns=until_ns,
        bpf=bpf,
    )
    selection.packet_filter()  # an expression libpcap rejects stops here
    return selection


def exclusive(**flags: object) -> None:
    """Flags that cannot go together: a usage error naming them, never a silent choice."""
    given = [name for name, value in flags.items() if value]
    if len(given) > 1:
        raise UsageError(f"{' and '.join(given)} cannot be used together")
