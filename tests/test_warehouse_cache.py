"""BigQuery's query cache on the local service: a repeated query is answered from the cache
(``cacheHit``) with the same rows, and never once anything it could have read has changed
(DML, streaming inserts, loads, copies, table deletes), nor when BigQuery would not cache it
(``use_query_cache=False``, a destination table, a dry run, CURRENT_TIMESTAMP/RAND/
GENERATE_UUID, TABLESAMPLE, INFORMATION_SCHEMA, scripts, other parameters, other text)."""

from __future__ import annotations

import io
import threading

import pandas as pd
import pyarrow as pa
import pytest
import requests
from google.cloud import bigquery
from prodml import warehouse
from prodml.warehouse import sql
from prodml.warehouse.cache import QueryCache
from warehouse_support import dataset_fixtures

COUNT = "SELECT COUNT(*) AS n, SUM(x) AS s FROM cache.t"


SETUP = (
    "CREATE OR REPLACE TABLE cache.t (x INT64)",
    "INSERT INTO cache.t (x) VALUES (1), (2), (3)",
)


run, client = dataset_fixtures("cache", SETUP)


def _run(client, text: str, **config) -> tuple[bool, list[tuple]]:
    job = client.query(text, job_config=bigquery.QueryJobConfig(**config))
    rows = [tuple(r.values()) for r in job.result()]
    return job.cache_hit, rows


def _jobs_query(client, text: str, **body) -> dict:
    url = f"{client._connection.API_BASE_URL}/bigquery/v2/projects/{client.project}/queries"
    answer = requests.post(url, json={"query": text, "useLegacySql": False, **body}, timeout=30)
    answer.raise_for_status()
    return answer.json()


def test_a_repeated_query_is_answered_from_the_cache(client):
    first, second = _run(client, COUNT), _run(client, COUNT)
    assert first == (False, [(3, 6)]) and second == (True, [(3, 6)])
    # jobs.query (query_and_wait's one request) answers from the cache too, with a new job
    answers = [_jobs_query(client, COUNT) for _ in range(2)]
    assert [a["cacheHit"] for a in answers] == [True, True]
    assert answers[0]["jobReference"]["jobId"] != answers[1]["jobReference"]["jobId"]
    assert answers[1]["rows"] == [{"f": [{"v": "3"}, {"v": "6"}]}]
    # and the cached job is a job like any other: jobs.get and getQueryResults find it
    job = client.get_job(answers[1]["jobReference"]["jobId"])
    assert job.cache_hit is True and [tuple(r.values()) for r in job.result()] == [(3, 6)]
    # the same text with other parameters is another query
    text = "SELECT COUNT(*) AS n FROM cache.t WHERE x > @low"
    runs = [
        _run(client, text, query_parameters=[bigquery.ScalarQueryParameter("low", "INT64", low)])
        for low in (0, 1, 0, 1)
    ]
    assert runs == [(False, [(3,)]), (False, [(2,)]), (True, [(3,)]), (True, [(2,)])]


def test_every_kind_of_write_empties_the_cache(client, tmp_path):
    writes = [
        lambda: client.query("INSERT INTO cache.t (x) VALUES (10)").result(),
        lambda: client.insert_rows_json("cache.t", [{"x": 100}]),
        lambda: client.load_table_from_dataframe(pd.DataFrame({"x": [1000]}), "cache.t").result(),
        lambda: client.load_table_from_file(
            io.BytesIO(b"x\n10000\n"),
            "cache.t",
            job_config=bigquery.LoadJobConfig(source_format="CSV", skip_leading_rows=1),
        ).result(),  # fmt: skip
        lambda: client.query("UPDATE cache.t SET x = x + 1 WHERE x = 1").result(),
        lambda: client.query("DELETE FROM cache.t WHERE x = 2").result(),
    ]
    expected = [(3, 6)]
    for write in writes:
        assert _run(client, COUNT)[1] == expected
        assert _run(client, COUNT) == (True, expected)  # cached...
        write()
        hit, rows = _run(client, COUNT)  # ...and not after the write
        assert hit is False and rows != expected
        expected = rows
    assert expected == [(5, 11113)]  # 1, 2, 3, 10, 100, 1000, 10000; 1 -> 2; both 2s gone
    # a table replaced by a copy of another, and a table deleted
    client.query("CREATE TABLE cache.u AS SELECT 7 AS x").result()
    assert _run(client, COUNT)[1] == _run(client, COUNT)[1] == expected
    client.copy_table("cache.u", "cache.t", job_config=bigquery.CopyJobConfig(
        write_disposition="WRITE_TRUNCATE")).result()  # fmt: skip
    assert _run(client, COUNT) == (False, [(1, 7)])
    assert _run(client, COUNT) == (True, [(1, 7)])
    client.delete_table("cache.t")
    with pytest.raises(Exception, match="Not found: Table"):
        client.query(COUNT).result()


