"""BigQuery's query cache, on the local warehouse.

BigQuery answers a query it has answered before from a cached results table, at no cost and
with ``statistics.query.cacheHit: true``, unless the job turns the look-up off
(``useQueryCache: false``: the query runs, and its answer is still cached), names a destination
table, or is a dry run; the query text differs in any way (whitespace and comments included); a
table it reads has changed since; or the query is not deterministic (``CURRENT_TIMESTAMP()``, ``RAND()``, ``GENERATE_UUID()``...), reads a
wildcard table or an ``INFORMATION_SCHEMA`` view, or is a script or BigQuery ML. The same rules
hold here (:attr:`prodml.warehouse.sql.Statement.cacheable` decides the last ones).

"Changed since" is the warehouse's :attr:`~prodml.warehouse.engine.Warehouse.generation`, which
every write turn (DML, DDL, loads, streaming inserts, copies, deletes) moves on when it ends:
an answer is filed under the generation read *before* its query ran and is given only while the
generation still stands. That is coarser than BigQuery (a write to any table empties the whole
cache, not only the answers that read that table) and never stale: whatever a write changed,
an answer computed before it ended is filed under an older generation than the one after it.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict

import pyarrow as pa

from prodml.warehouse.encoding import Rows

__all__ = ["QueryCache"]

#: the parts of a query configuration the answer depends on (the rest is how the job runs)
_ANSWER_KEYS = ("query", "defaultDataset", "queryParameters", "parameterMode", "useLegacySql")
#: what makes BigQuery run a query rather than look in the cache
_NOT_CACHED = ("destinationTable", "tableDefinitions", "createSession", "connectionProperties")


class QueryCache:
    """Answers of queries by (project, what the answer depends on), for one generation of the
    warehouse's data; at most ``max_bytes`` of rows, least recently used pushed out first."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._answers: OrderedDict[tuple, pa.Table | Rows] = OrderedDict()
        self._bytes, self._generation = 0, 0
        self._lock = threading.Lock()

    @staticmethod
    def key(project: str, configuration: dict) -> tuple | None:
        """The cache key of a query job's configuration, or None when BigQuery would neither
        look in the cache for its answer nor file it there (a destination table, a dry run...).
        ``useQueryCache: false`` only skips the look (:meth:`looks`): the answer is filed."""
        query = configuration.get("query")
        if not isinstance(query, dict) or not isinstance(query.get("query"), str):
            return None
        if configuration.get("dryRun"):
            return None
        if any(query.get(k) for k in _NOT_CACHED):
            return None
        answer = {k: query[k] for k in _ANSWER_KEYS if k in query}
        return project, json.dumps(answer, sort_keys=True, separators=(",", ":"))

    @staticmethod
    def looks(configuration: dict) -> bool:
        """Whether the job looks in the cache (``useQueryCache``, true unless set false)."""
        return (configuration.get("query") or {}).get("useQueryCache") is not False

    def _at(self, generation: int) -> None:
        """Forget every answer of an older generation (they can never be given again)."""
        if generation != self._generation:
            self._answers.clear()
            self._bytes, self._generation = 0, generation

    def get(self, key: tuple, generation: int) -> pa.Table | Rows | None:
        """The answer filed under ``key`` at ``generation`` (the warehouse's current), or None."""
        with self._lock:
            self._at(generation)
            rows = self._answers.get(key)
            if rows is not None:
                self._answers.move_to_end(key)
            return rows

    def put(self, key: tuple, ran_at: int, now: int, rows: pa.Table | Rows) -> bool:
        """File ``rows``, the answer of a query that started at generation ``ran_at``, if the
        data is still at that generation (``now``) and the rows fit; whether it was filed."""
        size = rows.nbytes
        with self._lock:
            if ran_at != now or size > self.max_bytes // 8:
                return False
            self._at(now)
            old = self._answers.pop(key, None)
            self._bytes += size - (old.nbytes if old is not None else 0)
            self._answers[key] = rows
            while self._bytes > self.max_bytes:
                _, dropped = self._answers.popitem(last=False)
                self._bytes -= dropped.nbytes
            return True

    def __len__(self) -> int:
        return len(self._answers)
