"""Validate JSON Lines records against docs/jsonl.schema.json (used by the tests)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

SCHEMA = Path(__file__).resolve().parents[1] / "docs" / "jsonl.schema.json"


@cache
def validator() -> Draft202012Validator:
    schema = json.loads(SCHEMA.read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def validate_lines(text: str) -> list[dict[str, Any]]:
    """Parse JSON Lines output, validate every record, return them."""
    records = []
    for line in text.splitlines():
        record = json.loads(line)
        errors = sorted(validator().iter_errors(record), key=str)
        assert not errors, f"{record.get('type')} record invalid: {errors[0]}"
        records.append(record)
    return records
