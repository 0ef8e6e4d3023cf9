"""Training: BigQuery ML's data split and optimizers, mapped onto scikit-learn's estimators.

The objective minimised is the sum over the training rows of the loss (squared error for
LINEAR_REG, log loss for LOGISTIC_REG; multiclass is the multinomial softmax) plus
``l1_reg * |w|_1 + l2_reg * |w|^2`` (the intercept is not penalised). Each strategy is one
scikit-learn estimator, parameterised to minimise exactly that:

=================================================  ======================================  ==========================
BigQuery                                           scikit-learn                            one BigQuery iteration
=================================================  ======================================  ==========================
NORMAL_EQUATION (LINEAR_REG)                       LinearRegression, or Ridge when l2_reg  the closed-form solve
BATCH_GRADIENT_DESCENT, LINE_SEARCH                TweedieRegressor(power=0) /             one L-BFGS iteration from the
                                                   LogisticRegression, lbfgs               last weights: a gradient step
                                                                                           with a line search
BATCH_GRADIENT_DESCENT, CONSTANT                   MLPRegressor / MLPClassifier without    one full-batch gradient step
                                                   hidden layers, solver sgd               of ``learn_rate``
l1_reg > 0                                         ElasticNet / LogisticRegression, saga   one sweep (epoch) of the solver
=================================================  ======================================  ==========================

AUTO_STRATEGY is BigQuery's rule: NORMAL_EQUATION for LINEAR_REG unless l1_reg is set, the
design has more than 10,000 columns, or fewer than 10 training rows per column; otherwise
BATCH_GRADIENT_DESCENT. Iterative training stops after ``max_iterations``, or (``early_stop``)
after the first iteration whose relative improvement of the training loss is below
``min_rel_progress``. ``learning_rate`` in ML.TRAINING_INFO is ``learn_rate`` (CONSTANT), the step
the line search took along the gradient of the mean loss (LINE_SEARCH), or NULL.

Data split (BigQuery's): AUTO_SPLIT evaluates on nothing below 500 rows, on a random 20 % up to
50,000 rows and on 10,000 random rows above; RANDOM on ``data_split_eval_fraction`` of the rows;
CUSTOM on the rows whose BOOL ``data_split_col`` is TRUE; NO_SPLIT on the training rows.
Random splits are seeded, so the same rows in the same order give the same model.
"""

from __future__ import annotations

import inspect
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import (
    ElasticNet,
    LinearRegression,
    LogisticRegression,
    Ridge,
    TweedieRegressor,
)
from sklearn.neural_network import MLPClassifier, MLPRegressor

from prodml.warehouse.ml.errors import InvalidQuery
from prodml.warehouse.ml.options import TrainingOptions

SEED = 0
MAX_CARDINALITY = 10_000


def split(rows: int, options: TrainingOptions, custom: np.ndarray | None = None):
    """``(training row indices, evaluation row indices or None)`` by the split method."""
    method = options.data_split_method
    everything = np.arange(rows)
    if method == "NO_SPLIT" or (method == "AUTO_SPLIT" and rows < 500):
        return everything, None
    if method == "CUSTOM":
        return np.flatnonzero(~custom), np.flatnonzero(custom)
    if method == "AUTO_SPLIT":
        held_out = round(rows * 0.2) if rows <= 50_000 else 10_000
    else:
        held_out = round(rows * options.data_split_eval_fraction)
    order = np.random.default_rng(SEED).permutation(rows)
    evaluation = np.sort(order[:held_out])
    training = np.sort(order[held_out:])
    if training.size == 0 or evaluation.size == 0:
        raise InvalidQuery(
            f"The {method} data split of {rows} rows leaves no training or no evaluation rows"
        )
    return training, evaluation


def strategy(options: TrainingOptions, width: int, rows: int) -> str:
    """NORMAL_EQUATION or BATCH_GRADIENT_DESCENT, by BigQuery's AUTO_STRATEGY rule."""
    if options.optimize_strategy != "AUTO_STRATEGY":
        return options.optimize_strategy
    if options.model_type != "LINEAR_REG" or options.l1_reg > 0:
        return "BATCH_GRADIENT_DESCENT"
    if width > MAX_CARDINALITY or rows < 10 * width:
        return "BATCH_GRADIENT_DESCENT"
    return "NORMAL_EQUATION"


