"""--redact: no password, token or digest, nor its base64, in any output (RFC 4954, 4616, 2195)."""

from __future__ import annotations

import base64
import io
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from rich.console import Console

from mailsniff.analysis.findings import analyse
from mailsniff.export.redact import MASK, redact_session
from mailsniff.model import AuthAttempt, Endpoint, Protocol, Session, SessionAnomaly, TranscriptLine
from mailsniff.protocols.base import Direction
from mailsniff.protocols.smtp import SmtpAnomalyKind
from mailsniff.render.console import render_session
from mailsniff.render.creds import CredentialTable, render_credentials
from mailsniff.render.jsonl import dumps, session_record
from mailsniff.session.pop3 import Pop3SessionHandler
from mailsniff.session.smtp import SmtpSessionHandler
from tests.cli_runner import PCAPS, REPO, read_json
from tests.export.captures import smtp_steps, write_smtp_capture
from tests.factories import make_session
from tests.helpers import C, S, Step
from tests.protocols.ntlm_messages import authenticate, challenge, negotiate

XOAUTH2 = b"user=alice@example.com\x01auth=Bearer ya29.SECRET-token-123\x01\x01"
CRAM_CHALLENGE = b"<1896.697170952@postoffice.example.net>"
CRAM_RESPONSE = b"tim b913a602c7eda7a495b4e6e7334d3890"


def b64(data: bytes) -> bytes:
    return base64.b64encode(data)


def forbidden(secret: bytes) -> list[bytes]:
    """The secret and every base64 form it travels in (alone, unpadded), and as output shows
    bytes that are not UTF-8 (each byte as its latin-1 character, written in UTF-8)."""
    shown = secret.decode("latin-1").encode("utf-8")
    return [secret, shown, b64(secret), b64(secret).rstrip(b"=")]


def sasl_capture(tmp_path: Path) -> Path:
    steps = smtp_steps([b"Subject: hi\r\n\r\nhello\r\n"])
    auth = [
        ("c", b"AUTH XOAUTH2 " + b64(XOAUTH2) + b"\r\n"),
        ("s", b"235 2.7.0 Accepted\r\n"),
        ("c", b"AUTH CRAM-MD5\r\n"),
        ("s", b"334 " + b64(CRAM_CHALLENGE) + b"\r\n"),
        ("c", b64(CRAM_RESPONSE) + b"\r\n"),
        ("s", b"535 5.7.8 Authentication failed\r\n"),
        ("c", b"AUTH PLAIN " + b64(b"\0carol\0s3cr3t-pl@in") + b"\r\n"),
        ("s", b"235 2.7.0 Accepted\r\n"),
    ]
    return write_smtp_capture(tmp_path / "sasl.pcap", [*steps[:3], *auth, *steps[3:]])


NOT_UTF8 = b"s3cr\xe9t-\xff\xfe-pw"


def malformed_capture(tmp_path: Path) -> Path:
    """AUTH PLAIN with one NUL, with a trailing NUL, without NUL; a LOGIN password not UTF-8."""
    steps = smtp_steps([b"Subject: hi\r\n\r\nhello\r\n"])
    auth = [
        ("c", b"AUTH PLAIN " + b64(b"alice\0one-nul-pw-1") + b"\r\n"),
        ("s", b"535 5.7.8 Authentication failed\r\n"),
        ("c", b"AUTH PLAIN\r\n"),
        ("s", b"334 \r\n"),
        ("c", b64(b"\0alice\0trailing-nul-pw-2\0") + b"\r\n"),
        ("s", b"535 5.7.8 Authentication failed\r\n"),
        ("c", b"AUTH PLAIN " + b64(b"no-nul-at-all-pw-3") + b"\r\n"),
        ("s", b"535 5.7.8 Authentication failed\r\n"),
        ("c", b"AUTH LOGIN\r\n"),
        ("s", b"334 VXNlcm5hbWU6\r\n"),
        ("c", b64(b"alice") + b"\r\n"),
        ("s", b"334 UGFzc3dvcmQ6\r\n"),
        ("c", b64(NOT_UTF8) + b"\r\n"),
        ("s", b"235 2.7.0 Accepted\r\n"),
    ]
    return write_smtp_capture(tmp_path / "malformed.pcap", [*steps[:3], *auth, *steps[3:]])


