"""The babyweight trainer, shaped like a cloud training-job package.

    python -m prodml.babyweight.task --output-dir DIR [--train-examples N] [--eval-examples N]
        [--epochs E] [--batch-size B] [--rows R] [--seed S] [--smoke]

It queries the train and eval splits through the warehouse (loading the synthetic natality table
into the local one first when needed), trains the wide-and-deep model with Keras, writes
TensorBoard logs to ``DIR/tensorboard``, reports the eval RMSE beside the natality generator's
noise floor, writes ``DIR/metrics.json`` and exports a SavedModel to ``DIR/export/<version>/``.
A relative ``DIR`` is taken under the run folder. From a notebook:
``train_and_export(output_dir, ...) -> dict`` does the same; ``train(...)`` returns the model
for a notebook that writes its own export.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import tensorflow as tf  # noqa: E402

from prodml import config, savedmodel  # noqa: E402
from prodml.babyweight import contract, data  # noqa: E402
from prodml.babyweight import model as babyweight_model  # noqa: E402

#: Defaults: reach the generator's noise floor within 10 % in a few minutes on 2 cores.
DEFAULTS = {"rows": 400_000, "epochs": 4, "batch_size": 512, "seed": 42}
#: --smoke: tiny data, one epoch; it only proves the pipeline trains and exports.
SMOKE = {"rows": 20_000, "epochs": 1, "batch_size": 256}

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
) -> tuple[keras.Model, keras.callbacks.History]:
    """Train a fresh model on raw train rows (preprocessed and augmented here), validating on
    the raw eval rows as they are (not augmented)."""
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    model = babyweight_model.build(seed=seed)
    train_ds = data.to_dataset(
        data.preprocess(train_df, augment_rows=True), batch_size, shuffle=True, seed=seed
    )
    eval_ds = data.to_dataset(data.preprocess(eval_df), batch_size)
    callbacks = []
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
    tf.saved_model.save(model, path, signatures=babyweight_model.signatures(model))
    return path


def predict_instance(export_path: str, instance: dict = contract.COURSE_INSTANCE) -> float:
    """One instance through the exported ``serving_default`` signature: the weight in pounds
    (the signature answers ``{"weight": [w]}`` per instance, the course model's shape)."""
    serve = savedmodel.load_signature(export_path)
    return float(savedmodel.predict_rows(serve, [instance])[0]["weight"][0])


def _output_dir(output_dir: str | Path) -> Path:
    path = Path(output_dir).expanduser()
    return path if path.is_absolute() else config.run_path(str(path), mkdir=False)


def train_and_export(
    output_dir: str | Path,
    train_examples: int | None = None,
    eval_examples: int | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    smoke: bool = False,
    rows: int | None = None,
    seed: int = DEFAULTS["seed"],
    verbose: int | str = "auto",
    client=None,
) -> dict:
    """The whole job: data, training, evaluation, export. Returns (and writes to
    ``output_dir/metrics.json``) rmse, noise_floor, ratio, export_path, version and sizes."""
    sizes = SMOKE if smoke else DEFAULTS
    rows = sizes["rows"] if rows is None else rows
    epochs = sizes["epochs"] if epochs is None else epochs
    batch_size = sizes["batch_size"] if batch_size is None else batch_size
    out = _output_dir(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    if client is None:
        from prodml import warehouse

        client = warehouse.client()
    ensure_natality(rows, seed, client=client)
    train_df, eval_df = read_splits(train_examples, eval_examples, client=client)
    print(f"train rows {len(train_df):,} (x2 augmented), eval rows {len(eval_df):,}", flush=True)

    model, history = train(
        train_df,
        eval_df,
        epochs,
        batch_size,
        seed,
        tensorboard_dir=out / "tensorboard",
        verbose=verbose,
    )
    eval_rmse = rmse(model, eval_df)
    floor = noise_floor(eval_df)
    export_path = export(model, out / "export")
    result = {
        "rmse": eval_rmse,
        "noise_floor": floor,
        "ratio": None if floor is None else eval_rmse / floor,
        "course_instance_weight": predict_instance(export_path),
        "export_path": export_path,
        "version": int(Path(export_path).name),
        "tensorboard_dir": str(out / "tensorboard"),
        "train_rows": len(train_df),
        "eval_rows": len(eval_df),
        "rows": rows,
        "epochs": int(epochs),
        "batch_size": int(batch_size),
        "seed": seed,
        "smoke": bool(smoke),
        "history": {k: [float(x) for x in v] for k, v in history.history.items()},
        "seconds": round(time.perf_counter() - started, 1),
    }
    (out / "metrics.json").write_text(json.dumps(result, indent=2))
    ratio = "" if floor is None else f", noise floor {floor:.4f} lb, ratio {result['ratio']:.3f}"
    print(f"eval RMSE {eval_rmse:.4f} lb{ratio}")
    print(f"course instance -> {result['course_instance_weight']:.2f} lb")
    print(f"exported {export_path}")
    return result


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m prodml.babyweight.task", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--output-dir",
        required=True,
        help="where to write logs, metrics and the export (relative: under the run folder)",
    )
    parser.add_argument(
        "--train-examples",
        type=_positive_int,
        default=None,
        help="train rows to read (default: the whole split)",
    )
    parser.add_argument(
        "--eval-examples",
        type=_positive_int,
        default=None,
        help="eval rows to read (default: the whole split)",
    )
    parser.add_argument(
        "--epochs",
        type=_positive_int,
        default=None,
        help=f"default {DEFAULTS['epochs']} ({SMOKE['epochs']} with --smoke)",
    )
    parser.add_argument(
        "--batch-size", type=_positive_int, default=None, help=f"default {DEFAULTS['batch_size']}"
    )
    parser.add_argument(
        "--rows",
        type=_positive_int,
        default=None,
        help=f"natality rows to generate into the local warehouse (default {DEFAULTS['rows']:,}; {SMOKE['rows']:,} with --smoke)",
    )
    parser.add_argument("--seed", type=int, default=DEFAULTS["seed"])
    parser.add_argument(
        "--smoke", action="store_true", help="tiny data and one epoch: proves it trains and exports"
    )
    args = parser.parse_args(argv)
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
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
