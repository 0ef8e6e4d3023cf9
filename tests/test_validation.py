"""prodml.validation: schema inference, statistics and the anomalies the course asks about."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from prodml import validation as v
from scipy.spatial import distance

PLURALITY = ["Single(1)", "Twins(2)", "Triplets(3)"]


def natality_like(rows: int, seed: int, gestation_shift: float = 0.0, p_male: float = 0.51):
    """Crafted stand-in for babyweight features (the real generator is not needed here)."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "is_male": rng.random(rows) < p_male,
            "mother_age": rng.normal(28.0, 6.0, rows).clip(14, 50),
            "plurality": rng.choice(PLURALITY, size=rows, p=[0.965, 0.032, 0.003]),
            "gestation_weeks": rng.normal(38.7, 2.0, rows).round().clip(22, 45) + gestation_shift,
            "cigarettes": rng.integers(0, 3, rows),
        }
    )


@pytest.fixture(scope="module")
def train():
    return natality_like(5000, seed=1)


@pytest.fixture(scope="module")
def schema(train):
    return v.infer_schema(train)


def test_infer_schema_types_presence_domain_range(schema, train):
    assert [f.type for f in schema] == ["bool", "float", "string", "float", "int"]
    assert all(f.presence == 1.0 for f in schema)
    assert schema["plurality"].domain == sorted(PLURALITY)
    assert schema["is_male"].domain == ["False", "True"]
    assert schema["mother_age"].min == pytest.approx(train.mother_age.min())
    assert schema["mother_age"].max == pytest.approx(train.mother_age.max())
    hist = schema["gestation_weeks"].histogram
    assert len(hist["edges"]) == v.HISTOGRAM_BUCKETS + 1 and sum(hist["counts"]) == 5000
    assert sum(schema["plurality"].value_counts.values()) == pytest.approx(1.0)
    table = schema.to_frame()
    assert list(table.index) == list(train.columns) and "domain or range" in table


def test_statistics_five_numbers_missing_and_modes():
    df = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0, None], "c": ["a", "b", "a", None, "a"]})
    stats = v.statistics(df)
    x = stats.loc["x"]
    assert (x["min"], x["25%"], x["50%"], x["75%"], x["max"]) == (1.0, 1.75, 2.5, 3.25, 4.0)
    assert x["mean"] == 2.5 and x["std"] == pytest.approx(np.std([1, 2, 3, 4], ddof=1))
    assert x["missing"] == pytest.approx(0.2) and x["count"] == 4
    c = stats.loc["c"]
    assert c["type"] == "string" and c["top"][0] == "a" and c["top_freq"][0] == 0.75
    assert c["unique"] == 2 and np.isnan(c["mean"])


def test_clean_sample_has_no_anomalies(schema):
    serving = natality_like(2000, seed=2)
    found = v.validate(serving, schema)
    assert found.ok, str(found)
    assert len(found) == 0 and not found
    assert set(found.distances.feature) == set(schema.features)
    assert (found.distances.value < 0.05).all()
    assert "No anomalies" in found._repr_html_()


def test_missing_and_unexpected_features(schema):
    serving = natality_like(500, seed=3).drop(columns=["cigarettes"]).assign(apgar=9)
    found = v.validate(serving, schema)
    assert found.for_feature("cigarettes") == ["missing feature"]
    assert found.for_feature("apgar") == ["unexpected feature"]
    assert len(found) == 2 and not found.ok


def test_wrong_type(schema):
    serving = natality_like(500, seed=4)
    serving["mother_age"] = serving["mother_age"].map(lambda a: f"{a:.1f}")  # CSV read as text
    found = v.validate(serving, schema)
    assert found.for_feature("mother_age") == ["wrong type"]
    assert "expected float; 500 string of 500 values" in found.frame.detail.iloc[0]
    # ints are accepted where floats are expected, other features still pass
    assert len(found) == 1


def test_presence_drop(schema):
    serving = natality_like(1000, seed=5).astype({"gestation_weeks": object})
    serving.loc[:299, "gestation_weeks"] = None
    found = v.validate(serving, schema)
    assert found.for_feature("gestation_weeks") == ["presence below expected"]
    assert "70.0% of examples hold it, expected 100.0%" in found.frame.detail.iloc[0]


def test_categorical_l_infinity_above_threshold(schema):
    serving = natality_like(2000, seed=6, p_male=0.8)
    found = v.validate(serving, schema, thresholds={"is_male": 0.1})
    assert found.for_feature("is_male") == ["distribution skew (L-infinity)"]
    measured = found.distances.set_index("feature").loc["is_male"]
    assert measured.metric == "l_infinity" and measured.threshold == 0.1
    assert 0.2 < measured.value < 0.4  # about |0.8 - 0.51|
    # a looser per-feature threshold accepts the same data
    assert v.validate(serving, schema, thresholds={"is_male": 0.5}).ok


def test_numeric_jensen_shannon_above_threshold(schema):
    serving = natality_like(2000, seed=7, gestation_shift=3.0)
    found = v.validate(serving, schema, thresholds={"gestation_weeks": {"out_of_range": None}})
    assert found.for_feature("gestation_weeks") == ["distribution skew (Jensen-Shannon)"]
    js = found.distances.set_index("feature").loc["gestation_weeks", "value"]
    assert 0.1 < js <= 1.0
    # the unit change a re-implemented preprocessing function makes is also out of range
    months = natality_like(500, seed=8).assign(mother_age=lambda d: d.mother_age * 12)
    kinds = v.validate(months, schema).for_feature("mother_age")
    assert kinds == ["out of range", "distribution skew (Jensen-Shannon)"]


