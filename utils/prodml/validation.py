"""Schema and drift checks for tabular data, in the spirit of TensorFlow Data Validation.

TFDV itself is not installable here, so this module answers the same questions plainly with
pandas, numpy and scipy:

* :func:`statistics` -- descriptive statistics per feature: type, count, missing fraction,
  five-number summary, mean and standard deviation, distinct values and the most frequent ones.
* :func:`infer_schema` -- a :class:`Schema` learnt from training data: per feature its type
  (``int``, ``float``, ``string``, ``bool``), the fraction of examples that hold it, the number of
  values per example, the domain (categorical) or range (numeric), and the training distribution
  (normalised value counts, or a histogram).
* :func:`validate` -- compare new data with a schema (and optionally another baseline) and return
  :class:`Anomalies`, a table with columns ``feature``, ``anomaly``, ``detail``.

The checks answer the course's questions:

==========================================  ===============================================
question                                    anomaly
==========================================  ===============================================
are all expected features present?          ``missing feature``
any unexpected features?                    ``unexpected feature``
the expected types?                         ``wrong type``
the expected fraction holding each feature  ``presence below expected``
the expected number of values?              ``wrong number of values``
values inside the domain / range?           ``unexpected values`` / ``out of range``
is the new distribution close enough?       ``distribution skew (L-infinity)`` /
                                            ``distribution skew (Jensen-Shannon)``
==========================================  ===============================================

Distances follow TFDV's definitions (``tensorflow_data_validation/anomalies/metrics.cc``):

* **L-infinity distance** (categorical features): normalise each side's value counts to sum to
  1 and take the largest absolute difference over all values,
  ``max_v |p(v) - q(v)|``; 0 means identical, 1 means disjoint.
* **Jensen-Shannon divergence** (numeric features): two histograms over common buckets,
  normalised, and ``JS = (KL(P||M) + KL(Q||M)) / 2`` with ``M = (P + Q) / 2`` and KL in
  **base 2** (TFDV uses ``log2``), so 0 <= JS <= 1; TFDV caps the result at 1.0 and so do we.
  The baseline histogram has :data:`HISTOGRAM_BUCKETS` equal-width buckets between its min and
  max (TFDV's default is 10 buckets); :func:`validate` counts the new values in those same
  buckets plus one below and one above the baseline's range. :func:`jensen_shannon` compares
  two arbitrary histograms the way TFDV aligns them: on the union of their boundaries, counts
  spread uniformly inside a bucket.

Thresholds are per feature (``thresholds={"plurality": 0.01}``) with defaults in
:data:`DEFAULT_THRESHOLDS`; like TFDV's ``infinity_norm`` / ``jensen_shannon_divergence``
comparators, a distance strictly above its threshold is an anomaly.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

TYPES = ("int", "float", "string", "bool")
CATEGORICAL = ("string", "bool")
NUMERIC = ("int", "float")
HISTOGRAM_BUCKETS = 10

#: Default limits; override per feature with ``validate(..., thresholds={feature: value})``
#: (a number sets that feature's distance threshold) or per check with a dict.
DEFAULT_THRESHOLDS: dict[str, float] = {
    "l_infinity": 0.05,  # categorical: max |p - q| of normalised value counts
    "jensen_shannon": 0.05,  # numeric: base-2 JS divergence of aligned histograms
    "presence_drop": 0.02,  # allowed drop of the fraction of examples holding the feature
    "out_of_domain": 0.0,  # fraction of categorical values outside the training domain
    "out_of_range": 0.01,  # fraction of numeric values outside the training [min, max]
}
_TOP = 5


# --------------------------------------------------------------------------------------------
# value types


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def _value_type(value: Any) -> str:
    """The schema type of one (non-missing) scalar value."""
    if isinstance(value, bool | np.bool_):
        return "bool"
    if isinstance(value, int | np.integer):
        return "int"
    if isinstance(value, float | np.floating):
        return "float"
    if isinstance(value, str | bytes):
        return "string"
    return type(value).__name__


def _is_list(value: Any) -> bool:
    return isinstance(value, list | tuple | np.ndarray)


def _column_type(series: pd.Series) -> str:
    """The schema type of a column, from its dtype or (object columns) its values."""
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_integer_dtype(dtype):
        return "int"
    if pd.api.types.is_float_dtype(dtype):
        return "float"
    if pd.api.types.is_string_dtype(dtype) and not pd.api.types.is_object_dtype(dtype):
        return "string"
    counts = _value_type_counts(series)
    if not counts:
        return "string"  # an all-missing object column carries no type; strings are the default
    if set(counts) <= {"int", "float"}:
        return "float" if "float" in counts else "int"
    return max(counts, key=counts.get)


def _flat_values(series: pd.Series) -> list:
    values: list = []
    for cell in series:
        if _is_list(cell):
            values.extend(v for v in cell if not _is_missing(v))
        elif not _is_missing(cell):
            values.append(cell)
    return values


def _value_type_counts(series: pd.Series) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in _flat_values(series):
        kind = _value_type(value)
        counts[kind] = counts.get(kind, 0) + 1
    return counts


def _present(series: pd.Series) -> pd.Series:
    """True where an example holds the feature (a non-missing scalar or a non-empty list)."""
    return series.map(lambda c: len(c) > 0 if _is_list(c) else not _is_missing(c)).astype(bool)


def _valency(series: pd.Series) -> pd.Series:
    """Number of values each present example holds (1 for scalars)."""
    present = series[_present(series)]
    return present.map(lambda c: len(c) if _is_list(c) else 1).astype(int)


def _numeric(series: pd.Series) -> np.ndarray:
    values = _flat_values(series)
    return np.asarray([float(v) for v in values if _value_type(v) in NUMERIC], dtype=float)


def _categorical(series: pd.Series) -> pd.Series:
    return pd.Series([str(v) for v in _flat_values(series)], dtype=object)


def _check_frame(df: Any, what: str = "df") -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{what} must be a pandas DataFrame, got {type(df).__name__}")
    if len(df.columns) == 0:
        raise ValueError(f"{what} has no columns")
    if len(df) == 0:
        raise ValueError(f"{what} has no rows: there is nothing to describe or validate")
    duplicated = sorted({str(c) for c in df.columns[df.columns.duplicated()]})
    if duplicated:
        raise ValueError(f"{what} has duplicated column names: {duplicated}")
    return df


# --------------------------------------------------------------------------------------------
# statistics


def statistics(df: pd.DataFrame) -> pd.DataFrame:
    """Descriptive statistics, one row per feature (TFDV's ``generate_statistics``, as a table).

    Columns: ``type``, ``count`` (examples holding the feature), ``missing`` (fraction of
    examples without it), ``mean``, ``std``, ``min``, ``25%``, ``50%``, ``75%``, ``max`` (the
    five-number summary; numeric features only), ``unique`` (distinct values), ``top`` (the
    most frequent values, the modes first) and ``top_freq`` (their fractions).
    """
    _check_frame(df)
    rows = []
    for name in df.columns:
        series = df[name]
        kind = _column_type(series)
        present = _present(series)
        row: dict[str, Any] = {
            "feature": str(name),
            "type": kind,
            "count": int(present.sum()),
            "missing": float(1.0 - present.mean()),
        }
        if kind in NUMERIC:
            values = _numeric(series)
            if values.size:
                q = np.quantile(values, [0.0, 0.25, 0.5, 0.75, 1.0])
                row.update(
                    mean=float(values.mean()),
                    std=float(values.std(ddof=1)) if values.size > 1 else 0.0,
                )
                row.update(zip(["min", "25%", "50%", "75%", "max"], map(float, q), strict=True))
        cats = _categorical(series)
        freq = cats.value_counts(normalize=True, sort=True)
        row["unique"] = int(freq.size)
        row["top"] = list(freq.index[:_TOP])
        row["top_freq"] = [round(float(f), 4) for f in freq.iloc[:_TOP]]
        rows.append(row)
    columns = ["feature", "type", "count", "missing", "mean", "std", "min", "25%", "50%", "75%"]
    columns += ["max", "unique", "top", "top_freq"]
    return pd.DataFrame(rows).reindex(columns=columns).set_index("feature")


# --------------------------------------------------------------------------------------------
# schema


@dataclass
class Feature:
    """What training data says about one feature."""

    name: str
    type: str
    presence: float  # fraction of training examples holding the feature
    min_values: int = 1  # values per present example (1 for scalar columns)
    max_values: int = 1
    domain: list[str] | None = None  # categorical: the values seen in training
    min: float | None = None  # numeric: the training range
    max: float | None = None
    value_counts: dict[str, float] | None = None  # categorical: normalised training counts
    histogram: dict[str, list[float]] | None = None  # numeric: {"edges": [...], "counts": [...]}
    #: compared by domain and L-infinity distance (strings, bools, and numbers named in
    #: ``infer_schema(categorical=...)``, which keep their own ``type``); None: from the type
    categorical: bool | None = None

    def __post_init__(self):
        if self.categorical is None:
            self.categorical = self.type in CATEGORICAL


@dataclass
class Schema:
    """Features expected in serving data, as :func:`infer_schema` learnt them."""

    features: dict[str, Feature] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Feature:
        return self.features[name]

    def __contains__(self, name: object) -> bool:
        return name in self.features

    def __iter__(self):
        return iter(self.features.values())

    def __len__(self) -> int:
        return len(self.features)

    def to_frame(self) -> pd.DataFrame:
        """The schema as a table (TFDV's ``display_schema``)."""
        rows = []
        for f in self:
            if f.categorical:
                domain = ", ".join(f.domain or [])
            else:
                domain = f"[{f.min:g}, {f.max:g}]" if f.min is not None else ""
            rows.append(
                {
                    "feature": f.name,
                    "type": f"{f.type} (categorical)"
                    if f.categorical and f.type not in CATEGORICAL
                    else f.type,
                    "presence": round(f.presence, 4),
                    "values": f"{f.min_values}..{f.max_values}"
                    if f.min_values != f.max_values
                    else str(f.min_values),
                    "domain or range": domain,
                }
            )
        return pd.DataFrame(rows).set_index("feature")

    def _repr_html_(self) -> str:
        return self.to_frame()._repr_html_()

    def to_dict(self) -> dict:
        return {"features": [asdict(f) for f in self]}

    @classmethod
    def from_dict(cls, data: Mapping) -> Schema:
        try:
            features = [Feature(**f) for f in data["features"]]
        except (KeyError, TypeError) as err:
            raise ValueError(f"not a schema dictionary ({err})") from err
        return cls({f.name: f for f in features})

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1))
        return path

    @classmethod
    def load(cls, path: str | Path) -> Schema:
        return cls.from_dict(json.loads(Path(path).read_text()))


