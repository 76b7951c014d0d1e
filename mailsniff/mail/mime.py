"""Message bytes -> Message record (RFC 5322, 2045-2049, 2231), fast walker + stdlib email.

The top-level header block is split and read here, from the raw bytes: header names are matched
case-insensitively, obsolete `Name WSP :` fields (RFC 5322 4.5, the seed's `FROM : cccc@163.com`)
are normalised to `Name:` before the stdlib parser sees them (it would otherwise take them for the
start of the body), and every value keeps its raw bytes. The MIME structure is read by a walker
over the raw bytes (delimiter lines found with bytes.find, only attachments decoded, by binascii)
that reproduces `email` with `policy.compat32` exactly; header parameters (RFC 2231) are still
read by `email.message.Message`, and anything the walker does not reproduce goes to the stdlib
parser whole. compat32 returns raw header values so that all decoding stays here, in `rfc2047`
and in `addresses`. It is the documented default policy of `Message` and `BytesParser`, so
neither is given one: `email.policy`, with its header registry, is never imported (4 ms of every
command's start-up).
"""

from __future__ import annotations

import binascii
import hashlib
import re
from dataclasses import dataclass, field
from email import errors
from email.errors import MessageDefect
from email.message import Message as EmailMessage
from email.parser import BytesParser
from email.utils import collapse_rfc2231_value
from typing import Any, Final, cast

import pybase64

from mailsniff.limits import MAX_DEFECTS, MAX_DEPTH, MAX_HEADERS, MAX_MESSAGE, MAX_PARTS
from mailsniff.mail.addresses import parse_address_header
from mailsniff.mail.rfc2047 import decode_header_bytes, decode_raw_header, decode_words
from mailsniff.mail.rfc2231 import ParamMessage
from mailsniff.model import Address, Attachment, Message
from mailsniff.sink import MessageSink, OpenSink, RawSink

__all__ = [
    "MAX_DEFECTS",
    "MAX_DEPTH",
    "MAX_HEADERS",
    "MAX_PARTS",
    "HeaderField",
    "MessageAccumulator",
    "MessageSink",
    "OpenSink",
    "RawSink",
    "attachment_payloads",
    "body_sha256",
    "parse_message",
    "split_header_fields",
]


# field-name = 1*ftext (printable US-ASCII except ':'), RFC 5322 3.6.8; WSP before ':' is the
# obsolete syntax of RFC 5322 4.5.
_FIELD: Final = re.compile(rb"([\x21-\x39\x3b-\x7e]+)([ \t]*):")
_LINE: Final = re.compile(rb"[^\n]*\n|[^\n]+")

# A continuation line written like a header field of its own: `    Subject: hi` folded into From.
_HEADER_LIKE: Final = re.compile(rb"\r?\n[ \t]+([A-Za-z][A-Za-z0-9-]*)[ \t]*:")
_COMMON_FIELDS: Final = {
    "from", "sender", "reply-to", "to", "cc", "bcc", "subject", "date", "message-id",
    "in-reply-to", "references", "received", "return-path", "mime-version", "content-type",
    "content-transfer-encoding", "content-disposition", "user-agent", "organization",
}  # fmt: skip

_ADDRESS_FIELDS: Final = {
    "from": "from_",
    "sender": "sender",
    "reply-to": "reply_to",
    "to": "to",
    "cc": "cc",
    "bcc": "bcc",
}


# `__init__` written out: the compiled build compiles it (see protocols/base.py).
@dataclass(slots=True, init=False)
class HeaderField:
    """One top-level header field as captured."""

    name: str  # as written (without any whitespace before the colon)
    raw_value: bytes  # after the colon, 8-bit bytes kept, folded lines joined by CRLF
    value: str  # decoded for display (8-bit and RFC 2047 undone, unfolded, trimmed)

    def __init__(self, name: str, raw_value: bytes, value: str) -> None:
        self.name = name
        self.raw_value = raw_value
        self.value = value


@dataclass(slots=True)
class _HeaderBlock:
    fields: list[HeaderField]
    normalised: bytes  # header block as handed to the stdlib parser, ending with an empty line
    body: bytes
    defects: list[str]
    body_start: int  # offset of `body` in the raw message
    #: Per field: (offset of its value after the colon, offset just past its last line).
    spans: list[tuple[int, int]] = field(default_factory=list)


def split_header_fields(raw: bytes) -> tuple[list[HeaderField], bytes, list[str]]:
    """Top-level header fields, the body bytes, and the defects found. Never raises."""
    block = _split(raw)
    return block.fields, block.body, block.defects


