"""What `mailsniff send` does (RFC 5321): run the client, print the results.

The typer commands in mailsniff.cli only turn options into the calls below.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text

from mailsniff.analysis.findings import analyse
from mailsniff.commands.mx import mx_warnings
from mailsniff.errors import MailsniffError, UsageError
from mailsniff.export.redact import redact_session, text_redactor
from mailsniff.model import Session, TranscriptLine
from mailsniff.protocols.smtp import SmtpAnomalyKind
from mailsniff.render.active import dry_run_grid, outcome_table
from mailsniff.render.console import render_session, transcript_text
from mailsniff.render.jsonl import dumps, session_record
from mailsniff.render.text import safe_text
from mailsniff.send import NetworkError, RejectedError
from mailsniff.send.capture import PacketCapture
from mailsniff.send.client import (
    OWN_TLS_NOTE,
    RcptOutcome,
    SendResult,
    SmtpOptions,
    TlsMode,
    deliver,
)
from mailsniff.send.message import (
    MessageSpec,
    build_message,
    envelope_recipients,
    envelope_roles,
    parse_header_option,
    split_addresses,
)
from mailsniff.send.mx import MxResult, host_port, lookup_mx, make_resolver
from mailsniff.status import ExitStatus

__all__ = [
    "SendRequest",
    "build_send_request",
    "capturing",
    "finish_session",
    "run_send",
    "send_record",
    "show_lines",
]

SMTP_PORT = 25
SMTPS_PORT = 465
#: Anomaly the reader flags for cleartext after STARTTLS; our own client feeds the decrypted
#: side on purpose, so it says nothing about this session.
_OWN_CLEARTEXT = SmtpAnomalyKind.CLEARTEXT_AFTER_STARTTLS


def show_lines(out: Console, secrets: list[str] | None) -> Callable[[list[TranscriptLine]], None]:
    """Print transcript lines as they happen; with --redact, the given secrets masked."""
    scrub = text_redactor(secrets) if secrets else None

    def show(lines: list[TranscriptLine]) -> None:
        if scrub is not None:
            lines = [
                TranscriptLine(
                    line.ts_ns,
                    line.direction,
                    scrub(line.text),
                    None if line.note is None else scrub(line.note),
                )
                for line in lines
            ]
        out.print(transcript_text(lines))

    return show


@contextmanager
def capturing(path: Path | None, out: Console) -> Iterator[PacketCapture | None]:
    if path is None:
        yield None
        return
    capture = PacketCapture(path)
    try:
        yield capture
    finally:
        count = capture.save()
        out.print(Text(f"captured {count} packets into {path}", style="dim"))
        if capture.dropped:
            out.print(
                Text(
                    f"warning: the kernel dropped {capture.dropped} packets the capture could "
                    "not take in time: the capture has holes (read shows them as gaps)",
                    style="yellow",
                )
            )


# --------------------------------------------------------------------------- send


@dataclass(slots=True)
class SendRequest:
    spec: MessageSpec
    options: SmtpOptions
    #: `HOST[:PORT]`; None: MX lookup per recipient domain.
    server: str | None = None
    #: Port for MX delivery (25 unless testing).
    mx_port: int = SMTP_PORT
    resolver: str | None = None
    capture: Path | None = None
    dry_run: bool = False
    #: Mask the password (and its base64) in everything printed.
    redact: bool = False
    #: JSON Lines on stdout (session records, then one "send" record); notes go to stderr.
    json: bool = False
    outcomes: list[RcptOutcome] = field(default_factory=list)


def _roles(spec: MessageSpec) -> dict[str, str]:
    """Each envelope recipient's role ("to", "cc" or "bcc"), as the message spec gives it."""
    return dict(envelope_roles(spec))


def _dry_run(request: SendRequest, recipients: list[str], message: bytes, out: Console) -> None:
    roles = _roles(request.spec)
    route = request.server or f"MX lookup per recipient domain (port {request.mx_port})"
    rcpts = [(address, roles.get(address, "to")) for address in recipients]
    out.print(dry_run_grid(route, request.spec.envelope_from, rcpts))
    out.print(Text("message (dry run: not sent):", style="bold"))
    lines = message.decode("utf-8", "replace").split("\r\n")
    out.print(Text("\n".join(safe_text(line) for line in lines)))