def _histogram(values: np.ndarray, buckets: int = HISTOGRAM_BUCKETS) -> dict[str, list[float]]:
    lo, hi = float(values.min()), float(values.max())
    if lo == hi:  # a point mass: one zero-width bucket, as TFDV records it
        return {"edges": [lo, hi], "counts": [float(values.size)]}
    counts, edges = np.histogram(values, bins=buckets, range=(lo, hi))
    return {"edges": [float(e) for e in edges], "counts": [float(c) for c in counts]}


def infer_schema(df: pd.DataFrame, categorical: Iterable[str] = ()) -> Schema:
    """Learn a :class:`Schema` from training data (TFDV's ``infer_schema``).

    ``categorical`` names numeric columns to treat as categories (their domain and L-infinity
    distance instead of range and Jensen-Shannon).
    """
    _check_frame(df)
    categorical = set(categorical)
    unknown = sorted(categorical - {str(c) for c in df.columns})
    if unknown:
        raise ValueError(f"categorical names columns that are not in df: {unknown}")
    features = {}
    for name in df.columns:
        series = df[name]
        kind = _column_type(series)
        if kind not in TYPES:
            raise ValueError(
                f"column {name!r} holds {kind} values; supported types are {', '.join(TYPES)}"
            )
        present = _present(series)
        valency = _valency(series)
        feature = Feature(
            name=str(name),
            type=kind,  # the values' own type, which validate() checks new data against
            categorical=kind in CATEGORICAL or str(name) in categorical,
            presence=float(present.mean()),
            min_values=int(valency.min()) if len(valency) else 1,
            max_values=int(valency.max()) if len(valency) else 1,
        )
        if feature.categorical:
            freq = _categorical(series).value_counts(normalize=True)
            feature.domain = sorted(freq.index)
            feature.value_counts = {str(k): float(v) for k, v in freq.items()}
        else:
            values = _numeric(series)
            if values.size:
                feature.min, feature.max = float(values.min()), float(values.max())
                feature.histogram = _histogram(values)
        features[feature.name] = feature
    return Schema(features)


