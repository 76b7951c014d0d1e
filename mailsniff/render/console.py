"""Rich terminal rendering of finished SMTP (RFC 5321) and POP3 (RFC 1939) sessions.

Renderers present, they never decide: `Transaction.bcc`, `Transaction.header_only` and
`Session.findings` were filled in by analysis. Every captured string becomes
`Text(safe_text(s))`, never markup, so a banner like `[bold red]x[/]` or an ESC sequence is shown
as written instead of being obeyed. The console is always injected by the caller.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from itertools import islice

from rich import box
from rich.cells import cell_len, set_cell_size
from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.rule import Rule
from rich.table import Column, Table
from rich.text import Span, Text

from mailsniff.analysis.bcc import header_roles, normalise_address
from mailsniff.analysis.kinds import FindingKind
from mailsniff.analysis.sent_copy import SentCopy, title
from mailsniff.analysis.summary import Summary
from mailsniff.model import (
    Address,
    AuthAttempt,
    Exchange,
    Finding,
    ImapState,
    Message,
    RcptAttempt,
    RetrievedMessage,
    Session,
    Transaction,
    TranscriptLine,
    reply_failed,
)
from mailsniff.protocols.base import Direction
from mailsniff.render.text import (
    ELLIPSIS,
    format_clock,
    format_duration,
    format_size,
    format_timestamp,
    safe_text,
    shorten,
)
from mailsniff.render.views import view_for

__all__ = [
    "OverviewRow",
    "overview_row",
    "overview_widths",
    "render_overview",
    "render_overview_rows",
    "render_session",
    "render_summary",
    "render_summary_of",
    "transcript_text",
]

# Styles, named once so the look stays consistent (and degrades to plain text off a TTY).
_CLIENT = "cyan"
_SERVER = "green"
_DIM = "dim"
_KEY = "bold"
_GOOD = "green"
_BAD = "bold red"
_WARN = "yellow"
_BCC = "bold magenta"
_HEADER_ONLY = "bold yellow"

#: Findings that mean something went wrong or leaked; the rest are notable, not alarming.
#: Longest captured string put in an overview cell before the table's own ellipsis applies;
#: keeps measuring thousands of rows cheap.
_OVERVIEW_CELL = 60
#: SASL mechanisms whose secret is a bearer token (RFC 7628; Google XOAUTH2): shown shortened.
_TOKEN_MECHANISMS = frozenset({"XOAUTH2", "OAUTHBEARER"})
#: Characters of a bearer token shown (the token is a secret and long).
_TOKEN_PREFIX = 12
#: Longest identifier kept on one line in detail tables (see `_short`).
_NO_WRAP_LIMIT = 40
#: Console width below which the auth table leaves out the time column.
_AUTH_TIME_WIDTH = 120
#: Characters of a sha256 shown in attachment tables.
_SHA_PREFIX = 16


# --------------------------------------------------------------------------- small pieces


def _text(s: str | None, style: str = "") -> Text:
    """Captured (or any) text, escaped, as a Text that is never parsed as markup."""
    if s is None:
        return Text("-", style=_DIM)
    if not s:
        return Text("")
    return Text(safe_text(s), style=style)


def _join(parts: Iterable[str], sep: str = ", ") -> str:
    return sep.join(parts)


def _unique(items: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for item in items:
        seen.setdefault(item, None)
    return list(seen)


def _address(a: Address) -> str:
    if a.name and a.address and a.name.strip("'\" ").lower() != a.address.lower():
        return f"{a.name} <{a.address}>"
    return a.address or a.name or "(empty)"


def _addresses(addrs: Sequence[Address]) -> str | None:
    return _join(_address(a) for a in addrs) if addrs else None


def _reply_style(reply: str | None) -> str:
    if reply is None:
        return _DIM
    return _BAD if reply_failed(reply) else ""


def _reply(reply: str | None) -> Text:
    if reply is None:
        return Text("(no reply captured)", style=_DIM)
    return _text(reply, _reply_style(reply))


def _short(values: Iterable[str | None]) -> bool:
    """True when every value fits on one line of a narrow console: its column need not wrap.

    Identifiers (addresses, user names) stay whole while replies and details wrap around them;
    a hostile 64 KiB value makes the column wrap rather than push the table off the screen.
    """
    return all(v is None or len(v) <= _NO_WRAP_LIMIT for v in values)


def _kv_grid() -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style=_KEY, no_wrap=True)
    grid.add_column(overflow="fold")
    return grid


def _rule(title: Text) -> Rule:
    return Rule(title, align="left", style=_DIM)


# --------------------------------------------------------------------------- overview


#: One overview cell: text already passed through safe_text, and its style.
_Cell = tuple[str, str]


def _tls_cell(session: Session) -> _Cell:
    decrypted = session.tls_info is not None and session.tls_info.decrypted
    if session.implicit_tls:
        return ("implicit, decrypted", "") if decrypted else ("implicit", _WARN)
    if session.tls:
        return ("STARTTLS, decrypted", "") if decrypted else ("STARTTLS", _WARN)
    return "-", _DIM


def _counts_cell(session: Session) -> str:
    recipients = sum(len(t.rcpts) for t in session.transactions)
    messages = sum(1 for t in session.transactions if t.message is not None)
    messages += len(session.messages)
    return f"{recipients}/{messages}"


_OVERVIEW_HEADERS = (
    "id",
    "proto",
    "client -> server",
    "start (UTC)",
    "duration",
    "user",
    "MAIL FROM",
    "rcpt/msg",
    "tls",
    "complete",
    "findings",
)
_RIGHT = frozenset({0, 4, 7})
#: Columns that give up width (with an ellipsis) when the console is too narrow, most
#: important first; the others are short and always shown whole.
_FLEXIBLE = (2, 10, 5, 6)
_FLEX_MIN = 8
#: Transcript lines printed per call.
_TRANSCRIPT_CHUNK = 1000
#: Overview rows printed per call (one Text each): fewer calls, bounded memory per call.
_OVERVIEW_CHUNK = 1000
#: Width the endpoints column keeps while other columns can still be left out
#: ("255.255.255.255:65535 -> 255.255.255.255:65535" is 46).
_ENDPOINTS_MIN = 46
#: Columns left out, in this order, when the console is too narrow for all of them.
_DROP_ORDER = (4, 8, 7, 9, 6, 5, 3)


_SEVERITY_RANK = {"high": 0, "medium": 1, "low": 2, "info": 3}
_KINDS = {k.value: k for k in FindingKind}


def _severity_rank(finding: Finding) -> int:
    """0 for the most severe: the finding's own severity, else its kind's usual one."""
    severity = finding.severity
    if severity is None:
        kind = _KINDS.get(finding.kind)
        if kind is None:
            return len(_SEVERITY_RANK)
        severity = kind.severity
    return _SEVERITY_RANK.get(severity, len(_SEVERITY_RANK))


def _overview_row(s: Session) -> list[_Cell]:
    users = _unique(a.username for a in s.auth if a.username is not None)
    senders = _unique(f"<{t.mail_from}>" for t in s.transactions)
    # Finding kinds, the most severe first (a narrow console cuts the end of the list).
    by_severity = sorted(s.findings, key=_severity_rank)
    findings = _join(_unique(f.kind for f in by_severity), ",")
    return [
        (str(s.id), ""),
        (str(s.protocol), ""),
        (safe_text(shorten(f"{s.client} -> {s.server}", _OVERVIEW_CELL)), ""),
        (format_timestamp(s.start_ns, micro=False), ""),
        (format_duration(s.end_ns - s.start_ns), ""),
        (safe_text(shorten(_join(users), _OVERVIEW_CELL)), ""),
        (safe_text(shorten(_join(senders), _OVERVIEW_CELL)), ""),
        (_counts_cell(s), ""),
        _tls_cell(s),
        ("yes", _GOOD) if s.complete else ("no", _WARN),
        (findings, _BAD) if findings else ("-", _DIM),
    ]


#: One session's overview line: (text, style) per column.
OverviewRow = list[_Cell]
#: The public name of `_overview_row`: the row of one session, for callers that keep rows only.
overview_row = _overview_row


def overview_widths(rows: Iterable[OverviewRow], natural: list[int] | None = None) -> list[int]:
    """The natural width of each overview column over `rows` (and the headers), updating and
    returning `natural` when given (so rows can be measured as they come)."""
    if natural is None:
        natural = [len(h) for h in _OVERVIEW_HEADERS]
    for row in rows:
        for i, (text, _) in enumerate(row):
            natural[i] = max(natural[i], _cells(text))
    return natural


def _overview_layout(rows: list[list[_Cell]], width: int) -> list[tuple[int, int]]:
    """Which columns to show and how wide: (column index, width) pairs that fit `width`."""
    return _layout(overview_widths(rows), width)


def _layout(natural: list[int], width: int) -> list[tuple[int, int]]:
    """Which columns to show and how wide: (column index, width) pairs that fit `width`.

    Short columns keep their width and the long ones share what is left, the endpoints
    first. On a console too narrow even for that, the least important columns are left out.
    """
    shown = list(range(len(_OVERVIEW_HEADERS)))

    def least(i: int) -> int:
        # The endpoints say which session this is: other columns go before they are cut.
        return min(natural[i], _ENDPOINTS_MIN if i == _FLEXIBLE[0] else _FLEX_MIN)

    def spare() -> int:
        gaps = 2 * (len(shown) - 1)
        return width - gaps - sum(natural[i] if i not in _FLEXIBLE else least(i) for i in shown)

    for i in _DROP_ORDER:
        if spare() >= 0:
            break
        shown.remove(i)
    flexible = [i for i in _FLEXIBLE if i in shown]
    widths = {i: natural[i] for i in shown}
    left = spare() + sum(least(i) for i in flexible)
    if sum(natural[i] for i in flexible) > left:
        # Give the first flexible column what it needs beyond the others' minimum, then share
        # the rest equally among the others (water-filling).
        first, *others = flexible
        reserve = sum(least(i) for i in others)
        widths[first] = max(_FLEX_MIN, min(natural[first], left - reserve))
        left -= widths[first]
        pending = sorted(others, key=lambda i: natural[i])
        while pending:
            share = max(_FLEX_MIN, left // len(pending))
            i = pending.pop(0)
            widths[i] = min(natural[i], share)
            left -= widths[i]
    return [(i, widths[i]) for i in shown]


def _cells(text: str) -> int:
    """Terminal cells `text` takes (CJK characters take two)."""
    return len(text) if text.isascii() else cell_len(text)


def _fit(text: str, width: int, right: bool) -> str:
    """`text` cut (ending in an ellipsis) or padded to exactly `width` terminal cells."""
    cells = _cells(text)
    if cells > width:
        return set_cell_size(text, width - 1) + ELLIPSIS if width > 0 else ""
    padding = " " * (width - cells)
    return padding + text if right else text + padding


def _overview_lines(rows: Sequence[list[_Cell]], layout: list[tuple[int, int]]) -> Text:
    """Rows as one Text, built from plain strings and spans.

    Assembling `Text` objects cell by cell costs rich about a millisecond per row; building the
    string and its style spans directly keeps tens of thousands of sessions quick to print.
    """
    parts: list[str] = []
    spans: list[Span] = []
    offset = 0
    for n, row in enumerate(rows):
        if n:
            parts.append("\n")
            offset += 1
        for k, (i, width) in enumerate(layout):
            if k:
                parts.append("  ")
                offset += 2
            text, style = row[i]
            cell = _fit(text, width, i in _RIGHT)
            if style:
                spans.append(Span(offset, offset + len(cell), style))
            parts.append(cell)
            offset += len(cell)
    return Text("".join(parts), spans=spans, no_wrap=True, overflow="crop")


def render_overview(console: Console, sessions: Sequence[Session]) -> None:
    """Print one line per session: who talked to whom, when, as whom, and what was found.

    Long cells end in an ellipsis so that each session stays on one line at any width; on a
    narrow console the least important columns (duration, tls, rcpt/msg ...) are left out.

    Args:
        console: where to print.
        sessions: finished sessions, in the order to show.
    """
    rows = [_overview_row(s) for s in sessions]
    render_overview_rows(console, len(rows), overview_widths(rows), iter(rows))


def _hidden_note(hidden: list[str], width: int) -> str:
    """The one line naming the overview columns left out, as long as `width` allows: every
    name when they fit (a console of 80 columns), else the first ones and how many more."""
    names = [h.removesuffix(" (UTC)") for h in hidden]
    listed = _join(names)
    for text in (
        f"hidden at {width} columns: {listed} (--plain shows all)",
        f"hidden: {listed} (--plain shows all)",
        f"hidden: {listed} (--plain)",
    ):
        if len(text) <= width:
            return text
    for k in range(len(names) - 1, 0, -1):
        text = f"hidden: {_join(names[:k])} +{len(names) - k} (--plain)"
        if len(text) <= width:
            return text
    return f"{len(names)} columns hidden (--plain)"


def render_overview_rows(
    console: Console, count: int, natural: list[int], rows: Iterator[OverviewRow]
) -> None:
    """`render_overview` from rows made by `overview_row` (`count` of them, their column
    widths measured by `overview_widths`), read one chunk at a time."""
    layout = _layout(natural, console.width)
    header = [(h, _KEY) for h in _OVERVIEW_HEADERS]
    console.print(Text(f"Sessions ({count})", style=_KEY))
    shown = {i for i, _ in layout}
    hidden = [h for i, h in enumerate(_OVERVIEW_HEADERS) if i not in shown]
    if hidden:
        console.print(Text(_hidden_note(hidden, console.width), style=_DIM), crop=True)
    console.print(_overview_lines([header], layout), crop=True)
    while chunk := list(islice(rows, _OVERVIEW_CHUNK)):
        console.print(_overview_lines(chunk, layout), crop=True)


# --------------------------------------------------------------------------- one session


def _header_panel(session: Session, own: bool = False) -> Panel:
    grid = _kv_grid()
    grid.add_row("client", _text(str(session.client)))
    grid.add_row("server", _text(str(session.server)))
    if session.community_id is not None:
        grid.add_row("community id", Text(session.community_id))
    if session.uid is not None:
        grid.add_row("uid", Text(session.uid))
    grid.add_row("start", Text(format_timestamp(session.start_ns)))
    grid.add_row(
        "end",
        Text(
            f"{format_timestamp(session.end_ns)}  "
            f"({format_duration(session.end_ns - session.start_ns)})"
        ),
    )
    if session.complete:
        grid.add_row("complete", Text("yes", style=_GOOD))
    else:
        why = [] if session.handshake_seen else ["no handshake seen"]
        if session.gaps:
            why.append(f"{len(session.gaps)} gap(s)")
        grid.add_row("complete", Text(_join(["no", *why], "; "), style=_WARN))
    for gap in session.gaps:
        grid.add_row(
            "gap",
            Text(
                f"{gap.direction} offset {gap.offset}, {gap.length} bytes not captured",
                style=_WARN,
            ),
        )
    grid.add_row("closed by", _text(session.close_reason))
    if own:  # mailsniff's own connection: bytes written and read, no packets counted
        traffic = f"client {session.client_bytes} bytes, server {session.server_bytes} bytes"
    else:
        traffic = (
            f"{session.packets} packets, client {session.client_bytes} bytes, "
            f"server {session.server_bytes} bytes"
        )
    grid.add_row("traffic", Text(traffic))
    if own and session.tls:
        grid.add_row(
            "tls",
            Text("encrypted on the wire, shown decrypted (own connection)"),
        )
    elif session.tls_info is not None:
        grid.add_row("tls", _tls_text(session))
    elif session.implicit_tls:
        grid.add_row(
            "tls",
            Text(f"implicit TLS (port {session.server.port}): encrypted: not parsed", style=_WARN),
        )
    elif session.tls:
        grid.add_row(
            "tls",
            Text("STARTTLS accepted: the rest is encrypted: not parsed", style=_WARN),
        )
    grid.add_row("banner", _text(session.banner))
    if view_for(session.protocol).helo_row or session.helo is not None:
        grid.add_row("helo", _text(session.helo))
    if session.capabilities:
        grid.add_row("capabilities", _text(_join(session.capabilities)))
    for anomaly in session.anomalies:
        grid.add_row("anomaly", _text(anomaly.text, _WARN))
    title = Text.assemble(
        (f"Session {session.id}", _KEY),
        "  ",
        (str(session.protocol).upper(), _KEY),
        "  ",
        _text(f"{session.client} -> {session.server}"),
    )
    return Panel(grid, title=title, title_align="left", border_style="blue")


#: Styles only: the severity itself is analysis's (Finding.severity, from FindingKind).
_SEVERITY_STYLES = {"high": _BAD, "medium": _WARN, "low": "", "info": _DIM}
_BCC_KINDS = frozenset({FindingKind.BCC, FindingKind.BCC_HEADER_PRESENT})


def _findings_table(session: Session) -> Table:
    table = Table(
        Column("kind", no_wrap=True),
        Column("severity", no_wrap=True),
        Column("detail", overflow="fold"),
        title=Text("Findings", style=_KEY),
        title_justify="left",
    )
    for finding in session.findings:
        severity = finding.severity or "medium"
        style = _BCC if finding.kind in _BCC_KINDS else _SEVERITY_STYLES.get(severity) or _WARN
        table.add_row(
            _text(finding.kind, style),
            _text(severity, _SEVERITY_STYLES.get(severity, "")),
            _text(finding.detail),
        )
    return table


def _auth_secret(attempt: AuthAttempt) -> Text:
    mechanism = attempt.mechanism.upper()
    if mechanism in _TOKEN_MECHANISMS:
        # Builders put the bearer token in `password` (SMTP) or `response` (POP3).
        token = attempt.password if attempt.password is not None else attempt.response
        if token is None:
            return Text("-", style=_DIM)
        return Text.assemble(
            _text(shorten(token, _TOKEN_PREFIX + 1) if len(token) > _TOKEN_PREFIX else token),
            (f"  (token, {len(token)} chars)", _DIM),
        )
    if mechanism in ("CRAM-MD5", "APOP") or (attempt.password is None and attempt.response):
        return Text.assemble(
            ("challenge ", _DIM),
            _text(attempt.challenge),
            ("\nresponse ", _DIM),
            _text(attempt.response),
        )
    return _text(attempt.password)


def _auth_success(attempt: AuthAttempt) -> Text:
    if attempt.cancelled:
        return Text("cancelled", style=_WARN)
    if attempt.success is True:
        return Text("\u2713", style=_GOOD)
    if attempt.success is False:
        return Text("\u2717", style=_BAD)
    return Text("?", style=_DIM)


def _auth_table(session: Session, width: int) -> Table:
    # authzid, the encoding marker and (on a narrow console) the time are left out when they
    # add nothing, which leaves the width to the credentials themselves.
    with_time = width >= _AUTH_TIME_WIDTH
    with_authzid = any(a.authzid for a in session.auth)
    with_encoding = any(a.not_base64 for a in session.auth)
    columns = [Column("time", no_wrap=True)] if with_time else []
    columns += [
        Column("mechanism", no_wrap=True),
        Column("username", overflow="fold", no_wrap=_short(a.username for a in session.auth)),
        Column(
            "password / secret",
            overflow="fold",
            no_wrap=_short(a.password for a in session.auth)
            and not any(a.response for a in session.auth),
        ),
    ]
    if with_authzid:
        columns.append(Column("authzid", overflow="fold"))
    if with_encoding:
        columns.append(Column("encoding"))
    columns.append(Column("result", overflow="fold"))
    table = Table(*columns, title=Text("Authentication", style=_KEY), title_justify="left")
    for attempt in session.auth:
        row = [Text(format_clock(attempt.ts_ns))] if with_time else []
        row += [
            _text(attempt.mechanism),
            _text(
                f"{attempt.domain}\\{attempt.username}" if attempt.domain else attempt.username,
                "bold",
            ),
            _auth_secret(attempt),
        ]
        if with_authzid:
            row.append(_text(attempt.authzid) if attempt.authzid else Text("-", style=_DIM))
        if with_encoding:
            row.append(
                Text("typed without base64", style=_WARN)
                if attempt.not_base64
                else Text("base64", style=_DIM)
            )
        row.append(Text.assemble(_auth_success(attempt), " ", _reply(attempt.reply)))
        table.add_row(*row)
    return table


def _params(params: dict[str, str | None]) -> str:
    return " ".join(k if v is None else f"{k}={v}" for k, v in params.items())


#: How each recipient role analysis gives (`RcptAttempt.role`) is shown; "to"/"cc" show the
#: headers that list the address.
_ROLE_LABELS = {
    "rejected": ("rejected", _BAD),
    "deferred": ("rejected (temporary)", _BAD),
    "bcc": ("Bcc (envelope only)", _BCC),
    "envelope": ("envelope (no message)", _DIM),
}


def _rcpt_role(rcpt: RcptAttempt, headers: list[str]) -> Text:
    if rcpt.role in ("to", "cc"):
        shown = [h for h in headers if h in ("To", "Cc")]
        return Text(" + ".join(shown) or rcpt.role.capitalize(), style=_GOOD)
    label, style = _ROLE_LABELS.get(rcpt.role or "envelope", ("envelope", _DIM))
    return Text(label, style=style)


def _envelope_addresses(t: Transaction) -> list[str]:
    addresses = [r.address for r in t.rcpts] + list(t.header_only)
    if t.message is not None:
        addresses += [a.address for a in t.message.bcc]
    return addresses


def _envelope_table(n: int, t: Transaction) -> Table:
    # Each row: address, display name, role, headers listing it, RCPT reply, row style.
    rows: list[tuple[Text, Text, Text, Text, Text, str]] = []
    listed: set[str] = set()
    header_only = {normalise_address(h) for h in t.header_only}

    def where(headers: list[str]) -> Text:
        return Text(", ".join(headers)) if headers else Text("-", style=_DIM)

    for rcpt in t.rcpts:
        headers, name = header_roles(rcpt.address, t.message)
        role = _rcpt_role(rcpt, headers)
        if rcpt.role in ("rejected", "deferred") and normalise_address(rcpt.address) in header_only:
            role.append("; header only", style=_HEADER_ONLY)
        envelope = _reply(rcpt.reply)
        params = _params(rcpt.params)
        if params:
            envelope.append_text(_text(f"  {params}", _DIM))
        style = _BCC if rcpt.role == "bcc" else ""
        rows.append((_text(rcpt.address), _text(name), role, where(headers), envelope, style))
        listed.add(normalise_address(rcpt.address))
    for address in t.header_only:
        if normalise_address(address) in listed:
            continue
        headers, name = header_roles(address, t.message)
        role = Text("header only", style=_HEADER_ONLY)
        envelope = Text("never an accepted recipient", style=_DIM)
        rows.append((_text(address), _text(name), role, where(headers), envelope, ""))
        listed.add(normalise_address(address))
    if t.message is not None:
        # A Bcc header that was transmitted (analysis reports it as bcc-header-present).
        for a in t.message.bcc:
            if normalise_address(a.address) in listed:
                continue
            role = Text("Bcc header (transmitted)", style=_BCC)
            envelope = Text("not in the envelope", style=_DIM)
            rows.append((_text(a.address), _text(a.name), role, Text("Bcc"), envelope, ""))
            listed.add(normalise_address(a.address))

    with_name = any(row[1].plain for row in rows)
    columns = [Column("address", overflow="fold", no_wrap=_short(_envelope_addresses(t)))]
    if with_name:
        columns.append(Column("name", overflow="fold"))
    columns += [
        Column("role", no_wrap=True),
        Column("in headers", no_wrap=True),
        Column("RCPT reply", overflow="fold"),
    ]
    table = Table(
        *columns,
        title=Text(f"Transaction {n}: envelope vs headers", style=_KEY),
        title_justify="left",
    )
    for *cells, row_style in rows:
        if not with_name:
            del cells[1]
        table.add_row(*cells, style=row_style)
    return table


def _message_rows(grid: Table, message: Message, *, from_label: str = "header From") -> None:
    grid.add_row(from_label, _text(_addresses(message.from_)))
    grid.add_row("Sender", _text(_addresses(message.sender)))
    if message.reply_to:
        grid.add_row("Reply-To", _text(_addresses(message.reply_to)))
    grid.add_row("To", _text(_addresses(message.to)))
    grid.add_row("Cc", _text(_addresses(message.cc)))
    if message.bcc:
        grid.add_row("Bcc", _text(_addresses(message.bcc), _BCC))
    grid.add_row("Subject", _text(message.subject, "bold"))
    grid.add_row("Date", _text(message.date))
    if message.message_id is not None:
        grid.add_row("Message-ID", _text(message.message_id))
    grid.add_row("size", Text(f"{message.size} bytes ({format_size(message.size)})"))
    grid.add_row("sha256", Text(message.sha256))
    if message.truncated:
        grid.add_row("truncated", Text("only the first part was kept for parsing", style=_WARN))
    if message.gap_bytes:
        grid.add_row("gap", Text(f"{message.gap_bytes} bytes never captured", style=_WARN))
    for defect in message.defects:
        grid.add_row("defect", _text(defect, _WARN))


def _attachments_table(message: Message) -> Table:
    table = Table(
        Column("filename", overflow="fold"),
        Column("type", overflow="fold"),
        Column("size", justify="right"),
        Column("sha256", no_wrap=True),
        title=Text("Attachments", style=_KEY),
        title_justify="left",
    )
    for a in message.attachments:
        table.add_row(
            _text(a.filename),
            _text(a.content_type),
            Text(format_size(a.size)),
            Text(a.sha256[:_SHA_PREFIX] + ("\u2026" if len(a.sha256) > _SHA_PREFIX else "")),
        )
    return table


def _transaction(n: int, t: Transaction) -> list[RenderableType]:
    grid = _kv_grid()
    mail_from = Text.assemble(_text(f"<{t.mail_from}>", "bold"))
    if t.mail_from_params:
        mail_from.append_text(_text(f"  {_params(t.mail_from_params)}", _DIM))
    grid.add_row("MAIL FROM", mail_from)
    grid.add_row("MAIL FROM reply", _reply(t.mail_from_reply))
    parts: list[RenderableType] = [_rule(Text(f"Transaction {n}", style=_KEY)), grid]
    if t.rcpts or t.header_only or (t.message is not None and t.message.bcc):
        parts.append(_envelope_table(n, t))
    else:
        grid.add_row("recipients", Text("none", style=_DIM))
    body = _kv_grid()
    if t.message is not None:
        _message_rows(body, t.message)
    if t.body_command is not None or t.data_reply is not None:
        body.add_row(f"{t.body_command or 'DATA'} reply", _reply(t.data_reply))
    if body.row_count:
        parts.append(body)
    if t.message is not None and t.message.attachments:
        parts.append(_attachments_table(t.message))
    return parts


def _exchange_row(e: Exchange) -> tuple[Text, Text, Text, Text]:
    reply = _reply(e.reply)
    if e.reply_lines > 1:
        reply.append(f"  (+{e.reply_lines - 1} lines)", style=_DIM)
    return Text(format_clock(e.ts_ns)), _text(e.command, _CLIENT), _text(e.argument), reply


def _exchanges_table(session: Session) -> Table:
    table = Table(
        Column("time", no_wrap=True),
        Column("command", no_wrap=True),
        Column("argument", overflow="fold"),
        Column("reply", overflow="fold"),
        title=Text("Commands", style=_KEY),
        title_justify="left",
    )
    for e in session.exchanges:
        table.add_row(*_exchange_row(e))
    return table


def _imap_tables(state: ImapState) -> list[Table]:
    """IMAP: the client's ID, each selected mailbox, and flag changes, expunges, copies."""
    tables: list[Table] = []
    if state.client_id:
        grid = _kv_grid()
        grid.add_row("client ID", _text(_join(f"{k}={v}" for k, v in state.client_id)))
        tables.append(grid)
    if state.mailboxes:
        table = Table(
            "mailbox",
            "mode",
            "exists",
            "recent",
            "unseen",
            "uidvalidity",
            "uidnext",
            title=Text("Mailboxes", style=_KEY),
            title_justify="left",
        )
        for m in state.mailboxes:
            mode = ("read-only" if m.read_only else "read-write") if m.ok else "refused"
            table.add_row(
                _text(m.name),
                Text(mode, style="" if m.ok else _WARN),
                *(
                    Text("-" if v is None else str(v))
                    for v in (m.exists, m.recent, m.unseen, m.uidvalidity, m.uidnext)
                ),
            )
        tables.append(table)
    if state.changes:
        table = Table(
            "time",
            "action",
            "mailbox",
            "messages",
            "detail",
            title=Text("Flags, expunges, copies", style=_KEY),
            title_justify="left",
        )
        for c in state.changes:
            if c.action == "store":
                detail = f"{c.operation}FLAGS {' '.join(c.flags)}"
            elif c.destination is not None:
                outcome = {True: "OK", False: "refused", None: "no answer"}[c.ok]
                detail = f"-> {c.destination} ({outcome})"
            else:
                detail = ""
            deleting = c.action == "expunge" or "\\DELETED" in detail.upper()
            table.add_row(
                Text(format_timestamp(c.ts_ns)),
                Text(("UID " if c.uid else "") + c.action, style=_WARN if deleting else ""),
                _text(c.mailbox),
                _text(c.messages),
                _text(detail),
            )
        tables.append(table)
    return tables


