"""The schema: what training data says each feature looks like, and the edits a reviewer makes.

TFDV's workflow, name for name: :func:`infer_schema` (``tfdv.infer_schema``), then curate the
schema by editing its features (``tfdv.get_feature(schema, name)`` -> ``schema[name]``), then
freeze it to a file (``tfdv.write_schema_text`` -> :meth:`Schema.freeze`) that later data is
validated against (``tfdv.load_schema_text`` -> :meth:`Schema.load`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import pandas as pd

from prodml.validation.distances import histogram
from prodml.validation.values import (
    CATEGORICAL,
    NUMERIC,
    TYPES,
    categorical,
    check_frame,
    column_type,
    numeric,
    present,
    valency,
)

__all__ = ["Feature", "Schema", "infer_schema"]

TRAINING, SERVING = "TRAINING", "SERVING"  # TFDV's usual environment names


@dataclass
class Feature:
    """What training data says about one feature, and the constraints a reviewer set.

    Learnt by :func:`infer_schema`: ``type``, ``presence`` (fraction of training examples holding
    it), ``min_values``/``max_values`` (values per example), ``domain`` (categorical) or
    ``min``/``max`` (numeric), and the training distribution (``value_counts`` or ``histogram``).

    Set by a reviewer (TFDV's field in brackets):

    - ``min_fraction`` (``presence.min_fraction``): the fraction of examples that must hold the
      feature; None: the presence may drop by at most the ``presence_drop`` threshold.
    - ``min_domain_mass`` (``distribution_constraints.min_domain_mass``): the share of values
      that must lie in the domain (1.0: all of them).
    - ``not_in_environment`` (``not_in_environment``): environments whose data need not hold it.
    - ``skew_threshold`` / ``drift_threshold`` (``skew_comparator`` / ``drift_comparator``, their
      ``infinity_norm`` for categorical and ``jensen_shannon_divergence`` for numeric features):
      the largest distance allowed between training and serving data, and between this span
      and the previous one. None: that comparison is not made.
    """

    name: str
    type: str
    presence: float
    min_values: int = 1
    max_values: int = 1
    domain: list[str] | None = None
    min: float | None = None
    max: float | None = None
    value_counts: dict[str, float] | None = None
    histogram: dict[str, list[float]] | None = None
    #: compared by domain and L-infinity distance (strings, bools, and numbers named in
    #: ``infer_schema(categorical=...)``, which keep their own ``type``); None: from the type
    categorical: bool | None = None
    min_fraction: float | None = None
    min_domain_mass: float = 1.0
    not_in_environment: list[str] = field(default_factory=list)
    skew_threshold: float | None = None
    drift_threshold: float | None = None

    def __post_init__(self):
        if self.categorical is None:
            self.categorical = self.type in CATEGORICAL

    @property
    def metric(self) -> str:
        """The distance this feature is compared with: ``l_infinity`` or ``jensen_shannon``."""
        return "l_infinity" if self.categorical else "jensen_shannon"

    def problems(self, environments: list[str]) -> list[str]:
        """What is incoherent in this feature's definition (empty when it can be validated)."""
        found = []
        if self.type not in TYPES:
            found.append(f"type {self.type!r} is not one of {TYPES}")
        if self.categorical and self.type in NUMERIC and self.domain is None:
            found.append("a categorical number needs a domain")
        if self.type in CATEGORICAL and not self.categorical:
            found.append(f"a {self.type} feature must be categorical")
        for name in ("presence", "min_fraction", "min_domain_mass"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                found.append(f"{name} must be in [0, 1], got {value!r}")
        for name in ("skew_threshold", "drift_threshold"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int | float) or value < 0):
                found.append(f"{name} must be a number >= 0 or None, got {value!r}")
        if self.min is not None and self.max is not None and self.min > self.max:
            found.append(f"range [{self.min}, {self.max}] is empty")
        unknown = sorted(set(self.not_in_environment) - set(environments))
        if unknown:
            found.append(f"not_in_environment names {unknown}, not in the schema's {environments}")
        return found


@dataclass
class Schema:
    """Features expected in new data, as :func:`infer_schema` learnt them and a reviewer edited
    them. ``environments`` (TFDV's ``default_environment``) names the kinds of data validated
    against it, e.g. ``["TRAINING", "SERVING"]``."""

    features: dict[str, Feature] = field(default_factory=dict)
    environments: list[str] = field(default_factory=list)

    def __getitem__(self, name: str) -> Feature:
        """The feature to read or edit (TFDV's ``tfdv.get_feature(schema, name)``)."""
        try:
            return self.features[name]
        except KeyError:
            raise KeyError(
                f"no feature {name!r} in the schema; it has {list(self.features)}"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self.features

    def __iter__(self):
        return iter(self.features.values())

    def __len__(self) -> int:
        return len(self.features)

    def expected(self, environment: str | None) -> list[Feature]:
        """The features data of ``environment`` must hold (all of them when it is None)."""
        if environment is None:
            return list(self)
        if environment not in self.environments:
            raise ValueError(
                f"environment {environment!r} is not one of the schema's environments "
                f"{self.environments}: add it to schema.environments first"
            )
        return [f for f in self if environment not in f.not_in_environment]

    def check(self) -> Schema:
        """The schema itself if every feature is coherent; else a ValueError naming each problem."""
        problems = [f"{f.name}: {p}" for f in self for p in f.problems(self.environments)]
        if problems:
            raise ValueError("the schema is not valid:\n  " + "\n  ".join(problems))
        return self

    def to_frame(self) -> pd.DataFrame:
        """The schema as a table (TFDV's ``display_schema``), with the reviewer's constraints."""
        rows = []
        for f in self:
            if f.categorical:
                domain = ", ".join(f.domain or [])
            else:
                domain = f"[{f.min:g}, {f.max:g}]" if f.min is not None else ""
            kind = f.type + (" (categorical)" if f.categorical and f.type in NUMERIC else "")
            rows.append(
                {
                    "feature": f.name,
                    "type": kind,
                    "presence": round(f.presence, 4),
                    "min_fraction": f.min_fraction,
                    "values": f"{f.min_values}..{f.max_values}"
                    if f.min_values != f.max_values
                    else str(f.min_values),
                    "domain or range": domain,
                    "min_domain_mass": f.min_domain_mass,
                    "not in": ", ".join(f.not_in_environment),
                    "skew": f.skew_threshold,
                    "drift": f.drift_threshold,
                }
            )
        return pd.DataFrame(rows).set_index("feature")

    def _repr_html_(self) -> str:
        return self.to_frame()._repr_html_()

    def to_dict(self) -> dict:
        """The schema as plain data (what :meth:`save` writes and :meth:`from_dict` reads)."""
        return {"environments": list(self.environments), "features": [asdict(f) for f in self]}

    @classmethod
    def from_dict(cls, data: Mapping) -> Schema:
        """A schema from :meth:`to_dict`'s data; a ValueError names unknown or missing fields."""
        known = {f.name for f in fields(Feature)}
        try:
            unknown = sorted({k for f in data["features"] for k in f} - known)
            if unknown:
                raise ValueError(f"unknown feature fields {unknown}")
            features = [Feature(**f) for f in data["features"]]
            environments = list(data.get("environments", []))
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"not a schema dictionary ({err})") from err
        return cls({f.name: f for f in features}, environments).check()

    def save(self, path: str | Path) -> Path:
        """Write the schema as JSON (keys sorted: the same schema gives the same bytes)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.check().to_dict(), indent=1, sort_keys=True) + "\n")
        return path

    freeze = save  # TFDV's write_schema_text: the reviewed schema, kept as a file

    @classmethod
    def load(cls, path: str | Path) -> Schema:
        """A schema from a file :meth:`save` wrote (TFDV's ``load_schema_text``)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no schema file at {path}")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not a schema file: {err}") from err
        return cls.from_dict(data)


def infer_schema(
    df: pd.DataFrame, categorical: Iterable[str] = (), environments: Iterable[str] = ()
) -> Schema:
    """Learn a :class:`Schema` from training data (TFDV's ``infer_schema``).

    ``categorical`` names numeric columns to treat as categories (their domain and L-infinity
    distance instead of range and Jensen-Shannon). ``environments`` sets the schema's
    environments (TFDV's ``default_environment``).
    """
    check_frame(df)
    categorical = set(categorical)
    unknown = sorted(categorical - {str(c) for c in df.columns})
    if unknown:
        raise ValueError(f"categorical names columns that are not in df: {unknown}")
    features = {}
    for name in df.columns:
        feature = _infer_feature(str(name), df[name], str(name) in categorical)
        features[feature.name] = feature
    return Schema(features, list(environments))


def _infer_feature(name: str, series: pd.Series, as_category: bool) -> Feature:
    kind = column_type(series)
    if kind not in TYPES:
        raise ValueError(
            f"column {name!r} holds {kind} values; supported types are {', '.join(TYPES)}"
        )
    counts = valency(series)
    feature = Feature(
        name=name,
        type=kind,  # the values' own type, which validate() checks new data against
        categorical=kind in CATEGORICAL or as_category,
        presence=float(present(series).mean()),
        min_values=int(counts.min()) if len(counts) else 1,
        max_values=int(counts.max()) if len(counts) else 1,
    )
    if feature.categorical:
        freq = categorical(series).value_counts(normalize=True)
        feature.domain = sorted(freq.index)
        feature.value_counts = {str(k): float(v) for k, v in freq.items()}
    else:
        values = numeric(series)
        if values.size:
            feature.min, feature.max = float(values.min()), float(values.max())
            feature.histogram = histogram(values)
    return feature
