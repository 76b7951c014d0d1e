"""Which packets and sessions a command keeps: the filters `read`, `creds` and `report` share.

One `Selection` holds every filter of the command line and is applied at three points, each as
early as the fact it needs is known:

- packets: `-f EXPR`, a BPF program compiled by libpcap for the capture's link type, runs on
  every record before it is decoded (as `tcpdump -r FILE EXPR` would select it);
- connections: `--host` (addresses or CIDR ranges), `--port` and `--protocol` are decided when a
  connection starts, so the others are never parsed;
- sessions: `--address`, `--finding` and `--since/--until` need the analysed session and are
  decided when it ends.

The `parse_*` functions turn option values into the Selection's fields and raise UsageError
with one line for bad input. Sessions left out are counted by the pipeline
(`PipelineStats.filtered`) and given in the summary.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from mailsniff.analysis.bcc import normalise_address
from mailsniff.analysis.kinds import FindingKind
from mailsniff.capture.frame import Frame
from mailsniff.errors import UsageError
from mailsniff.model import Address, Message, Session

if TYPE_CHECKING:  # loaded with -f only: it brings ctypes and libpcap's bindings
    from mailsniff.capture.bpf import BpfProgram

__all__ = [
    "BpfFilter",
    "Selection",
    "parse_addresses",
    "parse_findings",
    "parse_networks",
    "parse_ports",
    "parse_protocols",
    "parse_time",
]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(slots=True, frozen=True, kw_only=True)
class Selection:
    """Every filter of one command (None: that filter is not given)."""

    protocols: frozenset[str] | None = None  # registry names
    networks: tuple[Network, ...] | None = None  # --host: single addresses are /32 or /128
    ports: frozenset[int] | None = None
    addresses: frozenset[str] | None = None  # normalised; "@domain" matches the whole domain
    findings: frozenset[str] | None = None  # FindingKind values
    since_ns: int | None = None
    until_ns: int | None = None
    bpf: str | None = None  # -f: a tcpdump filter expression

    @property
    def after_analysis(self) -> bool:
        """True when some filter needs the finished session (address, finding, time)."""
        return (
            self.addresses is not None
            or self.findings is not None
            or self.since_ns is not None
            or self.until_ns is not None
        )

    def before_analysis(self) -> Selection:
        """These filters without those that need the analysed session (applied by the caller
        with `keeps_session`, e.g. after the export has been told which sessions are kept)."""
        return replace(self, addresses=None, findings=None, since_ns=None, until_ns=None)

    @property
    def active(self) -> bool:
        return self.after_analysis or any(
            v is not None for v in (self.protocols, self.networks, self.ports, self.bpf)
        )

    # -- connections ------------------------------------------------------------------------

    def keeps_flow(self, client: tuple[bytes, int], server: tuple[bytes, int]) -> bool:
        """--port and --host, for a connection's (packed IP, port) ends."""
        if self.ports is not None and client[1] not in self.ports and server[1] not in self.ports:
            return False
        if self.networks is not None:
            ends = (ipaddress.ip_address(client[0]), ipaddress.ip_address(server[0]))
            if not any(ip in net for ip in ends for net in self.networks):
                return False
        return True

    def keeps_protocol(self, protocol: str) -> bool:
        return self.protocols is None or protocol in self.protocols

    # -- sessions ---------------------------------------------------------------------------

    def keeps_session(self, session: Session) -> bool:
        """--address, --finding, --since/--until, on an analysed session."""
        if self.since_ns is not None and session.end_ns < self.since_ns:
            return False
        if self.until_ns is not None and session.start_ns > self.until_ns:
            return False
        if self.findings is not None and not any(f.kind in self.findings for f in session.findings):
            return False
        if self.addresses is not None and not self._has_address(session):
            return False
        return True

    def _has_address(self, session: Session) -> bool:
        wanted = self.addresses
        assert wanted is not None
        domains = tuple(a for a in wanted if a.startswith("@"))
        for address in session_addresses(session):
            key = normalise_address(address)
            if key in wanted or (domains and key.endswith(domains)):
                return True
        return False

    # -- packets ----------------------------------------------------------------------------

    def packet_filter(self) -> BpfFilter | None:
        return BpfFilter(self.bpf) if self.bpf is not None else None

    def frames(self, frames: Iterable[Frame]) -> Iterator[Frame]:
        """The frames `-f` lets through (all of them without -f: the same iterator, no layer
        passing each frame on)."""
        if self.bpf is None:
            return iter(frames)
        return self._filtered(frames)

    def _filtered(self, frames: Iterable[Frame]) -> Iterator[Frame]:
        bpf = self.packet_filter()
        assert bpf is not None
        keeps = bpf.keeps
        for frame in frames:
            if keeps(frame):
                yield frame


def session_addresses(session: Session) -> Iterator[str]:
    """Every mail address of a session, in any role: MAIL FROM, RCPT TO, and the From, Sender,
    Reply-To, To, Cc and Bcc headers of sent, retrieved and appended messages."""
    for tx in session.transactions:
        yield tx.mail_from
        for rcpt in tx.rcpts:
            yield rcpt.address
        if tx.message is not None:
            yield from _header_addresses(tx.message)
    for retrieved in session.messages:
        yield from _header_addresses(retrieved.message)


