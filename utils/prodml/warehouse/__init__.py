"""The warehouse: BigQuery Standard SQL on a local DuckDB file, or BigQuery itself.

``client()`` returns, by ``prodml.config.settings().warehouse``:

* ``"duckdb"`` (default): a :class:`LocalClient` on ``settings().duckdb_path`` (in the run
  folder). It answers the same calls as ``google.cloud.bigquery.Client`` -- ``query(sql,
  job_config)``, ``load_table_from_dataframe``, ``load_table_from_uri``, ``extract_table``,
  ``get_table``, ``list_rows``, ``list_tables``, ``delete_table``, ``create_dataset``,
  ``get_dataset``, ``delete_dataset``, ``insert_rows_json`` (streaming inserts); any other Client
  method raises NotImplementedError -- and takes google-cloud-bigquery's own
  config classes (``QueryJobConfig``, ``ScalarQueryParameter``, ``LoadJobConfig``,
  ``SchemaField``...), so notebook code is the same on both backends.
* ``"bigquery"``: the real ``google.cloud.bigquery.Client`` (Application Default Credentials).

Local table names: BigQuery's ``project.dataset.table`` is the DuckDB table
``"project.dataset"."table"`` (one DuckDB schema per dataset, named ``<project>.<dataset>``);
``dataset.table`` means the default project ``settings().project``. SQL is translated with
sqlglot (see :mod:`prodml.warehouse.sql` for what is added and what is refused).

Public tables (``prodml.datasets.PUBLIC_TABLES``, e.g. ``bigquery-public-data.samples.natality``,
also spelled ``publicdata.samples.natality``) exist in every run folder: the first reference
generates one (deterministic, default size) into the warehouse file, once, with a one-line
notice on stderr. They are read-only to SQL, as on BigQuery (Access Denied); load jobs may fill
them (that is how ``natality.load`` sizes them). Many processes may use one run folder at once:
see :mod:`prodml.warehouse.local` for how (and why not a server). ``%load_ext prodml.warehouse``
adds the ``%%bigquery`` cell magic (:mod:`prodml.warehouse.magic`).

Known differences from BigQuery, locally: ``CAST(float AS STRING)`` writes whole numbers below
1e15 without a fraction, like BigQuery, and other values with DuckDB's shortest round-trip form
(BigQuery documents its own as "approximate"); ``CAST(timestamp AS STRING)`` has no ``+00``
suffix; ``APPROX_QUANTILES`` is exact (``quantile_disc``); ``FARM_FINGERPRINT`` takes STRING
(not BYTES); ``MOD(x, 0)`` is NULL instead of an error; the first table of a dataset outside the
default project (other than the public one) creates its dataset.
"""

from __future__ import annotations

from prodml import config
from prodml.warehouse.local import (
    ExtractJob,
    LoadJob,
    LocalClient,
    QueryJob,
    RowIterator,
    TableNotFound,
)
from prodml.warehouse.sql import UnsupportedSQL, fingerprint, translate


def load_ipython_extension(ipython) -> None:
    """``%load_ext prodml.warehouse``: the ``%%bigquery`` cell magic (:mod:`.magic`)."""
    from prodml.warehouse import magic

    magic.load_ipython_extension(ipython)


def client(project: str | None = None):
    """A BigQuery client for the configured warehouse (``settings().warehouse``).

    ``project`` overrides ``settings().project`` (the default project of ``dataset.table``
    names locally; the billing project on BigQuery).
    """
    settings = config.settings()
    project = project or settings.project
    if settings.warehouse == "bigquery":
        from google.cloud import bigquery

        return bigquery.Client(project=project, location=settings.location)
    return LocalClient(settings.duckdb_path, project=project, location=settings.location)


__all__ = [
    "client",
    "LocalClient",
    "QueryJob",
    "LoadJob",
    "ExtractJob",
    "RowIterator",
    "TableNotFound",
    "UnsupportedSQL",
    "fingerprint",
    "translate",
]
