"""BigQuery ML's automatic preprocessing: Arrow columns in, a design matrix out.

As BigQuery documents it for linear and logistic regression:

* numeric columns (INT64, NUMERIC, FLOAT64) are standardized, ``(x - mean) / stddev`` (the
  sample standard deviation; a constant column gives 0), NULL replaced by the mean;
* BOOL and STRING (and DATE, DATETIME, TIME) columns are one-hot encoded, one feature per value
  seen in training, NULL its own category when training saw one; a value not seen in training
  gets weight 0 (no feature set), as BigQuery's "previously unseen data is assigned a weight of 0";
* a STRUCT column is expanded into its fields, named ``<struct>_<field>`` (not nested further).

The statistics are fitted on the training rows. Nothing makes a Python object per row: numbers
go from Arrow to NumPy, and categories are Arrow dictionary codes looked up against the
vocabulary (``pyarrow.compute.index_in``). The design is a dense NumPy array while it stays
within :data:`DENSE_CELLS`, otherwise a SciPy CSR matrix.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy import sparse

from prodml.warehouse.ml.errors import InvalidQuery

#: Largest dense design (rows x columns); a larger one is sparse (one-hot columns are).
DENSE_CELLS = 40_000_000


@dataclass
class Feature:
    """One model input after STRUCT expansion: numeric (mean, stddev) or categorical
    (vocabulary, in the order of its one-hot columns; None is the NULL category)."""

    name: str
    kind: str  # "numeric" or "categorical"
    type: str  # BigQuery's type of the column: FLOAT64, INT64, STRING, BOOL...
    mean: float | None = None
    stddev: float | None = None
    vocabulary: list = field(default_factory=list)
    info: dict = field(default_factory=dict)  # ML.FEATURE_INFO's statistics

    @property
    def width(self) -> int:
        return 1 if self.kind == "numeric" else len(self.vocabulary)

    def to_dict(self) -> dict:
        return asdict(self)


def bigquery_type(kind: pa.DataType) -> str | None:
    """BigQuery's name of an Arrow type a feature may have (None: not a feature type)."""
    checks = [
        (pa.types.is_boolean, "BOOL"),
        (pa.types.is_integer, "INT64"),
        (pa.types.is_floating, "FLOAT64"),
        (pa.types.is_decimal, "NUMERIC"),
        (lambda t: pa.types.is_string(t) or pa.types.is_large_string(t), "STRING"),
        (pa.types.is_date, "DATE"),
        (pa.types.is_time, "TIME"),
        (lambda t: pa.types.is_timestamp(t) and t.tz is None, "DATETIME"),
        (pa.types.is_null, "STRING"),
    ]
    return next((name for check, name in checks if check(kind)), None)


def flatten(table: pa.Table) -> list[tuple[str, pa.ChunkedArray]]:
    """The table's columns with STRUCT columns expanded into ``<struct>_<field>`` columns."""
    columns = []
    for name, column in zip(table.column_names, table.columns, strict=True):
        if pa.types.is_struct(column.type):
            for i, child in enumerate(column.type):
                if pa.types.is_struct(child.type):
                    raise InvalidQuery(
                        f"Nested STRUCT column {name}.{child.name} is not allowed as a feature"
                    )
                values = pc.struct_field(column, [i])
                # a NULL struct makes every field NULL
                columns.append(
                    (f"{name}_{child.name}", pc.if_else(pc.is_null(column), None, values))
                )
        else:
            columns.append((name, column))
    return columns


def _as_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_boolean(column.type):  # BigQuery's CAST(bool AS STRING): 'true' / 'false'
        return pc.if_else(column, "true", "false")
    if pa.types.is_string(column.type):
        return column
    return pc.cast(column, pa.string())


def numbers(column: pa.ChunkedArray) -> np.ndarray:
    """A numeric column as float64, NULL as NaN (no Python object per row)."""
    return pc.cast(column, pa.float64()).to_numpy()


def _numeric_info(values: np.ndarray) -> dict:
    present = values[~np.isnan(values)]
    if present.size == 0:
        return {"min": None, "max": None, "mean": None, "median": None, "stddev": None}
    return {
        "min": float(present.min()),
        "max": float(present.max()),
        "mean": float(present.mean()),
        "median": float(np.median(present)),
        "stddev": float(present.std(ddof=1)) if present.size > 1 else 0.0,
    }


