"""`read -r FILE` (the tcpdump/tshark habit) and the flow ids in the console."""

from __future__ import annotations

import communityid

from tests.cli_runner import PUBLIC, read_json, run_cli

SMTP = PUBLIC / "zeek" / "smtp.pcap"


def test_dash_r_reads_the_same_as_the_positional_argument() -> None:
    positional = run_cli("read", str(SMTP), "--json")
    dash_r = run_cli("read", "-r", str(SMTP), "--json")
    assert positional.returncode == dash_r.returncode == 0
    assert positional.stdout == dash_r.stdout and positional.stdout


def test_capture_given_twice_or_not_at_all_is_a_usage_error() -> None:
    for args in (["read"], ["read", "-r", str(SMTP), str(SMTP)]):
        proc = run_cli(*args)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert "-r FILE" in proc.stderr


def test_console_shows_community_id_and_uid() -> None:
    sessions = read_json(SMTP)
    proc = run_cli("read", "-r", str(SMTP), "--session", "1")
    assert proc.returncode == 0
    first = sessions[0]
    reference = communityid.CommunityID().calc(
        communityid.FlowTuple.make_tcp("10.10.1.4", "74.53.140.153", 1470, 25)
    )
    assert first["community_id"] == str(reference)
    assert f"community id  {first['community_id']}" in proc.stdout
    assert f"uid           {first['uid']}" in proc.stdout
