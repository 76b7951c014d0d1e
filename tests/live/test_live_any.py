"""`mailsniff live -i any`: every interface at once (Linux cooked frames), as tcpdump -i any.

Root only, like the other live tests: a real SMTP exchange on loopback, captured through the
"any" pseudo-interface, must come out once (loopback shows each packet twice on "any": as
sent and as received) and whole, and the pcap written alongside must read back the same.
"""

from __future__ import annotations

import json
import signal
import smtplib
import subprocess
import sys
import threading
import time
from pathlib import Path

from scapy.layers.inet import IP
from scapy.utils import rdpcap

from mailsniff.net.link import linktype_name
from tests.cli_runner import REPO, read_json
from tests.jsonschema_check import validate_lines
from tests.servers import running_smtp

_DEADLINE = 30.0
MESSAGE = (
    "From: Alice <alice@example.com>\r\n"
    "To: bob@example.com\r\n"
    "Subject: captured on any\r\n"
    "\r\n"
    "hello\r\n"
)


def test_live_on_any_captures_a_loopback_smtp_session_once(tmp_path: Path) -> None:
    pcap = tmp_path / "any.pcap"
    with running_smtp(tls=False) as server:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mailsniff", "live", "-i", "any", "--json"]
            + ["--ports", str(server.port), "-w", str(pcap)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None and proc.stderr is not None
        ready = threading.Event()
        stderr_lines: list[str] = []
        out_lines: list[str] = []
        session_seen = threading.Event()

        def read_err() -> None:
            assert proc.stderr is not None
            for line in proc.stderr:
                stderr_lines.append(line)
                if "capturing on any" in line:
                    ready.set()

        def read_out() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                out_lines.append(line)
                if json.loads(line)["type"] == "session":
                    session_seen.set()

        threads = [threading.Thread(target=f, daemon=True) for f in (read_err, read_out)]
        for t in threads:
            t.start()
        try:
            deadline = time.monotonic() + _DEADLINE
            while not ready.wait(0.05):
                assert proc.poll() is None, "".join(stderr_lines)
                assert time.monotonic() < deadline, "live never said it was capturing"
            with smtplib.SMTP(server.host, server.port, timeout=_DEADLINE) as client:
                client.ehlo("client.example.com")
                client.sendmail("alice@example.com", ["bob@example.com"], MESSAGE)
            assert session_seen.wait(_DEADLINE), "".join(stderr_lines)
            proc.send_signal(signal.SIGINT)
            status = proc.wait(timeout=_DEADLINE)
            for t in threads:
                t.join(_DEADLINE)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=_DEADLINE)
    stderr = "".join(stderr_lines)
    assert status == 0, stderr
    assert "Traceback" not in stderr
    records = validate_lines("".join(out_lines))
    sessions = [r for r in records if r["type"] == "session"]
    assert len(sessions) == 1  # not twice, though "any" sees loopback packets going both ways
    s = sessions[0]
    assert s["server"] == {"ip": "127.0.0.1", "port": server.port}
    assert s["complete"] and not s["gaps"] and not s["anomalies"]
    (t,) = s["transactions"]
    assert t["mail_from"] == "alice@example.com" and t["rcpt_to"] == ["bob@example.com"]
    assert t["message"]["subject"] == "captured on any"
    # The capture file is Linux cooked (SLL), as tcpdump -i any writes, and reads back the same.
    linktype = int.from_bytes(pcap.read_bytes()[20:24], "little")
    assert linktype_name(linktype) == "Linux cooked SLL"
    assert read_json(pcap) == sessions
    # Each loopback packet once: "any" also hands over the sent copy, which must be dropped.
    packets = [bytes(p[IP]) for p in rdpcap(str(pcap))]
    assert len(packets) == records[-1]["frames"] > 10
    assert len(set(packets)) == len(packets)
