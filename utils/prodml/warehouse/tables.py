"""Datasets and tables as BigQuery's REST resources: ``datasets.*``, ``tables.*``,
``tabledata.list`` and copy jobs.

Datasets of the public projects are read-only (Access Denied, as on BigQuery). A table created
through ``tables.insert`` gets its schema's REQUIRED columns as NOT NULL; a ``view`` resource
becomes a view of the translated query. ``tables.patch`` changes a table's description and adds
NULLABLE columns, the schema changes BigQuery allows.
"""

from __future__ import annotations

import duckdb

from prodml.warehouse import catalog, encoding, loads
from prodml.warehouse.engine import Warehouse
from prodml.warehouse.errors import BigQueryError, Duplicate, Invalid, InvalidQuery, NotFound
from prodml.warehouse.jobs import Job
from prodml.warehouse.names import TableName, canonical_project, quote
from prodml.warehouse.public import access_denied
from prodml.warehouse.types import duckdb_type

__all__ = [
    "dataset_resource", "create_dataset", "get_dataset", "list_datasets", "delete_dataset",
    "table_resource", "create_table", "list_tables", "delete_table", "patch_table",
    "list_rows", "read_rows", "run_copy_job",
]  # fmt: skip


def _reference(name: TableName) -> dict:
    ref = {"projectId": name.project, "datasetId": name.dataset}
    return {**ref, "tableId": name.table} if name.table else ref


def dataset_resource(name: TableName, location: str) -> dict:
    """BigQuery's Dataset resource."""
    return {"kind": "bigquery#dataset", "id": f"{name.project}:{name.dataset}",
            "datasetReference": _reference(name), "location": location}  # fmt: skip


def _missing_dataset(name: TableName) -> NotFound:
    return NotFound(f"Not found: Dataset {name.project}:{name.dataset}")


def create_dataset(warehouse: Warehouse, name: TableName) -> dict:
    """``datasets.insert``: a new dataset (409 if it exists; public projects refused)."""
    if warehouse.public.is_public(name):
        raise access_denied(name)
    with warehouse.writing() as cur:
        if catalog.dataset_exists(cur, name):
            raise Duplicate(f"Already Exists: Dataset {name.project}:{name.dataset}")
        cur.execute(f"CREATE SCHEMA {quote(name.schema)}")
    return dataset_resource(name, warehouse.location)


def get_dataset(warehouse: Warehouse, name: TableName) -> dict:
    """``datasets.get`` (a registered public dataset is generated on first reference)."""
    cur = warehouse.cursor()
    if not catalog.dataset_exists(cur, name):
        warehouse.public.ensure(warehouse, warehouse.public.tables_of(name.project, name.dataset))
        if not catalog.dataset_exists(cur, name):
            raise _missing_dataset(name)
    return dataset_resource(name, warehouse.location)


def list_datasets(warehouse: Warehouse, project: str) -> dict:
    """``datasets.list`` of one project."""
    names = catalog.list_datasets(warehouse.cursor(), project)
    items = [
        {k: v for k, v in dataset_resource(TableName(project, d, ""), warehouse.location).items()}
        for d in names
    ]
    return {"kind": "bigquery#datasetList", "datasets": items}


def delete_dataset(warehouse: Warehouse, name: TableName, contents: bool) -> None:
    """``datasets.delete``; a dataset with tables or models needs ``contents`` (deleteContents),
    which deletes its models too."""
    if warehouse.public.is_public(name):
        raise access_denied(name)
    with warehouse.writing() as cur:
        if not catalog.dataset_exists(cur, name):
            raise _missing_dataset(name)
        if not contents:
            warehouse.refuse_drop_with_models(cur, name)
        try:
            cur.execute(f"DROP SCHEMA {quote(name.schema)}{' CASCADE' if contents else ''}")
        except duckdb.DependencyException:
            raise Invalid(
                f"Dataset {name.project}:{name.dataset} is still in use (not empty): delete it "
                "with delete_contents=True"
            ) from None
        if contents:
            warehouse.drop_models(cur, name)


