"""Build the message to send: RFC 5322 headers, RFC 2047 encoded words, RFC 2045/2046 parts."""

from __future__ import annotations

import base64
import mimetypes
import re
import secrets
import time
from dataclasses import dataclass, field
from email.header import Header
from email.utils import formataddr, formatdate, getaddresses, make_msgid, parseaddr, quote
from pathlib import Path

from mailsniff.errors import UsageError

__all__ = [
    "MessageSpec",
    "build_message",
    "dot_stuff",
    "envelope_recipients",
    "envelope_roles",
    "split_addresses",
]

#: RFC 5322 3.6.8 field name: printable ASCII except colon.
_FIELD_NAME = re.compile(r"[!-9;-~]+")
#: RFC 2045 6.8: base64 lines of at most 76 characters.
_B64_LINE = 76


@dataclass(slots=True)
class MessageSpec:
    """What the user asked to send (addresses as given: `addr` or `Name <addr>`)."""

    envelope_from: str
    to: list[str] = field(default_factory=list)
    cc: list[str] = field(default_factory=list)
    bcc: list[str] = field(default_factory=list)
    #: The From header; the envelope sender when None.
    header_from: str | None = None
    subject: str | None = None
    body: str = ""
    attachments: list[Path] = field(default_factory=list)
    #: Extra header fields, in order, after the generated ones.
    headers: list[tuple[str, str]] = field(default_factory=list)
    #: Charset of encoded words (display names, subject) and of the body text.
    charset: str = "utf-8"


def split_addresses(values: list[str] | None) -> list[str]:
    """Repeatable options with comma lists: `['a@x, B <b@y>', 'c@z']` -> three addresses."""
    out: list[str] = []
    for value in values or []:
        for name, addr in getaddresses([value]):
            if not addr:
                if name.strip():
                    raise UsageError(f"not an address: {value!r}")
                continue
            out.append(f'"{quote(name)}" <{addr}>' if name else addr)
    return out


def _bare(address: str) -> str:
    return parseaddr(address)[1] or address.strip()


def envelope_roles(spec: MessageSpec) -> list[tuple[str, str]]:
    """RCPT TO addresses with the header that lists them ("to", "cc", "bcc"): To, then Cc, then
    Bcc, each address once (compared without case), in the first header that lists it."""
    seen: dict[str, tuple[str, str]] = {}
    for role, addresses in (("to", spec.to), ("cc", spec.cc), ("bcc", spec.bcc)):
        for address in addresses:
            bare = _bare(address)
            seen.setdefault(bare.lower(), (bare, role))
    return list(seen.values())


def envelope_recipients(spec: MessageSpec) -> list[str]:
    """RCPT TO addresses: To, then Cc, then Bcc, each address once."""
    return [address for address, _ in envelope_roles(spec)]


def _check_charset(charset: str) -> str:
    try:
        "".encode(charset)
    except LookupError:
        raise UsageError(f"--charset: unknown charset {charset!r}") from None
    return charset


def _encode(text: str, charset: str) -> str:
    """Unstructured text as-is when ASCII, else RFC 2047 encoded words in `charset`."""
    if text.isascii():
        return text
    try:
        return Header(text, charset).encode(linesep="\r\n")
    except UnicodeEncodeError:
        raise UsageError(f"--charset {charset}: cannot encode {text!r}") from None


def _address_field(addresses: list[str], charset: str) -> str:
    parts = []
    for name, addr in getaddresses(addresses):
        if name and not name.isascii():
            try:
                parts.append(formataddr((name, addr), charset=charset))
            except UnicodeEncodeError:
                raise UsageError(f"--charset {charset}: cannot encode {name!r}") from None
        else:
            parts.append(formataddr((name, addr)))
    return ",\r\n ".join(parts)


def _header_line(name: str, value: str) -> bytes:
    if not _FIELD_NAME.fullmatch(name):
        raise UsageError(f"--header: bad field name {name!r}")
    if "\r" in value or "\n" in value:
        raise UsageError(f"--header {name}: a value cannot contain a line break")
    return f"{name}: {value}\r\n".encode("utf-8", "surrogateescape")


