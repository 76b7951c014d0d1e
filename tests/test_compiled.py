"""The optional compiled build: in use when it should be, and the same output as pure Python."""

from __future__ import annotations

import hashlib
import importlib
import importlib.machinery
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mailsniff import _compiled
from tests.paths import EQUIVALENTS, PCAPS, PUBLIC, REPO

#: Captures whose `read --json` output must not depend on the build: SMTP (AUTH, BDAT,
#: pipelining, RFC 2047/2231 headers, attachments, GBK), POP3 (pcap and pcapng), IMAP (a
#: Dovecot session with FETCH and APPEND; a sent copy linked to its SMTP submission), STARTTLS,
#: one-sided and gapped flows, a rejected DATA.
CAPTURES = [
    PCAPS / "cc-bcc-smtplib.pcap",
    PCAPS / "pipelining-bdat.pcap",
    PCAPS / "send-forged-gbk.pcap",
    PCAPS / "imap-dovecot.pcap",
    PCAPS / "sent-copy-mutt.pcap",
    PUBLIC / "suricata-verify" / "pop3.pcap",
    PUBLIC / "suricata-verify" / "smtp-rfc2231.pcap",
    PUBLIC / "suricata-verify" / "smtp-bug-5981.pcap",
    PUBLIC / "suricata-verify" / "imap-detection.pcap",
    PUBLIC / "zeek" / "smtp.pcap",
    PUBLIC / "zeek" / "smtp-one-side-only.pcap",
    PUBLIC / "zeek" / "smtp-bdat-gap.pcap",
    PUBLIC / "ndpi" / "pop3.pcapng",
    PUBLIC / "ndpi" / "smtp-starttls.pcap",
    EQUIVALENTS / "smtp-data-rejected.pcap",
]

_EXTENSION = tuple(importlib.machinery.EXTENSION_SUFFIXES)
_PROBE = (
    "import importlib, mailsniff._compiled as c\n"
    "files = {m: importlib.import_module(m).__file__ for m in c.COMPILED_MODULES}\n"
    "print(c.STATUS)\n"
    "print(sorted({f.rsplit('.', 1)[-1] for f in files.values()}))\n"
)


def _probe(cwd: Path, **env: str) -> list[str]:
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **env},
        timeout=120,
        check=True,
    )
    return proc.stdout.splitlines()


