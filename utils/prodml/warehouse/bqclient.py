"""The client ``prodml.warehouse.client()`` returns for the local service: google-cloud-bigquery's
own ``Client``, made the way any client is pointed at a BigQuery-compatible endpoint::

    bigquery.Client(project=..., credentials=AnonymousCredentials(),
                    client_options={"api_endpoint": url})

with two differences a user never sees. Its HTTP session (:class:`prodml.warehouse.service.
Session`) starts the run folder's service again when it has stopped (idle) and ignores proxy
settings (the service is on loopback). And it never creates a BigQuery Storage Read API client:
that API is a gRPC service of Google's which the local service does not speak, and with
``google-cloud-bigquery-storage`` installed (Colab has it) ``to_dataframe()`` of a table's rows
(``list_rows``) or of a query's destination table would otherwise try it, at Google, and wait.
Rows come through ``tabledata.list`` and ``jobs.getQueryResults`` pages instead.
"""

from __future__ import annotations

from pathlib import Path

from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from prodml.warehouse import service

__all__ = ["Client"]


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
        return f"<google.cloud.bigquery.Client project={self.project!r} on the local warehouse {self._connection.API_BASE_URL}>"

    def _ensure_bqstorage_client(self, *args, **kwargs):
        """No BigQuery Storage client: the local service answers rows over REST."""
        return None
