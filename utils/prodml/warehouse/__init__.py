"""The warehouse: google-cloud-bigquery's own client, on a local BigQuery service or on BigQuery.

``client()`` returns a ``google.cloud.bigquery.Client`` for the configured warehouse
(``prodml.config.settings().warehouse``):

* ``"duckdb"`` (default): the client talks to the run folder's **local BigQuery service**, a
  process that owns the run folder's DuckDB file (``warehouse.duckdb``) and answers BigQuery's v2
  REST API on 127.0.0.1. The first ``client()`` of a run folder starts it; every process of the
  folder shares it. It is the client any code would make for a BigQuery-compatible endpoint::

      bigquery.Client(project=PROJECT, credentials=AnonymousCredentials(),
                      client_options={"api_endpoint": warehouse.endpoint()})

  so ``query``, ``to_dataframe``, ``list_rows``, loads, extracts, streaming inserts, the DB-API
  and ``%%bigquery`` are google-cloud-bigquery's own (see :mod:`~prodml.warehouse.bqclient` for
  the two details that differ).
* ``"bigquery"``: ``bigquery.Client(project=...)`` with Application Default Credentials; no
  service is started.

What the local service adds to DuckDB: BigQuery Standard SQL translated by sqlglot plus named
rewrite passes (:mod:`~prodml.warehouse.sql`), ``FARM_FINGERPRINT`` bit-exact, BigQuery DDL,
``INFORMATION_SCHEMA``, BigQuery's errors, public tables generated on first reference and
read-only (:mod:`~prodml.warehouse.public`), and refusals of SQL that would not run on BigQuery.
Known differences: ``CAST(float AS STRING)`` writes whole numbers below 1e15 without a fraction,
like BigQuery, and other values with DuckDB's shortest round-trip form; ``CAST(timestamp AS
STRING)`` has no ``+00`` suffix; ``APPROX_QUANTILES`` is exact; ``FARM_FINGERPRINT`` takes STRING
(not BYTES); ``MOD(x, 0)`` is NULL instead of an error; jobs run to the end when submitted; the
first table of a dataset outside the default project creates its dataset.
"""

from __future__ import annotations

from pathlib import Path

from prodml import config
from prodml.warehouse import service
from prodml.warehouse.functions import fingerprint

__all__ = [
    "client",
    "endpoint",
    "stop",
    "is_local",
    "warehouse_file",
    "fingerprint",
    "load_ipython_extension",
]


def endpoint(run_dir: str | Path | None = None) -> str:
    """The URL of the run folder's local BigQuery service, started if none answers."""
    return service.ensure(run_dir)


def client(project: str | None = None, *, run_dir: str | Path | None = None):
    """A ``google.cloud.bigquery.Client`` for the configured warehouse.

    ``project`` overrides ``settings().project`` (the default project of ``dataset.table``
    names; on BigQuery the billing project). ``run_dir`` picks another run folder's local
    warehouse (default: the configured run folder).
    """
    settings = config.settings()
    project = project or settings.project
    if settings.warehouse == "bigquery":
        from google.cloud import bigquery

        return bigquery.Client(project=project, location=settings.location)
    from prodml.warehouse.bqclient import Client

    folder = Path(run_dir).resolve() if run_dir is not None else settings.run_dir
    return Client(project, settings.location, folder, service.url(folder))


def stop(run_dir: str | Path | None = None) -> bool:
    """Stop the run folder's local service (it also stops when idle); True if one ran."""
    return service.stop(run_dir)


def warehouse_file(client_) -> Path | None:
    """The DuckDB file a workbook client's warehouse lives in (None for other clients)."""
    return getattr(client_, "warehouse_file", None)


def is_local(client_) -> bool:
    """Whether ``client_`` talks to a local BigQuery service (a workbook client, or any client
    whose endpoint is on this machine's loopback)."""
    if warehouse_file(client_) is not None:
        return True
    base = getattr(getattr(client_, "_connection", None), "API_BASE_URL", "") or ""
    return base.startswith(("http://127.0.0.1", "http://localhost", "http://[::1]"))


def load_ipython_extension(ipython) -> None:
    """``%load_ext prodml.warehouse``: bigquery-magics' ``%%bigquery``, pointed at the configured
    warehouse (:mod:`~prodml.warehouse.magics`)."""
    from prodml.warehouse import magics

    magics.load_ipython_extension(ipython)