def _retrieved(r: RetrievedMessage) -> list[RenderableType]:
    title = Text.assemble(_text(r.command, "bold"))
    if r.partial:
        title.append("  (partial)", style=_WARN)
    grid = _kv_grid()
    _message_rows(grid, r.message, from_label="From")
    label = "Filed " if r.imap is not None and r.imap.source == "APPEND" else "Retrieved "
    parts: list[RenderableType] = [_rule(Text.assemble((label, _KEY), title)), grid]
    if r.imap is not None:
        t = r.imap
        where = t.mailbox or "-"
        if t.uid is not None:
            where += f"  UID {t.uid}"
        grid.add_row("Mailbox", _text(where))
        if t.flags:
            grid.add_row("Flags", _text(" ".join(t.flags)))
        if t.outcome is not None:
            grid.add_row("Server", _text(t.outcome, "" if t.outcome == "OK" else _WARN))
    if r.message.headers:
        headers = Table(
            Column("header", no_wrap=True),
            Column("value", overflow="fold"),
            title=Text("Headers in order", style=_DIM),
            title_justify="left",
            box=box.SIMPLE,
        )
        for name, value in r.message.headers:
            headers.add_row(_text(name), _text(value))
        parts.append(headers)
    if r.message.attachments:
        parts.append(_attachments_table(r.message))
    return parts