def _split(raw: bytes) -> _HeaderBlock:
    defects: list[str] = []
    # (name, raw lines of the field) while scanning
    pending: list[tuple[bytes, list[bytes]]] = []
    spans: list[list[int]] = []
    normalised: list[bytes] = []
    body_start = len(raw)
    dropped = 0
    first = True
    skipping = False
    for match in _LINE.finditer(raw):
        line = match.group(0)
        content = line.rstrip(b"\r\n")
        if not content.strip(b" \t") and not content.startswith((b" ", b"\t")):
            body_start = match.end()  # the empty line: body follows
            break
        if content.strip(b" \t") == b"":
            # whitespace-only line: RFC 5322 forbids it inside a field; treat as the separator
            defects.append("whitespace-only line ends the header block")
            body_start = match.end()
            break
        if content[:1] in (b" ", b"\t"):
            if skipping:
                continue
            if pending:
                pending[-1][1].append(content)
                spans[-1][1] = match.end()
                normalised.append(content + b"\r\n")
            else:
                defects.append("continuation line before any header")
            continue
        field = _FIELD.match(content)
        if field is None and first and content.startswith(b"From "):
            defects.append("mbox 'From ' line skipped")  # unix-from envelope line
            first = False
            continue
        first = False
        if field is None:
            defects.append("no empty line between header and body")
            body_start = match.start()
            break
        name, space = field.group(1), field.group(2)
        if space:
            written = (name[:40] + space + b":").decode("ascii")
            defects.append(f"obsolete header syntax: {written!r}")
        skipping = len(pending) >= MAX_HEADERS
        if skipping:
            dropped += 1
            continue
        value = content[field.end() :]
        pending.append((name, [value]))
        spans.append([match.start() + field.end(), match.end()])
        normalised.append(name + b":" + value + b"\r\n")
    if dropped:
        defects.append(f"more than {MAX_HEADERS} header fields: {dropped} dropped")

    fields: list[HeaderField] = []
    for name, lines in pending:
        raw_value = b"\r\n".join(lines)
        text, more = decode_header_bytes(raw_value)
        defects.extend(f"{name.decode('ascii')}: {d}" for d in more)
        fields.append(HeaderField(name.decode("ascii"), raw_value, text))
    normalised.append(b"\r\n")
    return _HeaderBlock(
        fields,
        b"".join(normalised),
        raw[body_start:],
        defects,
        body_start,
        [(a, b) for a, b in spans],
    )


def _defect_text(defect: object) -> str:
    if isinstance(defect, _TooDeepDefect):
        return _TOO_DEEP
    if isinstance(defect, _TooManyDefect):
        return _TOO_MANY
    name = type(defect).__name__.removesuffix("Defect")
    words = re.sub(r"(?<!^)(?=[A-Z])", " ", name).lower()
    return f"MIME: {words}"


def _parameter_view(part: EmailMessage) -> EmailMessage:
    """A copy of the part's Content-Type/-Disposition with 8-bit bytes decoded (UTF-8, else
    windows-1252): compat32 would turn raw 8-bit parameter values into U+FFFD."""
    view = ParamMessage()
    for name, value in part.raw_items():
        if name.lower() in ("content-type", "content-disposition"):
            text, _ = decode_raw_header(str(value).encode("utf-8", errors="surrogateescape"))
            view[name] = text
    return view


def _filename(part: EmailMessage) -> str | None:
    """Content-Disposition filename, else Content-Type name (RFC 2231 and RFC 2047 undone)."""
    for key, value in part.raw_items():
        # both parameters (and their RFC 2231 sections) are named "...name..."; no parameter
        # can be found without the letters (lower() maps no non-ASCII letter to n/a/m/e)
        if key.lower() in ("content-type", "content-disposition") and "name" in value.lower():
            break
    else:
        return None
    try:
        view = _parameter_view(part)
        name = view.get_filename()
        if name is None:
            param = view.get_param("name")
            if isinstance(param, tuple):
                name = collapse_rfc2231_value(param)
            elif isinstance(param, str):
                name = param
    except (LookupError, ValueError, TypeError, UnicodeError, IndexError):
        return None
    if name is None:
        return None
    decoded, _ = decode_words(str(name))
    return decoded


def _disposition(part: EmailMessage) -> str | None:
    # compat32 gives an email.header.Header, not a str, for a value with 8-bit bytes (the
    # stubs say str): called through Any, so that compiled code does not check it for a str.
    value: object = cast(Any, part).get("content-disposition")
    if value is None:
        return None
    text = str(value).split(";", 1)[0].strip().lower()
    return text or None


def _payload_bytes(part: EmailMessage, linesep: str) -> bytes:
    """The decoded body of a leaf part; for message/rfc822 the inner message re-serialised."""
    if part.get_content_type() == "message/rfc822" or part.is_multipart():
        inner = part.get_payload()
        if isinstance(inner, list) and inner and isinstance(inner[0], EmailMessage):
            serialise = inner[0].policy.clone(max_line_length=0, linesep=linesep)
            return inner[0].as_bytes(policy=serialise)
        return b""
    data = part.get_payload(decode=True)
    return data if isinstance(data, bytes) else b""


