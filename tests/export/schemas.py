"""Validate export records against docs/manifest.schema.json and docs/creds.schema.json."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator

from tests.cli_runner import REPO


@cache
def _validator(name: str) -> Draft202012Validator:
    schema = json.loads((REPO / "docs" / f"{name}.schema.json").read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def validated(record: dict[str, Any], name: str) -> dict[str, Any]:
    """`record` after checking it against docs/<name>.schema.json (manifest or creds)."""
    errors = sorted(_validator(name).iter_errors(record), key=str)
    assert not errors, f"{name} record invalid: {errors[0]}"
    return record