def _outcome_rows(
    outcomes: list[RcptOutcome], roles: dict[str, str]
) -> list[tuple[str, str, str | None, str, str | None]]:
    return [(o.address, roles.get(o.address, "to"), o.server, o.status, o.reply) for o in outcomes]


def _by_domain(recipients: list[str]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for address in recipients:
        domain = address.rpartition("@")[2].lower()
        if not domain:
            raise UsageError(f"no domain in recipient {address!r} (needed for MX routing)")
        groups.setdefault(domain, []).append(address)
    return groups


def _attempt(
    request: SendRequest,
    host: str,
    port: int,
    recipients: list[str],
    message: bytes,
    out: Console,
    capture: PacketCapture | None,
    label: str,
) -> SendResult:
    out.rule(Text(safe_text(label), style="bold"), align="left", style="dim")
    return deliver(
        host,
        port,
        request.spec.envelope_from,
        recipients,
        message,
        request.options,
        show=None
        if request.json
        else show_lines(out, [request.options.password or ""] if request.redact else None),
        watch=capture.watch if capture is not None else None,
    )


def _failed(rcpts: list[str], status: str, error: MailsniffError) -> SendResult:
    return SendResult(None, [RcptOutcome(r, status, error.message) for r in rcpts], error)


def _via_mx(
    request: SendRequest,
    recipients: list[str],
    message: bytes,
    out: Console,
    capture: PacketCapture | None,
) -> list[SendResult]:
    """Recipients grouped by domain; each domain's MX hosts tried in preference order."""
    resolver = make_resolver(request.resolver, request.options.timeout)
    results: list[SendResult] = []
    for domain, rcpts in _by_domain(recipients).items():
        try:
            mx = lookup_mx(domain, resolver)
        except NetworkError as dns_error:
            results.append(_failed(rcpts, "not tried", dns_error))
            continue
        if mx.null_mx:
            refusal = RejectedError(f"{domain} accepts no mail (null MX, RFC 7505)")
            results.append(_failed(rcpts, "rejected", refusal))
            continue
        for warning in mx_warnings(mx):
            out.print(Text(safe_text(f"{domain}: {warning}"), style="yellow"))
        results.append(_to_domain(request, domain, mx, rcpts, message, out, capture))
    return results


def _to_domain(
    request: SendRequest,
    domain: str,
    mx: MxResult,
    rcpts: list[str],
    message: bytes,
    out: Console,
    capture: PacketCapture | None,
) -> SendResult:
    result: SendResult | None = None
    port = request.mx_port
    for host in mx.hosts:
        for address in host.addresses:
            label = f"{domain}: MX {host.preference} {host.host} ({address}) port {port}"
            result = _attempt(request, address, port, rcpts, message, out, capture, label)
            for o in result.outcomes:
                o.server = f"{host.host} ({address})"
            # RFC 5321 5.1: go on to the next address only when this one could not be reached.
            if not (isinstance(result.error, NetworkError) and result.session is None):
                return result
            out.print(Text(f"{result.error.message}: trying the next address", style="yellow"))
    if result is None:
        return _failed(rcpts, "not tried", NetworkError(f"{domain}: no MX host has an address"))
    return result


def _tls_from(session: Session) -> int | None:
    """When TLS started on our own connection: at STARTTLS/STLS, or from the start (implicit)."""
    if not session.tls:
        return None
    started = (line.ts_ns for line in session.transcript if line.note == OWN_TLS_NOTE)
    return next(started, session.start_ns)


def finish_session(session: Session, redact: bool) -> None:
    session.anomalies[:] = [a for a in session.anomalies if a.kind != _OWN_CLEARTEXT]
    analyse(session, tls_from_ns=_tls_from(session))
    if redact:
        redact_session(session)


def send_record(
    request: SendRequest,
    recipients: list[str],
    message: bytes,
    outcomes: list[RcptOutcome],
    error: MailsniffError | None,
) -> dict[str, Any]:
    """`send --json`: the run's outcome, after its session records (docs/send.schema.json)."""
    roles = _roles(request.spec)
    by_address = {o.address: o for o in outcomes}
    text = message.decode("utf-8", "replace") if request.dry_run else None
    return {
        "type": "send",
        "dry_run": request.dry_run,
        "server": request.server,
        "envelope_from": request.spec.envelope_from,
        "message": {"size": len(message), "sha256": hashlib.sha256(message).hexdigest()},
        "message_text": text,
        "recipients": [
            {
                "address": address,
                "as": roles.get(address, "to"),
                "status": by_address[address].status if address in by_address else "not tried",
                "server": by_address[address].server if address in by_address else None,
                "reply": by_address[address].reply if address in by_address else None,
            }
            for address in recipients
        ],
        "error": None if error is None else error.message,
        "exit_status": int(ExitStatus.SUCCESS if error is None else error.exit_status),
    }


def _write(out: Console, record: dict[str, Any]) -> None:
    """One JSON line on the output console's stream (stdout in the CLI)."""
    out.file.write(dumps(record) + "\n")
    out.file.flush()


def run_send(request: SendRequest, out: Console) -> None:
    """Send (or with dry_run only print) the message; raises the first failure at the end."""
    spec = request.spec
    recipients = envelope_recipients(spec)
    if not recipients:
        raise UsageError("no recipients: give --to, --cc or --bcc")
    message = build_message(spec)
    if request.dry_run:
        if request.json:
            _write(out, send_record(request, recipients, message, [], None))
        else:
            _dry_run(request, recipients, message, out)
        return
    # With --json, stdout carries only records: what is printed along the way goes to stderr.
    notes = Console(stderr=True, highlight=False, soft_wrap=True) if request.json else out
    with capturing(request.capture, notes) as capture:
        if request.server is not None:
            default = SMTPS_PORT if request.options.tls is TlsMode.IMPLICIT else SMTP_PORT
            host, port = host_port(request.server, default)
            results = [
                _attempt(
                    request, host, port, recipients, message, notes, capture, f"{host} port {port}"
                )
            ]
        else:
            results = _via_mx(request, recipients, message, notes, capture)
    for result in results:
        if result.session is not None:
            finish_session(result.session, request.redact)
            if request.json:
                _write(out, session_record(result.session, transcript=True))
            else:
                render_session(out, result.session, own=True)
    outcomes = [o for r in results for o in r.outcomes]
    request.outcomes = outcomes
    errors = [r.error for r in results if r.error is not None]
    refused = [o for o in outcomes if o.status != "accepted"]
    error = errors[0] if errors else None
    if error is None and refused:
        error = RejectedError(f"{len(refused)} of {len(outcomes)} recipients not accepted")
    if request.json:
        _write(out, send_record(request, recipients, message, outcomes, error))
    else:
        out.print(outcome_table(_outcome_rows(outcomes, _roles(spec))))
    if error is not None:
        raise error


def build_send_request(
    *,
    envelope_from: str,
    to: list[str] | None,
    cc: list[str] | None,
    bcc: list[str] | None,
    header_from: str | None,
    subject: str | None,
    body: str | None,
    body_file: Path | None,
    attach: list[Path] | None,
    headers: list[str] | None,
    charset: str,
    options: SmtpOptions,
    server: str | None,
    mx_port: int,
    resolver: str | None,
    capture: Path | None,
    dry_run: bool,
    redact: bool = False,
    json: bool = False,
) -> SendRequest:
    """The command line's values checked and turned into a SendRequest."""
    if body is not None and body_file is not None:
        raise UsageError("give --body or --body-file, not both")
    text = body or ""
    if body_file is not None:
        try:
            raw = body_file.read_bytes()
        except OSError as error:
            raise UsageError(f"--body-file {body_file}: {error.strerror or error}") from None
        text = raw.decode("utf-8", "surrogateescape") if raw else ""
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise UsageError(f"--body-file {body_file}: not UTF-8 text") from None
    if options.tls is TlsMode.IMPLICIT and server is None:
        raise UsageError("--tls needs --server (MX delivery uses port 25 with STARTTLS)")
    if not 0 < mx_port < 65536:
        raise UsageError(f"--port: bad port {mx_port}")
    spec = MessageSpec(
        envelope_from=envelope_from,
        to=split_addresses(to),
        cc=split_addresses(cc),
        bcc=split_addresses(bcc),
        header_from=header_from,
        subject=subject,
        body=text,
        attachments=list(attach or []),
        headers=[parse_header_option(h) for h in headers or []],
        charset=charset,
    )
    return SendRequest(
        spec=spec,
        options=options,
        server=server,
        mx_port=mx_port,
        resolver=resolver,
        capture=capture,
        dry_run=dry_run,
        redact=redact,
        json=json,
    )