@pytest.mark.parametrize(
    "text, config",
    [
        (COUNT, {"use_query_cache": False}),
        ("SELECT COUNT(*) AS n, CURRENT_TIMESTAMP() AS t FROM cache.t", {}),
        ("SELECT RAND() AS r FROM cache.t", {}),
        ("SELECT GENERATE_UUID() AS u FROM cache.t", {}),
        ("SELECT COUNT(*) AS n FROM cache.t TABLESAMPLE SYSTEM (50 PERCENT)", {}),
        ("SELECT COUNT(*) AS n FROM cache.INFORMATION_SCHEMA.TABLES", {}),
        ("SELECT 1 AS a; " + COUNT, {}),
    ],
)
def test_what_bigquery_does_not_cache_is_computed_every_time(client, text, config):
    assert [_run(client, text, **config)[0] for _ in range(3)] == [False] * 3


def test_use_query_cache_false_runs_the_query_and_still_files_its_answer(client):
    """As on BigQuery, ``useQueryCache: false`` only skips the look-up."""
    runs = [_run(client, COUNT, use_query_cache=False) for _ in range(2)] + [_run(client, COUNT)]
    assert runs == [(False, [(3, 6)])] * 2 + [(True, [(3, 6)])]


def test_a_destination_table_and_a_dry_run_run_the_query(client):
    _run(client, COUNT)
    assert _run(client, COUNT)[0] is True
    target = bigquery.QueryJobConfig(destination=f"{client.project}.cache.out")
    job = client.query(COUNT, job_config=target)
    job.result()
    assert job.cache_hit is False and client.get_table("cache.out").num_rows == 1
    dry = client.query(COUNT, job_config=bigquery.QueryJobConfig(dry_run=True))
    assert dry.cache_hit is False
    # other text (even whitespace) is another query, as on BigQuery
    assert _run(client, COUNT + " ")[0] is False


def test_nondeterministic_functions_are_found_in_the_tree():
    stable = "SELECT FARM_FINGERPRINT('a') AS f, DATE '2020-01-01' AS d"
    assert all(st.deterministic for st in sql.translate(stable, "p"))
    for text in ("SELECT CURRENT_DATE()", "SELECT CURRENT_DATETIME()", "SELECT SESSION_USER()",
                 "SELECT x FROM (SELECT RAND() AS x)"):  # fmt: skip
        assert not sql.translate(text, "p")[0].deterministic, text


def test_an_answer_computed_during_a_write_is_not_filed():
    """The cache keys on the warehouse's generation read before the query ran: an answer whose
    query started before a write ended is dropped, and a write empties the cache."""
    cache = QueryCache(max_bytes=1 << 20)
    key = cache.key("p", {"query": {"query": "SELECT 1"}})
    rows = pa.table({"x": [1]})
    assert not cache.put(key, ran_at=4, now=5, rows=rows)  # a write ended while it ran
    assert cache.get(key, 5) is None
    assert cache.put(key, ran_at=5, now=5, rows=rows) and cache.get(key, 5) is rows
    assert cache.get(key, 6) is None and len(cache) == 0  # the next write: gone
    # answers beyond an eighth of the budget are not kept; the least recently used go first
    big = pa.table({"x": list(range(100_000))})
    assert not cache.put(key, 6, 6, big)
    small = QueryCache(max_bytes=8 * rows.nbytes * 4)
    for i in range(40):
        small.put(("p", str(i)), 0, 0, rows)
    assert len(small) == 32 and small.get(("p", "0"), 0) is None
    assert small.get(("p", "39"), 0) is rows
    assert not cache.looks({"query": {"query": "SELECT 1", "useQueryCache": False}})
    assert cache.key("p", {"query": {"query": "SELECT 1"}, "dryRun": True}) is None


def test_readers_beside_a_writer_never_see_a_stale_count(client):
    """Two threads repeat the count while a third inserts: each count read after an insert was
    acknowledged is at least that insert's count (a stale cached answer would be lower)."""
    inserted, failures, stop = [3], [], threading.Event()

    def read():
        client = warehouse.client()  # one client per thread, as each process would have
        while not stop.is_set():
            floor = inserted[-1]
            n = next(iter(client.query_and_wait("SELECT COUNT(*) AS n FROM cache.t")))["n"]
            if n < floor:
                failures.append((n, floor))

    readers = [threading.Thread(target=read) for _ in range(2)]
    for thread in readers:
        thread.start()
    try:
        for i in range(30):
            client.query(f"INSERT INTO cache.t (x) VALUES ({i})").result()
            inserted.append(inserted[-1] + 1)
    finally:
        stop.set()
        for thread in readers:
            thread.join()
    assert failures == [] and inserted[-1] == 33
    assert _run(client, "SELECT COUNT(*) AS n FROM cache.t")[1] == [(33,)]