def _header_addresses(message: Message) -> Iterator[str]:
    lists: tuple[list[Address], ...] = (
        message.from_,
        message.sender,
        message.reply_to,
        message.to,
        message.cc,
        message.bcc,
    )
    for addresses in lists:
        for a in addresses:
            yield a.address


# -- parsing option values --------------------------------------------------------------------


def _items(values: Iterable[str] | None) -> list[str]:
    """`--opt a,b --opt c`: comma lists and repetition, blanks dropped."""
    return [part.strip() for value in values or () for part in value.split(",") if part.strip()]


def parse_protocols(values: Iterable[str] | None) -> frozenset[str] | None:
    """--protocol smtp,pop3: registered protocols' names, any case."""
    from mailsniff.session import registry

    names = _items(values)
    if not names:
        return None
    known = registry.names()
    for name in names:
        if name.lower() not in known:
            raise UsageError(
                f"--protocol: unknown protocol {name!r}", hint="one of " + ", ".join(known)
            )
    return frozenset(n.lower() for n in names)


def parse_networks(values: Iterable[str] | None) -> tuple[Network, ...] | None:
    """--host 192.0.2.7,10.0.0.0/8 --host 2001:db8::/32: addresses and CIDR ranges."""
    items = _items(values)
    if not items:
        return None
    out: list[Network] = []
    for item in items:
        try:
            out.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise UsageError(
                f"--host: not an IP address or CIDR range: {item!r}",
                hint="e.g. 192.0.2.7, 10.0.0.0/8, 2001:db8::/32",
            ) from None
    return tuple(out)


def parse_ports(values: Iterable[str] | None, option: str = "--port") -> tuple[int, ...] | None:
    """`--port 25,110 --port 587` (and live's `--ports`): comma lists, repeatable."""
    if not values:
        return None
    out: list[int] = []
    for value in values:
        for part in value.split(","):
            text = part.strip()
            if not text.isdigit() or not 0 < int(text) < 65536:
                raise UsageError(f"{option}: not a TCP port (1-65535): {text!r}")
            out.append(int(text))
    return tuple(out)


def parse_addresses(values: Iterable[str] | None) -> frozenset[str] | None:
    """--address alice@example.com,@example.org: addresses compared case-insensitively."""
    if values is None:
        return None
    items = _items(values)
    if not items:
        raise UsageError("--address: no address given")
    out = set()
    for item in items:
        key = normalise_address(item)
        if not key or key == "@" or key.count("@") > 1 and not key.startswith("@"):
            raise UsageError(
                f"--address: not a mail address or @domain: {item!r}",
                hint="e.g. alice@example.com, or @example.com for a whole domain",
            )
        out.add(key)
    return frozenset(out)


def parse_findings(values: Iterable[str] | None) -> frozenset[str] | None:
    """--finding bcc,from-mismatch: finding kinds (analysis.kinds.FindingKind)."""
    items = _items(values)
    if not items:
        return None
    known = [k.value for k in FindingKind]
    for item in items:
        if item.lower() not in known:
            raise UsageError(f"--finding: unknown kind {item!r}", hint="one of " + ", ".join(known))
    return frozenset(i.lower() for i in items)


def parse_time(value: str | None, option: str) -> int | None:
    """--since/--until: ISO 8601 (a time without zone is UTC; a date alone is its midnight) or
    seconds since the epoch; nanoseconds since the epoch."""
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds):
            raise UsageError(f"{option}: not a time: {value!r}")
        return int(round(seconds * 1_000_000_000))
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"{option}: not a time: {value!r}",
            hint="ISO 8601 such as 2024-05-01T10:00:00Z, or seconds since the epoch",
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


# -- BPF on capture files ---------------------------------------------------------------------


@dataclass(slots=True)
class BpfFilter:
    """A tcpdump filter expression run on capture-file records by libpcap's own interpreter
    (`bpf_filter`), compiled once per link type met."""

    expression: str
    #: Link type -> its program's instructions (the programs are kept alive with them).
    _instructions: dict[int, object] = field(default_factory=dict)
    _programs: list[BpfProgram] = field(default_factory=list)
    _run: Callable[[object, bytes, int, int], int] = field(init=False)

    def __post_init__(self) -> None:
        from mailsniff.capture.bpf import bpf_interpreter

        self._run = bpf_interpreter()
        self.program(1)  # an expression that does not compile is a usage error at once

    def program(self, linktype: int) -> object:
        """The instructions of the program for `linktype`, compiled when first needed."""
        instructions = self._instructions.get(linktype)
        if instructions is None:
            from mailsniff.capture.bpf import compile_filter, dlt_of_linktype

            compiled = compile_filter(self.expression, dlt_of_linktype(linktype))
            if isinstance(compiled, str):
                raise UsageError(f"-f: invalid filter {self.expression!r}: {compiled}")
            self._programs.append(compiled)
            instructions = self._instructions[linktype] = compiled.instructions
        return instructions

    def keeps(self, frame: Frame) -> bool:
        instructions = self._instructions.get(frame.linktype) or self.program(frame.linktype)
        data = frame.data
        return bool(self._run(instructions, data, frame.wirelen, len(data)))
