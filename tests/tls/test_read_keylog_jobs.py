"""`read --keylog --jobs N`: every worker decrypts with the key log, and the output is the same
as one process's (pcaps/starttls-keylog.pcap)."""

from __future__ import annotations

from tests.cli_runner import PCAPS, run_cli


def test_workers_decrypt_with_the_key_log_as_one_process_does() -> None:
    args = ("read", str(PCAPS / "starttls-keylog.pcap"), "--json", "--transcript",
            "--keylog", str(PCAPS / "starttls-keylog.keys"))  # fmt: skip
    one = run_cli(*args, "--jobs", "1")
    two = run_cli(*args, "--jobs", "2")
    assert one.returncode == 0 and two.returncode == 0, one.stderr + two.stderr
    assert '"decrypted":true' in one.stdout and '"subject":"inside TLS"' in one.stdout
    assert two.stdout == one.stdout
