"""read --extract DIR: messages (RFC 5322) as .eml, attachments (RFC 2045, 2183), manifest."""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import json
import os
import re
import smtplib
import sys
from email.generator import BytesGenerator
from io import BytesIO
from pathlib import Path
from typing import Any

from tests.cli_runner import run_cli
from tests.export.captures import message_with_attachments, smtp_steps, write_smtp_capture
from tests.export.schemas import validated
from tests.paths import PCAPS, PUBLIC

HEX64 = re.compile(r"[0-9a-f]{64}")


def _make_pcaps() -> Any:
    spec = importlib.util.spec_from_file_location("make_pcaps", PCAPS / "make_pcaps.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("make_pcaps", module)  # dataclasses look their module up
    spec.loader.exec_module(sys.modules["make_pcaps"])
    module = sys.modules["make_pcaps"]
    return module


def extract(capture: Path, folder: Path, *extra: str) -> list[dict[str, Any]]:
    proc = run_cli("read", str(capture), "--extract", str(folder), "--summary", *extra)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return manifest(folder)


def manifest(folder: Path) -> list[dict[str, Any]]:
    lines = (folder / "manifest.jsonl").read_bytes().splitlines()
    return [validated(json.loads(line), "manifest") for line in lines]


def files_under(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sent_by_smtplib(msg: Any) -> bytes:
    """The bytes smtplib's send_message puts after DATA, before dot-stuffing (Python 3.11)."""
    copied = copy.copy(msg)
    del copied["Bcc"]
    del copied["Resent-Bcc"]
    out = BytesIO()
    BytesGenerator(out).flatten(copied, linesep="\r\n")
    data = out.getvalue()
    return data if data.endswith(smtplib.bCRLF) else data + smtplib.bCRLF  # SMTP.data()


def test_extract_writes_the_smtplib_message_and_its_attachment_byte_for_byte(
    tmp_path: Path,
) -> None:
    make_pcaps = _make_pcaps()
    msg, _recipients = make_pcaps.cc_bcc_message()
    sent = sent_by_smtplib(msg)
    csv = msg.get_payload()[1].get_payload(decode=True)
    assert csv == b"quarter,revenue\nQ1,100\nQ2,120\nQ3,135\n"

    records = extract(PCAPS / "cc-bcc-smtplib.pcap", tmp_path / "out")
    files = files_under(tmp_path / "out")

    assert files[f"{sha256(sent)}.eml"] == sent
    assert files[f"attachments/{sha256(csv)}"] == csv
    (record,) = records
    assert record["file"] == f"{sha256(sent)}.eml"
    assert (record["size"], record["sha256"]) == (len(sent), sha256(sent))
    assert record["attachments"] == [
        {
            "filename": "report-q3.csv",
            "content_type": "text/csv",
            "disposition": "attachment",
            "size": len(csv),
            "sha256": sha256(csv),
            "file": f"attachments/{sha256(csv)}",
        }
    ]


def test_manifest_links_each_message_to_its_session_envelope_and_headers(tmp_path: Path) -> None:
    (record,) = extract(PCAPS / "cc-bcc-smtplib.pcap", tmp_path / "out")
    proc = run_cli("read", str(PCAPS / "cc-bcc-smtplib.pcap"), "--json")
    session = json.loads(proc.stdout.splitlines()[0])
    txn = session["transactions"][0]

    assert record["session"]["protocol"] == "smtp"
    assert record["session"]["client"] == session["client"]
    assert record["session"]["server"] == session["server"]
    assert record["session"]["start"] == session["start"]
    assert record["session"]["authenticated_user"] == "alice"
    assert record["envelope"]["mail_from"] == "alice@example.com"
    assert record["envelope"]["rcpt_accepted"] == txn["rcpt_accepted"]
    assert record["envelope"]["bcc"] == ["dave@example.com"]
    assert record["envelope"]["data_reply"] == txn["data_reply"]
    assert record["headers"]["subject"] == "季度报告 Q3 report"
    assert record["headers"]["to"] == [{"name": "", "address": "bob@example.com"}]
    assert record["sha256"] == txn["message"]["sha256"]
    assert record["command"] == "DATA"


def test_extract_matches_suricata_and_zeek_on_the_news_txt_attachment(tmp_path: Path) -> None:
    records = extract(PUBLIC / "suricata-verify" / "bug-3616-smtp.pcap", tmp_path / "out")
    (record,) = records
    (news,) = [a for a in record["attachments"] if a["filename"] == "NEWS.txt"]
    data = (tmp_path / "out" / news["file"]).read_bytes()
    # suricata-verify smtp-eve: fileinfo.filename NEWS.txt, fileinfo.size 10807
    assert len(data) == news["size"] == 10807
    assert sha256(data) == news["sha256"]
    # Zeek's file analysis wrote the same bytes (after its btest header line), plus the CRLF
    # that RFC 2046 5.1.1 gives to the boundary delimiter that follows
    zeek = (PUBLIC / "zeek" / "smtp.zeek.file-analysis-smtp.thefile2").read_bytes()
    assert zeek.split(b"\n", 1)[1] == data + b"\r\n"


def test_extract_matches_arkime_sha256_and_md5_of_the_zip_attachment(tmp_path: Path) -> None:
    expected = json.loads((PUBLIC / "arkime" / "smtp-zip.arkime.test.json").read_text())
    email = expected["sessions3"][0]["body"]["email"]
    (record,) = extract(PUBLIC / "arkime" / "smtp-zip.pcap", tmp_path / "out")
    (attachment,) = record["attachments"]
    data = (tmp_path / "out" / attachment["file"]).read_bytes()
    assert [attachment["filename"]] == email["filename"] == ["a.zip"]
    assert [hashlib.sha256(data).hexdigest()] == email["sha256"]
    assert [hashlib.md5(data).hexdigest()] == email["md5"]


def test_eml_files_are_the_messages_as_transferred_after_dot_unstuffing(tmp_path: Path) -> None:
    first = b"Subject: one\r\n\r\n.leading dot\r\n..two dots\r\nend\r\n"
    second = b"Subject: two\r\n\r\nplain\r\n"
    capture = write_smtp_capture(tmp_path / "c.pcap", smtp_steps([first, second]))
    records = extract(capture, tmp_path / "out")
    files = files_under(tmp_path / "out")
    assert [r["sha256"] for r in records] == [sha256(first), sha256(second)]
    assert files[f"{sha256(first)}.eml"] == first
    assert files[f"{sha256(second)}.eml"] == second


def test_a_second_run_into_the_same_folder_adds_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    extract(PCAPS / "cc-bcc-smtplib.pcap", out)
    extract(PCAPS / "seed-telnet.pcap", out)
    before = files_under(out)
    stats = {p: os.stat(out / p).st_mtime_ns for p in before}
    extract(PCAPS / "cc-bcc-smtplib.pcap", out)
    extract(PCAPS / "seed-telnet.pcap", out)
    after = files_under(out)
    assert after == before
    assert {p: os.stat(out / p).st_mtime_ns for p in after} == stats
    keys = [r["key"] for r in manifest(out)]
    assert len(keys) == len(set(keys)) == 5  # cc-bcc: 1; seed: 2 DATA + TOP + RETR


def test_the_same_message_twice_is_one_file_and_two_manifest_lines(tmp_path: Path) -> None:
    message = b"Subject: again\r\n\r\nsame bytes\r\n"
    capture = write_smtp_capture(tmp_path / "c.pcap", smtp_steps([message, message]))
    records = extract(capture, tmp_path / "out")
    assert [r["file"] for r in records] == [f"{sha256(message)}.eml"] * 2
    assert len({r["key"] for r in records}) == 2
    assert [p for p in files_under(tmp_path / "out") if p.endswith(".eml")] == [
        f"{sha256(message)}.eml"
    ]


def test_pop3_retr_and_top_are_extracted_top_marked_partial(tmp_path: Path) -> None:
    records = extract(PCAPS / "seed-telnet.pcap", tmp_path / "out", "--protocol", "pop3")
    assert [(r["command"], r["partial"]) for r in records] == [
        ("TOP 254 0", True),
        ("RETR 254", False),
    ]
    assert all(r["envelope"] is None for r in records)
    retr = (tmp_path / "out" / records[1]["file"]).read_bytes()
    assert retr.endswith(b"\r\n\r\ntest, just a test.\r\n")
    assert b"FROM : cccc@163.com\r\n" in retr


def test_only_the_chosen_sessions_are_extracted(tmp_path: Path) -> None:
    records = extract(PCAPS / "seed-telnet.pcap", tmp_path / "out", "--session", "1")
    assert {r["session"]["id"] for r in records} == {1}
    assert len([p for p in files_under(tmp_path / "out") if p.endswith(".eml")]) == len(records)


HOSTILE = [
    b"../../etc/passwd",
    b"/etc/shadow",
    b"con",
    b"NUL.txt",
    b"C:\\Windows\\System32\\evil.dll",
    b"x" * 300 + b".txt",
    b"caf\xe9-\xff\xfe.bin",  # not UTF-8
    b".hidden",
    b"manifest.jsonl",
]


def test_hostile_attachment_filenames_stay_in_the_manifest_files_are_named_by_hash(
    tmp_path: Path,
) -> None:
    contents = [f"attachment {i}\n".encode() * (i + 1) for i in range(len(HOSTILE))]
    message = message_with_attachments(list(zip(HOSTILE, contents, strict=True)))
    capture = write_smtp_capture(tmp_path / "c.pcap", smtp_steps([message]))
    workdir = tmp_path / "work"
    workdir.mkdir()
    (record,) = extract(capture, workdir / "out")

    files = files_under(workdir / "out")
    names = set(files)
    assert names == {
        "manifest.jsonl",
        f"{sha256(message)}.eml",
        *(f"attachments/{sha256(c)}" for c in contents),
    }
    for name in names - {"manifest.jsonl"}:
        assert HEX64.fullmatch(Path(name).name.removesuffix(".eml"))
        assert sha256(files[name]) == Path(name).name.removesuffix(".eml")
    # nothing was written outside the folder, whatever the names said
    assert sorted(p.name for p in workdir.iterdir()) == ["out"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pcap", "work"]
    listed = [a["filename"] for a in record["attachments"]]
    assert listed[:6] == [
        "../../etc/passwd",
        "/etc/shadow",
        "con",
        "NUL.txt",
        "C:\\Windows\\System32\\evil.dll",
        "x" * 300 + ".txt",
    ]
    assert listed[6] is not None and listed[6].startswith("caf")  # decoded by a stated fallback
    assert listed[7:] == [".hidden", "manifest.jsonl"]
    assert [a["sha256"] for a in record["attachments"]] == [sha256(c) for c in contents]


def test_an_unwritable_folder_is_one_error_line(tmp_path: Path) -> None:
    from mailsniff.status import ExitStatus

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    proc = run_cli("read", str(PCAPS / "seed-telnet.pcap"), "--extract", str(blocker / "sub"))
    assert proc.returncode == ExitStatus.WRITE_FAILED
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("mailsniff: error: cannot write to")


def test_pipelined_data_and_bdat_chunks_are_extracted_as_sent(tmp_path: Path) -> None:
    make_pcaps = _make_pcaps()
    records = extract(PCAPS / "pipelining-bdat.pcap", tmp_path / "out")
    data_body = make_pcaps.PIPELINE_BODY.replace(b"\r\n..", b"\r\n.")  # unstuffed
    bdat_body = make_pcaps.BDAT_BODY  # BDAT is never stuffed (RFC 3030 2)
    assert [(r["command"], r["sha256"]) for r in records] == [
        ("DATA", sha256(data_body)),
        ("BDAT", sha256(bdat_body)),
    ]
    files = files_under(tmp_path / "out")
    assert files[f"{sha256(data_body)}.eml"] == data_body
    assert files[f"{sha256(bdat_body)}.eml"] == bdat_body
