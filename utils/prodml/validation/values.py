"""What a column holds: value types, presence, values per example (plumbing of the checks)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "is_missing",
    "value_type",
    "is_list",
    "column_type",
    "flat_values",
    "value_type_counts",
    "present",
    "valency",
    "numeric",
    "categorical",
    "check_frame",
    "TYPES",
    "CATEGORICAL",
    "NUMERIC",
    "LIST_TYPES",
]

TYPES = ("int", "float", "string", "bool")
CATEGORICAL = ("string", "bool")
NUMERIC = ("int", "float")


def is_missing(value: Any) -> bool:
    """True for None, NA, NaT and float NaN."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def value_type(value: Any) -> str:
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


LIST_TYPES = (list, tuple, np.ndarray)


def is_list(value: Any) -> bool:
    """Whether ``value`` is a list-valued feature's value (a list, tuple or array)."""
    return isinstance(value, LIST_TYPES)


def _scalars(series: pd.Series) -> bool:
    """True when no cell holds a list of values (one pass of isinstance, no per-cell calls)."""
    return not any(isinstance(c, LIST_TYPES) for c in series.to_numpy(dtype=object))


def column_type(series: pd.Series) -> str:
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
    counts = value_type_counts(series)
    if not counts:
        return "string"  # an all-missing object column carries no type; strings are the default
    if set(counts) <= {"int", "float"}:
        return "float" if "float" in counts else "int"
    return max(counts, key=counts.get)


def _plain(series: pd.Series) -> bool:
    """True for a column of scalars in a typed dtype (numbers, bools, pandas strings): its
    values need no per-cell inspection, so the helpers below take a vectorised path."""
    dtype, api = series.dtype, pd.api.types
    if api.is_bool_dtype(dtype) or api.is_integer_dtype(dtype) or api.is_float_dtype(dtype):
        return True
    return api.is_string_dtype(dtype) and not api.is_object_dtype(dtype)


def flat_values(series: pd.Series) -> list:
    """Every non-missing value of the column, list cells flattened."""
    if _scalars(series):
        return series.dropna().tolist()
    values: list = []
    for cell in series:
        if is_list(cell):
            values.extend(v for v in cell if not is_missing(v))
        elif not is_missing(cell):
            values.append(cell)
    return values


def value_type_counts(series: pd.Series) -> dict[str, int]:
    """How many present values of ``series`` have each value type (TFDV's type counts)."""
    if _plain(series):
        held = int(series.notna().sum())
        return {column_type(series): held} if held else {}
    counts: dict[str, int] = {}
    for value in flat_values(series):
        kind = value_type(value)
        counts[kind] = counts.get(kind, 0) + 1
    return counts


def present(series: pd.Series) -> pd.Series:
    """True where an example holds the feature (a non-missing scalar or a non-empty list)."""
    if _plain(series) or _scalars(series):
        return series.notna().astype(bool)
    return series.map(lambda c: len(c) > 0 if is_list(c) else not is_missing(c)).astype(bool)


def valency(series: pd.Series) -> pd.Series:
    """Number of values each present example holds (1 for scalars)."""
    if _plain(series) or _scalars(series):
        return pd.Series(1, index=series.index[series.notna()], dtype=int)
    held = series[present(series)]
    return held.map(lambda c: len(c) if is_list(c) else 1).astype(int)


def numeric(series: pd.Series) -> np.ndarray:
    """The column's numeric values as float64 (other values left out)."""
    if _plain(series):
        kind = column_type(series)
        return series.dropna().to_numpy(dtype=float) if kind in NUMERIC else np.array([])
    values = flat_values(series)
    return np.asarray([float(v) for v in values if value_type(v) in NUMERIC], dtype=float)


def categorical(series: pd.Series) -> pd.Series:
    """The column's values as strings (how domains and value counts see them)."""
    if _plain(series):
        return pd.Series(series.dropna().astype(str).to_numpy(dtype=object), dtype=object)
    return pd.Series([str(v) for v in flat_values(series)], dtype=object)


def check_frame(df: Any, what: str = "df") -> pd.DataFrame:
    """``df`` itself if it is a non-empty DataFrame with unique column names; else a clear error."""
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
