"""Load jobs: rows from uploaded bytes (``load_table_from_file`` / ``_dataframe`` / ``_json``)
or from local files (``load_table_from_uri``) into a table, with BigQuery's bad-record rules and
write/create dispositions. Public tables accept load jobs (that is how the data set generators
size them); SQL may not change them.
"""

from __future__ import annotations

import re

import duckdb

from prodml.warehouse import catalog, loads, sources
from prodml.warehouse.engine import Warehouse
from prodml.warehouse.errors import BigQueryError, Invalid
from prodml.warehouse.jobs import Job
from prodml.warehouse.messages import strip_ansi
from prodml.warehouse.names import TableName, canonical_project, quote
from prodml.warehouse.sources import LoadOptions, Staged

__all__ = ["run_load_job"]


def _destination(load: dict, project: str) -> TableName:
    ref = load.get("destinationTable") or {}
    if not ref.get("datasetId") or not ref.get("tableId"):
        raise Invalid("configuration.load.destinationTable needs datasetId and tableId")
    return TableName(
        canonical_project(ref.get("projectId") or project), ref["datasetId"], ref["tableId"]
    )


def _stage(
    warehouse: Warehouse, cur, options: LoadOptions, target: TableName, load: dict, data
) -> Staged:
    """Read the job's sources; a load with neither schema nor autodetect into an existing table
    takes that table's schema, as BigQuery does."""
    paths = None if data is not None else sources.local_paths(load.get("sourceUris") or [])
    if options.schema is None and not options.autodetect and catalog.table_exists(cur, target):
        options.schema = catalog.table_fields(cur, target)
    if (
        options.schema is None
        and not options.autodetect
        and options.source_format in ("CSV", "NEWLINE_DELIMITED_JSON")
    ):
        raise Invalid(
            f"No schema specified on job or table {target.bigquery}: set "
            "LoadJobConfig(schema=[...]) or autodetect=True"
        )

    def infer(table, names):
        return loads.infer(cur, table, names)

    if paths is None:
        return sources.read(data, options, None, infer)
    if not paths:
        raise Invalid("configuration.load.sourceUris is empty: name at least one file")
    parts = []
    for path in paths:
        with open(path, "rb") as f:
            parts.append(sources.read(f.read(), options, path, infer))
    return sources.concat(parts)


def _write(
    warehouse: Warehouse, cur, staged: Staged, target: TableName, options, project, job
) -> None:
    if warehouse.public.is_public(target):
        cur.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(target.schema)}")
        warehouse.public.forget(target)
    else:
        warehouse.ensure_dataset(cur, target, project)
    prepared = loads.prepare(cur, staged)
    errors = prepared.errors[: loads.MAX_REPORTED]
    if prepared.bad > options.max_bad_records:
        first = prepared.errors[0]
        raise Invalid(
            f"Error while reading data: {prepared.bad} bad record(s) exceed "
            f"max_bad_records={options.max_bad_records}; nothing was loaded into {target}. "
            f"First error: {first['location']}: {first['message']}",
            errors=errors,
        )
    required = [f["name"] for f in staged.schema or [] if f.get("mode") == "REQUIRED"]
    try:
        warehouse.transaction(
            cur,
            lambda: loads.write(
                cur,
                prepared.select,
                target,
                options.write_disposition,
                options.create_disposition,
                required,
            ),  # fmt: skip
        )
    except duckdb.Error as err:
        detail = re.sub(r"^[A-Za-z ]*Error: ", "", strip_ansi(str(err)).splitlines()[0])
        raise Invalid(f"loading {target} failed: {detail}") from None
    job.statistics = {"outputRows": str(prepared.rows), "badRecords": str(prepared.bad),
                      "inputFiles": str(len(job.configuration["load"].get("sourceUris") or [1]))}  # fmt: skip
    if errors:
        job.statistics["errors"] = errors


def run_load_job(warehouse: Warehouse, job: Job, data: bytes | None = None) -> Job:
    """Run a load job to the end: ``data`` is the uploaded file, or None to read sourceUris."""
    load = job.configuration.get("load") or {}
    try:
        options = LoadOptions.from_api(load)
        target = _destination(load, job.project)
        with warehouse.writing() as cur:
            try:
                staged = _stage(warehouse, cur, options, target, load, data)
                _write(warehouse, cur, staged, target, options, job.project, job)
            finally:
                for name in ("__staging", "__infer"):
                    try:
                        cur.unregister(name)
                    except duckdb.Error:
                        pass
    except BigQueryError as err:
        return job.finish(err)
    return job.finish()
