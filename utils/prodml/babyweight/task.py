"""The babyweight trainer, shaped like a cloud training-job package.

    python -m prodml.babyweight.task --output-dir DIR [--train-examples N] [--eval-examples N]
        [--epochs E] [--batch-size B] [--learning-rate LR] [--rows R] [--seed S] [--smoke]
        [--experiment NAME] [--registered-model NAME] [--run-name NAME] [--no-track]

It queries the train and eval splits through the warehouse (loading the synthetic natality table
into the local one first when needed), trains the wide-and-deep model with Keras, writes
TensorBoard logs to ``DIR/tensorboard``, reports the eval RMSE beside the natality generator's
noise floor, writes ``DIR/metrics.json`` and exports a SavedModel to ``DIR/export/<version>/``.
A relative ``DIR`` is taken under the run folder. From a notebook:
``train_and_export(output_dir, ...) -> dict`` does the same; ``train(...)`` returns the model
for a notebook that writes its own export.

**Tracking** (on when MLflow is installed; ``--no-track`` or ``PRODML_TRACKING=off`` switch it
off): one MLflow run in the run folder's store (:mod:`prodml.tracking`), experiment
``babyweight``, with the parameters, the metrics of every epoch, the rows read (the query, the
row count and a content digest, as dataset inputs), the code version (git commit, package
version), the eval RMSE, and the SavedModel, registered as a new version of the model
``babyweight``. Inside an active run (a tuning sweep's parent) it is a child run.

**Vertex AI's container contract**: when these are set, ``AIP_MODEL_DIR`` receives the
SavedModel (at its root, where Vertex AI's ``Model.upload`` looks), ``AIP_CHECKPOINT_DIR`` a
weights checkpoint per epoch, ``AIP_TENSORBOARD_LOG_DIR`` the TensorBoard logs, and
``AIP_TRAINING_DATA_URI``, ``AIP_VALIDATION_DATA_URI`` and ``AIP_TEST_DATA_URI``
(``bq://project.dataset.table``, or CSV / JSON-lines files with ``*`` wildcards, as
``AIP_DATA_FORMAT`` says) replace the course's query; ``--output-dir`` is then optional.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from prodml import config, savedmodel  # noqa: E402
from prodml.babyweight import contract, data  # noqa: E402
from prodml.babyweight import model as babyweight_model  # noqa: E402
from prodml.babyweight import vertex as vertex_data  # noqa: E402

__all__ = [
    "ensure_natality",
    "read_splits",
    "train",
    "rmse",
    "noise_floor",
    "export",
    "predict_instance",
    "read_data",
    "tracked_run",
    "train_and_export",
    "main",
    "DEFAULTS",
    "SMOKE",
    "LEARNING_RATE",
    "MODEL_NAME",
    "COURSE_INSTANCE",
]

#: Defaults: reach the generator's noise floor within 10 % in a few minutes on 2 cores.
DEFAULTS = {"rows": 400_000, "epochs": 4, "batch_size": 512, "seed": 42}
#: --smoke: tiny data, one epoch; it only proves the pipeline trains and exports.
SMOKE = {"rows": 20_000, "epochs": 1, "batch_size": 256}
#: the model's own default learning rate (``model.build``)
LEARNING_RATE = 0.003
#: registered model (and experiment) the trainer logs to unless told otherwise
MODEL_NAME = "babyweight"
#: split -> the AIP_* variable naming its data, and the context MLflow records it under
_SPLIT_URIS = {
    "train": ("AIP_TRAINING_DATA_URI", "training"),
    "eval": ("AIP_VALIDATION_DATA_URI", "validation"),
    "test": ("AIP_TEST_DATA_URI", "test"),
}

#: The course's instance, as the front-end sends it (kept here for older imports).
COURSE_INSTANCE = contract.COURSE_INSTANCE


def ensure_natality(rows: int, seed: int, client=None) -> str:
    """Fill the local warehouse's natality table with ``rows`` synthetic rows (cheap when it
    already holds them); on BigQuery the public table is used as it is. Returns the table id."""
    from prodml.datasets import natality

    return natality.load(client=client, rows=rows, seed=seed)


def read_splits(
    train_examples: int | None = None, eval_examples: int | None = None, client=None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The raw train and eval rows of the course's query (split in SQL)."""
    if client is None:
        from prodml import warehouse

        client = warehouse.client()
    return (
        data.read("train", limit=train_examples, client=client),
        data.read("eval", limit=eval_examples, client=client),
    )


