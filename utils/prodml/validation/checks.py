"""Validate new data against a schema: the anomalies the course asks about, skew and drift.

TFDV's ``validate_statistics(statistics, schema, environment, previous_statistics,
serving_statistics)`` is :func:`validate` ``(df, schema, environment=..., previous=...,
serving=...)`` here; it returns :class:`Anomalies` (TFDV's ``display_anomalies`` is its table).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from prodml.validation.distances import histogram, js_on_baseline_buckets, l_infinity
from prodml.validation.schema import Feature, Schema
from prodml.validation.values import (
    categorical,
    check_frame,
    numeric,
    present,
    valency,
    value_type_counts,
)

__all__ = ["Anomalies", "distance", "validate", "DISTANCE_COLUMNS"]

#: Default limits; override per feature with ``validate(..., thresholds={feature: value})``
#: (a number sets that feature's distance threshold) or per check with a dict.
DEFAULT_THRESHOLDS: dict[str, float] = {
    "l_infinity": 0.05,  # categorical: max |p - q| of normalised value counts
    "jensen_shannon": 0.05,  # numeric: base-2 JS divergence of aligned histograms
    "presence_drop": 0.02,  # allowed drop of the fraction of examples holding the feature
    "out_of_domain": 0.0,  # fraction of categorical values outside the training domain
    "out_of_range": 0.01,  # fraction of numeric values outside the training [min, max]
}
_SHOWN = 5  # values named in an anomaly's detail
_LABELS = {
    "l_infinity": ("L-infinity", "distance"),
    "jensen_shannon": ("Jensen-Shannon", "divergence"),
}
DISTANCE_COLUMNS = ["feature", "metric", "value", "threshold", "comparison"]


class Anomalies:
    """What :func:`validate` found: a table with columns ``feature``, ``anomaly``, ``detail``.

    ``anomalies.ok`` is True when nothing was found; ``len(anomalies)`` counts the rows.
    ``anomalies.distances`` holds every distance measured (also those under the threshold),
    with columns ``feature``, ``metric``, ``value``, ``threshold`` and ``comparison``
    (``schema``: against the training distribution in the schema; ``baseline``; ``skew``:
    training against serving; ``drift``: previous against current).
    """

    COLUMNS = ("feature", "anomaly", "detail")

    def __init__(self, rows: list[dict], distances: pd.DataFrame | None = None):
        self.frame = pd.DataFrame(rows, columns=list(self.COLUMNS))
        self.distances = (
            distances if distances is not None else pd.DataFrame(columns=DISTANCE_COLUMNS)
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


def _overrides(schema: Schema, thresholds: Mapping | None) -> tuple[dict, dict]:
    """The call's thresholds split into global ones ({check: value}) and per feature."""
    per_feature = dict(thresholds or {})
    global_ = {k: per_feature.pop(k) for k in list(per_feature) if k in DEFAULT_THRESHOLDS}
    unknown = sorted(set(per_feature) - set(schema.features))
    if unknown:
        raise ValueError(
            f"thresholds name unknown features or checks: {unknown}; features are "
            f"{sorted(schema.features)}, checks are {sorted(DEFAULT_THRESHOLDS)}"
        )
    return global_, per_feature


def _thresholds(schema: Schema, thresholds: Mapping | None) -> dict[str, dict[str, float]]:
    """Each feature's limits: the defaults, then the schema's constraints (``min_domain_mass``),
    then the call's global thresholds, then the call's thresholds for that feature."""
    global_, per_feature = _overrides(schema, thresholds)
    resolved = {}
    for f in schema:
        limits = dict(DEFAULT_THRESHOLDS, out_of_domain=round(1.0 - f.min_domain_mass, 12))
        limits.update(global_)
        given = per_feature.get(f.name)
        if isinstance(given, Mapping):
            bad = sorted(set(given) - set(DEFAULT_THRESHOLDS))
            if bad:
                raise ValueError(f"thresholds[{f.name!r}] has unknown checks {bad}")
            limits.update(given)
        elif given is not None:
            limits[f.metric] = given
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
    counts = value_type_counts(series)
    allowed = {f.type} | ({"int"} if f.type == "float" else set())
    wrong = {k: v for k, v in counts.items() if k not in allowed}
    if not wrong:
        return []
    seen = ", ".join(f"{v} {k}" for k, v in sorted(wrong.items()))
    return [("wrong type", f"expected {f.type}; {seen} of {sum(counts.values())} values")]


