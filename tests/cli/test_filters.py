"""The filters of read, creds and report: --address, --finding, --host (CIDR), --port,
--protocol, --since/--until and -f (BPF), one module shared by the three commands."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mailsniff.analysis.select import (
    Selection,
    parse_addresses,
    parse_networks,
    parse_time,
)
from mailsniff.cli import app
from mailsniff.errors import UsageError
from tests.cli_runner import PCAPS, PUBLIC, run_cli

#: 1 SMTP 192.168.1.100 -> 202.108.5.81:25 (2006-07-03 13:07:18, auth failed then ok,
#: from-mismatch, sender-rejected), 2 POP3 -> 202.108.5.104:110 (13:08:37, from-mismatch),
#: 3 SMTP 222.177.8.218 -> 220.181.12.11:25 (2011-05-17 02:35:22, name@youname.com ->
#: tonanme@them.com, no finding).
SEED = str(PCAPS / "seed-telnet.pcap")
#: alice -> To bob, Cc carol, Bcc dave (envelope only).
CC_BCC = str(PCAPS / "cc-bcc-smtplib.pcap")


def _invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def _records(path: str, *extra: str) -> list[dict[str, Any]]:
    result = _invoke("read", path, "--json", *extra)
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert records[-1]["type"] == "summary"
    return records


def _read(path: str, *extra: str) -> tuple[list[int], dict[str, Any]]:
    """Session ids and the summary record of `read PATH --json EXTRA` (in process)."""
    records = _records(path, *extra)
    return [r["id"] for r in records[:-1]], records[-1]


#: The seed's sessions by server port and client: ids without -f (with -f, the packets left
#: are the capture, and sessions are numbered in it, as in a file tcpdump wrote).
_SEED_BY_ENDS = {
    ("192.168.1.100", 25): 1,
    ("192.168.1.100", 110): 2,
    ("222.177.8.218", 25): 3,
}


def _read_bpf(path: str, *extra: str) -> tuple[list[int], dict[str, Any]]:
    records = _records(path, *extra)
    ids = [_SEED_BY_ENDS[(r["client"]["ip"], r["server"]["port"])] for r in records[:-1]]
    return ids, records[-1]


def _usage_error(*args: str) -> str:
    result = _invoke(*args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("mailsniff: error: ")
    return lines[0]


# -- --address ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "dave@example.com",  # Bcc: in the envelope only
        "DAVE@Example.COM",  # case-insensitive
        "<dave@example.com>",  # as written in an envelope
        "carol@example.com",  # Cc header and envelope
        "alice@example.com",  # MAIL FROM and header From
        "@EXAMPLE.com",  # the whole domain
        "nobody@example.org,dave@example.com",  # comma list: any of them
    ],
)
def test_address_matches_envelope_and_headers_in_any_role(address: str) -> None:
    ids, summary = _read(CC_BCC, "--address", address)
    assert ids == [1]
    assert summary["sessions_filtered_out"] == 0


def test_address_matches_a_header_only_address_of_a_retrieved_message() -> None:
    # cccc@163.com is only ever in From headers: the SMTP message and both POP3 retrievals.
    ids, summary = _read(SEED, "--address", "cccc@163.com")
    assert ids == [1, 2]
    assert summary["sessions_filtered_out"] == 1


def test_address_nobody_used_leaves_every_session_out_and_says_how_many() -> None:
    ids, summary = _read(SEED, "--address", "nobody@example.org")
    assert ids == []
    assert summary["sessions"] == 0
    assert summary["sessions_filtered_out"] == 3


@pytest.mark.parametrize("value", ["", "@", "a@b@c"])
def test_an_address_that_is_not_one_is_a_usage_error(value: str) -> None:
    assert "--address" in _usage_error("read", SEED, "--address", value)


# -- --finding ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("auth-failed", [1]),
        ("from-mismatch", [1, 2]),
        ("sender-rejected,auth-failed", [1]),
        ("FROM-MISMATCH", [1, 2]),
        ("gap", []),
    ],
)
def test_finding_keeps_sessions_with_that_kind(kind: str, expected: list[int]) -> None:
    ids, summary = _read(SEED, "--finding", kind)
    assert ids == expected
    assert summary["sessions_filtered_out"] == 3 - len(expected)


def test_an_unknown_finding_kind_is_a_usage_error_listing_the_kinds() -> None:
    line = _usage_error("read", SEED, "--finding", "bcc-ish")
    assert "unknown kind 'bcc-ish'" in line
    for kind in ("cleartext-credentials", "bcc", "from-mismatch", "overlap-conflict"):
        assert kind in line


# -- --host, --port, --protocol ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("hosts", "expected"),
    [
        (["202.108.5.0/24"], [1, 2]),
        (["202.108.5.104"], [2]),
        (["220.181.0.0/16"], [3]),
        (["192.168.0.0/16"], [1, 2]),  # the client end counts too
        (["202.108.5.81,220.181.12.11"], [1, 3]),
        (["202.108.5.81", "220.181.12.11"], [1, 3]),
        (["2001:db8::/32"], []),
    ],
)
def test_host_takes_addresses_and_cidr_ranges(hosts: list[str], expected: list[int]) -> None:
    args = [arg for h in hosts for arg in ("--host", h)]
    ids, summary = _read(SEED, *args)
    assert ids == expected
    assert summary["sessions_filtered_out"] == 3 - len(expected)


@pytest.mark.parametrize("value", ["202.108.5", "10.0.0.0/33", "example.com"])
def test_a_bad_host_is_a_usage_error(value: str) -> None:
    assert "--host: not an IP address or CIDR range" in _usage_error("read", SEED, "--host", value)


@pytest.mark.parametrize(
    ("protocols", "expected"),
    [(["pop3"], [2]), (["smtp"], [1, 3]), (["pop3,SMTP"], [1, 2, 3]), (["imap"], [])],
)
def test_protocol_takes_comma_lists(protocols: list[str], expected: list[int]) -> None:
    ids, _ = _read(SEED, *[a for p in protocols for a in ("--protocol", p)])
    assert ids == expected


def test_an_unknown_protocol_is_a_usage_error_naming_the_known_ones() -> None:
    line = _usage_error("read", SEED, "--protocol", "smtp,ftp")
    assert "unknown protocol 'ftp'" in line and "pop3" in line


def test_filters_combine_as_and() -> None:
    ids, _ = _read(SEED, "--host", "202.108.5.0/24", "--port", "25")
    assert ids == [1]


# -- --since / --until --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--since", "2010-01-01"], [3]),
        (["--since", "2011-05-17T10:35:00+08:00"], [3]),  # a zone is honoured
        (["--until", "2006-07-03T13:08:00Z"], [1]),
        (["--since", "2006-07-03T13:08:35", "--until", "2007-01-01"], [2]),
        (["--since", "1273000000"], [3]),  # epoch seconds (2010-05-04)
        (["--until", "1151932100.5"], [1]),  # 2006-07-03T13:08:20.5Z
        # a session active across --since is kept (it ends after it)
        (["--since", "2006-07-03T13:08:00Z", "--until", "2006-07-03T13:08:01Z"], [1]),
    ],
)
def test_since_until_keep_sessions_active_in_the_window(
    args: list[str], expected: list[int]
) -> None:
    ids, _ = _read(SEED, *args)
    assert ids == expected


def test_a_bad_time_and_a_window_ending_before_it_starts_are_usage_errors() -> None:
    assert "--since: not a time: 'yesterday'" in _usage_error("read", SEED, "--since", "yesterday")
    assert "is after --until" in _usage_error(
        "read", SEED, "--since", "2011-01-01", "--until", "2010-01-01"
    )


def test_parse_time_forms() -> None:
    epoch = 1_151_932_038 * 10**9  # 2006-07-03T13:07:18Z
    assert parse_time("2006-07-03T13:07:18Z", "--since") == epoch
    assert parse_time("2006-07-03 13:07:18", "--since") == epoch
    assert parse_time("2006-07-03T21:07:18+08:00", "--since") == epoch
    assert parse_time("1151932038", "--since") == epoch
    assert parse_time("1151932038.25", "--since") == epoch + 250_000_000
    assert parse_time(None, "--since") is None
    with pytest.raises(UsageError):
        parse_time("nan", "--since")


# -- -f BPF ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("tcp port 110", [2]),
        ("host 220.181.12.11", [3]),
        ("tcp port 25 and not net 220.181.0.0/16", [1]),
    ],
)
def test_bpf_selects_packets_as_tcpdump_does(expression: str, expected: list[int]) -> None:
    ids, summary = _read_bpf(SEED, "-f", expression)
    assert ids == expected
    tcpdump = subprocess.run(
        ["tcpdump", "-nn", "-r", SEED, expression], capture_output=True, text=True, check=True
    )
    # The packets read are exactly those tcpdump selects with the same expression.
    assert summary["frames"] == len(tcpdump.stdout.splitlines())


def test_bpf_runs_before_decoding_one_direction_only_is_what_is_left() -> None:
    # Only the server's packets of the POP3 session: the client's password is never seen.
    result = _invoke("read", SEED, "--json", "-f", "src host 202.108.5.104")
    assert result.exit_code == 0, result.output
    session = json.loads(result.stdout.splitlines()[0])
    assert session["server"] == {"ip": "202.108.5.104", "port": 110}
    assert "mypassword" not in result.stdout


def test_an_invalid_bpf_is_a_usage_error_with_libpcaps_reason() -> None:
    line = _usage_error("read", SEED, "-f", "tcp port nope")
    assert line == "mailsniff: error: -f: invalid filter 'tcp port nope': unknown port 'nope'"


def test_bpf_on_a_pcapng_file(tmp_path: Path) -> None:
    target = tmp_path / "seed.pcapng"
    subprocess.run(
        ["tshark", "-F", "pcapng", "-r", SEED, "-w", str(target)], check=True, capture_output=True
    )
    ids, summary = _read_bpf(str(target), "-f", "tcp port 110")
    assert ids == [2]
    assert summary["frames"] == 37


def test_bpf_on_a_bsd_loopback_capture_link_type_0() -> None:
    # Link type 0 (NULL, BSD loopback) is compiled for as it is, not mistaken for "no link
    # type given" and compiled for some interface's link type instead.
    path = str(PUBLIC / "suricata-verify" / "smtp-pipelining.pcap")
    _, summary = _read(path, "-f", "src port 25")
    tcpdump = subprocess.run(
        ["tcpdump", "-nn", "-r", path, "src port 25"], capture_output=True, text=True, check=True
    )
    assert summary["frames"] == len(tcpdump.stdout.splitlines()) == 9


# -- the same filters in --jobs workers, creds and report -------------------------------------


def test_filters_give_the_same_result_with_worker_processes() -> None:
    args = ("--host", "202.108.5.0/24", "--finding", "from-mismatch", "-f", "tcp")
    one = run_cli("read", SEED, "--json", "--jobs", "1", *args)
    two = run_cli("read", SEED, "--json", "--jobs", "2", *args)
    assert one.returncode == two.returncode == 0, two.stderr
    assert one.stdout == two.stdout
    assert json.loads(two.stdout.splitlines()[-1])["sessions_filtered_out"] == 1


def test_creds_takes_the_filters_and_shows_client_and_server() -> None:
    result = _invoke("creds", SEED, "--json", "--protocol", "pop3")
    assert result.exit_code == 0, result.output
    [record] = [json.loads(line) for line in result.stdout.splitlines()]
    assert record["clients"] == ["192.168.1.100"]
    assert record["server"] == {"ip": "202.108.5.104", "port": 110}
    result = _invoke("creds", SEED, "--json", "--since", "2010-01-01")
    assert result.exit_code == 0 and result.stdout == ""  # session 3 authenticated no one
    assert "3 sessions filtered out" not in result.stderr
    assert "2 sessions filtered out" in result.stderr


def test_creds_console_table_has_client_and_server() -> None:
    result = _invoke("creds", SEED, "--no-plain", "--host", "202.108.5.81")
    assert result.exit_code == 0, result.output
    assert "client -> server" in result.stdout
    assert "192.168.1.100" in result.stdout and "-> 202.108.5.81:25" in result.stdout
    assert "202.108.5.104" not in result.stdout


def test_report_takes_the_filters(tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    proc = run_cli("report", SEED, "-o", str(out), "--protocol", "pop3", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    page = out.read_text()
    assert "tonanme@them.com" not in page  # session 3's recipient
    assert "202.108.5.104" in page
    assert "<th>filtered out</th><td>2 sessions" in page


# -- the Selection itself ---------------------------------------------------------------------


def test_selection_matches_ipv6_ends_against_cidr_ranges() -> None:
    import ipaddress

    selection = Selection(networks=parse_networks(["2001:db8::/32"]))
    inside = ipaddress.ip_address("2001:db8::25").packed
    outside = ipaddress.ip_address("2001:db9::1").packed
    v4 = ipaddress.ip_address("10.0.0.1").packed
    assert selection.keeps_flow((outside, 4000), (inside, 25))
    assert not selection.keeps_flow((outside, 4000), (v4, 25))
    assert parse_addresses(["<Bob@Example.COM>"]) == frozenset({"bob@example.com"})
