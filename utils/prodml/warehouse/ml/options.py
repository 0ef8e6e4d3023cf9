"""``OPTIONS(...)`` of ``CREATE MODEL``: read, checked and defaulted as BigQuery does.

Supported (LINEAR_REG and LOGISTIC_REG): ``model_type``, ``input_label_cols`` (or ``labels``, its
2018 spelling), ``data_split_method`` (AUTO_SPLIT, RANDOM, CUSTOM, NO_SPLIT), ``data_split_eval_fraction``,
``data_split_col``, ``l1_reg``, ``l2_reg``, ``max_iterations``, ``learn_rate_strategy``,
``learn_rate``, ``early_stop``, ``min_rel_progress``, ``optimize_strategy`` and
``category_encoding_method = 'ONE_HOT_ENCODING'``, and ``model_registry = 'VERTEX_AI'`` with
``vertex_ai_model_id`` and ``vertex_ai_model_version_aliases`` (the trained model registered as a
SavedModel in the run folder's MLflow registry, the stand-in for Vertex AI Model Registry:
:mod:`.export`). Any other option BigQuery knows is refused by
name; a name BigQuery does not know is "Unknown option".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sqlglot import exp

from prodml.warehouse.ml.errors import InvalidQuery

MODEL_TYPES = ("LINEAR_REG", "LOGISTIC_REG")
# model types BigQuery trains that this engine does not
OTHER_MODEL_TYPES = {
    "KMEANS", "MATRIX_FACTORIZATION", "PCA", "AUTOENCODER", "AUTOML_CLASSIFIER",
    "AUTOML_REGRESSOR", "BOOSTED_TREE_CLASSIFIER", "BOOSTED_TREE_REGRESSOR",
    "RANDOM_FOREST_CLASSIFIER", "RANDOM_FOREST_REGRESSOR", "DNN_CLASSIFIER", "DNN_REGRESSOR",
    "DNN_LINEAR_COMBINED_CLASSIFIER", "DNN_LINEAR_COMBINED_REGRESSOR", "ARIMA_PLUS",
    "ARIMA_PLUS_XREG", "TENSORFLOW", "TENSORFLOW_LITE", "ONNX", "XGBOOST", "CONTRIBUTION_ANALYSIS",
    "TRANSFORM_ONLY",
}  # fmt: skip
# options BigQuery accepts (for some model type) that this engine does not run
OTHER_OPTIONS = {
    "ls_init_learn_rate", "warm_start", "auto_class_weights", "class_weights",
    "calculate_p_values", "fit_intercept", "enable_global_explain", "kms_key_name", "num_trials",
    "max_parallel_trials", "hparam_tuning_algorithm", "hparam_tuning_objectives", "budget_hours",
    "num_clusters", "kmeans_init_method", "kmeans_init_col", "distance_type",
    "standardize_features", "model_path", "feedback_type", "num_factors", "user_col", "item_col",
    "rating_col", "wals_alpha", "time_series_timestamp_col", "time_series_data_col",
    "time_series_id_col", "horizon", "auto_arima", "hidden_units", "activation_fn", "batch_size",
    "dropout", "optimizer", "booster_type", "num_parallel_tree", "max_tree_depth", "subsample",
    "tree_method", "integrated_gradients_num_steps", "approx_global_feature_contrib",
    "optimization_objective", "instance_weight_col", "xgboost_version", "remote_service_type",
    "endpoint", "input_image_format", "max_time_series_length",
}  # fmt: skip
SPLIT_METHODS = ("AUTO_SPLIT", "RANDOM", "CUSTOM", "NO_SPLIT")
STRATEGIES = ("AUTO_STRATEGY", "BATCH_GRADIENT_DESCENT", "NORMAL_EQUATION")
LEARN_RATE_STRATEGIES = ("LINE_SEARCH", "CONSTANT")
REGISTRIES = ("VERTEX_AI",)
# Vertex AI's model ids and version aliases (MLflow reserves 'latest'; Vertex AI 'default')
_VERTEX_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_VERTEX_ALIAS = re.compile(r"^[a-z][a-z0-9-]{0,127}$")
_RESERVED = ("default", "latest")
ENGINE = "the local warehouse's BigQuery ML"


@dataclass
class TrainingOptions:
    """A model's options, BigQuery's defaults filled in."""

    model_type: str
    label: str = "label"
    data_split_method: str = "AUTO_SPLIT"
    data_split_eval_fraction: float = 0.2
    data_split_col: str | None = None
    l1_reg: float = 0.0
    l2_reg: float = 0.0
    max_iterations: int = 20
    learn_rate_strategy: str = "LINE_SEARCH"
    learn_rate: float = 0.1
    early_stop: bool = True
    min_rel_progress: float = 0.01
    optimize_strategy: str = "AUTO_STRATEGY"
    model_registry: str | None = None  # VERTEX_AI: registered at training (see .export)
    vertex_ai_model_id: str | None = None  # the registered model's name (default: the model id)
    vertex_ai_model_version_aliases: list = field(default_factory=list)
    written: dict = field(default_factory=dict)  # the options as the statement wrote them

    def rest(self, strategy: str) -> dict:
        """The REST ``trainingOptions`` of a model trained with ``strategy``."""
        options = {
            "maxIterations": str(self.max_iterations),
            "lossType": "MEAN_SQUARED_LOSS" if self.model_type == "LINEAR_REG" else "MEAN_LOG_LOSS",
            "l1Regularization": self.l1_reg,
            "l2Regularization": self.l2_reg,
            "minRelativeProgress": self.min_rel_progress,
            "earlyStop": self.early_stop,
            "inputLabelColumns": [self.label],
            "dataSplitMethod": self.data_split_method,
            "learnRateStrategy": self.learn_rate_strategy,
            "optimizationStrategy": strategy,
        }
        if self.data_split_method == "RANDOM":
            options["dataSplitEvalFraction"] = self.data_split_eval_fraction
        if self.data_split_col:
            options["dataSplitColumn"] = self.data_split_col
        if self.learn_rate_strategy == "CONSTANT":
            options["learnRate"] = self.learn_rate
        return options


def literal(name: str, value: exp.Expression):
    """A Python value from an option's literal (string, number, boolean, array of those)."""
    if isinstance(value, exp.Paren):
        return literal(name, value.this)
    if isinstance(value, exp.Boolean):
        return bool(value.this)
    if isinstance(value, exp.Neg) and isinstance(value.this, exp.Literal):
        return -literal(name, value.this)
    if isinstance(value, exp.Literal):
        if value.is_string:
            return value.this
        number = float(value.this)
        return int(number) if number.is_integer() and "." not in value.this else number
    if isinstance(value, exp.Array):
        return [literal(name, v) for v in value.expressions]
    raise InvalidQuery(
        f"Invalid value for option {name}: expected a literal, got {value.sql('bigquery')}"
    )