def _check_presence(f: Feature, series: pd.Series, lim: Mapping) -> list[tuple[str, str]]:
    """At least ``min_fraction`` of examples hold the feature when the schema sets it; else
    the fraction may not drop below the training one by more than ``presence_drop``."""
    fraction = float(present(series).mean())
    if f.min_fraction is not None:
        if fraction >= f.min_fraction:
            return []
        return [
            (
                "presence below expected",
                f"{fraction:.1%} of examples hold it, min_fraction {f.min_fraction:.1%}",
            )
        ]
    drop = lim["presence_drop"]
    if drop is None or fraction >= f.presence - drop:
        return []
    return [
        (
            "presence below expected",
            f"{fraction:.1%} of examples hold it, expected {f.presence:.1%}",
        )
    ]


def _check_valency(f: Feature, series: pd.Series, lim: Mapping) -> list[tuple[str, str]]:
    """Each present example holds between ``min_values`` and ``max_values`` values."""
    counts = valency(series)
    if not len(counts) or (counts.min() >= f.min_values and counts.max() <= f.max_values):
        return []
    detail = (
        f"{counts.min()}..{counts.max()} values per example, expected "
        f"{f.min_values}..{f.max_values}"
    )
    return [("wrong number of values", detail)]


def _check_domain(f: Feature, series: pd.Series, lim: Mapping) -> list[tuple[str, str]]:
    """Categorical: the share of values outside the domain (at most ``1 - min_domain_mass``)."""
    values = categorical(series)
    outside = values[~values.isin(f.domain or [])]
    share = len(outside) / len(values)
    if lim["out_of_domain"] is None or share <= lim["out_of_domain"]:
        return []
    shown = ", ".join(map(repr, outside.value_counts().index[:_SHOWN]))
    return [("unexpected values", f"{share:.1%} of values not in domain: {shown}")]


def _check_range(f: Feature, series: pd.Series, lim: Mapping) -> list[tuple[str, str]]:
    """Numeric: the share of values outside the schema's ``[min, max]``."""
    values = numeric(series)
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


def distance(f: Feature, new: pd.Series, reference: pd.Series | None = None) -> float | None:
    """The distance of ``new`` values from ``reference`` values (or, without one, from the
    training distribution in the schema): L-infinity for categorical features, Jensen-Shannon
    (on the reference's histogram buckets) for numeric ones. None when either side is empty."""
    if f.categorical:
        new_counts = categorical(new).value_counts().to_dict()
        base = (
            f.value_counts if reference is None else categorical(reference).value_counts().to_dict()
        )
        return l_infinity(base, new_counts) if base and new_counts else None
    values = numeric(new)
    if reference is None:
        hist = f.histogram
    else:
        ref = numeric(reference)
        hist = histogram(ref) if ref.size else None
    return js_on_baseline_buckets(hist, values) if hist and values.size else None


def _compare(f: Feature, value: float | None, limit: float | None, comparison: str, measured: list):
    """Record a distance; an anomaly when it is strictly above its limit (TFDV's rule)."""
    if value is None:
        return []
    measured.append(
        {
            "feature": f.name,
            "metric": f.metric,
            "value": value,
            "threshold": limit,
            "comparison": comparison,
        }
    )
    if limit is None or value <= limit:
        return []
    label, what = _LABELS[f.metric]
    kind = {"schema": "distribution skew", "baseline": "distribution skew"}.get(
        comparison, comparison
    )
    against = {"skew": " between training and serving", "drift": " from the previous data"}.get(
        comparison, ""
    )
    return [(f"{kind} ({label})", f"{label} {what} {value:.4f}{against} > threshold {limit:g}")]