def _is_attachment(part: EmailMessage, filename: str | None, is_root: bool) -> bool:
    return _listed(_disposition(part), part.get_content_type(), filename, is_root)


def _listed(disposition: str | None, ctype: str, filename: str | None, is_root: bool) -> bool:
    if disposition == "attachment" or filename is not None:
        return True
    if ctype == "message/rfc822":
        return True
    maintype = ctype.split("/")[0]  # as Message.get_content_maintype
    return not is_root and maintype not in ("text", "multipart")


def _walk(
    root: EmailMessage, msg: Message, linesep: str, payloads: list[bytes] | None = None
) -> None:
    """Depth-first over the MIME tree, bounded; message/rfc822 parts are listed, not entered.

    With `payloads`, each listed attachment's decoded bytes are appended to it too.
    """
    stack: list[tuple[EmailMessage, bool, int]] = [(root, True, 0)]
    walked = 0
    defects: list[str] = []
    while stack:
        part, is_root, depth = stack.pop()
        if depth > MAX_DEPTH and _TOO_DEEP not in defects:
            defects.append(_TOO_DEEP)
        walked += 1
        if walked > MAX_PARTS:
            defects.append(f"more than {MAX_PARTS} MIME parts: the rest not listed")
            break
        if part.get_content_type() != "message/rfc822" and part.is_multipart():
            defects.extend(_defect_text(d) for d in part.defects)
            children = part.get_payload()
            if isinstance(children, list):
                stack.extend(
                    (c, False, depth + 1) for c in reversed(children) if isinstance(c, EmailMessage)
                )
            continue
        filename = _filename(part)
        if not _is_attachment(part, filename, is_root):
            defects.extend(_defect_text(d) for d in part.defects)
            continue
        data = _payload_bytes(part, linesep)  # decoding may add defects to the part
        defects.extend(_defect_text(d) for d in part.defects)
        if payloads is not None:
            payloads.append(data)
        msg.attachments.append(
            Attachment(
                filename=filename,
                content_type=part.get_content_type(),
                size=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                disposition=_disposition(part),
            )
        )
    msg.defects.extend(defects)


def _header_like_lines(raw_value: bytes) -> tuple[list[str], int]:
    """Names of the folded continuation lines that read as header fields of their own, and
    where the first of them starts (len(raw_value) when none does)."""
    names: list[str] = []
    cut = len(raw_value)
    if raw_value.find(b"\n") < 0:  # find, not `in`: see rfc2047.decode_header_bytes
        return names, cut
    for match in _HEADER_LIKE.finditer(raw_value):
        name = match.group(1).decode("ascii")
        if name.lower() in _COMMON_FIELDS or (name[:2].lower() == "x-" and len(name) > 2):
            cut = min(cut, match.start())
            names.append(name)
    return names, cut


def _fill_headers(fields: list[HeaderField], msg: Message) -> None:
    seen: dict[str, int] = {}
    for f in fields:
        key = f.name.lower()
        seen[key] = seen.get(key, 0) + 1
        msg.headers.append((f.name, f.value))
        attr = _ADDRESS_FIELDS.get(key)
        header_like, cut = _header_like_lines(f.raw_value)
        if header_like:
            listed = ", ".join(dict.fromkeys(header_like))
            unread = " (not read as addresses)" if attr is not None else ""
            msg.defects.append(
                f"{f.name}: folded continuation lines look like headers: {listed}{unread}"
            )
        if attr is not None:
            addresses, defects = parse_address_header(f.raw_value[:cut])
            target: list[Address] = getattr(msg, attr)
            target.extend(addresses)
            msg.defects.extend(f"{f.name}: {d}" for d in defects)
        elif key == "subject" and msg.subject is None:
            msg.subject = f.value
        elif key == "date" and msg.date is None:
            msg.date = f.value
        elif key == "message-id" and msg.message_id is None:
            msg.message_id = f.value
    for key in ("from", "sender", "subject", "date", "message-id", "to", "cc"):
        if seen.get(key, 0) > 1:
            msg.defects.append(f"{seen[key]} {key} headers")


def parse_message(raw: bytes) -> Message:
    """Parse a whole message (headers and body). Never raises on hostile input."""
    return _parse(raw, len(raw), hashlib.sha256(raw).hexdigest())