# --------------------------------------------------------------------------------------------
# distances


def l_infinity(p: Mapping[str, float], q: Mapping[str, float]) -> float:
    """TFDV's L-infinity distance: the largest ``|p(v) - q(v)|`` of normalised value counts."""
    p_total, q_total = sum(p.values()), sum(q.values())
    if p_total <= 0 or q_total <= 0:
        raise ValueError("L-infinity distance needs two non-empty value counts")
    keys = set(p) | set(q)
    return float(max(abs(p.get(k, 0.0) / p_total - q.get(k, 0.0) / q_total) for k in keys))


def _rebucket(edges: list[float], counts: list[float], bounds: np.ndarray) -> np.ndarray:
    """Spread each bucket's count uniformly over the ``bounds`` intervals it covers."""
    out = np.zeros(len(bounds) - 1)
    for lo, hi, count in zip(edges[:-1], edges[1:], counts, strict=True):
        if hi == lo:  # point mass: the interval that contains it (the last one holds its end)
            i = min(int(np.searchsorted(bounds, lo, side="right")) - 1, len(out) - 1)
            out[max(i, 0)] += count
            continue
        for i in range(len(out)):
            overlap = min(hi, bounds[i + 1]) - max(lo, bounds[i])
            if overlap > 0:
                out[i] += count * overlap / (hi - lo)
    return out


