"""One TLS connection, sans-IO: fed the reassembled bytes of each direction, it parses the
records, follows the handshake, finds the keys in a `KeyLog` and decrypts.

    conn = TlsConnection(keylog)
    for event in conn.feed(ts_ns, Direction.CLIENT, data): ...
    conn.gap(ts_ns, Direction.SERVER, 1460)      # bytes never captured
    conn.close(ts_ns); conn.info                 # TlsInfo: version, suite, SNI, ALPN, problems

Nothing here raises on captured bytes: damage becomes `TlsAnomaly`, `TlsDecryptError` or
`TlsUndecryptable` events with the direction and stream offset, and `info.problems`. Memory per
connection is bounded (one record per direction, a bounded handshake message, a bounded queue
of records held while the ServerHello or the keys are awaited).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mailsniff.model import Direction
from mailsniff.tls.events import (
    DecryptFailure,
    TlsAlert,
    TlsAnomaly,
    TlsData,
    TlsDecryptError,
    TlsEvent,
    TlsGap,
    TlsHandshake,
    TlsInfo,
    TlsParameters,
    TlsUndecryptable,
)
from mailsniff.tls.events import TlsAnomalyKind as Kind
from mailsniff.tls.handshake import (
    HANDSHAKE_NAMES,
    ClientHello,
    ServerHello,
    parse_client_hello,
    parse_encrypted_extensions,
    parse_server_hello,
)
from mailsniff.tls.keylog import KeyLog
from mailsniff.tls.suites import CipherSuite, suite

# Key derivation and record decryption (`keys`, `record`) use the `cryptography` package, a few
# MB of memory and tens of ms of start-up: they are imported where keys are first derived, so
# that reading cleartext mail, or TLS without its keys, never loads it.
if TYPE_CHECKING:
    from mailsniff.tls.record import RecordCipher

__all__ = [
    "MAX_HANDSHAKE_MESSAGE",
    "MAX_HELD",
    "MAX_RECORD",
    "TlsConnection",
]

#: Largest record accepted: TLSCiphertext may exceed 2^14 by 2048 (RFC 5246 6.2.3).
MAX_RECORD = 2**14 + 2048
#: Largest handshake message reassembled (certificate chains are a few KB; 2^24 is the format's).
MAX_HANDSHAKE_MESSAGE = 256 * 1024
#: Record bytes one direction may hold while the ServerHello or the keys are awaited (a key
#: log line is written within milliseconds of the handshake).
MAX_HELD = 256 * 1024
#: Handshake bytes kept per direction for the extended master secret's session hash.
MAX_TRANSCRIPT = 512 * 1024
#: Records in a row failing authentication before a direction is given up.
MAX_FAILURES_IN_ROW = 3
MAX_PROBLEMS = 32
MAX_FAILURES = 32

CT_CCS, CT_ALERT, CT_HANDSHAKE, CT_DATA, CT_HEARTBEAT = 20, 21, 22, 23, 24


@dataclass(slots=True)
class _Record:
    ts: int
    offset: int
    number: int
    header: bytes
    fragment: bytes


class _Side:
    __slots__ = (
        "direction", "buf", "base", "end", "skip", "records", "dead", "cipher", "ccs", "epoch",
        "epoch_ok", "secret", "hs", "hs_skip", "held", "held_bytes", "transcript",
        "transcript_bytes", "streak", "nokey", "wait_reason", "undecrypted",
    )  # fmt: skip

    def __init__(self, direction: Direction) -> None:
        self.direction = direction
        self.buf = bytearray()
        self.base = 0  # stream offset of buf[0] (of the next byte fed while skipping)
        self.end = 0  # stream bytes accounted for: fed plus lost in gaps
        self.skip = 0  # bytes still to drop: the rest of a record cut by a gap
        self.records = 0  # number of the next record
        self.dead: str | None = None
        self.cipher: RecordCipher | None = None
        self.ccs = False  # TLS 1.2: ChangeCipherSpec seen, the records after it are encrypted
        #: TLS 1.3 traffic secret in use: "early" (0-RTT), "handshake" or "application".
        self.epoch = "handshake"
        self.epoch_ok = False  # a record of the current TLS 1.3 epoch was authenticated
        self.secret = b""  # TLS 1.3: current traffic secret
        self.hs = bytearray()  # partial handshake message
        self.hs_skip = 0  # bytes of an oversized handshake message still to drop
        self.held: list[_Record] = []
        self.held_bytes = 0
        self.transcript: list[bytes] | None = []  # cleartext handshake messages, in order
        self.transcript_bytes = 0
        self.streak = 0  # records in a row that failed authentication
        self.nokey: str | None = None  # why the encrypted records are not decrypted
        self.wait_reason = "no key"  # why records are held (wait_for_keys)
        self.undecrypted = 0  # records not decrypted


class TlsConnection:
    """Both directions of one TLS connection. Never raises on captured bytes.

    Args:
        keylog: where the secrets are looked up (by the ClientHello's random).
        wait_for_keys: hold encrypted records (up to MAX_HELD bytes per direction) while their
            key is not in the key log yet, and retry on each record and on `retry_keys()`;
            for live capture, where the key log is written while the connection runs.
    """

    def __init__(self, keylog: KeyLog, *, wait_for_keys: bool = False) -> None:
        self._keylog = keylog
        self._wait = wait_for_keys
        self._sides = {d: _Side(d) for d in (Direction.CLIENT, Direction.SERVER)}
        self._ch: ClientHello | None = None
        self._ch_count = 0
        self._sh: ServerHello | None = None  # the final ServerHello (not a HelloRetryRequest)
        self._hrr = False
        self._suite: CipherSuite | None = None
        self._tls13 = False
        self._tls12_keys: dict[Direction, tuple[bytes, bytes, bytes]] | None = None
        self._rsa_epms = b""
        self._alpn: str | None = None
        self._ticket = False
        self._server_hello_done = False
        self._early_accepted = False
        self._keys_found = False
        self._records_decrypted = 0
        self._bytes_decrypted = 0
        self._problems: list[str] = []
        self._failures: list[DecryptFailure] = []
        self._closed = False

    # ------------------------------------------------------------------ public API

    def feed(self, ts_ns: int, direction: Direction, data: bytes) -> list[TlsEvent]:
        """Bytes of one direction, in stream order; returns the events they complete."""
        out: list[TlsEvent] = []
        if self._closed or not data:
            return out
        side = self._sides[direction]
        side.end += len(data)
        if side.dead is not None:
            return out
        if side.skip:
            n = min(side.skip, len(data))
            side.skip -= n
            side.base += n
            data = data[n:]
        if data:
            side.buf += data
            self._frame(ts_ns, side, out)
        return out

    def gap(self, ts_ns: int, direction: Direction, length: int) -> list[TlsEvent]:
        """`length` bytes of `direction` were never captured (0: an unknown amount, e.g. the
        capture began inside the connection).

        When the loss lies inside one record whose header was seen, only that record is lost
        (the record numbers stay known and decryption goes on); otherwise the record framing
        is lost and the rest of the direction is reported undecryptable.
        """
        out: list[TlsEvent] = []
        if self._closed:
            return out
        side = self._sides[direction]
        length = max(0, length)
        start = side.end
        side.end += length
        out.append(TlsGap(ts_ns=ts_ns, direction=direction, offset=start, length=length))
        if side.dead is not None:
            return out
        if length == 0:
            why = "capture starts inside the connection" if start == 0 else "unknown loss"
            self._kill(ts_ns, side, start, f"record framing lost ({why})", out)
            return out
        if side.skip:
            if length > side.skip:
                self._kill(ts_ns, side, start, "bytes lost across a record boundary", out)
                return out
            side.skip -= length
            side.base = side.end
            return out
        buf = side.buf
        remaining = 5 + int.from_bytes(buf[3:5], "big") - len(buf) if len(buf) >= 5 else -1
        if length > remaining:
            self._kill(ts_ns, side, start, "bytes lost across a record boundary", out)
            return out
        rec = _Record(ts_ns, side.base, side.records, bytes(buf[:5]), b"")
        side.records += 1
        side.skip = remaining - length
        buf.clear()
        side.base = side.end
        self._lost(side, rec, out)
        return out

    def close(self, ts_ns: int) -> list[TlsEvent]:
        """The connection ended: report what was left incomplete or undecrypted."""
        out: list[TlsEvent] = []
        if self._closed:
            return out
        for side in self._sides.values():
            self._release(side, out)
            if side.held:
                first = side.held[0]
                why = self._hold_reason(side)
                self._undecryptable(ts_ns, side, first.offset, why, True, out, len(side.held))
                side.held.clear()
            if side.dead is None and side.buf:
                kept = len(side.buf)
                detail = f"connection ended inside a record ({kept} bytes of it captured)"
                self._anomaly(ts_ns, side, side.base, Kind.TRUNCATED_RECORD, detail, out)
                self._problem(f"{side.direction}: {detail} at offset {side.base}")
            if side.dead is None and side.hs:
                detail = f"connection ended inside a handshake message ({len(side.hs)} bytes)"
                self._anomaly(ts_ns, side, side.base, Kind.TRUNCATED_HANDSHAKE, detail, out)
        if self._ch is None and any(s.end for s in self._sides.values()):
            self._problem("handshake not captured (no ClientHello)")
        self._closed = True
        return out

    def retry_keys(self, ts_ns: int) -> list[TlsEvent]:
        """Look the keys up again (after `KeyLog.refresh()`) and decrypt the records held."""
        out: list[TlsEvent] = []
        for side in self._sides.values():
            self._release(side, out)
        return out

    @property
    def waiting_for_keys(self) -> bool:
        return any(s.held for s in self._sides.values())

    @property
    def info(self) -> TlsInfo:
        ch, sh = self._ch, self._sh
        return TlsInfo(
            version=sh.version if sh is not None else None,
            cipher_suite=sh.cipher_suite if sh is not None else None,
            sni=ch.sni if ch is not None else None,
            alpn_offered=ch.alpn if ch is not None else (),
            alpn=self._alpn,
            client_random=ch.random if ch is not None else b"",
            resumed=self._resumed(),
            session_ticket=self._ticket,
            extended_master_secret=bool(
                ch and sh and ch.extended_master_secret and sh.extended_master_secret
            ),
            encrypt_then_mac=bool(ch and sh and ch.encrypt_then_mac and sh.encrypt_then_mac),
            hello_retry=self._hrr,
            early_data_offered=bool(ch and ch.early_data),
            early_data_accepted=self._early_accepted,
            keys_found=self._keys_found,
            records_decrypted=self._records_decrypted,
            bytes_decrypted=self._bytes_decrypted,
            problems=tuple(self._problems),
            failures=tuple(self._failures),
        )

    # ------------------------------------------------------------------ records

    def _frame(self, ts: int, side: _Side, out: list[TlsEvent]) -> None:
        buf = side.buf
        pos = 0
        size = len(buf)
        while size - pos >= 5 and side.dead is None:
            ctype, major = buf[pos], buf[pos + 1]
            length = (buf[pos + 3] << 8) | buf[pos + 4]
            offset = side.base + pos
            if not CT_CCS <= ctype <= CT_HEARTBEAT or major != 3:
                head = bytes(buf[pos : pos + 5]).hex()
                self._anomaly(ts, side, offset, Kind.NOT_A_RECORD, f"bytes {head}", out)
                self._kill(ts, side, offset, f"not a TLS record header ({head})", out)
                break
            if length > MAX_RECORD:
                detail = f"record of {length} bytes (at most {MAX_RECORD})"
                self._anomaly(ts, side, offset, Kind.RECORD_TOO_LONG, detail, out)
                self._kill(ts, side, offset, detail, out)
                break
            if size - pos < 5 + length:
                break
            rec = _Record(
                ts, offset, side.records, bytes(buf[pos : pos + 5]),
                bytes(buf[pos + 5 : pos + 5 + length]),
            )  # fmt: skip
            side.records += 1
            pos += 5 + length
            self._record(side, rec, out)
        if side.dead is not None:
            buf.clear()
        else:
            del buf[:pos]
            side.base += pos

    def _blocked(self, side: _Side) -> bool:
        """Client records after the ClientHello wait for the ServerHello (version, suite)."""
        if side.direction is not Direction.CLIENT or self._ch is None or self._sh is not None:
            return False
        return not (self._hrr and self._ch_count < 2)

    def _record(self, side: _Side, rec: _Record, out: list[TlsEvent]) -> None:
        if side.held:
            self._release(side, out)
        if side.held or self._blocked(side) or not self._process(side, rec, out):
            self._hold(side, rec, out)

    def _hold(self, side: _Side, rec: _Record, out: list[TlsEvent]) -> None:
        size = len(rec.fragment) + 5
        if side.held_bytes + size > MAX_HELD:
            first = side.held[0] if side.held else rec
            why = f"{self._hold_reason(side)} within {MAX_HELD} bytes"
            side.held.clear()
            self._kill(rec.ts, side, first.offset, why, out)
            return
        side.held.append(rec)
        side.held_bytes += size

    def _hold_reason(self, side: _Side) -> str:
        if self._blocked(side):
            return "no ServerHello captured"
        return side.wait_reason

    def _release(self, side: _Side, out: list[TlsEvent]) -> None:
        while side.held and side.dead is None and not self._blocked(side):
            if not self._process(side, side.held[0], out):
                return
            rec = side.held.pop(0)
            side.held_bytes -= len(rec.fragment) + 5

    def _encrypted(self, side: _Side, ctype: int) -> bool:
        if self._tls13:
            return ctype == CT_DATA
        return side.ccs

    def _process(self, side: _Side, rec: _Record, out: list[TlsEvent]) -> bool:
        """Handle one record; False when it must wait for its key (wait_for_keys)."""
        if side.dead is not None:
            return True
        ctype = rec.header[0]
        if ctype == CT_CCS and (self._tls13 or not side.ccs):
            if not self._tls13:
                side.ccs = True
            return True
        if ctype == CT_CCS:
            detail = "second ChangeCipherSpec (renegotiation): its keys are not derived"
            self._anomaly(rec.ts, side, rec.offset, Kind.RENEGOTIATION, detail, out)
            self._kill(rec.ts, side, rec.offset, detail, out)
            return True
        if not self._encrypted(side, ctype):
            self._cleartext(side, rec, out)
            return True
        early = False
        result: tuple[int, bytes] | None = None
        if side.epoch == "early":
            outcome = self._early(side, rec, out)
            if outcome is None:
                return True
            early, result = outcome
        if result is None and side.cipher is None and side.nokey is None:
            why = self._arm(side)
            if why is not None:
                side.nokey = why
        if result is None and side.cipher is None:
            if self._wait and side.nokey is not None and side.nokey.startswith("no key"):
                side.wait_reason = side.nokey
                side.nokey = None  # look again when the record is retried
                return False
            self._undecryptable(rec.ts, side, rec.offset, side.nokey or "no key", True, out)
            if ctype == CT_ALERT:
                out.append(self._alert_event(side, rec, None, None, True))
            return True
        if result is None:
            assert side.cipher is not None
            result = side.cipher.decrypt(rec.header, rec.fragment)
        if result is None:
            self._failed(side, rec, out)
            return True
        side.streak = 0
        side.epoch_ok = True
        inner, plain = result
        if inner == CT_DATA:
            self._records_decrypted += 1
            self._bytes_decrypted += len(plain)
            out.append(
                TlsData(
                    ts_ns=rec.ts, direction=side.direction, offset=rec.offset,
                    record=rec.number, data=plain, early=early,
                )
            )  # fmt: skip
        elif inner == CT_HANDSHAKE:
            self._handshake(side, rec, plain, True, out)
        elif inner == CT_ALERT:
            self._alerts(side, rec, plain, True, out)
        else:
            detail = f"decrypted record of content type {inner}"
            self._anomaly(rec.ts, side, rec.offset, Kind.UNEXPECTED_CONTENT_TYPE, detail, out)
        return True

    def _early(
        self, side: _Side, rec: _Record, out: list[TlsEvent]
    ) -> tuple[bool, tuple[int, bytes] | None] | None:
        """A TLS 1.3 client record after a ClientHello that offered 0-RTT data.

        It is early data (CLIENT_EARLY_TRAFFIC_SECRET) until EndOfEarlyData, or until a record
        authenticates with the handshake secret instead (the server rejected early data and
        the client went on with its handshake). Returns (True, decrypted early record),
        (False, decrypted first handshake record), None when reported as undecryptable early
        data, or (False, None) when the handshake key is missing (the caller reports that).
        """
        ch = self._ch
        assert ch is not None
        if side.cipher is None and side.nokey is None:
            secret = self._keylog.secret(ch.random, "CLIENT_EARLY_TRAFFIC_SECRET")
            s = self._suite
            if secret is not None and s is not None and s.supported:
                self._set_tls13_secret(side, secret)
            else:
                side.nokey = "no CLIENT_EARLY_TRAFFIC_SECRET"
        early = side.cipher
        if early is not None:
            result = early.decrypt(rec.header, rec.fragment)
            if result is not None:
                return True, result
        side.epoch, side.cipher, side.nokey = "handshake", None, None
        why = self._arm(side)
        if why is not None:
            side.nokey = why
            return False, None
        assert side.cipher is not None
        result = side.cipher.decrypt(rec.header, rec.fragment)
        if result is not None:
            return False, result
        side.epoch, side.cipher = "early", early
        side.nokey = None if early is not None else "no CLIENT_EARLY_TRAFFIC_SECRET"
        why = "0-RTT early data (not decrypted"
        why += ": no CLIENT_EARLY_TRAFFIC_SECRET)" if early is None else ": failed authentication)"
        self._undecryptable(rec.ts, side, rec.offset, why, False, out)
        return None

    def _cleartext(self, side: _Side, rec: _Record, out: list[TlsEvent]) -> None:
        ctype = rec.header[0]
        if ctype == CT_HANDSHAKE:
            self._handshake(side, rec, rec.fragment, False, out)
        elif ctype == CT_ALERT:
            self._alerts(side, rec, rec.fragment, False, out)
        elif ctype == CT_DATA:
            why = (
                "handshake not captured"
                if self._ch is None or self._sh is None
                else "application data before the keys were set"
            )
            self._undecryptable(rec.ts, side, rec.offset, why, True, out)
        else:
            detail = f"content type {ctype} (heartbeat) record of {len(rec.fragment)} bytes"
            self._anomaly(rec.ts, side, rec.offset, Kind.HEARTBEAT, detail, out)

    def _failed(self, side: _Side, rec: _Record, out: list[TlsEvent]) -> None:
        detail = f"record {rec.number} at offset {rec.offset} failed authentication"
        out.append(
            TlsDecryptError(
                ts_ns=rec.ts, direction=side.direction, offset=rec.offset, record=rec.number,
                detail=detail,
            )
        )  # fmt: skip
        if len(self._failures) < MAX_FAILURES:
            self._failures.append(DecryptFailure(side.direction, rec.offset, rec.number))
        self._problem(f"{side.direction}: {detail}")
        side.undecrypted += 1
        side.streak += 1
        if side.streak >= MAX_FAILURES_IN_ROW:
            why = f"{MAX_FAILURES_IN_ROW} records in a row failed authentication"
            self._kill(rec.ts, side, rec.offset, why, out)

    def _lost(self, side: _Side, rec: _Record, out: list[TlsEvent]) -> None:
        """A record whose header was seen but whose body fell (partly) in a gap."""
        ctype = rec.header[0]
        if side.held or self._blocked(side) or not self._encrypted(side, ctype) or side.hs:
            why = f"record {rec.number} lost in a gap"
            self._kill(rec.ts, side, rec.offset, why, out)
            return
        if side.cipher is None and side.nokey is None:
            side.nokey = self._arm(side)
        if side.cipher is not None:
            side.cipher.seq += 1
        why = f"record {rec.number} lost in a gap"
        self._undecryptable(rec.ts, side, rec.offset, why, False, out)

    # ------------------------------------------------------------------ keys

    def _arm(self, side: _Side) -> str | None:
        """Set the side's cipher for its current epoch; the reason when it cannot be."""
        ch, sh, s = self._ch, self._sh, self._suite
        if ch is None:
            return "handshake not captured (no ClientHello)"
        if sh is None or s is None:
            return "handshake not captured (no ServerHello)"
        if not s.supported:
            return f"cipher suite {s.name} is not supported for decryption"
        if self._tls13:
            if side.direction is Direction.CLIENT:
                label = "CLIENT_" + ("HANDSHAKE_" if side.epoch == "handshake" else "")
            else:
                label = "SERVER_" + ("HANDSHAKE_" if side.epoch == "handshake" else "")
            label += "TRAFFIC_SECRET" + ("" if side.epoch == "handshake" else "_0")
            secret = self._keylog.secret(ch.random, label)
            if secret is None:
                return f"no key for client random {ch.random.hex()} ({label})"
            self._set_tls13_secret(side, secret)
            return None
        if sh.version < 0x0303:
            return f"decryption of {self.info.version_name} is not supported"
        if self._tls12_keys is None:
            why = self._derive_tls12(ch, sh, s)
            if why is not None:
                return why
        assert self._tls12_keys is not None
        from mailsniff.tls.record import make_cipher

        key, iv, mac_key = self._tls12_keys[side.direction]
        side.cipher = make_cipher(s, False, key, iv, mac_key, self.info.encrypt_then_mac)
        self._keys_found = True
        return None

    def _set_tls13_secret(self, side: _Side, secret: bytes) -> None:
        from mailsniff.tls.keys import tls13_keys
        from mailsniff.tls.record import make_cipher

        s = self._suite
        assert s is not None
        side.secret = secret
        key, iv = tls13_keys(s.prf, secret, s.key_length)
        side.cipher = make_cipher(s, True, key, iv)
        side.epoch_ok = False
        self._keys_found = True

    def _derive_tls12(self, ch: ClientHello, sh: ServerHello, s: CipherSuite) -> str | None:
        from mailsniff.tls.keys import key_block, master_secret
        from mailsniff.tls.record import tls12_key_material_length

        master = self._keylog.master_secret(ch.random)
        if master is None:
            pms = self._keylog.pre_master_secret(ch.random)
            if pms is None and self._rsa_epms:
                pms = self._keylog.rsa_pre_master_secret(self._rsa_epms)
            if pms is not None:
                session_hash: bytes | None = None
                if self.info.extended_master_secret:
                    session_hash = self._session_hash(s.prf)
                    if session_hash is None:
                        return "extended master secret: handshake messages not all captured"
                master = master_secret(s.prf, pms, ch.random, sh.random, session_hash)
        if master is None:
            return f"no key for client random {ch.random.hex()}"
        mac_len, key_len, iv_len = tls12_key_material_length(s)
        block = key_block(s.prf, master, ch.random, sh.random, 2 * (mac_len + key_len + iv_len))
        parts = []
        pos = 0
        for n in (mac_len, mac_len, key_len, key_len, iv_len, iv_len):
            parts.append(block[pos : pos + n])
            pos += n
        c_mac, s_mac, c_key, s_key, c_iv, s_iv = parts
        self._tls12_keys = {
            Direction.CLIENT: (c_key, c_iv, c_mac),
            Direction.SERVER: (s_key, s_iv, s_mac),
        }
        for side in self._sides.values():
            side.transcript = None
        return None

    def _session_hash(self, hash_name: str) -> bytes | None:
        """Hash of ClientHello .. ClientKeyExchange (RFC 7627 3), from both directions."""
        c = self._sides[Direction.CLIENT].transcript
        s = self._sides[Direction.SERVER].transcript
        if not c or s is None or c[0][0] != 1:
            return None
        h = hashlib.sha384() if hash_name == "SHA384" else hashlib.sha256()
        h.update(c[0])
        for msg in s:
            h.update(msg)
            if msg[0] == 14:  # ServerHelloDone
                break
        else:
            return None
        for msg in c[1:]:
            h.update(msg)
            if msg[0] == 16:  # ClientKeyExchange
                return h.digest()
        return None

    def _resumed(self) -> bool:
        ch, sh = self._ch, self._sh
        if ch is None or sh is None:
            return False
        if sh.version == 0x0304:
            return sh.psk
        if sh.session_id and sh.session_id == ch.session_id:
            return True
        # An abbreviated handshake (session ticket): the server's ChangeCipherSpec comes
        # without a ServerHelloDone before it, which every full handshake has.
        return self._sides[Direction.SERVER].ccs and not self._server_hello_done

    # ------------------------------------------------------------------ handshake

    def _handshake(
        self, side: _Side, rec: _Record, data: bytes, encrypted: bool, out: list[TlsEvent]
    ) -> None:
        if side.hs_skip:
            n = min(side.hs_skip, len(data))
            side.hs_skip -= n
            data = data[n:]
        hs = side.hs
        hs += data
        while len(hs) >= 4 and side.dead is None:
            mtype = hs[0]
            length = int.from_bytes(hs[1:4], "big")
            if length > MAX_HANDSHAKE_MESSAGE:
                name = HANDSHAKE_NAMES.get(mtype, str(mtype))
                detail = f"{name} handshake message of {length} bytes (not parsed)"
                self._anomaly(rec.ts, side, rec.offset, Kind.HANDSHAKE_TOO_LONG, detail, out)
                n = min(len(hs), length + 4)
                side.hs_skip = length + 4 - n
                del hs[:n]
                continue
            if len(hs) < 4 + length:
                break
            msg = bytes(hs[: 4 + length])
            del hs[: 4 + length]
            self._message(side, rec, mtype, msg, encrypted, out)

    def _message(
        self, side: _Side, rec: _Record, mtype: int, msg: bytes, encrypted: bool,
        out: list[TlsEvent],
    ) -> None:  # fmt: skip
        name = HANDSHAKE_NAMES.get(mtype, f"unknown ({mtype})")
        out.append(
            TlsHandshake(
                ts_ns=rec.ts, direction=side.direction, offset=rec.offset, record=rec.number,
                msg_type=mtype, name=name, length=len(msg) - 4, encrypted=encrypted,
            )
        )  # fmt: skip
        if not encrypted and side.transcript is not None:
            side.transcript_bytes += len(msg)
            if side.transcript_bytes > MAX_TRANSCRIPT:
                side.transcript = None
            else:
                side.transcript.append(msg)
        body = msg[4:]
        client = side.direction is Direction.CLIENT
        if mtype == 1 and client and not encrypted:
            ch = parse_client_hello(body)
            if ch is None:
                self._anomaly(rec.ts, side, rec.offset, Kind.BAD_HANDSHAKE, "ClientHello", out)
            elif self._ch is None:
                self._ch = ch
                if ch.early_data:
                    side.epoch = "early"
            self._ch_count += 1
        elif mtype == 2 and not client and not encrypted:
            sh = parse_server_hello(body)
            if sh is None:
                self._anomaly(rec.ts, side, rec.offset, Kind.BAD_HANDSHAKE, "ServerHello", out)
                self._kill(rec.ts, side, rec.offset, "ServerHello not understood", out)
                return
            self._tls13 = sh.version == 0x0304
            self._suite = suite(sh.cipher_suite)
            if sh.hello_retry:
                self._hrr = True
            else:
                self._sh = sh
                self._alpn = sh.alpn
                self._ticket = self._ticket or sh.session_ticket
            if self._tls13:
                for other in self._sides.values():
                    other.transcript = None
            out.append(
                TlsParameters(
                    ts_ns=rec.ts, direction=side.direction, offset=rec.offset, info=self.info
                )
            )
            self._release(self._sides[Direction.CLIENT], out)
        elif mtype == 8 and encrypted:
            ee = parse_encrypted_extensions(body)
            if ee is not None:
                self._alpn, self._early_accepted = ee
        elif mtype == 5 and encrypted and client and side.epoch == "early":
            side.epoch, side.cipher, side.nokey = "handshake", None, None
            self._key_change(side, rec, out)
        elif mtype == 4:
            self._ticket = True
        elif mtype == 14 and not client:
            self._server_hello_done = True
        elif mtype == 16 and client and not encrypted and len(body) > 2:
            self._rsa_epms = body[2:]
        elif mtype == 20 and encrypted and self._tls13:
            side.epoch = "application"
            side.cipher = None
            side.nokey = None
            self._key_change(side, rec, out)
        elif mtype == 24 and encrypted and self._tls13:
            cs = self._suite
            if cs is not None and side.secret:
                from mailsniff.tls.keys import tls13_next_secret

                self._set_tls13_secret(side, tls13_next_secret(cs.prf, side.secret))
                side.epoch_ok = True
            self._key_change(side, rec, out)
        elif mtype in (0, 1) and encrypted and not self._tls13:
            self._anomaly(rec.ts, side, rec.offset, Kind.RENEGOTIATION, name, out)

    def _key_change(self, side: _Side, rec: _Record, out: list[TlsEvent]) -> None:
        if side.hs:  # RFC 8446 5.1: a key change must be at a record boundary
            detail = "handshake data after a key change in the same record"
            self._anomaly(rec.ts, side, rec.offset, Kind.KEY_CHANGE_NOT_AT_RECORD_END, detail, out)
            side.hs.clear()

    # ------------------------------------------------------------------ alerts and reports

    def _alert_event(
        self, side: _Side, rec: _Record, level: int | None, description: int | None,
        encrypted: bool,
    ) -> TlsAlert:  # fmt: skip
        return TlsAlert(
            ts_ns=rec.ts, direction=side.direction, offset=rec.offset, record=rec.number,
            level=level, description=description, encrypted=encrypted,
        )  # fmt: skip

    def _alerts(
        self, side: _Side, rec: _Record, data: bytes, encrypted: bool, out: list[TlsEvent]
    ) -> None:
        if len(data) % 2 or not data:
            detail = f"alert record of {len(data)} bytes"
            self._anomaly(rec.ts, side, rec.offset, Kind.BAD_ALERT, detail, out)
        for i in range(0, len(data) - 1, 2):
            out.append(self._alert_event(side, rec, data[i], data[i + 1], encrypted))

    def _problem(self, text: str) -> None:
        if text not in self._problems and len(self._problems) < MAX_PROBLEMS:
            self._problems.append(text)

    def _anomaly(
        self, ts: int, side: _Side, offset: int, kind: Kind, detail: str, out: list[TlsEvent]
    ) -> None:
        out.append(
            TlsAnomaly(ts_ns=ts, direction=side.direction, offset=offset, kind=kind, detail=detail)
        )

    def _undecryptable(
        self, ts: int, side: _Side, offset: int, reason: str, rest: bool, out: list[TlsEvent],
        records: int = 1,
    ) -> None:  # fmt: skip
        """Report records not decrypted; for the rest of the direction only once per reason."""
        side.undecrypted += records
        if rest and side.nokey == reason and side.undecrypted > records:
            return
        if rest:
            side.nokey = reason
        out.append(
            TlsUndecryptable(
                ts_ns=ts, direction=side.direction, offset=offset, reason=reason, rest=rest,
                records=records,
            )
        )  # fmt: skip
        self._problem(f"{side.direction}: {reason} (from offset {offset})")

    def _kill(self, ts: int, side: _Side, offset: int, reason: str, out: list[TlsEvent]) -> None:
        """The rest of the direction cannot be parsed or decrypted."""
        if side.dead is not None:
            return
        side.dead = reason
        side.held.clear()
        side.held_bytes = 0
        side.buf.clear()
        side.skip = 0
        out.append(
            TlsUndecryptable(
                ts_ns=ts, direction=side.direction, offset=offset, reason=reason, rest=True
            )
        )
        self._problem(f"{side.direction}: {reason} (from offset {offset})")
