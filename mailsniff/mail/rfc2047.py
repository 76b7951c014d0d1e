"""RFC 2047 encoded-word decoding (RFC 2231 language tags), tolerant of real-world header bytes.

Decoding rules, chosen for mail as it is really sent rather than as RFC 2047 wishes it were:

- Adjacent encoded words (only whitespace, folding included, between them) lose that whitespace
  (RFC 2047 6.2), and when they share a charset their *bytes* are joined before decoding, so a
  multibyte character split across two words comes out whole.
- Words written with no whitespace around them (``=?a?B?..?==?a?B?..?=``, ``foo=?a?Q?..?=``) are
  decoded anyway, as most mail readers do.
- GB2312 / GBK labels are decoded as GB18030, a superset (real mail labels GBK text GB2312).
- An unknown or non-text charset is decoded as latin-1 and recorded as a defect.
- A word whose payload cannot be decoded at all is kept as literal text and recorded as a defect.
- Raw 8-bit header bytes (8BITMIME / SMTPUTF8) are decoded as UTF-8; else as GB18030 when they
  read as Chinese text in it (`detect_chinese`: every non-ASCII character CJK, two of them in a
  row; Chinese mail and servers send GBK unlabelled); else as windows-1252 (the stated fallback;
  bytes windows-1252 leaves undefined become their latin-1 characters).
"""

from __future__ import annotations

import binascii
import codecs
import functools
import re
from dataclasses import dataclass
from typing import Final

from mailsniff.limits import MAX_WORDS

__all__ = [
    "ENCODED_WORD",
    "decode_header_bytes",
    "decode_raw_header",
    "decode_words",
    "detect_chinese",
    "normalize_charset",
    "unfold",
]

#: Labels decoded with a superset codec (lower-case, as written in mail).
_CHARSET_ALIASES: dict[str, str] = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "cp936": "gb18030",
    "ms936": "gb18030",
    "windows-936": "gb18030",
    "gb_2312-80": "gb18030",
    "euc-cn": "gb18030",
    "x-euc-cn": "gb18030",
    "csgb2312": "gb18030",
    "chinese": "gb18030",
    "iso-8859-8-i": "iso-8859-8",
    "iso-8859-8-e": "iso-8859-8",
    "x-user-defined": "latin-1",
    "unknown-8bit": "latin-1",
    "x-unknown": "latin-1",
    "us-ascii": "latin-1",  # 8-bit bytes under an ASCII label are common; keep them visible
    "ascii": "latin-1",
    "ks_c_5601-1987": "cp949",
    "euc-kr": "cp949",
    "shift_jis": "cp932",
    "x-sjis": "cp932",
    "big5": "big5hkscs",
    "windows-874": "cp874",
    "tis-620": "cp874",
    "iso-8859-1": "windows-1252",  # WHATWG: mail labelled latin-1 is really windows-1252
    "latin1": "windows-1252",
}

# charset (optionally *language, RFC 2231 section 5), encoding, encoded text; no whitespace inside.
ENCODED_WORD = re.compile(r"=\?([^?\s*]+)(?:\*[^?\s]*)?\?([QqBb])\?([^?\s]*)\?=")
_FOLD: Final = re.compile(r"\r?\n(?=[ \t])")
_WSP_ONLY: Final = re.compile(r"[ \t\r\n]*")
_Q_ESCAPE: Final = re.compile(rb"=([0-9A-Fa-f]{2})")
_B64_JUNK: Final = re.compile(r"[^A-Za-z0-9+/]")


# A message names a few charsets, over and over: each label is looked up once (a bounded cache,
# since the labels come from the capture).
@functools.lru_cache(maxsize=256)
def normalize_charset(label: str) -> str | None:
    """The Python text codec name for a MIME charset label, or None when Python has none."""
    name = label.strip().strip('"').lower()
    name = _CHARSET_ALIASES.get(name, name)
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError, TypeError):
        return None
    # bytes-to-bytes codecs (base64, zlib, rot13, ...) are not charsets
    if not getattr(info, "_is_text_encoding", True):
        return None
    if info.name in ("idna", "punycode", "raw_unicode_escape", "unicode_escape"):
        return None
    return info.name