def _tls_text(session: Session) -> Text:
    """The session's TLS in one or two lines: what was negotiated, decrypted or why not."""
    t = session.tls_info
    assert t is not None
    how = "STARTTLS" if t.mode == "starttls" else f"implicit TLS (port {session.server.port})"
    facts = [p for p in (t.version, t.cipher_suite) if p]
    if t.sni:
        facts.append(f"SNI {t.sni}")
    if t.alpn:
        facts.append(f"ALPN {t.alpn}")
    head = how + (": " + ", ".join(facts) if facts else "")
    if t.decrypted:
        tail = f"decrypted ({t.records_decrypted} records, {t.bytes_decrypted} bytes)"
        return Text(safe_text(head) + "\n" + safe_text(tail))
    if t.records_decrypted:
        tail = f"partly decrypted ({t.records_decrypted} records): {t.reason}"
    else:
        tail = f"not decrypted: {t.reason}"
    return Text(safe_text(head) + "\n" + safe_text(tail), style=_WARN)


def transcript_text(lines: Sequence[TranscriptLine]) -> Text:
    """Dialogue lines as one Text: `HH:MM:SS.ffffff C: line  → note`, client and server coloured.

    Built from a plain string and spans (see `_overview_lines`): a session keeps up to
    MAX_TRANSCRIPT_LINES lines, too many to assemble as separate Text objects quickly.
    """
    parts: list[str] = []
    spans: list[Span] = []
    offset = 0

    def add(piece: str, style: str = "") -> None:
        nonlocal offset
        if style and piece:
            spans.append(Span(offset, offset + len(piece), style))
        parts.append(piece)
        offset += len(piece)

    for n, line in enumerate(lines):
        if n:
            add("\n")
        client = line.direction is Direction.CLIENT
        style = _CLIENT if client else _SERVER
        add(format_clock(line.ts_ns), _DIM)
        add(" ")
        # `C*` / `S*`: read from decrypted TLS records (--keylog), not cleartext on the wire.
        if line.decrypted:
            add("C* " if client else "S* ", style)
        else:
            add("C: " if client else "S: ", style)
        add(safe_text(line.text), style)
        if line.note is not None:
            add("  \u2192 ", _DIM)
            add(safe_text(line.note), "italic")
    return Text("".join(parts), spans=spans)