# scikit-learn 1.8 deprecated LogisticRegression's `penalty` (C and l1_ratio say it all)
_PENALTY_DEPRECATED = (
    inspect.signature(LogisticRegression).parameters["penalty"].default == "deprecated"
)


def _logistic(options: TrainingOptions, solver: str) -> LogisticRegression:
    l1, l2 = options.l1_reg, options.l2_reg
    settings = {
        "solver": solver,
        "warm_start": True,
        "max_iter": 1,
        "tol": 0.0,
        "random_state": SEED,
    }
    if l1 + l2 == 0:
        settings |= {"C": np.inf} if _PENALTY_DEPRECATED else {"penalty": None}
    else:
        settings |= {"C": 1.0 / (l1 + 2 * l2)}
        if l1 > 0 or _PENALTY_DEPRECATED:
            settings |= {"l1_ratio": l1 / (l1 + 2 * l2)}
        settings |= {} if _PENALTY_DEPRECATED else {"penalty": "elasticnet" if l1 else "l2"}
    return LogisticRegression(**settings)


def estimator(options: TrainingOptions, method: str, rows: int):
    """The scikit-learn estimator for a model type, strategy and number of training rows."""
    classifier = options.model_type == "LOGISTIC_REG"
    l1, l2 = options.l1_reg, options.l2_reg
    if method == "NORMAL_EQUATION":
        return Ridge(alpha=l2, solver="auto") if l2 > 0 else LinearRegression()
    if options.learn_rate_strategy == "CONSTANT":
        kind = MLPClassifier if classifier else MLPRegressor
        return kind(
            hidden_layer_sizes=(), solver="sgd", learning_rate="constant",
            learning_rate_init=options.learn_rate, momentum=0.0, nesterovs_momentum=False,
            batch_size=rows, shuffle=False, alpha=2 * l2 if classifier else l2,
            max_iter=1, tol=0.0, warm_start=True, random_state=SEED,
        )  # fmt: skip
    if classifier:
        return _logistic(options, "saga" if l1 > 0 else "lbfgs")
    if l1 > 0:
        alpha = (l1 / 2 + l2) / rows
        return ElasticNet(
            alpha=alpha, l1_ratio=(l1 / 2) / (l1 / 2 + l2), max_iter=1, tol=0.0, warm_start=True
        )
    return TweedieRegressor(
        power=0.0,
        link="identity",
        alpha=l2 / rows,
        solver="lbfgs",
        max_iter=1,
        tol=1e-12,
        warm_start=True,
    )


def coefficients(model) -> tuple[np.ndarray, np.ndarray]:
    """A fitted estimator's weights ``(columns x outputs)`` and intercepts ``(outputs,)``."""
    if hasattr(model, "coefs_"):
        return np.asarray(model.coefs_[0]), np.asarray(model.intercepts_[0])
    weights = np.atleast_2d(np.asarray(model.coef_, dtype=float))
    return weights.T, np.atleast_1d(np.asarray(model.intercept_, dtype=float))


def outputs(model, x, classifier: bool) -> np.ndarray:
    """Predictions (regression) or class probabilities (rows x classes), by the library."""
    if x.shape[0] == 0:
        return np.zeros((0, len(model.classes_))) if classifier else np.zeros(0)
    return model.predict_proba(x) if classifier else model.predict(x)


def loss(y: np.ndarray, predicted: np.ndarray, classifier: bool) -> float:
    """BigQuery's training loss: mean squared loss, or mean log loss."""
    if not classifier:
        return float(np.mean((y - predicted) ** 2))
    # a label the model never saw in training (-1) has probability 0, clipped like the rest
    p = np.where(y >= 0, predicted[np.arange(y.size), np.maximum(y, 0)], 0.0)
    p = np.clip(p, 1e-15, 1.0)
    return float(-np.mean(np.log(p)))


@dataclass
class Fitted:
    """A trained estimator and ML.TRAINING_INFO's rows."""

    model: object
    strategy: str
    iterations: list[dict] = field(default_factory=list)


