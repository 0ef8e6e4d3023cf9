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
from prodml.babyweight import CONTRACT
from support import JSONHandler, LoopbackServer, export_toy_model, toy_weight

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
    """The server tests' toy SavedModel (babyweight's signatures, computing :func:`formula`,
    its output shaped [None, 1] like the course's model), in a TF Serving-style base folder."""
    base = tmp_path_factory.mktemp("model") / "export"
    return export_toy_model(base, version=7, column=True).parent


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


def run(build, mode="batch") -> None:
    p = beam.Pipeline(options=pipelines.options(mode))
    build(p)
    p.run().wait_until_finish()


def test_check_applies_the_training_feature_mapping():
    row = {"key": "a", "is_male": True, "mother_age": 26, "plurality": 2, "gestation_weeks": 39}
    line = "a,true,26,2,39"
    csv_record = CONTRACT.check(pipelines.parse(line, "csv", COLUMNS), line)
    json_record = CONTRACT.check(pipelines.parse(json.dumps(row), "json"))
    expected = {"key": "a", **babyweight.features({k: row[k] for k in babyweight.FEATURES})}
    assert csv_record == json_record == CONTRACT.check(row) == expected
    assert expected["plurality"] == "Twins(2)" and expected["is_male"] == "True"
    unknown = CONTRACT.check({**row, "is_male": None})
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
    "h,true,30,1,99": "gestation_weeks '99' is out of range [17, 47] (99 means unknown in natality)",
    "i,true,9,1,39": "mother_age '9' is out of range [12, 50]",
}


