"""Jobs: what ``jobs.insert`` and ``jobs.query`` ran, as BigQuery's Job resources, and their
results, kept for ``jobs.getQueryResults``.

Every job runs to the end inside the request that creates it, so its resource comes back
``DONE`` (with ``status.errorResult`` when it failed, as BigQuery reports a failed job) and the
client never needs to poll. A query's rows stay in memory until :data:`RESULTS_BYTES` of newer
results push them out (least recently read first); asking for them afterwards gets BigQuery's
Not found. A query job's resource names no ``destinationTable`` unless the job asked for one:
BigQuery would name an anonymous table, which a client reads with the BigQuery Storage API (a
gRPC service of Google's the local warehouse does not speak); without one the client reads the
rows through ``getQueryResults``.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field

import pyarrow as pa

from prodml.warehouse import encoding
from prodml.warehouse.errors import BigQueryError, Duplicate, NotFound
from prodml.warehouse.types import schema_from_arrow

__all__ = ["RESULTS_BYTES", "Job", "JobStore"]

RESULTS_BYTES = int(os.environ.get("PRODML_WAREHOUSE_RESULTS_MB", "1024")) * 1024 * 1024
MAX_JOBS = 10_000  # job resources remembered (jobs.get, jobs.list)
_TYPES = {"query": "QUERY", "load": "LOAD", "extract": "EXTRACT", "copy": "COPY"}


def _millis() -> str:
    return str(int(time.time() * 1000))


@dataclass
class Job:
    """One job: its reference, configuration, outcome and (for queries) rows."""

    project: str
    job_id: str
    location: str
    kind: str  # query, load, extract, copy
    configuration: dict
    created: str = field(default_factory=_millis)
    ended: str | None = None
    error: BigQueryError | None = None
    statistics: dict = field(default_factory=dict)  # the kind's own: query, load, extract
    rows: pa.Table | None = None
    expired: bool = False  # its rows were dropped to keep within RESULTS_BYTES

    @property
    def reference(self) -> dict:
        return {"projectId": self.project, "jobId": self.job_id, "location": self.location}

    def finish(self, error: BigQueryError | None = None) -> Job:
        self.error, self.ended = error, _millis()
        return self

    def status(self) -> dict:
        status = {"state": "DONE"}
        if self.error is not None:
            status["errorResult"] = self.error.error_proto()
            status["errors"] = self.error.errors or [self.error.error_proto()]
        elif self.statistics.get("errors"):  # a load's skipped bad records
            status["errors"] = self.statistics["errors"]
        return status

    def resource(self) -> dict:
        """BigQuery's Job resource."""
        stats = {k: v for k, v in self.statistics.items() if k != "errors"}
        return {
            "kind": "bigquery#job",
            "id": f"{self.project}:{self.location}.{self.job_id}",
            "jobReference": self.reference,
            "configuration": {**self.configuration, "jobType": _TYPES[self.kind]},
            "status": self.status(),
            "statistics": {
                "creationTime": self.created,
                "startTime": self.created,
                "endTime": self.ended or self.created,
                **({self.kind: stats} if stats else {}),
            },
            "user_email": "local@prodml",
        }

    def results(self, start: int = 0, max_results: int | None = None) -> tuple[dict, bytes | None]:
        """``jobs.getQueryResults``: the response without its rows, and the rows' JSON (None
        when the page holds none). Raises the job's own error if it failed."""
        if self.error is not None:
            raise self.error
        if self.expired:
            raise NotFound(
                f"Not found: Job {self.project}:{self.location}.{self.job_id}: its results were "
                f"dropped to keep the warehouse service within {RESULTS_BYTES // 2**20} MB of "
                "results (PRODML_WAREHOUSE_RESULTS_MB); run the query again"
            )
        response = {
            "kind": "bigquery#getQueryResultsResponse",
            "jobReference": self.reference,
            "jobComplete": True,
            "totalBytesProcessed": "0",
            "cacheHit": bool(self.statistics.get("cacheHit")),
        }
        if "numDmlAffectedRows" in self.statistics:
            response["numDmlAffectedRows"] = self.statistics["numDmlAffectedRows"]
        if self.rows is None:  # DDL and DML: no schema, no rows
            return response, None
        fields = (
            self.rows.fields
            if isinstance(self.rows, encoding.Rows)
            else schema_from_arrow(self.rows.schema)
        )
        response["schema"] = {"fields": fields}
        response["totalRows"] = str(self.rows.num_rows)
        if max_results == 0:
            return response, None
        body, following = encoding.page(self.rows, start, max_results, fields)
        if following is not None:
            response["pageToken"] = str(following)
        return response, body


class JobStore:
    """The service's jobs, by (project, job id); query rows kept within :data:`RESULTS_BYTES`."""

    def __init__(self, results_bytes: int = RESULTS_BYTES):
        self._jobs: OrderedDict[tuple[str, str], Job] = OrderedDict()
        self._with_rows: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._bytes, self._limit = 0, results_bytes
        self._lock = threading.Lock()

    def new(
        self, project: str, reference: dict | None, location: str, kind: str, configuration: dict
    ) -> Job:
        """A job with the client's id (or a new one); an id in use is BigQuery's 409."""
        job_id = (reference or {}).get("jobId") or f"job_{uuid.uuid4().hex}"
        job = Job(
            project, job_id, (reference or {}).get("location") or location, kind, configuration
        )
        with self._lock:
            if (project, job_id) in self._jobs:
                raise Duplicate(f"Already Exists: Job {project}:{job.location}.{job_id}")
            self._jobs[(project, job_id)] = job
            while len(self._jobs) > MAX_JOBS:
                old, _ = self._jobs.popitem(last=False)
                self._forget_rows(old)
        return job

    def keep_rows(self, job: Job, rows: pa.Table | encoding.Rows) -> None:
        """Keep a query's rows, pushing out the least recently read ones beyond the budget."""
        key = (job.project, job.job_id)
        with self._lock:
            job.rows = rows
            self._with_rows[key] = rows.nbytes
            self._bytes += rows.nbytes
            while self._bytes > self._limit and len(self._with_rows) > 1:
                self._forget_rows(next(iter(self._with_rows)))

    def _forget_rows(self, key) -> None:
        size = self._with_rows.pop(key, None)
        if size is not None:
            self._bytes -= size
            job = self._jobs.get(key)
            if job is not None:
                job.rows, job.expired = None, True

    def find(self, project: str, job_id: str) -> Job | None:
        """The job, or None."""
        with self._lock:
            return self._jobs.get((project, job_id))

    def get(self, project: str, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get((project, job_id))
            if job is None:
                raise NotFound(
                    f"Not found: Job {project}:{job_id} (jobs live in the warehouse service's "
                    "memory: if it stopped since, idle for PRODML_WAREHOUSE_IDLE_SECONDS, run "
                    "the query again)"
                )
            if (project, job_id) in self._with_rows:
                self._with_rows.move_to_end((project, job_id))
        return job

    def list(self, project: str) -> list[Job]:
        with self._lock:
            return [j for (p, _), j in reversed(self._jobs.items()) if p == project]
