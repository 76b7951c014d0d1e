"""The public IMAP captures against what Zeek and Suricata publish for them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import yaml

from tests.cli_runner import read_json
from tests.e2e.test_zeek_other_baselines import zeek_log
from tests.paths import PUBLIC

ZEEK = PUBLIC / "zeek"
SURICATA = PUBLIC / "suricata-verify"


def seconds(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()


def only(path: Any, *extra: str) -> dict[str, Any]:
    (session,) = read_json(path, *extra)
    return session


def test_zeek_imap_starttls_conn_log_capabilities_and_tls() -> None:
    (row,) = zeek_log(ZEEK / "imap-starttls.zeek.imap-starttls.conn.log")
    s = only(ZEEK / "imap-starttls.pcap", "--transcript")
    assert s["protocol"] == "imap" and row["service"] == "imap,ssl"
    assert (s["client"]["ip"], s["client"]["port"]) == (row["id.orig_h"], int(row["id.orig_p"]))
    assert (s["server"]["ip"], s["server"]["port"]) == (row["id.resp_h"], int(row["id.resp_p"]))
    assert (s["client_bytes"], s["server_bytes"]) == (540, 5653)
    assert (int(row["orig_bytes"]), int(row["resp_bytes"])) == (540, 5653)
    assert row["conn_state"] == "SF" and s["close_reason"] == "fin" and s["complete"]
    assert abs((seconds(s["end"]) - seconds(s["start"])) - float(row["duration"])) < 0.001
    # Zeek's imap-capabilities baseline: the list of the untagged CAPABILITY answer
    published = (ZEEK / "imap-starttls.zeek.imap-capabilities.stdout").read_text().splitlines()
    assert s["capabilities"] == [c.strip() for c in published[-1].strip("[]").split(",")]
    # Zeek's starttls baseline prints "Tls started for connection": the rest is encrypted
    assert "Tls started" in (ZEEK / "imap-starttls.zeek.imap-starttls.stdout").read_text()
    assert s["tls"] is True
    assert "TLS from here on: not parsed" in [t["note"] for t in s["transcript"]]
    assert s["auth"] == [] and s["messages"] == []


def test_suricata_imap_detection_flow() -> None:
    spec = yaml.safe_load((SURICATA / "imap-detection.imap-detection.test.yaml").read_text())
    (check,) = spec["checks"]
    flow = check["filter"]["match"]
    s = only(SURICATA / "imap-detection.pcap")
    assert flow["app_proto"] == s["protocol"] == "imap"
    assert (s["client"]["ip"], s["client"]["port"]) == (flow["src_ip"], flow["src_port"])
    assert (s["server"]["ip"], s["server"]["port"]) == (flow["dest_ip"], flow["dest_port"])
    # flow.age: whole seconds from the first packet to the last
    assert int(seconds(s["end"])) - int(seconds(s["start"])) == flow["flow.age"] == 26
    assert flow["flow.state"] == "closed" and s["close_reason"] == "fin" and s["complete"]