def test_unexpected_categorical_values(schema):
    serving = natality_like(500, seed=9)
    serving.loc[:9, "plurality"] = "Multiple(2+)"
    found = v.validate(serving, schema, thresholds={"plurality": None})
    assert found.for_feature("plurality") == ["unexpected values"]
    assert "2.0% of values not in domain: 'Multiple(2+)'" in found.frame.detail.iloc[0]


def test_wrong_number_of_values():
    train = pd.DataFrame({"tags": [["a"], ["b"], ["a"]] * 10})
    schema = v.infer_schema(train)
    assert (schema["tags"].min_values, schema["tags"].max_values) == (1, 1)
    found = v.validate(pd.DataFrame({"tags": [["a", "b"], ["b"], ["a"]] * 10}), schema)
    assert "wrong number of values" in found.for_feature("tags")


def test_baseline_drift_against_other_data(schema):
    day1 = natality_like(2000, seed=10, p_male=0.3)
    day2 = natality_like(2000, seed=11, p_male=0.3)
    assert "distribution skew (L-infinity)" in v.validate(day2, schema).for_feature("is_male")
    assert v.validate(day2, schema, baseline=day1).for_feature("is_male") == []


def test_distances_match_definitions():
    assert v.l_infinity({"a": 1, "b": 1}, {"a": 3, "b": 1}) == pytest.approx(0.25)
    assert v.l_infinity({"a": 5}, {"b": 2}) == 1.0
    same = {"edges": [0.0, 1.0, 2.0], "counts": [3.0, 1.0]}
    assert v.jensen_shannon(same, same) == 0.0
    p = {"edges": [0.0, 1.0, 2.0], "counts": [10.0, 0.0]}
    q = {"edges": [0.0, 1.0, 2.0], "counts": [5.0, 5.0]}
    expected = distance.jensenshannon([1.0, 0.0], [0.5, 0.5], base=2) ** 2  # JS divergence
    assert v.jensen_shannon(p, q) == pytest.approx(expected) == pytest.approx(0.311278, abs=1e-6)
    disjoint = {"edges": [5.0, 6.0], "counts": [4.0]}
    assert v.jensen_shannon(p, disjoint) == 1.0
    # different boundaries are aligned on their union, counts spread uniformly in a bucket
    wide = {"edges": [0.0, 2.0], "counts": [10.0]}
    assert v.jensen_shannon(q, wide) == pytest.approx(0.0)


def test_schema_round_trip(schema, tmp_path):
    path = schema.save(tmp_path / "schema.json")
    again = v.Schema.load(path)
    assert again.to_dict() == schema.to_dict()
    assert v.validate(natality_like(300, seed=12), again).ok


def test_anomalies_render_as_table(schema):
    found = v.validate(natality_like(200, seed=13).drop(columns="plurality"), schema)
    assert list(found.frame.columns) == ["feature", "anomaly", "detail"]
    html = found._repr_html_()
    assert "<table" in html and "missing feature" in html
    assert "plurality" in str(found) and list(found)[0]["feature"] == "plurality"


def test_bad_input_errors(schema, train):
    with pytest.raises(TypeError, match="must be a pandas DataFrame"):
        v.validate(train.to_dict(), schema)
    with pytest.raises(ValueError, match="has no rows"):
        v.validate(train.iloc[:0], schema)
    with pytest.raises(TypeError, match="schema must be"):
        v.validate(train, {"is_male": "bool"})
    with pytest.raises(ValueError, match="unknown features or checks: \\['weight'\\]"):
        v.validate(train, schema, thresholds={"weight": 0.1})
    with pytest.raises(ValueError, match="must be a number >= 0"):
        v.validate(train, schema, thresholds={"is_male": -1})
    with pytest.raises(ValueError, match="not in df"):
        v.infer_schema(train, categorical=["nope"])
    with pytest.raises(ValueError, match="duplicated column names"):
        v.statistics(pd.concat([train, train], axis=1))
    with pytest.raises(ValueError, match="supported types"):
        v.infer_schema(pd.DataFrame({"when": pd.to_datetime(["2020-01-01"]).astype(object)}))


def test_an_int_column_treated_as_categorical_validates_its_own_data(train):
    # the bug: infer_schema(categorical=[an int column]) recorded type "string", so validate()
    # reported "wrong type" on the very data the schema was learnt from
    schema = v.infer_schema(train, categorical=["cigarettes"])
    cigarettes = schema["cigarettes"]
    assert (cigarettes.type, cigarettes.categorical) == ("int", True)
    assert cigarettes.domain == ["0", "1", "2"] and cigarettes.min is None
    assert schema.to_frame().loc["cigarettes", "type"] == "int (categorical)"
    found = v.validate(train, schema)
    assert found.ok, str(found)
    measured = found.distances.set_index("feature").loc["cigarettes"]
    assert (measured.metric, measured.value) == ("l_infinity", 0.0)
    # compared as categories: a value never seen in training is outside the domain
    serving = train.assign(cigarettes=train.cigarettes.where(train.index >= 50, 7))
    assert v.validate(serving, schema, thresholds={"cigarettes": None}).for_feature(
        "cigarettes"
    ) == ["unexpected values"]
    # and text where the ints were is still the wrong type
    as_text = train.assign(cigarettes=train.cigarettes.astype(str))
    assert v.validate(as_text, schema).for_feature("cigarettes") == ["wrong type"]
    assert v.Schema.from_dict(schema.to_dict())["cigarettes"].categorical is True