def test_dead_letters_keep_every_bad_record_and_its_reason(export_dir, run_dir):
    good = ["a,true,26,1,39", "z,false,35,2,37", "y,Unknown,22,1,40"]
    lines = [good[0], *MALFORMED, *good[1:]]
    sink = pipelines.Sink(folder=str(run_dir / "batch"), table=None)

    def build(p):
        out = pipelines.build_pipeline(
            p,
            pipelines.from_records(lines, "csv", COLUMNS),
            contract=CONTRACT,
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

    run(build)
    counts = pipelines.counts(sink)
    assert counts == {"records_in": 13, "predictions": 3, "dead_letters": 10, "dropped_late": 0}
    assert len(MALFORMED) == 10
    dead = [json.loads(x) for x in (run_dir / "batch" / "dead_letters-global-000.jsonl").open()]
    assert len(dead) == 10 and {d["reason"] for d in dead} == set(MALFORMED.values())
    rows = [json.loads(x) for x in (run_dir / "batch" / "predictions-global-000.jsonl").open()]
    by_key = {r["key"]: r for r in rows}
    assert by_key["a"]["predicted_weight_pounds"] == pytest.approx(
        formula("True", 26, "Single(1)", 39), abs=1e-5
    )
    header = (run_dir / "batch" / "predictions-global-000.csv").read_text().splitlines()[0]
    assert header.split(",") == list(CONTRACT.columns)


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
            contract=CONTRACT,
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
        assert_that(
            out.counts,
            equal_to([{"records_in": 4, "predictions": 1, "dead_letters": 3, "dropped_late": 0}]),
            label="counts",
        )

    run(build)


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
            p,
            source,
            contract=CONTRACT,
            model=pipelines.SavedModelHandler(export_dir),
            mode="streaming",
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
    groups = [n for kind, n in pipelines.replay_schedule(times, 60, tick=5.0) if kind == "elements"]
    assert groups == [10] * 30  # one group of 10 records per 5 s tick

    batch_sink = pipelines.Sink(folder=str(run_dir / "batch"), table=None)
    stream_sink = pipelines.Sink(folder=str(run_dir / "stream"), table=None)
    handler = pipelines.SavedModelHandler(export_dir)
    run(
        lambda p: pipelines.build_pipeline(
            p,
            pipelines.from_records(lines, "csv", COLUMNS),
            contract=CONTRACT,
            model=handler,
            sink=batch_sink,
        )
    )
    run(
        lambda p: pipelines.build_pipeline(
            p,
            source,
            contract=CONTRACT,
            model=handler,
            mode="streaming",
            sink=stream_sink,
        ),
        "streaming",
    )
    for sink in (batch_sink, stream_sink):  # the data-based counts the sinks wrote
        assert pipelines.counts(sink) == {
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
            out = pipelines.build_pipeline(
                p, pipelines.from_records(records), contract=CONTRACT, model=handler
            )
            assert_that(
                out.predictions
                | beam.Map(lambda r: (r["key"], round(r["predicted_weight_pounds"], 4))),
                equal_to([(r["key"], round(expected_weight(r), 4)) for r in records]),
            )

        run(build)
    finally:
        server.close()
    assert server.calls == 3  # two 503s retried, then one batch of 20


def test_http_handler_gives_up_with_a_clear_error():
    server = FlakyPredictionServer(failures=10)
    try:
        handler = pipelines.HTTPModelHandler(server.url, retries=2, backoff=0.01, contract=CONTRACT)
        session = handler.load_model()
        row = CONTRACT.check(natality_records(1)[0])
        with pytest.raises(
            pipelines.PredictionServiceError, match="failed 3 times; last error: HTTP 503"
        ):
            handler.run_inference([row], session)
        assert server.calls == 3
        missing = pipelines.HTTPModelHandler(server.url, model="nope", retries=0, contract=CONTRACT)
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
        out = pipelines.build_pipeline(
            p, source, contract=CONTRACT, model=pipelines.SavedModelHandler(export_dir)
        )
        assert_that(out.predictions | beam.Map(lambda r: r["key"]), equal_to(["k1", "k2"]))

    run(build)
    with pytest.raises(FileNotFoundError, match="no CSV files match"):
        pipelines.from_csv(str(folder / "nothing-*.csv"))


def test_csv_file_records_and_dead_letters_match_the_one_record_check(export_dir, run_dir):
    """A batch run checks CSV lines many at a time: every line must end exactly as
    ``check(parse(line))`` says, the prediction's features or the dead letter's reason."""
    columns = ["key", "is_male", "mother_age", "plurality", "gestation_weeks", "weight_pounds"]
    variants = [
        "k{i},true,26,1,39,7.5",
        "k{i},False,31.5,Twins(2),38,",  # no label: none on the record
        "k{i},,30,2,40,6.1",  # unknown gender: a count above 1 is Multiple(2+)
        '"k{i}","true",27,1,39,7',  # quoted: the csv module reads it
        ",true,28,1,39,7",  # no key: a hash of the line
        "k{i},maybe,26,1,39,7",
        "k{i},true,51,1,39,7",
        "k{i},true,26,1,99,7",
        "k{i},true,26,6,39,7",
        "k{i},true,,1,39,7",
        "k{i},true,26,1,39,heavy",
        "k{i},true,26,1,39",
    ]
    lines = [variants[i % len(variants)].format(i=i) for i in range(1300)]  # > 2 chunks
    folder = run_dir / "mixed"
    folder.mkdir(parents=True)
    (folder / "input.csv").write_text(",".join(columns) + "\n" + "\n".join(lines) + "\n")
    expected, reasons = [], []
    for line in lines:
        try:
            record = CONTRACT.check(pipelines.parse(line, "csv", columns), line)
        except pipelines.RecordError as err:
            reasons.append((line, str(err)))
        else:
            expected.append({n: record[n] for n in ("key", *babyweight.FEATURES)})
    assert (len(expected), len(reasons)) == (4 * 109 + 108, 3 * 108 + 4 * 108)

    def build(p):
        source = pipelines.from_csv(str(folder / "input.csv"))
        out = pipelines.build_pipeline(
            p, source, contract=CONTRACT, model=pipelines.SavedModelHandler(export_dir)
        )
        features = out.predictions | beam.Map(
            lambda r: {n: r[n] for n in ("key", *babyweight.FEATURES)}
        )
        assert_that(features, equal_to(expected), label="Records")
        letters = out.dead_letters | beam.Map(lambda d: (d["record"], d["reason"]))
        assert_that(letters, equal_to(reasons), label="DeadLetters")

    run(build)


def test_stream_source_is_pubsub_when_configured_for_google_cloud(run_dir):
    records, times = natality_records(3), [0.0, 1.0, 2.0]
    local = pipelines.stream_source(records, times)
    assert isinstance(local.transform, TestStream) and local.fmt == "dict"

    config.configure(warehouse="bigquery", project="my-project")
    cloud = pipelines.stream_source(records, times, subscription="babyweight")
    assert isinstance(cloud.transform, beam.io.ReadFromPubSub) and cloud.fmt == "json"
    # the graph builds (nothing runs, nothing reaches the network); read it as a runner would
    from apache_beam.portability.api import beam_runner_api_pb2

    p = beam.Pipeline(options=pipelines.options("streaming"))
    pipelines.build_pipeline(
        p,
        cloud,
        contract=CONTRACT,
        model=pipelines.HTTPModelHandler("http://127.0.0.1:9"),
        mode="streaming",
    )
    transforms = p.to_runner_api().components.transforms.values()
    (read,) = [t for t in transforms if t.spec.urn == "beam:transform:pubsub_read:v1"]
    payload = beam_runner_api_pb2.PubSubReadPayload.FromString(read.spec.payload)
    assert payload.subscription == "projects/my-project/subscriptions/babyweight"
    assert payload.timestamp_attribute == "event_time"
    names = {t.unique_name for t in transforms}
    assert {"Read", "Window", "LabelPanes", "Predict"} <= names


def test_bad_configuration_errors(export_dir):
    handler = pipelines.SavedModelHandler(export_dir)
    p = beam.Pipeline(options=pipelines.options("batch"))
    with pytest.raises(ValueError, match="unknown mode 'nightly'"):
        pipelines.build_pipeline(
            p, pipelines.from_records([]), contract=CONTRACT, model=handler, mode="nightly"
        )
    stream = pipelines.replay([{}], [0.0])
    with pytest.raises(ValueError, match="use mode='streaming'"):
        pipelines.build_pipeline(p, stream, contract=CONTRACT, model=handler)
    with pytest.raises(ValueError, match="needs streaming pipeline options"):
        pipelines.build_pipeline(p, stream, contract=CONTRACT, model=handler, mode="streaming")
    streaming = beam.Pipeline(options=pipelines.options("streaming"))
    with pytest.raises(ValueError, match="WRITE_TRUNCATE would keep only the last pane"):
        pipelines.build_pipeline(
            streaming,
            stream,
            contract=CONTRACT,
            model=handler,
            mode="streaming",
            sink=pipelines.Sink(folder="unused", write_disposition="WRITE_TRUNCATE"),
        )
    with pytest.raises(ValueError, match="needs columns"):
        pipelines.ParseRecords(CONTRACT, "csv")
    with pytest.raises(TypeError, match="needs a Beam ModelHandler"):
        pipelines.Predict(lambda rows: rows, CONTRACT)
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
            contract=CONTRACT,
            model=pipelines.SavedModelHandler(export_dir),
            sink=sink,
        )

    run(build)
    counts = pipelines.counts(sink)
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
            contract=CONTRACT,
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


def test_replay_groups_records_per_tick_and_rounds_processing_time():
    times = [0.0, 0.2, 0.7, 1.0, 1.5, 3.2, 2.9]  # the last is out of order (arrives late)
    assert pipelines.replay_schedule(times, speed=10, tick=1.0) == [
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
    fast = pipelines.replay_schedule([0.0, 0.1, 0.2], speed=1000, tick=0.1)
    assert [k for k, _ in fast] == [
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
            p,
            source,
            contract=CONTRACT,
            model=pipelines.SavedModelHandler(export_dir),
            mode="streaming",
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


def test_build_pipeline_runs_the_window_transform_it_is_given(export_dir):
    """A lab passes the learner's windowing; that transform, not a copy, decides the panes."""
    records = [
        {"key": f"w{t:02d}", "is_male": True, "mother_age": 30.0, "plurality": 1,
         "gestation_weeks": 38.0}
        for t in range(0, 40, 5)
    ]  # fmt: skip
    times = [float(t) for t in range(0, 40, 5)]  # 0, 5, ..., 35 s

    def build(p, window_transform, expected):
        out = pipelines.build_pipeline(
            p,
            pipelines.replay(records, times, speed=600),
            contract=CONTRACT,
            model=pipelines.SavedModelHandler(export_dir),
            mode="streaming",
            window=window_transform,
        )
        assert_that(
            out.predictions
            | beam.Map(lambda r: r["window"][12:20])
            | beam.combiners.Count.PerElement(),
            equal_to(expected),
        )

    ten_seconds = beam.WindowInto(beam.window.FixedWindows(10))
    run(
        lambda p: build(p, ten_seconds, [(f"00:00:{s:02d}", 2) for s in (0, 10, 20, 30)]),
        "streaming",
    )
    run(
        lambda p: build(p, pipelines.fixed_windows(), [("00:00:00", 4), ("00:00:20", 4)]),
        "streaming",
    )
    with pytest.raises(TypeError, match="window must be a Beam PTransform"):
        pipelines.build_pipeline(
            beam.Pipeline(options=pipelines.options("streaming")),
            pipelines.replay(records, times),
            contract=CONTRACT,
            model=pipelines.SavedModelHandler(export_dir),
            mode="streaming",
            window=pipelines.fixed_windows,  # the function, not the transform
        )


def test_build_pipeline_runs_the_check_function_it_is_given(export_dir):
    """A learner's preprocessing (record -> features) replaces the shared check; what it
    rejects with a ValueError becomes a dead letter with its message."""

    def learners_preprocess(record: dict) -> dict:
        if record["mother_age"] > 45:  # the generator draws ages 15..44
            raise ValueError(f"mother_age {record['mother_age']} is above 45")
        return {**babyweight.features(record), "mother_age": 2.0 * record["mother_age"]}

    records = natality_records(6, seed=4)
    records[2]["mother_age"] = 47.0

    def build(p):
        out = pipelines.build_pipeline(
            p,
            pipelines.from_records(records),
            contract=CONTRACT,
            model=pipelines.SavedModelHandler(export_dir),
            parse=learners_preprocess,
        )
        expected = [
            (r["key"], round(expected_weight({**r, "mother_age": 2.0 * r["mother_age"]}), 4))
            for r in records
            if r["mother_age"] <= 45
        ]
        assert_that(
            out.predictions
            | beam.Map(lambda r: (r["key"], round(r["predicted_weight_pounds"], 4))),
            equal_to(expected),
            label="pred",
        )
        assert_that(
            out.dead_letters | beam.Map(lambda d: d["reason"]),
            equal_to(["mother_age 47.0 is above 45"]),
            label="dead",
        )

    run(build)


def test_prediction_urls_for_each_api():
    local = "http://127.0.0.1:8501"
    assert pipelines.prediction_url(local, "babyweight") == f"{local}/v1/models/babyweight:predict"
    assert (
        pipelines.prediction_url(local, "babyweight", version=3)
        == f"{local}/v1/models/babyweight/versions/3:predict"
    )
    assert (
        pipelines.prediction_url(local, "babyweight", "p1", "dnn", api="mlengine")
        == f"{local}/v1/projects/p1/models/babyweight/versions/dnn:predict"
    )
    assert (
        pipelines.prediction_url(model="babyweight", project="p1", api="mlengine")
        == "https://ml.googleapis.com/v1/projects/p1/models/babyweight:predict"
    )
    assert pipelines.prediction_url(
        model="babyweight", project="p1", api="vertex", location="europe-west4"
    ) == (
        "https://europe-west4-aiplatform.googleapis.com/v1/projects/p1/locations/europe-west4"
        "/endpoints/babyweight:predict"
    )
    with pytest.raises(ValueError, match="needs the project"):
        pipelines.prediction_url(local, "m", api="mlengine")
    with pytest.raises(ValueError, match="traffic split"):
        pipelines.prediction_url(local, "m", "p1", 2, api="vertex")
    with pytest.raises(ValueError, match="unknown api 'grpc'"):
        pipelines.prediction_url(local, "m", api="grpc")
    with pytest.raises(ValueError, match="needs the server's url"):
        pipelines.prediction_url(model="m")
    with pytest.raises(ValueError, match="name the deployed model"):
        pipelines.prediction_url(local)


def test_http_handler_calls_the_deployed_model_by_project_and_version(tmp_path):
    """Batch predictions from `prodml serve` over TF Serving, ML Engine and Vertex URLs, with
    the version chosen by the caller; the same answers as the model in process."""
    from google.auth.credentials import AnonymousCredentials
    from prodml import serving

    base = tmp_path / "export"
    export_toy_model(base, version=1, scale=1.0)  # weight [None]: a number per instance
    export_toy_model(base, version=2, scale=2.0, column=True)  # [None, 1]: [number]
    records = natality_records(12, seed=6)
    handlers = {
        ("tfserving", None): pipelines.HTTPModelHandler,
        ("mlengine", 1): pipelines.HTTPModelHandler,
        ("vertex", None): pipelines.HTTPModelHandler,
    }
    with serving.start({"babyweight": base}) as server:
        for (api, version), make in handlers.items():
            handler = make(
                server.url,
                project="local-project" if api != "tfserving" else None,
                version=version,
                api=api,
                credentials=AnonymousCredentials(),
                max_batch_size=5,
            )
            scale = 1.0 if version == 1 else 2.0  # no version: the newest (2)

            def build(p, handler=handler, scale=scale, label=api):
                out = pipelines.build_pipeline(
                    p, pipelines.from_records(records), contract=CONTRACT, model=handler
                )
                assert_that(
                    out.predictions
                    | beam.Map(lambda r: (r["key"], round(r["predicted_weight_pounds"], 4))),
                    equal_to([(r["key"], round(scale * expected_weight(r), 4)) for r in records]),
                    label=label,
                )

            run(build)


def test_http_handler_sends_the_callers_credentials():
    """Credentials are the caller's choice: a bearer token reaches the service, none when
    anonymous."""
    from google.auth.credentials import AnonymousCredentials
    from google.oauth2.credentials import Credentials

    seen = []

    class Handler(JSONHandler):
        def do_POST(self):  # noqa: N802
            seen.append((self.path, self.headers.get("Authorization")))
            _, body = self.read_json()
            preds = [{"weight": [formula(**i)]} for i in body["instances"]]  # the course's shape
            self.send_json(200, {"predictions": preds})

    row = CONTRACT.check(natality_records(1)[0])
    with LoopbackServer(Handler) as server:
        for credentials in (Credentials(token="a-token"), AnonymousCredentials(), None):
            handler = pipelines.HTTPModelHandler(
                server.url,
                project="p1",
                version="dnn",
                api="mlengine",
                credentials=credentials,
                contract=CONTRACT,
            )
            (result,) = handler.run_inference([row], handler.load_model())
            assert result.inference == pytest.approx(expected_weight(row), abs=1e-9)
    path = "/v1/projects/p1/models/babyweight/versions/dnn:predict"
    assert seen == [(path, "Bearer a-token"), (path, None), (path, None)]


def test_parquet_files_source(export_dir, run_dir):
    import pandas as pd

    folder = run_dir / "parquet"
    folder.mkdir(parents=True)
    records = natality_records(30, seed=8)
    records[3]["is_male"] = None  # NULL: unknown gender, predicted as 'Unknown'
    pd.DataFrame(records[:20]).to_parquet(folder / "part-0.parquet")
    pd.DataFrame(records[20:]).to_parquet(folder / "part-1.parquet")
    sink = pipelines.Sink(folder=str(run_dir / "out"), table=None)

    def build(p):
        out = pipelines.build_pipeline(
            p,
            pipelines.from_parquet(str(folder / "part-*.parquet")),
            contract=CONTRACT,
            model=pipelines.SavedModelHandler(export_dir),
            sink=sink,
        )
        assert_that(
            out.predictions
            | beam.Map(lambda r: (r["key"], round(r["predicted_weight_pounds"], 4))),
            equal_to([(r["key"], round(expected_weight(r), 4)) for r in records]),
        )

    run(build)
    assert pipelines.counts(sink) == {
        "records_in": 30,
        "predictions": 30,
        "dead_letters": 0,
        "dropped_late": 0,
    }
    assert read_rows(run_dir / "out")["r00003"]["is_male"] == "Unknown"
    with pytest.raises(FileNotFoundError, match="no Parquet files match"):
        pipelines.from_parquet(str(folder / "nothing-*.parquet"))


def test_parse_records_counts_its_input_and_batches_its_records_in_a_batch_run():
    columns = ["key", "is_male", "mother_age", "plurality", "gestation_weeks"]
    lines = [f"k{i},true,{20 + i % 10},1,39" for i in range(10)] + ["bad,true,26,9,39"]

    def build(p):
        records, dead, counts = (
            p
            | beam.Create(lines, reshuffle=False)
            | pipelines.ParseRecords(CONTRACT, "csv", columns, count_as="records_in", batch_size=4)
        )
        assert_that(
            records | "Sizes" >> beam.Map(len) | "MaxSize" >> beam.CombineGlobally(max),
            equal_to([4]),
            label="BatchSize",
        )
        keys = records | beam.FlatMap(lambda batch: [r["key"] for r in batch])
        assert_that(keys, equal_to([f"k{i}" for i in range(10)]), label="Keys")
        assert_that(dead | beam.Map(lambda d: d["record"]), equal_to([lines[-1]]), label="Dead")
        total = counts | beam.CombinePerKey(sum)
        assert_that(total, equal_to([("records_in", 11)]), label="Counted")

    run(build)


def test_predict_counts_the_predictions_of_pre_batched_records(export_dir):
    rows = natality_records(9, seed=3)
    records = [CONTRACT.check(r) for r in rows]

    def build(p):
        batches = p | beam.Create([records[:5], records[5:]], reshuffle=False)
        predictions, counts = batches | pipelines.Predict(
            pipelines.SavedModelHandler(export_dir),
            CONTRACT,
            count_as="predictions",
            batched=True,
        )
        weights = predictions | beam.Map(lambda r: (r["key"], round(r[CONTRACT.prediction], 4)))
        expected = [(r["key"], round(expected_weight(r), 4)) for r in records]
        assert_that(weights, equal_to(expected), label="Weights")
        total = counts | beam.CombinePerKey(sum)
        assert_that(total, equal_to([("predictions", 9)]), label="Counted")

    run(build)


def test_per_bundle_counting_and_batching_refuse_a_stream():
    stream = TestStream().add_elements(["k1,true,26,1,39"]).advance_watermark_to_infinity()
    columns = ["key", "is_male", "mother_age", "plurality", "gestation_weeks"]
    p = beam.Pipeline(options=pipelines.options("streaming"))
    raw = p | stream
    with pytest.raises(ValueError, match="batch input"):
        _ = raw | "Counted" >> pipelines.ParseRecords(
            CONTRACT, "csv", columns, count_as="records_in"
        )
    with pytest.raises(ValueError, match="batch input"):
        _ = raw | "Batched" >> pipelines.ParseRecords(CONTRACT, "csv", columns, batch_size=8)
    with pytest.raises(ValueError, match="batch_size must be a positive"):
        pipelines.ParseRecords(CONTRACT, "csv", columns, batch_size=0)