def _windows_1252(data: bytes) -> str:
    """windows-1252, where the five bytes it leaves undefined become their latin-1 characters."""
    text = data.decode("cp1252", errors="replace")
    if "\ufffd" not in text:
        return text
    return "".join(ch if ch != "\ufffd" else chr(b) for ch, b in zip(text, data, strict=True))


# What GBK/GB18030 Chinese text is made of beyond ASCII: CJK ideographs, CJK and general
# punctuation, fullwidth forms, circled numbers and box drawing.
_CHINESE: Final = re.compile(
    "[\u2000-\u206f\u2460-\u24ff\u2500-\u257f\u3000-\u303f\u3400-\u4dbf"
    "\u4e00-\u9fff\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef]"
)
_NON_ASCII: Final = re.compile("[^\x00-\x7f]+")
_TWO_IDEOGRAPHS: Final = re.compile("[\u3400-\u4dbf\u4e00-\u9fff]{2}")


def detect_chinese(raw: bytes) -> str | None:
    """`raw` decoded as GB18030 (a superset of GBK and GB2312) when it reads as Chinese text.

    Bytes that are not UTF-8 and decode strictly to nothing but ASCII and the characters of
    Chinese text, with at least two ideographs in a row (so that a word of latin-1 text with two
    accented letters side by side is not taken for one ideograph), else None.
    """
    try:
        text = raw.decode("gb18030")
    except UnicodeDecodeError:
        return None
    if _TWO_IDEOGRAPHS.search(text) is None:
        return None
    for run in _NON_ASCII.findall(text):
        if len(_CHINESE.findall(run)) != len(run):
            return None
    return text


def _decode_bytes(data: bytes, label: str, defects: list[str]) -> str:
    codec = normalize_charset(label)
    if codec is None:
        defects.append(f"unknown charset {label!r}: decoded as latin-1")
        return data.decode("latin-1")
    if codec == "cp1252":
        return _windows_1252(data)
    try:
        text = data.decode(codec, errors="strict")
    except (UnicodeError, LookupError, ValueError, TypeError):
        defects.append(f"bytes invalid in charset {label!r}")
        try:
            text = data.decode(codec, errors="replace")
        except (UnicodeError, LookupError, ValueError, TypeError):
            text = data.decode("latin-1")
    return text


def unfold(text: str) -> str:
    """RFC 5322 2.2.3 unfolding: drop each CRLF (or bare LF) that precedes whitespace."""
    if "\n" not in text and "\r" not in text:
        return text  # one line: most header values
    text = _FOLD.sub("", text)
    return text.replace("\r", "").replace("\n", "")


def _payload_bytes(encoding: str, payload: str, defects: list[str]) -> bytes | None:
    """The bytes an encoded word carries, or None when it is beyond repair."""
    if encoding in "Bb":
        cleaned = _B64_JUNK.sub("", payload.rstrip("="))
        if cleaned != payload.rstrip("="):
            defects.append("invalid characters in base64 encoded-word")
        if not cleaned and payload.strip("="):
            return None
        if len(cleaned) % 4 == 1:
            defects.append("base64 encoded-word of impossible length")
            cleaned = cleaned[:-1]
        cleaned += "=" * (-len(cleaned) % 4)
        try:
            return binascii.a2b_base64(cleaned.encode("ascii"))
        except (binascii.Error, ValueError):
            return None
    return _q_decode(payload.encode("utf-8", errors="surrogateescape"))


def _q_decode(raw: bytes) -> bytes:
    """Q encoding (RFC 2047 4.2): '_' is a space, =XX a byte, any other '=' kept as written."""
    if raw.find(b"==") < 0 and not raw.endswith(b"="):  # find: see decode_header_bytes
        # binascii reads the rest exactly so (it only differs on '==' and a final '=')
        return binascii.a2b_qp(raw, header=True)
    return _Q_ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), raw.replace(b"_", b" "))


