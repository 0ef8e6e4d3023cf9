"""Extract jobs: a table written to files, as BigQuery's extract job writes to Cloud Storage.

Destinations are ``prodml.storage`` locations (a local folder, or ``gs://`` when storage is
configured so), absolute local paths or ``file://`` URLs. A ``*`` in a URI shards the table over
files numbered ``000000000000``, ``000000000001``... (:data:`SHARD_ROWS` rows each, at least one
file). Formats: CSV (``printHeader``, ``fieldDelimiter``), NEWLINE_DELIMITED_JSON, AVRO, PARQUET.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import json
import os

import pyarrow as pa

from prodml.warehouse import catalog
from prodml.warehouse.engine import Warehouse
from prodml.warehouse.errors import BigQueryError, Invalid, NotImplementedHere
from prodml.warehouse.jobs import Job
from prodml.warehouse.names import TableName, canonical_project

__all__ = ["SHARD_ROWS", "FORMATS", "run_extract_job"]

FORMATS = ("CSV", "NEWLINE_DELIMITED_JSON", "AVRO", "PARQUET")
SHARD_ROWS = int(os.environ.get("PRODML_WAREHOUSE_SHARD_ROWS", "100000"))  # BigQuery: ~1 GB


def _json_value(value):
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


_AVRO = {
    "INTEGER": "long",
    "FLOAT": "double",
    "BOOLEAN": "boolean",
    "STRING": "string",
    "BYTES": "bytes",
    "DATE": {"type": "int", "logicalType": "date"},
    "TIMESTAMP": {"type": "long", "logicalType": "timestamp-micros"},
    "DATETIME": "string",
    "TIME": {"type": "long", "logicalType": "time-micros"},
    "NUMERIC": "string",
    "JSON": "string",
}


def _avro_type(field: dict, path: str):
    if field["type"] == "RECORD":
        kind = {
            "type": "record",
            "name": path.replace(".", "_"),
            "fields": [
                {"name": f["name"], "type": _avro_type(f, f"{path}.{f['name']}")}
                for f in field["fields"]
            ],
        }
    elif field["type"] in _AVRO:
        kind = _AVRO[field["type"]]
    else:
        raise Invalid(f"column {field['name']}: type {field['type']} cannot be written to Avro")
    if field.get("mode") == "REPEATED":
        return {"type": "array", "items": kind}
    return kind if field.get("mode") == "REQUIRED" else ["null", kind]


def _write_csv(out, data: pa.Table, extract: dict) -> None:
    import pyarrow.csv as pacsv

    if any(pa.types.is_nested(t) for t in data.schema.types):
        raise Invalid(
            "Operation cannot be performed on a nested schema: extract to "
            "NEWLINE_DELIMITED_JSON, AVRO or PARQUET"
        )
    header = extract.get("printHeader", True) is not False
    delimiter = extract.get("fieldDelimiter") or ","
    pacsv.write_csv(data, out, pacsv.WriteOptions(include_header=header, delimiter=delimiter))


def _write_file(uri: str, data: pa.Table, fields: list[dict], fmt: str, extract: dict) -> None:
    """One extract file, written through fsspec (a local folder or gs://)."""
    from prodml import storage

    path = uri.removeprefix("file://")
    fs = storage.filesystem(path)
    fs.makedirs(path.rsplit("/", 1)[0] if "/" in path else ".", exist_ok=True)
    with fs.open(path, "wb") as out:
        if fmt == "PARQUET":
            import pyarrow.parquet as pq

            pq.write_table(data, out)
        elif fmt == "CSV":
            _write_csv(out, data, extract)
        elif fmt == "NEWLINE_DELIMITED_JSON":
            for row in data.to_pylist():
                record = {k: v for k, v in row.items() if v is not None}  # as BigQuery: no nulls
                out.write((json.dumps(record, default=_json_value) + "\n").encode())
        else:
            import fastavro

            schema = {"type": "record", "name": "Root",
                      "fields": [{"name": f["name"], "type": _avro_type(f, f"Root.{f['name']}")} for f in fields]}  # fmt: skip
            fastavro.writer(out, schema, data.to_pylist())


def _check_uri(uri: str) -> None:
    from prodml import storage

    if uri.count("*") > 1:
        raise Invalid(f"destination URI {uri!r} may hold one '*' wildcard at most")
    if uri.startswith("gs://") and not storage.root().startswith("gs://"):
        raise Invalid(
            f"the local warehouse cannot write {uri}: storage is the local folder "
            f"{storage.root()}. Extract to prodml.storage.path(...) instead, or configure gs:// storage"
        )
    if "://" not in uri and not os.path.isabs(uri):
        raise Invalid(
            f"destination URI {uri!r} is a relative path: give an absolute one (prodml.storage.path(...))"
        )


def _extract(warehouse: Warehouse, job: Job, extract: dict) -> list[int]:
    fmt = (extract.get("destinationFormat") or "CSV").upper()
    if fmt not in FORMATS:
        raise Invalid(f"destinationFormat {fmt!r} is not supported: use one of {FORMATS}")
    if (extract.get("compression") or "NONE").upper() != "NONE":
        raise NotImplementedHere(
            f"compression={extract['compression']!r} is not implemented by the local warehouse"
        )
    ref = extract.get("sourceTable") or {}
    source = TableName(
        canonical_project(ref.get("projectId") or job.project),
        ref.get("datasetId", ""),
        ref.get("tableId", ""),
    )
    uris = extract.get("destinationUris") or []
    for uri in uris:
        _check_uri(uri)
    cur = warehouse.cursor()
    warehouse.table_or_404(cur, source)
    data = cur.sql(f"SELECT * FROM {source.duckdb}").to_arrow_table()
    fields = catalog.table_fields(cur, source)
    counts = []
    for uri in uris:
        count = max(1, -(-data.num_rows // SHARD_ROWS)) if "*" in uri else 1
        for i in range(count):
            part = data.slice(i * SHARD_ROWS, SHARD_ROWS) if "*" in uri else data
            _write_file(uri.replace("*", f"{i:012d}"), part, fields, fmt, extract)
        counts.append(count)
    return counts


def run_extract_job(warehouse: Warehouse, job: Job) -> Job:
    """Run an extract job to the end."""
    try:
        counts = _extract(warehouse, job, job.configuration.get("extract") or {})
    except BigQueryError as err:
        return job.finish(err)
    job.statistics = {"destinationUriFileCounts": [str(c) for c in counts]}
    return job.finish()
