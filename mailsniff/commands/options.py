"""The options `read`, `creds` and `report` share: their filters (applied by
analysis/select.py; `with_filters` gives a command all of them as one `Filters`), --plain, and
the check that flags which cannot go together are not given together. One definition each, so
the commands' flags and help agree."""

from __future__ import annotations

import functools
import inspect
import sys
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

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


def _option(*decls: str, metavar: str, help: str, **settings: Any) -> Any:
    """A filter option (none shows a default: not given means no filter)."""
    return typer.Option(*decls, metavar=metavar, help=help, show_default=False, **settings)


def _complete_findings(incomplete: str) -> list[tuple[str, str]]:
    return [(k.value, k.meaning) for k in FindingKind if k.value.startswith(incomplete)]


def _complete_protocols(incomplete: str) -> list[str]:
    return [n for n in registry.names() if n.startswith(incomplete.lower())]


#: The filters of read, creds and report (applied by analysis/select.py), in the order their
#: help lists them: Filters' field -> its option.
_OPTIONS: dict[str, Any] = {
    "protocol": _option(
        "--protocol",
        "-p",
        metavar="NAME",
        autocompletion=_complete_protocols,
        help=f"Only these protocols ({', '.join(registry.names())}; comma-separated).",
    ),
    "hosts": _option(
        "--host",
        metavar="IP|CIDR",
        help="Only sessions with an address in this range at either end (repeatable).",
    ),
    "ports": _option(
        "--port",
        metavar="PORT",
        help="Only sessions with this TCP port at either end (comma-separated or repeated).",
    ),
    "address": _option(
        "--address",
        metavar="ADDR",
        help="Only sessions with this address in the envelope or a header, any role; "
        "@domain for a whole domain (comma-separated or repeated).",
    ),
    "finding": _option(
        "--finding",
        metavar="KIND",
        autocompletion=_complete_findings,
        help="Only sessions with a finding of this kind (comma-separated or repeated).",
    ),
    "since": _option(
        "--since",
        metavar="TIME",
        help="Only sessions active at or after TIME (ISO 8601, UTC unless a zone is given, "
        "or epoch seconds).",
    ),
    "until": _option("--until", metavar="TIME", help="Only sessions active at or before TIME."),
    "bpf": _option(
        "-f",
        "--filter",
        metavar="EXPR",
        help="BPF filter (tcpdump syntax) run on every packet before anything else.",
    ),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Filters:
    """The filter options as given on the command line (None: not given)."""

    protocol: list[str] | None = None
    hosts: list[str] | None = None
    ports: list[str] | None = None
    address: list[str] | None = None
    finding: list[str] | None = None
    since: str | None = None
    until: str | None = None
    bpf: str | None = None

    def selection(self) -> Selection:
        """The filters checked (a bad value is a usage error)."""
        since_ns = parse_time(self.since, "--since")
        until_ns = parse_time(self.until, "--until")
        if since_ns is not None and until_ns is not None and since_ns > until_ns:
            raise UsageError(f"--since {self.since} is after --until {self.until}")
        selection = Selection(
            protocols=parse_protocols(self.protocol),
            networks=parse_networks(self.hosts),
            ports=frozenset(parse_ports(self.ports) or ()) or None,
            addresses=parse_addresses(self.address),
            findings=parse_findings(self.finding),
            since_ns=since_ns,
            until_ns=until_ns,
            bpf=self.bpf,
        )
        selection.packet_filter()  # an expression libpcap rejects stops here
        return selection


#: What a command declares where the filter options go (see with_filters).
NO_FILTERS = Filters()

R = TypeVar("R")


def with_filters(command: Callable[..., R]) -> Callable[..., R]:
    """Give a command the filter options: its parameter `filters: Filters = NO_FILTERS` stands
    for them in its signature (Typer lists them there, in _OPTIONS' order), and the command
    gets them back as one Filters."""
    signature = inspect.signature(command, eval_str=True)
    params = list(signature.parameters.values())
    at = [p.name for p in params].index("filters")
    kind, types = params[at].kind, typing.get_type_hints(Filters)
    options = [
        inspect.Parameter(name, kind, default=None, annotation=Annotated[types[name], option])
        for name, option in _OPTIONS.items()
    ]

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> R:
        given = {name: kwargs.pop(name, None) for name in _OPTIONS}
        return command(*args, filters=Filters(**given), **kwargs)

    wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[*params[:at], *options, *params[at + 1 :]]
    )
    return wrapper


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


def exclusive(**flags: object) -> None:
    """Flags that cannot go together: a usage error naming them, never a silent choice."""
    given = [name for name, value in flags.items() if value]
    if len(given) > 1:
        raise UsageError(f"{' and '.join(given)} cannot be used together")
