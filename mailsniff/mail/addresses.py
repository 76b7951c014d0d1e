"""Address lists (RFC 5322 3.4, obsolete syntax of 4.4) parsed tolerantly from forged headers.

A small tokenizer rather than `email.utils.getaddresses`, so that what real senders write comes
out as a person would read it: the seed's `=?GBK?B?1cW3qw==?= :<tonanme@them.com>` (a stray colon
before the angle address) is one mailbox named 张帆, `undisclosed-recipients:;` is an empty group,
`team: a@x, b@y;` is two mailboxes, `"Doe, John" <j@x>` is one. Display names are RFC 2047
decoded. Parsing never raises; oddities are returned as defects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal

from mailsniff.limits import MAX_ADDRESSES
from mailsniff.mail.rfc2047 import ENCODED_WORD, decode_raw_header, decode_words, unfold
from mailsniff.model import Address

__all__ = ["MAX_ADDRESSES", "parse_address_header", "parse_address_list"]


_SPECIALS: Final = '()<>,;:"'
_WSP: Final = " \t\r\n"

TokenKind = Literal["atom", "quoted", "comment", "angle", "ws", ",", ";", ":"]


# `__init__` written out: the compiled build compiles it (see protocols/base.py).
@dataclass(slots=True, init=False)
class _Token:
    kind: TokenKind
    text: str

    def __init__(self, kind: TokenKind, text: str) -> None:
        self.kind = kind
        self.text = text


def _scan_delimited(text: str, start: int, close: str, defects: list[str]) -> tuple[str, int]:
    """Content of a quoted string (close '"') or angle address (close '>') from after its opener."""
    out: list[str] = []
    i = start
    while i < len(text):
        ch = text[i]
        if ch == "\\" and close == '"' and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
            continue
        if ch == close:
            return "".join(out), i + 1
        out.append(ch)
        i += 1
    defects.append("unterminated quoted string" if close == '"' else "unterminated '<'")
    return "".join(out), i


def _scan_comment(text: str, start: int, defects: list[str]) -> tuple[str, int]:
    depth = 1
    out: list[str] = []
    i = start
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return "".join(out), i + 1
        out.append(ch)
        i += 1
    defects.append("unterminated comment")
    return "".join(out), i


def _tokenize(text: str, defects: list[str]) -> list[_Token]:
    tokens: list[_Token] = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch in _WSP:
            j = i
            while j < n and text[j] in _WSP:
                j += 1
            tokens.append(_Token("ws", text[i:j]))
            i = j
        elif ch == '"':
            value, i = _scan_delimited(text, i + 1, '"', defects)
            tokens.append(_Token("quoted", value))
        elif ch == "<":
            value, i = _scan_delimited(text, i + 1, ">", defects)
            tokens.append(_Token("angle", value))
        elif ch == "(":
            value, i = _scan_comment(text, i + 1, defects)
            tokens.append(_Token("comment", value))
        elif ch in ",;:":
            tokens.append(_Token(ch, ch))  # type: ignore[arg-type]
            i += 1
        elif ch in ")>":
            defects.append(f"stray {ch!r} in address list")
            i += 1
        else:
            j = i
            while j < n and text[j] not in _SPECIALS and text[j] not in _WSP:
                if text.startswith("=?", j):
                    word = ENCODED_WORD.match(text, j)
                    if word is not None:  # an encoded word may hold specials: keep it whole
                        j = word.end()
                        continue
                j += 1
            tokens.append(_Token("atom", text[i:j]))
            i = j
    return tokens


# `__init__` written out: the compiled build compiles it (see protocols/base.py).
@dataclass(slots=True, init=False)
class _Mailbox:
    """One mailbox (or group name) of an address list, as its tokens are read."""

    words: list[_Token] = field(default_factory=list)  # atoms and quoted strings
    spaced: list[bool] = field(default_factory=list)  # per word: whitespace or comment before it
    comments: list[str] = field(default_factory=list)
    angle: str | None = None
    after_angle: bool = False

    def __init__(
        self,
        words: list[_Token] | None = None,
        spaced: list[bool] | None = None,
        comments: list[str] | None = None,
        angle: str | None = None,
        after_angle: bool = False,
    ) -> None:
        self.words = [] if words is None else words
        self.spaced = [] if spaced is None else spaced
        self.comments = [] if comments is None else comments
        self.angle = angle
        self.after_angle = after_angle

    def empty(self) -> bool:
        return not self.words and self.angle is None


def _phrase(words: list[_Token]) -> str:
    return " ".join(w.text for w in words)


def _clean_addr(addr: str) -> str:
    addr = "".join(addr.split())
    if addr.startswith("@") and ":" in addr:  # obsolete source route, RFC 5322 4.4
        addr = addr.split(":", 1)[1]
    return addr


def _runs(box: _Mailbox) -> list[str]:
    """The mailbox's words joined where nothing separates them; whitespace keeps words apart
    except around '.' and '@' (the obsolete `john . doe @ example.org`, RFC 5322 4.4)."""
    runs: list[str] = []
    for word, spaced in zip(box.words, box.spaced, strict=True):
        text = f'"{word.text}"' if word.kind == "quoted" else word.text
        if runs and (not spaced or runs[-1].endswith((".", "@")) or text.startswith((".", "@"))):
            runs[-1] += text
        else:
            runs.append(text)
    return runs


def _finish(box: _Mailbox, defects: list[str]) -> list[Address]:
    if box.empty():
        return []
    if box.angle is not None:
        name = _phrase(box.words)
        addresses = [_clean_addr(box.angle)]
    else:
        # addr-spec: rebuild it from its pieces (quoted local parts keep their quotes)
        runs = _runs(box)
        addresses = [r for r in runs if "@" in r]
        if not addresses:
            if len(runs) > 1:
                defects.append(f"no address in mailbox {' '.join(runs)[:60]!r}")
            addresses = [" ".join(runs)]
        else:
            if len(addresses) > 1:
                defects.append(f"no ',' between addresses {' '.join(addresses)[:60]!r}")
            other = [r for r in runs if "@" not in r]
            if other:
                defects.append(f"text beside address ignored: {' '.join(other)[:60]!r}")
        name = " ".join(box.comments)
    decoded, more = decode_words(name)
    defects.extend(more)
    return [Address(name=" ".join(decoded.split()), address=a) for a in addresses]


def _stray_colon(tokens: list[_Token], at: int) -> bool:
    """`phrase : <addr>` then end or ',' (the seed's malformed To) rather than a group."""
    significant: list[_Token] = []
    for index in range(at + 1, len(tokens)):
        tok = tokens[index]
        if tok.kind in ("ws", "comment"):
            continue
        significant.append(tok)
        if len(significant) == 2:
            break
    if not significant or significant[0].kind != "angle":
        return False
    return len(significant) == 1 or significant[1].kind == ","


def parse_address_list(text: str) -> tuple[list[Address], list[str]]:
    """Mailboxes of an address-list header value (unfolded or not, not yet RFC 2047 decoded).

    Group names are dropped; the group's members are returned. Never raises.
    """
    defects: list[str] = []
    text = unfold(text)
    tokens = _tokenize(text, defects)
    result: list[Address] = []
    box = _Mailbox()
    in_group = False

    def flush() -> None:
        nonlocal box
        for addr in _finish(box, defects):
            if len(result) < MAX_ADDRESSES:
                result.append(addr)
            else:
                defects.append(f"more than {MAX_ADDRESSES} addresses: the rest dropped")
        box = _Mailbox()

    spaced = False
    for index, tok in enumerate(tokens):
        kind = tok.kind
        if kind == "ws":
            spaced = True
            continue
        was_spaced, spaced = spaced, kind == "comment"
        if kind == "comment":
            box.comments.append(tok.text)
        elif kind == "angle":
            if box.angle is not None:
                defects.append("second angle address in one mailbox ignored")
            else:
                box.angle = tok.text
                box.after_angle = True
        elif kind == ",":
            flush()
        elif kind == ";":
            flush()
            if not in_group:
                defects.append("';' outside a group")
            in_group = False
        elif kind == ":":
            if box.angle is None and box.words and not in_group:
                if any("@" in w.text for w in box.words if w.kind == "atom"):
                    # an address cannot be a group's name: `a@x Subject: ...`
                    defects.append("unexpected ':' after an address")
                    flush()
                elif _stray_colon(tokens, index):
                    defects.append("stray ':' between display name and address")
                else:
                    box = _Mailbox()  # the group's name is not an address
                    in_group = True
            else:
                defects.append("unexpected ':' in address list")
        else:  # atom or quoted
            if box.after_angle:
                defects.append(f"text after angle address ignored: {tok.text[:40]!r}")
                continue
            box.words.append(tok)
            box.spaced.append(was_spaced)
    flush()
    if in_group:
        defects.append("group not terminated by ';'")
    return result, list(dict.fromkeys(defects))


def parse_address_header(raw: bytes) -> tuple[list[Address], list[str]]:
    """Mailboxes of a raw header value (bytes as captured, possibly 8-bit or folded)."""
    text, defects = decode_raw_header(raw)
    addresses, more = parse_address_list(text)
    return addresses, list(dict.fromkeys(defects + more))
