"""IMAP tokens (RFC 3501 9, RFC 9051 9): atoms, strings, lists, literals, mailbox names.

A command or a data response is one "logical line": text segments, each of which may end in a
literal announcement `{n}` (`{n+}`/`{n-}` non-synchronising, RFC 7888; `~{n}` binary, RFC 3516)
followed by exactly n bytes, then the next segment. `TokenBuilder` turns the segments and the
literal contents into nested tuples, bounded in size, and never raises on hostile bytes.

Tokens:

* `Atom` (a `str`): atoms, numbers, flags (`\\Seen`), `NIL`, fetch item names with their
  `[section]<partial>` (spaces inside the brackets belong to the atom, as RFC 3501 9 allows);
* `bytes`: a quoted string (escapes undone) or a literal kept inline;
* `LiteralRef`: a literal streamed out as message content instead of being kept;
* `tuple`: a parenthesised list.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import TypeAlias, Union

from mailsniff.limits import MAX_LINE
from mailsniff.protocols.base import to_text

__all__ = [
    "Atom",
    "LiteralMarker",
    "LiteralRef",
    "MAX_TOKENS",
    "MAX_TOKEN_BYTES",
    "Token",
    "TokenBuilder",
    "decode_mailbox",
    "nstring",
    "text_of",
    "tokenize",
]

#: Bytes of tokens one logical line may hold (literals kept inline count too); the rest is
#: dropped and flagged. Message literals are streamed and do not count.
MAX_TOKEN_BYTES = 1024 * 1024
#: Tokens one logical line may hold (a SEARCH answer listing every message is the usual giant).
MAX_TOKENS = 65536


class Atom(str):
    """An unquoted IMAP word: an atom, a number, a flag, NIL, a fetch item name."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Atom({str.__repr__(self)})"


@dataclass(frozen=True, slots=True)
class LiteralRef:
    """A literal streamed out as message content (MessageStart.message_id) instead of kept."""

    size: int
    message_id: int


Token: TypeAlias = Union[Atom, bytes, LiteralRef, tuple["Token", ...]]  # noqa: UP007


@dataclass(frozen=True, slots=True)
class LiteralMarker:
    """The `{n}` that ends a segment: n bytes of literal follow the line ending."""

    size: int
    sync: bool  # `{n}`: a client waits for the server's `+` before sending the bytes
    binary: bool  # `~{n}` (RFC 3516 literal8)
    minus: bool  # `{n-}` (RFC 7888 LITERAL-)


# One token at a time (RFC 3501 9). literal = "{" number ["+" / "-"] "}" CRLF *CHAR8 (RFC 7888),
# literal8 = "~{" number ["+"] "}" CRLF (RFC 3516): only at the end of a segment. An atom may hold
# `[...]` with spaces and parentheses inside (`BODY[HEADER.FIELDS (FROM)]<0.100>`).
_TOKEN = re.compile(
    rb"""[ \t]*(?:
     (\()
    |(\))
    |(")((?:[^"\\]|\\.)*)("?)
    |(~?\{[0-9]{1,20}[+-]?\})\Z
    |((?:[^ \t()"\[]|\[[^\]]*\]?)+))""",
    re.VERBOSE | re.DOTALL,
)
_LITERAL = re.compile(rb"~?\{([0-9]{1,20})([+-]?)\}")
_ESCAPE = re.compile(rb"\\(.)", re.DOTALL)


