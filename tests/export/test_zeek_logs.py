"""--zeek-logs: smtp.log checked column by column against Zeek's own baselines for the same
public captures, read back by a Zeek log reader (zat), and joined to the JSON records by uid."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from zat.log_to_dataframe import LogToDataFrame

from mailsniff.export.zeek import FILES_FIELDS, POP3_FIELDS, SMTP_FIELDS
from tests.cli_runner import PUBLIC, read_json, run_cli
from tests.export.captures import message_with_attachments, smtp_steps, write_smtp_capture

ZEEK = PUBLIC / "zeek"
BASELINES = sorted(ZEEK.glob("*.smtp.log"))
SETS = {"rcptto", "to", "cc"}
#: Differ by design: Zeek's uids are random, its ts is when its log record was created.
NOT_COMPARED = {"ts", "uid", "fuids"}


def _capture_of(baseline: Path) -> Path:
    stem = baseline.name.split(".zeek.")[0]
    return next(p for p in (ZEEK / f"{stem}.pcap", ZEEK / f"{stem}.pcapng") if p.exists())


def parse_tsv(path: Path) -> tuple[list[str], list[str], list[dict[str, str]]]:
    """A Zeek ASCII log: (fields, types, rows as raw strings)."""
    fields: list[str] = []
    types: list[str] = []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#fields\t"):
            fields = line.split("\t")[1:]
        elif line.startswith("#types\t"):
            types = line.split("\t")[1:]
        elif not line.startswith("#") and fields:
            rows.append(dict(zip(fields, line.split("\t"), strict=True)))
    return fields, types, rows


def unescape(value: str) -> str:
    """Undo Zeek's \\xNN escapes (the bytes are UTF-8)."""
    return re.sub(
        rb"\\x([0-9a-f]{2})", lambda m: bytes([int(m.group(1), 16)]), value.encode()
    ).decode()


def zeek_logs(capture: Path, out: Path, *extra: str) -> Path:
    proc = run_cli("read", str(capture), "--zeek-logs", str(out), "--summary", *extra)
    assert proc.returncode == 0, proc.stderr
    return out


def _comparable(column: str, value: str) -> object:
    if column in SETS and value not in ("-", "(empty)"):
        return sorted(value.split(","))  # a Zeek set has no order
    return value


# (baseline, Zeek row, column) -> what mailsniff writes instead, and why (docs/zeek-logs.md).
KNOWN_DIFFERENCES: dict[tuple[str, int, str], str] = {
    # A 1000-byte gap inside the BDAT chunk: Zeek's MIME analysis loses the header block,
    # mailsniff resynchronises and still reads From/To/Subject.
    ("smtp-bdat-gap.zeek.bdat-gap.smtp.log", 0, "from"): "sender@example.com",
    ("smtp-bdat-gap.zeek.bdat-gap.smtp.log", 0, "to"): "recipient@example.com",
    ("smtp-bdat-gap.zeek.bdat-gap.smtp.log", 0, "subject"): "Test",
}
# Zeek rows that are not mail transactions to mailsniff, per baseline: Zeek logs RCPT TO and
# DATA sent without an accepted MAIL FROM as rows of their own; mailsniff reports them as
# anomalies and writes a row per MAIL FROM (the refused one is the last row it adds).
ROW_MAP: dict[str, list[tuple[int, int]]] = {
    "smtp-mail-transactions-invalid.zeek.mail-transactions-invalid.smtp.log": [(0, 0), (3, 1)],
}


@pytest.mark.parametrize("baseline", BASELINES, ids=[b.name.split(".")[0] for b in BASELINES])
def test_smtp_log_matches_zeek_column_by_column(baseline: Path, tmp_path: Path) -> None:
    z_fields, z_types, z_rows = parse_tsv(baseline)
    out = zeek_logs(_capture_of(baseline), tmp_path / "logs")
    fields, types, rows = parse_tsv(out / "smtp.log")
    assert (fields, types) == (z_fields, z_types)  # Zeek's columns and types, in Zeek's order
    pairs = ROW_MAP.get(baseline.name, [(i, i) for i in range(len(z_rows))])
    if baseline.name not in ROW_MAP:
        assert len(rows) == len(z_rows)
    compared = 0
    for z_index, index in pairs:
        for column in fields:
            if column in NOT_COMPARED:
                continue
            expected = KNOWN_DIFFERENCES.get(
                (baseline.name, z_index, column), z_rows[z_index][column]
            )
            got = rows[index][column]
            assert _comparable(column, got) == _comparable(column, expected), (
                f"row {index} {column}"
            )
            compared += 1
    assert compared >= 23