def _cut_at_gaps(raw: bytes, block: _HeaderBlock, gaps: list[int]) -> None:
    """A header field that a capture gap fell inside keeps only its bytes before the gap.

    Joining the bytes on both sides would report a value that was never sent (a Message-ID
    made of two halves); the part before the gap is what was really seen.
    """
    for i, (start, end) in enumerate(block.spans):
        cut = next((g for g in gaps if start <= g < end), None)
        if cut is None:
            continue
        f = block.fields[i]
        raw_value = raw[start:cut].rstrip(b"\r\n")
        text, _ = decode_header_bytes(raw_value)
        block.fields[i] = HeaderField(f.name, raw_value, text)
        block.defects.append(f"{f.name}: cut by a capture gap, only the part before it is shown")


def _parse(raw: bytes, size: int, sha256: str, gaps: list[int] | None = None) -> Message:
    msg = Message(size=size, sha256=sha256)
    block = _split(raw)
    if gaps:
        _cut_at_gaps(raw, block, gaps)
    msg.defects.extend(block.defects)
    _fill_headers(block.fields, msg)
    try:
        _mime(block, raw, msg)
    except RecursionError:
        msg.defects.append("MIME structure unreadable: RecursionError (nesting too deep)")
    except Exception as exc:  # the stdlib parser meets hostile bytes here: never raise
        msg.defects.append(f"MIME structure unreadable: {type(exc).__name__}")
    msg.defects[:] = list(dict.fromkeys(msg.defects))[:MAX_DEFECTS]
    return msg


def _root_head(block: _HeaderBlock) -> EmailMessage:
    """The top-level header fields as `BytesParser(policy=compat32)` reads `block.normalised`.

    Built from the fields already split when no bare CR can make feedparser split a line
    differently: every line of `normalised` is then `name:value`, a continuation or the final
    empty line, which it reads without defects into these same (name, value) pairs.
    """
    normalised = block.normalised
    if normalised.count(b"\r") != normalised.count(b"\r\n"):
        return BytesParser(ParamMessage).parsebytes(normalised, headersonly=True)
    head = ParamMessage()
    for f in block.fields:
        # compat32 header_source_parse: value.lstrip(' \t') ... .rstrip('\r\n')
        value = f.raw_value.lstrip(b" \t").rstrip(b"\r\n")
        head[f.name] = value.decode("ascii", "surrogateescape")
    return head


def _mime(
    block: _HeaderBlock, raw: bytes, msg: Message, payloads: list[bytes] | None = None
) -> None:
    """Attachments and MIME defects into `msg` (and, with `payloads`, each attachment's bytes):
    the fast walker; the stdlib parser where only it reads exactly; the walker again, tolerant,
    where the stdlib parser fails on nesting too deep for it."""
    head = _root_head(block)
    if head.get_content_maintype() not in ("multipart", "message") and not _is_attachment(
        head, _filename(head), is_root=True
    ):
        msg.defects.extend(_defect_text(d) for d in head.defects)
        return  # a single body part: nothing to list, no need to parse the body
    try:
        _mime_fast(head, block, raw, msg, payloads)
        return
    except _Fallback:
        pass
    read = Message(size=msg.size, sha256=msg.sha256)
    found: list[bytes] = []
    try:
        _mime_stdlib(block, raw, read, found)
    except RecursionError:
        _mime_fast(head, block, raw, msg, payloads, strict=False)
        msg.defects.append("MIME structure nested too deep to read exactly: read tolerantly")
        return
    except Exception:
        _keep(read, found, msg, payloads)  # what was listed before the failure
        raise
    _keep(read, found, msg, payloads)


def _keep(read: Message, found: list[bytes], msg: Message, payloads: list[bytes] | None) -> None:
    msg.attachments.extend(read.attachments)
    msg.defects.extend(read.defects)
    if payloads is not None:
        payloads.extend(found)


def _mime_stdlib(
    block: _HeaderBlock, raw: bytes, msg: Message, payloads: list[bytes] | None = None
) -> None:
    """The reference walk: the stdlib parser over the whole message."""
    parsed = BytesParser(ParamMessage).parsebytes(block.normalised + block.body)
    linesep = "\r\n" if raw[: raw.find(b"\n") + 1].endswith(b"\r\n") else "\n"
    _walk(parsed, msg, linesep, payloads)


def attachment_payloads(raw: bytes) -> list[tuple[Attachment, bytes]]:
    """Every attachment `parse_message(raw)` lists, with its decoded bytes. Never raises.

    The same walk as `parse_message`, so the records are the ones it returns; for export, where
    the bytes themselves are wanted.
    """
    msg = Message(size=len(raw), sha256="")
    payloads: list[bytes] = []
    try:
        _mime(_split(raw), raw, msg, payloads)
    except Exception:  # hostile bytes: what was decoded before the failure is kept
        pass
    return list(zip(msg.attachments, payloads, strict=False))


