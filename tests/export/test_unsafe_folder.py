"""--extract DIR never follows what is already in DIR: links, FIFOs, devices, wrong files."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from mailsniff.status import ExitStatus
from tests.cli_runner import run_cli
from tests.export.captures import message_with_attachments, smtp_steps, write_smtp_capture

ATTACHED = b"attachment bytes\n" * 10
MESSAGE = message_with_attachments([(b"a.txt", ATTACHED)])


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def capture(tmp_path: Path) -> Path:
    return write_smtp_capture(tmp_path / "c.pcap", smtp_steps([MESSAGE]))


def extract(cap: Path, folder: Path) -> tuple[int, str]:
    proc = run_cli("read", str(cap), "--extract", str(folder), "--summary", timeout=60)
    assert "Traceback" not in proc.stderr
    return proc.returncode, proc.stderr


def test_links_to_the_attachments_folder_or_manifest_are_refused(tmp_path: Path) -> None:
    cap = capture(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    victim = tmp_path / "victim.jsonl"
    victim.write_bytes(b"keep me\n")
    for name, target in (("attachments", elsewhere), ("manifest.jsonl", victim)):
        folder = tmp_path / f"out-{name}"
        folder.mkdir()
        (folder / name).symlink_to(target)
        status, err = extract(cap, folder)
        assert status == ExitStatus.WRITE_FAILED, err
        assert err.startswith(f"mailsniff: error: refusing to write through {folder / name}")
        assert "a symbolic link" in err and err.count("\n") == 1
        assert list(elsewhere.iterdir()) == []
        assert victim.read_bytes() == b"keep me\n"
        assert not list(folder.glob("*.eml"))  # nothing written before the refusal


def test_planted_message_files_are_never_read_nor_written_through(tmp_path: Path) -> None:
    cap = capture(tmp_path)
    name = f"{sha256(MESSAGE)}.eml"
    outside = tmp_path / "outside"
    outside.write_bytes(b"not the message\n")

    def plant_link(path: Path) -> None:
        path.symlink_to(outside)

    def plant_zero(path: Path) -> None:
        path.symlink_to("/dev/zero")

    def plant_fifo(path: Path) -> None:
        os.mkfifo(path)

    def plant_wrong(path: Path) -> None:
        path.write_bytes(b"forged message\n")

    plants = [
        ("a symbolic link", plant_link),
        ("a symbolic link", plant_zero),  # read as the message: 1.9 GB, then MemoryError
        ("a FIFO", plant_fifo),  # read as the message: a hang
        ("a file whose content does not match its name", plant_wrong),
    ]
    for n, (kind, plant) in enumerate(plants):
        folder = tmp_path / f"out{n}"
        folder.mkdir()
        plant(folder / name)
        status, err = extract(cap, folder)
        assert status == ExitStatus.EXPORT_REFUSED, err
        assert err == (
            f"mailsniff: warning: {folder / name} was {kind}: replaced by the extracted file\n"
        )
        message = folder / name
        assert not message.is_symlink() and message.read_bytes() == MESSAGE
        assert (folder / "attachments" / sha256(ATTACHED)).read_bytes() == ATTACHED
        assert outside.read_bytes() == b"not the message\n"
        # the folder is now right: a second run trusts what it finds and adds nothing
        before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
        status, err = extract(cap, folder)
        assert (status, err) == (0, "")
        assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before


def test_a_planted_attachment_link_is_replaced_not_followed(tmp_path: Path) -> None:
    cap = capture(tmp_path)
    folder = tmp_path / "out"
    (folder / "attachments").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.write_bytes(b"keep me\n")
    planted = folder / "attachments" / sha256(ATTACHED)
    planted.symlink_to(outside)
    status, err = extract(cap, folder)
    assert status == ExitStatus.EXPORT_REFUSED, err
    assert f"{planted} was a symbolic link" in err
    assert not planted.is_symlink() and planted.read_bytes() == ATTACHED
    assert outside.read_bytes() == b"keep me\n"


def test_a_folder_in_the_way_is_reported_and_skipped(tmp_path: Path) -> None:
    cap = capture(tmp_path)
    folder = tmp_path / "out"
    (folder / f"{sha256(MESSAGE)}.eml").mkdir(parents=True)
    status, err = extract(cap, folder)
    assert status == ExitStatus.EXPORT_REFUSED, err
    assert err == f"mailsniff: warning: {folder / sha256(MESSAGE)}.eml is a folder: not extracted\n"
    assert (folder / "manifest.jsonl").read_bytes() == b""
    assert not list(folder.glob(".mailsniff-*"))
