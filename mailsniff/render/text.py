"""Terminal-safe text: captured strings with control and bidi characters escaped (ECMA-48, UAX #9).

Every string that came off the wire passes through `safe_text` before it reaches a terminal:
ESC, the other C0 and C1 controls and DEL could move the cursor, recolour or retitle the
terminal (ECMA-48 / ISO 6429), and the Unicode bidi overrides and isolates (UAX #9) could make
a displayed address read differently from the bytes that were sent. The escapes are for display
only; JSON output keeps the exact values.

Backslashes are not doubled: `DOMAIN\\user` stays readable, at the price of `\\x1b` typed
literally looking like an escaped ESC.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

from mailsniff.model import timestamp_in_range

__all__ = [
    "ELLIPSIS",
    "UNSAFE_CHARACTERS",
    "format_clock",
    "format_duration",
    "format_size",
    "format_timestamp",
    "timestamp_in_range",
    "is_unsafe",
    "safe_text",
    "shorten",
]

ELLIPSIS = "\u2026"

_NAMED_ESCAPES: Final = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}

#: Format characters that reorder or isolate text (UAX #9 explicit directional formatting
#: characters and marks), plus the Unicode line and paragraph separators, which some terminals
#: treat as line breaks.
_BIDI_AND_SEPARATORS: Final = frozenset(
    [chr(c) for c in range(0x202A, 0x202F)]  # LRE RLE PDF LRO RLO
    + [chr(c) for c in range(0x2066, 0x206A)]  # LRI RLI FSI PDI
    + ["\u200e", "\u200f", "\u061c"]  # LRM RLM ALM
    + ["\u2028", "\u2029"]  # LINE / PARAGRAPH SEPARATOR
)

#: Every character `safe_text` replaces by a visible escape (surrogates are handled by range).
UNSAFE_CHARACTERS = (
    frozenset(
        [chr(c) for c in range(0x00, 0x20)]  # C0, ESC included
        + ["\x7f"]  # DEL
        + [chr(c) for c in range(0x80, 0xA0)]  # C1 (CSI 0x9b, OSC 0x9d ...)
    )
    | _BIDI_AND_SEPARATORS
)


#: Lone surrogates (mypyc takes no surrogate in a string literal).
_SURROGATES: Final = (chr(0xD800), chr(0xDFFF))


def is_unsafe(ch: str) -> bool:
    """True for a character that must never reach a terminal as itself."""
    return ch in UNSAFE_CHARACTERS or _SURROGATES[0] <= ch <= _SURROGATES[1]


def _escape(ch: str) -> str:
    named = _NAMED_ESCAPES.get(ch)
    if named is not None:
        return named
    code = ord(ch)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"


def safe_text(s: str) -> str:
    """Return `s` with every control, bidi and lone-surrogate character escaped visibly.

    Args:
        s: captured text (a banner, an address, a header value, a transcript line ...).

    Returns:
        The same text with `\\x1b`, `\\x9b`, `\\u202e`, `\\t`, `\\r`, `\\n` ... written out,
        so the terminal shows what was sent instead of obeying it. Printable text (any script)
        is unchanged. Never raises.
    """
    if s.isprintable():
        # Fast path, the common case: every unsafe character is in category Cc, Cf, Cs, Zl or
        # Zp, none of which str.isprintable() accepts.
        return s
    return "".join(_escape(ch) if is_unsafe(ch) else ch for ch in s)


def shorten(s: str, width: int) -> str:
    """Cut `s` to at most `width` characters, ending with an ellipsis when something was cut."""
    if width <= 0:
        return ""
    if len(s) <= width:
        return s
    return s[: width - 1] + ELLIPSIS


#: Naive, read as UTC: `isoformat` then writes no offset, and the "Z" is added.
_EPOCH: Final = datetime(1970, 1, 1)
#: Seconds since the epoch -> "2006-07-03T13:07:18": a capture's times share few seconds.
_SECONDS: dict[int, str] = {}


def format_timestamp(ts_ns: int, *, micro: bool = True) -> str:
    """Nanoseconds since the epoch as text, the one form every output uses.

    ISO 8601 UTC, `2006-07-03T13:07:18.000000Z`, for years 1-9999; any other value (a damaged
    or forged capture) as `@` and the seconds since the epoch, `@18446744073.709551`, as
    GNU date's `@SECONDS`, so nothing is lost and it cannot be taken for a date.
    """
    seconds, rest = divmod(ts_ns, 1_000_000_000)
    # The microseconds as six digits, without a format spec (each one is a str.format call).
    fraction = "." + str(1_000_000 + rest // 1000)[1:] if micro else ""
    if not timestamp_in_range(ts_ns):
        return f"@{seconds}{fraction}"
    head = _SECONDS.get(seconds)
    if head is None:
        if len(_SECONDS) >= 4096:
            _SECONDS.clear()
        # isoformat (C) writes the year with four digits, as ISO 8601 wants.
        head = _SECONDS[seconds] = (_EPOCH + timedelta(seconds=seconds)).isoformat()
    return head + fraction + "Z"


def format_clock(ts_ns: int) -> str:
    """Time of day in UTC with microseconds, for transcripts: `13:07:18.123456`."""
    seconds, rest = divmod(ts_ns, 1_000_000_000)
    seconds %= 86_400
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}.{rest // 1000:06d}"


def format_duration(ns: int) -> str:
    """A duration for people: `0.004s`, `12.5s`, `3m07s`, `2h05m`."""
    if ns < 0:
        ns = 0
    seconds = ns / 1_000_000_000
    if seconds < 10:
        return f"{seconds:.3f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def format_size(n: int) -> str:
    """Octets with a binary unit: `354 B`, `31.9 KiB`, `26.4 MiB`."""
    if n < 1024:
        return f"{n} B"
    value = n / 1024
    for unit in ("KiB", "MiB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"