# -- the fast walker ------------------------------------------------------------------------
#
# It reads the MIME tree exactly as `email.feedparser` does (same delimiter lines, same part
# bodies, same defects, same decoding) but over the raw bytes with bytes.find, and decodes only
# the parts listed as attachments. Whatever it does not reproduce exactly raises _Fallback and
# the whole message goes to the stdlib parser instead: message/* parts
# (parsed as nested messages), malformed part header blocks, uuencode, boundaries that are not
# ASCII. Multiparts nested deeper than MAX_DEPTH are not split level by level (a scan of the
# region per level, and recursion in the stdlib parser): the region below the bound is read in
# one pass over its delimiter lines, every leaf part listed, the bound reported. When the stdlib
# parser cannot read a message either (RecursionError), the walker reads it again tolerantly
# (`_Walk.strict` False). Bare CRs (which feedparser also takes for line ends)
# are looked for only where they would change the reading: in header blocks, on delimiter lines
# and just before a delimiter; inside a body they change nothing the walk reports.


# feedparser's headerRE without its 'From ' and continuation branches
_PART_FIELD: Final = re.compile(rb"[\x21-\x39\x3b-\x7e]*:")
_UUENCODE: Final = ("x-uuencode", "uuencode", "uue", "x-uue")
_BASE64_ALPHABET_CHECK: Final = re.compile(rb"[A-Za-z0-9+/]*={0,2}")


class _Fallback(Exception):
    """The fast walker met something only the stdlib parser reads exactly."""


class _TooDeepDefect(MessageDefect):
    """Multipart nesting beyond MAX_DEPTH: the parts below listed without their structure."""


class _TooManyDefect(MessageDefect):
    """More than MAX_PARTS parts met below the nesting bound."""


_TOO_DEEP: Final = (
    f"MIME: nesting deeper than {MAX_DEPTH} levels, the parts below listed without it"
)
_TOO_MANY: Final = f"more than {MAX_PARTS} MIME parts: the rest not listed"


# `__init__` written out: the compiled build compiles it (see protocols/base.py).
@dataclass(slots=True, init=False)
class _Walk:
    strict: bool = True  # False: read what only the stdlib reads exactly as best we can
    count: int = 1  # parts made so far (the root counts)

    def __init__(self, strict: bool = True, count: int = 1) -> None:
        self.strict = strict
        self.count = count


@dataclass(slots=True, init=False)
class _Part:
    head: EmailMessage  # the part's header fields only
    ctype: str  # head.get_content_type()
    start: int  # body (leaf) or region (multipart) in the raw message
    end: int
    defects: list[MessageDefect]
    children: list[_Part] | None = None  # None: a leaf, whose payload is raw[start:end]

    def __init__(
        self,
        head: EmailMessage,
        ctype: str,
        start: int,
        end: int,
        defects: list[MessageDefect],
        children: list[_Part] | None = None,
    ) -> None:
        self.head = head
        self.ctype = ctype
        self.start = start
        self.end = end
        self.defects = defects
        self.children = children


def _field_value(raw: bytes, start: int, end: int) -> str:
    # compat32 header_source_parse: value.lstrip(' \t') ... .rstrip('\r\n')
    return raw[start:end].lstrip(b" \t").rstrip(b"\r\n").decode("ascii", "surrogateescape")


def _part_head(
    raw: bytes, start: int, end: int, in_digest: bool, strict: bool = True
) -> tuple[EmailMessage, int]:
    """A part's header fields and where its body starts, as feedparser reads them.

    Not strict: a line that is no header field starts the body, other oddities are skipped.
    """
    head = ParamMessage()
    if in_digest:
        head.set_default_type("message/rfc822")
    pos = start
    name: str | None = None
    value_start = value_end = 0
    while pos < end:
        nl = raw.find(b"\n", pos, end)
        line_end = nl + 1 if nl >= 0 else end
        cr = raw.find(b"\r", pos, line_end)
        if cr >= 0 and cr != nl - 1 and strict:
            raise _Fallback  # a bare CR ends a line for feedparser
        first = raw[pos]
        if first in (0x0D, 0x0A):  # the empty line
            pos = line_end
            break
        if first in (0x20, 0x09):
            if name is None:
                if strict:
                    raise _Fallback  # continuation before any field
            else:
                value_end = line_end
        else:
            field = _PART_FIELD.match(raw, pos, line_end)
            if field is None or field.end() == pos + 1 or raw.startswith(b"From ", pos):
                if strict:
                    raise _Fallback  # no separator line, 'From ' line or empty field name
                break  # the body starts here
            if name is not None:
                head[name] = _field_value(raw, value_start, value_end)
            name = raw[pos : field.end() - 1].decode("ascii")
            value_start, value_end = field.end(), line_end
        pos = line_end
    if name is not None:
        head[name] = _field_value(raw, value_start, value_end)
    return head, pos


