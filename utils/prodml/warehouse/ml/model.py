"""A trained model: what it stores, how it scores rows, and its BigQuery REST resource.

The model is the fitted scikit-learn estimator plus what BigQuery ML keeps beside it: the
options, the label and its classes, the features' preprocessing (:mod:`.features`), the frozen
``TRANSFORM`` (:mod:`.preprocess`), ML.TRAINING_INFO's iterations and the evaluation metrics
computed at training. :meth:`Model.to_record` / :meth:`Model.from_record` turn it into the catalog
row (a JSON document and the pickled estimator).
"""

from __future__ import annotations

import hashlib
import json
import pickle
from dataclasses import asdict, dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from prodml.warehouse.ml import features as feats
from prodml.warehouse.ml import metrics, train
from prodml.warehouse.ml.errors import InvalidQuery
from prodml.warehouse.ml.options import TrainingOptions
from prodml.warehouse.ml.parse import ModelName

REST_TYPES = {"LINEAR_REG": "LINEAR_REGRESSION", "LOGISTIC_REG": "LOGISTIC_REGRESSION"}
_CAMEL = {
    "mean_absolute_error": "meanAbsoluteError",
    "mean_squared_error": "meanSquaredError",
    "mean_squared_log_error": "meanSquaredLogError",
    "median_absolute_error": "medianAbsoluteError",
    "r2_score": "rSquared",
    "explained_variance": "explainedVariance",
    "precision": "precision",
    "recall": "recall",
    "accuracy": "accuracy",
    "f1_score": "f1Score",
    "log_loss": "logLoss",
    "roc_auc": "rocAuc",
}


