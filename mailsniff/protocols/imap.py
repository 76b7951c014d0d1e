"""Sans-IO IMAP dialogue parser (IMAP4rev1 RFC 3501, IMAP4rev2 RFC 9051, and the extensions
real clients and servers use: LITERAL+/- RFC 7888, SASL-IR RFC 4959, ID RFC 2971, IDLE RFC 2177,
ENABLE RFC 5161, NAMESPACE RFC 2342, MOVE RFC 6851, UIDPLUS RFC 4315, COMPRESS=DEFLATE RFC 4978,
BINARY RFC 3516, STARTTLS).

Fed `(ts_ns, direction, bytes)` of both directions in capture order, it hands back typed events.
Tagged completions pair with their command by tag, not by order, so pipelined commands are
matched right. Literals of any size are read as announced; the ones that carry a message (a
FETCH body section in a response, the message of an APPEND) are streamed out as
MessageStart / MessageData... / MessageEnd, never buffered whole; every other literal is kept,
up to `MAX_INLINE_LITERAL` bytes. Memory per connection is bounded by `limits.MAX_LINE` per
direction, the token bounds of `imap_grammar`, and `MAX_PENDING` / `MAX_PENDING_BYTES` of
unanswered commands.

After an accepted COMPRESS DEFLATE both directions are raw deflate streams; they are inflated
(at most `MAX_INFLATE_PER_FEED` bytes out of one feed) and parsed on. (Events never depend on how
the bytes were split into feeds, with one exception: zlib hands out a different amount of output
before it detects a corrupt deflate stream depending on the input pieces.) After an accepted
STARTTLS nothing more is parsed: `TlsStarted` tells the caller to stop or hand over (a layer that
decrypts the TLS takes the bytes past that point with `tls_handover()` and feeds the decrypted
dialogue after `resume_plaintext()`).

Captured bytes are hostile: nothing here raises on them; damage becomes an `Anomaly`.

What a session builder gets:

* each message moved across the wire: `MessageStart` (FETCH: selected mailbox, sequence number,
  UID when sent before the body, section, partial origin and the length asked; APPEND: mailbox,
  flags, date), its bytes in `MessageData` chunks and `MessageEnd` (complete or not), all
  carrying the same `message_id`; then `Fetch` (the whole FETCH response, UID and FLAGS
  included wherever they came, `message_ids` pointing back) or the APPEND's `Completion`
  (`[APPENDUID ...]`) paired by tag;
* `AuthResult` (LOGIN or AUTHENTICATE: mechanism, user, secret, success) at the tagged answer,
  with the `SaslStep`s before it; `MailboxSelected` (EXISTS, UIDVALIDITY...) at SELECT's answer;
  `Store`, `Expunged`, `Copy` (COPY/MOVE with its outcome), `IdInfo`, `Capabilities`
  (`login_disabled`), `ListEntry`, `MailboxStatus`, `SearchResult`, `Enabled`, `Namespace`;
* every command as `Command` and every tagged answer as `Completion` (`command` is the one with
  the same tag); untagged data not listed above as `Untagged`, alerts and BYE as `ServerStatus`.

Commands never answered before `close()` still yield their `AuthResult` / `Copy` (outcome None).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum

from mailsniff.limits import MAX_LINE
from mailsniff.protocols import imap_events
from mailsniff.protocols.base import Direction, Line, ReceiveBuffer, to_text
from mailsniff.protocols.imap_auth import decode_credentials
from mailsniff.protocols.imap_events import (
    Anomaly,
    AuthResult,
    Capabilities,
    CodeArgs,
    Command,
    Completion,
    CompressionStarted,
    Continuation,
    Copy,
    Enabled,
    Expunged,
    Fetch,
    Greeting,
    IdInfo,
    IdleDone,
    ImapAnomalyKind,
    ImapEvent,
    ListEntry,
    MailboxSelected,
    MailboxStatus,
    MessageData,
    MessageEnd,
    MessageGap,
    MessageStart,
    Namespace,
    SaslStep,
    SearchResult,
    ServerStatus,
    Store,
    StreamGap,
    TlsStarted,
    Untagged,
)
from mailsniff.protocols.imap_grammar import (
    Atom,
    LiteralMarker,
    LiteralRef,
    Token,
    TokenBuilder,
    decode_mailbox,
    nstring,
    text_of,
    tokenize,
)
from mailsniff.protocols.sasl import sasl_step

__all__ = [
    "ImapParser",
    "MAX_INFLATE_PER_FEED",
    "MAX_INLINE_LITERAL",
    "MAX_PENDING",
    "MAX_PENDING_BYTES",
]
__all__ += imap_events.__all__  # the events, for the parser's users

#: Commands sent and not yet completed that are remembered; past this the oldest is forgotten
#: (an Anomaly says so), so a one-sided capture cannot grow the table.
MAX_PENDING = 4096
#: Bytes of pending commands (their text and tokens) remembered at most, for the same reason.
MAX_PENDING_BYTES = 16 * 1024 * 1024
#: Bytes of a literal that is not a message (a mailbox name, a password...) kept in its token.
MAX_INLINE_LITERAL = 64 * 1024
#: Most bytes of message content handed out in one MessageData.
MESSAGE_CHUNK = 1024 * 1024
#: Client bytes held while waiting for the server's `+` to a synchronising literal; past this
#: the continuation is assumed (the server's answer was lost or never captured).
WAIT_LIMIT = 64 * 1024
#: Inflated bytes one feed may produce after COMPRESS DEFLATE (deflate cannot expand more than
#: about 1032:1; this is far beyond any real segment and stops decompression bombs).
MAX_INFLATE_PER_FEED = 64 * 1024 * 1024
_INFLATE_PIECE = 256 * 1024
#: SASL steps of one AUTHENTICATE kept for decoding the user (real mechanisms use at most 3).
_MAX_SASL_STEPS = 8
_TLS_HANDSHAKE = 0x16

# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------

_STATUS = frozenset({"OK", "NO", "BAD", "BYE", "PREAUTH"})
#: Commands trusted as a line start after a gap (RFC 3501 6, RFC 9051 6, common extensions).
_KNOWN_COMMANDS = frozenset(
    {
        "CAPABILITY", "NOOP", "LOGOUT", "STARTTLS", "AUTHENTICATE", "LOGIN", "SELECT", "EXAMINE",
        "CREATE", "DELETE", "RENAME", "SUBSCRIBE", "UNSUBSCRIBE", "LIST", "LSUB", "STATUS",
        "APPEND", "CHECK", "CLOSE", "EXPUNGE", "SEARCH", "FETCH", "STORE", "COPY", "MOVE", "UID",
        "IDLE", "ENABLE", "NAMESPACE", "ID", "COMPRESS", "UNSELECT", "GETQUOTA", "GETQUOTAROOT",
        "SETQUOTA", "GETACL", "SETACL", "MYRIGHTS", "LISTRIGHTS", "GETMETADATA", "SETMETADATA",
        "SORT", "THREAD", "ESEARCH", "XLIST", "NOTIFY", "REPLACE",
    }
)  # fmt: skip
_SELECTING = frozenset({"SELECT", "EXAMINE"})
#: Pending commands looked up by name when untagged data arrives (kept in an index).
_INDEXED = frozenset({"SELECT", "EXAMINE", "FETCH", "SEARCH"})
# fetch-att names whose value is message content (RFC 3501 7.4.2, RFC 3516 4.2)
_BODY_ITEM = re.compile(
    r"^(BODY|BINARY)(?:\.PEEK)?\[([^\]]*)\](?:<([0-9]{1,19})(?:\.([0-9]{1,19}))?>)?$|"
    r"^RFC822(\.HEADER|\.TEXT)?$",
    re.IGNORECASE,
)
_RESP_CODE = re.compile(rb"^\[([^\]]*)\]?\s?(.*)$", re.DOTALL)
_TAG = re.compile(rb"^[\x21-\x7e]{1,64}$")


def _int(token: Token | None) -> int | None:
    if isinstance(token, Atom) and token.isascii() and token.isdigit() and len(token) < 20:
        return int(token)
    return None


def _flags(token: Token | None) -> tuple[str, ...]:
    if isinstance(token, tuple):
        return tuple(str(t) for t in token if isinstance(t, Atom))
    if isinstance(token, Atom):
        return (str(token),)
    return ()


def _body_item(name: str) -> tuple[str, int | None, int | None] | None:
    """(section, origin, length) of a fetch item that carries message content, else None."""
    m = _BODY_ITEM.match(name)
    if m is None:
        return None
    if m.group(1) is None:  # RFC822, RFC822.HEADER, RFC822.TEXT (RFC 3501 6.4.5)
        suffix = (m.group(5) or "").upper()
        return {"": "", ".HEADER": "HEADER", ".TEXT": "TEXT"}[suffix], None, None
    origin = int(m.group(3)) if m.group(3) else None
    length = int(m.group(4)) if m.group(4) else None
    return m.group(2).upper(), origin, length


# --------------------------------------------------------------------------------------------
# Per-command and per-direction state
# --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Auth:
    method: str
    mechanism: str | None
    client: list[bytes] = field(default_factory=list)
    server: list[bytes] = field(default_factory=list)
    user: str | None = None
    secret: str | None = None
    secret_raw: bytes = b""


@dataclass(slots=True)
class _Select:
    mailbox: str
    read_only: bool
    exists: int | None = None
    recent: int | None = None
    uidvalidity: int | None = None
    uidnext: int | None = None
    unseen: int | None = None
    highestmodseq: int | None = None
    flags: tuple[str, ...] = ()
    permanent_flags: tuple[str, ...] = ()


@dataclass(slots=True)
class _Pending:
    command: Command
    auth: _Auth | None = None
    select: _Select | None = None
    copy: Copy | None = None
    partials: dict[str, int] = field(default_factory=dict)  # FETCH: section -> length asked
    size: int = 0  # bytes of the command's text and tokens, for MAX_PENDING_BYTES


class _Kind(Enum):
    COMMAND = "command"
    UNTAGGED = "untagged"


@dataclass(slots=True)
class _Head:
    """The start of the logical line being read."""

    kind: _Kind
    tag: str
    name: str  # command name, or untagged keyword
    uid: bool = False
    number: int | None = None
    message_ids: list[int] = field(default_factory=list)


@dataclass(slots=True)
class _Message:
    message_id: int
    size: int = 0
    damaged: bool = False


class _Mode(Enum):
    LINE = "line"
    LITERAL = "literal"
    WAIT = "wait"  # client: a synchronising literal announced, the server's `+` not yet seen


@dataclass(slots=True)
class _Side:
    direction: Direction
    buf: ReceiveBuffer = field(default_factory=ReceiveBuffer)
    mode: _Mode = _Mode.LINE
    head: _Head | None = None
    builder: TokenBuilder | None = None
    raw: bytearray = field(default_factory=bytearray)  # the logical line's text, bounded
    marker: LiteralMarker | None = None
    left: int = 0  # literal bytes still to come
    keep: bytearray | None = None  # an inline literal's bytes
    cut: int = 0  # an inline literal's bytes dropped past MAX_INLINE_LITERAL
    message: _Message | None = None
    inflater: zlib._Decompress | None = None
    compressed: bytes = b""  # bytes after the COMPRESS OK still to be inflated
    dead: bool = False  # TLS, or a broken deflate stream: bytes no longer parsed
    after_gap: bool = False
    skipped: int = 0
    builder_bytes: int = 0  # token bytes of the logical line just finished
    deflate_ended: bool = False  # the peer finished its deflate stream
    reported_end: bool = False


# --------------------------------------------------------------------------------------------
# The parser
# --------------------------------------------------------------------------------------------


class ImapParser:
    """Parses one IMAP connection; see the module docstring."""

    def __init__(self) -> None:
        self._client = _Side(Direction.CLIENT)
        self._server = _Side(Direction.SERVER)
        self._pending: dict[str, list[_Pending]] = {}
        self._order: list[str] = []  # tags in the order sent (for the bound)
        self._pending_bytes = 0
        self._by_name: dict[str, list[_Pending]] = {}  # pending SELECT/EXAMINE/FETCH/SEARCH
        self._seq = 0
        self._message_ids = 0
        self._greeted = False
        self._server_seen = False
        self._selected: str | None = None
        self._auth: _Pending | None = None  # AUTHENTICATE in progress
        self._idle: _Pending | None = None  # IDLE in progress (DONE not yet sent)
        self._starttls: _Pending | None = None
        self._compressing = False
        self._utf8 = False
        self._login_disabled = False
        self._closed = False
        #: STARTTLS accepted; and the bytes each direction had past that point (`tls_handover`).
        self._tls = False
        self._tls_rest: dict[Direction, bytes] = {}

    # ----------------------------------------------------------------------------------------
    # Public interface
    # ----------------------------------------------------------------------------------------

    def feed(self, ts_ns: int, direction: Direction, data: bytes) -> list[ImapEvent]:
        """Bytes of one direction, in stream order (any length, split anywhere); the events."""
        out: list[ImapEvent] = []
        side = self._side(direction)
        if self._closed or not data:
            return out
        if side.dead:
            if side.deflate_ended:
                self._after_deflate_end(ts_ns, side, out)
            return out
        if direction is Direction.SERVER:
            self._server_seen = True
        if side.inflater is not None:
            for piece in self._inflate(ts_ns, side, data, out):
                self._process(ts_ns, side, piece, out)
        else:
            self._process(ts_ns, side, data, out)
        return out

    def gap(self, ts_ns: int, direction: Direction, length: int) -> list[ImapEvent]:
        """`length` bytes of `direction` were never captured (0: unknown amount)."""
        out: list[ImapEvent] = []
        side = self._side(direction)
        if self._closed or side.dead:
            return out
        if direction is Direction.SERVER:
            self._server_seen = True
        out.append(StreamGap(ts_ns=ts_ns, direction=direction, length=length))
        if side.inflater is not None:
            out.append(
                self._anomaly(
                    ts_ns,
                    direction,
                    b"",
                    ImapAnomalyKind.COMPRESSED_GAP,
                    "deflate stream broken by lost bytes",
                )
            )
            side.dead = True
            self._end_message(ts_ns, side, False, out)
            return out
        if side.mode is _Mode.LITERAL and length > 0 and side.left > length:
            side.left -= length
            if side.message is not None:
                side.message.damaged = True
                out.append(
                    MessageGap(
                        ts_ns=ts_ns,
                        direction=direction,
                        message_id=side.message.message_id,
                        length=length,
                    )
                )
            else:
                side.cut += length
            return out
        if side.mode is _Mode.LITERAL and side.message is not None:
            lost = min(side.left, length) if length else side.left
            out.append(
                MessageGap(
                    ts_ns=ts_ns,
                    direction=direction,
                    message_id=side.message.message_id,
                    length=lost,
                )
            )
        self._abandon_line(ts_ns, side, out, "gap")
        side.buf.clear()
        side.after_gap = True
        if direction is Direction.SERVER and self._client.mode is _Mode.WAIT:
            self._assume_continuation(ts_ns, out)
            self._resume_client(ts_ns, out)
        return out

    def close(self, ts_ns: int) -> list[ImapEvent]:
        """The connection ended: flush what is open, answer-less commands included."""
        out: list[ImapEvent] = []
        if self._closed:
            return out
        if self._client.mode is _Mode.WAIT:
            self._assume_continuation(ts_ns, out)
            self._resume_client(ts_ns, out)
        for side in (self._client, self._server):
            if side.dead:
                continue
            if side.mode is _Mode.LITERAL:
                out.append(
                    self._anomaly(
                        ts_ns,
                        side.direction,
                        b"",
                        ImapAnomalyKind.LITERAL_CUT,
                        f"connection ended {side.left} byte(s) before the end of a literal",
                    )
                )
            rest = side.buf.take_rest() if side.mode is _Mode.LINE else b""
            if rest:
                out.append(
                    self._anomaly(
                        ts_ns, side.direction, rest[:MAX_LINE], ImapAnomalyKind.UNTERMINATED_LINE
                    )
                )
                self._line(ts_ns, side, Line(rest.rstrip(b"\r")[:MAX_LINE], b""), out)
            self._abandon_line(ts_ns, side, out, "close")
            self._flush_skipped(ts_ns, side, out)
        for tag in list(self._order):
            for pending in self._pending.get(tag, []):
                self._unanswered(ts_ns, pending, out)
        self._pending.clear()
        self._order.clear()
        self._by_name.clear()
        self._closed = True
        return out

    # ----------------------------------------------------------------------------------------
    # Bytes to lines and literals
    # ----------------------------------------------------------------------------------------

    def _side(self, direction: Direction) -> _Side:
        return self._client if direction is Direction.CLIENT else self._server

    def _process(self, ts: int, side: _Side, data: bytes, out: list[ImapEvent]) -> None:
        side.buf.append(data)
        self._drain(ts, side, out)
        while side.compressed and not side.dead:
            rest, side.compressed = side.compressed, b""
            for piece in self._inflate(ts, side, rest, out):
                side.buf.append(piece)
                self._drain(ts, side, out)

    def _inflate(self, ts: int, side: _Side, data: bytes, out: list[ImapEvent]) -> Iterator[bytes]:
        """Inflate `data` in bounded pieces; a corrupt stream or a bomb kills the direction."""
        inflater = side.inflater
        assert inflater is not None
        total = 0
        chunk = data
        while chunk and not side.dead:
            try:
                piece = inflater.decompress(chunk, _INFLATE_PIECE)
            except zlib.error as error:
                out.append(
                    self._anomaly(
                        ts, side.direction, b"", ImapAnomalyKind.INFLATE_ERROR, str(error)
                    )
                )
                side.dead = True
                self._end_message(ts, side, False, out)
                return
            chunk = inflater.unconsumed_tail
            total += len(piece)
            if total > MAX_INFLATE_PER_FEED:
                detail = f"more than {MAX_INFLATE_PER_FEED} bytes inflated from {len(data)}"
                out.append(
                    self._anomaly(
                        ts, side.direction, b"", ImapAnomalyKind.DECOMPRESSION_BOMB, detail
                    )
                )
                side.dead = True
                self._end_message(ts, side, False, out)
                return
            if piece:
                yield piece
            if inflater.eof:
                # The peer finished its deflate stream (dovecot does at logout): whatever
                # follows it is not parsed.
                side.dead = side.deflate_ended = True
                if inflater.unused_data:
                    self._after_deflate_end(ts, side, out)
                return

    def _after_deflate_end(self, ts: int, side: _Side, out: list[ImapEvent]) -> None:
        if not side.reported_end:
            side.reported_end = True
            detail = "bytes after the end of the deflate stream are not parsed"
            out.append(self._anomaly(ts, side.direction, b"", ImapAnomalyKind.DEFLATE_END, detail))

    def _drain(self, ts: int, side: _Side, out: list[ImapEvent]) -> None:
        while not side.dead and not side.compressed:
            if side.mode is _Mode.LITERAL:
                if not self._literal_step(ts, side, out):
                    return
                continue
            if side.mode is _Mode.WAIT:
                if len(side.buf) <= WAIT_LIMIT:
                    return
                self._assume_continuation(ts, out)
                continue
            if (
                self._starttls is not None
                and side.direction is Direction.CLIENT
                and side.builder is None
                and side.buf.peek(1) == bytes([_TLS_HANDSHAKE])
            ):
                # STARTTLS sent and its answer not captured: the client went on in TLS.
                self._start_tls(ts, b"", out)
                return
            line = side.buf.take_line()
            if line is None:
                return
            self._line(ts, side, line, out)

    def _literal_step(self, ts: int, side: _Side, out: list[ImapEvent]) -> bool:
        """Read literal bytes; False when more bytes are needed."""
        if side.left:
            n = min(side.left, len(side.buf), MESSAGE_CHUNK)
            if not n:
                return False
            data = side.buf.take_bytes(n)
            side.left -= n
            if side.message is not None:
                side.message.size += n
                out.append(
                    MessageData(
                        ts_ns=ts,
                        direction=side.direction,
                        raw=data,
                        message_id=side.message.message_id,
                        data=data,
                    )
                )
            elif side.keep is not None:
                room = MAX_INLINE_LITERAL - len(side.keep)
                side.keep += data[:room]
                side.cut += max(0, n - room)
            if side.left:
                return True
        # the literal is complete
        side.mode = _Mode.LINE
        builder = side.builder
        if side.message is not None:
            message = side.message
            self._end_message(ts, side, not message.damaged, out)
            if builder is not None:
                builder.add(LiteralRef(message.size, message.message_id))
        else:
            kept = bytes(side.keep or b"")
            if side.cut:
                detail = f"{side.cut} byte(s) of a literal beyond {MAX_INLINE_LITERAL} not kept"
                out.append(
                    self._anomaly(
                        ts, side.direction, kept[:80], ImapAnomalyKind.LITERAL_TOO_LONG, detail
                    )
                )
            if builder is not None:
                builder.add(kept, len(kept))
            if len(side.raw) < MAX_LINE:
                side.raw += kept[: MAX_LINE - len(side.raw)]
        side.keep = None
        side.cut = 0
        return True

    def _end_message(self, ts: int, side: _Side, complete: bool, out: list[ImapEvent]) -> None:
        message = side.message
        if message is None:
            return
        side.message = None
        out.append(
            MessageEnd(
                ts_ns=ts,
                direction=side.direction,
                message_id=message.message_id,
                size=message.size,
                complete=complete,
            )
        )

    def _line(self, ts: int, side: _Side, line: Line, out: list[ImapEvent]) -> None:
        raw = line.raw
        if side.after_gap:
            if not self._resync_ok(side, raw):
                side.skipped += 1
                return
            side.after_gap = False
            self._flush_skipped(ts, side, out)
        if line.overlong:
            detail = f"{line.overlong} byte(s) beyond {MAX_LINE} dropped"
            out.append(
                self._anomaly(ts, side.direction, raw[:80], ImapAnomalyKind.OVERLONG_LINE, detail)
            )
        if side.builder is not None:  # the logical line goes on after a literal
            self._segment(ts, side, raw, out)
        elif side.direction is Direction.SERVER:
            self._server_line(ts, raw, out)
        else:
            self._client_line(ts, raw, out)

    def _segment(self, ts: int, side: _Side, raw: bytes, out: list[ImapEvent]) -> None:
        builder = side.builder
        assert builder is not None
        if len(side.raw) < MAX_LINE:
            side.raw += raw[: MAX_LINE - len(side.raw)] + b"\r\n"
        marker = builder.add_segment(raw)
        if marker is None:
            self._finish_logical(ts, side, out)
            return
        if side.direction is Direction.CLIENT and marker.sync and self._server_seen:
            side.marker = marker
            side.mode = _Mode.WAIT
            return
        if marker.minus and marker.size > 4096:
            detail = f"{{{marker.size}-}}: LITERAL- allows at most 4096 bytes (RFC 7888 5)"
            out.append(
                self._anomaly(
                    ts, side.direction, raw[-40:], ImapAnomalyKind.LITERAL_MINUS_TOO_LONG, detail
                )
            )
        self._begin_literal(ts, side, marker, out)

    def _begin_literal(
        self, ts: int, side: _Side, marker: LiteralMarker, out: list[ImapEvent]
    ) -> None:
        side.mode = _Mode.LITERAL
        side.left = marker.size
        side.marker = None
        start = self._message_start(ts, side, marker)
        if start is not None:
            side.message = _Message(start.message_id)
            out.append(start)
            if side.head is not None:
                side.head.message_ids.append(start.message_id)
        else:
            side.keep = bytearray()
            side.cut = 0

    def _assume_continuation(self, ts: int, out: list[ImapEvent]) -> None:
        side = self._client
        marker = side.marker
        if side.mode is not _Mode.WAIT or marker is None:
            return
        detail = "the server's '+' to a synchronising literal was not seen: literal assumed sent"
        out.append(
            self._anomaly(ts, Direction.CLIENT, b"", ImapAnomalyKind.CONTINUATION_ASSUMED, detail)
        )
        self._begin_literal(ts, side, marker, out)

    def _resume_client(self, ts: int, out: list[ImapEvent]) -> None:
        if not self._client.dead:
            self._drain(ts, self._client, out)

    def _abandon_line(self, ts: int, side: _Side, out: list[ImapEvent], why: str) -> None:
        """Drop a logical line (or literal) cut short by a gap or the end of the capture."""
        self._end_message(ts, side, False, out)
        if side.builder is not None and side.head is not None:
            detail = f"{side.head.name or 'line'} cut short by {why}"
            out.append(
                self._anomaly(
                    ts, side.direction, bytes(side.raw[:200]), ImapAnomalyKind.LINE_CUT, detail
                )
            )
        self._reset_line(side)

    def _reset_line(self, side: _Side) -> None:
        side.mode = _Mode.LINE
        side.head = None
        side.builder = None
        side.raw = bytearray()
        side.marker = None
        side.left = 0
        side.keep = None
        side.cut = 0

    def _resync_ok(self, side: _Side, raw: bytes) -> bool:
        """Whether a line after a gap looks like the start of a command or response."""
        words = raw.split(None, 2)
        if side.direction is Direction.SERVER:
            if raw.startswith(b"* ") or raw.startswith(b"+"):
                return True
            if len(words) >= 2:
                tag = to_text(words[0])
                return tag in self._pending and to_text(words[1]).upper() in ("OK", "NO", "BAD")
            return False
        if raw.strip().upper() == b"DONE":
            return True
        return len(words) >= 2 and to_text(words[1]).upper() in _KNOWN_COMMANDS

    def _flush_skipped(self, ts: int, side: _Side, out: list[ImapEvent]) -> None:
        if side.skipped:
            detail = f"{side.skipped} line(s) skipped after lost bytes"
            out.append(
                self._anomaly(ts, side.direction, b"", ImapAnomalyKind.SKIPPED_LINES, detail)
            )
            side.skipped = 0

    # ----------------------------------------------------------------------------------------
    # Client lines
    # ----------------------------------------------------------------------------------------

    def _client_line(self, ts: int, raw: bytes, out: list[ImapEvent]) -> None:
        side = self._client
        if self._starttls is not None and raw[:1] == bytes([_TLS_HANDSHAKE]):
            # STARTTLS sent and the server's answer not captured: the client went on in TLS.
            self._start_tls(ts, raw, out)
            return
        stripped = raw.strip()
        if self._idle is not None:
            tag = self._idle.command.tag
            self._idle = None
            if stripped.upper() == b"DONE":
                out.append(IdleDone(ts_ns=ts, direction=Direction.CLIENT, raw=raw, tag=tag))
                return
            detail = "IDLE not ended by DONE"
            out.append(
                self._anomaly(
                    ts, Direction.CLIENT, raw[:200], ImapAnomalyKind.IDLE_NOT_DONE, detail
                )
            )
        if self._auth is not None and b" " not in stripped:
            self._client_sasl(ts, raw, stripped, out)
            return
        if self._auth is not None:
            detail = "a command while AUTHENTICATE was still going on"
            out.append(
                self._anomaly(
                    ts, Direction.CLIENT, raw[:200], ImapAnomalyKind.AUTHENTICATE_ABANDONED, detail
                )
            )
            self._auth = None
        if not stripped:
            out.append(
                self._anomaly(
                    ts, Direction.CLIENT, raw, ImapAnomalyKind.EMPTY_LINE, "an empty command line"
                )
            )
            return
        parts = raw.split(b" ", 2)
        tag_raw = parts[0]
        if len(parts) < 2 or not parts[1] or not _TAG.match(tag_raw):
            detail = "not `tag SP command` (RFC 3501 9)"
            out.append(
                self._anomaly(ts, Direction.CLIENT, raw[:200], ImapAnomalyKind.BAD_COMMAND, detail)
            )
            return
        name = to_text(parts[1]).upper()
        rest = parts[2] if len(parts) > 2 else b""
        uid = False
        if name == "UID" and rest:
            sub, _, rest = rest.partition(b" ")
            name, uid = to_text(sub).upper(), True
        side.head = _Head(_Kind.COMMAND, to_text(tag_raw), name, uid)
        side.builder = TokenBuilder()
        side.raw = bytearray()
        if len(raw) > len(rest):
            side.raw += raw[: len(raw) - len(rest)]
        self._segment(ts, side, rest, out)

    def _client_sasl(self, ts: int, raw: bytes, stripped: bytes, out: list[ImapEvent]) -> None:
        pending = self._auth
        assert pending is not None and pending.auth is not None
        step = self._sasl_step(ts, Direction.CLIENT, raw, stripped, pending)
        out.append(step)
        if step.cancelled or len(pending.auth.client) >= _MAX_SASL_STEPS:
            return
        pending.auth.client.append(step.data)

    @staticmethod
    def _sasl_step(
        ts: int,
        direction: Direction,
        raw: bytes,
        blob: bytes,
        pending: _Pending,
        *,
        initial: bool = False,
    ) -> SaslStep:
        auth = pending.auth
        mechanism = (auth.mechanism if auth is not None else None) or ""
        return sasl_step(
            ts, direction, raw[:MAX_LINE], blob, mechanism, initial=initial, tag=pending.command.tag
        )

    def _command(
        self, ts: int, side: _Side, head: _Head, args: tuple[Token, ...], out: list[ImapEvent]
    ) -> None:
        self._seq += 1
        command = Command(
            ts_ns=ts,
            direction=Direction.CLIENT,
            raw=bytes(side.raw).removesuffix(b"\r\n"),
            seq=self._seq,
            tag=head.tag,
            name=head.name,
            uid=head.uid,
            args=args,
        )
        out.append(command)
        pending = _Pending(command, size=len(command.raw) + (side.builder_bytes or 0))
        self._remember(ts, pending, out)
        name = head.name
        if name == "LOGIN":
            user = text_of(args[0]) if args else None
            secret = text_of(args[1]) if len(args) > 1 else None
            secret_raw = nstring(args[1]) or b"" if len(args) > 1 else b""
            pending.auth = _Auth("LOGIN", None, user=user, secret=secret, secret_raw=secret_raw)
            if self._login_disabled:
                detail = "LOGIN after the server advertised LOGINDISABLED"
                out.append(
                    self._anomaly(ts, Direction.CLIENT, b"", ImapAnomalyKind.LOGIN_DISABLED, detail)
                )
        elif name == "AUTHENTICATE":
            mechanism = text_of(args[0]).upper() if args else ""
            pending.auth = _Auth("AUTHENTICATE", mechanism)
            self._auth = pending
            if len(args) > 1:  # SASL-IR (RFC 4959)
                blob = args[1] if isinstance(args[1], bytes) else text_of(args[1]).encode()
                step = self._sasl_step(
                    ts, Direction.CLIENT, blob, blob.strip(), pending, initial=True
                )
                out.append(step)
                pending.auth.client.append(step.data)
        elif name in _SELECTING:
            mailbox = self._mailbox(args[0] if args else None)
            pending.select = _Select(mailbox, name == "EXAMINE")
        elif name == "STORE":
            self._store(ts, command, args, out)
        elif name in ("COPY", "MOVE"):
            pending.copy = Copy(
                ts_ns=ts,
                direction=Direction.CLIENT,
                raw=command.raw,
                tag=head.tag,
                move=name == "MOVE",
                uid=head.uid,
                source=self._selected,
                destination=self._mailbox(args[1] if len(args) > 1 else None),
                messages=text_of(args[0]) if args else "",
                ok=None,
                copyuid=None,
            )
        elif name == "FETCH":
            for token in self._fetch_atts(args[1:]):
                parsed = _body_item(str(token).replace(".PEEK", "").replace(".peek", ""))
                if parsed is not None and parsed[1] is not None and parsed[2] is not None:
                    pending.partials[parsed[0]] = parsed[2]
        elif name == "ID":
            out.append(
                IdInfo(
                    ts_ns=ts, direction=Direction.CLIENT, raw=command.raw, fields=_id_fields(args)
                )
            )
        elif name == "IDLE":
            self._idle = pending
        elif name == "STARTTLS":
            self._starttls = pending

    @staticmethod
    def _fetch_atts(args: tuple[Token, ...]) -> list[Token]:
        flat: list[Token] = []
        for token in args:
            if isinstance(token, tuple):
                flat.extend(token)
            else:
                flat.append(token)
        return [t for t in flat if isinstance(t, Atom)]

    def _store(
        self, ts: int, command: Command, args: tuple[Token, ...], out: list[ImapEvent]
    ) -> None:
        rest = list(args[1:])
        if rest and isinstance(rest[0], tuple):  # (UNCHANGEDSINCE n) (RFC 7162 3.1.3)
            rest.pop(0)
        op = str(rest[0]).upper() if rest and isinstance(rest[0], Atom) else ""
        flags: list[str] = []
        for token in rest[1:]:
            flags.extend(_flags(token))
        operation = op[:1] if op[:1] in ("+", "-") else ""
        out.append(
            Store(
                ts_ns=ts,
                direction=Direction.CLIENT,
                raw=command.raw,
                tag=command.tag,
                mailbox=self._selected,
                uid=command.uid,
                messages=text_of(args[0]) if args else "",
                operation=operation,
                silent=op.endswith(".SILENT"),
                flags=tuple(flags),
            )
        )

    def _remember(self, ts: int, pending: _Pending, out: list[ImapEvent]) -> None:
        tag = pending.command.tag
        queue = self._pending.setdefault(tag, [])
        if queue:
            detail = f"tag {tag!r} reused while a command with it is still pending"
            out.append(
                self._anomaly(ts, Direction.CLIENT, b"", ImapAnomalyKind.DUPLICATE_TAG, detail)
            )
        queue.append(pending)
        self._order.append(tag)
        self._pending_bytes += pending.size
        if pending.command.name in _INDEXED:
            self._by_name.setdefault(pending.command.name, []).append(pending)
        while len(self._order) > MAX_PENDING or (
            self._pending_bytes > MAX_PENDING_BYTES and len(self._order) > 1
        ):
            old = self._order.pop(0)
            queue = self._pending.get(old, [])
            if queue:
                forgotten = queue.pop(0)
                self._forget(forgotten)
                if not queue:
                    del self._pending[old]
                self._unanswered(ts, forgotten, out)
                if forgotten is self._auth:
                    self._auth = None
            detail = (
                f"more than {MAX_PENDING} commands or {MAX_PENDING_BYTES} bytes of commands "
                "unanswered: the oldest is forgotten"
            )
            out.append(
                self._anomaly(ts, Direction.CLIENT, b"", ImapAnomalyKind.TOO_MANY_PENDING, detail)
            )

    def _take_pending(self, tag: str) -> _Pending | None:
        queue = self._pending.get(tag)
        if not queue:
            return None
        pending = queue.pop(0)
        self._forget(pending)
        if not queue:
            del self._pending[tag]
        try:
            self._order.remove(tag)
        except ValueError:
            pass
        return pending

    def _oldest(self, names: frozenset[str]) -> _Pending | None:
        """The oldest pending command of these names: the one the server is answering."""
        best: _Pending | None = None
        for name in names:
            queue = self._by_name.get(name)
            if queue and (best is None or queue[0].command.seq < best.command.seq):
                best = queue[0]
        return best

    def _forget(self, pending: _Pending) -> None:
        """Drop a pending command from the per-name index (it was answered or forgotten)."""
        self._pending_bytes -= pending.size
        queue = self._by_name.get(pending.command.name)
        if queue:
            for i, queued in enumerate(queue):
                if queued is pending:
                    del queue[i]
                    break

    # ----------------------------------------------------------------------------------------
    # Server lines
    # ----------------------------------------------------------------------------------------

    def _server_line(self, ts: int, raw: bytes, out: list[ImapEvent]) -> None:
        side = self._server
        if raw.startswith(b"+"):
            self._continuation(ts, raw, out)
            return
        if self._starttls is not None and raw[:1] == bytes([_TLS_HANDSHAKE]):
            self._start_tls(ts, raw, out)
            return
        if raw.startswith(b"* "):
            rest = raw[2:]
            word, _, after = rest.partition(b" ")
            number: int | None = None
            keyword = to_text(word).upper()
            if word.isdigit() and len(word) < 20:
                number = int(word)
                word, _, after = after.partition(b" ")
                keyword = to_text(word).upper()
            if number is None and keyword in _STATUS:
                self._untagged_status(ts, raw, keyword, after, out)
                return
            if not self._greeted:
                self._no_greeting(ts, raw, out)
            side.head = _Head(_Kind.UNTAGGED, "*", keyword, number=number)
            side.builder = TokenBuilder()
            side.raw = bytearray(raw[: len(raw) - len(after)])
            self._segment(ts, side, after, out)
            return
        parts = raw.split(b" ", 2)
        status = to_text(parts[1]).upper() if len(parts) > 1 else ""
        if len(parts) < 2 or status not in ("OK", "NO", "BAD") or not _TAG.match(parts[0]):
            if not self._greeted:
                self._no_greeting(ts, raw, out)
            detail = "not a tagged, untagged or continuation response (RFC 3501 7)"
            out.append(
                self._anomaly(ts, Direction.SERVER, raw[:200], ImapAnomalyKind.BAD_RESPONSE, detail)
            )
            return
        if not self._greeted:
            self._no_greeting(ts, raw, out)
        self._completion(
            ts, raw, to_text(parts[0]), status, parts[2] if len(parts) > 2 else b"", out
        )

    def _no_greeting(self, ts: int, raw: bytes, out: list[ImapEvent]) -> None:
        self._greeted = True
        detail = "the first server line is not a greeting (capture began mid-connection?)"
        out.append(
            self._anomaly(ts, Direction.SERVER, raw[:200], ImapAnomalyKind.NO_GREETING, detail)
        )

    def _resp_text(self, text: bytes) -> tuple[str | None, CodeArgs, str]:
        """resp-text = ["[" resp-text-code "]" SP] text (RFC 3501 9)."""
        if not text.startswith(b"["):
            return None, (), to_text(text)
        m = _RESP_CODE.match(text)
        if m is None:
            return None, (), to_text(text)
        inner = m.group(1)
        word, _, args = inner.partition(b" ")
        return to_text(word).upper(), tokenize(args), to_text(m.group(2))

    def _capabilities(
        self, ts: int, raw: bytes, caps: tuple[Token, ...], source: str, out: list[ImapEvent]
    ) -> None:
        names = tuple(str(c) for c in caps if isinstance(c, Atom))
        event = Capabilities(
            ts_ns=ts, direction=Direction.SERVER, raw=raw, capabilities=names, source=source
        )
        self._login_disabled = event.login_disabled
        out.append(event)

    def _untagged_status(
        self, ts: int, raw: bytes, status: str, text: bytes, out: list[ImapEvent]
    ) -> None:
        code, args, message = self._resp_text(text)
        greeting = not self._greeted
        self._greeted = True
        make = Greeting if greeting else ServerStatus
        out.append(
            make(
                ts_ns=ts,
                direction=Direction.SERVER,
                raw=raw,
                status=status,
                code=code,
                code_args=args,
                text=message,
            )
        )
        if code == "CAPABILITY":
            self._capabilities(ts, raw, args, "greeting" if greeting else "response-code", out)
        if greeting:
            return
        pending = self._oldest(_SELECTING)
        if pending is not None and pending.select is not None and code is not None:
            self._select_code(pending.select, code, args)

    @staticmethod
    def _select_code(select: _Select, code: str, args: CodeArgs) -> None:
        first = args[0] if args else None
        if code == "UIDVALIDITY":
            select.uidvalidity = _int(first)
        elif code == "UIDNEXT":
            select.uidnext = _int(first)
        elif code == "UNSEEN":
            select.unseen = _int(first)
        elif code == "HIGHESTMODSEQ":
            select.highestmodseq = _int(first)
        elif code == "PERMANENTFLAGS":
            select.permanent_flags = _flags(first)
        elif code == "READ-ONLY":
            select.read_only = True

    def _continuation(self, ts: int, raw: bytes, out: list[ImapEvent]) -> None:
        text = raw[2:] if raw.startswith(b"+ ") else raw[1:]
        client = self._client
        if client.mode is _Mode.WAIT and client.marker is not None:
            tag = client.head.tag if client.head is not None else None
            out.append(
                Continuation(
                    ts_ns=ts,
                    direction=Direction.SERVER,
                    raw=raw,
                    text=to_text(text),
                    purpose="literal",
                    tag=tag,
                )
            )
            self._begin_literal(ts, client, client.marker, out)
            self._resume_client(ts, out)
            return
        if self._auth is not None and self._auth.auth is not None:
            pending = self._auth
            assert pending.auth is not None
            out.append(
                Continuation(
                    ts_ns=ts,
                    direction=Direction.SERVER,
                    raw=raw,
                    text=to_text(text),
                    purpose="sasl",
                    tag=pending.command.tag,
                )
            )
            step = self._sasl_step(ts, Direction.SERVER, raw, text.strip(), pending)
            out.append(step)
            auth = pending.auth
            if len(auth.server) < _MAX_SASL_STEPS:
                auth.server.append(step.data)
            return
        if self._idle is not None:
            out.append(
                Continuation(
                    ts_ns=ts,
                    direction=Direction.SERVER,
                    raw=raw,
                    text=to_text(text),
                    purpose="idle",
                    tag=self._idle.command.tag,
                )
            )
            return
        out.append(
            Continuation(
                ts_ns=ts,
                direction=Direction.SERVER,
                raw=raw,
                text=to_text(text),
                purpose="unexpected",
                tag=None,
            )
        )

    def _completion(
        self, ts: int, raw: bytes, tag: str, status: str, text: bytes, out: list[ImapEvent]
    ) -> None:
        code, args, message = self._resp_text(text)
        client = self._client
        if client.mode is _Mode.WAIT and client.head is not None and client.head.tag == tag:
            # The server refused the command before its literal: the client does not send it.
            client.mode = _Mode.LINE
            client.marker = None
            self._finish_logical(ts, client, out)
            self._resume_client(ts, out)
        pending = self._take_pending(tag)
        command = pending.command if pending is not None else None
        if pending is None:
            detail = f"tagged {status} for tag {tag!r} that no captured command used"
            out.append(
                self._anomaly(ts, Direction.SERVER, raw[:200], ImapAnomalyKind.UNKNOWN_TAG, detail)
            )
        out.append(
            Completion(
                ts_ns=ts,
                direction=Direction.SERVER,
                raw=raw,
                tag=tag,
                status=status,
                code=code,
                code_args=args,
                text=message,
                command=command,
            )
        )
        if code == "CAPABILITY":
            self._capabilities(ts, raw, args, "response-code", out)
        if pending is None:
            return
        ok = status == "OK"
        name = pending.command.name
        if pending is self._auth:
            self._auth = None
        if pending is self._idle:
            self._idle = None
        if pending.auth is not None:
            self._auth_result(ts, raw, pending, ok, message, out)
        if pending.select is not None:
            select = pending.select
            if code == "READ-ONLY":
                select.read_only = True
            self._selected = select.mailbox if ok else None
            out.append(
                MailboxSelected(
                    ts_ns=ts,
                    direction=Direction.SERVER,
                    raw=raw,
                    tag=tag,
                    mailbox=select.mailbox,
                    read_only=select.read_only,
                    ok=ok,
                    exists=select.exists,
                    recent=select.recent,
                    uidvalidity=select.uidvalidity,
                    uidnext=select.uidnext,
                    unseen=select.unseen,
                    highestmodseq=select.highestmodseq,
                    flags=select.flags,
                    permanent_flags=select.permanent_flags,
                )
            )
        elif name in ("CLOSE", "UNSELECT") and ok:
            self._selected = None
        elif pending.copy is not None:
            copyuid = " ".join(text_of(a) for a in args) if code == "COPYUID" else None
            c = pending.copy
            out.append(
                Copy(
                    ts_ns=ts,
                    direction=Direction.SERVER,
                    raw=raw,
                    tag=c.tag,
                    move=c.move,
                    uid=c.uid,
                    source=c.source,
                    destination=c.destination,
                    messages=c.messages,
                    ok=ok,
                    copyuid=copyuid,
                )
            )
        elif name == "STARTTLS":
            self._starttls = None
            if ok:
                self._start_tls(ts, raw, out, after=pending.command.seq)
        elif name == "COMPRESS" and ok:
            self._start_compress(ts, raw, pending, out)

    def _auth_result(
        self,
        ts: int,
        raw: bytes,
        pending: _Pending,
        ok: bool | None,
        message: str,
        out: list[ImapEvent],
    ) -> None:
        auth = pending.auth
        assert auth is not None
        user, authzid, secret, secret_raw = auth.user, None, auth.secret, auth.secret_raw
        if auth.method == "AUTHENTICATE":
            creds = decode_credentials(auth.mechanism or "", auth.client, auth.server)
            user, authzid = creds.user, creds.authzid
            secret, secret_raw = creds.secret, creds.secret_raw
        out.append(
            AuthResult(
                ts_ns=ts,
                direction=Direction.SERVER if ok is not None else Direction.CLIENT,
                raw=raw,
                tag=pending.command.tag,
                method=auth.method,
                mechanism=auth.mechanism,
                user=user,
                authzid=authzid,
                secret=secret,
                secret_raw=secret_raw,
                success=ok,
                status_text=message,
            )
        )

    def _unanswered(self, ts: int, pending: _Pending, out: list[ImapEvent]) -> None:
        """A command the capture never saw answered: its attempt is still worth an event."""
        if pending.auth is not None:
            self._auth_result(ts, b"", pending, None, "", out)
        if pending.copy is not None:
            out.append(pending.copy)

    def _start_tls(
        self, ts: int, raw: bytes, out: list[ImapEvent], after: int | None = None
    ) -> None:
        """TLS from here on; `after`: the STARTTLS command's seq (commands sent after it)."""
        if after is None and self._starttls is not None:
            after = self._starttls.command.seq
        later = [
            p.command.tag
            for queue in self._pending.values()
            for p in queue
            if after is not None and p.command.seq > after
        ]
        if later:
            # RFC 3501 6.2.1 / CVE-2011-0411: commands sent in clear after STARTTLS.
            detail = f"{len(later)} command(s) sent in clear after STARTTLS"
            out.append(
                self._anomaly(
                    ts, Direction.CLIENT, b"", ImapAnomalyKind.PIPELINED_AFTER_STARTTLS, detail
                )
            )
        out.append(TlsStarted(ts_ns=ts, direction=Direction.SERVER, raw=raw))
        self._starttls = None
        self._tls = True
        for side in (self._client, self._server):
            self._end_message(ts, side, False, out)
            side.dead = True
            rest = side.buf.take_rest() if side.mode is _Mode.LINE else b""
            if rest:
                self._tls_rest[side.direction] = rest
            side.buf.clear()

    def tls_handover(self) -> dict[Direction, bytes]:
        """After `TlsStarted`, for a layer that decrypts the TLS: the bytes each direction had
        buffered past the STARTTLS answer (the first TLS records, not parsed), handed over once."""
        rest, self._tls_rest = self._tls_rest, {}
        return rest

    def resume_plaintext(self) -> None:
        """The bytes fed from now on are the dialogue inside TLS, decrypted by a layer below:
        parse them as commands and responses. RFC 3501 6.2.1: the client forgets what it knew
        of the server's capabilities (LOGINDISABLED among them) and starts over with CAPABILITY;
        no new greeting comes."""
        if not self._tls:
            return
        self._tls = False
        self._client = _Side(Direction.CLIENT)
        self._server = _Side(Direction.SERVER)
        self._auth = None
        self._idle = None
        self._login_disabled = False

    def _start_compress(self, ts: int, raw: bytes, pending: _Pending, out: list[ImapEvent]) -> None:
        args = pending.command.args
        mechanism = text_of(args[0]).upper() if args else ""
        if self._compressing or mechanism != "DEFLATE":
            detail = f"COMPRESS {mechanism} accepted: not parsed further"
            out.append(
                self._anomaly(
                    ts, Direction.SERVER, raw, ImapAnomalyKind.UNKNOWN_COMPRESSION, detail
                )
            )
            self._client.dead = self._server.dead = True
            return
        self._compressing = True
        out.append(
            CompressionStarted(ts_ns=ts, direction=Direction.SERVER, raw=raw, mechanism=mechanism)
        )
        for side in (self._client, self._server):
            side.inflater = zlib.decompressobj(-15)
        # Server bytes after the OK line are compressed already (they wait in the buffer).
        server = self._server
        server.compressed = server.buf.take_rest()

    # ----------------------------------------------------------------------------------------
    # Logical lines complete
    # ----------------------------------------------------------------------------------------

    def _finish_logical(self, ts: int, side: _Side, out: list[ImapEvent]) -> None:
        head, builder = side.head, side.builder
        assert head is not None and builder is not None
        args = builder.finish()
        if builder.errors or builder.dropped:
            problems = list(dict.fromkeys(builder.errors))
            if builder.dropped:
                problems.append(f"{builder.dropped} token(s) beyond the bounds dropped")
            out.append(
                self._anomaly(
                    ts,
                    side.direction,
                    bytes(side.raw[:200]),
                    ImapAnomalyKind.SYNTAX,
                    "; ".join(problems),
                )
            )
        if head.kind is _Kind.COMMAND:
            side.builder_bytes = builder.size
            self._command(ts, side, head, args, out)
        else:
            self._untagged(ts, side, head, args, out)
        self._reset_line(side)

    def _mailbox(self, token: Token | None) -> str:
        raw = nstring(token)
        if raw is None:
            return text_of(token)
        return decode_mailbox(raw, self._utf8)

    def _untagged(
        self, ts: int, side: _Side, head: _Head, args: tuple[Token, ...], out: list[ImapEvent]
    ) -> None:
        raw = bytes(side.raw).removesuffix(b"\r\n")
        keyword, number = head.name, head.number
        d = Direction.SERVER
        pending = self._oldest(_SELECTING)
        select = pending.select if pending is not None else None
        if keyword == "CAPABILITY":
            self._capabilities(ts, raw, args, "untagged", out)
        elif keyword == "FETCH" and number is not None:
            self._fetch(ts, raw, number, args, head, out)
        elif keyword == "EXPUNGE" and number is not None:
            out.append(
                Expunged(
                    ts_ns=ts, direction=d, raw=raw, mailbox=self._selected, seq=number, uids=None
                )
            )
        elif keyword == "VANISHED":
            earlier = bool(args) and isinstance(args[0], tuple)
            rest = args[1:] if earlier else args
            out.append(
                Expunged(
                    ts_ns=ts,
                    direction=d,
                    raw=raw,
                    mailbox=self._selected,
                    seq=None,
                    uids=text_of(rest[0]) if rest else "",
                    earlier=earlier,
                )
            )
        elif keyword in ("LIST", "LSUB", "XLIST"):
            delimiter = nstring(args[1]) if len(args) > 1 else None
            out.append(
                ListEntry(
                    ts_ns=ts,
                    direction=d,
                    raw=raw,
                    kind="LSUB" if keyword == "LSUB" else "LIST",
                    mailbox=self._mailbox(args[2] if len(args) > 2 else None),
                    flags=_flags(args[0] if args else None),
                    delimiter=to_text(delimiter) if delimiter is not None else None,
                )
            )
        elif keyword == "STATUS":
            items: list[tuple[str, int | None]] = []
            values = args[1] if len(args) > 1 and isinstance(args[1], tuple) else ()
            for i in range(0, len(values) - 1, 2):
                items.append((text_of(values[i]).upper(), _int(values[i + 1])))
            out.append(
                MailboxStatus(
                    ts_ns=ts,
                    direction=d,
                    raw=raw,
                    mailbox=self._mailbox(args[0] if args else None),
                    items=tuple(items),
                )
            )
        elif keyword == "SEARCH":
            searching = self._oldest(frozenset({"SEARCH"}))
            numbers = tuple(n for n in (_int(a) for a in args) if n is not None)
            out.append(
                SearchResult(
                    ts_ns=ts,
                    direction=d,
                    raw=raw,
                    numbers=numbers,
                    uid=searching.command.uid if searching is not None else False,
                    tag=searching.command.tag if searching is not None else None,
                )
            )
        elif keyword == "ID":
            out.append(IdInfo(ts_ns=ts, direction=d, raw=raw, fields=_id_fields(args)))
        elif keyword == "ENABLED":
            caps = tuple(str(a) for a in args if isinstance(a, Atom))
            if any(c.upper() in ("UTF8=ACCEPT", "IMAP4REV2") for c in caps):
                self._utf8 = True
            out.append(Enabled(ts_ns=ts, direction=d, raw=raw, capabilities=caps))
        elif keyword == "NAMESPACE":
            spaces = [_namespace(args[i] if len(args) > i else None) for i in range(3)]
            out.append(
                Namespace(
                    ts_ns=ts,
                    direction=d,
                    raw=raw,
                    personal=spaces[0],
                    other=spaces[1],
                    shared=spaces[2],
                )
            )
        else:
            if select is not None:
                if keyword == "EXISTS":
                    select.exists = number
                elif keyword == "RECENT":
                    select.recent = number
                elif keyword == "FLAGS":
                    select.flags = _flags(args[0] if args else None)
            out.append(
                Untagged(ts_ns=ts, direction=d, raw=raw, keyword=keyword, number=number, args=args)
            )

    def _fetch(
        self,
        ts: int,
        raw: bytes,
        seq: int,
        args: tuple[Token, ...],
        head: _Head,
        out: list[ImapEvent],
    ) -> None:
        items = args[0] if args and isinstance(args[0], tuple) else args
        uid: int | None = None
        flags: tuple[str, ...] | None = None
        internaldate: str | None = None
        size: int | None = None
        ids = list(head.message_ids)
        for i in range(0, len(items) - 1, 2):
            name, value = items[i], items[i + 1]
            if not isinstance(name, Atom):
                continue
            upper = name.upper()
            if upper == "UID":
                uid = _int(value)
            elif upper == "FLAGS":
                flags = _flags(value)
            elif upper == "INTERNALDATE":
                internaldate = text_of(value)
            elif upper == "RFC822.SIZE":
                size = _int(value)
            elif isinstance(value, bytes):
                # A body section sent as a quoted string (or a small literal): a message too.
                parsed = _body_item(name)
                if parsed is not None:
                    start = self._fetch_start(ts, name, parsed, seq, uid, len(value))
                    ids.append(start.message_id)
                    out.append(start)
                    if value:
                        out.append(
                            MessageData(
                                ts_ns=ts,
                                direction=Direction.SERVER,
                                raw=value,
                                message_id=start.message_id,
                                data=value,
                            )
                        )
                    out.append(
                        MessageEnd(
                            ts_ns=ts,
                            direction=Direction.SERVER,
                            message_id=start.message_id,
                            size=len(value),
                            complete=True,
                        )
                    )
        out.append(
            Fetch(
                ts_ns=ts,
                direction=Direction.SERVER,
                raw=raw,
                mailbox=self._selected,
                seq=seq,
                uid=uid,
                flags=flags,
                internaldate=internaldate,
                size=size,
                message_ids=tuple(ids),
                items=items if isinstance(items, tuple) else (),
            )
        )

    # ----------------------------------------------------------------------------------------
    # Message literals
    # ----------------------------------------------------------------------------------------

    def _message_start(self, ts: int, side: _Side, marker: LiteralMarker) -> MessageStart | None:
        """The MessageStart of the literal about to be read, or None when it is not a message."""
        head, builder = side.head, side.builder
        if head is None or builder is None:
            return None
        if head.kind is _Kind.UNTAGGED:
            if head.name != "FETCH" or head.number is None or builder.depth != 1:
                return None
            current = builder.current
            if not current or len(current) % 2 != 1 or not isinstance(current[-1], Atom):
                return None
            name = current[-1]
            parsed = _body_item(name)
            if parsed is None:
                return None
            uid: int | None = None
            for i in range(0, len(current) - 1, 2):
                key = current[i]
                if isinstance(key, Atom) and key.upper() == "UID":
                    uid = _int(current[i + 1])
            return self._fetch_start(ts, name, parsed, head.number, uid, marker.size)
        if head.name != "APPEND" or builder.depth != 0 or not builder.top:
            return None
        top = builder.top
        # APPEND mailbox [flag-list] [date-time] literal, repeated for MULTIAPPEND (RFC 3502)
        since = 1
        for i, token in enumerate(top):
            if isinstance(token, LiteralRef):
                since = i + 1
        flags: tuple[str, ...] = ()
        date: str | None = None
        for token in top[since:]:
            if isinstance(token, tuple):
                flags = _flags(token)
            elif isinstance(token, bytes):
                date = to_text(token)
        self._message_ids += 1
        return MessageStart(
            ts_ns=ts,
            direction=Direction.CLIENT,
            raw=bytes(side.raw[-200:]),
            message_id=self._message_ids,
            source="APPEND",
            tag=head.tag,
            mailbox=self._mailbox(top[0]),
            seq=None,
            uid=None,
            item="APPEND",
            section="",
            origin=None,
            requested_length=None,
            partial=False,
            whole=True,
            size=marker.size,
            flags=flags,
            date=date,
        )

    def _fetch_start(
        self,
        ts: int,
        name: str,
        parsed: tuple[str, int | None, int | None],
        seq: int,
        uid: int | None,
        size: int,
    ) -> MessageStart:
        section, origin, _ = parsed
        fetching = self._oldest(frozenset({"FETCH"}))
        requested: int | None = None
        if origin is not None and fetching is not None:
            requested = fetching.partials.get(section)
        self._message_ids += 1
        return MessageStart(
            ts_ns=ts,
            direction=Direction.SERVER,
            raw=bytes(self._server.raw[-200:]),
            message_id=self._message_ids,
            source="FETCH",
            tag=fetching.command.tag if fetching is not None else None,
            mailbox=self._selected,
            seq=seq,
            uid=uid,
            item=str(name),
            section=section,
            origin=origin,
            requested_length=requested,
            partial=origin is not None,
            whole=section == "" and origin is None,
            size=size,
            flags=(),
            date=None,
        )

    @staticmethod
    def _anomaly(
        ts: int, direction: Direction, raw: bytes, kind: ImapAnomalyKind, detail: str = ""
    ) -> Anomaly:
        return Anomaly(ts_ns=ts, direction=direction, raw=raw, kind=kind, detail=detail)


def _id_fields(args: tuple[Token, ...]) -> tuple[tuple[str, str | None], ...]:
    """ID parameters: `("name" "x" "version" "1")` or NIL (RFC 2971 3.1)."""
    values = args[0] if args and isinstance(args[0], tuple) else ()
    fields: list[tuple[str, str | None]] = []
    for i in range(0, len(values) - 1, 2):
        value = nstring(values[i + 1])
        fields.append((text_of(values[i]), to_text(value) if value is not None else None))
    return tuple(fields)


def _namespace(token: Token | None) -> tuple[tuple[str, str | None], ...]:
    if not isinstance(token, tuple):
        return ()
    spaces: list[tuple[str, str | None]] = []
    for entry in token:
        if isinstance(entry, tuple) and entry:
            delimiter = nstring(entry[1]) if len(entry) > 1 else None
            spaces.append(
                (text_of(entry[0]), to_text(delimiter) if delimiter is not None else None)
            )
    return tuple(spaces)
