"""--zeek-logs: imap.log, one row per message fetched or appended, keyed to the JSON by uid."""

from __future__ import annotations

from pathlib import Path

from zat.log_to_dataframe import LogToDataFrame

from mailsniff.export.zeek import IMAP_FIELDS
from tests.cli_runner import PCAPS, PUBLIC, read_json
from tests.export.test_zeek_logs import parse_tsv, unescape, zeek_logs

DOVECOT = PCAPS / "imap-dovecot.pcap"


def test_imap_log_one_row_per_message_moved(tmp_path: Path) -> None:
    out = zeek_logs(DOVECOT, tmp_path / "logs")
    fields, types, rows = parse_tsv(out / "imap.log")
    assert fields == [n for n, _ in IMAP_FIELDS] and types == [t for _, t in IMAP_FIELDS]
    sessions = read_json(DOVECOT)
    moved = [(s, m) for s in sessions for m in s["messages"]]
    assert len(rows) == len(moved) == 7
    for row, (s, m) in zip(rows, moved, strict=True):
        assert row["uid"] == s["uid"] and row["command"] == m["command"]
        assert row["mailbox"] == m["imap"]["mailbox"]
        assert row["msg_uid"] == (str(m["imap"]["uid"]) if m["imap"]["uid"] is not None else "-")
        assert row["partial"] == ("T" if m["partial"] else "F")
        assert row["size"] == str(m["message"]["size"])
        assert unescape(row["subject"]) == (m["message"]["subject"] or "-")
        assert row["user"] == "carol" and row["auth_success"] == "T"
        assert row["fuids"].split(",")[0] in (out / "files.log").read_text()
    first = rows[0]
    assert first["client_id"] == "name=imaplib, version=3.11"
    assert "COMPRESS=DEFLATE" in first["capabilities"].split(",")
    assert [r["auth_mechanism"] for r in rows] == ["LOGIN"] * 4 + ["PLAIN"] + ["LOGIN"] * 2
    assert [r["expunged"] for r in rows] == ["0"] * 4 + ["1"] * 3
    appended = rows[3]
    assert (appended["command"], appended["flags"], appended["section"]) == (
        "APPEND Sent",
        "\\x5cSeen",  # the backslash escaped, as Zeek writes it
        "(empty)",
    )
    # files.log: an APPENDed message was sent by the client (is_orig), a fetched one not
    _, _, files = parse_tsv(out / "files.log")
    assert {f["source"] for f in files} == {"IMAP"}
    by_fuid = {f["fuid"]: f["is_orig"] for f in files}
    assert [by_fuid[r["fuids"].split(",")[0]] for r in rows] == ["F", "F", "F", "T", "F", "F", "F"]
    frame = LogToDataFrame().create_dataframe(str(out / "imap.log"))  # a Zeek log reader reads it
    assert list(frame["trans_depth"]) == [1, 2, 3, 4, 1, 1, 2]


def test_imap_session_without_messages_is_one_row_with_zeeks_capabilities(tmp_path: Path) -> None:
    capture = PUBLIC / "zeek" / "imap-starttls.pcap"
    out = zeek_logs(capture, tmp_path / "logs")
    (row,) = parse_tsv(out / "imap.log")[2]
    published = (PUBLIC / "zeek" / "imap-starttls.zeek.imap-capabilities.stdout").read_text()
    zeek_caps = [c.strip() for c in published.splitlines()[-1].strip("[]").split(",")]
    assert row["capabilities"].split(",") == zeek_caps
    assert (row["trans_depth"], row["tls"], row["command"]) == ("0", "T", "-")
    assert row["id.resp_p"] == "143" and row["uid"] == read_json(capture)[0]["uid"]