def _check_feature(f: Feature, series: pd.Series, lim: Mapping, baseline, measured: list):
    """Per feature, in order: the type (a feature of the wrong type gets no further checks:
    distances on such values mean nothing); presence; values per example; domain or range; the
    distance to the schema's distribution or the baseline."""
    found = _check_type(f, series, lim)
    if found:
        return found
    found = _check_presence(f, series, lim) + _check_valency(f, series, lim)
    if present(series).any():
        found += (_check_domain if f.categorical else _check_range)(f, series, lim)
        reference = baseline[f.name] if baseline is not None and f.name in baseline else None
        comparison = "schema" if reference is None else "baseline"
        found += _compare(f, distance(f, series, reference), lim[f.metric], comparison, measured)
    return found


def _comparators(schema, df, other, attribute, comparison, measured) -> list[dict]:
    """Skew (``df`` is training, ``other`` serving) or drift (``other`` is the previous span):
    every feature whose comparator (``skew_threshold``/``drift_threshold``) is set."""
    rows = []
    for f in schema:
        limit = getattr(f, attribute)
        if limit is None or f.name not in df or f.name not in other:
            continue
        if comparison == "skew":
            value = distance(f, other[f.name], df[f.name])
        else:
            value = distance(f, df[f.name], other[f.name])
        found = _compare(f, value, limit, comparison, measured)
        rows += [{"feature": f.name, "anomaly": a, "detail": d} for a, d in found]
    return rows


def validate(
    df: pd.DataFrame,
    schema: Schema,
    baseline: pd.DataFrame | None = None,
    thresholds: Mapping[str, Any] | None = None,
    environment: str | None = None,
    previous: pd.DataFrame | None = None,
    serving: pd.DataFrame | None = None,
) -> Anomalies:
    """Check ``df`` (serving data, a new batch) against ``schema`` learnt from training data.

    ``baseline``: the data to compare distributions with; by default the training distribution
    stored in the schema, or pass e.g. yesterday's serving data. ``thresholds``: ``{feature:
    distance}`` or ``{feature: {check: value}}`` per feature, or ``{check: value}`` for all
    (checks: the keys of :data:`DEFAULT_THRESHOLDS`); ``None`` turns a check off.
    ``environment`` (e.g. ``"SERVING"``): features ``not_in_environment`` it need not hold.
    ``previous`` / ``serving``: the previous span (drift) / serving data (skew, ``df`` being
    training data), compared for the features whose ``drift_threshold`` / ``skew_threshold``
    the schema sets (TFDV's ``previous_statistics`` / ``serving_statistics``).
    """
    check_frame(df)
    if not isinstance(schema, Schema):
        raise TypeError(f"schema must be a prodml.validation.Schema, got {type(schema).__name__}")
    schema.check()
    for other, what in ((baseline, "baseline"), (previous, "previous"), (serving, "serving")):
        if other is not None:
            check_frame(other, what)
    limits = _thresholds(schema, thresholds)
    columns = {str(c): c for c in df.columns}
    rows = [
        {"feature": name, "anomaly": "unexpected feature", "detail": "column is not in the schema"}
        for name in sorted(set(columns) - set(schema.features))
    ]
    expected, measured = {f.name for f in schema.expected(environment)}, []
    for f in schema:
        if f.name not in columns:
            if f.name in expected:
                detail = f"expected in {f.presence:.0%} of examples" + (
                    f" ({environment})" if environment else ""
                )
                rows.append({"feature": f.name, "anomaly": "missing feature", "detail": detail})
            continue
        found = _check_feature(f, df[columns[f.name]], limits[f.name], baseline, measured)
        rows += [{"feature": f.name, "anomaly": a, "detail": d} for a, d in found]
    if serving is not None:
        rows += _comparators(schema, df, serving, "skew_threshold", "skew", measured)
    if previous is not None:
        rows += _comparators(schema, df, previous, "drift_threshold", "drift", measured)
    return Anomalies(rows, pd.DataFrame(measured, columns=DISTANCE_COLUMNS))