def _sent_copy_view(session: Session, link: SentCopy) -> list[RenderableType]:
    """One Sent-copy link seen from `session`: the other half, then one line per recipient."""
    how = "Message-ID" if link.matched_by == "message-id" else "body SHA-256"
    grid = _kv_grid()
    grid.add_row("matched by", _text(f"{how} {link.key}"))
    grid.add_row(
        "bytes",
        Text("identical to what was sent")
        if link.identical
        else Text(f"differ: sent {link.smtp.size}, filed {link.imap.size}", style=_WARN),
    )
    for r in link.recipients:
        style = _BCC if r.role == "Bcc" else ""
        grid.add_row(Text(r.role, style=style), _text(r.text.split(" ", 1)[1], style))
    if link.recipients_dropped:
        grid.add_row("", Text(f"{link.recipients_dropped} more not compared", style=_WARN))
    return [_rule(_text(title(link, session.id), _KEY)), grid]


def render_session(
    console: Console,
    session: Session,
    *,
    transcript: bool = False,
    own: bool = False,
    sent_copies: Sequence[SentCopy] = (),
) -> None:
    """Print everything known about one session: endpoints, auth, envelopes, messages, findings.

    Args:
        console: where to print.
        session: a finished, analysed session.
        transcript: also print the whole dialogue, line by line, with decoded notes.
        own: a connection mailsniff made itself (`send`, `pop`): its plaintext is known,
            also inside TLS, and no packets were counted.
        sent_copies: the Sent-copy links this session is one half of (analysis.sent_copy).
    """
    console.print(_header_panel(session, own))
    if session.findings:
        console.print(_findings_table(session))
    if session.auth:
        console.print(_auth_table(session, console.width))
    for n, t in enumerate(session.transactions, 1):
        console.print(Group(*_transaction(n, t)))
    if view_for(session.protocol).exchanges and session.exchanges:
        console.print(_exchanges_table(session))
    if session.mailbox_stats:
        grid = _kv_grid()
        for count, octets in session.mailbox_stats:
            grid.add_row(
                "mailbox",
                Text(f"{count} messages, {octets} octets ({format_size(octets)})"),
            )
        console.print(grid)
    if session.imap is not None:
        for table in _imap_tables(session.imap):
            console.print(table)
    for r in session.messages:
        console.print(Group(*_retrieved(r)))
    if session.deleted:
        grid = _kv_grid()
        grid.add_row("deleted", Text(_join(str(n) for n in session.deleted), style=_WARN))
        console.print(grid)
    for link in sent_copies:
        console.print(Group(*_sent_copy_view(session, link)))
    if transcript:
        console.print(_rule(Text("Transcript", style=_KEY)))
        for start in range(0, len(session.transcript), _TRANSCRIPT_CHUNK):
            chunk = session.transcript[start : start + _TRANSCRIPT_CHUNK]
            console.print(transcript_text(chunk))
        if session.transcript_dropped > 0:
            console.print(
                Text(f"{session.transcript_dropped} transcript lines not kept", style=_WARN)
            )
    console.print()