# -- tables ----------------------------------------------------------------------------------------


def table_resource(warehouse: Warehouse, name: TableName) -> dict:
    """BigQuery's Table resource (Not found unless it exists; public tables are generated)."""
    cur = warehouse.cursor()
    warehouse.table_or_404(cur, name)
    kind = catalog.table_kind(cur, name)
    resource = {
        "kind": "bigquery#table",
        "id": f"{name.project}:{name.dataset}.{name.table}",
        "tableReference": _reference(name),
        "type": kind,
        "schema": {"fields": catalog.table_fields(cur, name)},
        "location": warehouse.location,
    }
    comment = cur.execute(
        "SELECT comment FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?",
        [name.schema, name.table],
    ).fetchall()
    if comment and comment[0][0]:
        resource["description"] = comment[0][0]
    if kind == "TABLE":
        rows = cur.execute(f"SELECT count(*) FROM {name.duckdb}").fetchall()[0][0]
        resource.update(numRows=str(rows), numBytes="0")
    return resource


def _column_list(fields: list[dict]) -> str:
    if not fields:
        raise Invalid("a table needs a schema with at least one field")
    return ", ".join(
        f"{quote(f['name'])} {duckdb_type(f)}"
        + (" NOT NULL" if f.get("mode") == "REQUIRED" else "")
        for f in fields
    )


def create_table(warehouse: Warehouse, name: TableName, body: dict, project: str) -> dict:
    """``tables.insert``: a table with the resource's schema, or a view of its query."""
    if warehouse.public.is_public(name):
        raise access_denied(name)
    view = (body.get("view") or {}).get("query")
    with warehouse.writing() as cur:
        warehouse.ensure_dataset(cur, name, project)
        if catalog.table_exists(cur, name):
            raise Duplicate(f"Already Exists: Table {name.bigquery}")
        if view:
            text = f"CREATE VIEW `{name}` AS {view}"
            warehouse.run(text, project, None, cursor=cur)
        else:
            cur.execute(
                f"CREATE TABLE {name.duckdb} ({_column_list((body.get('schema') or {}).get('fields') or [])})"
            )
        if body.get("description"):
            cur.execute(f"COMMENT ON TABLE {name.duckdb} IS ?", [body["description"]])
    return table_resource(warehouse, name)


def list_tables(warehouse: Warehouse, dataset: TableName) -> dict:
    """``tables.list`` of one dataset."""
    get_dataset(warehouse, dataset)
    items = [
        {"kind": "bigquery#table", "id": f"{dataset.project}:{dataset.dataset}.{t}",
         "tableReference": _reference(TableName(dataset.project, dataset.dataset, t)), "type": kind}
        for t, kind in catalog.list_tables(warehouse.cursor(), dataset)
    ]  # fmt: skip
    return {"kind": "bigquery#tableList", "tables": items, "totalItems": len(items)}


def delete_table(warehouse: Warehouse, name: TableName) -> None:
    """``tables.delete`` (tables and views; public ones refused)."""
    if warehouse.public.is_public(name):
        raise access_denied(name)
    with warehouse.writing() as cur:
        warehouse.table_or_404(cur, name)
        cur.execute(f"DROP {catalog.table_kind(cur, name)} {name.duckdb}")


def patch_table(warehouse: Warehouse, name: TableName, body: dict) -> dict:
    """``tables.patch`` / ``update``: the description, and NULLABLE columns added."""
    unknown = set(body) - {
        "description",
        "schema",
        "tableReference",
        "kind",
        "id",
        "etag",
        "type",
        "location",
        "numRows",
        "numBytes",
    }
    if unknown:
        raise Invalid(
            f"the local warehouse can change a table's description and add columns, not {sorted(unknown)}"
        )
    if warehouse.public.is_public(name):
        raise access_denied(name)
    with warehouse.writing() as cur:
        warehouse.table_or_404(cur, name)
        have = {f["name"] for f in catalog.table_fields(cur, name)}
        for field in (body.get("schema") or {}).get("fields") or []:
            if field["name"] not in have:
                if field.get("mode") == "REQUIRED":
                    raise Invalid(
                        f"Provided Schema does not match Table {name.bigquery}. Cannot add required field {field['name']}"
                    )
                cur.execute(
                    f"ALTER TABLE {name.duckdb} ADD COLUMN {quote(field['name'])} {duckdb_type(field)}"
                )
        if "description" in body:
            cur.execute(f"COMMENT ON TABLE {name.duckdb} IS ?", [body["description"]])
    return table_resource(warehouse, name)