def _delimiter(
    raw: bytes, sep: bytes, pos: int, end: int, strict: bool = True
) -> tuple[int, int, bool] | None:
    """The next `--boundary[--][WSP]` line at or after `pos` (a line start) before `end`:
    (line start, line end, is the close delimiter)."""
    while True:
        at = raw.find(sep, pos, end)
        if at < 0:
            return None
        if at == pos or raw[at - 1] == 0x0A:
            nl = raw.find(b"\n", at + len(sep), end)
            stop = nl if nl >= 0 else end
            rest = raw[at + len(sep) : stop]
            close = rest.startswith(b"--")
            if close:
                rest = rest[2:]
            if rest.endswith(b"\r"):
                rest = rest[:-1]
            if strict and rest.find(b"\r") >= 0:
                raise _Fallback  # a bare CR ends a line for feedparser
            if not rest.strip(b" \t\r"):
                return at, (nl + 1 if nl >= 0 else end), close
        pos = at + 1


def _leaf(raw: bytes, start: int, end: int, in_digest: bool, walk: _Walk) -> _Part:
    """The part between two delimiter lines; a multipart's region is split by _fill_multipart."""
    head, body = _part_head(raw, start, end, in_digest, walk.strict)
    ctype = head.get_content_type()
    maintype = ctype.split("/")[0]
    if maintype == "message" and walk.strict:
        raise _Fallback  # feedparser parses it as a nested message
    part = _Part(head, ctype, body, end, [])
    if maintype == "multipart":
        pass
    elif raw.endswith(b"\r\n", body, end):  # the last line ending belongs to the delimiter
        part.end -= 2
    elif raw.endswith((b"\n", b"\r"), body, end):
        part.end -= 1
    return part


@dataclass(slots=True)
class _Split:
    """A multipart being split: its separator, where its next part starts, its children so far."""

    part: _Part
    sep: bytes
    pos: int
    depth: int
    children: list[_Part]


def _open_multipart(part: _Part, raw: bytes, depth: int, walk: _Walk) -> _Split | None:
    """Start splitting a multipart's region on its delimiter lines (RFC 2046 5.1.1), as feedparser
    does; None when there is nothing to split (read as one leaf) or it lies at the nesting bound
    (read flat by _flatten)."""
    head = part.head
    boundary = head.get_boundary()
    if boundary is None:
        part.defects.append(errors.NoBoundaryInMultipartDefect())
        return None  # read as one leaf, trailing line ending kept
    if str(head.get("content-transfer-encoding", "8bit")).lower() not in ("7bit", "8bit", "binary"):
        part.defects.append(errors.InvalidMultipartContentTransferEncodingDefect())
    sep = _separator(boundary, walk.strict)
    start, end = part.start, part.end
    if walk.strict and raw.find(b"\r" + sep, start, end) >= 0:
        raise _Fallback  # a delimiter line after a bare CR: feedparser sees it, bytes.find not
    first = _delimiter(raw, sep, start, end, walk.strict)
    if first is None or first[2]:
        part.defects.append(errors.StartBoundaryNotFoundDefect())
        part.end = end if first is None else first[0]  # the preamble becomes the payload
        return None
    if depth >= MAX_DEPTH:
        _flatten(part, raw, sep, first[1], walk)
        return None
    part.children = []
    return _Split(part, sep, first[1], depth, part.children)


def _fill_multipart(root: _Part, raw: bytes, walk: _Walk) -> None:
    """Split a multipart and every multipart inside it, depth first (the order feedparser reads
    them in), with a stack of open multiparts instead of recursion."""
    top = _open_multipart(root, raw, 0, walk)
    stack = [top] if top is not None else []
    while stack:
        split = stack[-1]
        end = split.part.end
        found = _delimiter(raw, split.sep, split.pos, end, walk.strict)
        while found is not None and found[0] == split.pos:  # repeated delimiter lines: no part
            split.pos = found[1]
            found = _delimiter(raw, split.sep, split.pos, end, walk.strict)
        start = split.pos
        stop = end if found is None else found[0]
        if found is None:
            split.part.defects.append(errors.CloseBoundaryNotFoundDefect())
        if found is None or found[2]:
            stack.pop()  # its last part follows
        else:
            split.pos = found[1]
        if walk.count > MAX_PARTS:  # past that the walk stops: only this level's defects count
            continue
        walk.count += 1
        in_digest = split.part.ctype == "multipart/digest"
        child = _leaf(raw, start, stop, in_digest, walk)
        split.children.append(child)
        if child.ctype.startswith("multipart/"):
            inner = _open_multipart(child, raw, split.depth + 1, walk)
            if inner is not None:
                stack.append(inner)


def _separator(boundary: str, strict: bool) -> bytes:
    try:
        return b"--" + boundary.encode("ascii", "surrogateescape")
    except UnicodeEncodeError:
        if strict:
            raise _Fallback from None
        return b"--" + boundary.encode("utf-8", "surrogateescape")


