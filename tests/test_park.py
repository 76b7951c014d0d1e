"""Parking idle sessions on disk (mailsniff/park.py): what is written and read back, and what
is never parked."""

from __future__ import annotations

from pathlib import Path

from mailsniff.export.exporter import ExportOptions
from mailsniff.park import ParkingLot
from mailsniff.protocols.base import Line


def test_frozen_records_are_read_back_equal() -> None:
    lot = ParkingLot()
    waiting = {"line": Line(b"RETR 1", b"\r\n"), "count": 3}
    ticket = lot.park(waiting)
    assert ticket is not None and lot.parked == 1
    assert lot.unpark(ticket) == waiting
    assert lot.parked == 0


def test_an_export_object_is_never_parked_even_a_frozen_record() -> None:
    """Objects of the export layer belong to the exporter (a copy read back would write
    nowhere): a session holding one stays in memory, whether the object is a frozen record
    (rebuilt through its constructor elsewhere) or not."""
    lot = ParkingLot()
    held = {"line": Line(b"DATA", b"\r\n"), "export": ExportOptions(extract=Path("evidence"))}
    assert lot.park(held) is None
    assert lot.parked == 0 and lot.written == 0