def _read_json(path: Path, *options: str, **env: str) -> bytes:
    proc = subprocess.run(
        [sys.executable, "-m", "mailsniff", "read", str(path), *(options or ("--json",))],
        capture_output=True,
        cwd=REPO,
        env={**os.environ, **env},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return proc.stdout


def test_the_ci_build_is_compiled() -> None:
    """Under CI=true (scripts/test.sh builds with a C compiler) every listed module is compiled."""
    expected = os.environ.get("CI") == "true" and not os.environ.get("MAILSNIFF_PURE")
    if not expected and _compiled.STATUS != "compiled":
        pytest.skip(f"this checkout runs the pure-Python build ({_compiled.STATUS})")
    assert _compiled.STATUS == "compiled"
    for name in _compiled.COMPILED_MODULES:
        module = importlib.import_module(name)
        assert module.__file__ is not None and module.__file__.endswith(_EXTENSION), name


def test_mailsniff_pure_runs_the_python_modules() -> None:
    status, suffixes = _probe(REPO, MAILSNIFF_PURE="1")
    assert status == "pure (MAILSNIFF_PURE is set)"
    assert suffixes == "['py']"


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_pure_and_compiled_read_json_are_byte_identical(path: Path) -> None:
    default = _read_json(path)
    pure = _read_json(path, MAILSNIFF_PURE="1")
    assert default.count(b'"type": "session"') + default.count(b'"type":"session"') > 0
    assert pure == default


def test_pure_and_compiled_read_of_a_decrypted_starttls_session_are_byte_identical() -> None:
    """With a key log the TLS layer feeds the (compiled) SMTP session builder the plaintext."""
    options = ("--json", "--keylog", str(PCAPS / "starttls-keylog.keys"))
    default = _read_json(PCAPS / "starttls-keylog.pcap", *options)
    assert b'"decrypted":true' in default.replace(b" ", b"")
    assert _read_json(PCAPS / "starttls-keylog.pcap", *options, MAILSNIFF_PURE="1") == default


@pytest.mark.parametrize("path", CAPTURES[:4], ids=lambda p: p.name)
def test_pure_and_compiled_console_views_are_byte_identical(path: Path) -> None:
    """The console view keeps finished sessions in a pickled spill file: that works either way."""
    default = _read_json(path, "--transcript")
    assert b"Session" in default or b"session" in default
    assert _read_json(path, "--transcript", MAILSNIFF_PURE="1") == default


def _copy_package(tmp_path: Path) -> Path:
    """The package as built (with its extensions and stamp, if compiled) in a scratch tree."""
    shutil.copytree(
        REPO / "mailsniff", tmp_path / "mailsniff", ignore=shutil.ignore_patterns("__pycache__")
    )
    return tmp_path


def _write_stamp(root: Path, **overrides: str) -> None:
    digests = {
        name: hashlib.sha256(
            (root / Path(*name.split("."))).with_suffix(".py").read_bytes()
        ).hexdigest()
        for name in _compiled.COMPILED_MODULES
    }
    digests.update(overrides)
    (root / "mailsniff" / _compiled.STAMP).write_text(json.dumps({"modules": digests}))


def test_a_source_edited_after_the_build_runs_as_python_not_the_stale_extension(
    tmp_path: Path,
) -> None:
    root = _copy_package(tmp_path)
    if not (root / "mailsniff" / _compiled.STAMP).exists():
        _write_stamp(root)  # a pure checkout: pretend it was built, extensions and all
    edited = root / "mailsniff" / "net" / "tcp.py"
    edited.write_text(edited.read_text() + "\n# edited after the build\n")
    status, suffixes = _probe(root)
    assert status == "pure (mailsniff.net.tcp changed since the build)"
    assert suffixes == "['py']"


def test_a_build_stamp_without_its_extensions_runs_as_python(tmp_path: Path) -> None:
    root = _copy_package(tmp_path)
    for path in (root / "mailsniff").rglob("*"):
        if path.name.endswith(_EXTENSION):
            path.unlink()
    _write_stamp(root)
    status, suffixes = _probe(root)
    assert status == "pure (extensions missing)"
    assert suffixes == "['py']"


def test_a_checkout_never_built_runs_as_python(tmp_path: Path) -> None:
    root = _copy_package(tmp_path)
    for path in (root / "mailsniff").rglob("*"):
        if path.name.endswith(_EXTENSION) or path.name == _compiled.STAMP:
            path.unlink()
    status, suffixes = _probe(root)
    assert status == "pure (not built)"
    assert suffixes == "['py']"


def test_without_a_c_compiler_the_package_builds_as_pure_python(tmp_path: Path) -> None:
    """`pip install .` on a machine without a compiler: a py3-none-any wheel, no extensions."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-v",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(tmp_path),
            str(REPO),
        ],  # fmt: skip
        capture_output=True,
        text=True,
        env={**os.environ, "CC": "/nonexistent/cc", "MAILSNIFF_COMPILED": ""},
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert "building the pure-Python version: no C compiler" in proc.stderr + proc.stdout
    (wheel,) = tmp_path.glob("mailsniff-*.whl")
    assert wheel.name.endswith("-py3-none-any.whl")
    import zipfile

    names = zipfile.ZipFile(wheel).namelist()
    assert "mailsniff/reassembly.py" in names
    assert not [n for n in names if n.endswith((".so", ".pyd")) or n.endswith(_compiled.STAMP)]