# `__init__` written out: the compiled build compiles it (see protocols/base.py).
@dataclass(slots=True, init=False)
class _Word:
    charset: str  # as written
    data: bytes

    def __init__(self, charset: str, data: bytes) -> None:
        self.charset = charset
        self.data = data


def decode_words(text: str) -> tuple[str, list[str]]:
    """Decode every RFC 2047 encoded word in (possibly folded) header text.

    Returns the decoded text and the defects found. Never raises.
    """
    defects: list[str] = []
    text = unfold(text)
    if "=?" not in text:
        return text, defects
    # Segments: str for literal text, _Word for a decoded word.
    segments: list[str | _Word] = []
    pos = 0
    for count, match in enumerate(ENCODED_WORD.finditer(text)):
        if count >= MAX_WORDS:
            defects.append("too many encoded-words: the rest left encoded")
            break
        data = _payload_bytes(match.group(2), match.group(3), defects)
        if data is None:
            defects.append(f"malformed encoded-word kept literally: {match.group(0)[:60]!r}")
            continue  # left in the literal text
        if match.start() > pos:
            segments.append(text[pos : match.start()])
        segments.append(_Word(match.group(1), data))
        pos = match.end()
    if pos < len(text):
        segments.append(text[pos:])

    # Drop whitespace-only literals between two words (RFC 2047 6.2).
    kept: list[str | _Word] = []
    for i, seg in enumerate(segments):
        if (
            isinstance(seg, str)
            and 0 < i < len(segments) - 1
            and isinstance(segments[i - 1], _Word)
            and isinstance(segments[i + 1], _Word)
            and _WSP_ONLY.fullmatch(seg)
        ):
            continue
        kept.append(seg)

    out: list[str] = []
    run: _Word | None = None  # adjacent words of one charset, bytes joined
    for seg in kept:
        if isinstance(seg, _Word):
            if run is not None and _same_charset(run.charset, seg.charset):
                run.data += seg.data
                continue
            if run is not None:
                out.append(_decode_bytes(run.data, run.charset, defects))
            run = _Word(seg.charset, seg.data)
        else:
            if run is not None:
                out.append(_decode_bytes(run.data, run.charset, defects))
                run = None
            out.append(seg)
    if run is not None:
        out.append(_decode_bytes(run.data, run.charset, defects))
    return "".join(out), _dedupe(defects)


def _same_charset(a: str, b: str) -> bool:
    if a.lower() == b.lower():
        return True
    na, nb = normalize_charset(a), normalize_charset(b)
    return na is not None and na == nb


def _dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def decode_raw_header(raw: bytes) -> tuple[str, list[str]]:
    """Header bytes as text: ASCII or UTF-8 as is, else Chinese text in GB18030, else
    windows-1252 (either recorded as a defect)."""
    try:
        return raw.decode("utf-8"), []
    except UnicodeDecodeError:
        pass
    chinese = detect_chinese(raw)
    if chinese is not None:
        return chinese, ["8-bit header bytes not UTF-8: decoded as GB18030"]
    return _windows_1252(raw), ["8-bit header bytes not UTF-8: decoded as windows-1252"]


def decode_header_bytes(raw: bytes) -> tuple[str, list[str]]:
    """A raw header value (bytes, possibly folded and 8-bit) fully decoded for display."""
    # `find`, not `in`: a bytes `in` first tries its operand as an integer, and builds and
    # drops a TypeError each time (this runs for every header of every message).
    if raw.isascii() and raw.find(b"=?") < 0 and raw.find(b"\r") < 0 and raw.find(b"\n") < 0:
        return raw.decode("ascii").strip(" \t"), []  # nothing to decode, unfold or record
    text, defects = decode_raw_header(raw)
    decoded, more = decode_words(text)
    return decoded.strip(" \t"), _dedupe(defects + more)
