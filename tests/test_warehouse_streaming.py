"""Streaming inserts into the local warehouse: google-cloud-bigquery's ``insert_rows_json``
against the service's ``tabledata.insertAll`` (its return value: the list of rows that failed)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from google.api_core import exceptions
from google.cloud import bigquery
from warehouse_support import dataset_fixtures

SCHEMA = [
    bigquery.SchemaField("hospital", "STRING", mode="REQUIRED"),
    bigquery.SchemaField("births", "INTEGER"),
    bigquery.SchemaField("mean_weight", "FLOAT"),
    bigquery.SchemaField("is_male", "BOOLEAN"),
]
ROWS = [
    {"hospital": "H1", "births": 3, "mean_weight": 7.25, "is_male": True},
    {"hospital": "H2", "births": 5, "mean_weight": 6.5, "is_male": False},
    {"hospital": "H3", "births": None, "mean_weight": 8, "is_male": None},
]


SETUP = (
    "CREATE TABLE stream.births (hospital STRING NOT NULL, births INT64, "
    "mean_weight FLOAT64, is_male BOOL)",
)


run, client = dataset_fixtures("stream", SETUP)


def table_rows(client) -> list[tuple]:
    rows = client.query(
        "SELECT hospital, births, mean_weight, is_male FROM stream.births ORDER BY hospital"
    ).result()
    return [tuple(r.values()) for r in rows]


def test_valid_rows_are_queryable_at_once_and_no_errors_returned(client):
    assert client.insert_rows_json("stream.births", ROWS) == []
    assert client.insert_rows_json("stream.births", ROWS[:1], row_ids=["a"]) == []
    assert table_rows(client) == [
        ("H1", 3, 7.25, True),
        ("H1", 3, 7.25, True),  # insertId is not de-duplicated locally (best effort on BigQuery)
        ("H2", 5, 6.5, False),
        ("H3", None, 8.0, None),
    ]


def test_one_invalid_row_stops_the_request_and_is_named(client):
    rows = [ROWS[0], {**ROWS[1], "births": "five"}, ROWS[2]]
    errors = client.insert_rows_json("stream.births", rows)
    assert [e["index"] for e in errors] == [0, 1, 2]
    assert [e["errors"][0]["reason"] for e in errors] == ["stopped", "invalid", "stopped"]
    bad = errors[1]["errors"][0]
    assert bad["location"] == "births" and "five" in bad["message"]
    assert table_rows(client) == []


def test_skip_invalid_rows_inserts_the_valid_ones(client):
    rows = [ROWS[0], {"births": 2}, ROWS[1]]  # the REQUIRED hospital is missing
    errors = client.insert_rows_json("stream.births", rows, skip_invalid_rows=True)
    assert len(errors) == 1 and errors[0]["index"] == 1
    assert errors[0]["errors"][0]["location"] == "hospital"
    assert [r[0] for r in table_rows(client)] == ["H1", "H2"]


def test_unknown_fields_are_errors_unless_ignored(client):
    row = {**ROWS[0], "colour": "blue"}
    errors = client.insert_rows_json("stream.births", [row])
    assert errors == [
        {
            "index": 0,
            "errors": [
                {
                    "reason": "invalid",
                    "location": "colour",
                    "debugInfo": "",
                    "message": "no such field: colour.",
                }
            ],
        }
    ]
    assert client.insert_rows_json("stream.births", [row], ignore_unknown_values=True) == []
    assert table_rows(client) == [("H1", 3, 7.25, True)]


def test_bad_calls_raise_clear_errors(client):
    with pytest.raises(exceptions.NotFound, match="stream.absent"):
        client.insert_rows_json("stream.absent", ROWS)
    with pytest.raises(TypeError, match="sequence of dicts"):
        client.insert_rows_json("stream.births", {"hospital": "H1"})
    with pytest.raises(ValueError, match="enough IDs"):
        client.insert_rows_json("stream.births", ROWS, row_ids=["a"])
    with pytest.raises(exceptions.MethodNotImplemented, match="templateSuffix"):
        client.insert_rows_json("stream.births", ROWS, template_suffix="_2024")
    assert table_rows(client) == []


def test_concurrent_streams_lose_and_duplicate_nothing(client):
    def stream(worker):
        rows = [{"hospital": f"W{worker}", "births": i} for i in range(2)]
        return [client.insert_rows_json("stream.births", rows) for _ in range(10)]

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(stream, range(4)))
    assert all(errors == [] for calls in results for errors in calls)
    counts = client.query(
        "SELECT hospital, COUNT(*) AS n, SUM(births) AS s FROM stream.births "
        "GROUP BY hospital ORDER BY hospital"
    ).result()
    assert [tuple(r.values()) for r in counts] == [(f"W{w}", 20, 10) for w in range(4)]


def test_ten_thousand_rows_in_batches_of_500_land_whole(client):
    client.create_table(
        bigquery.Table(
            "local-project.stream.events",
            schema=[bigquery.SchemaField("i", "INTEGER"), bigquery.SchemaField("s", "STRING")],
        )
    )
    for first in range(0, 10_000, 500):
        rows = [{"i": i, "s": f"event {i}"} for i in range(first, first + 500)]
        assert client.insert_rows_json("stream.events", rows) == []
    got = client.query(
        "SELECT COUNT(*) AS n, COUNT(DISTINCT i) AS d, MIN(i) AS lo, MAX(i) AS hi, SUM(i) AS s "
        "FROM stream.events"
    ).result()
    assert [tuple(r.values()) for r in got] == [(10_000, 10_000, 0, 9_999, 49_995_000)]
