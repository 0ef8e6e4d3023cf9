"""prodml.validation: TFDV's schema curation workflow -- environments, presence, type and domain
edits, a schema frozen to a file, skew and drift comparators, and the two-dataset plot."""

from __future__ import annotations

import json

import matplotlib
import numpy as np
import pandas as pd
import pytest
from prodml import validation as v
from scipy.spatial import distance

matplotlib.use("Agg")

COMPANIES = ["Flash Cab", "Taxi Affiliation", "Yellow Cab", "Blue Diamond"]


def trips(rows: int, seed: int, tips: bool = True, shift: float = 0.0, p=(0.4, 0.3, 0.2, 0.1)):
    """A taxi-like frame (the upstream lab's shape): a label (`tips`), a categorical feature,
    an integer and a float feature."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "company": rng.choice(COMPANIES, size=rows, p=list(p)),
            "passengers": rng.integers(1, 5, rows),
            "trip_miles": rng.gamma(2.0, 2.0, rows) + shift,
        }
    )
    if tips:
        frame["tips"] = (frame["trip_miles"] * 0.3 + rng.normal(0, 0.5, rows)).round(2)
    return frame


@pytest.fixture()
def schema():
    schema = v.infer_schema(trips(4000, seed=1), environments=[v.TRAINING, v.SERVING])
    schema["tips"].not_in_environment.append(v.SERVING)
    return schema


def test_a_serving_batch_without_the_label_passes_in_serving_and_fails_in_training(schema):
    serving = trips(1000, seed=2, tips=False)
    assert v.validate(serving, schema, environment=v.SERVING).ok
    in_training = v.validate(serving, schema, environment=v.TRAINING)
    assert in_training.for_feature("tips") == ["missing feature"]
    assert "(TRAINING)" in in_training.frame.detail.iloc[0] and len(in_training) == 1
    # no environment: every feature is expected, as before environments existed
    assert v.validate(serving, schema).for_feature("tips") == ["missing feature"]
    # a label that does arrive at serving is still checked
    wrong = trips(1000, seed=3).assign(tips=lambda d: d.tips.astype(str))
    assert v.validate(wrong, schema, environment=v.SERVING).for_feature("tips") == ["wrong type"]


def test_environment_errors_name_the_problem(schema):
    with pytest.raises(ValueError, match="environment 'EVAL' is not one of"):
        v.validate(trips(100, seed=4), schema, environment="EVAL")
    schema["company"].not_in_environment.append("EVAL")
    with pytest.raises(ValueError, match="company: not_in_environment names \\['EVAL'\\]"):
        v.validate(trips(100, seed=4), schema)


def test_presence_min_fraction_is_the_bar_when_set(schema):
    serving = trips(1000, seed=5).astype({"trip_miles": object})
    serving.loc[:149, "trip_miles"] = None  # 85 % hold it
    assert v.validate(serving, schema).for_feature("trip_miles") == ["presence below expected"]
    schema["trip_miles"].min_fraction = 0.8
    assert v.validate(serving, schema).for_feature("trip_miles") == []
    schema["trip_miles"].min_fraction = 0.9
    found = v.validate(serving, schema)
    assert found.for_feature("trip_miles") == ["presence below expected"]
    assert "85.0% of examples hold it, min_fraction 90.0%" in found.frame.detail.iloc[0]


def test_a_type_edit_accepts_what_the_reviewer_decided(schema):
    assert schema["passengers"].type == "int"
    serving = trips(1000, seed=6).assign(passengers=lambda d: d.passengers + 0.5)
    assert v.validate(serving, schema).for_feature("passengers")[0] == "wrong type"
    schema["passengers"].type = "float"  # ints are accepted where floats are expected
    assert "wrong type" not in v.validate(serving, schema).for_feature("passengers")
    schema["passengers"].type = "decimal"
    with pytest.raises(ValueError, match="passengers: type 'decimal' is not one of"):
        v.validate(serving, schema)


def test_relaxing_a_domain_on_purpose(schema):
    serving = trips(1000, seed=7)
    serving.loc[:49, "company"] = "Blue Ribbon Taxi"  # 5 % of the values are new
    off = {"company": {"l_infinity": None}}  # the distance is another question
    assert v.validate(serving, schema, thresholds=off).for_feature("company") == [
        "unexpected values"
    ]
    schema["company"].min_domain_mass = 0.9  # up to 10 % may lie outside the domain
    assert v.validate(serving, schema, thresholds=off).ok
    serving.loc[:199, "company"] = "Blue Ribbon Taxi"  # 20 %: still too many
    assert v.validate(serving, schema, thresholds=off).for_feature("company") == [
        "unexpected values"
    ]
    schema["company"].min_domain_mass = 1.0
    schema["company"].domain.append("Blue Ribbon Taxi")  # or: the value is now expected
    assert v.validate(serving, schema, thresholds=off).ok
    schema["trip_miles"].max = 1.0  # a range edit (TFDV's set_domain with a FloatDomain)
    assert "out of range" in v.validate(trips(500, seed=8), schema).for_feature("trip_miles")


def test_a_frozen_schema_reloaded_from_file_flags_the_same_anomalies(schema, tmp_path):
    schema["trip_miles"].min_fraction = 0.95
    schema["company"].min_domain_mass = 0.97
    schema["passengers"].drift_threshold = 0.01
    path = schema.freeze(tmp_path / "run" / "schema.json")
    frozen = v.Schema.load(path)
    bad = trips(800, seed=9, tips=False, shift=4.0).astype({"trip_miles": object})
    bad.loc[:99, "trip_miles"] = None
    bad.loc[:79, "company"] = "Unknown Cab"
    bad["extra"] = 1
    previous = trips(800, seed=10, tips=False)
    in_memory = v.validate(bad, schema, environment=v.SERVING, previous=previous)
    from_file = v.validate(bad, frozen, environment=v.SERVING, previous=previous)
    assert len(in_memory) >= 4
    pd.testing.assert_frame_equal(in_memory.frame, from_file.frame)
    pd.testing.assert_frame_equal(in_memory.distances, from_file.distances)
    assert frozen.to_dict() == schema.to_dict() and frozen.environments == ["TRAINING", "SERVING"]
    assert path.read_bytes() == schema.freeze(tmp_path / "again.json").read_bytes()


def test_a_bad_schema_file_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="no schema file"):
        v.Schema.load(tmp_path / "nope.json")
    (tmp_path / "text.json").write_text("not json")
    with pytest.raises(ValueError, match="is not a schema file"):
        v.Schema.load(tmp_path / "text.json")
    (tmp_path / "odd.json").write_text(json.dumps({"features": [{"name": "x", "kind": 1}]}))
    with pytest.raises(ValueError, match="unknown feature fields \\['kind'\\]"):
        v.Schema.load(tmp_path / "odd.json")


def test_skew_comparator_measures_training_against_serving(schema):
    training = trips(4000, seed=1)
    serving = trips(2000, seed=11, tips=False, p=(0.25, 0.25, 0.25, 0.25))
    schema["company"].skew_threshold = 0.01
    found = v.validate(training, schema, serving=serving)
    assert found.for_feature("company") == ["skew (L-infinity)"]
    row = found.distances.set_index(["feature", "comparison"]).loc[("company", "skew")]
    p = training.company.value_counts(normalize=True).reindex(COMPANIES)
    q = serving.company.value_counts(normalize=True).reindex(COMPANIES)
    assert row.value == pytest.approx(distance.chebyshev(p, q)) and 0.1 < row.value < 0.2
    assert "between training and serving" in found.frame.detail.iloc[0]
    # features without a comparator are not compared; a loose comparator passes
    assert set(found.distances.loc[found.distances.comparison == "skew", "feature"]) == {"company"}
    schema["company"].skew_threshold = 0.5
    assert v.validate(training, schema, serving=serving).ok


def test_drift_comparator_measures_the_previous_span_against_this_one(schema):
    previous, current = trips(2000, seed=12), trips(2000, seed=13, shift=1.5)
    schema["trip_miles"].drift_threshold = 0.05
    off = {"trip_miles": {"out_of_range": None, "jensen_shannon": None}}
    found = v.validate(current, schema, previous=previous, thresholds=off)
    assert found.for_feature("trip_miles") == ["drift (Jensen-Shannon)"]
    js = found.distances.set_index(["feature", "comparison"]).loc[("trip_miles", "drift"), "value"]
    edges = np.histogram_bin_edges(previous.trip_miles, bins=v.HISTOGRAM_BUCKETS)
    p = np.histogram(previous.trip_miles, bins=edges)[0]
    inside = current.trip_miles[current.trip_miles <= edges[-1]]
    q = np.histogram(inside, bins=edges)[0]
    p_ext = np.r_[0, p, 0]
    q_ext = np.r_[0, q, (current.trip_miles > edges[-1]).sum()]
    assert js == pytest.approx(distance.jensenshannon(p_ext, q_ext, base=2) ** 2)
    same = v.validate(previous, schema, previous=previous)
    assert same.ok and same.distances.query("comparison == 'drift'").value.iloc[0] == 0.0


def test_visualize_statistics_draws_both_datasets_per_feature():
    train = trips(1000, seed=14)
    serving = trips(500, seed=15, tips=False).astype({"company": object})
    serving.loc[:99, "company"] = None  # 20 % missing
    fig = v.visualize_statistics(train, serving)
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_xlabel() for ax in panels] == ["company", "passengers", "trip_miles", "tips"]
    assert all(ax.get_ylabel() in ("density", "share of values") for ax in panels)
    assert "missing: train 0.0% / serving 20.0%" in panels[0].get_title()
    assert "serving: absent" in panels[3].get_title()
    shares = [bar.get_height() for bar in panels[0].patches]
    assert sum(shares) == pytest.approx(2.0)  # two sets of shares, each summing to 1
    as_codes = v.visualize_statistics(
        train, serving, features=["passengers"], categorical=["passengers"]
    )
    bars = [bar.get_height() for bar in as_codes.axes[0].patches]
    assert len(bars) == 8 and sum(bars) == pytest.approx(2.0)  # four codes, two datasets
    assert as_codes.axes[0].get_ylabel() == "share of values"
    with pytest.raises(ValueError, match="in neither dataset"):
        v.visualize_statistics(train, serving, features=["fare"])
    matplotlib.pyplot.close(fig)


def test_typed_and_object_columns_give_the_same_statistics_and_anomalies():
    """The vectorised path for typed columns answers as the per-value path for object ones."""
    typed = trips(3000, seed=16).astype({"passengers": "Int64"})
    typed.loc[:99, "passengers"] = pd.NA
    as_objects = typed.astype(object).where(typed.notna(), None)
    schema = v.infer_schema(typed)
    assert schema.to_dict() == v.infer_schema(as_objects).to_dict()
    pd.testing.assert_frame_equal(v.statistics(typed), v.statistics(as_objects))
    serving = trips(800, seed=17, shift=0.5).astype({"company": "category"})
    a = v.validate(serving, schema, thresholds={"trip_miles": 0.001})
    b = v.validate(serving.astype(object), schema, thresholds={"trip_miles": 0.001})
    pd.testing.assert_frame_equal(a.frame, b.frame)
    pd.testing.assert_frame_equal(a.distances, b.distances)
    assert "distribution skew (Jensen-Shannon)" in a.for_feature("trip_miles")
