"""NTLM over SASL ([MS-NLMP]): messages decoded, users named, NetNTLMv2 lines hashcat can crack."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import socket
import subprocess
import threading
from pathlib import Path

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from mailsniff.analysis.findings import analyse
from mailsniff.model import Protocol, Session
from mailsniff.protocols.ntlm import describe_ntlm, parse_ntlm
from mailsniff.render.console import render_session
from mailsniff.render.creds import CredentialTable, credential_record
from mailsniff.session.pop3 import Pop3SessionHandler
from mailsniff.session.smtp import SmtpSessionHandler
from tests.factories import make_session
from tests.helpers import C, S, Step
from tests.protocols.ntlm_messages import (
    OEM,
    SERVER_CHALLENGE,
    UNICODE,
    authenticate,
    challenge,
    negotiate,
    ntlmv2_response,
)

#: NT hash (MD4 of the UTF-16LE password) of "password"
NT_HASH = bytes.fromhex("8846f7eaee8fb117ad06bdd830b7586c")
PROOF, BLOB, NT_RESPONSE = ntlmv2_response(NT_HASH, "alice", "EXAMPLE")
TYPE3 = authenticate("alice", "EXAMPLE", "WS01", b"\x00" * 24, NT_RESPONSE)


def b64(data: bytes) -> bytes:
    return base64.b64encode(data)


def test_parse_ntlm_reads_the_three_message_types() -> None:
    first = parse_ntlm(negotiate())
    assert first is not None and first.kind == 1 and first.user is None
    second = parse_ntlm(challenge())
    assert second is not None and second.kind == 2
    assert second.server_challenge == SERVER_CHALLENGE and second.target == "EXAMPLE"
    third = parse_ntlm(TYPE3)
    assert third is not None and third.kind == 3
    assert (third.domain, third.user, third.workstation) == ("EXAMPLE", "alice", "WS01")
    assert third.nt_response == NT_RESPONSE and third.hash_type == "NetNTLMv2"


def test_parse_ntlm_honours_the_unicode_flag_and_tells_v1_and_anonymous() -> None:
    oem = parse_ntlm(authenticate("bob", "CORP", "PC", b"\x11" * 24, b"\x22" * 24, flags=OEM))
    assert oem is not None and (oem.domain, oem.user, oem.workstation) == ("CORP", "bob", "PC")
    assert oem.hash_type == "NetNTLMv1"
    anonymous = parse_ntlm(authenticate("", "", "PC", b"\x00", b"", flags=UNICODE))
    assert anonymous is not None and anonymous.hash_type == "anonymous"


def test_describe_ntlm_never_shows_the_response() -> None:
    note = describe_ntlm(TYPE3)
    assert note == "NTLM AUTHENTICATE user=EXAMPLE\\alice workstation=WS01 (NetNTLMv2)"
    assert describe_ntlm(challenge()) == (
        "NTLM CHALLENGE server challenge 0123456789abcdef target=EXAMPLE"
    )
    assert describe_ntlm(negotiate()) == "NTLM NEGOTIATE"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.integers(0, 120))
def test_parse_ntlm_never_raises_on_hostile_bytes(noise: bytes, cut: int) -> None:
    for data in (noise, b"NTLMSSP\x00" + noise, TYPE3[:cut] + noise, TYPE3[:cut]):
        msg = parse_ntlm(data)
        assert msg is None or msg.kind in (1, 2, 3)
        describe_ntlm(data)


def _session(protocol: Protocol, steps: list[Step]) -> Session:
    session = make_session(protocol)
    handler = (SmtpSessionHandler if protocol is Protocol.SMTP else Pop3SessionHandler)(session)
    for ts, (direction, data) in enumerate(steps):
        assert isinstance(data, bytes)
        handler.data(ts * 1000, direction, data)
    handler.close(len(steps) * 1000)
    return analyse(session)


SMTP_NTLM: list[Step] = [
    (S, b"220 mx.example.com ESMTP\r\n"),
    (C, b"EHLO ws01\r\n"),
    (S, b"250-mx.example.com\r\n250 AUTH NTLM\r\n"),
    (C, b"AUTH NTLM " + b64(negotiate()) + b"\r\n"),
    (S, b"334 " + b64(challenge()) + b"\r\n"),
    (C, b64(TYPE3) + b"\r\n"),
    (S, b"235 2.7.0 Authentication successful\r\n"),
    (C, b"MAIL FROM:<alice@example.com>\r\n"),
    (S, b"250 ok\r\n"),
    (C, b"RCPT TO:<bob@example.com>\r\n"),
    (S, b"250 ok\r\n"),
    (C, b"DATA\r\n"),
    (S, b"354 go\r\n"),
    (C, b"From: Alice <alice@example.com>\r\nTo: bob@example.com\r\n\r\nhi\r\n.\r\n"),
    (S, b"250 queued\r\n"),
    (C, b"QUIT\r\n"),
]

POP3_NTLM: list[Step] = [
    (S, b"+OK POP3 ready\r\n"),
    (C, b"AUTH NTLM\r\n"),
    (S, b"+ \r\n"),
    (C, b64(negotiate()) + b"\r\n"),
    (S, b"+ " + b64(challenge()) + b"\r\n"),
    (C, b64(TYPE3) + b"\r\n"),
    (S, b"+OK logged in\r\n"),
    (C, b"QUIT\r\n"),
]

HASHCAT = f"alice::EXAMPLE:0123456789abcdef:{PROOF.hex()}:{BLOB.hex()}"


def _cracks(line: str, nt_hash: bytes) -> bool:
    """What hashcat -m 5600 checks: HMAC-MD5(NTOWFv2, server challenge + blob) == NTProofStr."""
    user, _, domain, chal, proof, blob = line.split(":")
    key = hmac.new(nt_hash, (user.upper() + domain).encode("utf-16-le"), hashlib.md5).digest()
    digest = hmac.new(key, bytes.fromhex(chal) + bytes.fromhex(blob), hashlib.md5).hexdigest()
    return digest == proof


def test_smtp_auth_ntlm_names_the_user_not_the_negotiate_message() -> None:
    session = _session(Protocol.SMTP, SMTP_NTLM)
    [attempt] = session.auth
    assert (attempt.username, attempt.domain, attempt.workstation) == ("alice", "EXAMPLE", "WS01")
    assert attempt.hash_type == "NetNTLMv2" and attempt.success is True
    assert attempt.challenge == SERVER_CHALLENGE.hex()
    assert attempt.response == HASHCAT and _cracks(attempt.response, NT_HASH)
    assert not _cracks(attempt.response, bytes(16))
    kinds = {f.kind for f in session.findings}
    assert "from-mismatch" not in kinds
    [crackable] = [f for f in session.findings if f.kind == "crackable-credentials"]
    assert "NetNTLMv2" in crackable.detail and "EXAMPLE\\alice" in crackable.detail
    notes = [line.note or "" for line in session.transcript]
    assert "NTLM NEGOTIATE" in notes
    console = Console(file=io.StringIO(), width=200, color_system=None)
    render_session(console, session)
    assert isinstance(console.file, io.StringIO)
    shown = console.file.getvalue()
    assert "EXAMPLE\\alice" in shown and "NTLMSSP" not in shown
    assert not any("NTLMSSP" in note for note in notes)


def test_pop3_auth_ntlm_fills_the_credential_record_with_the_hashcat_line() -> None:
    session = _session(Protocol.POP3, POP3_NTLM)
    [attempt] = session.auth
    assert (attempt.username, attempt.domain, attempt.hash_type) == (
        "alice",
        "EXAMPLE",
        "NetNTLMv2",
    )
    table = CredentialTable()
    table.add_session(session)
    [row] = table.rows()
    record = credential_record(row)
    assert record["username"] == "alice" and record["domain"] == "EXAMPLE"
    assert record["hash_type"] == "NetNTLMv2" and record["hashcat"] == HASHCAT


def test_ntlm_without_the_server_challenge_still_names_the_user_but_no_hash_line() -> None:
    steps = [(d, b"334 \r\n" if d is S and b"334" in x else x) for d, x in SMTP_NTLM]
    [attempt] = _session(Protocol.SMTP, steps).auth
    assert attempt.username == "alice" and attempt.hash_type == "NetNTLMv2"
    assert attempt.response is None


# ------------------------------------------------------------------ a real NTLM client: curl


def _ntlm_smtp_server(sock: socket.socket, steps: list[Step]) -> None:
    """One SMTP connection offering only AUTH NTLM; every byte either way is kept in `steps`."""
    conn, _ = sock.accept()
    with conn, conn.makefile("rb") as lines:

        def say(data: bytes) -> None:
            steps.append((S, data))
            conn.sendall(data)

        def hear() -> bytes:
            line = lines.readline()
            steps.append((C, line))
            return line

        say(b"220 mx.example.com ESMTP\r\n")
        in_data = False
        while line := hear():
            verb = line.split(b" ", 1)[0].strip().upper()
            if in_data:
                if line == b".\r\n":
                    in_data = False
                    say(b"250 queued\r\n")
            elif verb == b"EHLO":
                say(b"250-mx.example.com\r\n250 AUTH NTLM\r\n")
            elif verb == b"AUTH":
                if len(line.split()) < 3:  # no initial response: ask for the NEGOTIATE
                    say(b"334 \r\n")
                    hear()
                say(b"334 " + b64(challenge()) + b"\r\n")
                hear()  # AUTHENTICATE
                say(b"235 2.7.0 Authentication successful\r\n")
            elif verb == b"DATA":
                in_data = True
                say(b"354 go ahead\r\n")
            elif verb == b"QUIT":
                say(b"221 bye\r\n")
                break
            else:
                say(b"250 ok\r\n")


def test_curl_auth_ntlm_yields_a_hashcat_line_that_checks_against_the_password(
    tmp_path: Path,
) -> None:
    steps: list[Step] = []
    with socket.create_server(("127.0.0.1", 0)) as sock:
        sock.settimeout(30)
        server = threading.Thread(target=_ntlm_smtp_server, args=(sock, steps))
        server.start()
        message = tmp_path / "m.eml"
        message.write_bytes(b"From: alice@example.com\r\nTo: bob@example.com\r\n\r\nhi\r\n")
        proc = subprocess.run(
            [
                "curl", "--silent", "--show-error", "--max-time", "30",
                f"smtp://127.0.0.1:{sock.getsockname()[1]}/ws01",
                "--login-options", "AUTH=NTLM", "--user", "EXAMPLE\\alice:password",
                "--mail-from", "alice@example.com", "--mail-rcpt", "bob@example.com",
                "--upload-file", str(message),
            ],
            capture_output=True,
            timeout=60,
        )  # fmt: skip
        server.join(30)
    assert proc.returncode == 0, proc.stderr
    session = _session(Protocol.SMTP, steps)
    [attempt] = session.auth
    assert (attempt.username, attempt.domain) == ("alice", "EXAMPLE")
    assert attempt.workstation  # curl names a fixed "WORKSTATION"
    assert attempt.success is True and attempt.response is not None
    # curl answers this challenge with NTLMv1 (v2 in other builds): either way the line checks
    # against the NT hash of "password" as hashcat would, and not against another
    check = _cracks if attempt.hash_type == "NetNTLMv2" else _cracks_v1
    assert attempt.hash_type in ("NetNTLMv1", "NetNTLMv2")
    assert check(attempt.response, NT_HASH) and not check(attempt.response, bytes(16))
    assert "from-mismatch" not in {f.kind for f in session.findings}


def _des_key(seven: bytes) -> bytes:
    """Seven key bytes spread over eight DES key bytes (parity bits left 0: DES ignores them)."""
    bits = int.from_bytes(seven, "big")
    return bytes(((bits >> (49 - 7 * i)) & 0x7F) << 1 for i in range(8))


def _cracks_v1(line: str, nt_hash: bytes) -> bool:
    """What hashcat -m 5500 checks: DES of the challenge under the three thirds of the NT hash."""
    _user, _, _domain, _lm, nt, chal = line.split(":")
    key = nt_hash + bytes(5)
    out = b""
    for i in range(3):
        des = TripleDES(_des_key(key[7 * i : 7 * i + 7]) * 3)  # K1 = K2 = K3: single DES
        out += Cipher(des, modes.ECB()).encryptor().update(bytes.fromhex(chal))
    return out.hex() == nt
