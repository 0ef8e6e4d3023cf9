"""Streaming inserts: ``tabledata.insertAll`` (``client.insert_rows_json``).

The streaming API, not a load job: no job, no file, and the rows are queryable as soon as the
call returns. Each row is checked against the table's schema; the answer lists the rows that
failed (``insertErrors``), as BigQuery's does. With ``skipInvalidRows`` false (the default) one
invalid row stops the whole request (its other rows are listed with reason ``stopped``); true
inserts the valid rows. Keys the schema lacks are errors unless ``ignoreUnknownValues``.
``insertId`` is accepted but rows are never de-duplicated (BigQuery does it best effort, over
about a minute); ``templateSuffix`` is not implemented; the table must exist.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import pyarrow as pa

from prodml.warehouse import catalog, loads
from prodml.warehouse.engine import Warehouse
from prodml.warehouse.errors import Invalid, NotImplementedHere
from prodml.warehouse.names import TableName
from prodml.warehouse.public import access_denied
from prodml.warehouse.sources import LOCATION, Staged, as_text

__all__ = ["insert_all"]


def _error(location: str, message: str, reason: str = "invalid") -> dict:
    return {"reason": reason, "location": location, "debugInfo": "", "message": message}


def _screen(rows: list, columns: set[str], ignore_unknown: bool):
    """Rows that are JSON objects with known keys (and their indexes), and the others' errors."""
    errors: dict[int, list[dict]] = {}
    kept, indexes = [], []
    for i, entry in enumerate(rows):
        row = entry.get("json") if isinstance(entry, Mapping) else None
        if not isinstance(row, Mapping):
            errors[i] = [_error("", f"a row must be a JSON object, got {row!r}")]
            continue
        unknown = sorted(set(row) - columns)
        if unknown and not ignore_unknown:
            errors[i] = [_error(k, f"no such field: {k}.") for k in unknown]
            continue
        kept.append(row)
        indexes.append(i)
    return kept, indexes, errors


def _staged(kept: list, indexes: list, fields: list[dict]) -> Staged:
    columns = {
        f["name"]: pa.array([as_text(r.get(f["name"])) for r in kept], pa.string()) for f in fields
    }
    columns[LOCATION] = pa.array([str(i) for i in indexes], pa.string())
    return Staged(pa.table(columns), schema=fields)


def insert_all(warehouse: Warehouse, name: TableName, body: dict) -> list[dict]:
    """Insert ``body["rows"]``; BigQuery's ``insertErrors`` (empty when every row went in)."""
    if body.get("templateSuffix"):
        raise NotImplementedHere(
            "insertAll templateSuffix (template tables) is not implemented by the local warehouse"
        )
    rows = body.get("rows")
    if not isinstance(rows, list):
        raise Invalid('insertAll needs a list of rows: {"rows": [{"json": {...}}]}')
    if warehouse.public.is_public(name):
        raise access_denied(name)
    with warehouse.writing() as cur:
        warehouse.table_or_404(cur, name)
        fields = catalog.table_fields(cur, name)
        kept, indexes, errors = _screen(
            rows, {f["name"] for f in fields}, body.get("ignoreUnknownValues")
        )
        prepared = loads.prepare(cur, _staged(kept, indexes, fields))
        try:
            for e in prepared.errors:
                column = re.search(r"in (?:required )?column (\S+)", e["message"])
                errors[int(e["location"])] = [
                    _error(column.group(1) if column else "", e["message"])
                ]
            if errors and not body.get("skipInvalidRows"):
                for i in range(len(rows)):
                    errors.setdefault(i, [_error("", "", reason="stopped")])
            elif prepared.rows:
                warehouse.transaction(
                    cur,
                    lambda: loads.write(cur, prepared.select, name, "WRITE_APPEND", "CREATE_NEVER"),
                )
        finally:
            cur.unregister("__staging")
    return [{"index": i, "errors": errors[i]} for i in sorted(errors)]