def train(
    train_df: pd.DataFrame,
    eval_df: pd.DataFrame,
    epochs: int = DEFAULTS["epochs"],
    batch_size: int = DEFAULTS["batch_size"],
    seed: int = DEFAULTS["seed"],
    tensorboard_dir: str | Path | None = None,
    verbose: int | str = "auto",
    learning_rate: float = LEARNING_RATE,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> tuple[keras.Model, keras.callbacks.History]:
    """Train a fresh model on raw train rows (preprocessed and augmented here), validating on
    the raw eval rows as they are (not augmented). ``callbacks`` are added to Keras's (e.g.
    MLflow's, or a checkpoint)."""
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not (isinstance(learning_rate, float | int) and 0 < learning_rate < 1):
        raise ValueError(f"learning_rate must be a number in (0, 1), got {learning_rate!r}")
    model = babyweight_model.build(seed=seed, learning_rate=float(learning_rate))
    train_ds = data.to_dataset(
        data.preprocess(train_df, augment_rows=True), batch_size, shuffle=True, seed=seed
    )
    eval_ds = data.to_dataset(data.preprocess(eval_df), batch_size)
    callbacks = list(callbacks)
    if tensorboard_dir is not None:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(tensorboard_dir), profile_batch=0))
    history = model.fit(
        train_ds,
        validation_data=eval_ds,
        epochs=int(epochs),
        callbacks=callbacks,
        shuffle=False,  # the tf.data pipeline shuffles (seeded); fit cannot shuffle a Dataset
        verbose=verbose,
    )
    return model, history


def rmse(model: keras.Model, eval_df: pd.DataFrame, batch_size: int = 4096) -> float:
    """Root mean squared error on raw eval rows, as they are (no augmentation)."""
    rows = data.preprocess(eval_df)
    predictions = model.predict(
        data.to_dataset(rows.drop(columns=[data.LABEL]), batch_size), verbose=0
    )
    errors = predictions.reshape(-1) - rows[data.LABEL].to_numpy(dtype="float64")
    return float(np.sqrt(np.mean(errors**2)))


def noise_floor(eval_df: pd.DataFrame) -> float | None:
    """The natality generator's noise floor on these eval rows; None on the real table."""
    if config.settings().warehouse != "duckdb":
        return None
    from prodml.datasets import natality

    return natality.noise_floor_rmse(eval_df)


def export(model: keras.Model, export_base: str | Path) -> str:
    """Save ``model`` with its ``serving_default`` and ``keyed`` signatures to
    ``export_base/<version>/`` and return that path. The version is the unix time, or one more
    than the newest version already there, so versions only ever increase."""
    base = str(export_base).rstrip("/")
    version = savedmodel.next_version(base, at_least=int(time.time()))
    path = f"{base}/{version}"
    babyweight_model.save(model, path)
    return path


def predict_instance(export_path: str, instance: dict = contract.COURSE_INSTANCE) -> float:
    """One instance through the exported ``serving_default`` signature: the weight in pounds
    (the signature answers ``{"weight": [w]}`` per instance, the course model's shape)."""
    serve = savedmodel.load_signature(export_path)
    return float(savedmodel.predict_rows(serve, [instance])[0]["weight"][0])