def _line_before(raw: bytes, start: int, at: int) -> int:
    """Where a body ends whose next line (a delimiter) starts at `at`: its line ending belongs
    to the delimiter."""
    if at - 2 >= start and raw[at - 2 : at] == b"\r\n":
        return at - 2
    if at - 1 >= start and raw[at - 1] in (0x0A, 0x0D):
        return at - 1
    return at


def _flatten(part: _Part, raw: bytes, sep: bytes, pos: int, walk: _Walk) -> None:
    """The leaf parts below a multipart at the nesting bound, in one pass over the delimiter lines
    of its region (every open multipart's boundary matched at once); `pos` is where its first
    part starts. Nested multiparts are followed but not kept: their leaves become the children.
    """
    part.defects.append(_TooDeepDefect())
    end = part.end
    innermost: dict[bytes, int] = {}  # separator -> index of its innermost open multipart
    open_seps: list[tuple[bytes, int | None]] = []  # (separator, index it shadows)

    def push(separator: bytes) -> None:
        open_seps.append((separator, innermost.get(separator)))
        innermost[separator] = len(open_seps) - 1

    def pop_to(size: int) -> None:
        while len(open_seps) > size:
            separator, shadowed = open_seps.pop()
            if shadowed is None:
                del innermost[separator]
            else:
                innermost[separator] = shadowed

    leaves: list[_Part] = []
    leaf: _Part | None = None
    push(sep)
    start_part = True  # `pos` starts a part (after a delimiter line)
    while open_seps and pos < end:
        if start_part:
            start_part = False
            head, body = _part_head(raw, pos, end, False, strict=False)
            ctype = head.get_content_type()
            boundary = head.get_boundary() if ctype.startswith("multipart/") else None
            if boundary:
                push(_separator(boundary, strict=False))
            else:
                if walk.count > MAX_PARTS:
                    part.defects.append(_TooManyDefect())
                    part.children = leaves
                    return
                walk.count += 1
                leaf = _Part(head, ctype, body, end, [])
                leaves.append(leaf)
            pos = body
            continue
        at = pos if raw.startswith(b"--", pos) else raw.find(b"\n--", pos, end) + 1
        if at <= 0:
            break
        nl = raw.find(b"\n", at, end)
        line_end = nl + 1 if nl >= 0 else end
        line = raw[at:line_end].rstrip(b"\r\n").rstrip(b" \t\r")
        close = False
        index = innermost.get(line)
        if index is None and line.endswith(b"--"):
            index = innermost.get(line[:-2])
            close = index is not None
        pos = line_end
        if index is None:
            continue
        if leaf is not None:
            leaf.end = _line_before(raw, leaf.start, at)
            leaf = None
        pop_to(index if close else index + 1)
        start_part = not close
    if open_seps:
        part.defects.append(errors.CloseBoundaryNotFoundDefect())
    part.children = leaves


def _decode_base64(encoded: bytes) -> tuple[bytes, list[MessageDefect]]:
    """email._encoded_words.decode_b, on binascii directly (same results, same defects).

    pybase64 (SIMD, some ten times binascii's speed) decodes what it takes as clean base64 in
    strict mode; whatever it refuses goes the way decode_b goes. It is never laxer than
    binascii's strict mode (tests/mail/test_mime.py compares them), so its result is the one
    binascii would give.
    """
    pad_err = len(encoded) % 4
    if not pad_err:
        try:
            return pybase64.b64decode(encoded, validate=True), []
        except ValueError:  # binascii.Error
            pass
    missing_padding = b"==="[: 4 - pad_err] if pad_err else b""
    try:
        return (
            binascii.a2b_base64(encoded + missing_padding, strict_mode=True),
            [errors.InvalidBase64PaddingDefect()] if pad_err else [],
        )
    except binascii.Error:
        pass
    try:
        return binascii.a2b_base64(encoded), [errors.InvalidBase64CharactersDefect()]
    except binascii.Error:
        pass
    try:
        return (
            binascii.a2b_base64(encoded + b"=="),
            [errors.InvalidBase64CharactersDefect(), errors.InvalidBase64PaddingDefect()],
        )
    except binascii.Error:
        return encoded, [errors.InvalidBase64LengthDefect()]


def _leaf_bytes(part: _Part, raw: bytes, strict: bool = True) -> bytes:
    """Message.get_payload(decode=True) for the leaf's payload bytes."""
    payload = raw[part.start : part.end]
    cte = str(part.head.get("content-transfer-encoding", "")).lower()
    if cte == "quoted-printable":
        return binascii.a2b_qp(payload)
    if cte == "base64":
        data, defects = _decode_base64(payload.translate(None, b"\r\n"))
        part.defects.extend(defects)
        return data
    if cte in _UUENCODE and strict:
        raise _Fallback
    return payload