# --------------------------------------------------------------------------- summary


def render_summary(
    console: Console,
    *,
    sessions: Sequence[Session],
    packets: int,
    warnings: Sequence[str],
) -> None:
    """Print display counts over all sessions, then the reader's warnings.

    Args:
        console: where to print.
        sessions: every session shown (or selected).
        packets: packets read from the capture.
        warnings: reader warnings (truncated capture, unsupported frames, ...).
    """
    render_summary_of(console, Summary.of(sessions), packets=packets, warnings=warnings)


def render_summary_of(
    console: Console,
    summary: Summary,
    *,
    packets: int,
    warnings: Sequence[str],
    filtered: int = 0,
) -> None:
    """`render_summary` from a `Summary` added up as the sessions came."""
    by_protocol = summary.by_protocol
    messages = summary.messages
    credentials = summary.credentials
    bcc = summary.bcc_recipients
    findings = summary.findings
    incomplete = summary.incomplete

    grid = _kv_grid()
    protocols = _join(f"{p} {n}" for p, n in sorted(by_protocol.items()))
    grid.add_row("packets", Text(str(packets)))
    grid.add_row(
        "sessions",
        Text(f"{summary.sessions}" + (f"  ({protocols})" if protocols else "")),
    )
    if filtered:
        grid.add_row("filtered out", Text(f"{filtered} sessions"))
    grid.add_row("incomplete", Text(str(incomplete), style=_WARN if incomplete else ""))
    grid.add_row("messages", Text(str(messages)))
    grid.add_row("credentials", Text(str(credentials), style=_BAD if credentials else ""))
    grid.add_row("bcc recipients", Text(str(bcc), style=_BCC if bcc else ""))
    if summary.sent_copies:
        grid.add_row("sent copies", Text(f"{summary.sent_copies} (SMTP message filed by IMAP)"))
    if findings:
        grid.add_row(
            "findings",
            _text(_join(f"{kind} {n}" for kind, n in sorted(findings.items())), _BAD),
        )
    else:
        grid.add_row("findings", Text("none", style=_DIM))
    for warning in warnings:
        grid.add_row("warning", _text(warning, _WARN))
    console.print(Panel(grid, title=Text("Summary", style=_KEY), title_align="left"))
