"""The babyweight data: the course's query, its train/eval split, and its feature handling.

One mapping from natality columns to model features, used by every consumer (the trainer here,
the Beam prediction pipeline, the front-end): :func:`gender` and :func:`plurality` (defined with
the feature contract, :mod:`prodml.babyweight.contract`) turn one value into the string the
model takes, :func:`features` does a whole record (a dict, as Beam
and Flask see it) and :func:`preprocess` a whole DataFrame (as the trainer sees it), both
through those two functions. :func:`augment` adds the course's "no ultrasound" copy of the rows.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from prodml.babyweight.contract import (
    CLEAN_CONDITIONS,
    FEATURES,
    GENDERS,
    LABEL,
    MULTIPLE,
    NUMERIC_FEATURES,
    PLURALITIES,
    REQUIRED,
    TABLE,
    UNKNOWN,
    gender,
    plurality,
)

__all__ = [
    "GENDERS",
    "HASHMONTH",
    "MULTIPLE",
    "PLURALITIES",
    "SPLITS",
    "UNKNOWN",
    "augment",
    "features",
    "gender",
    "plurality",
    "preprocess",
    "query",
    "read",
    "to_dataset",
]

SPLITS = ("train", "eval")
#: The course's split: hash the (year, month) pair so that a month never lands in both splits.
HASHMONTH = "ABS(MOD(FARM_FINGERPRINT(CONCAT(CAST(year AS STRING), CAST(month AS STRING))), 4))"
_SPLIT_CONDITION = {"train": f"{HASHMONTH} < 3", "eval": f"{HASHMONTH} = 3"}


def query(split: str | None = None, limit: int | None = None, table: str = TABLE) -> str:
    """The course's query on natality (BigQuery Standard SQL), optionally one split of it.

    ``split`` is ``"train"`` (hashmonth 0, 1, 2: about 75 % of the rows), ``"eval"``
    (hashmonth 3) or ``None`` (both, with the ``hashmonth`` column). ``limit`` keeps that many
    rows, chosen by a hash of the row so the choice is the same on every run.
    """
    if split is not None and split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: choose one of {', '.join(SPLITS)} or None")
    if limit is not None and (not isinstance(limit, int | np.integer) or limit <= 0):
        raise ValueError(f"limit must be a positive integer or None, got {limit!r}")
    where = list(CLEAN_CONDITIONS)
    if split is not None:
        where.append(_SPLIT_CONDITION[split])
    sql = (
        f"SELECT\n  year,\n  month,\n  {LABEL},\n  is_male,\n  mother_age,\n  plurality,\n  gestation_weeks,\n"
        f"  {HASHMONTH} AS hashmonth\n"
        f"FROM `{table}`\n"
        f"WHERE\n  " + "\n  AND ".join(where)
    )
    if limit is not None:
        row = ", ".join(
            f"CAST({c} AS STRING)"
            for c in (
                "year",
                "month",
                LABEL,
                "is_male",
                "mother_age",
                "plurality",
                "gestation_weeks",
            )
        )
        sql += f"\nORDER BY FARM_FINGERPRINT(CONCAT({row}))\nLIMIT {int(limit)}"
    return sql


def read(split: str, limit: int | None = None, client=None, table: str = TABLE) -> pd.DataFrame:
    """Run :func:`query` for one split through the warehouse; raw natality columns."""
    if client is None:
        from prodml import warehouse

        client = warehouse.client()
    df = client.query(query(split, limit=limit, table=table)).to_dataframe()
    if df.empty:
        raise ValueError(
            f"the {split} split of {table} is empty: load the natality table first "
            "(prodml.datasets.natality.load())"
        )
    return df


def features(record: Mapping) -> dict:
    """One record (raw natality or a form's values) -> the model's four features.

    ``record`` needs ``mother_age``, ``plurality`` and ``gestation_weeks``; ``is_male`` may be
    missing or None (unknown). Other keys (the label, a key) are kept as they are.
    """
    missing = [f for f in REQUIRED if f not in record]
    if missing:
        raise ValueError(f"record is missing feature(s) {missing}; it has {sorted(record)}")
    out = dict(record)
    is_male = record.get("is_male")
    out["is_male"] = gender(is_male)
    out["plurality"] = plurality(record["plurality"], is_male)
    out["mother_age"] = float(record["mother_age"])
    out["gestation_weeks"] = float(record["gestation_weeks"])
    return out


def preprocess(df: pd.DataFrame, augment_rows: bool = False) -> pd.DataFrame:
    """Raw natality rows -> model features (strings and float32), with the same mapping as
    :func:`features`; with ``augment_rows`` the :func:`augment` copy is appended."""
    missing = [c for c in FEATURES if c not in df.columns]
    if missing:
        raise ValueError(f"DataFrame is missing column(s) {missing}; it has {list(df.columns)}")
    out = df.copy()
    out["is_male"] = df["is_male"].astype(object).map(gender)
    out["plurality"] = [
        plurality(p, m) for p, m in zip(df["plurality"], df["is_male"], strict=True)
    ]
    for column in NUMERIC_FEATURES:
        out[column] = df[column].astype("float32")
    if LABEL in out.columns:
        out[LABEL] = df[LABEL].astype("float32")
    return augment(out) if augment_rows else out


def augment(df: pd.DataFrame) -> pd.DataFrame:
    """The course's augmentation: append a copy of the rows as seen without an ultrasound,
    is_male 'Unknown' and any plurality above 1 as 'Multiple(2+)'. Takes preprocessed rows."""
    unknown = df.copy()
    unknown["is_male"] = UNKNOWN
    unknown.loc[unknown["plurality"] != PLURALITIES[0], "plurality"] = MULTIPLE
    return pd.concat([df, unknown], ignore_index=True)


def to_dataset(
    df: pd.DataFrame,
    batch_size: int = 512,
    shuffle: bool = False,
    seed: int | None = None,
    repeat: bool = False,
):
    """A batched ``tf.data.Dataset`` of (features dict, label) from preprocessed rows; just the
    features dict when the DataFrame has no label column."""
    import tensorflow as tf

    columns = {
        "is_male": tf.constant(df["is_male"].to_numpy(dtype=str), dtype=tf.string),
        "plurality": tf.constant(df["plurality"].to_numpy(dtype=str), dtype=tf.string),
        "mother_age": tf.constant(df["mother_age"].to_numpy(dtype="float32")),
        "gestation_weeks": tf.constant(df["gestation_weeks"].to_numpy(dtype="float32")),
    }
    if LABEL in df.columns:
        ds = tf.data.Dataset.from_tensor_slices((columns, df[LABEL].to_numpy(dtype="float32")))
    else:
        ds = tf.data.Dataset.from_tensor_slices(columns)
    if shuffle:
        ds = ds.shuffle(min(len(df), 100_000), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