def _mime_fast(
    head: EmailMessage,
    block: _HeaderBlock,
    raw: bytes,
    msg: Message,
    payloads: list[bytes] | None = None,
    strict: bool = True,
) -> None:
    if strict and block.normalised.count(b"\r") != block.normalised.count(b"\r\n"):
        raise _Fallback  # feedparser also ends lines at a bare CR
    ctype = head.get_content_type()
    maintype = ctype.split("/")[0]
    if maintype == "message" and strict:
        raise _Fallback
    walk = _Walk(strict)
    root = _Part(head, ctype, block.body_start, len(raw), list(head.defects))
    if maintype == "multipart":
        _fill_multipart(root, raw, walk)
        if root.children is None:
            root.defects.append(errors.MultipartInvariantViolationDefect())
    # the same walk as _walk, over _Part; results are kept only if no _Fallback is raised
    stack: list[tuple[_Part, bool]] = [(root, True)]
    walked = 0
    defects: list[str] = []
    attachments: list[Attachment] = []
    datas: list[bytes] = []
    while stack:
        part, is_root = stack.pop()
        walked += 1
        if walked > MAX_PARTS:
            defects.append(f"more than {MAX_PARTS} MIME parts: the rest not listed")
            break
        if part.children is not None:
            defects.extend(_defect_text(d) for d in part.defects)
            stack.extend((c, False) for c in reversed(part.children))
            continue
        filename = _filename(part.head)
        disposition = _disposition(part.head)
        if not _listed(disposition, part.ctype, filename, is_root):
            defects.extend(_defect_text(d) for d in part.defects)
            continue
        data = _leaf_bytes(part, raw, strict)
        defects.extend(_defect_text(d) for d in part.defects)
        if payloads is not None:
            datas.append(data)
        attachments.append(
            Attachment(
                filename=filename,
                content_type=part.ctype,
                size=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                disposition=disposition,
            )
        )
    msg.attachments.extend(attachments)
    msg.defects.extend(defects)
    if payloads is not None:
        payloads.extend(datas)


class MessageAccumulator:
    """Collects one message's bytes (already dot-unstuffed) with bounded memory.

    Every byte is hashed and counted; only the first `max_bytes` are kept for parsing. An
    optional `sink` receives every byte too (for export), so nothing is kept twice here.
    The pieces are kept as they came and joined once, at the end: growing one buffer copied
    each message's bytes again at every reallocation, and once more to parse them.
    """

    __slots__ = ("_parts", "_kept", "_max", "_hash", "_size", "_gap_bytes", "_gaps", "sink")

    def __init__(self, max_bytes: int = MAX_MESSAGE, sink: RawSink | None = None) -> None:
        self.sink = sink
        self._parts: list[bytes] = []
        self._kept = 0
        self._max = max_bytes
        self._hash = hashlib.sha256()
        self._size = 0
        self._gap_bytes = 0
        self._gaps: list[int] = []  # offsets in the kept bytes where bytes were lost

    @property
    def size(self) -> int:
        return self._size

    def feed(self, data: bytes) -> None:
        if self.sink is not None:
            self.sink.write(data)
        self._hash.update(data)
        self._size += len(data)
        room = self._max - self._kept
        if room >= len(data):
            self._parts.append(data)
            self._kept += len(data)
        elif room > 0:
            self._parts.append(data[:room])
            self._kept = self._max

    def note_gap(self, length: int) -> None:
        """`length` bytes inside the message were never captured (not hashed, not counted)."""
        if self.sink is not None:
            self.sink.gap(length)
        self._gap_bytes += length
        if len(self._gaps) < MAX_DEFECTS and self._kept < self._max:
            self._gaps.append(self._kept)

    def finish(self) -> Message:
        raw = b"".join(self._parts)
        self._parts = [raw]
        msg = _parse(raw, self._size, self._hash.hexdigest(), self._gaps)
        msg.truncated = self._size > len(raw)
        msg.gap_bytes = self._gap_bytes
        if msg.truncated:
            msg.defects.append(f"only the first {len(raw)} of {self._size} bytes parsed")
        elif msg.message_id is None and not self._gap_bytes:
            msg.body_sha256 = body_sha256(raw)
        return msg


def body_sha256(raw: bytes | bytearray) -> str:
    """SHA-256 of what follows the header block (the first empty line, CRLF or LF)."""
    crlf, lf = raw.find(b"\r\n\r\n"), raw.find(b"\n\n")
    if crlf >= 0 and (lf < 0 or crlf < lf):
        start = crlf + 4
    elif lf >= 0:
        start = lf + 2
    else:
        start = len(raw)
    return hashlib.sha256(memoryview(raw)[start:]).hexdigest()
