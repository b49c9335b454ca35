"""Ids and integers received from clients: checked at the edge, so a number the database cannot hold is a
400 `invalid`, never an OverflowError (SQLite) or a DataError (PostgreSQL) inside a query."""

from __future__ import annotations

import re

from config.errors import ValidationFailed

MAX_ID = 2**63 - 1  # bigint, the widest primary key any supported database uses
_DIGITS = re.compile(r"[0-9]{1,19}")  # ASCII only: str.isdigit() also accepts "²", which int() refuses


def id_param(params, name: str) -> int | None:
    """The positive id in query parameter `name`, None when absent or empty; otherwise 400 `invalid_filter`
    (the code of every malformed query filter)."""
    raw = params.get(name)
    if raw in (None, ""):
        return None
    if not _DIGITS.fullmatch(raw) or not 0 < int(raw) <= MAX_ID:
        raise ValidationFailed(f"'{name}' must be an id (a positive whole number).", code="invalid_filter")
    return int(raw)