CASES = {
    "malformed": (
        None,
        [
            b"one-nul-pw-1",
            b"trailing-nul-pw-2",
            b"no-nul-at-all-pw-3",
            NOT_UTF8,
        ],
    ),
    "seed": (PCAPS / "seed-telnet.pcap", [b"mypassword"]),
    "pipelining": (PCAPS / "pipelining-bdat.pcap", [b"wonderland", b"\0alice\0wonderland"]),
    "cc-bcc": (PCAPS / "cc-bcc-smtplib.pcap", [b"wonderland"]),
    "sasl": (
        None,
        [
            b"ya29.SECRET-token-123",
            XOAUTH2,
            b"b913a602c7eda7a495b4e6e7334d3890",
            CRAM_RESPONSE,
            b"s3cr3t-pl@in",
            b"\0carol\0s3cr3t-pl@in",
        ],
    ),
}

COMMANDS = [
    ["read", "{capture}"],
    ["read", "{capture}", "--transcript"],
    ["read", "{capture}", "--json", "--transcript"],
    ["read", "{capture}", "--extract", "{out}/x", "--mbox", "{out}/m.mbox", "--summary"],
    ["creds", "{capture}"],
    ["creds", "{capture}", "--json"],
]


def run(args: list[str]) -> bytes:
    proc = subprocess.run(
        [sys.executable, "-m", "mailsniff", *args],
        capture_output=True,
        cwd=REPO,
        timeout=120,
        env={"COLUMNS": "400", "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout + proc.stderr


def outputs(capture: Path, out: Path, redact: bool) -> bytes:
    """stdout and stderr of every command, then every byte of every exported file."""
    out.mkdir()
    collected = []
    for template in COMMANDS:
        args = [a.format(capture=capture, out=out) for a in template]
        collected.append(run([*args, "--redact"] if redact else args))
    collected += [p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()]
    return b"\n".join(collected)


@pytest.mark.parametrize("case", sorted(CASES))
def test_redact_leaves_no_secret_in_any_output(case: str, tmp_path: Path) -> None:
    capture, secrets = CASES[case]
    if capture is None:
        capture = malformed_capture(tmp_path) if case == "malformed" else sasl_capture(tmp_path)
    plain = outputs(capture, tmp_path / "plain", redact=False)
    redacted = outputs(capture, tmp_path / "redacted", redact=True)
    for secret in secrets:
        leaks = [form for form in forbidden(secret) if form in redacted]
        assert not leaks, f"{case}: {leaks} still in the redacted output"
    # without --redact the same outputs do show them: the check above can fail
    assert all(any(form in plain for form in forbidden(s)) for s in secrets)
    assert MASK.encode() in redacted
    # usernames stay visible: they identify, they do not grant access
    assert (b"crazywill" if case == "seed" else b"alice") in redacted


def test_malformed_plain_never_puts_the_password_in_the_username(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mailsniff", "creds", str(malformed_capture(tmp_path)), "--json"],
        capture_output=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [(r["mechanism"], r["username"], r["password"]) for r in rows] == [
        ("PLAIN", "alice", "one-nul-pw-1"),
        ("PLAIN", "alice", "trailing-nul-pw-2\x00"),
        ("PLAIN", None, "no-nul-at-all-pw-3"),
        ("LOGIN", "alice", NOT_UTF8.decode("latin-1")),
    ]


def test_redact_keeps_which_transcript_lines_were_decrypted() -> None:
    """Masking a line's text leaves the rest of it: lines read from decrypted TLS stay marked
    (pcaps/starttls-keylog.pcap: AUTH PLAIN inside STARTTLS)."""
    args = ("--keylog", str(PCAPS / "starttls-keylog.keys"), "--transcript")
    [clear] = read_json(PCAPS / "starttls-keylog.pcap", *args)
    [masked] = read_json(PCAPS / "starttls-keylog.pcap", *args, "--redact")
    assert masked["auth"][0]["password"] == MASK
    flags = [line["decrypted"] for line in clear["transcript"]]
    assert True in flags and False in flags
    assert [line["decrypted"] for line in masked["transcript"]] == flags


def test_redact_masks_whole_words_only_for_short_secrets() -> None:
    session = make_session(Protocol.POP3)
    session.auth.append(AuthAttempt("USER", username="bob", password="abc", success=True))
    session.transcript = [
        TranscriptLine(0, Direction.CLIENT, "PASS abc"),
        TranscriptLine(0, Direction.SERVER, "+OK abcdef mailbox ready"),
    ]
    redact_session(session)
    assert [line.text for line in session.transcript] == [
        f"PASS {MASK}",
        "+OK abcdef mailbox ready",
    ]
    assert session.auth[0].password == MASK
    assert session.auth[0].username == "bob"


@settings(max_examples=300, deadline=None)
@given(
    secret=st.text(min_size=8, max_size=40).filter(lambda s: MASK not in s),
    pieces=st.lists(st.text(max_size=30), min_size=1, max_size=6),
)
def test_redact_removes_any_long_secret_and_its_base64_from_every_line(
    secret: str, pieces: list[str]
) -> None:
    encoded = base64.b64encode(secret.encode("utf-8", "surrogatepass")).decode()
    session = make_session(Protocol.SMTP)
    session.auth.append(AuthAttempt("LOGIN", username="u", password=secret))
    session.transcript = [
        TranscriptLine(0, Direction.CLIENT, piece + secret + piece, note=f"{piece} {encoded}")
        for piece in pieces
    ]
    session.anomalies = [
        SessionAnomaly(SmtpAnomalyKind.GARBAGE_COMMAND, f"{p}{encoded}{p}") for p in pieces
    ]
    redact_session(session)
    texts = [t for line in session.transcript for t in (line.text, line.note or "")]
    texts += [a.text for a in session.anomalies]
    assert not [t for t in texts if secret in t or encoded in t]


# ------------------------------------------------------------------ any bytes, any mechanism
#
# Redaction is of the bytes the client sent, whatever their shape: with --redact, every output
# (console with transcript, JSON Lines with transcript, `creds` table and JSON) must be the same
# whichever secret of a given length was sent. A secret left anywhere (as sent, decoded either
# way, in base64, in the line that carried it) makes two runs differ.

_WS = b" \t\r\n\x0b\x0c"
#: Bytes that border a secret in these dialogues (NUL of PLAIN, ^A of XOAUTH2, the "=", ": " and
#: " (...)" of notes, the space of a command). A secret made of its own context, e.g. eight NULs
#: after "carol NUL", is masked at a place that depends on the bytes around it; that is no leak,
#: so the equality below leaves those bytes out (test_redact_masks_secrets_of_any_shape has them).
_BORDER = b"\x00\x01 =:()"
_USER = b"carol"


def _pop_greeting() -> list[Step]:
    return [(S, b"+OK POP3 ready <1896.697170952@dbc.mtview.ca.us>\r\n")]


def _smtp_greeting() -> list[Step]:
    return [
        (S, b"220 mx.example.com ESMTP\r\n"),
        (C, b"EHLO client.example.com\r\n"),
        (S, b"250-mx.example.com\r\n250 AUTH PLAIN LOGIN CRAM-MD5 XOAUTH2 NTLM\r\n"),
    ]


def _smtp_auth(first: bytes, *rest: bytes) -> list[Step]:
    steps: list[Step] = [(C, first + b"\r\n")]
    for line in rest:
        ask = b64(challenge()) if b"NTLM" in first else b""
        steps += [(S, b"334 " + ask + b"\r\n"), (C, line + b"\r\n")]
    return [*_smtp_greeting(), *steps, (S, b"235 2.7.0 ok\r\n"), (C, b"QUIT\r\n")]


def _pop_auth(first: bytes, *rest: bytes) -> list[Step]:
    steps: list[Step] = [(C, first + b"\r\n")]
    for line in rest:
        steps += [(S, b"+ \r\n"), (C, line + b"\r\n")]
    return [*_pop_greeting(), *steps, (S, b"+OK in\r\n"), (C, b"QUIT\r\n")]


def _xoauth2(secret: bytes) -> bytes:
    return b64(b"user=" + _USER + b"\x01auth=Bearer " + secret + b"\x01\x01")


#: mechanism -> (bytes a secret may not contain, dialogue sending that secret)
DIALOGUES: dict[str, tuple[bytes, Callable[[bytes], tuple[str, list[Step]]]]] = {
    "smtp PLAIN": (b"", lambda s: ("smtp", _smtp_auth(b"AUTH PLAIN " + b64(b"\0carol\0" + s)))),
    "smtp PLAIN one NUL": (
        b"",
        lambda s: ("smtp", _smtp_auth(b"AUTH PLAIN " + b64(b"carol\0" + s))),
    ),
    "smtp PLAIN trailing NUL": (
        b"",
        lambda s: ("smtp", _smtp_auth(b"AUTH PLAIN", b64(b"\0carol\0" + s + b"\0"))),
    ),
    "smtp LOGIN": (b"", lambda s: ("smtp", _smtp_auth(b"AUTH LOGIN", b64(_USER), b64(s)))),
    "smtp CRAM-MD5": (
        _WS,
        lambda s: ("smtp", _smtp_auth(b"AUTH CRAM-MD5", b64(_USER + b" " + s))),
    ),
    "smtp XOAUTH2": (b"\x01", lambda s: ("smtp", _smtp_auth(b"AUTH XOAUTH2 " + _xoauth2(s)))),
    "smtp NTLM": (
        b"",
        lambda s: (
            "smtp",
            _smtp_auth(
                b"AUTH NTLM " + b64(negotiate()),
                b64(authenticate("carol", "EXAMPLE", "WS01", b"\0" * 24, (s * 40)[:40])),
            ),
        ),
    ),
    "pop3 USER/PASS": (
        b"\r\n",
        lambda s: (
            "pop3",
            [
                *_pop_greeting(),
                (C, b"USER carol\r\n"),
                (S, b"+OK\r\n"),
                (C, b"PASS " + s + b"\r\n"),
                (S, b"+OK in\r\n"),
                (C, b"QUIT\r\n"),
            ],
        ),
    ),
    "pop3 APOP": (
        _WS,
        lambda s: (
            "pop3",
            [*_pop_greeting(), (C, b"APOP carol " + s + b"\r\n"), (S, b"+OK in\r\n")],
        ),
    ),
    "pop3 AUTH PLAIN": (b"", lambda s: ("pop3", _pop_auth(b"AUTH PLAIN", b64(b"\0carol\0" + s)))),
    "pop3 AUTH PLAIN initial, one NUL": (
        b"",
        lambda s: ("pop3", _pop_auth(b"AUTH PLAIN " + b64(b"carol\0" + s))),
    ),
    "pop3 AUTH LOGIN": (b"", lambda s: ("pop3", _pop_auth(b"AUTH LOGIN", b64(_USER), b64(s)))),
    "pop3 AUTH CRAM-MD5": (
        _WS,
        lambda s: ("pop3", _pop_auth(b"AUTH CRAM-MD5", b64(_USER + b" " + s))),
    ),
    "pop3 AUTH XOAUTH2": (b"\x01", lambda s: ("pop3", _pop_auth(b"AUTH XOAUTH2 " + _xoauth2(s)))),
}


def redacted_outputs(protocol: str, steps: list[Step]) -> str:
    """Every rendering of the dialogue's session under --redact, as one text."""
    session = Session(
        id=1,
        protocol=Protocol(protocol),
        client=Endpoint("10.0.0.1", 40000),
        server=Endpoint("10.0.0.2", 25 if protocol == "smtp" else 110),
        start_ns=0,
        end_ns=0,
    )
    handler = (SmtpSessionHandler if protocol == "smtp" else Pop3SessionHandler)(session)
    for ts, (direction, data) in enumerate(steps):
        assert isinstance(data, bytes)
        handler.data(ts * 1000, direction, data)
    handler.close(len(steps) * 1000)
    redact_session(analyse(session))
    console = Console(file=io.StringIO(), width=300, color_system=None)
    render_session(console, session, transcript=True)
    table = CredentialTable()
    table.add_session(session)
    render_credentials(console, table.rows(), json=False)
    render_credentials(console, table.rows(), json=True)
    console.file.write(dumps(session_record(session, transcript=True)))
    assert isinstance(console.file, io.StringIO)
    return console.file.getvalue()


@st.composite
def secret_pairs(draw: st.DrawFn, banned: bytes) -> tuple[bytes, bytes]:
    banned += _BORDER
    alphabet = st.integers(0, 255).filter(lambda b: b not in banned).map(lambda b: bytes([b]))
    size = draw(st.integers(1, 24))
    first = b"".join(draw(st.lists(alphabet, min_size=size, max_size=size)))
    second = b"".join(draw(st.lists(alphabet, min_size=size, max_size=size)))
    return first, second


@pytest.mark.parametrize("mechanism", sorted(DIALOGUES))
def test_redacted_output_does_not_depend_on_the_secret_bytes(mechanism: str) -> None:
    banned, dialogue = DIALOGUES[mechanism]

    @settings(max_examples=40, deadline=None)
    @given(pair=secret_pairs(banned))
    def check(pair: tuple[bytes, bytes]) -> None:
        first, second = pair
        # A short secret is masked only as a whole word: one that happens to be a word of the
        # rest of the output (a "2" of "235", an "OK") is masked there too, which is no leak.
        background = redacted_outputs(*dialogue(b"\xff" * len(first)))
        for secret in pair:
            short = [f for f in _forms(secret) if len(f) < 8]
            assume(not any(re.search(rf"(?<!\w){re.escape(f)}(?!\w)", background) for f in short))
        a = redacted_outputs(*dialogue(first))
        assert a == redacted_outputs(*dialogue(second))
        assert MASK in a
        assert "carol" in a  # the user name stays

    check()


def _forms(secret: bytes) -> set[str]:
    texts = {secret.decode("latin-1")}
    try:
        texts.add(secret.decode("utf-8"))
    except UnicodeDecodeError:
        pass
    return texts | {repr(t)[1:-1] for t in texts} | {b64(secret).decode().rstrip("=")}
