"""Start-up cost: the `cryptography` package (several MB, tens of ms to import) is loaded only when
TLS keys are first derived. `mailsniff read` of a cleartext capture, or of a STARTTLS capture
read without its key log, never loads it; with the key log it does, and decrypts."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.import_probe import run_probed
from tests.paths import PCAPS, REPO


def _read(*args: str) -> tuple[list[dict[str, object]], bool]:
    proc, loaded = run_probed("cryptography", "read", "--jobs", "1", "--json", *args)
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    return [r for r in records if r["type"] == "session"], loaded


def test_importing_mailsniff_does_not_load_cryptography() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", "import sys, mailsniff.cli; print('cryptography' in sys.modules)"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.stdout.strip() == "False", proc.stderr


def test_a_cleartext_read_does_not_load_cryptography() -> None:
    sessions, loaded = _read(str(PCAPS / "cc-bcc-smtplib.pcap"))
    assert sessions and all(not s["tls"] for s in sessions)
    assert not loaded


def test_starttls_without_keys_is_described_without_loading_cryptography() -> None:
    sessions, loaded = _read(str(PCAPS / "starttls-keylog.pcap"))
    [session] = sessions
    assert session["tls"] is True
    info = session["tls_info"]
    assert isinstance(info, dict)
    assert info["version"] == "TLS 1.3" and info["decrypted"] is False
    assert not loaded


def test_the_key_log_loads_cryptography_when_it_decrypts() -> None:
    keys = PCAPS / "starttls-keylog.keys"
    sessions, loaded = _read("--keylog", str(keys), str(PCAPS / "starttls-keylog.pcap"))
    [session] = sessions
    info = session["tls_info"]
    assert isinstance(info, dict) and info["decrypted"] is True
    assert loaded