def read_data(
    train_examples: int | None,
    eval_examples: int | None,
    rows: int,
    seed: int,
    client=None,
    vertex: Mapping[str, str] | None = None,
) -> dict[str, tuple[pd.DataFrame, dict]]:
    """split -> (rows, source) for ``train``, ``eval`` (and ``test`` when Vertex AI names
    one): the Vertex AI data URIs when set, else the course's query on natality."""
    vertex = vertex or {}
    if vertex_data.check_splits(vertex):
        fmt = vertex.get("AIP_DATA_FORMAT")
        return {
            split: vertex_data.read_uri(vertex[var], fmt, client)
            for split, (var, _) in _SPLIT_URIS.items()
            if var in vertex
        }
    if client is None:
        from prodml import warehouse

        client = warehouse.client()
    ensure_natality(rows, seed, client=client)
    train_df, eval_df = read_splits(train_examples, eval_examples, client=client)
    return {
        "train": (train_df, {"query": data.query("train", limit=train_examples)}),
        "eval": (eval_df, {"query": data.query("eval", limit=eval_examples)}),
    }


def _output_dir(output_dir: str | Path) -> Path:
    path = Path(output_dir).expanduser()
    return path if path.is_absolute() else config.run_path(str(path), mkdir=False)


@contextlib.contextmanager
def tracked_run(
    on: bool, experiment: str = MODEL_NAME, run_name: str | None = None, params=None
) -> Iterator:
    """An MLflow run in the run folder's store with the code version as tags and ``params``
    logged (a child run inside an active one), or nothing (``None``) when ``on`` is False."""
    if not on:
        yield None
        return
    import mlflow

    from prodml import tracking

    nested = mlflow.active_run() is not None
    if nested:  # a child run lives in its parent's experiment
        tracking.use(experiment=None)
    else:
        tracking.use(experiment)
    name = run_name or f"trainer-{time.strftime('%Y%m%d-%H%M%S')}"
    with mlflow.start_run(run_name=name, nested=nested, tags=tracking.code_version()) as run:
        if params:
            mlflow.log_params(params)
        yield run
        mlflow.flush_async_logging()


def _log_data(splits: dict[str, tuple[pd.DataFrame, dict]]) -> dict[str, str]:
    """Each split as a dataset input of the active run; split -> content digest."""
    from prodml import tracking

    digests = {}
    for split, (frame, source) in splits.items():
        context = _SPLIT_URIS[split][1]
        name = f"natality.{split}" if "query" in source else source["uri"].rsplit("/", 1)[-1]
        digests[split] = tracking.log_dataframe(
            frame, name, context, targets=contract.LABEL, **source
        )
    return digests


def _sizes(smoke: bool, rows, epochs, batch_size) -> tuple[int, int, int]:
    sizes = SMOKE if smoke else DEFAULTS
    return (
        sizes["rows"] if rows is None else rows,
        sizes["epochs"] if epochs is None else epochs,
        sizes["batch_size"] if batch_size is None else batch_size,
    )


def _export_to(model: keras.Model, out: Path, vertex: Mapping[str, str]) -> str:
    """AIP_MODEL_DIR's root when Vertex AI names it, else a new version under ``out/export``."""
    model_dir = vertex.get("AIP_MODEL_DIR")
    if model_dir is None:
        return export(model, out / "export")
    babyweight_model.save(model, model_dir)
    return model_dir.rstrip("/")


def _callbacks(track: bool, vertex: Mapping[str, str]) -> list:
    callbacks = []
    if track:
        from mlflow.keras import MlflowCallback

        callbacks.append(MlflowCallback())
    if "AIP_CHECKPOINT_DIR" in vertex:
        pattern = vertex["AIP_CHECKPOINT_DIR"].rstrip("/") + "/epoch-{epoch:02d}.weights.h5"
        callbacks.append(keras.callbacks.ModelCheckpoint(pattern, save_weights_only=True))
    return callbacks