def _js(p: np.ndarray, q: np.ndarray) -> float:
    """Base-2 Jensen-Shannon divergence of two count vectors over the same buckets, capped at 1."""
    p, q = np.asarray(p, dtype=float), np.asarray(q, dtype=float)
    if p.sum() <= 0 or q.sum() <= 0:
        raise ValueError("Jensen-Shannon divergence needs two non-empty histograms")
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2

    def kl(a: np.ndarray, b: np.ndarray) -> float:
        mask = (a > 0) & (b > 0)
        return float(np.sum(a[mask] * np.log2(a[mask] / b[mask])))

    return min((kl(p, m) + kl(q, m)) / 2, 1.0)


def jensen_shannon(p_hist: Mapping[str, list[float]], q_hist: Mapping[str, list[float]]) -> float:
    """TFDV's approximate Jensen-Shannon divergence (base 2, capped at 1) of two histograms.

    Each histogram is ``{"edges": [...], "counts": [...]}``. As TFDV does, both are re-bucketed
    onto the union of their boundaries assuming values spread uniformly within a bucket, then
    normalised and compared: ``(KL(P||M) + KL(Q||M)) / 2`` with ``M = (P + Q) / 2``.
    """
    bounds = np.unique(np.concatenate([p_hist["edges"], q_hist["edges"]]))
    if bounds.size == 1:  # both are the same single point
        bounds = np.array([bounds[0], bounds[0] + 1.0])
    p = _rebucket(p_hist["edges"], p_hist["counts"], bounds)
    q = _rebucket(q_hist["edges"], q_hist["counts"], bounds)
    return _js(p, q)


def _js_on_baseline_buckets(base: Mapping[str, list[float]], values: np.ndarray) -> float:
    """JS divergence of new ``values`` against a baseline histogram, on the baseline's buckets.

    New values are counted in the baseline's buckets, plus one bucket below its minimum and one
    above its maximum (where the baseline has nothing), so the two histograms share their bins.
    This avoids the artefacts of spreading counts uniformly when features take few distinct
    values (weeks, ages in years).
    """
    edges = np.asarray(base["edges"], dtype=float)
    lo, hi = edges[0], edges[-1]
    if lo == hi:
        inside = np.array([np.sum(values == lo)], dtype=float)
    else:
        inside = np.histogram(values[(values >= lo) & (values <= hi)], bins=edges)[0]
    q = np.concatenate([[np.sum(values < lo)], inside, [np.sum(values > hi)]])
    p = np.concatenate([[0.0], np.asarray(base["counts"], dtype=float), [0.0]])
    return _js(p, q)


# --------------------------------------------------------------------------------------------
# anomalies


class Anomalies:
    """What :func:`validate` found: a table with columns ``feature``, ``anomaly``, ``detail``.

    ``anomalies.ok`` is True when nothing was found; ``len(anomalies)`` counts the rows.
    ``anomalies.distances`` holds every distance measured (also those under the threshold),
    with columns ``feature``, ``metric``, ``value``, ``threshold``.
    """

    COLUMNS = ("feature", "anomaly", "detail")

    def __init__(self, rows: list[dict], distances: pd.DataFrame | None = None):
        self.frame = pd.DataFrame(rows, columns=list(self.COLUMNS))
        self.distances = (
            distances
            if distances is not None
            else pd.DataFrame(columns=["feature", "metric", "value", "threshold"])
        )

    @property
    def ok(self) -> bool:
        return self.frame.empty

    def __len__(self) -> int:
        return len(self.frame)

    def __bool__(self) -> bool:  # truthy when there are anomalies, like a non-empty list
        return not self.ok

    def __iter__(self):
        return iter(self.frame.to_dict("records"))

    def for_feature(self, name: str) -> list[str]:
        """The anomaly kinds found for one feature."""
        return list(self.frame.loc[self.frame["feature"] == name, "anomaly"])

    def __str__(self) -> str:
        if self.ok:
            return "No anomalies found."
        return self.frame.to_string(index=False)

    def __repr__(self) -> str:
        return f"<Anomalies: {len(self)}>\n{self}"

    def _repr_html_(self) -> str:
        if self.ok:
            return "<p>No anomalies found.</p>"
        return self.frame.to_html(index=False)


