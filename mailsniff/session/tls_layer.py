"""TLS under a mail dialogue: a SessionHandler that decrypts with a key log and feeds the
protocol's own handler the plaintext, as if it had been sent in clear.

    handler = TlsLayer(session, SmtpSessionHandler(session), keylog, implicit=False)

Protocol-agnostic: it wraps any SessionHandler, and only a connection where TLS can happen. The
pipeline puts it under the handler at once on an implicit-TLS port, otherwise the moment the
handler's parser reports TlsStarted (STARTTLS/STLS accepted; the handler sets `session.tls`):
`TlsLayer.take_over` takes the bytes the parser had buffered past that point (`tls_handover()`),
and from then on feeds both directions to a `TlsConnection`. A dialogue that stays in clear never
has a layer (nor pays for one). Decrypted
application data goes to the same handler after `resume_plaintext()`, so the dialogue simply goes
on (EHLO again, AUTH, MAIL, DATA ...). On an implicit-TLS port (465, 995, 993) TLS starts at the
first byte -- unless the server greets in clear there, which is recorded as an anomaly and
parsed as cleartext. Bytes after STARTTLS that are not TLS at all (a capture decrypted back to
cleartext) go to the parser unchanged, which reports them.

Nothing is guessed: a record that cannot be decrypted (no key, unsupported suite, lost in a gap,
failed authentication) is reported with its reason and stream offset in `session.tls_info`; once
plaintext had been flowing in that direction the handler is told of a gap there, so a message
cut by it is marked partial. Transcript lines read from decrypted records are marked so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from enum import Enum, StrEnum

from mailsniff.model import AnomalyKind, Session, SessionAnomaly, SessionTls, TlsFailure
from mailsniff.protocols.base import Direction
from mailsniff.session.base import SessionHandler
from mailsniff.tls import (
    KeyLog,
    TlsAlert,
    TlsAnomaly,
    TlsConnection,
    TlsData,
    TlsDecryptError,
    TlsEvent,
    TlsInfo,
    TlsParameters,
    TlsUndecryptable,
    starts_with_tls,
)

__all__ = ["TlsLayer"]

#: TLS anomalies and alerts copied into the session's anomalies, per connection.
MAX_TLS_ANOMALIES = 20
#: Bytes held after STARTTLS while it is not yet known whether they are TLS (a record header
#: decides within 6 bytes; this only bounds a stream that never says).
_PROBE_BYTES = 64
#: The key log of sessions read without --keylog: empty, never refreshed, shared.
_NO_KEYS = KeyLog()
#: A TLS record starts with its content type 20-23 (RFC 8446 5.1).
_TLS_CONTENT_TYPES = frozenset({20, 21, 22, 23})


def _no_greeting(data: bytes) -> bool:
    """A server's first bytes are never taken for a cleartext greeting (a module-level function,
    not a lambda: a layer is pickled with it when its idle session is parked)."""
    return False


class _Mode(Enum):
    CLEAR = "clear"  # cleartext dialogue (a server greeting in clear on an implicit-TLS port)
    PROBE = "probe"  # TLS started: are the next bytes TLS records?
    TLS = "tls"  # a TlsConnection reads both directions
    RAW = "raw"  # not TLS after all: bytes go to the handler as they are
    IMPLICIT = "implicit"  # implicit-TLS port, no byte seen yet


class TlsLayer:
    """A SessionHandler around another (`inner`, None for a protocol without a parser)."""

    __slots__ = (
        "session",
        "_inner",
        "_keylog",
        "_given",
        "_wait",
        "_mode",
        "_conn",
        "_base",
        "_fed",
        "_probe",
        "_plain",
        "_cut",
        "_anomalies",
        "_note",
        "_kind",
        "_greeting",
    )

    def __init__(
        self,
        session: Session,
        inner: SessionHandler | None,
        keylog: KeyLog | None,
        *,
        implicit: bool,
        wait_for_keys: bool = False,
        greeting: Callable[[bytes], bool] = _no_greeting,
    ) -> None:
        self.session = session
        #: Is a server's first payload a cleartext greeting (on an implicit-TLS port)?
        self._greeting = greeting
        self._inner = inner
        self._given = keylog is not None
        self._keylog = keylog if keylog is not None else _NO_KEYS
        self._wait = wait_for_keys and keylog is not None
        self._mode = _Mode.IMPLICIT if implicit else _Mode.CLEAR
        self._kind = "implicit" if implicit else "starttls"
        self._conn: TlsConnection | None = None
        #: Stream offset where TLS began, and bytes of each direction seen so far.
        self._base = {Direction.CLIENT: 0, Direction.SERVER: 0}
        self._fed = {Direction.CLIENT: 0, Direction.SERVER: 0}
        self._probe: dict[Direction, bytearray] = {}
        self._plain = False  # decrypted data has been handed to the inner handler
        self._cut: set[Direction] = set()  # directions whose plaintext was cut for good
        self._anomalies = 0
        self._note: int | None = None  # transcript index of the handler's "TLS started" line

    @classmethod
    def take_over(
        cls,
        session: Session,
        inner: SessionHandler,
        keylog: KeyLog | None,
        *,
        fed: tuple[int, int],
        ts_ns: int,
        wait_for_keys: bool = False,
    ) -> TlsLayer:
        """A layer under `inner`, whose parser has just reported TLS started after `fed`
        (client, server) stream bytes: it takes the bytes the parser buffered past the upgrade
        (`tls_handover()`) and reads both directions from there on."""
        layer = cls(session, inner, keylog, implicit=False, wait_for_keys=wait_for_keys)
        layer._fed = {Direction.CLIENT: fed[0], Direction.SERVER: fed[1]}
        layer._started(ts_ns)
        return layer

    # ------------------------------------------------------------------ SessionHandler

    def data(self, ts_ns: int, direction: Direction, data: bytes) -> None:
        mode = self._mode
        if mode is _Mode.TLS:
            assert self._conn is not None
            self._events(self._conn.feed(ts_ns, direction, data))
            return
        if mode is _Mode.CLEAR:
            self._fed[direction] += len(data)
            inner = self._inner
            if inner is None:
                return
            inner.data(ts_ns, direction, data)
            if self.session.tls:
                self._started(ts_ns)
            return
        if mode is _Mode.RAW:
            if self._inner is not None:
                self._inner.data(ts_ns, direction, data)
            return
        if mode is _Mode.IMPLICIT:
            self._implicit(ts_ns, direction, data)
            return
        self._probe_bytes(ts_ns, direction, data)

    def gap(self, ts_ns: int, direction: Direction, length: int) -> None:
        mode = self._mode
        if mode is _Mode.IMPLICIT or mode is _Mode.PROBE:
            self._begin_tls(ts_ns)  # bytes were lost where TLS should start: take it as TLS
            mode = self._mode
        if mode is _Mode.TLS:
            assert self._conn is not None
            self._events(self._conn.gap(ts_ns, direction, length))
            return
        self._fed[direction] += length
        if self._inner is not None:
            self._inner.gap(ts_ns, direction, length)

    def close(self, ts_ns: int) -> None:
        if self._mode is _Mode.PROBE:
            # Too few bytes after STARTTLS to tell: give them to the parser as they are.
            self._mode = _Mode.RAW
            for direction, held in self._probe.items():
                if held and self._inner is not None:
                    self._inner.data(ts_ns, direction, bytes(held))
            self._probe.clear()
        if self._conn is not None:
            self._events(self._conn.close(ts_ns))
            self._update()
        if self._inner is not None:
            self._inner.close(ts_ns)

    # ------------------------------------------------------------------ live key logs

    @property
    def waiting_for_keys(self) -> bool:
        return self._conn is not None and self._conn.waiting_for_keys

    def retry_keys(self, ts_ns: int) -> None:
        """The key log grew (live capture): decrypt the records held for their keys."""
        if self._conn is not None and self._conn.waiting_for_keys:
            self._events(self._conn.retry_keys(ts_ns))
            self._update()

    # ------------------------------------------------------------------ start of TLS

    def _implicit(self, ts_ns: int, direction: Direction, data: bytes) -> None:
        """First bytes on an implicit-TLS port: TLS, unless the server greets in clear."""
        if direction is Direction.SERVER and data[0] not in _TLS_CONTENT_TYPES:
            if self._inner is not None and self._greeting(data):
                s = self.session
                s.implicit_tls = False
                s.tls = False
                detail = (
                    f"cleartext {s.protocol.upper()} on implicit-TLS port "
                    f"{s.server.port}: the server greeted without TLS"
                )
                s.anomalies.append(SessionAnomaly(AnomalyKind.CLEARTEXT_ON_TLS_PORT, detail))
                self._mode = _Mode.CLEAR
                self.data(ts_ns, direction, data)
                return
        self._begin_tls(ts_ns)
        self.data(ts_ns, direction, data)

    def _started(self, ts_ns: int) -> None:
        """The handler's parser just reported TlsStarted: take over both directions."""
        assert self._inner is not None
        handover = getattr(self._inner, "tls_handover", None)
        rest: dict[Direction, bytes] = handover() if handover is not None else {}
        for direction in Direction:
            self._base[direction] = self._fed[direction] - len(rest.get(direction, b""))
        transcript = self.session.transcript
        if transcript and transcript[-1].note and "TLS" in transcript[-1].note:
            self._note = len(transcript) - 1
        self.session.tls_from_ns = ts_ns
        self._mode = _Mode.PROBE
        for direction in (Direction.CLIENT, Direction.SERVER):
            data = rest.get(direction)
            if data:
                self.data(ts_ns, direction, data)

    def _probe_bytes(self, ts_ns: int, direction: Direction, data: bytes) -> None:
        held = self._probe.setdefault(direction, bytearray())
        held += data
        verdict = starts_with_tls(bytes(held[:8]))
        if verdict is None and len(held) < _PROBE_BYTES:
            return
        if verdict:
            self._begin_tls(ts_ns)
            return
        # Not TLS after the upgrade (a capture decrypted back to cleartext, or injection):
        # the parser reads it and says so, as it always has.
        self._mode = _Mode.RAW
        self.session.tls_from_ns = None
        probe, self._probe = self._probe, {}
        if self._inner is not None:
            for d in sorted(probe, key=lambda d: d is not direction):
                self._inner.data(ts_ns, d, bytes(probe[d]))

    def _begin_tls(self, ts_ns: int) -> None:
        if self._conn is not None:
            return
        self._mode = _Mode.TLS
        self._conn = TlsConnection(self._keylog, wait_for_keys=self._wait)
        if self._kind == "implicit":
            self.session.tls_from_ns = ts_ns
        self._update()
        probe, self._probe = self._probe, {}
        for direction in (Direction.CLIENT, Direction.SERVER):
            held = probe.get(direction)
            if held:
                self._events(self._conn.feed(ts_ns, direction, bytes(held)))

    # ------------------------------------------------------------------ TLS events

    def _update(self) -> None:
        if self._conn is None:
            return
        self.session.tls_info = _session_tls(
            self._conn.info,
            mode=self._kind,
            keylog=self._given,
            client_offset=self._base[Direction.CLIENT],
            server_offset=self._base[Direction.SERVER],
        )

    def _events(self, events: list[TlsEvent]) -> None:
        for ev in events:
            if isinstance(ev, TlsData):
                self._plaintext(ev)
            elif isinstance(ev, TlsUndecryptable):
                self._lost(ev.ts_ns, ev.direction, ev.offset, ev.reason, ev.rest)
            elif isinstance(ev, TlsDecryptError):
                self._lost(ev.ts_ns, ev.direction, ev.offset, ev.detail, False)
            elif isinstance(ev, TlsParameters):
                self._update()
            elif isinstance(ev, TlsAnomaly):
                where = self._base[ev.direction] + ev.offset
                self._anomaly(ev.kind, f"{ev.direction} {ev.detail} at offset {where}", ev)
            elif isinstance(ev, TlsAlert) and ev.level == 2:
                self._anomaly(
                    AnomalyKind.TLS_ALERT,
                    f"{ev.direction} sent fatal alert {ev.description_name}",
                    ev,
                )

    def _plaintext(self, ev: TlsData) -> None:
        inner = self._inner
        if inner is None or ev.direction in self._cut:
            return
        transcript = self.session.transcript
        if not self._plain:
            self._plain = True
            resume = getattr(inner, "resume_plaintext", None)
            if resume is not None:
                resume()
            self._update()
            if self._note is not None and self._note < len(transcript):
                line = transcript[self._note]
                transcript[self._note] = replace(line, note=f"TLS started: {self._describe()}")
        first = len(transcript)
        inner.data(ev.ts_ns, ev.direction, ev.data)
        if len(transcript) > first:
            for i in range(first, len(transcript)):
                transcript[i] = replace(transcript[i], decrypted=True)

    def _lost(self, ts_ns: int, direction: Direction, offset: int, reason: str, rest: bool) -> None:
        """Records not decrypted. Before any plaintext they only go into tls_info; once the
        dialogue is being read, the handler is told of a gap there (never of made-up bytes)."""
        if not self._plain or direction in self._cut or self._inner is None:
            return
        where = self._base[direction] + offset
        if rest:
            self._cut.add(direction)
            self._anomaly(
                AnomalyKind.TLS_UNDECRYPTED,
                f"{direction} bytes from offset {where} not decrypted "
                f"({reason}): the rest of that direction is a gap",
            )
        else:
            self._anomaly(
                AnomalyKind.TLS_UNDECRYPTED, f"{direction} record at offset {where}: {reason}"
            )
        self._inner.gap(ts_ns, direction, 0)

    def _anomaly(self, kind: StrEnum, detail: str, ev: TlsAnomaly | TlsAlert | None = None) -> None:
        if self._anomalies < MAX_TLS_ANOMALIES:
            self.session.anomalies.append(
                SessionAnomaly(
                    kind,
                    detail,
                    direction=ev.direction if ev is not None else None,
                    ts_ns=ev.ts_ns if ev is not None else None,
                )
            )
        self._anomalies += 1

    def _describe(self) -> str:
        info = self._conn.info if self._conn is not None else None
        if info is None:
            return "decrypted with the key log"
        parts = [p for p in (info.version_name, info.cipher_suite_name) if p]
        if info.sni:
            parts.append(f"SNI {info.sni}")
        return ", ".join(parts) + ": decrypted with the key log (lines marked C* / S*)"