def _evaluate(model, splits, export_path: str) -> dict:
    eval_df = splits["eval"][0]
    floor = noise_floor(eval_df)
    result = {"rmse": rmse(model, eval_df), "noise_floor": floor}
    result["ratio"] = None if floor is None else result["rmse"] / floor
    if "test" in splits:
        result["test_rmse"] = rmse(model, splits["test"][0])
    result["course_instance_weight"] = predict_instance(export_path)
    return result


def _facts(export_path: str, splits: dict, history, started: float) -> dict:
    name = Path(export_path).name
    return {
        "export_path": export_path,
        "version": int(name) if name.isdigit() else None,
        "train_rows": len(splits["train"][0]),
        "eval_rows": len(splits["eval"][0]),
        "history": {k: [float(x) for x in v] for k, v in history.history.items()},
        "seconds": round(time.perf_counter() - started, 1),
    }


def _log_outcome(result: dict, export_path: str, registered_model: str) -> dict:
    """Final metrics, the SavedModel registered as a new version; the version's fields."""
    import mlflow

    from prodml import tracking

    names = ("rmse", "noise_floor", "ratio", "test_rmse", "course_instance_weight", "seconds")
    mlflow.log_metrics({f"eval_{k}" if k == "rmse" else k: result[k] for k in names
                        if result.get(k) is not None})  # fmt: skip
    version = tracking.log_savedmodel(
        export_path, registered_model, export_version=Path(export_path).name
    )
    run = mlflow.active_run()
    return {
        "run_id": run.info.run_id,
        "experiment_id": run.info.experiment_id,
        "registered_model": registered_model,
        "model_version": int(version.version),
    }


