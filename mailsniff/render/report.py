"""`mailsniff report`: one self-contained HTML file from the JSON Lines records.

The report is a renderer of the contract `read --json --transcript` emits (docs/jsonl.md):
session records, the summary record of each input, and the `creds --json` credential records.
Every count, role, severity and finding shown is a field of those records; this module only
lays them out: the chain-of-custody header, findings by severity, a timeline and a
who-mailed-whom graph (inline SVG, laid out here deterministically), the credentials table,
each session as the console shows it, and offline search and filters (inline script over data
attributes).

Captured text is hostile: every string goes through `safe_text` (controls, bidi overrides and
lone surrogates become visible escapes) and is HTML-escaped by Jinja2's autoescape (or `_e` in
the SVG code); no captured byte is put inside a script, no link is made from captured data,
and a Content-Security-Policy admits only the report's own inline script (by its hash) and no
network access at all.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import html
import json
import zlib
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from jinja2 import Environment, select_autoescape
from markupsafe import Markup

from mailsniff.analysis.sent_copy import SentCopy, title
from mailsniff.model import reply_positive
from mailsniff.render.text import format_size, safe_text

__all__ = ["ReportBuilder", "ReportInput", "SEVERITIES"]

JsonObject = dict[str, Any]

SEVERITIES = ("high", "medium", "low", "info")
#: Transcript lines shown per session; the rest is counted and pointed to (`read --transcript`).
TRANSCRIPT_LINES = 400
#: Transcript lines in the whole report: with many sessions each gets its share of these, and
#: below TRANSCRIPT_MIN_SHARE lines a session's transcript is left out (and the command that
#: prints it given), so a 10,000-session report stays small enough to open quickly.
TRANSCRIPT_BUDGET = 150_000
TRANSCRIPT_MIN_SHARE = 30
#: Session details larger than this in total are stored gzip-compressed (base64) in the page
#: and unpacked in the browser when a session is opened, so big captures stay small and fast.
INLINE_DETAILS_BYTES = 6_000_000
#: Sessions per compressed chunk (one chunk is unpacked to show any of its sessions).
CHUNK_SESSIONS = 64
#: A findings group or credentials table longer than this is folded and stored compressed like
#: the details, unpacked when it is opened: thousands of rows nobody reads at once stay out of
#: the file's size and of the page's load time.
PACKED_ROWS = 1000
#: Session-list rows in the page as HTML; past these, rows come in compressed blocks of
#: ROWS_PER_BLOCK that the browser adds to the list after the page has loaded (the filters wait
#: for them), so a page of 10,000 sessions shows at once.
INLINE_ROWS = 500
ROWS_PER_BLOCK = 2000
#: Timeline lanes and graph nodes per side shown before "show all", and the most ever drawn.
LANES_SHOWN = 40
LANES_MAX = 2000
NODES_SHOWN = 40
NODES_MAX = 400
_REJECTED_KINDS = ("sender-rejected", "recipient-rejected", "message-rejected")
_EDGE_KINDS = ("to", "cc", "bcc", "envelope", "header-only")


def _e(value: object) -> str:
    """Captured text for HTML/SVG: controls and bidi characters made visible, then escaped."""
    return html.escape(safe_text(str(value)), quote=True)


def _finalize(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, Markup) or not isinstance(value, str):
        return value
    return Markup(_e(value))


def _dialogue(lines: list[JsonObject]) -> Markup:
    """Transcript lines for a <pre>: time, C:/S: and the line, the decoded note beside it
    (`C*`/`S*`: read from TLS records decrypted with the key log)."""
    out: list[str] = []
    for line in lines:
        client = line["direction"] == "client"
        out.append(
            f'<span class="{"c" if client else "s"}"><i>{_e(_clock(line["time"]))}</i> '
            f"{'C' if client else 'S'}{'*' if line.get('decrypted') else ':'} "
            f"{_e(line['text'])}</span>"
        )
        if line["note"] is not None:
            out.append(f"<em>  &rarr; {_e(line['note'])}</em>")
        out.append("\n")
    return Markup("".join(out))


def _us(stamp: str) -> int:
    """A contract timestamp ("2006-07-03T13:07:18.000000Z" or "@SECONDS.MICROS") in µs."""
    if stamp.startswith("@"):
        seconds, _, micros = stamp[1:].partition(".")
        sign = -1 if seconds.startswith("-") else 1
        return int(seconds) * 1_000_000 + sign * int(micros or 0)
    moment = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _clock(stamp: str) -> str:
    return stamp[11:26] if not stamp.startswith("@") else stamp


def _duration(us: int) -> str:
    seconds = us / 1e6
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s"


@dataclass(slots=True)
class ReportInput:
    """One capture: the chain-of-custody facts and its summary record."""

    name: str
    size: int
    sha256: str
    summary: JsonObject
    credentials: list[JsonObject] = field(default_factory=list)
    status: str = "read to its end"


@dataclass(slots=True)
class _Slim:
    """What the overview parts need of a session record (details are rendered at once)."""

    key: str
    label: str
    record: JsonObject


class ReportBuilder:
    """Collects records (session by session, as they are read) and renders the page."""

    def __init__(self) -> None:
        self._env = Environment(
            autoescape=select_autoescape(default=True, default_for_string=True),
            finalize=_finalize,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._env.filters["size"] = format_size
        self._env.filters["clock"] = _clock
        self._env.filters["dialogue"] = _dialogue
        self._env.filters["positive_reply"] = reply_positive
        self._session_template = self._env.from_string(_asset("report_session.html.j2"))
        self._page_template = self._env.from_string(_asset("report.html.j2"))
        self.inputs: list[ReportInput] = []
        self._sessions: list[_Slim] = []
        self._details: dict[str, str] = {}
        self._packed: dict[str, bytes] = {}
        #: Session key -> the Sent-copy links it is one half of, as its details show them.
        self._sent_copies: dict[str, list[JsonObject]] = {}
        self._many_inputs = False

    # -- collecting ---------------------------------------------------------------------------

    def expect_inputs(self, count: int) -> None:
        self._many_inputs = count > 1

    def add_session(self, input_index: int, record: JsonObject, read_hint: str) -> None:
        """Keep one session record: compressed whole for its details (rendered at the end,
        when the transcript share is known), and what the overview parts need."""
        key = f"s{input_index + 1}-{record['id']}"
        label = f"{input_index + 1}/{record['id']}" if self._many_inputs else f"{record['id']}"
        hint = f"{read_hint} --session {record['id']} --transcript"
        packed = zlib.compress(json.dumps([record, hint]).encode("utf-8", "surrogatepass"), 1)
        self._packed[key] = packed
        record.pop("transcript", None)
        for tx in record["transactions"]:
            if tx["message"] is not None:
                tx["message"]["headers"] = []
        for retrieved in record["messages"]:
            retrieved["message"]["headers"] = []
        self._sessions.append(_Slim(key, label, record))

    def add_sent_copy(self, input_index: int, link: SentCopy) -> None:
        """A Sent-copy link (analysis.sent_copy) between two sessions of one input: shown in
        both sessions' details, each pointing at the other half."""
        smtp = f"s{input_index + 1}-{link.smtp.session}"
        imap = f"s{input_index + 1}-{link.imap.session}"
        anchors = {
            smtp: f"{smtp}-t{link.smtp.index + 1}",
            imap: f"{imap}-m{link.imap.index + 1}",
        }
        for key, session_id, other in (
            (smtp, link.smtp.session, imap),
            (imap, link.imap.session, smtp),
        ):
            self._sent_copies.setdefault(key, []).append(
                {
                    "title": title(link, session_id),
                    "other": anchors[other],
                    "how": "Message-ID" if link.matched_by == "message-id" else "body SHA-256",
                    "key": link.key,
                    "identical": link.identical,
                    "sent_size": link.smtp.size,
                    "filed_size": link.imap.size,
                    "recipients": [(r.role, r.text.split(" ", 1)[1]) for r in link.recipients],
                    "dropped": link.recipients_dropped,
                }
            )

    def _detail(self, slim: _Slim, share: int) -> str:
        record, hint = json.loads(
            zlib.decompress(self._packed[slim.key]).decode("utf-8", "surrogatepass")
        )
        transcript = record.pop("transcript", None) or []
        dropped = int(record.pop("transcript_dropped", 0) or 0)
        shown = transcript[:share]
        return self._session_template.render(
            s=record,
            key=slim.key,
            label=slim.label,
            transcript=shown,
            total_lines=len(transcript),
            left_out=len(transcript) - len(shown),
            dropped=dropped,
            read_hint=hint,
            rcpt_roles=_ROLE_LABELS,
            sent_copies=self._sent_copies.get(slim.key, []),
        )

    def add_input(self, item: ReportInput) -> None:
        self.inputs.append(item)

    # -- rendering ----------------------------------------------------------------------------

    def render(self, *, version: str, command_line: str, generated: str) -> str:
        sessions = sorted(
            self._sessions, key=lambda s: (_us(s.record["start"]), s.key.split("-")[0])
        )
        findings = self._findings(sessions)
        ordered = sorted(self._sessions, key=_input_then_id)
        share = min(TRANSCRIPT_LINES, TRANSCRIPT_BUDGET // max(len(ordered), 1))
        if share < TRANSCRIPT_MIN_SHARE:
            share = 0
        self._details = {s.key: self._detail(s, share) for s in ordered}
        self._packed.clear()
        details_total = sum(len(v) for v in self._details.values())
        order = [s.key for s in ordered]
        inline = details_total <= INLINE_DETAILS_BYTES
        chunks: list[tuple[str, str]] = []
        chunk_of: dict[str, str] = {}
        if not inline:
            for n, start in enumerate(range(0, len(order), CHUNK_SESSIONS)):
                keys = order[start : start + CHUNK_SESSIONS]
                blob = "".join(self._details[k] for k in keys).encode("utf-8")
                packed = base64.b64encode(gzip.compress(blob, 6, mtime=0)).decode("ascii")
                chunks.append((f"z{n}", packed))
                for k in keys:
                    chunk_of[k] = f"z{n}"
        blocks: list[tuple[str, str]] = []

        def pack(block_id: str, markup: str) -> Markup:
            """Store `markup` (rendered and escaped already) compressed; a placeholder shows
            where the browser unpacks it."""
            data = base64.b64encode(gzip.compress(str(markup).encode("utf-8"), 6, mtime=0))
            blocks.append((block_id, data.decode("ascii")))
            return Markup('<div class="packed" data-z="{}"></div>').format(block_id)

        def pack_rows(block_id: str, markup: str) -> str:
            """Session-list rows stored compressed, added by the browser after loading."""
            data = base64.b64encode(gzip.compress(str(markup).encode("utf-8"), 6, mtime=0))
            rows.append((block_id, data.decode("ascii")))
            return ""

        rows: list[tuple[str, str]] = []

        timeline, timeline_more = _timeline(sessions)
        if timeline_more is not None:
            pack("tl-more", timeline_more)
        script = _asset("report.js")
        script_hash = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        totals = _totals(self.inputs)
        return self._page_template.render(
            version=version,
            command_line=command_line,
            generated=generated,
            inputs=self.inputs,
            totals=totals,
            sessions=sessions,
            findings=findings,
            by_kind=_by_kind(findings),
            severities=SEVERITIES,
            timeline=Markup(timeline),
            graph=Markup(_graph(sessions)),
            credentials=[(i, c) for i, item in enumerate(self.inputs, 1) for c in item.credentials],
            many_inputs=self._many_inputs,
            details=[Markup(self._details[k]) for k in order] if inline else [],
            chunks=chunks,
            chunk_of=chunk_of,
            pack=pack,
            packed_rows=PACKED_ROWS,
            blocks=blocks,
            pack_rows=pack_rows,
            inline_rows=INLINE_ROWS,
            rows_per_block=ROWS_PER_BLOCK,
            row_blocks=rows,
            index=[
                _index_row(s, chunk_of.get(s.key), self._sent_copies.get(s.key, ()))
                for s in sessions
            ],
            clients=sorted({s.record["client"]["ip"] for s in sessions}),
            protocols=sorted({s.record["protocol"] for s in sessions}),
            kinds=sorted({f["kind"] for _, f in findings}),
            style=Markup(_asset("report.css")),
            script=Markup(script),
            script_hash=script_hash,
        )

    @staticmethod
    def _findings(sessions: list[_Slim]) -> list[tuple[_Slim, JsonObject]]:
        rank = {sev: n for n, sev in enumerate(SEVERITIES)}
        out = [(s, f) for s in sessions for f in s.record["findings"]]
        out.sort(key=lambda item: rank.get(item[1]["severity"], 0))  # stable: time order kept
        return out


_ROLE_LABELS = {
    "to": "To",
    "cc": "Cc",
    "bcc": "Bcc (envelope only)",
    "envelope": "envelope (no message)",
    "rejected": "rejected",
    "deferred": "rejected (temporary)",
}


def _asset(name: str) -> str:
    return resources.files("mailsniff.render").joinpath(name).read_text(encoding="utf-8")


def _input_then_id(s: _Slim) -> tuple[int, int]:
    return int(s.key[1:].split("-")[0]), int(s.record["id"])


def _totals(inputs: list[ReportInput]) -> JsonObject:
    firsts = [str(i.summary["first_packet"]) for i in inputs if i.summary.get("first_packet")]
    lasts = [str(i.summary["last_packet"]) for i in inputs if i.summary.get("last_packet")]
    return {
        "frames": sum(int(i.summary.get("frames", 0)) for i in inputs),
        "sessions": sum(int(i.summary.get("sessions", 0)) for i in inputs),
        "filtered": sum(int(i.summary.get("sessions_filtered_out", 0)) for i in inputs),
        "messages": sum(int(i.summary.get("messages", 0)) for i in inputs),
        "credentials": sum(int(i.summary.get("credentials", 0)) for i in inputs),
        "bcc_recipients": sum(int(i.summary.get("bcc_recipients", 0)) for i in inputs),
        "sent_copies": sum(int(i.summary.get("sent_copies", 0)) for i in inputs),
        "first": min(firsts, key=_us) if firsts else None,
        "last": max(lasts, key=_us) if lasts else None,
    }


def _by_kind(findings: list[tuple[_Slim, JsonObject]]) -> list[tuple[str, str, int]]:
    counts = Counter((f["severity"], f["kind"]) for _, f in findings)
    rank = {sev: n for n, sev in enumerate(SEVERITIES)}
    return sorted(
        ((sev, kind, n) for (sev, kind), n in counts.items()),
        key=lambda t: (rank.get(t[0], 0), -t[2], t[1]),
    )


def _addresses_of(record: JsonObject) -> list[str]:
    """Every address a session names (envelope, headers, users), for the address filter."""
    out: list[str] = []
    for tx in record["transactions"]:
        out.append(tx["mail_from"])
        out.extend(tx["rcpt_to"])
        out.extend(tx["header_only"])
        if tx["message"] is not None:
            out.extend(_message_addresses(tx["message"]))
    for retrieved in record["messages"]:
        out.extend(_message_addresses(retrieved["message"]))
    out.extend(a["username"] for a in record["auth"] if a["username"])
    return [a for a in dict.fromkeys(x.lower() for x in out) if a]


def _message_addresses(message: JsonObject) -> list[str]:
    return [
        a["address"]
        for role in ("from", "sender", "reply_to", "to", "cc", "bcc")
        for a in message[role]
    ]


def _messages(record: JsonObject) -> list[JsonObject]:
    out = [tx["message"] for tx in record["transactions"] if tx["message"] is not None]
    return out + [r["message"] for r in record["messages"]]


def _index_row(s: _Slim, chunk: str | None, sent_copies: Sequence[JsonObject]) -> JsonObject:
    """A row of the session list; `sent_copies` are its Sent-copy links (add_sent_copy)."""
    r = s.record
    messages = _messages(r)
    subjects = [m["subject"] for m in messages if m["subject"]]
    files = [a["filename"] for m in messages for a in m["attachments"] if a["filename"]]
    senders = [tx["mail_from"] for tx in r["transactions"]]
    header_from = [a["address"] for m in messages for a in m["from"]]
    users = [a["username"] for a in r["auth"] if a["username"]]
    kinds = sorted({f["kind"] for f in r["findings"]})
    worst = next(
        (sev for sev in SEVERITIES if any(f["severity"] == sev for f in r["findings"])), ""
    )
    addresses = _addresses_of(r)
    search = " ".join(
        [
            r["server"]["ip"],
            str(r["server"]["port"]),
            r["banner"] or "",
            r["helo"] or "",
            *subjects,
            *files,
            *[a["name"] for m in messages for a in m["from"] + m["to"] + m["cc"]],
            *(["sent copy", *(c["key"] for c in sent_copies)] if sent_copies else []),
        ]
    ).lower()
    return {
        "s": s,
        "r": r,
        "chunk": chunk,
        "subject": subjects[0] if subjects else "",
        "more_subjects": len(subjects) - 1,
        "senders": list(dict.fromkeys(senders + header_from)),
        "users": list(dict.fromkeys(users)),
        "rcpts": sum(len(tx["rcpt_accepted"]) for tx in r["transactions"]),
        "kinds": kinds,
        "worst": worst,
        "addr": " ".join(addresses),
        "search": search,
        "sent_copies": len(sent_copies),
    }


# --------------------------------------------------------------------------- timeline


@dataclass(slots=True)
class _Axis:
    """Time -> x: clusters of activity side by side, idle stretches between them cut out."""

    clusters: list[tuple[int, int, float, float]]  # start µs, end µs, x0, x1
    width: float

    def x(self, us: int) -> float:
        for start, end, x0, x1 in self.clusters:
            if us <= end or (start, end, x0, x1) == self.clusters[-1]:
                if end == start:
                    return (x0 + x1) / 2
                fraction = min(max((us - start) / (end - start), 0.0), 1.0)
                return x0 + fraction * (x1 - x0)
        return self.width


def _axis(spans: list[tuple[int, int]], x0: float, width: float) -> _Axis:
    ordered = sorted(spans)
    idle = 300_000_000  # a stretch of over 5 minutes without a session is cut out
    merged: list[list[int]] = []
    for start, end in ordered:
        if merged and start - merged[-1][1] <= idle:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, max(start, end)])
    gap = 18.0
    usable = width - gap * (len(merged) - 1)
    floor = min(60.0, usable / max(len(merged), 1))
    active = sum(max(end - start, 1) for start, end in merged)
    clusters: list[tuple[int, int, float, float]] = []
    x = x0
    spare = usable - floor * len(merged)
    for start, end in merged:
        w = floor + spare * (max(end - start, 1) / active)
        clusters.append((start, end, x, x + w))
        x += w + gap
    return _Axis(clusters, x0 + width)


