"""Start-up cost: what `read` does not use is not imported. `email.policy` (its header registry,
4 ms) is never needed: compat32, which mailsniff reads with, is the default of `Message` and
`BytesParser`. `multiprocessing` is loaded only when `--jobs` forks workers."""

from __future__ import annotations

from tests.import_probe import run_probed
from tests.paths import PCAPS, PUBLIC


def test_reading_mail_imports_no_email_policy() -> None:
    proc, policy = run_probed("email.policy", "read", str(PCAPS / "seed-telnet.pcap"), "--json")
    assert proc.returncode == 0, proc.stderr
    assert not policy
    # A message/rfc822 attachment, re-serialised (with compat32) to hash it.
    capture = PUBLIC / "zeek" / "smtp-attachment-msg.pcap"
    proc, policy = run_probed("email.policy", "read", str(capture), "--json")
    assert proc.returncode == 0, proc.stderr
    assert '"content_type":"message/rfc822","size":34,"sha256":"d875de840b0f' in proc.stdout
    assert not policy


def test_multiprocessing_is_loaded_only_to_fork_workers() -> None:
    for jobs, forks in (("1", False), ("2", True)):
        capture = str(PCAPS / "seed-telnet.pcap")
        proc, loaded = run_probed("multiprocessing", "read", capture, "--json", "--jobs", jobs)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.splitlines()[-1].startswith('{"type":"summary","sessions":3,')
        assert loaded is forks