def _generated(name: str, value: str) -> bytes:
    """A field mailsniff built: folds (from the email package) normalised to CRLF + space."""
    lines = [line.strip() for line in value.replace("\r\n", "\n").split("\n")]
    folded = "\r\n ".join(line for line in lines if line)
    return f"{name}: {folded}\r\n".encode("ascii", "backslashreplace")


def _b64_lines(data: bytes) -> bytes:
    encoded = base64.b64encode(data)
    return b"".join(encoded[i : i + _B64_LINE] + b"\r\n" for i in range(0, len(encoded), _B64_LINE))


def _text_part(body: str, charset: str) -> bytes:
    text = body.replace("\r\n", "\n").replace("\r", "\n")
    if text and not text.endswith("\n"):
        text += "\n"
    crlf = text.replace("\n", "\r\n")
    if crlf.isascii():
        head = "Content-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n"
        return head.encode() + b"\r\n" + crlf.encode("ascii")
    try:
        data = crlf.encode(charset)
    except UnicodeEncodeError:
        raise UsageError(f"--charset {charset}: cannot encode the body") from None
    head = f"Content-Type: text/plain; charset={charset}\r\nContent-Transfer-Encoding: base64\r\n"
    return head.encode() + b"\r\n" + _b64_lines(data)


def _filename_param(name: str) -> str:
    if name.isascii() and '"' not in name and "\\" not in name:
        return f'filename="{name}"'
    from urllib.parse import quote

    return f"filename*=utf-8''{quote(name, safe='')}"  # RFC 2231


def _attachment_part(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise UsageError(f"--attach {path}: {error.strerror or error}") from None
    ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    head = (
        f"Content-Type: {ctype}\r\n"
        f"Content-Disposition: attachment; {_filename_param(path.name)}\r\n"
        "Content-Transfer-Encoding: base64\r\n"
    )
    return head.encode() + b"\r\n" + _b64_lines(data)


def build_message(
    spec: MessageSpec, *, date: str | None = None, message_id: str | None = None
) -> bytes:
    """The message as transmitted after DATA (CRLF line ends, not yet dot-stuffed).

    Bcc addresses are envelope-only: they never appear in the message.
    """
    charset = _check_charset(spec.charset)
    sender = spec.header_from or spec.envelope_from
    domain = _bare(sender).rpartition("@")[2] or "localhost"
    out = bytearray()
    out += _generated("From", _address_field([sender], charset))
    if spec.to:
        out += _generated("To", _address_field(spec.to, charset))
    if spec.cc:
        out += _generated("Cc", _address_field(spec.cc, charset))
    if spec.subject is not None:
        if "\r" in spec.subject or "\n" in spec.subject:
            raise UsageError("--subject cannot contain a line break")
        out += _generated("Subject", _encode(spec.subject, charset))
    out += _header_line("Date", date or formatdate(time.time(), localtime=False))
    out += _header_line("Message-ID", message_id or make_msgid(domain=domain))
    out += b"MIME-Version: 1.0\r\n"
    for name, value in spec.headers:
        _header_line(name, value)  # validates
        out += _generated(name, _encode(value, charset))
    text = _text_part(spec.body, charset)
    if not spec.attachments:
        return bytes(out + text)
    boundary = f"=_mailsniff_{secrets.token_hex(12)}"
    out += f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n'.encode()
    out += b"This is a multi-part message in MIME format.\r\n"
    for part in (text, *(_attachment_part(p) for p in spec.attachments)):
        out += f"--{boundary}\r\n".encode() + part
    out += f"--{boundary}--\r\n".encode()
    return bytes(out)


def parse_header_option(text: str) -> tuple[str, str]:
    """`--header 'Name: value'` -> (name, value)."""
    name, sep, value = text.partition(":")
    if not sep or not _FIELD_NAME.fullmatch(name.strip()):
        raise UsageError(f"--header: expected 'Name: value', got {text!r}")
    return name.strip(), value.strip()


def dot_stuff(message: bytes) -> bytes:
    """RFC 5321 4.5.2: a leading dot doubled on every line, CRLF ends, then `.` CRLF."""
    lines = message.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    stuffed = b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n" for line in lines)
    return stuffed + b".\r\n"