def _timeline(sessions: list[_Slim]) -> tuple[str, str | None]:
    """The timeline's SVG, and the lanes past LANES_SHOWN apart when they hold more than
    PACKED_ROWS sessions (stored compressed, drawn when "show all lanes" is first used)."""
    if not sessions:
        return '<p class="none">No sessions.</p>', None
    lanes: dict[str, list[_Slim]] = {}
    for s in sessions:
        lanes.setdefault(s.record["client"]["ip"], []).append(s)
    names = list(lanes)[:LANES_MAX]
    packed = sum(len(lanes[ip]) for ip in names[LANES_SHOWN:]) > PACKED_ROWS
    more: list[str] = []
    label_w, plot_w, lane_h, top = 150.0, 960.0, 22.0, 34.0
    spans = [(_us(s.record["start"]), _us(s.record["end"])) for s in sessions]
    axis = _axis(spans, label_w, plot_w)
    height_all = top + lane_h * len(names) + 10
    height_shown = top + lane_h * min(len(names), LANES_SHOWN) + 10
    out = [
        f'<svg id="timeline" class="capped" xmlns="http://www.w3.org/2000/svg" '
        f'width="{label_w + plot_w + 10:.0f}" height="{height_shown:.0f}" '
        f'data-h-shown="{height_shown:.0f}" data-h-all="{height_all:.0f}" '
        + ('data-more="tl-more" ' if packed else "")
        + 'role="img" aria-label="timeline of sessions, one lane per client">'
    ]
    for start, end, x0, x1 in axis.clusters:
        span = f"{_stamp(start)} .. {_stamp(end)} ({_duration(end - start)})"
        out.append(
            f'<rect class="cluster" x="{x0:.1f}" y="{top - 6}" width="{x1 - x0:.1f}" '
            f'height="{height_all - top}"><title>{_e(span)}</title></rect>'
        )
        if x1 - x0 >= 125:  # room for the label; narrower stretches say it on hover
            out.append(
                f'<text class="tick" x="{x0:.1f}" y="12">{_e(_stamp(start))}</text>'
                f'<text class="tick dim" x="{x0:.1f}" y="25">{_e(_duration(end - start))}</text>'
            )
    for previous, following in zip(axis.clusters, axis.clusters[1:], strict=False):
        xm = (previous[3] + following[2]) / 2
        out.append(
            f'<path class="cut" d="M{xm - 3:.1f} {top - 6} l6 6 l-6 6 l6 6"/>'
            f"<title>{_e(_duration(following[0] - previous[1]))} without sessions left out"
            "</title>"
        )
    for n, ip in enumerate(names):
        y = top + n * lane_h
        extra = " extra" if n >= LANES_SHOWN else ""
        lane = more if extra and packed else out
        lane.append(
            f'<g class="lane{extra}"><text class="lane-label" x="{label_w - 6}" '
            f'y="{y + 14}">{_e(ip)}</text>'
            f'<line class="lane-line" x1="{label_w}" x2="{label_w + plot_w}" y1="{y + 10}" '
            f'y2="{y + 10}"/>'
        )
        for s in lanes[ip]:
            lane.append(_bar(s, axis, y))
        lane.append("</g>")
    if len(lanes) > len(names):
        left = len(lanes) - len(names)
        out.append(
            f'<text class="note" x="{label_w}" y="{height_all - 2}">{left} more clients not '
            "drawn: use the session list filters</text>"
        )
    out.append("</svg>")
    return "".join(out), "".join(more) if packed else None