def test_refused_mail_from_is_its_own_row(tmp_path: Path) -> None:
    out = zeek_logs(ZEEK / "smtp-mail-transactions-invalid.pcap", tmp_path / "logs")
    _, _, rows = parse_tsv(out / "smtp.log")
    assert [(r["mailfrom"], r["rcptto"], r["trans_depth"], r["last_reply"]) for r in rows] == [
        ("bob@example.org", "alice@example.org", "1", "250 OK id=1pgobK-001mwq-ED"),
        ("bob@example.org", "alice@example.org", "2", "250 OK id=1pgobM-001mwq-Vc"),
        ("bob@example.org", "-", "2", "503 sender already given"),
    ]


@pytest.mark.filterwarnings("ignore:The inplace keyword")  # inside zat, with pandas 3
def test_zat_reads_the_logs_and_uids_join_the_json(tmp_path: Path) -> None:
    capture = ZEEK / "smtp.pcap"
    out = zeek_logs(capture, tmp_path / "logs")
    reader = LogToDataFrame()
    smtp = reader.create_dataframe(str(out / "smtp.log"))
    files = reader.create_dataframe(str(out / "files.log"))
    assert list(smtp["mailfrom"]) == ["gurpartap@patriots.in", "albert@example.com"]
    assert list(smtp["id.resp_p"]) == [25, 25]
    assert list(smtp["trans_depth"]) == [1, 1]
    assert smtp.index.name == "ts" and smtp.index[0].year == 2009  # Zeek time, read as time
    sessions = read_json(capture)
    assert list(smtp["uid"]) == [s["uid"] for s in sessions]
    # files.log: the message and its attachment, keyed to the connection and to smtp.log
    news = files[files["filename"] == "NEWS.txt"].iloc[0]
    assert news["uid"] == sessions[0]["uid"]
    attachment = sessions[0]["transactions"][0]["message"]["attachments"][0]
    assert news["sha256"] == attachment["sha256"] and news["seen_bytes"] == attachment["size"]
    assert news["fuid"] in smtp.iloc[0]["fuids"]
    parent = files[files["fuid"] == news["parent_fuid"]].iloc[0]
    assert parent["mime_type"] == "message/rfc822"
    assert parent["sha256"] == sessions[0]["transactions"][0]["message"]["sha256"]
    # Zeek counts the message at 14545 bytes (its rfc822 file analysis baseline)
    assert parent["seen_bytes"] == 14545


def test_json_flavour_has_the_same_facts(tmp_path: Path) -> None:
    capture = ZEEK / "smtp.pcap"
    tsv = zeek_logs(capture, tmp_path / "tsv")
    js = zeek_logs(capture, tmp_path / "json", "--zeek-json")
    _, _, rows = parse_tsv(tsv / "smtp.log")
    lines = (js / "smtp.log").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == len(rows) == 2
    first = records[0]
    assert first["uid"] == rows[0]["uid"] and first["id.orig_h"] == "10.10.1.4"
    assert first["id.orig_p"] == 1470 and first["tls"] is False
    assert first["rcptto"] == ["raj_deol2002in@yahoo.co.in"]
    assert first["path"] == ["74.53.140.153", "10.10.1.4"]
    assert "cc" not in first  # unset fields are left out, as Zeek's JSON does
    assert f"{first['ts']:.6f}" == rows[0]["ts"]
    assert all(json.loads(line)["source"] == "SMTP" for line in (js / "files.log").open())


def test_pop3_log_one_row_per_retrieval(tmp_path: Path) -> None:
    capture = PUBLIC / "suricata-verify" / "pop3.pcap"
    out = zeek_logs(capture, tmp_path / "logs")
    fields, types, rows = parse_tsv(out / "pop3.log")
    assert fields == [n for n, _ in POP3_FIELDS] and types == [t for _, t in POP3_FIELDS]
    sessions = read_json(capture)
    retrieved = [(s["uid"], m) for s in sessions for m in s["messages"]]
    with_messages = [r for r in rows if r["command"] != "-"]
    assert len(with_messages) == len(retrieved) > 0
    for row, (uid, m) in zip(with_messages, retrieved, strict=True):
        assert row["uid"] == uid and row["command"] == m["command"]
        assert row["size"] == str(m["message"]["size"])
        assert unescape(row["subject"]) == (m["message"]["subject"] or "-")
        assert row["fuids"].split(",")[0] in (out / "files.log").read_text()
    _, _, files = parse_tsv(out / "files.log")
    assert {f["source"] for f in files} == {"POP3"} and {f["is_orig"] for f in files} == {"F"}