def _thresholds(schema: Schema, thresholds: Mapping | None) -> dict[str, dict[str, float]]:
    thresholds = dict(thresholds or {})
    defaults = dict(DEFAULT_THRESHOLDS)
    for key in list(thresholds):
        if key in DEFAULT_THRESHOLDS:  # a global override: thresholds={"l_infinity": 0.01}
            defaults[key] = thresholds.pop(key)
    unknown = sorted(set(thresholds) - set(schema.features))
    if unknown:
        raise ValueError(
            f"thresholds name unknown features or checks: {unknown}; features are "
            f"{sorted(schema.features)}, checks are {sorted(DEFAULT_THRESHOLDS)}"
        )
    resolved = {}
    for f in schema:
        limits = dict(defaults)
        given = thresholds.get(f.name)
        if isinstance(given, Mapping):
            bad = sorted(set(given) - set(DEFAULT_THRESHOLDS))
            if bad:
                raise ValueError(f"thresholds[{f.name!r}] has unknown checks {bad}")
            limits.update(given)
        elif given is not None:
            limits["l_infinity" if f.categorical else "jensen_shannon"] = given
        for key, value in limits.items():
            if value is not None and (not isinstance(value, int | float) or value < 0):
                raise ValueError(
                    f"threshold {key} for {f.name!r} must be a number >= 0 or None, got {value!r}"
                )
        resolved[f.name] = limits
    return resolved


# One function per check. Each takes the schema's feature, the new column and the feature's
# limits, and returns the anomalies it found as (anomaly, detail) pairs.


def _check_type(f: Feature, series: pd.Series, lim: Mapping) -> list[tuple[str, str]]:
    """Every present value must be of the schema type (ints are fine where floats are)."""
    counts = _value_type_counts(series)
    allowed = {f.type} | ({"int"} if f.type == "float" else set())
    wrong = {k: v for k, v in counts.items() if k not in allowed}
    if not wrong:
        return []
    seen = ", ".join(f"{v} {k}" for k, v in sorted(wrong.items()))
    return [("wrong type", f"expected {f.type}; {seen} of {sum(counts.values())} values")]


def _check_presence(f: Feature, series: pd.Series, lim: Mapping) -> list[tuple[str, str]]:
    """The fraction of examples holding the feature must not drop by more than allowed."""
    fraction, drop = float(_present(series).mean()), lim["presence_drop"]
    if drop is None or fraction >= f.presence - drop:
        return []
    detail = f"{fraction:.1%} of examples hold it, expected {f.presence:.1%}"
    return [("presence below expected", detail)]


def _check_valency(f: Feature, series: pd.Series, lim: Mapping) -> list[tuple[str, str]]:
    """Each present example holds between ``min_values`` and ``max_values`` values."""
    valency = _valency(series)
    if not len(valency) or (valency.min() >= f.min_values and valency.max() <= f.max_values):
        return []
    detail = (
        f"{valency.min()}..{valency.max()} values per example, expected "
        f"{f.min_values}..{f.max_values}"
    )
    return [("wrong number of values", detail)]


def _check_domain(f: Feature, series: pd.Series, lim: Mapping) -> list[tuple[str, str]]:
    """Categorical: the share of values outside the training domain."""
    values = _categorical(series)
    outside = values[~values.isin(f.domain or [])]
    share = len(outside) / len(values)
    if lim["out_of_domain"] is None or share <= lim["out_of_domain"]:
        return []
    shown = ", ".join(map(repr, outside.value_counts().index[:_TOP]))
    return [("unexpected values", f"{share:.1%} of values not in domain: {shown}")]


