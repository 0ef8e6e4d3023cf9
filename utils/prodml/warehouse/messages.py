"""DuckDB's errors in BigQuery's words.

A statement that fails in DuckDB is reported as BigQuery reports the same mistake
(``Unrecognized name: x at [1:8]``, ``Not found: Table p:d.t was not found in location US``,
``Already Exists: Table p:d.t``, ``Bad int64 value: abc``); what has no BigQuery counterpart keeps
DuckDB's first line, without DuckDB's own words, with the query as it ran here.
"""

from __future__ import annotations

import re

import duckdb

from prodml.warehouse.errors import BigQueryError, Duplicate, InvalidQuery, NotFound
from prodml.warehouse.names import TableName

__all__ = ["duckdb_error", "not_found_table", "strip_ansi"]

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def strip_ansi(text: str) -> str:
    """Text without terminal colour codes."""
    return _ANSI.sub("", text)


def not_found_table(name: TableName, location: str) -> NotFound:
    """BigQuery's Not found for a table, with how to make one."""
    return NotFound(
        f"Not found: Table {name.bigquery} was not found in location {location} (load it "
        "first, e.g. with client.load_table_from_dataframe)"
    )


def _at(sql: str, name: str) -> str:
    """`` at [line:column]`` of the first use of the identifier ``name`` in ``sql``."""
    from prodml.warehouse.sql import position

    match = re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", sql, flags=re.IGNORECASE)
    return f" at {position(sql, match.start())}" if match else ""


def _missing_table(match, st, location) -> BigQueryError:
    table = match.group(1).strip('"').rsplit(".", 1)[-1]
    for name in [*st.reads, *st.writes]:
        if name.table == table:
            return not_found_table(name, location)
    return NotFound(f"Not found: Table {table}")


def _missing_dataset(match, st, location) -> BigQueryError:
    project, _, dataset = match.group(1).partition(".")
    return NotFound(f"Not found: Dataset {project}:{dataset} was not found in location {location}")


def _unrecognized(match, st, location) -> BigQueryError:
    return InvalidQuery(f"Unrecognized name: {match.group(1)}{_at(st.bigquery, match.group(1))}")


def _exists(match, st, location) -> BigQueryError:
    target = next(iter(st.writes), None)
    return Duplicate(f"Already Exists: Table{' ' + target.bigquery if target else ''}")


def _required(match, st, location) -> BigQueryError:
    return InvalidQuery(f"Required field {match.group(1)} cannot be null")


def _bad_value(match, st, location) -> BigQueryError:
    kind = {"INT64": "int64", "INT32": "int64", "DOUBLE": "double", "BOOL": "bool"}
    return InvalidQuery(
        f"Bad {kind.get(match.group(2).upper(), match.group(2).lower())} value: {match.group(1)}"
    )


def _function(match, st, location) -> BigQueryError:
    name = match.group(1).upper()
    return InvalidQuery(f"Function not found: {name} (it has no equivalent in the local warehouse)")


def _in_use(match, st, location) -> BigQueryError:
    return InvalidQuery(
        f"{match.group(1)} is still in use (not empty): drop its tables first or add CASCADE"
    )


# (pattern over DuckDB's first line, BigQuery's error)
_PATTERNS = [
    (r'Table with name "?([^"\s!]+)"? does not exist', _missing_table),
    (r'Schema with name "?([^"\s!]+)"? does not exist', _missing_dataset),
    (r'Referenced column "?([^"\s]+)"? not found', _unrecognized),
    (r'does not have a column named "?([^"\s]+)"?', _unrecognized),
    (r"with name .* already exists", _exists),
    (r"NOT NULL constraint failed: [^.\s]+\.(\S+)", _required),
    (r"Could not convert string '(.*)' to (\w+)", _bad_value),
    (r'(?:Scalar|Aggregate|Table)? ?Function with name "?(\w+)"? does not exist', _function),
    (r'Cannot drop entry "?([^"]+)"? because there are entries that depend on it', _in_use),
]


def duckdb_error(err: duckdb.Error, st, location: str) -> BigQueryError:
    """The BigQuery error for a DuckDB error raised by statement ``st``."""
    text = strip_ansi(str(err))
    first = text.splitlines()[0] if text else type(err).__name__
    detail = re.sub(r"^[A-Za-z ]*Error: ", "", first)
    for pattern, build in _PATTERNS:
        match = re.search(pattern, detail)
        if match:
            return build(match, st, location)
    return InvalidQuery(
        f"{detail.rstrip('!')} (the query, as the local warehouse ran it: {st.duckdb})"
    )