def _stamp(us: int) -> str:
    seconds, micros = divmod(us, 1_000_000)
    try:
        moment = datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return f"@{seconds}"
    return moment.strftime("%Y-%m-%d %H:%M:%S") + "Z"


def _n(value: float) -> str:
    """An SVG coordinate: one decimal, none when it is whole (10k sessions: bytes count)."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _bar(s: _Slim, axis: _Axis, y: float) -> str:
    r = s.record
    start, end = _us(r["start"]), _us(r["end"])
    x0, x1 = axis.x(start), axis.x(end)
    width = max(x1 - x0, 3.0)
    title = (
        f"{s.label} {r['protocol']} :{r['client']['port']} -> {r['server']['ip']}:"
        f"{r['server']['port']} {_clock(r['start'])[:8]}-{_clock(r['end'])[:8]}"
    )
    parts = [
        f'<rect class="bar p-{_e(r["protocol"])}" data-s="{s.key}" x="{_n(x0)}" y="{_n(y + 4)}" '
        f'width="{_n(width)}" height="12"><title>{_e(title)}</title></rect>'
    ]
    for attempt in r["auth"]:
        if attempt["success"] is None:
            continue
        x = axis.x(_us(attempt.get("time") or r["start"]))
        ok = attempt["success"]
        what = "accepted" if ok else "refused"
        tip = f"{attempt['mechanism']} {attempt['username'] or '?'} {what}"
        shape = (
            f'<circle cx="{_n(x)}" cy="{_n(y + 10)}" r="4"/>'
            if ok
            else f'<path d="M{_n(x - 4)} {_n(y + 6)}l8 8m0 -8l-8 8"/>'
        )
        parts.append(
            f'<g class="mark {"auth-ok" if ok else "auth-fail"}" data-s="{s.key}">'
            f"{shape}<title>{_e(tip)}</title></g>"
        )
    seen: set[tuple[int, str]] = set()
    for f in r["findings"]:
        n = f.get("transaction")
        if f["kind"] not in _REJECTED_KINDS or n is None or (n, f["kind"]) in seen:
            continue
        seen.add((n, f["kind"]))
        tx = r["transactions"][n - 1]
        x = axis.x(_us(tx.get("time") or r["start"]))
        parts.append(
            f'<g class="mark rejected" data-s="{s.key}">'
            f'<path d="M{_n(x)} {_n(y + 3)}l5 14h-10z"/><title>{_e(f["kind"])}: '
            f"{_e(f['detail'])}</title></g>"
        )
    return "".join(parts)


# --------------------------------------------------------------------------- graph


@dataclass(slots=True)
class _Edge:
    sender: str
    rcpt: str
    kind: str
    forged: str  # "" or the worst from-mismatch severity of the transaction
    count: int = 0
    keys: list[str] = field(default_factory=list)
    shown_from: list[str] = field(default_factory=list)


def _graph(sessions: list[_Slim]) -> str:
    edges: dict[tuple[str, str, str, str], _Edge] = {}
    rank = {sev: n for n, sev in enumerate(SEVERITIES)}
    for s in sessions:
        r = s.record
        for n, tx in enumerate(r["transactions"], 1):
            mismatches = [
                f["severity"]
                for f in r["findings"]
                if f["kind"] == "from-mismatch" and f.get("transaction") == n
            ]
            forged = min(mismatches, key=lambda sev: rank.get(sev, 0)) if mismatches else ""
            sender = tx["mail_from"] or "<>"
            shown = [a["address"] for a in tx["message"]["from"]] if tx["message"] else []
            targets = [
                (rc["address"], rc.get("role") or "envelope")
                for rc in tx.get("rcpts", [])
                if rc.get("role") in ("to", "cc", "bcc", "envelope")
            ]
            targets += [(a, "header-only") for a in tx["header_only"]]
            for address, kind in targets:
                key = (sender.lower(), address.lower(), kind, forged)
                edge = edges.get(key)
                if edge is None:
                    edge = edges[key] = _Edge(sender.lower(), address.lower(), kind, forged)
                edge.count += 1
                if s.key not in edge.keys:
                    edge.keys.append(s.key)
                edge.shown_from.extend(a for a in shown if a not in edge.shown_from)
    if not edges:
        return '<p class="none">No SMTP transaction delivered to anyone.</p>'
    weight: dict[tuple[str, str], int] = defaultdict(int)
    for edge in edges.values():
        weight[("s", edge.sender)] += edge.count
        weight[("r", edge.rcpt)] += edge.count

    def ordered(side: str) -> list[str]:
        names = [name for (sd, name) in weight if sd == side]
        return sorted(names, key=lambda name: (-weight[(side, name)], name))

    senders, rcpts = ordered("s"), ordered("r")
    drawn_s, drawn_r = senders[:NODES_MAX], rcpts[:NODES_MAX]
    pos_s = {name: n for n, name in enumerate(drawn_s)}
    pos_r = {name: n for n, name in enumerate(drawn_r)}
    row, top, xs, xr, width = 20.0, 30.0, 330.0, 790.0, 1120
    rows_all = max(len(drawn_s), len(drawn_r))
    rows_shown = min(rows_all, NODES_SHOWN)
    h_all, h_shown = top + row * rows_all + 20, top + row * rows_shown + 20
    out = [
        f'<svg id="graph" class="capped" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{h_shown:.0f}" data-h-shown="{h_shown:.0f}" data-h-all="{h_all:.0f}" '
        'role="img" aria-label="who mailed whom: envelope senders and recipients">'
        '<text class="col" x="330" y="16" text-anchor="end">sender (MAIL FROM)</text>'
        '<text class="col" x="790" y="16">recipient (RCPT TO; header-only dashed)</text>'
    ]
    shown_as: dict[str, list[str]] = defaultdict(list)
    for edge in sorted(edges.values(), key=lambda e: (e.sender, e.rcpt, e.kind, e.forged)):
        if edge.sender not in pos_s or edge.rcpt not in pos_r:
            continue
        i, j = pos_s[edge.sender], pos_r[edge.rcpt]
        y1, y2 = top + i * row + 10, top + j * row + 10
        extra = " extra" if i >= NODES_SHOWN or j >= NODES_SHOWN else ""
        forged = f" forged fm-{edge.forged}" if edge.forged else ""
        stroke = min(1.5 + edge.count**0.5, 8.0)
        tip = f"{edge.sender} -> {edge.rcpt}: {edge.kind}, {edge.count} message(s)"
        if edge.forged:
            tip += f"; header From {', '.join(edge.shown_from) or '?'} (from-mismatch, "
            tip += f"{edge.forged})"
        tip += "; sessions " + ", ".join(k[1:] for k in edge.keys[:20])
        if len(edge.keys) > 20:
            tip += f" and {len(edge.keys) - 20} more"
        d = f"M{xs + 6} {y1}C{(xs + xr) / 2} {y1} {(xs + xr) / 2} {y2} {xr - 6} {y2}"
        if edge.forged:
            out.append(
                f'<path class="halo fm-{edge.forged}{extra}" data-s="{" ".join(edge.keys)}" '
                f'd="{d}" stroke-width="{stroke + 5:.1f}"/>'
            )
            claimed = shown_as[edge.sender]
            claimed.extend(a for a in edge.shown_from if a not in claimed)
        out.append(
            f'<path class="edge k-{edge.kind}{forged}{extra}" data-s="{" ".join(edge.keys)}" '
            f'data-kind="{edge.kind}" d="{d}" stroke-width="{stroke:.1f}">'
            f"<title>{_e(tip)}</title></path>"
        )
    for side, names, x, anchor in (("s", drawn_s, xs, "end"), ("r", drawn_r, xr, "start")):
        for n, name in enumerate(names):
            y = top + n * row + 10
            extra = " extra" if n >= NODES_SHOWN else ""
            dx = -8 if anchor == "end" else 8
            out.append(
                f'<g class="node n-{side}{extra}"><circle cx="{x}" cy="{y}" r="5"/>'
                f'<text x="{x + dx}" y="{y + 4}" text-anchor="{anchor}">{_e(name)}</text>'
                f"<title>{_e(name)}: {weight[(side, name)]} delivery edge(s)</title></g>"
            )
            if side == "s" and shown_as.get(name):
                out.append(
                    f'<text class="forged-label{extra}" x="{x + 10}" y="{y - 4}">'
                    f"From: {_e(', '.join(shown_as[name]))} (forged?)</text>"
                )
    notes = []
    if len(senders) > len(drawn_s) or len(rcpts) > len(drawn_r):
        notes.append(
            f"{len(senders) - len(drawn_s)} senders and {len(rcpts) - len(drawn_r)} "
            "recipients with the fewest messages not drawn: use the session list filters"
        )
    for note in notes:
        out.append(f'<text class="note" x="10" y="{h_all - 4:.0f}">{_e(note)}</text>')
    out.append("</svg>")
    return "".join(out)
