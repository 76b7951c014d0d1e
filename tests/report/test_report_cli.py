"""`mailsniff report` on the command line: errors are one line and an exit code."""

from __future__ import annotations

import hashlib
from pathlib import Path

from tests.cli_runner import PCAPS, run_cli


def test_missing_capture_is_an_input_error_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    proc = run_cli("report", str(tmp_path / "nope.pcap"), "-o", str(out))
    assert proc.returncode == 3
    assert proc.stderr.startswith("mailsniff: error:") and "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_standard_input_is_refused_the_report_names_files_by_hash(tmp_path: Path) -> None:
    proc = run_cli("report", "-", "-o", str(tmp_path / "r.html"))
    assert proc.returncode == 2
    assert "not standard input" in proc.stderr


def test_unwritable_output_is_exit_8_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    folder = tmp_path / "missing-folder"
    proc = run_cli("report", str(PCAPS / "seed-telnet.pcap"), "-o", str(folder / "r.html"))
    assert proc.returncode == 8
    assert "cannot write the report" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_redact_masks_passwords_in_the_report(tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    proc = run_cli("report", str(PCAPS / "seed-telnet.pcap"), "--redact", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    page = out.read_text(encoding="utf-8")
    assert "mypassword" not in page and "bXlwYXNzd29yZA==" not in page
    assert hashlib.sha256((PCAPS / "seed-telnet.pcap").read_bytes()).hexdigest() in page
