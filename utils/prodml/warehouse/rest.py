"""BigQuery's v2 REST API on the warehouse: a Starlette application.

=================================================================  ============================
route (under ``/bigquery/v2``)                                     resource
=================================================================  ============================
``POST /projects/{p}/jobs``, ``GET .../jobs[/{j}]``, ``.../cancel``  jobs.insert, list, get
``POST /projects/{p}/queries``, ``GET .../queries/{j}``             jobs.query, getQueryResults
``GET|POST /projects/{p}/datasets``, ``GET|DELETE .../{d}``          datasets.*
``GET|POST .../datasets/{d}/tables``, ``GET|PATCH|PUT|DELETE``       tables.*
``GET .../tables/{t}/data``, ``POST .../tables/{t}/insertAll``       tabledata.list, insertAll
``GET .../datasets/{d}/models``, ``GET|PATCH|DELETE .../{m}``        models.*
``GET /projects``                                                  projects.list
``POST|PUT /upload/bigquery/v2/projects/{p}/jobs``                 load uploads (uploads)
``GET /prodml/health``                                             which warehouse this is
=================================================================  ============================

Each endpoint reads its request, does its work on a worker thread (the warehouse's calls block)
and answers JSON. Errors are typed (:mod:`~prodml.warehouse.errors`) and become BigQuery's error
body in one place, :func:`on_error`: a malformed request is a 400 with BigQuery's body, never a
500.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import traceback

import pyarrow as pa
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from prodml.warehouse import extract, load_jobs, models, queries, streaming, tables
from prodml.warehouse.cache import QueryCache
from prodml.warehouse.encoding import Rows
from prodml.warehouse.engine import Warehouse
from prodml.warehouse.errors import BigQueryError, Invalid, NotImplementedHere, error_body
from prodml.warehouse.jobs import RESULTS_BYTES, Job, JobStore
from prodml.warehouse.names import TableName, canonical_project
from prodml.warehouse.uploads import Resumable, split_multipart

__all__ = ["create_app", "on_error"]

BASE = "/bigquery/v2"


def _json(payload, status: int = 200, headers: dict | None = None) -> Response:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return Response(body, status, headers=headers, media_type="application/json")


def _with_rows(payload: dict, rows: bytes | None) -> Response:
    """A JSON answer with ``rows`` spliced in as already-encoded JSON."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    if rows is not None:
        body = body[:-1] + b',"rows":[' + rows + b"]}"
    return Response(body, media_type="application/json")


async def on_error(request: Request, exc: Exception) -> Response:
    """Every error, as BigQuery's error body and status."""
    if isinstance(exc, BigQueryError):
        errors = [{"domain": "global", **exc.error_proto()}]
        return _json(error_body(exc.status, exc.message, errors), exc.status)
    if isinstance(exc, HTTPException):
        message = (
            f"no {request.method} {request.url.path} in the local BigQuery API"
            if exc.status_code in (404, 405)
            else str(exc.detail)
        )
        return _json(error_body(exc.status_code, message), exc.status_code)
    print(f"prodml warehouse: failed on {request.method} {request.url.path}", file=sys.stderr)
    gap = _gap(exc)
    errors = [{"domain": "global", **gap.error_proto()}]
    return _json(error_body(gap.status, gap.message, errors), gap.status)


def _gap(exc: Exception) -> NotImplementedHere:
    """An unexpected failure, as a BigQuery error that fails fast. (A 500 would have the client
    retry the same request for ten minutes: its retry policy takes a 500 for a passing fault.)"""
    traceback.print_exception(exc, file=sys.stderr)
    return NotImplementedHere(
        f"the local warehouse failed on this request: {type(exc).__name__}: {exc} (a gap or a "
        "fault of the local stand-in; the service's log, logs/warehouse.log in the run folder, "
        "has the traceback)"
    )


def _body(raw: bytes) -> dict:
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError as err:
        raise Invalid(f"Invalid JSON payload received. {err}") from None
    if not isinstance(body, dict):
        raise Invalid("Invalid JSON payload received: a JSON object is expected")
    return body


def _int(value: str | None, name: str) -> int | None:
    if value in (None, ""):
        return None
    try:
        number = int(value)
    except ValueError:
        raise Invalid(f"Invalid value for {name}: {value!r} is not an integer") from None
    if number < 0:
        raise Invalid(f"Invalid value for {name}: {number} is negative")
    return number