@dataclass
class Model:
    """A trained BigQuery ML model (LINEAR_REG or LOGISTIC_REG)."""

    name: ModelName
    options: TrainingOptions
    label_type: str  # Arrow type alias of the label column ("double", "string", "bool"...)
    features: list[feats.Feature]
    estimator: object
    strategy: str
    iterations: list[dict]
    evaluation: dict
    classes: list | None = None  # a classifier's labels, sorted; the positive class last
    transform: list[str] | None = None  # frozen TRANSFORM items (BigQuery SQL)
    transform_sql: list | None = None  # (name, SQL as written) of each TRANSFORM item
    input_columns: list[tuple[str, str]] = field(default_factory=list)  # (name, BigQuery type)
    created_ms: int = 0
    modified_ms: int = 0
    split_rows: dict = field(default_factory=dict)  # {"training": n, "evaluation": m}
    about: dict = field(default_factory=dict)  # models.patch: description, friendlyName, labels

    @property
    def classifier(self) -> bool:
        return self.options.model_type == "LOGISTIC_REG"

    @property
    def label(self) -> str:
        return self.options.label

    # -- scoring ---------------------------------------------------------------------------

    def design(self, table: pa.Table):
        """The design matrix of an input table (its columns named as the model's inputs)."""
        return feats.encode(self.features, feats.flatten(table), table.num_rows)

    def score(self, table: pa.Table) -> np.ndarray:
        """Predictions (regression) or class probabilities (rows x classes)."""
        return train.outputs(self.estimator, self.design(table), self.classifier)

    def evaluate(self, table: pa.Table, label: pa.ChunkedArray, threshold: float = 0.5) -> dict:
        """ML.EVALUATE's metrics on input rows (the label column given apart)."""
        return self.metrics(
            self.design(table),
            self.label_codes(label) if self.classifier else feats.numbers(label),
            threshold,
        )

    def metrics(self, x, y: np.ndarray, threshold: float = 0.5) -> dict:
        """The metrics of a design matrix and its labels (class indices for a classifier)."""
        scores = train.outputs(self.estimator, x, self.classifier)
        if self.classifier:
            return metrics.classification(y, scores, threshold)
        return metrics.regression(y, scores)

    def label_codes(self, column: pa.ChunkedArray) -> np.ndarray:
        """A classifier's label column as class indices; -1 for a label it never saw."""
        classes = pa.array(self.classes, pa.type_for_alias(self.label_type))
        codes = pc.index_in(pc.cast(column, classes.type), value_set=classes)
        return pc.fill_null(codes, -1).to_numpy().astype(np.int64)

    def predicted_labels(self, probs: np.ndarray, threshold: float = 0.5) -> pa.Array:
        """The predicted class of each row (binary: the positive class above ``threshold``)."""
        if probs.shape[1] == 2:
            picks = (probs[:, 1] > threshold).astype(np.int64)
        else:
            picks = probs.argmax(axis=1)
        classes = pa.array(self.classes, pa.type_for_alias(self.label_type))
        return classes.take(pa.array(picks))

    def probabilities(self, probs: np.ndarray) -> pa.Array:
        """ARRAY<STRUCT<label, prob>> of each row, the classes in the model's order."""
        rows, count = probs.shape
        classes = pa.array(self.classes, pa.type_for_alias(self.label_type))
        labels = classes.take(pa.array(np.tile(np.arange(count), rows)))
        values = pa.StructArray.from_arrays([labels, pa.array(probs.ravel())], ["label", "prob"])
        offsets = pa.array(np.arange(0, rows * count + 1, count, dtype=np.int32))
        return pa.ListArray.from_arrays(offsets, values)

    # -- storage ---------------------------------------------------------------------------

    def to_record(self) -> tuple[str, bytes]:
        """The catalog row: a JSON document and the pickled estimator."""
        document = {
            "options": asdict(self.options),
            "label_type": self.label_type,
            "features": [f.to_dict() for f in self.features],
            "strategy": self.strategy,
            "iterations": self.iterations,
            "evaluation": self.evaluation,
            "classes": self.classes,
            "transform": self.transform,
            "transform_sql": self.transform_sql,
            "input_columns": self.input_columns,
            "split_rows": self.split_rows,
            "about": self.about,
        }
        return json.dumps(document), pickle.dumps(self.estimator)

    @classmethod
    def from_record(
        cls, name: ModelName, document: str, blob: bytes, created: int, modified: int
    ) -> Model:
        """A model back from its catalog row."""
        data = json.loads(document)
        return cls(
            name=name,
            options=TrainingOptions(**data["options"]),
            label_type=data["label_type"],
            features=[feats.Feature(**f) for f in data["features"]],
            estimator=pickle.loads(blob),  # our own catalog's bytes, written by to_record
            strategy=data["strategy"],
            iterations=data["iterations"],
            evaluation=data["evaluation"],
            classes=data["classes"],
            transform=data["transform"],
            transform_sql=data["transform_sql"],
            input_columns=[tuple(c) for c in data["input_columns"]],
            created_ms=created,
            modified_ms=modified,
            split_rows=data.get("split_rows", {}),
            about=data.get("about", {}),
        )

    def patch(self, body: dict) -> None:
        """``models.patch``: the fields a user may change (description, friendlyName, labels;
        a label set to None is removed), as BigQuery allows."""
        fixed = sorted(set(body) - {"description", "friendlyName", "labels", "modelReference",
                                    "etag", "modelType", "location"})  # fmt: skip
        if fixed:
            raise InvalidQuery(
                f"models.patch cannot change {', '.join(fixed)}: description, friendlyName and "
                "labels can be changed; retrain with CREATE OR REPLACE MODEL for the rest"
            )
        for key in ("description", "friendlyName"):
            if key in body:
                self.about[key] = body[key]
        if "labels" in body:
            labels = {**self.about.get("labels", {}), **(body["labels"] or {})}
            self.about["labels"] = {k: v for k, v in labels.items() if v is not None}

    # -- REST ------------------------------------------------------------------------------

    def _metrics_resource(self) -> dict:
        values = {_CAMEL[k]: v for k, v in self.evaluation.items() if v is not None}
        if not self.classifier:
            return {"regressionMetrics": values}
        key = (
            "binaryClassificationMetrics"
            if len(self.classes) == 2
            else "multiClassClassificationMetrics"
        )
        return {key: {"aggregateClassificationMetrics": values | {"threshold": 0.5}}}

    def _label_type(self) -> str:
        if not self.classifier:
            return "FLOAT64"
        names = {"bool": "BOOL", "string": "STRING", "int64": "INT64", "double": "FLOAT64"}
        return names.get(self.label_type, "STRING")

    def resource(self, location: str = "US") -> dict:
        """The model as BigQuery's REST API gives it (``models.get``)."""
        results = [
            {
                "index": row["iteration"],
                "durationMs": str(row["duration_ms"]),
                "trainingLoss": row["loss"],
                **({"evalLoss": row["eval_loss"]} if row["eval_loss"] is not None else {}),
                **({"learnRate": row["learning_rate"]} if row["learning_rate"] is not None else {}),
            }
            for row in self.iterations
        ]
        run = {
            "trainingOptions": self.options.rest(self.strategy),
            "startTime": _rfc3339(self.created_ms),
            "results": results,
            "evaluationMetrics": self._metrics_resource(),
        }
        resource = {
            "etag": hashlib.sha256(f"{self.name}{self.modified_ms}".encode()).hexdigest()[:16],
            "modelReference": {
                "projectId": self.name.project,
                "datasetId": self.name.dataset,
                "modelId": self.name.model_id,
            },
            "creationTime": str(self.created_ms),
            "lastModifiedTime": str(self.modified_ms),
            "modelType": REST_TYPES[self.options.model_type],
            "location": location,
            "trainingRuns": [run],
            "featureColumns": [{"name": n, "type": {"typeKind": t}} for n, t in self.input_columns],
            "labelColumns": [
                {"name": f"predicted_{self.label}", "type": {"typeKind": self._label_type()}}
            ],
        }
        resource.update({k: v for k, v in self.about.items() if v not in (None, {})})
        if self.transform_sql:
            resource["transformColumns"] = [
                {"name": n, "transformSql": s} for n, s in self.transform_sql
            ]
        return resource


def _rfc3339(ms: int) -> str:
    return np.datetime64(ms, "ms").astype("datetime64[ms]").item().strftime("%Y-%m-%dT%H:%M:%S.%fZ")


__all__ = ["Model", "REST_TYPES"]