def _typed(name: str, value, kind: type):
    ok = isinstance(value, kind) and not (kind in (int, float) and isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not ok:
        names = {str: "STRING", float: "FLOAT64", int: "INT64", bool: "BOOL", list: "ARRAY"}
        raise InvalidQuery(
            f"Invalid value for option {name}: expected {names[kind]}, got {value!r}"
        )
    return value


def _choice(name: str, value, choices: tuple[str, ...]) -> str:
    text = _typed(name, value, str).upper()
    if text not in choices:
        raise InvalidQuery(
            f"Invalid value {value!r} for option {name}; expected one of {', '.join(choices)}"
        )
    return text


def read_options(properties: exp.Expression | None) -> dict:
    """``OPTIONS(...)`` as ``{lowercase name: value expression}`` (a name given twice is an
    error)."""
    written: dict = {}
    for prop in properties.expressions if properties is not None else []:
        if not isinstance(prop, exp.Property) or isinstance(prop, exp.TransformModelProperty):
            continue  # TRANSFORM(...) is a property of the statement too
        name = prop.name.lower()
        if name in written:
            raise InvalidQuery(f"Duplicate option: {name}")
        written[name] = prop.args["value"]
    return written


def _model_type(written: dict) -> str:
    if "model_type" not in written:
        raise InvalidQuery("Missing required option: model_type")
    kind = _typed("model_type", written["model_type"], str).upper()
    if kind in OTHER_MODEL_TYPES:
        raise InvalidQuery(
            f"Model type {kind} is not supported by {ENGINE}, which trains LINEAR_REG and "
            "LOGISTIC_REG: train it on BigQuery itself (warehouse='bigquery')"
        )
    if kind not in MODEL_TYPES:
        raise InvalidQuery(f"Unsupported model type: {written['model_type']!r}")
    return kind


def _label(written: dict) -> str:
    if "labels" in written and "input_label_cols" in written:
        raise InvalidQuery("Options labels and input_label_cols cannot both be set")
    name = "input_label_cols" if "input_label_cols" in written else "labels"
    if name not in written:
        return "label"
    labels = _typed(name, written[name], list)
    if len(labels) != 1 or not isinstance(labels[0], str):
        raise InvalidQuery(
            f"Option {name} must name exactly one label column for LINEAR_REG and LOGISTIC_REG "
            f"models, got {labels!r}"
        )
    return labels[0]


def _refuse_unsupported(written: dict) -> None:
    """Options this engine does not run, refused by name before their values are read."""
    for name in written:
        if name in OTHER_OPTIONS:
            raise InvalidQuery(
                f"Option {name} is not supported by {ENGINE}; remove it, or run the statement "
                "on BigQuery itself (warehouse='bigquery')"
            )
        if name not in _READERS and name not in ("model_type", "labels", "input_label_cols"):
            raise InvalidQuery(f"Unknown option: {name}")


def _refuse_unsupported_values(written: dict) -> None:
    method = written.get("category_encoding_method", "ONE_HOT_ENCODING")
    if _typed("category_encoding_method", method, str).upper() != "ONE_HOT_ENCODING":
        raise InvalidQuery(
            f"category_encoding_method {method!r} is not supported by {ENGINE} (ONE_HOT_ENCODING is)"
        )
    if str(written.get("data_split_method", "")).upper() == "SEQ":
        raise InvalidQuery(f"data_split_method 'SEQ' is not supported by {ENGINE}")


def _model_id(name, value) -> str:
    text = _typed(name, value, str)
    if not _VERTEX_ID.match(text):
        raise InvalidQuery(
            f"Invalid value for option {name}: {text!r}; use letters, digits, '-' and '_' "
            "(at most 128)"
        )
    return text


def _aliases(name, value) -> list[str]:
    values = _typed(name, value, list)
    for alias in values:
        if not isinstance(alias, str) or not _VERTEX_ALIAS.match(alias) or alias in _RESERVED:
            raise InvalidQuery(
                f"Invalid alias {alias!r} in {name}: lower-case letters, digits and '-', starting "
                f"with a letter ({' and '.join(_RESERVED)} are reserved)"
            )
    return values


def _positive_fraction(name, value):
    fraction = _typed(name, value, float)
    if not 0 < fraction < 1:
        raise InvalidQuery(f"Invalid value for option {name}: {value!r} must be in (0, 1)")
    return round(fraction, 2)  # BigQuery: "accurate to two decimal places"


def _non_negative(name, value):
    number = _typed(name, value, float)
    if number < 0:
        raise InvalidQuery(f"Invalid value for option {name}: {value!r} must be >= 0")
    return number


def _positive(kind: type):
    def read(name, value):
        number = _typed(name, value, kind)
        if number <= 0:
            raise InvalidQuery(f"Invalid value for option {name}: {value!r} must be positive")
        return number

    return read


_READERS = {
    "data_split_method": lambda n, v: _choice(n, v, SPLIT_METHODS),
    "data_split_eval_fraction": _positive_fraction,
    "data_split_col": lambda n, v: _typed(n, v, str),
    "l1_reg": _non_negative,
    "l2_reg": _non_negative,
    "max_iterations": _positive(int),
    "learn_rate_strategy": lambda n, v: _choice(n, v, LEARN_RATE_STRATEGIES),
    "learn_rate": _positive(float),
    "early_stop": lambda n, v: _typed(n, v, bool),
    "min_rel_progress": _non_negative,
    "optimize_strategy": lambda n, v: _choice(n, v, STRATEGIES),
    "category_encoding_method": lambda n, v: "ONE_HOT_ENCODING",
    "model_registry": lambda n, v: _choice(n, v, REGISTRIES),
    "vertex_ai_model_id": _model_id,
    "vertex_ai_model_version_aliases": _aliases,
}


def _check_combinations(options: TrainingOptions) -> None:
    written = options.written
    method = options.data_split_method
    if "data_split_eval_fraction" in written and method != "RANDOM":
        raise InvalidQuery(
            "data_split_eval_fraction is only allowed when data_split_method is RANDOM"
        )
    if method == "CUSTOM" and not options.data_split_col:
        raise InvalidQuery("data_split_col must be set when data_split_method is CUSTOM")
    if options.data_split_col and method != "CUSTOM":
        raise InvalidQuery("data_split_col is only allowed when data_split_method is CUSTOM")
    if "learn_rate" in written and options.learn_rate_strategy != "CONSTANT":
        raise InvalidQuery("learn_rate can only be set when learn_rate_strategy is CONSTANT")
    for name in ("vertex_ai_model_id", "vertex_ai_model_version_aliases"):
        if name in written and options.model_registry is None:
            raise InvalidQuery(f"{name} can only be set when model_registry is VERTEX_AI")
    if options.optimize_strategy == "NORMAL_EQUATION":
        if options.model_type != "LINEAR_REG":
            raise InvalidQuery(
                "optimize_strategy NORMAL_EQUATION is only supported for LINEAR_REG models"
            )
        if options.l1_reg > 0:
            raise InvalidQuery("optimize_strategy NORMAL_EQUATION does not support l1_reg")
    if options.l1_reg > 0 and options.learn_rate_strategy == "CONSTANT":
        raise InvalidQuery(
            f"learn_rate_strategy CONSTANT together with l1_reg is not supported by {ENGINE} "
            "(its L1 solvers choose their own step)"
        )


def training_options(properties: exp.Expression | None) -> TrainingOptions:
    """The checked options of a ``CREATE MODEL`` statement's properties."""
    written = read_options(properties)
    _refuse_unsupported(written)
    written = {name: literal(name, value) for name, value in written.items()}
    _refuse_unsupported_values(written)
    options = TrainingOptions(
        model_type=_model_type(written), label=_label(written), written=written
    )
    for name, read in _READERS.items():
        if name in written and name != "category_encoding_method":
            setattr(options, name, read(name, written[name]))
    _check_combinations(options)
    return options


__all__ = ["MODEL_TYPES", "TrainingOptions", "literal", "read_options", "training_options"]