def _residual(predicted: np.ndarray, y: np.ndarray, classifier: bool) -> np.ndarray:
    if not classifier:
        return (predicted - y).reshape(-1, 1)
    target = np.zeros_like(predicted)
    target[np.arange(y.size), y] = 1.0
    residual = predicted - target
    return residual[:, 1:] if predicted.shape[1] == 2 else residual  # binary: one logit


def _gradient_norm(x, residual: np.ndarray, weights: np.ndarray, penalty: float) -> float:
    rows = residual.shape[0]
    grad_w = np.asarray(x.T @ residual) / rows + penalty * weights
    grad_b = residual.mean(axis=0)
    return float(np.sqrt(np.sum(grad_w**2) + np.sum(grad_b**2)))


def _start(y: np.ndarray, classifier: bool) -> np.ndarray:
    """Predictions at the lbfgs estimators' starting point (zero weights; the regressor's
    intercept at the mean label), before the first iteration."""
    if not classifier:
        return np.full(y.size, y.mean())
    classes = int(y.max()) + 1
    return np.full((y.size, classes), 1.0 / classes)


def _learning_rate(model, before, x, y, previous, classifier, options) -> float | None:
    """The step a line-search iteration took: |weights change| / |gradient at the old weights|."""
    if isinstance(model, MLPRegressor | MLPClassifier):
        return options.learn_rate
    if not isinstance(model, TweedieRegressor) and not (
        isinstance(model, LogisticRegression) and model.solver == "lbfgs"
    ):
        return None
    weights, intercepts = before
    new_weights, new_intercepts = coefficients(model)
    penalty = (
        model.alpha
        if isinstance(model, TweedieRegressor)
        else (0.0 if not np.isfinite(model.C) else 1.0 / (model.C * y.size))
    )
    norm = _gradient_norm(x, _residual(previous, y, classifier), weights, penalty)
    step = np.sqrt(
        np.sum((new_weights - weights) ** 2) + np.sum((new_intercepts - intercepts) ** 2)
    )
    return float(step / norm) if norm > 0 else 0.0


def _zero_weights(x, y, classifier: bool):
    classes = int(y.max()) + 1 if classifier else 1
    outputs_ = 1 if classes <= 2 else classes
    intercept = np.zeros(outputs_) if classifier else np.array([y.mean()])
    return np.zeros((x.shape[1], outputs_)), intercept


def fit(options: TrainingOptions, x, y, x_eval=None, y_eval=None) -> Fitted:
    """Train on ``(x, y)``; ``y`` is the label (regression) or class index (classification)."""
    classifier = options.model_type == "LOGISTIC_REG"
    method = strategy(options, x.shape[1], x.shape[0])
    model = estimator(options, method, x.shape[0])
    if method == "NORMAL_EQUATION" and x.shape[1] > MAX_CARDINALITY:
        raise InvalidQuery(
            f"optimize_strategy NORMAL_EQUATION supports at most {MAX_CARDINALITY:,} feature columns, the data has {x.shape[1]:,}"
        )
    iterations = 1 if method == "NORMAL_EQUATION" else options.max_iterations
    fitted = Fitted(model, method)
    previous = _start(y, classifier)
    before = _zero_weights(x, y, classifier)
    last_loss = None
    for iteration in range(iterations):
        began = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(x, y)
        elapsed = time.perf_counter() - began
        predicted = outputs(model, x, classifier)
        row = {
            "iteration": iteration,
            "loss": loss(y, predicted, classifier),
            "eval_loss": loss(y_eval, outputs(model, x_eval, classifier), classifier)
            if x_eval is not None
            else None,
            "learning_rate": None
            if method == "NORMAL_EQUATION"
            else _learning_rate(model, before, x, y, previous, classifier, options),
            "duration_ms": int(round(elapsed * 1000)),
        }
        fitted.iterations.append(row)
        if (
            options.early_stop
            and last_loss is not None
            and last_loss - row["loss"] < options.min_rel_progress * last_loss
        ):
            break
        last_loss, previous, before = row["loss"], predicted, coefficients(model)
    return fitted


__all__ = ["Fitted", "coefficients", "estimator", "fit", "loss", "outputs", "split", "strategy"]