def _fields(cur, name: TableName, selected: str | None) -> list[dict]:
    fields = catalog.table_fields(cur, name)
    if selected:
        wanted = [s.strip() for s in selected.split(",") if s.strip()]
        missing = [s for s in wanted if s not in {f["name"] for f in fields}]
        if missing:
            raise InvalidQuery(f"selectedFields names no column of {name.bigquery}: {missing}")
        fields = [f for f in fields if f["name"] in wanted]
    return fields


def read_rows(warehouse: Warehouse, name: TableName, start: int, most: int | None, selected):
    """A table's rows (``selected`` columns, from ``start``, at most ``most``) as Arrow."""
    cur = warehouse.cursor()
    warehouse.table_or_404(cur, name)
    columns = ", ".join(quote(f["name"]) for f in _fields(cur, name, selected))
    limit = f" LIMIT {int(most)}" if most is not None else ""
    return cur.sql(
        f"SELECT {columns} FROM {name.duckdb}{limit} OFFSET {int(start)}"
    ).to_arrow_table()


def list_rows(
    warehouse: Warehouse, name: TableName, start: int, max_results: int | None, selected: str | None
):
    """``tabledata.list``: the response without rows, and the rows' JSON (or None)."""
    cur = warehouse.cursor()
    warehouse.table_or_404(cur, name)
    fields = _fields(cur, name, selected)
    total = cur.execute(f"SELECT count(*) FROM {name.duckdb}").fetchall()[0][0]
    response = {"kind": "bigquery#tableDataList", "totalRows": str(total)}
    if max_results == 0 or start >= total:
        return response, None
    limit = min(total - start, max_results if max_results is not None else 100_000)
    columns = ", ".join(quote(f["name"]) for f in fields)
    rows = cur.sql(
        f"SELECT {columns} FROM {name.duckdb} LIMIT {int(limit)} OFFSET {int(start)}"
    ).to_arrow_table()
    body, following = encoding.page(rows, 0, max_results, fields)
    following = start + following if following is not None else start + rows.num_rows
    if following < total:
        response["pageToken"] = str(following)
    return response, body


def run_copy_job(warehouse: Warehouse, job: Job) -> Job:
    """A copy job: the source tables' rows into the destination, with its dispositions."""
    copy = job.configuration.get("copy") or {}
    refs = copy.get("sourceTables") or ([copy["sourceTable"]] if copy.get("sourceTable") else [])

    def name_of(ref):
        return TableName(
            canonical_project(ref.get("projectId") or job.project),
            ref.get("datasetId", ""),
            ref.get("tableId", ""),
        )

    try:
        sources, target = [name_of(r) for r in refs], name_of(copy.get("destinationTable") or {})
        if not sources:
            raise Invalid("configuration.copy needs sourceTable or sourceTables")
        if warehouse.public.is_public(target):
            raise access_denied(target)
        with warehouse.writing() as cur:
            for source in sources:
                warehouse.table_or_404(cur, source)
            warehouse.ensure_dataset(cur, target, job.project)
            select = " UNION ALL BY NAME ".join(f"SELECT * FROM {s.duckdb}" for s in sources)
            disposition = (copy.get("writeDisposition") or "WRITE_EMPTY").upper()
            create = (copy.get("createDisposition") or "CREATE_IF_NEEDED").upper()
            warehouse.transaction(
                cur, lambda: loads.write(cur, select, target, disposition, create)
            )
    except BigQueryError as err:
        return job.finish(err)
    return job.finish()