class TokenBuilder:
    """Tokens of one logical line, built segment by segment (bounded; never raises)."""

    __slots__ = ("_stack", "_bytes", "_count", "_flat", "dropped", "errors")

    def __init__(self) -> None:
        self._stack: list[list[Token]] = [[]]
        self._flat = 0  # "(" past the bounds, not opened as lists (their ")" are skipped too)
        self._bytes = 0
        self._count = 0
        self.dropped = 0  # tokens not kept because a bound was reached
        self.errors: list[str] = []  # syntax damage seen (unbalanced parentheses, open quotes)

    @property
    def size(self) -> int:
        """Bytes the kept tokens take (about)."""
        return min(self._bytes, MAX_TOKEN_BYTES)

    @property
    def depth(self) -> int:
        """How many parentheses are open."""
        return len(self._stack) - 1

    @property
    def current(self) -> list[Token]:
        """The innermost open list (the top level when none is open)."""
        return self._stack[-1]

    @property
    def top(self) -> list[Token]:
        return self._stack[0]

    def add(self, token: Token, size: int = 0) -> None:
        """Append a token to the innermost open list (dropped past MAX_TOKENS/MAX_TOKEN_BYTES)."""
        self._count += 1
        self._bytes += size + 1
        if self._count > MAX_TOKENS or self._bytes > MAX_TOKEN_BYTES:
            self.dropped += 1
            return
        self._stack[-1].append(token)

    def add_segment(self, raw: bytes) -> LiteralMarker | None:
        """Tokenize one segment (a line without its ending); the literal marker ending it."""
        stack = self._stack
        current = stack[-1]
        for opened, closed, quote, quoted, qend, literal, atom in _TOKEN.findall(raw):
            if atom:
                self._count += 1
                self._bytes += len(atom) + 1
                if self._count > MAX_TOKENS or self._bytes > MAX_TOKEN_BYTES:
                    self.dropped += 1
                    continue
                try:
                    current.append(Atom(atom.decode("utf-8")))
                except UnicodeDecodeError:
                    current.append(Atom(atom.decode("latin-1")))
            elif quote:
                if b"\\" in quoted:
                    quoted = _ESCAPE.sub(rb"\1", quoted)
                if not qend:
                    self.errors.append("unterminated quoted string")
                self.add(quoted, len(quoted))
            elif opened:
                self._count += 1
                if self._flat or self._count > MAX_TOKENS or len(stack) > 64:
                    self.dropped += 1
                    self._flat += 1
                else:
                    current = []
                    stack.append(current)
            elif closed:
                if self._flat:
                    self._flat -= 1
                elif len(stack) == 1:
                    self.errors.append("unbalanced ')'")
                else:
                    inner = stack.pop()
                    current = stack[-1]
                    self.add(tuple(inner))
            elif literal:
                m = _LITERAL.match(literal)
                assert m is not None
                return LiteralMarker(
                    size=int(m.group(1)),
                    sync=not m.group(2),
                    binary=literal[:1] == b"~",
                    minus=m.group(2) == b"-",
                )
        return None

    def finish(self) -> tuple[Token, ...]:
        """The top-level tokens; lists left open are closed (and reported in `errors`)."""
        if len(self._stack) > 1:
            self.errors.append(f"{len(self._stack) - 1} unclosed '('")
            while len(self._stack) > 1:
                inner = self._stack.pop()
                self._stack[-1].append(tuple(inner))
        return tuple(self._stack[0])


def tokenize(raw: bytes) -> tuple[Token, ...]:
    """Tokens of one line with no literal (a response code's arguments, a SASL-free line)."""
    builder = TokenBuilder()
    marker = builder.add_segment(raw)
    if marker is not None:  # no literal can follow here: keep the marker as text
        builder.add(Atom(to_text(raw[raw.rfind(b"{") :])))
    return builder.finish()


def nstring(token: Token | None) -> bytes | None:
    """A string's bytes; None for NIL, a list or nothing; an atom's text (astring) as bytes."""
    if isinstance(token, bytes):
        return token
    if isinstance(token, Atom):
        return None if token.upper() == "NIL" else token.encode("utf-8", "surrogateescape")
    return None


def text_of(token: Token | None) -> str:
    """Display text of an astring/nstring token ("" for NIL, lists and streamed literals)."""
    if isinstance(token, Atom):
        return str(token)
    if isinstance(token, bytes):
        return to_text(token[:MAX_LINE])
    return ""


def decode_mailbox(raw: bytes, utf8: bool = False) -> str:
    """A mailbox name: modified UTF-7 (RFC 3501 5.1.3) undone, or UTF-8 (RFC 6855 3, `utf8`).

    `&Jjo-` is U+263A; `&-` is `&`. A malformed shift sequence is kept as sent. Never raises.
    """
    if utf8 or b"&" not in raw:
        return to_text(raw)
    out: list[str] = []
    i, n = 0, len(raw)
    while i < n:
        j = raw.find(b"&", i)
        if j < 0:
            out.append(to_text(raw[i:]))
            break
        out.append(to_text(raw[i:j]))
        k = raw.find(b"-", j + 1)
        if k < 0:
            out.append(to_text(raw[j:]))
            break
        if k == j + 1:
            out.append("&")
        else:
            b64 = raw[j + 1 : k].replace(b",", b"/")
            try:
                text = base64.b64decode(b64 + b"=" * (-len(b64) % 4), validate=True)
                out.append(text.decode("utf-16-be"))
            except (binascii.Error, ValueError):
                out.append(to_text(raw[j : k + 1]))
        i = k + 1
    return "".join(out)
