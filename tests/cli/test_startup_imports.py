"""Start-up cost: what `read` does not use is not imported. `email.policy` (its header registry,
4 ms) is never needed: compat32, which mailsniff reads with, is the default of `Message` and
`BytesParser`. `multiprocessing` is loaded only when `--jobs` forks workers, `tempfile` only to
park a session, `gzip` only for a compressed capture, `glob` only for a pattern."""

from __future__ import annotations

import pytest

from tests.import_probe import run_probed
from tests.paths import PCAPS, PUBLIC

SEED = str(PCAPS / "seed-telnet.pcap")


@pytest.mark.parametrize("module", ["email.policy", "multiprocessing", "tempfile", "gzip", "glob"])
def test_read_json_in_one_process_leaves_out(module: str) -> None:
    proc, imported = run_probed(module, "read", SEED, "--json", "--jobs", "1")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1].startswith('{"type":"summary","sessions":3,')
    assert not imported


def test_a_message_rfc822_attachment_is_hashed_without_email_policy() -> None:
    # The attached message is re-serialised (with compat32) to hash it.
    capture = PUBLIC / "zeek" / "smtp-attachment-msg.pcap"
    proc, policy = run_probed("email.policy", "read", str(capture), "--json")
    assert proc.returncode == 0, proc.stderr
    assert '"content_type":"message/rfc822","size":34,"sha256":"d875de840b0f' in proc.stdout
    assert not policy


def test_multiprocessing_is_loaded_to_fork_workers() -> None:
    proc, loaded = run_probed("multiprocessing", "read", SEED, "--json", "--jobs", "2")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1].startswith('{"type":"summary","sessions":3,')
    assert loaded