def fit_feature(name: str, column: pa.ChunkedArray) -> Feature:
    """A feature's preprocessing, fitted on the training rows of its column."""
    kind = bigquery_type(column.type)
    if kind is None:
        raise InvalidQuery(
            f"Column {name} has type {column.type}, which the local warehouse's BigQuery ML "
            "does not take as a feature (numbers, BOOL, STRING, DATE, DATETIME, TIME and STRUCTs "
            "of them are taken)"
        )
    nulls = column.null_count
    if kind in ("INT64", "FLOAT64", "NUMERIC"):
        info = _numeric_info(numbers(column))
        mean = info["mean"] if info["mean"] is not None else 0.0
        return Feature(
            name, "numeric", kind, mean, info["stddev"] or 0.0, info=info | {"null_count": nulls}
        )
    text = _as_text(column)
    values = pc.unique(text).drop_null().to_pylist()  # the distinct values, not the rows
    vocabulary: list = sorted(values) + ([None] if nulls else [])
    info = {"category_count": len(values), "null_count": nulls}
    return Feature(name, "categorical", kind, vocabulary=vocabulary, info=info)


def fit_features(columns: list[tuple[str, pa.ChunkedArray]]) -> list[Feature]:
    """Every feature's preprocessing, fitted on the training rows."""
    seen: set[str] = set()
    for name, _ in columns:
        if name.lower() in seen:
            raise InvalidQuery(f"Duplicate column name {name} in the training query")
        seen.add(name.lower())
    return [fit_feature(name, column) for name, column in columns]


def _column(columns: dict[str, pa.ChunkedArray], feature: Feature, rows: int) -> pa.ChunkedArray:
    column = columns.get(feature.name.lower())
    if column is None:
        raise InvalidQuery(f"The input data has no column {feature.name}, which the model needs")
    if len(column) != rows:
        raise InvalidQuery(f"Column {feature.name} has {len(column)} rows, expected {rows}")
    given = bigquery_type(column.type)
    numeric = {"INT64", "FLOAT64", "NUMERIC"}
    same = given == feature.type or (given in numeric and feature.type in numeric)
    if not (same or pa.types.is_null(column.type)):
        raise InvalidQuery(
            f"Invalid type for column {feature.name}: the model was trained on {feature.type}, "
            f"the input has {given or column.type}"
        )
    return column


def _categorical_codes(feature: Feature, column: pa.ChunkedArray) -> np.ndarray:
    """Each row's one-hot position in the vocabulary; -1 for a value training never saw."""
    text = _as_text(column)
    vocabulary = pa.array(feature.vocabulary, pa.string())
    codes = pc.index_in(text, value_set=vocabulary, skip_nulls=False)
    return pc.fill_null(codes, -1).to_numpy().astype(np.int64)


def encode(features: list[Feature], columns: list[tuple[str, pa.ChunkedArray]], rows: int):
    """The design matrix of ``rows`` rows: numeric features standardized (NULL -> the mean),
    categorical ones one-hot (unseen -> zeros). Dense or CSR (see :data:`DENSE_CELLS`)."""
    by_name = {name.lower(): column for name, column in columns}
    width = sum(f.width for f in features)
    dense = rows * width <= DENSE_CELLS
    out = np.zeros((rows, width)) if dense else None
    blocks: list = []
    offset = 0
    for feature in features:
        column = _column(by_name, feature, rows)
        if feature.kind == "numeric":
            values = numbers(column)
            values = np.where(np.isnan(values), feature.mean, values) - feature.mean
            values = values / feature.stddev if feature.stddev else values * 0.0
            if dense:
                out[:, offset] = values
            else:
                blocks.append(sparse.csr_matrix(values.reshape(-1, 1)))
        else:
            codes = _categorical_codes(feature, column)
            known = np.flatnonzero(codes >= 0)
            if dense:
                out[known, offset + codes[known]] = 1.0
            else:
                ones = np.ones(known.size)
                blocks.append(
                    sparse.csr_matrix((ones, (known, codes[known])), shape=(rows, feature.width))
                )
        offset += feature.width
    if dense:
        return out
    return sparse.hstack(blocks, format="csr") if blocks else sparse.csr_matrix((rows, 0))


def column_names(features: list[Feature]) -> list[tuple[str, object]]:
    """``(feature, category)`` of each design column (category None for a numeric one)."""
    return [
        (f.name, category)
        for f in features
        for category in ([None] if f.kind == "numeric" else f.vocabulary)
    ]


__all__ = [
    "DENSE_CELLS",
    "Feature",
    "bigquery_type",
    "column_names",
    "encode",
    "fit_feature",
    "fit_features",
    "flatten",
    "numbers",
]