def endpoint(work):
    """An async endpoint: the body is read, then ``work(app, params, query, body, request)``
    runs on a worker thread and returns the response."""

    @functools.wraps(work)
    async def handler(request: Request) -> Response:
        raw = await request.body()
        params = {
            k: canonical_project(v) if k == "project" else v for k, v in request.path_params.items()
        }
        return await run_in_threadpool(
            work, request.app.state, params, request.query_params, raw, request
        )

    return handler


def _name(params: dict) -> TableName:
    return TableName(
        params["project"],
        params.get("dataset", ""),
        params.get("table") or params.get("model") or "",
    )


# -- jobs ------------------------------------------------------------------------------------------

_RUNNERS = {
    "query": lambda state, job, data: queries.run_query_job(
        state.warehouse, state.jobs, job, state.cache
    ),
    "load": lambda state, job, data: load_jobs.run_load_job(state.warehouse, job, data),
    "extract": lambda state, job, data: extract.run_extract_job(state.warehouse, job),
    "copy": lambda state, job, data: tables.run_copy_job(state.warehouse, job),
}


def _run_job(state, project: str, resource: dict, data: bytes | None = None) -> Job:
    configuration = resource.get("configuration")
    if not isinstance(configuration, dict):
        raise Invalid("a job resource needs a configuration (query, load, extract or copy)")
    kinds = [k for k in _RUNNERS if k in configuration]
    if len(kinds) != 1:
        raise Invalid(
            f"a job's configuration holds one of {sorted(_RUNNERS)}, got {sorted(configuration)}"
        )
    if kinds[0] == "load" and data is None and not configuration["load"].get("sourceUris"):
        raise Invalid(
            "a load job sent to jobs.insert needs sourceUris (upload files to /upload/...)"
        )
    job = state.jobs.new(
        project, resource.get("jobReference"), state.warehouse.location, kinds[0], configuration
    )
    try:
        job = _RUNNERS[kinds[0]](state, job, data)
    except Exception as exc:  # a gap in the stand-in: the job fails, and says so
        job = job.finish(_gap(exc))
    if configuration.get("dryRun") and job.error is not None:
        raise job.error  # a dry run is checked in the request itself, as on BigQuery
    return job


async def insert_job(request: Request) -> Response:
    """jobs.insert: the job runs on a worker thread, unless it is a query whose answer is in
    the query cache (answered here, as jobs.query is)."""
    state, project = request.app.state, canonical_project(request.path_params["project"])
    resource = _body(await request.body())
    job = queries.cached_job(state.warehouse, state.jobs, state.cache, project, resource)
    job = job or await run_in_threadpool(_run_job, state, project, resource)
    return _json(job.resource())


@endpoint
def cancel_job(state, params, query, raw, request):  # every job is already done
    return _json(
        {
            "kind": "bigquery#jobCancelResponse",
            "job": state.jobs.get(params["project"], params["job"]).resource(),
        }
    )


@endpoint
def list_jobs(state, params, query, raw, request):
    jobs = state.jobs.list(params["project"])[: _int(query.get("maxResults"), "maxResults") or 1000]
    items = [{**j.resource(), "state": "DONE"} for j in jobs]
    return _json({"kind": "bigquery#jobList", "jobs": items})


def _start(query) -> int:
    token = query.get("pageToken")
    return _int(token, "pageToken") if token else (_int(query.get("startIndex"), "startIndex") or 0)


INLINE_ROWS = 2000  # a page this small is encoded on the event loop, without a thread hop


async def _page(job: Job, start: int, most: int | None) -> tuple[dict, bytes | None]:
    """A page of a job's results (encoded on a worker thread when it is large)."""
    if job.rows is None or most == 0 or job.rows.num_rows - start <= INLINE_ROWS:
        return job.results(start, most)
    return await run_in_threadpool(job.results, start, most)


async def query_results(request: Request) -> Response:
    state, query = request.app.state, request.query_params
    start, most = _start(query), _int(query.get("maxResults"), "maxResults")
    job = state.jobs.get(
        canonical_project(request.path_params["project"]), request.path_params["job"]
    )
    return _with_rows(*await _page(job, start, most))


async def get_job(request: Request) -> Response:
    state, params = request.app.state, request.path_params
    return _json(state.jobs.get(canonical_project(params["project"]), params["job"]).resource())


