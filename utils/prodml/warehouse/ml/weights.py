"""ML.WEIGHTS: a linear or logistic model's weights, per input and per category.

Numeric inputs have one ``weight``; one-hot inputs have ``category_weights`` (an array of
``STRUCT<category, weight>``, the NULL category's name NULL); ``__INTERCEPT__`` comes last.
Without ``STRUCT(TRUE AS standardize)`` the weights are for the inputs as given (BigQuery's
default): a standardized input's weight ``w`` becomes ``w / stddev`` and the intercept absorbs
``- w * mean / stddev``; with it, they are the weights of the standardized inputs the model
multiplies. A multiclass model has one row per class and input, named in ``class_label``.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from prodml.warehouse.ml.train import coefficients

INTERCEPT = "__INTERCEPT__"
_CATEGORY = pa.list_(pa.struct([("category", pa.string()), ("weight", pa.float64())]))


def _rows_for_output(model, weights: np.ndarray, intercept: float, standardize: bool) -> list:
    rows, offset = [], 0
    for feature in model.features:
        block = weights[offset : offset + feature.width]
        offset += feature.width
        if feature.kind == "numeric":
            weight = float(block[0])
            if not standardize:
                weight = weight / feature.stddev if feature.stddev else 0.0
                intercept -= weight * feature.mean
            rows.append((feature.name, weight, []))
        else:
            pairs = [
                {"category": c, "weight": float(w)}
                for c, w in zip(feature.vocabulary, block, strict=True)
            ]
            rows.append((feature.name, None, pairs))
    rows.append((INTERCEPT, float(intercept), []))
    return rows


def weights_table(model, standardize: bool = False) -> pa.Table:
    """The ML.WEIGHTS answer of a model."""
    weights, intercepts = coefficients(model.estimator)
    multiclass = model.classifier and len(model.classes) > 2
    rows, labels = [], []
    for k in range(weights.shape[1]):
        part = _rows_for_output(model, weights[:, k], float(intercepts[k]), standardize)
        rows += part
        labels += [model.classes[k]] * len(part) if multiclass else []
    table = {
        "processed_input": pa.array([r[0] for r in rows], pa.string()),
        "weight": pa.array([r[1] for r in rows], pa.float64()),
        "category_weights": pa.array([r[2] for r in rows], _CATEGORY),
    }
    if multiclass:
        table["class_label"] = pa.array(labels, pa.type_for_alias(model.label_type))
    return pa.table(table)


__all__ = ["INTERCEPT", "weights_table"]
