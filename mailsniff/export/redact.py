"""--redact: mask passwords, bearer tokens and digests (RFC 4954, 4616, 2195, 1939, 7628).

One function, applied to finished Sessions before anything renders or exports them, so every
output (console, JSON Lines, transcripts, manifest, creds) shows the same mask. What is masked:
each AuthAttempt's password (the bearer token for XOAUTH2/OAUTHBEARER) and response (CRAM-MD5
and APOP digests, the NTLM hash line, crackable offline); and everywhere text from the dialogue
is kept (transcript lines and their decoded notes, the exchange table, anomalies, findings), each
of those secrets in every form it can take there: the bytes the client sent (AuthAttempt.secrets)
decoded as UTF-8 and as latin-1, repr-escaped, base64, the SASL line that carried it, and any
base64 token whose decoded bytes contain one of them. So a password that is not UTF-8, or a
malformed AUTH PLAIN blob, is masked like any other. Usernames stay: they identify, they do
not grant access. Message contents are not altered (they are the evidence; credentials do not
travel in them).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from dataclasses import replace

from mailsniff.model import Session

__all__ = ["MASK", "redact_session", "session_secrets", "text_redactor"]

MASK = "********"
#: Secrets at least this long are masked wherever they occur; shorter ones only as whole words
#: (a three-letter password must not blank every "abc" in a transcript).
_ANYWHERE = 8
_BASE64_TOKEN = re.compile(r"[A-Za-z0-9+/]{4,}={0,2}")


def session_secrets(session: Session) -> list[str]:
    """Every password, token and digest of the session (as decoded text), longest first."""
    found: set[str] = set()
    for attempt in session.auth:
        for value in (attempt.password, attempt.response):
            if value:
                found.add(value)
    return sorted(found, key=len, reverse=True)


def _session_needles(session: Session) -> list[bytes]:
    """The secrets as bytes: as the client sent them, and as their decoded text encodes."""
    found: set[bytes] = set()
    for attempt in session.auth:
        found.update(s for s in attempt.secrets if s)
    for text in session_secrets(session):
        found.update(_encodings(text))
    return sorted(found, key=len, reverse=True)


def _encodings(text: str) -> list[bytes]:
    out = [text.encode("utf-8", "surrogateescape")]
    try:  # text decoded from bytes that were not UTF-8 (mailsniff.protocols.base.to_text)
        out.append(text.encode("latin-1"))
    except UnicodeEncodeError:
        pass
    return out


def _text_forms(needle: bytes) -> list[str]:
    """How these bytes can appear in a text field: decoded either way, repr-escaped, base64."""
    texts = [needle.decode("latin-1")]
    try:
        texts.append(needle.decode("utf-8"))
    except UnicodeDecodeError:
        pass
    forms: list[str] = []
    for text in texts:
        forms.append(text)
        inner = repr(text)[1:-1]  # anomalies quote raw lines with repr()
        forms += [inner, inner.replace("'", "\\'"), inner.replace('"', '\\"')]
    forms.append(base64.b64encode(needle).decode("ascii").rstrip("="))
    return [f for f in forms if f]


class _Scrubber:
    def __init__(self, needles: list[bytes]) -> None:
        self._needles = needles
        forms = {form for needle in needles for form in _text_forms(needle)}
        patterns = []
        for form in sorted(forms, key=len, reverse=True):
            escaped = re.escape(form)
            if len(form) >= _ANYWHERE:
                patterns.append(escaped)
            else:
                patterns.append(rf"(?<![\w]){escaped}(?![\w])")
        self._pattern = re.compile("|".join(patterns)) if patterns else None

    def _carries_secret(self, token: str) -> bool:
        if len(token) < 4:
            return False
        try:
            decoded = base64.b64decode(token + "=" * (-len(token) % 4), validate=True)
        except (binascii.Error, ValueError):
            return False
        for needle in self._needles:
            if len(needle) >= 4 and needle in decoded:
                return True
            # a short secret only where a SASL blob puts it: whole, after NUL (PLAIN), or as
            # the bearer token (XOAUTH2), not anywhere in the bytes an ordinary word decodes to
            if decoded == needle or decoded.endswith(b"\0" + needle):
                return True
            if b"Bearer " + needle + b"\x01" in decoded:
                return True
        return False

    def text(self, value: str) -> str:
        if self._pattern is None or not value:
            return value
        value = _BASE64_TOKEN.sub(
            lambda m: MASK if self._carries_secret(m.group(0)) else m.group(0), value
        )
        return self._pattern.sub(MASK, value)

    def optional(self, value: str | None) -> str | None:
        return None if value is None else self.text(value)


def text_redactor(secrets: list[str]) -> Callable[[str], str]:
    """Masks the given secrets (and their base64 forms) in any text: for output written before
    a Session is finished, e.g. the live transcript of `mailsniff send`/`pop`."""
    needles = {b for s in secrets if s for b in _encodings(s)}
    return _Scrubber(sorted(needles, key=len, reverse=True)).text


def redact_session(session: Session) -> Session:
    """Mask the session's secrets everywhere in it, in place; returns the same session."""
    needles = _session_needles(session)
    if not needles:
        return session
    scrub = _Scrubber(needles)
    for attempt in session.auth:
        if attempt.password is not None:
            attempt.password = MASK
        if attempt.response is not None:
            attempt.response = MASK
        attempt.username = scrub.optional(attempt.username)
        attempt.reply = scrub.optional(attempt.reply)
        attempt.secrets = []
    session.transcript = [
        replace(line, text=scrub.text(line.text), note=scrub.optional(line.note))
        for line in session.transcript
    ]
    session.exchanges = [
        replace(e, argument=scrub.text(e.argument), reply=scrub.optional(e.reply))
        for e in session.exchanges
    ]
    session.anomalies = [replace(a, detail=scrub.text(a.detail)) for a in session.anomalies]
    session.findings = [replace(f, detail=scrub.text(f.detail)) for f in session.findings]
    return session