def train_and_export(
    output_dir: str | Path | None = None,
    train_examples: int | None = None,
    eval_examples: int | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    smoke: bool = False,
    rows: int | None = None,
    seed: int = DEFAULTS["seed"],
    verbose: int | str = "auto",
    client=None,
    learning_rate: float = LEARNING_RATE,
    track: bool | None = None,
    experiment: str = MODEL_NAME,
    registered_model: str = MODEL_NAME,
    run_name: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict:
    """The whole job: data, training, evaluation, export, and (``track``) its MLflow run.
    Returns (and writes to ``output_dir/metrics.json``) rmse, noise_floor, ratio, export_path,
    version and sizes; with tracking also run_id, model_version and the data digests.
    ``environ`` (default ``os.environ``) is read for Vertex AI's ``AIP_*`` variables."""
    from prodml import tracking

    vertex = vertex_data.environment(environ)
    if output_dir is None and "AIP_MODEL_DIR" not in vertex:
        raise ValueError("train_and_export needs output_dir (or AIP_MODEL_DIR)")
    rows, epochs, batch_size = _sizes(smoke, rows, epochs, batch_size)
    on = tracking.enabled(track)
    out = _output_dir(output_dir if output_dir is not None else "babyweight")
    out.mkdir(parents=True, exist_ok=True)
    tensorboard_dir = vertex.get("AIP_TENSORBOARD_LOG_DIR") or str(out / "tensorboard")
    started = time.perf_counter()
    params = {"rows": rows, "epochs": int(epochs), "batch_size": int(batch_size), "seed": seed,
              "learning_rate": learning_rate, "train_examples": train_examples,
              "eval_examples": eval_examples, "smoke": bool(smoke)}  # fmt: skip

    with tracked_run(on, experiment, run_name, params):
        splits = read_data(train_examples, eval_examples, rows, seed, client, vertex)
        digests = _log_data(splits) if on else {}
        train_df, eval_df = splits["train"][0], splits["eval"][0]
        print(
            f"train rows {len(train_df):,} (x2 augmented), eval rows {len(eval_df):,}", flush=True
        )
        model, history = train(train_df, eval_df, epochs, batch_size, seed,
                               tensorboard_dir=tensorboard_dir, verbose=verbose,
                               learning_rate=learning_rate,
                               callbacks=_callbacks(on, vertex))  # fmt: skip
        export_path = _export_to(model, out, vertex)
        result = {**_evaluate(model, splits, export_path), **params}
        result.update(_facts(export_path, splits, history, started), data_digests=digests)
        result["tensorboard_dir"] = str(tensorboard_dir)
        if on:
            result.update(_log_outcome(result, export_path, registered_model))
    (out / "metrics.json").write_text(json.dumps(result, indent=2))
    _report(result)
    return result


def _report(result: dict) -> None:
    floor, eval_rmse = result["noise_floor"], result["rmse"]
    ratio = "" if floor is None else f", noise floor {floor:.4f} lb, ratio {result['ratio']:.3f}"
    print(f"eval RMSE {eval_rmse:.4f} lb{ratio}")
    if "test_rmse" in result:
        print(f"test RMSE {result['test_rmse']:.4f} lb")
    print(f"course instance -> {result['course_instance_weight']:.2f} lb")
    print(f"exported {result['export_path']}")
    if "run_id" in result:
        print(
            f"tracked: run {result['run_id']} (experiment {result['experiment_id']}), "
            f"registered {result['registered_model']} version {result['model_version']}"
        )


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m prodml.babyweight.task", description=__doc__.splitlines()[0]
    )
    add = parser.add_argument
    add("--output-dir", default=None,
        help="where to write logs, metrics and the export (relative: under the run folder); "
             "optional when AIP_MODEL_DIR is set")  # fmt: skip
    add("--train-examples", type=_positive_int, default=None,
        help="train rows to read (default: the whole split)")  # fmt: skip
    add("--eval-examples", type=_positive_int, default=None,
        help="eval rows to read (default: the whole split)")  # fmt: skip
    add("--epochs", type=_positive_int, default=None,
        help=f"default {DEFAULTS['epochs']} ({SMOKE['epochs']} with --smoke)")  # fmt: skip
    add("--batch-size", type=_positive_int, default=None, help=f"default {DEFAULTS['batch_size']}")
    add("--learning-rate", type=float, default=LEARNING_RATE, help=f"default {LEARNING_RATE}")
    add("--rows", type=_positive_int, default=None,
        help=f"natality rows to generate into the local warehouse (default {DEFAULTS['rows']:,}; "
             f"{SMOKE['rows']:,} with --smoke)")  # fmt: skip
    add("--seed", type=int, default=DEFAULTS["seed"])
    add(
        "--smoke", action="store_true", help="tiny data and one epoch: proves it trains and exports"
    )
    add("--experiment", default=MODEL_NAME, help="MLflow experiment (default %(default)s)")
    add("--registered-model", default=MODEL_NAME,
        help="registered model the export becomes a version of (default %(default)s)")  # fmt: skip
    add("--run-name", default=None, help="the MLflow run's name (default trainer-<time>)")
    add("--track", dest="track", action="store_true", default=None,
        help="log the run to MLflow (default: when MLflow is installed and PRODML_TRACKING "
             "is not off)")  # fmt: skip
    add("--no-track", dest="track", action="store_false", help="do not log to MLflow")
    return parser


def main(argv: list[str] | None = None) -> int:
    """``python -m prodml.babyweight.task``: train, evaluate and export; the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.output_dir is None and "AIP_MODEL_DIR" not in vertex_data.environment():
        parser.error("--output-dir is required (unless AIP_MODEL_DIR is set)")
    if not 0 < args.learning_rate < 1:
        parser.error(f"--learning-rate must be in (0, 1), got {args.learning_rate}")
    train_and_export(
        args.output_dir,
        train_examples=args.train_examples,
        eval_examples=args.eval_examples,
        epochs=args.epochs,
        batch_size=args.batch_size,
        smoke=args.smoke,
        rows=args.rows,
        seed=args.seed,
        verbose=2 if not sys.stdout.isatty() else "auto",
        learning_rate=args.learning_rate,
        track=args.track,
        experiment=args.experiment,
        registered_model=args.registered_model,
        run_name=args.run_name,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
