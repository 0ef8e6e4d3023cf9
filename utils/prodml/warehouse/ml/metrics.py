"""ML.EVALUATE's metrics, named and computed as BigQuery names them (scikit-learn computes them).

Regression: ``mean_absolute_error``, ``mean_squared_error``, ``mean_squared_log_error`` (NULL
when a label or prediction is below -1, where the log is undefined), ``median_absolute_error``,
``r2_score``, ``explained_variance``.

Classification: ``precision``, ``recall``, ``accuracy``, ``f1_score``, ``log_loss``,
``roc_auc``. Binary models score the positive class (the second of the sorted labels: TRUE, 1,
the later string) at ``threshold`` (0.5 unless ``STRUCT(t AS threshold)`` says otherwise); for
multiclass models precision, recall, f1_score, log_loss and roc_auc are macro-averaged over the
classes (log_loss: each class's one-vs-rest log loss) and accuracy is micro-averaged, as
BigQuery's ``AggregateClassificationMetrics`` documents. A metric that is undefined (one class
only, no row) is NULL.
"""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm

REGRESSION = (
    "mean_absolute_error",
    "mean_squared_error",
    "mean_squared_log_error",
    "median_absolute_error",
    "r2_score",
    "explained_variance",
)
CLASSIFICATION = ("precision", "recall", "accuracy", "f1_score", "log_loss", "roc_auc")


def regression(y: np.ndarray, predicted: np.ndarray) -> dict:
    """The regression metrics of labels ``y`` and predictions."""
    if y.size == 0:
        return dict.fromkeys(REGRESSION)
    msle = None
    if (y > -1).all() and (predicted > -1).all():
        msle = float(np.mean((np.log1p(y) - np.log1p(predicted)) ** 2))
    return {
        "mean_absolute_error": float(skm.mean_absolute_error(y, predicted)),
        "mean_squared_error": float(skm.mean_squared_error(y, predicted)),
        "mean_squared_log_error": msle,
        "median_absolute_error": float(skm.median_absolute_error(y, predicted)),
        "r2_score": float(skm.r2_score(y, predicted)) if y.size > 1 else None,
        "explained_variance": float(skm.explained_variance_score(y, predicted))
        if y.size > 1
        else None,
    }


def _binary(y: np.ndarray, probs: np.ndarray, threshold: float) -> dict:
    positive = probs[:, 1]
    truth = y == 1
    guess = positive > threshold
    both = len(np.unique(truth)) == 2
    return {
        "precision": float(skm.precision_score(truth, guess, zero_division=0)),
        "recall": float(skm.recall_score(truth, guess, zero_division=0)),
        "accuracy": float(skm.accuracy_score(truth, guess)),
        "f1_score": float(skm.f1_score(truth, guess, zero_division=0)),
        "log_loss": float(skm.log_loss(truth, positive, labels=[False, True])),
        "roc_auc": float(skm.roc_auc_score(truth, positive)) if both else None,
    }


def _multiclass(y: np.ndarray, probs: np.ndarray) -> dict:
    classes = np.arange(probs.shape[1])
    guess = probs.argmax(axis=1)
    present = [k for k in classes if (y == k).any() and (y != k).any()]
    per_class_loss = [skm.log_loss(y == k, probs[:, k], labels=[False, True]) for k in classes]
    auc = [skm.roc_auc_score(y == k, probs[:, k]) for k in present]
    return {
        "precision": float(
            skm.precision_score(y, guess, labels=classes, average="macro", zero_division=0)
        ),
        "recall": float(
            skm.recall_score(y, guess, labels=classes, average="macro", zero_division=0)
        ),
        "accuracy": float(skm.accuracy_score(y, guess)),
        "f1_score": float(skm.f1_score(y, guess, labels=classes, average="macro", zero_division=0)),
        "log_loss": float(np.mean(per_class_loss)),
        "roc_auc": float(np.mean(auc)) if len(present) == len(classes) else None,
    }


def classification(y: np.ndarray, probs: np.ndarray, threshold: float = 0.5) -> dict:
    """The classification metrics of class indices ``y`` (-1: a label the model never saw) and
    probabilities (rows x classes)."""
    if y.size == 0:
        return dict.fromkeys(CLASSIFICATION)
    if probs.shape[1] == 2:
        return _binary(y, probs, threshold)
    return _multiclass(y, probs)


__all__ = ["CLASSIFICATION", "REGRESSION", "classification", "regression"]