async def jobs_query(request: Request) -> Response:
    """jobs.query: the job runs on a worker thread, unless its answer is in the query cache
    (then it is answered here, on the event loop: no SQL runs, and no thread is woken)."""
    state, project = request.app.state, canonical_project(request.path_params["project"])
    body = _body(await request.body())
    most = _int(str(body["maxResults"]) if "maxResults" in body else None, "maxResults")
    resource = {"configuration": queries.query_request_configuration(body)}
    job = None
    if body.get("requestId"):  # a retried request gets the answer of the first, as on BigQuery
        resource["jobReference"] = {"jobId": f"job_{body['requestId']}"}
        job = state.jobs.find(project, resource["jobReference"]["jobId"])
    job = job or queries.cached_job(state.warehouse, state.jobs, state.cache, project, resource)
    job = job or await run_in_threadpool(_run_job, state, project, resource)
    response, rows = await _page(job, 0, most)
    response.update(kind="bigquery#queryResponse", queryId=job.job_id)
    if job.statistics.get("statementType"):
        response["statementType"] = job.statistics["statementType"]
    return _with_rows(response, rows)


# -- uploads ---------------------------------------------------------------------------------------


@endpoint
def upload(state, params, query, raw, request):
    kind = query.get("uploadType")
    if kind == "multipart":
        metadata, data = split_multipart(request.headers.get("content-type", ""), raw)
        return _json(_run_job(state, params["project"], metadata, data).resource())
    if kind == "resumable":
        upload_id = state.uploads.start(params["project"], _body(raw))
        location = f"{str(request.base_url).rstrip('/')}{request.url.path}?uploadType=resumable&upload_id={upload_id}"
        return Response(b"", 200, headers={"location": location})
    raise Invalid(f"uploadType must be multipart or resumable, got {kind!r}")


@endpoint
def upload_chunk(state, params, query, raw, request):
    done = state.uploads.put(query.get("upload_id", ""), request.headers.get("content-range"), raw)
    if isinstance(done, int):
        return Response(b"", 308, headers={"range": f"bytes=0-{done - 1}"} if done else {})
    project, metadata, data = done
    return _json(_run_job(state, project, metadata, data).resource())


# -- datasets, tables, models, projects --------------------------------------------------------------


@endpoint
def datasets(state, params, query, raw, request):
    if request.method == "GET":
        return _json(tables.list_datasets(state.warehouse, params["project"]))
    ref = _body(raw).get("datasetReference") or {}
    if not ref.get("datasetId"):
        raise Invalid("a dataset resource needs datasetReference.datasetId")
    name = TableName(
        canonical_project(ref.get("projectId") or params["project"]), ref["datasetId"], ""
    )
    return _json(tables.create_dataset(state.warehouse, name))


@endpoint
def dataset(state, params, query, raw, request):
    name = _name(params)
    if request.method == "DELETE":
        tables.delete_dataset(state.warehouse, name, query.get("deleteContents") == "true")
        return Response(b"", 204)
    if request.method in ("PATCH", "PUT"):
        raise Invalid(
            "the local warehouse keeps no dataset properties to change (description, labels)"
        )
    return _json(tables.get_dataset(state.warehouse, name))


@endpoint
def table_list(state, params, query, raw, request):
    if request.method == "GET":
        return _json(tables.list_tables(state.warehouse, _name(params)))
    body = _body(raw)
    ref = body.get("tableReference") or {}
    if not ref.get("tableId"):
        raise Invalid("a table resource needs tableReference.tableId")
    name = TableName(params["project"], params["dataset"], ref["tableId"])
    return _json(tables.create_table(state.warehouse, name, body, params["project"]))


@endpoint
def table(state, params, query, raw, request):
    name = _name(params)
    if request.method == "DELETE":
        tables.delete_table(state.warehouse, name)
        return Response(b"", 204)
    if request.method in ("PATCH", "PUT"):
        return _json(tables.patch_table(state.warehouse, name, _body(raw)))
    return _json(tables.table_resource(state.warehouse, name))


@endpoint
def table_data(state, params, query, raw, request):
    response, rows = tables.list_rows(
        state.warehouse,
        _name(params),
        _start(query),
        _int(query.get("maxResults"), "maxResults"),
        query.get("selectedFields"),
    )
    return _with_rows(response, rows)


@endpoint
def insert_all(state, params, query, raw, request):
    errors = streaming.insert_all(state.warehouse, _name(params), _body(raw))
    return _json(
        {
            "kind": "bigquery#tableDataInsertAllResponse",
            **({"insertErrors": errors} if errors else {}),
        }
    )


@endpoint
def model_list(state, params, query, raw, request):
    return _json(models.list_models(state.warehouse, _name(params)))


@endpoint
def model(state, params, query, raw, request):
    name = _name(params)
    if request.method == "DELETE":
        models.delete_model(state.warehouse, name)
        return Response(b"", 204)
    if request.method == "PATCH":
        return _json(models.patch_model(state.warehouse, name, _body(raw)))
    return _json(models.get_model(state.warehouse, name))


