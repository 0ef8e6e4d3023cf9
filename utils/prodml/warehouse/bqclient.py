"""The client ``prodml.warehouse.client()`` returns for the local service: google-cloud-bigquery's
own ``Client``, made the way any client is pointed at a BigQuery-compatible endpoint::

    bigquery.Client(project=..., credentials=AnonymousCredentials(),
                    client_options={"api_endpoint": url})

with three differences a user does not see:

* Its HTTP session (:class:`prodml.warehouse.service.Session`) starts the run folder's service
  again when it has stopped (idle), and ignores proxy settings (the service is on loopback).
* It never creates a BigQuery Storage Read API client. That API is a gRPC service of Google's
  which the local service does not speak, and with ``google-cloud-bigquery-storage`` installed
  (Colab has it) ``to_dataframe()`` of a table's rows (``list_rows``) or of a query's destination
  table would otherwise try it, at Google, and wait.
* ``to_arrow()`` and ``to_dataframe()`` of its row iterators read the rows as Arrow from the
  service (:class:`LocalRowIterator`), as the Storage Read API gives them on BigQuery, instead
  of as JSON pages: the client library turns each JSON cell into a Python object, about 40 s for
  a million rows of eight columns here, against a fraction of a second for Arrow. The values are
  the same (a test compares the two). Iterating rows, ``to_dataframe_iterable`` and every client
  made by hand (``%%bigquery``'s too) use the JSON pages.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
from google.api_core import exceptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery
from google.cloud.bigquery.table import RowIterator

from prodml.warehouse import service

__all__ = ["Client", "LocalRowIterator"]


class LocalRowIterator(RowIterator):
    """google-cloud-bigquery's ``RowIterator``, whose ``to_arrow_iterable`` (and so ``to_arrow``
    and ``to_dataframe``) reads Arrow record batches from the local service."""

    def _arrow_url(self) -> str | None:
        """Where the service answers these rows as Arrow, or None to read JSON pages."""
        if self._started or getattr(self, "_query_results_format", None) == "ARROW":
            return None
        base = self.client._connection.API_BASE_URL + "/prodml/v1"
        if self.path is None:  # query_and_wait's rows, all in its one answer
            job, project = getattr(self, "job_id", None), getattr(self, "project", None)
            return f"{base}/projects/{project}/queries/{job}/arrow" if job and project else None
        parts = self.path.strip("/").split("/")
        if len(parts) == 4 and parts[2] == "queries":  # projects/p/queries/job
            return f"{base}{self.path}/arrow"
        if len(parts) == 7 and parts[2] == "datasets" and parts[6] == "data":
            return f"{base}{self.path[: -len('/data')]}/arrow"
        return None

    def _arrow_batches(self, url: str, timeout):
        from google.cloud.bigquery import _pandas_helpers

        target = _pandas_helpers.bq_to_arrow_schema(self.schema)
        if target is None:
            return None
        params = {"startIndex": self.extra_params.get("startIndex", 0)}
        if self.max_results is not None:
            params["maxResults"] = self.max_results
        if self._selected_fields:
            params["selectedFields"] = ",".join(f.name for f in self.schema)
        answer = self.client._http.get(url, params=params, timeout=timeout)
        if answer.status_code != 200:
            raise exceptions.from_http_response(answer)
        reader = pa.ipc.open_stream(answer.content)
        try:
            return [
                pa.RecordBatch.from_arrays(
                    [
                        column.cast(field.type)
                        for column, field in zip(batch.columns, target, strict=True)
                    ],
                    schema=target,
                )
                for batch in reader
            ]
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
            return None  # a type the JSON pages convert otherwise: read those

    def to_arrow_iterable(
        self, bqstorage_client=None, max_queue_size=None, max_stream_count=None, timeout=None
    ):
        """Record batches of the rows, as Arrow from the local service (JSON pages when the
        iterator has started or a column's type needs the JSON path)."""
        url = self._arrow_url()
        batches = self._arrow_batches(url, timeout) if url else None
        if batches is not None:
            self._started = True
            return iter(batches)
        kwargs = {"max_stream_count": max_stream_count, "timeout": timeout}
        if max_queue_size is not None:
            kwargs["max_queue_size"] = max_queue_size
        return super().to_arrow_iterable(bqstorage_client=None, **kwargs)


def _local(rows):
    if type(rows) is RowIterator:  # not an _EmptyRowIterator (DDL, DML)
        rows.__class__ = LocalRowIterator
    return rows


class Client(bigquery.Client):
    """google-cloud-bigquery's ``Client`` on the run folder's local BigQuery service."""

    def __init__(self, project: str, location: str | None, run_dir: Path, url: str):
        super().__init__(
            project=project,
            credentials=AnonymousCredentials(),
            location=location,
            client_options={"api_endpoint": url},
            _http=service.Session(run_dir, url),
        )
        self.run_dir = run_dir
        self.warehouse_file = run_dir / "warehouse.duckdb"

    def __repr__(self) -> str:
        return (
            f"<google.cloud.bigquery.Client project={self.project!r} on the local warehouse "
            f"{self._connection.API_BASE_URL}>"
        )

    def _ensure_bqstorage_client(self, *args, **kwargs):
        """No BigQuery Storage client: the local service answers rows itself."""
        return None

    def list_rows(self, *args, **kwargs):
        return _local(super().list_rows(*args, **kwargs))

    def _list_rows_from_query_results(self, *args, **kwargs):
        return _local(super()._list_rows_from_query_results(*args, **kwargs))

    def query_and_wait(self, *args, **kwargs):
        return _local(super().query_and_wait(*args, **kwargs))
