"""prodml.pipelines: one Beam pipeline for batch and streaming predictions, with dead letters."""

from __future__ import annotations

import json
import os
from pathlib import Path

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms.window import TimestampedValue
from prodml import babyweight, config, pipelines
from prodml.serving.testing import export_toy_model, toy_weight
from support import JSONHandler, LoopbackServer

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
COLUMNS = ["key", "is_male", "mother_age", "plurality", "gestation_weeks"]


def formula(is_male: str, mother_age: float, plurality: str, gestation_weeks: float) -> float:
    """What the stand-in model computes (float32 in the SavedModel)."""
    return toy_weight(
        {
            "is_male": is_male,
            "mother_age": mother_age,
            "plurality": plurality,
            "gestation_weeks": gestation_weeks,
        }
    )


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    """The server tests' toy SavedModel (babyweight's signatures, computing :func:`formula`),
    in a TF Serving-style base folder."""
    return export_toy_model(tmp_path_factory.mktemp("model") / "export", version=7).parent


def natality_records(n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [
        {
            "key": f"r{i:05d}",
            "is_male": bool(rng.random() < 0.5),
            "mother_age": float(rng.integers(15, 45)),
            "plurality": int(rng.choice([1, 1, 1, 2, 3])),
            "gestation_weeks": float(rng.integers(30, 42)),
        }
        for i in range(n)
    ]


def expected_weight(record: dict) -> float:
    f = babyweight.features(record)
    return formula(f["is_male"], f["mother_age"], f["plurality"], f["gestation_weeks"])


def run(build, mode="batch"):
    p = beam.Pipeline(options=pipelines.options(mode))
    build(p)
    result = p.run()
    result.wait_until_finish()
    return pipelines.counts(result)


def test_check_applies_the_training_feature_mapping():
    row = {"key": "a", "is_male": True, "mother_age": 26, "plurality": 2, "gestation_weeks": 39}
    line = "a,true,26,2,39"
    csv_record = pipelines.check(pipelines.parse(line, "csv", COLUMNS), line)
    json_record = pipelines.check(pipelines.parse(json.dumps(row), "json"))
    expected = {"key": "a", **babyweight.features({k: row[k] for k in babyweight.FEATURES})}
    assert csv_record == json_record == pipelines.check(row) == expected
    assert expected["plurality"] == "Twins(2)" and expected["is_male"] == "True"
    unknown = pipelines.check({**row, "is_male": None})
    assert unknown["is_male"] == "Unknown" and unknown["plurality"] == "Multiple(2+)"


MALFORMED = {
    "b,true,26,1": "wrong field count: expected 5, got 4",
    "c,true,twenty,1,39": "mother_age is not a number: 'twenty'",
    "": "empty record",
    "   ": "empty record",
    "d,false,30,7,39": "unknown plurality: 7 (expected 1..5)",
    "e,false,30,,39": "missing field(s): plurality",
    "f,,,1,": "missing field(s): mother_age, gestation_weeks",
    "g,maybe,30,1,39": "is_male must be true, false or Unknown, got 'maybe'",
    "h,true,30,1,99": "gestation_weeks '99' is out of range (0, 60] (99 means unknown in natality)",
}


def test_dead_letters_keep_every_bad_record_and_its_reason(export_dir, run_dir):
    good = ["a,true,26,1,39", "z,false,35,2,37", "y,Unknown,22,1,40"]
    lines = [good[0], *MALFORMED, *good[1:]]
    sink = pipelines.Sink(folder=str(run_dir / "batch"), table=None)

    def build(p):
        out = pipelines.build_pipeline(
            p,
            pipelines.from_records(lines, "csv", COLUMNS),
            model=pipelines.SavedModelHandler(export_dir),
            sink=sink,
        )
        assert_that(
            out.dead_letters,
            equal_to([{"record": r, "reason": why} for r, why in MALFORMED.items()]),
            label="dead",
        )
        assert_that(
            out.predictions | beam.Map(lambda r: (r["key"], r["plurality"], r["pane"])),
            equal_to(
                [
                    ("a", "Single(1)", "batch"),
                    ("z", "Twins(2)", "batch"),
                    ("y", "Single(1)", "batch"),
                ]
            ),
            label="keys",
        )

    counts = run(build)
    assert counts["records_in"] == len(lines) == 12
    assert counts["predictions"] == 3 and counts["dead_letters"] == len(MALFORMED) == 9
    assert counts["records_in"] == counts["predictions"] + counts["dead_letters"]
    dead = [json.loads(x) for x in (run_dir / "batch" / "dead_letters-global-000.jsonl").open()]
    assert len(dead) == 9 and {d["reason"] for d in dead} == set(MALFORMED.values())
    rows = [json.loads(x) for x in (run_dir / "batch" / "predictions-global-000.jsonl").open()]
    by_key = {r["key"]: r for r in rows}
    assert by_key["a"]["predicted_weight_pounds"] == pytest.approx(
        formula("True", 26, "Single(1)", 39), abs=1e-5
    )
    header = (run_dir / "batch" / "predictions-global-000.csv").read_text().splitlines()[0]
    assert header.split(",") == list(pipelines.COLUMNS)


def test_json_messages_with_missing_fields_and_bad_json(export_dir):
    messages = [
        json.dumps(
            {
                "key": "j1",
                "is_male": "False",
                "mother_age": 30,
                "plurality": "Twins(2)",
                "gestation_weeks": 36,
            }
        ),
        json.dumps({"key": "j2", "is_male": True, "mother_age": 30}),
        "{not json",
        json.dumps([1, 2]),
    ]

    def build(p):
        out = pipelines.build_pipeline(
            p,
            pipelines.from_records(messages, "json"),
            model=pipelines.SavedModelHandler(export_dir),
        )
        assert_that(
            out.dead_letters | beam.Map(lambda d: d["reason"].split(":")[0]),
            equal_to(["missing field(s)", "invalid JSON", "JSON message is not an object"]),
            label="dead",
        )
        assert_that(
            out.predictions
            | beam.Map(lambda r: (r["key"], round(r["predicted_weight_pounds"], 4))),
            equal_to([("j1", round(formula("False", 30, "Twins(2)", 36), 4))]),
            label="pred",
        )

    counts = run(build)
    assert (counts["records_in"], counts["predictions"], counts["dead_letters"]) == (4, 1, 3)


def test_streaming_windows_on_time_late_and_too_late(export_dir):
    def rec(key, age=30.0):
        return {
            "key": key,
            "is_male": True,
            "mother_age": age,
            "plurality": 1,
            "gestation_weeks": 38.0,
        }

    stream = (
        TestStream()
        .advance_watermark_to(0)
        .add_elements([TimestampedValue(rec("on1"), 1), TimestampedValue(rec("on2"), 5)])
        .add_elements([TimestampedValue("x,true,30", 6)])  # a dead letter inside the stream
        .advance_watermark_to(25)  # window [0, 20) fires ON_TIME
        .add_elements([TimestampedValue(rec("late"), 12)])  # 25 < 20 + 10: late but allowed
        .advance_watermark_to(45)  # window [0, 20) expires at 30
        .add_elements([TimestampedValue(rec("too_late"), 15)])  # dropped, and counted
        .add_elements([TimestampedValue(rec("next"), 41)])
        .advance_watermark_to_infinity()
    )
    source = pipelines.Source(stream, "dict", streaming=True)

    def build(p):
        out = pipelines.build_pipeline(
            p, source, model=pipelines.SavedModelHandler(export_dir), mode="streaming"
        )
        assert_that(
            out.predictions | beam.Map(lambda r: (r["key"], r["window"], r["pane"])),
            equal_to(
                [
                    ("on1", "[1970-01-01T00:00:00, 1970-01-01T00:00:20)", "ON_TIME"),
                    ("on2", "[1970-01-01T00:00:00, 1970-01-01T00:00:20)", "ON_TIME"),
                    ("late", "[1970-01-01T00:00:00, 1970-01-01T00:00:20)", "LATE"),
                    ("next", "[1970-01-01T00:00:40, 1970-01-01T00:01:00)", "ON_TIME"),
                ]
            ),
            label="panes",
        )
        assert_that(
            out.dead_letters | beam.Map(lambda d: d["reason"]),
            equal_to(["expected a dict, got str"]),
            label="dead",
        )
        # 6 in = 4 predictions + 1 dead letter + 1 dropped too late, counted from the data
        assert_that(out.dropped_late, equal_to([1]), label="dropped")
        assert_that(
            out.counts,
            equal_to([{"records_in": 6, "predictions": 4, "dead_letters": 1, "dropped_late": 1}]),
            label="counts",
        )

    run(build, "streaming")
    assert source.streaming


def read_rows(folder: Path) -> dict[str, dict]:
    rows = {}
    for path in sorted(folder.glob("predictions-*.jsonl")):
        for line in path.open():
            row = json.loads(line)
            assert row["key"] not in rows, "a record was predicted twice"
            rows[row["key"]] = row
    return rows


def test_batch_and_streaming_predictions_agree(export_dir, run_dir):
    records = natality_records(300, seed=3)
    lines = [
        ",".join(str(r[c]).lower() if c == "is_male" else str(r[c]) for c in COLUMNS)
        for r in records
    ]
    times = pipelines.event_times(len(lines), every=0.5)  # 150 s of events: 8 windows of 20 s
    source = pipelines.replay(lines, times, "csv", COLUMNS, speed=60, tick=5.0)
    kinds = [type(e).__name__ for e in source.transform._events]
    assert kinds.count("ElementEvent") == 30  # one group of 10 records per 5 s tick

    batch_sink = pipelines.Sink(folder=str(run_dir / "batch"), table=None)
    stream_sink = pipelines.Sink(folder=str(run_dir / "stream"), table=None)
    handler = pipelines.SavedModelHandler(export_dir)
    batch = run(
        lambda p: pipelines.build_pipeline(
            p, pipelines.from_records(lines, "csv", COLUMNS), model=handler, sink=batch_sink
        )
    )
    run(
        lambda p: pipelines.build_pipeline(
            p,
            source,
            model=handler,
            mode="streaming",
            sink=stream_sink,
        ),
        "streaming",
    )
    assert batch["predictions"] == batch["records_in"] == 300
    for folder in ("batch", "stream"):  # the data-based counts the sinks wrote
        written = json.loads((run_dir / folder / "counts.json").read_text())
        assert written == {
            "records_in": 300,
            "predictions": 300,
            "dead_letters": 0,
            "dropped_late": 0,
        }
    b, s = read_rows(run_dir / "batch"), read_rows(run_dir / "stream")
    assert set(b) == set(s) == {r["key"] for r in records}  # nothing dropped, nothing doubled
    diff = max(abs(b[k]["predicted_weight_pounds"] - s[k]["predicted_weight_pounds"]) for k in b)
    assert diff <= 1e-5
    for r in records:
        assert b[r["key"]]["predicted_weight_pounds"] == pytest.approx(expected_weight(r), abs=1e-4)
    assert len(list((run_dir / "stream").glob("predictions-*.jsonl"))) == 8  # one file per window
    assert {row["pane"] for row in s.values()} == {"ON_TIME"}


class FlakyPredictionServer(LoopbackServer):
    """A local TF-Serving-like endpoint that answers 503 to its first ``failures`` calls."""

    def __init__(self, failures: int):
        self.calls = 0
        outer = self

        class Handler(JSONHandler):
            def do_POST(self):  # noqa: N802
                outer.calls += 1
                _, body = self.read_json()
                if self.path != "/v1/models/babyweight:predict":
                    return self.send_json(404, {"error": f"no route {self.path}"})
                if outer.calls <= failures:
                    return self.send_json(503, {"error": "warming up"})
                preds = [{"weight": formula(**i)} for i in body["instances"]]
                return self.send_json(200, {"predictions": preds})

        super().__init__(Handler)


def test_http_handler_retries_with_backoff_then_predicts():
    server = FlakyPredictionServer(failures=2)
    records = natality_records(20, seed=5)
    try:
        handler = pipelines.HTTPModelHandler(
            server.url, retries=3, backoff=0.01, min_batch_size=20, max_batch_size=20
        )

        def build(p):
            out = pipelines.build_pipeline(p, pipelines.from_records(records), model=handler)
            assert_that(
                out.predictions
                | beam.Map(lambda r: (r["key"], round(r["predicted_weight_pounds"], 4))),
                equal_to([(r["key"], round(expected_weight(r), 4)) for r in records]),
            )

        counts = run(build)
    finally:
        server.close()
    assert counts["http_retries"] == 2 and counts["predictions"] == 20
    assert server.calls == 3  # two 503s, then one batch of 20


def test_http_handler_gives_up_with_a_clear_error():
    server = FlakyPredictionServer(failures=10)
    try:
        handler = pipelines.HTTPModelHandler(server.url, retries=2, backoff=0.01)
        session = handler.load_model()
        row = pipelines.check(natality_records(1)[0])
        with pytest.raises(
            pipelines.PredictionServiceError, match="failed 3 times; last error: HTTP 503"
        ):
            handler.run_inference([row], session)
        assert server.calls == 3
        missing = pipelines.HTTPModelHandler(server.url, model="nope", retries=0)
        with pytest.raises(pipelines.PredictionServiceError, match="HTTP 404"):
            missing.run_inference([row], session)
    finally:
        server.close()


def test_csv_files_source_reads_the_header(export_dir, run_dir):
    folder = run_dir / "input"
    folder.mkdir(parents=True)
    (folder / "part-0.csv").write_text(
        "gestation_weeks,plurality,mother_age,is_male,key\n39,1,26,true,k1\n38,2,31,false,k2\n"
    )
    source = pipelines.from_csv(str(folder / "part-*.csv"))
    assert source.columns == ["gestation_weeks", "plurality", "mother_age", "is_male", "key"]

    def build(p):
        out = pipelines.build_pipeline(p, source, model=pipelines.SavedModelHandler(export_dir))
        assert_that(out.predictions | beam.Map(lambda r: r["key"]), equal_to(["k1", "k2"]))

    assert run(build)["predictions"] == 2
    with pytest.raises(FileNotFoundError, match="no CSV files match"):
        pipelines.from_csv(str(folder / "nothing-*.csv"))


def test_stream_source_is_pubsub_when_configured_for_google_cloud(run_dir):
    records, times = natality_records(3), [0.0, 1.0, 2.0]
    local = pipelines.stream_source(records, times)
    assert isinstance(local.transform, TestStream) and local.fmt == "dict"

    config.configure(warehouse="bigquery", project="my-project")
    cloud = pipelines.stream_source(records, times)
    assert isinstance(cloud.transform, beam.io.ReadFromPubSub) and cloud.fmt == "json"
    assert (
        cloud.transform._source.full_subscription == "projects/my-project/subscriptions/babyweight"
    )
    assert cloud.transform._source.timestamp_attribute == "event_time"
    # the graph builds (nothing runs, nothing reaches the network)
    p = beam.Pipeline(options=pipelines.options("streaming"))
    out = pipelines.build_pipeline(
        p, cloud, model=pipelines.HTTPModelHandler("http://127.0.0.1:9"), mode="streaming"
    )
    assert out.predictions.pipeline is p
    labels = [t.full_label for t in p.transforms_stack[0].parts]
    assert labels[0] == "Read" and any("Window" in x for x in labels)


def test_bad_configuration_errors(export_dir):
    handler = pipelines.SavedModelHandler(export_dir)
    p = beam.Pipeline(options=pipelines.options("batch"))
    with pytest.raises(ValueError, match="unknown mode 'nightly'"):
        pipelines.build_pipeline(p, pipelines.from_records([]), model=handler, mode="nightly")
    stream = pipelines.replay([{}], [0.0])
    with pytest.raises(ValueError, match="use mode='streaming'"):
        pipelines.build_pipeline(p, stream, model=handler)
    with pytest.raises(ValueError, match="needs streaming pipeline options"):
        pipelines.build_pipeline(p, stream, model=handler, mode="streaming")
    streaming = beam.Pipeline(options=pipelines.options("streaming"))
    with pytest.raises(ValueError, match="WRITE_TRUNCATE would keep only the last pane"):
        pipelines.build_pipeline(
            streaming,
            stream,
            model=handler,
            mode="streaming",
            sink=pipelines.Sink(folder="unused", write_disposition="WRITE_TRUNCATE"),
        )
    with pytest.raises(ValueError, match="needs columns"):
        pipelines.ParseRecords("csv")
    with pytest.raises(TypeError, match="needs a Beam ModelHandler"):
        pipelines.Predict(lambda rows: rows)
    with pytest.raises(FileNotFoundError, match="no SavedModel"):
        pipelines.resolve_export(export_dir.parent / "missing")
    assert pipelines.resolve_export(export_dir).endswith("/7")


def test_batch_from_warehouse_into_the_predictions_table(export_dir, run_dir):
    """Warehouse rows in, `babyweight.predictions` out: every row predicted, none lost."""
    import pandas as pd
    from google.cloud import bigquery
    from prodml import warehouse

    client = warehouse.client()
    client.create_dataset("babyweight", exists_ok=True)
    records = natality_records(40, seed=3)
    records[5]["gestation_weeks"] = None  # one row the pipeline must dead-letter, not drop
    client.load_table_from_dataframe(
        pd.DataFrame(records),
        "babyweight.serving_requests",
        job_config=bigquery.LoadJobConfig(write_disposition="WRITE_TRUNCATE"),
    ).result()
    sink = pipelines.Sink(
        folder=str(run_dir / "wh"),
        dead_letter_table="babyweight.dead_letters",
        write_disposition="WRITE_TRUNCATE",
    )

    def build(p):
        pipelines.build_pipeline(
            p,
            pipelines.from_warehouse("SELECT * FROM babyweight.serving_requests", client=client),
            model=pipelines.SavedModelHandler(export_dir),
            sink=sink,
        )

    counts = run(build)
    assert (counts["records_in"], counts["predictions"], counts["dead_letters"]) == (40, 39, 1)
    table = client.query(
        "SELECT key, predicted_weight_pounds FROM babyweight.predictions ORDER BY key"
    ).to_dataframe()
    assert len(table) == 39 and "r00005" not in set(table["key"])
    expected = {r["key"]: expected_weight(r) for r in records if r["key"] != "r00005"}
    got = dict(zip(table["key"], table["predicted_weight_pounds"], strict=True))
    assert max(abs(got[k] - v) for k, v in expected.items()) <= 1e-5
    dead = client.query("SELECT record, reason FROM babyweight.dead_letters").to_dataframe()
    assert len(dead) == 1 and "gestation_weeks" in dead["reason"][0]


@pytest.mark.timeout(120)
def test_streaming_writes_dead_letters_without_hanging(export_dir, run_dir):
    """A stream with dead letters and a sink finishes; every dead letter is written once,
    including one that arrives after its window closed, and the data-based counts add up."""
    good = natality_records(3, seed=11)
    lines = [
        ",".join(str(r[c]).lower() if c == "is_male" else str(r[c]) for c in COLUMNS) for r in good
    ]
    stream = [lines[0], "bad,true,30", lines[1], "", lines[2], "late,true,x,1,39"]
    times = [1.0, 2.0, 5.0, 41.0, 42.0, 3.0]  # the last arrives after [0, 20) expired
    sink = pipelines.Sink(folder=str(run_dir / "stream"), table=None)

    def build(p):
        out = pipelines.build_pipeline(
            p,
            pipelines.replay(stream, times, "csv", COLUMNS, speed=60),
            model=pipelines.SavedModelHandler(export_dir),
            mode="streaming",
            sink=sink,
        )
        assert_that(
            out.counts,
            equal_to(
                [
                    {
                        "records_in": 6,
                        "predictions": 3,
                        "dead_letters": 3,
                        "dropped_late": 0,
                    }
                ]
            ),
            label="counts",
        )

    run(build, "streaming")
    dead = [
        json.loads(line)
        for path in sorted((run_dir / "stream").glob("dead_letters-*.jsonl"))
        for line in path.open()
    ]
    assert sorted(d["record"] for d in dead) == ["", "bad,true,30", "late,true,x,1,39"]
    assert len(read_rows(run_dir / "stream")) == 3
    written = json.loads((run_dir / "stream" / "counts.json").read_text())
    assert written == {"records_in": 6, "predictions": 3, "dead_letters": 3, "dropped_late": 0}


def replay_events(source: pipelines.Source) -> list[tuple[str, object]]:
    """The TestStream's events as (kind, payload): elements as their count."""
    from apache_beam.testing.test_stream import (
        ElementEvent,
        ProcessingTimeEvent,
        WatermarkEvent,
    )
    from apache_beam.utils.timestamp import MAX_TIMESTAMP

    events = []
    for e in source.transform._events:
        if isinstance(e, ElementEvent):
            events.append(("elements", len(e.timestamped_values)))
        elif isinstance(e, WatermarkEvent):
            end = e.new_watermark == MAX_TIMESTAMP
            events.append(("watermark", float("inf") if end else float(e.new_watermark)))
        elif isinstance(e, ProcessingTimeEvent):
            events.append(("processing", float(e.advance_by)))
    return events


def test_replay_groups_records_per_tick_and_rounds_processing_time():
    times = [0.0, 0.2, 0.7, 1.0, 1.5, 3.2, 2.9]  # the last is out of order (arrives late)
    source = pipelines.replay(list(range(7)), times, speed=10, tick=1.0)
    assert replay_events(source) == [
        ("elements", 3),  # tick [0, 1)
        ("watermark", 0.7),
        ("processing", 0.1),  # 1 s of event time at speed 10
        ("elements", 2),  # tick [1, 2)
        ("watermark", 1.5),
        ("processing", 0.2),
        ("elements", 1),  # tick [3, 4)
        ("watermark", 3.2),
        ("elements", 1),  # 2.9 arrives after 3.2: its own group, no watermark change
        ("watermark", float("inf")),
    ]
    # 0.1 s of event time at speed 1000 is 0.1 ms of processing time: rounded to whole
    # milliseconds (TestStream's unit), so zero advances are skipped, not sent
    fast = pipelines.replay(list(range(3)), [0.0, 0.1, 0.2], speed=1000, tick=0.1)
    assert [k for k, _ in replay_events(fast)] == [
        "elements",
        "watermark",
        "elements",
        "watermark",
        "elements",
        "watermark",
        "watermark",
    ]
    with pytest.raises(ValueError, match="tick must be > 0"):
        pipelines.replay([1], [0.0], tick=0)


def test_replay_with_uneven_processing_steps_runs(export_dir):
    """Processing-time steps that are not whole milliseconds in binary floating point (1.001 s)
    or shorter than one (0.1 ms) used to fail the TestStream's translation."""
    records = natality_records(4, seed=2)
    source = pipelines.replay(records, [0.0, 0.1, 1.101, 1.1011], speed=1)

    def build(p):
        out = pipelines.build_pipeline(
            p, source, model=pipelines.SavedModelHandler(export_dir), mode="streaming"
        )
        assert_that(
            out.predictions | beam.Map(lambda r: r["key"]),
            equal_to(["r00000", "r00001", "r00002", "r00003"]),
        )

    run(build, "streaming")


def test_beams_per_batch_memory_warning_is_dropped_and_others_kept(caplog):
    import logging

    with caplog.at_level(logging.WARNING):
        logging.warning("Resource module is not available for current platform, memory ...")
        logging.warning("a warning that matters")
    assert [r.getMessage() for r in caplog.records] == ["a warning that matters"]