def test_starttls_row_like_zeek(tmp_path: Path) -> None:
    out = zeek_logs(ZEEK / "smtp-starttls.pcap", tmp_path / "logs")
    fields, _, rows = parse_tsv(out / "smtp.log")
    assert [(r["tls"], r["last_reply"], r["mailfrom"]) for r in rows] == [
        ("T", "220 2.0.0 Ready to start TLS", "-")
    ]


def test_hostile_header_values_cannot_break_the_columns(tmp_path: Path) -> None:
    message = (
        b"From: a\tb <a@example.com>\r\n"
        b'To: x@example.com, "Doe, J" <j@example.com>\r\n'
        b"Subject: -\r\n"
        b"X-Mailer: evil\x1b[31mred\x07\r\n"
        b"Received: from relay (relay [192.0.2.7]) by mx (mx [198.51.100.9]);\r\n"
        b" Mon, 1 Jan 2024 00:00:00 +0000\r\n"
        b"X-Originating-IP: [203.0.113.5]\r\n"
        b"In-Reply-To: <parent@example.com>\r\n"
        b"\r\nbody\r\n"
    )
    pcap = write_smtp_capture(tmp_path / "h.pcap", smtp_steps([message]))
    out = zeek_logs(pcap, tmp_path / "logs")
    text = (out / "smtp.log").read_text()
    assert "\x1b" not in text and "\x07" not in text
    fields, _, rows = parse_tsv(out / "smtp.log")
    row = rows[0]
    assert len(row) == len(SMTP_FIELDS)
    assert row["from"] == "a\\x09b <a@example.com>"
    assert row["user_agent"] == "evil\\x1b[31mred\\x07"
    assert row["subject"] == "\\x2d"  # a subject "-" is not the unset mark
    assert sorted(row["to"].split(",")) == sorted(['"Doe\\x2c J" <j@example.com>', "x@example.com"])
    assert row["x_originating_ip"] == "203.0.113.5" and row["in_reply_to"] == "<parent@example.com>"
    # Zeek's path: server, client, then the address each Received header names (the second
    # one when it names several)
    assert row["path"] == f"{row['id.resp_h']},{row['id.orig_h']},198.51.100.9"
    assert row["first_received"].startswith("from relay")


def test_attachment_rows(tmp_path: Path) -> None:
    message = message_with_attachments([(b"report.pdf", b"%PDF-1.4 " * 100), (b"a.txt", b"hi")])
    pcap = write_smtp_capture(tmp_path / "a.pcap", smtp_steps([message]))
    out = zeek_logs(pcap, tmp_path / "logs")
    fields, types, files = parse_tsv(out / "files.log")
    assert fields == [n for n, _ in FILES_FIELDS] and types == [t for _, t in FILES_FIELDS]
    named = {f["filename"]: f for f in files}
    assert named["report.pdf"]["seen_bytes"] == "900" and named["a.txt"]["seen_bytes"] == "2"
    assert named["report.pdf"]["parent_fuid"] == named["-"]["fuid"]
    _, _, smtp = parse_tsv(out / "smtp.log")
    assert smtp[0]["fuids"].split(",") == [f["fuid"] for f in files]


def test_planted_link_is_refused(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("keep")
    os.symlink(victim, logs / "smtp.log")
    proc = run_cli("read", str(ZEEK / "smtp.pcap"), "--zeek-logs", str(logs), "--summary")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "smtp.log" in proc.stderr
    assert victim.read_text() == "keep"


def test_unusable_folder_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc = run_cli("read", str(ZEEK / "smtp.pcap"), "--zeek-logs", str(blocker / "sub"))
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "cannot write Zeek logs" in proc.stderr


def test_zeek_json_needs_zeek_logs() -> None:
    proc = run_cli("read", str(ZEEK / "smtp.pcap"), "--zeek-json")
    assert proc.returncode == 2 and "--zeek-logs" in proc.stderr