def _session_tls(
    info: TlsInfo, *, mode: str, keylog: bool, client_offset: int, server_offset: int
) -> SessionTls:
    """The session record's copy of what the record layer knows of the connection."""
    return SessionTls(
        mode=mode,
        keylog=keylog,
        version=info.version_name,
        cipher_suite=info.cipher_suite_name,
        sni=info.sni,
        alpn=info.alpn,
        alpn_offered=info.alpn_offered,
        resumed=info.resumed,
        forward_secrecy=info.forward_secrecy,
        legacy_version=info.legacy_version,
        keys_found=info.keys_found,
        records_decrypted=info.records_decrypted,
        bytes_decrypted=info.bytes_decrypted,
        problems=info.problems,
        failures=tuple(TlsFailure(f.direction, f.offset, f.record) for f in info.failures),
        client_offset=client_offset,
        server_offset=server_offset,
    )


def open_keylog(path: str, *, live: bool = False) -> KeyLog:
    """The key log named by --keylog / SSLKEYLOGFILE, read as far as it is written.

    A file that cannot be read is an InputError for `read` (a typo must not pass for "no
    keys"); for `live` it may not exist yet (clients create it as they connect).
    """
    from mailsniff.errors import InputError

    keylog = KeyLog(path)
    try:
        with open(path, "rb"):
            pass
    except FileNotFoundError:
        if live:
            return keylog
        raise InputError(f"--keylog {path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"--keylog {path}: is a directory") from None
    except OSError as error:
        raise InputError(f"--keylog {path}: {error.strerror or error}") from None
    keylog.refresh()
    return keylog


def keylog_warning(keylog: KeyLog) -> str | None:
    """One line on what in the key log could not be used (None when every line was fine)."""
    if not keylog.bad:
        return None
    first = keylog.problems[0] if keylog.problems else None
    where = f" (first: line {first.line}: {first.reason})" if first is not None else ""
    return f"key log {keylog.path}: {keylog.bad} malformed line(s) skipped{where}"
