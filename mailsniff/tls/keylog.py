"""The NSS key log format (`SSLKEYLOGFILE`), read whole or followed as it grows.

Each line is `LABEL <client_random hex> <secret hex>`; `#` starts a comment. Labels used:
`CLIENT_RANDOM` (TLS 1.2 master secret), `PMS_CLIENT_RANDOM` (a pre-master secret; the master
secret is derived with the handshake), `RSA` (first 8 bytes of the RSA-encrypted pre-master
secret, then the pre-master secret), and the TLS 1.3 traffic secrets. Other labels (EXPORTER_SECRET,
...) are counted as ignored. Malformed lines are counted with their line numbers, never raised.

`KeyLog.refresh()` reads only what was appended since the last call, complete lines only, so a
key log written by a running browser or MTA can be followed during a live capture.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["KeyLog", "KeyLogProblem", "TLS13_LABELS"]

#: TLS 1.3 secrets, by label; their length is the suite hash's (32 or 48 bytes).
TLS13_LABELS = frozenset(
    {
        "CLIENT_EARLY_TRAFFIC_SECRET",
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
        "SERVER_HANDSHAKE_TRAFFIC_SECRET",
        "CLIENT_TRAFFIC_SECRET_0",
        "SERVER_TRAFFIC_SECRET_0",
    }
)
_IGNORED_LABELS = frozenset({"EXPORTER_SECRET", "EARLY_EXPORTER_SECRET"})
#: A key log line is about 200 characters; longer ones are garbage and skipped unread.
MAX_KEYLOG_LINE = 1024
#: Problems remembered (with line numbers); beyond it they are only counted.
MAX_PROBLEMS = 100
_READ_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class KeyLogProblem:
    line: int  # 1-based line number in the file (or in the text given)
    reason: str


@dataclass(slots=True)
class _Entry:
    master_secret: bytes | None = None
    pre_master_secret: bytes | None = None
    secrets: dict[str, bytes] = field(default_factory=dict)


class KeyLog:
    """Secrets by client random. Built from a file (`KeyLog(path)`, then `refresh()`) or lines."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._entries: dict[bytes, _Entry] = {}
        self._rsa: dict[bytes, bytes] = {}  # first 8 bytes of the encrypted PMS -> PMS
        self._offset = 0  # bytes of the file consumed (complete lines only)
        self._skipping = False  # inside an overlong line: drop until its newline
        self._lineno = 0
        #: Lines that held a key, comments and blank lines, lines with an unused label.
        self.keys = 0
        self.comments = 0
        self.ignored = 0
        self.bad = 0
        self.problems: list[KeyLogProblem] = []

    # ------------------------------------------------------------------ input

    def refresh(self) -> int:
        """Read the lines appended to the file since the last call; returns keys added.

        An incomplete last line is left for the next call. A file that shrank (rotated or
        truncated) is read again from its start. A missing or unreadable file adds nothing.
        """
        if self.path is None:
            return 0
        before = self.keys
        try:
            with open(self.path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size < self._offset:
                    self._offset = 0
                    self._skipping = False
                f.seek(self._offset)
                pending = b""
                while True:
                    chunk = f.read(_READ_CHUNK)
                    if not chunk:
                        break
                    data = pending + chunk
                    end = data.rfind(b"\n")
                    if end < 0:
                        pending = data
                        if len(pending) > MAX_KEYLOG_LINE:
                            self._overlong()
                            self._offset += len(pending)
                            self._skipping = True
                            pending = b""
                        continue
                    self._offset += end + 1
                    for line in data[:end].split(b"\n"):
                        self._line(line)
                    pending = data[end + 1 :]
        except OSError:
            return 0
        return self.keys - before

    def add_text(self, text: str | bytes) -> int:
        """Parse key log lines given directly (a last line without newline counts too)."""
        before = self.keys
        raw = text.encode("utf-8", "replace") if isinstance(text, str) else text
        for line in raw.split(b"\n"):
            self._line(line)
        return self.keys - before

    def _overlong(self) -> None:
        if not self._skipping:
            self._lineno += 1
            self._problem(f"line longer than {MAX_KEYLOG_LINE} bytes")

    def _problem(self, reason: str) -> None:
        self.bad += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(KeyLogProblem(self._lineno, reason))

    def _line(self, raw: bytes) -> None:
        if self._skipping:  # the end of an overlong line already counted
            self._skipping = False
            return
        self._lineno += 1
        if len(raw) > MAX_KEYLOG_LINE:
            self._problem(f"line longer than {MAX_KEYLOG_LINE} bytes")
            return
        line = raw.strip()
        if not line or line.startswith(b"#"):
            self.comments += 1
            return
        parts = line.split()
        label = parts[0].decode("ascii", "replace")
        if label not in TLS13_LABELS and label not in ("CLIENT_RANDOM", "PMS_CLIENT_RANDOM", "RSA"):
            if label in _IGNORED_LABELS or (label.isascii() and label.replace("_", "").isalnum()):
                self.ignored += 1
            else:
                self._problem("not a key log line")
            return
        if len(parts) != 3:
            self._problem(f"{label}: expected 3 fields, got {len(parts)}")
            return
        try:
            first = bytes.fromhex(parts[1].decode("ascii"))
            secret = bytes.fromhex(parts[2].decode("ascii"))
        except (ValueError, UnicodeDecodeError):
            self._problem(f"{label}: not hexadecimal")
            return
        if label == "RSA":
            if len(first) != 8 or len(secret) != 48:
                self._problem("RSA: expected 8-byte prefix and 48-byte pre-master secret")
                return
            self._rsa[first] = secret
            self.keys += 1
            return
        if len(first) != 32:
            self._problem(f"{label}: client random of {len(first)} bytes, expected 32")
            return
        entry = self._entries.get(first)
        if entry is None:
            entry = self._entries[first] = _Entry()
        if label == "CLIENT_RANDOM":
            if len(secret) != 48:
                self._problem(f"CLIENT_RANDOM: master secret of {len(secret)} bytes, expected 48")
                return
            entry.master_secret = secret
        elif label == "PMS_CLIENT_RANDOM":
            if not 1 <= len(secret) <= 1024:
                self._problem(f"PMS_CLIENT_RANDOM: pre-master secret of {len(secret)} bytes")
                return
            entry.pre_master_secret = secret
        else:
            if len(secret) not in (32, 48):
                self._problem(f"{label}: secret of {len(secret)} bytes, expected 32 or 48")
                return
            entry.secrets[label] = secret
        self.keys += 1

    def summary(self) -> str:
        """One line for the user: what was read, and the first problem with its line."""
        text = f"{self.keys} keys for {len(self._entries) + len(self._rsa)} sessions"
        if self.ignored:
            text += f", {self.ignored} lines with other labels ignored"
        if self.bad:
            first = self.problems[0]
            text += f", {self.bad} bad lines (first: line {first.line}: {first.reason})"
        return text

    # ------------------------------------------------------------------ lookup

    def master_secret(self, client_random: bytes) -> bytes | None:
        entry = self._entries.get(client_random)
        return entry.master_secret if entry is not None else None

    def pre_master_secret(self, client_random: bytes) -> bytes | None:
        entry = self._entries.get(client_random)
        return entry.pre_master_secret if entry is not None else None

    def rsa_pre_master_secret(self, encrypted_pms: bytes) -> bytes | None:
        return self._rsa.get(encrypted_pms[:8])

    def secret(self, client_random: bytes, label: str) -> bytes | None:
        entry = self._entries.get(client_random)
        return entry.secrets.get(label) if entry is not None else None

    def __contains__(self, client_random: object) -> bool:
        return client_random in self._entries

    def __len__(self) -> int:
        return len(self._entries)