def _check_range(f: Feature, series: pd.Series, lim: Mapping) -> list[tuple[str, str]]:
    """Numeric: the share of values outside the training ``[min, max]``."""
    values = _numeric(series)
    if f.min is None or not values.size:
        return []
    share = float(np.mean((values < f.min) | (values > f.max)))
    if lim["out_of_range"] is None or share <= lim["out_of_range"]:
        return []
    detail = (
        f"{share:.1%} of values outside [{f.min:g}, {f.max:g}] "
        f"(seen {values.min():g}..{values.max():g})"
    )
    return [("out of range", detail)]


def _distance(
    f: Feature, series: pd.Series, baseline: pd.DataFrame | None
) -> tuple[str, float | None]:
    """The distance between the new values and the baseline (or the schema's training
    distribution): L-infinity for categorical features, Jensen-Shannon for numeric ones.
    ``value`` is None when there is no baseline distribution to compare with."""
    own = baseline is not None and f.name in baseline
    if f.categorical:
        base = _categorical(baseline[f.name]).value_counts().to_dict() if own else f.value_counts
        new = _categorical(series).value_counts().to_dict()
        return "l_infinity", (l_infinity(base, new) if base else None)
    base_values = _numeric(baseline[f.name]) if own else np.array([])
    hist = _histogram(base_values) if base_values.size else f.histogram
    return "jensen_shannon", (_js_on_baseline_buckets(hist, _numeric(series)) if hist else None)


def _check_distance(
    f: Feature, series: pd.Series, lim: Mapping, baseline: pd.DataFrame | None, measured: list
) -> list[tuple[str, str]]:
    """Distribution skew (or drift against ``baseline``): the distance above its threshold.
    Every distance measured is appended to ``measured``, under its threshold or not."""
    metric, value = _distance(f, series, baseline)
    if value is None:
        return []
    limit = lim[metric]
    measured.append({"feature": f.name, "metric": metric, "value": value, "threshold": limit})
    if limit is None or value <= limit:
        return []
    label, what = (
        ("L-infinity", "distance") if metric == "l_infinity" else ("Jensen-Shannon", "divergence")
    )
    return [(f"distribution skew ({label})", f"{label} {what} {value:.4f} > threshold {limit:g}")]


def validate(
    df: pd.DataFrame,
    schema: Schema,
    baseline: pd.DataFrame | None = None,
    thresholds: Mapping[str, Any] | None = None,
) -> Anomalies:
    """Check ``df`` (serving data, a new batch) against ``schema`` learnt from training data.

    ``baseline``: the data to compare distributions with; by default the training distribution
    stored in the schema (skew), or pass e.g. yesterday's serving data (drift).
    ``thresholds``: ``{feature: distance}`` or ``{feature: {check: value}}`` per feature, or
    ``{check: value}`` for all (checks: the keys of :data:`DEFAULT_THRESHOLDS`); ``None`` turns
    a check off.

    Per feature, in order: present at all; the type (a feature of the wrong type gets no
    further checks: distances on such values mean nothing); presence; values per example;
    domain (categorical) or range (numeric); the distribution distance.
    """
    _check_frame(df)
    if not isinstance(schema, Schema):
        raise TypeError(f"schema must be a prodml.validation.Schema, got {type(schema).__name__}")
    if baseline is not None:
        _check_frame(baseline, "baseline")
    limits = _thresholds(schema, thresholds)
    columns = {str(c): c for c in df.columns}
    rows = [
        {"feature": name, "anomaly": "unexpected feature", "detail": "column is not in the schema"}
        for name in sorted(set(columns) - set(schema.features))
    ]
    distances: list[dict] = []
    for f in schema:
        if f.name not in columns:
            detail = f"expected in {f.presence:.0%} of examples"
            rows.append({"feature": f.name, "anomaly": "missing feature", "detail": detail})
            continue
        series, lim = df[columns[f.name]], limits[f.name]
        found = _check_type(f, series, lim)
        if not found:
            found = _check_presence(f, series, lim) + _check_valency(f, series, lim)
            if _present(series).any():
                found += (_check_domain if f.categorical else _check_range)(f, series, lim)
                found += _check_distance(f, series, lim, baseline, distances)
        rows += [{"feature": f.name, "anomaly": a, "detail": d} for a, d in found]
    table = pd.DataFrame(distances, columns=["feature", "metric", "value", "threshold"])
    return Anomalies(rows, table)


__all__ = [
    "DEFAULT_THRESHOLDS",
    "HISTOGRAM_BUCKETS",
    "Anomalies",
    "Feature",
    "Schema",
    "infer_schema",
    "jensen_shannon",
    "l_infinity",
    "statistics",
    "validate",
]