@endpoint
def projects(state, params, query, raw, request):
    rows = (
        state.warehouse.cursor()
        .execute("SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE '%.%'")
        .fetchall()
    )
    ids = sorted({r[0].split(".", 1)[0] for r in rows} | {state.project})
    items = [
        {
            "kind": "bigquery#project",
            "id": p,
            "numericId": "0",
            "projectReference": {"projectId": p},
            "friendlyName": p,
        }
        for p in ids
    ]
    return _json({"kind": "bigquery#projectList", "projects": items, "totalItems": len(items)})


# -- rows as Arrow (the workbook client's fast read path; see prodml.warehouse.bqclient) -----------

ARROW = "application/vnd.apache.arrow.stream"


def _arrow(table: pa.Table) -> Response:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=65_536)
    return Response(sink.getvalue().to_pybytes(), media_type=ARROW)


def _window(table, query) -> pa.Table:
    start, most = _start(query), _int(query.get("maxResults"), "maxResults")
    table = table.to_arrow() if isinstance(table, Rows) else table
    return table.slice(start, most) if most is not None else table.slice(start)


@endpoint
def query_arrow(state, params, query, raw, request):
    job = state.jobs.get(params["project"], params["job"])
    job.results(0, 0)  # the job's own error, or Not found for dropped rows
    if job.rows is None:
        raise Invalid(
            f"job {job.job_id} returned no rows (it ran {job.statistics.get('statementType')})"
        )
    return _arrow(_window(job.rows, query))


@endpoint
def table_arrow(state, params, query, raw, request):
    start, most = _start(query), _int(query.get("maxResults"), "maxResults")
    return _arrow(
        tables.read_rows(state.warehouse, _name(params), start, most, query.get("selectedFields"))
    )


async def health(request: Request) -> Response:
    state = request.app.state
    return _json(
        {"service": "prodml-warehouse", "pid": os.getpid(), "warehouse": str(state.warehouse.path)}
    )


def _routes() -> list[Route]:
    p, d, t = f"{BASE}/projects/{{project}}", "/datasets/{dataset}", "/tables/{table}"
    return [
        Route(f"{p}/jobs", insert_job, methods=["POST"]),
        Route(f"{p}/jobs", list_jobs, methods=["GET"]),
        Route(f"{p}/jobs/{{job}}", get_job, methods=["GET"]),
        Route(f"{p}/jobs/{{job}}/cancel", cancel_job, methods=["POST"]),
        Route(f"{p}/queries", jobs_query, methods=["POST"]),
        Route(f"{p}/queries/{{job}}", query_results, methods=["GET"]),
        Route(f"{p}/datasets", datasets, methods=["GET", "POST"]),
        Route(f"{p}{d}", dataset, methods=["GET", "PATCH", "PUT", "DELETE"]),
        Route(f"{p}{d}/tables", table_list, methods=["GET", "POST"]),
        Route(f"{p}{d}{t}", table, methods=["GET", "PATCH", "PUT", "DELETE"]),
        Route(f"{p}{d}{t}/data", table_data, methods=["GET"]),
        Route(f"{p}{d}{t}/insertAll", insert_all, methods=["POST"]),
        Route(f"{p}{d}/models", model_list, methods=["GET"]),
        Route(f"{p}{d}/models/{{model}}", model, methods=["GET", "PATCH", "DELETE"]),
        Route(f"{BASE}/projects", projects, methods=["GET"]),
        Route("/upload/bigquery/v2/projects/{project}/jobs", upload, methods=["POST"]),
        Route("/upload/bigquery/v2/projects/{project}/jobs", upload_chunk, methods=["PUT"]),
        Route("/prodml/health", health, methods=["GET"]),
        Route("/prodml/v1/projects/{project}/queries/{job}/arrow", query_arrow, methods=["GET"]),
        Route(f"/prodml/v1/projects/{{project}}{d}{t}/arrow", table_arrow, methods=["GET"]),
    ]


def create_app(warehouse: Warehouse, project: str = "local-project", lifespan=None) -> Starlette:
    """The ASGI application serving ``warehouse``; ``project`` is listed by projects.list."""
    app = Starlette(
        routes=_routes(),
        exception_handlers={HTTPException: on_error, BigQueryError: on_error, Exception: on_error},
        lifespan=lifespan,
    )
    app.state.warehouse, app.state.project = warehouse, project
    app.state.jobs, app.state.uploads = JobStore(), Resumable()
    app.state.cache = QueryCache(RESULTS_BYTES // 4)
    return app
