"""Query jobs: BigQuery's ``configuration.query`` run on the warehouse.

Standard SQL only (``useLegacySql: true`` is refused), named or positional parameters, a default
dataset for bare table names, and an optional destination table with BigQuery's write and
create dispositions. A dry run translates and checks the query without running it. An answer
BigQuery would take from its query cache comes from :class:`~prodml.warehouse.cache.QueryCache`
(``cacheHit: true``).
"""

from __future__ import annotations

from prodml.warehouse import params as query_params
from prodml.warehouse import sql
from prodml.warehouse.cache import QueryCache
from prodml.warehouse.engine import QueryResult, Warehouse
from prodml.warehouse.errors import BigQueryError, Invalid, InvalidQuery
from prodml.warehouse.jobs import Job, JobStore
from prodml.warehouse.names import TableName, canonical_project

__all__ = ["cached_job", "run_query_job", "query_request_configuration"]


def _reference_name(ref: dict, project: str) -> TableName:
    """A TableReference (``projectId``, ``datasetId``, ``tableId``) as a TableName."""
    try:
        return TableName(
            canonical_project(ref.get("projectId") or project), ref["datasetId"], ref["tableId"]
        )
    except (KeyError, TypeError):
        raise Invalid(f"a table reference needs datasetId and tableId, got {ref!r}") from None


def _default_dataset(query: dict, project: str) -> tuple[str, str | None]:
    ref = query.get("defaultDataset") or {}
    if not ref:
        return project, None
    return canonical_project(ref.get("projectId") or project), ref.get("datasetId")


def _run(warehouse: Warehouse, job: Job, query: dict) -> QueryResult:
    text = query.get("query")
    if not isinstance(text, str) or not text.strip():
        raise Invalid("configuration.query.query: the query text is missing")
    if query.get("useLegacySql"):
        raise InvalidQuery(
            "legacy SQL is not supported: the local warehouse speaks Standard SQL (useLegacySql=false)"
        )
    values = query_params.decode(query.get("queryParameters"))
    project, dataset = _default_dataset(query, job.project)
    if job.configuration.get("dryRun"):
        sql.translate(text, project, dataset, warehouse.ml_engine())
        return QueryResult(None, "SELECT")
    result = warehouse.run(text, project, dataset, values)
    destination = query.get("destinationTable")
    if destination:
        if result.rows is None:
            raise InvalidQuery("a destination table needs a query that returns rows (a SELECT)")
        target = _reference_name(destination, job.project)
        warehouse.write_table(
            result.table,
            target,
            job.project,
            (query.get("writeDisposition") or "WRITE_EMPTY").upper(),
            (query.get("createDisposition") or "CREATE_IF_NEEDED").upper(),
        )
    return result


def _statistics(result: QueryResult, cache_hit: bool = False) -> dict:
    stats = {"statementType": result.statement_type, "totalBytesProcessed": "0",
             "totalBytesBilled": "0", "cacheHit": cache_hit}  # fmt: skip
    if result.affected is not None:
        stats["numDmlAffectedRows"] = str(result.affected)
    if result.ddl_target is not None and result.statement_type.startswith(
        ("CREATE", "DROP", "ALTER")
    ):
        target = result.ddl_target
        stats["ddlTargetTable"] = {
            "projectId": target.project,
            "datasetId": target.dataset,
            "tableId": target.table,
        }
    return stats


def _answered(store: JobStore, job: Job, result: QueryResult, cache_hit: bool = False) -> Job:
    job.statistics = _statistics(result, cache_hit)
    if result.rows is not None:
        store.keep_rows(job, result.rows)
    return job.finish()


def run_query_job(
    warehouse: Warehouse, store: JobStore, job: Job, cache: QueryCache | None = None
) -> Job:
    """Run a query job to the end; a failure is recorded on the job, as BigQuery does. With a
    ``cache``, a cacheable answer is filed in it (the look-up is :func:`cached_job`'s, before
    the job is made)."""
    key = cache.key(job.project, job.configuration) if cache is not None else None
    ran_at = warehouse.generation
    query = job.configuration.get("query") or {}
    try:
        result = _run(warehouse, job, query)
    except BigQueryError as err:
        return job.finish(err)
    if key is not None and result.cacheable and result.rows is not None:
        cache.put(key, ran_at, warehouse.generation, result.rows)
    return _answered(store, job, result)


def cached_job(
    warehouse: Warehouse, store: JobStore, cache: QueryCache, project: str, resource: dict
) -> Job | None:
    """The job of a query whose answer is in the cache, done (a new job, as on BigQuery, with
    ``cacheHit: true``); None when the answer has to be computed. Cheap enough for the event
    loop: a dictionary lookup and no SQL."""
    configuration = resource.get("configuration")
    if not isinstance(configuration, dict) or not cache.looks(configuration):
        return None
    key = cache.key(project, configuration)
    cached = cache.get(key, warehouse.generation) if key is not None else None
    if cached is None:
        return None
    job = store.new(project, resource.get("jobReference"), warehouse.location, "query",
                    configuration)  # fmt: skip
    return _answered(store, job, QueryResult(cached, "SELECT"), cache_hit=True)


def query_request_configuration(request: dict) -> dict:
    """``jobs.query``'s request body as the ``configuration`` of the job it runs."""
    query = {
        key: request[key]
        for key in (
            "query",
            "useLegacySql",
            "parameterMode",
            "queryParameters",
            "defaultDataset",
            "useQueryCache",
        )
        if key in request
    }
    configuration = {"query": query}
    if request.get("dryRun"):
        configuration["dryRun"] = True
    return configuration
