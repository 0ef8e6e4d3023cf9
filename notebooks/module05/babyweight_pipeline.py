"""The babyweight workflow as Kubeflow Pipelines components (notebook 05, section 2).

query the natality splits -> train -> evaluate with module 01's release gate -> (only when the
gate passes) export to the serving folder -> batch predictions over the evaluation split into
the warehouse.

Each component runs in its own process (on a cluster: its own container), so it imports what
it needs inside its body: KFP embeds the function's source in the compiled pipeline.
``kfp dsl compile --py babyweight_pipeline.py`` compiles the pipeline; run as a script, this
file runs it on this machine with ``kfp.local`` (``python babyweight_pipeline.py --help``).
"""

import argparse
import functools

from kfp import dsl, local
from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output

# Offline: a component would pip-install kfp (and packages_to_install) when it starts; the
# environment that runs it already has them. On a cluster, base_image= names an image that does.
component = functools.partial(dsl.component, install_kfp_package=False, packages_to_install=[])


@component
def query_natality(
    rows: int, eval_rows: int, train_data: Output[Dataset], eval_data: Output[Dataset]
):
    """BigQuery step: the course's natality query, ``rows`` training and ``eval_rows`` eval rows,
    as Parquet files. Each eval row gets a key, which the batch predictions carry (static
    serving's join key)."""
    from prodml import babyweight, warehouse

    client = warehouse.client()
    for split, artifact, limit in (("train", train_data, rows), ("eval", eval_data, eval_rows)):
        frame = client.query(babyweight.query(split, limit=limit)).to_dataframe()
        if split == "eval":
            frame["key"] = [f"eval-{i:06d}" for i in range(len(frame))]
        frame.to_parquet(artifact.path, index=False)
        artifact.metadata["rows"] = len(frame)
        print(f"{split}: {len(frame)} rows -> {artifact.path}")


@component
def train(
    train_data: Input[Dataset],
    eval_data: Input[Dataset],
    epochs: int,
    learning_rate: float,
    seed: int,
    model: Output[Model],
):
    """Training-job step: the babyweight trainer package; a SavedModel out."""
    import pandas as pd
    from prodml.babyweight import task as trainer

    fitted, _ = trainer.train(
        pd.read_parquet(train_data.path),
        pd.read_parquet(eval_data.path),
        epochs=epochs,
        batch_size=256,
        seed=seed,
        learning_rate=learning_rate,
        verbose=2,
    )
    model.metadata["version_path"] = trainer.export(fitted, model.path)  # model.path/<version>


@component
def evaluate(
    model: Input[Model],
    train_data: Input[Dataset],
    eval_data: Input[Dataset],
    serving_base: str,
    metrics: Output[Metrics],
    slices: Output[Artifact],
) -> str:
    """Module 01's release gate: beat the model in production overall, lose no big slice by > 5 %.

    With nothing in production yet, the model to beat is the rule it replaces: the mean
    training weight per plurality. Returns "pass" or "fail"; the report goes to ``slices``.
    """
    import json
    from pathlib import Path

    import numpy as np
    import pandas as pd
    from prodml import babyweight, savedmodel

    rows = babyweight.preprocess(pd.read_parquet(eval_data.path))

    def predict(path):
        serve = savedmodel.load_signature(path)
        columns = rows[list(babyweight.FEATURES)].to_dict("records")
        return savedmodel.predict_columns(serve, columns)["weight"].reshape(-1)

    def sliced_rmse(predictions):
        scored = rows.assign(squared_error=(predictions - rows[babyweight.LABEL]) ** 2)
        groups = [("overall", scored)]
        for column in ("plurality", "is_male"):
            groups += [(f"{column}={v}", g) for v, g in scored.groupby(column)]
        return {k: (len(g), float(np.sqrt(g["squared_error"].mean()))) for k, g in groups}

    versions = savedmodel.versions(serving_base)  # {number: folder}, oldest first
    if versions:
        newest = max(versions)
        current_name, current = f"production model {newest}", predict(versions[newest])
    else:
        train_rows = babyweight.preprocess(pd.read_parquet(train_data.path))
        means = train_rows.groupby("plurality")[babyweight.LABEL].mean()
        current_name = "mean weight per plurality"
        current = rows["plurality"].map(means).fillna(train_rows[babyweight.LABEL].mean())
    candidate = sliced_rmse(predict(model.metadata["version_path"]))
    baseline = sliced_rmse(np.asarray(current, dtype="float64"))

    reasons = []
    if candidate["overall"][1] >= baseline["overall"][1]:
        reasons.append(
            f"overall RMSE {candidate['overall'][1]:.3f} >= {baseline['overall'][1]:.3f}"
        )
    for key, (count, rmse) in candidate.items():
        if key != "overall" and count >= 30 and rmse > baseline[key][1] * 1.05:
            reasons.append(f"{key}: RMSE {rmse:.3f} vs {baseline[key][1]:.3f}")
    decision = "fail" if reasons else "pass"

    metrics.log_metric("rmse", candidate["overall"][1])
    metrics.log_metric("current_rmse", baseline["overall"][1])
    report = {"current": current_name, "decision": decision, "reasons": reasons, "slices": {}}
    for key, (count, rmse) in candidate.items():
        report["slices"][key] = {"rows": count, "rmse": rmse, "current_rmse": baseline[key][1]}
    Path(slices.path).write_text(json.dumps(report, indent=2))
    print(f"gate: {decision} against {current_name}", reasons)
    return decision


@component
def export(model: Input[Model], serving_base: str, pushed: Output[Model]):
    """Push step: copy the gated SavedModel to the serving base path as a new version."""
    import shutil
    from pathlib import Path

    source = Path(model.metadata["version_path"])
    shutil.copytree(source, pushed.path)  # the pipeline's record of what it pushed
    target = Path(serving_base) / source.name
    shutil.copytree(source, target)
    pushed.metadata["serving_path"] = str(target)
    print("pushed", source.name, "to", target)


@component
def batch_predict(
    model: Input[Model], eval_data: Input[Dataset], table: str, predictions: Output[Dataset]
) -> int:
    """Batch prediction (static serving): Beam's RunInference with the pushed SavedModel over
    the evaluation split, each record checked against babyweight's record contract, the
    predictions (keys passed through) into the warehouse ``table``, replacing the last release's.
    Returns the number of predictions; files, dead letters and counts go to ``predictions``."""
    import apache_beam as beam
    from prodml import babyweight, pipelines, warehouse

    warehouse.client().create_dataset(table.split(".")[0], exists_ok=True)  # the first release's
    sink = pipelines.Sink(folder=predictions.path, table=table, write_disposition="WRITE_TRUNCATE")
    with beam.Pipeline(options=pipelines.options("batch")) as p:
        pipelines.build_pipeline(
            p,
            pipelines.from_parquet(eval_data.path),
            babyweight.CONTRACT,
            model=pipelines.SavedModelHandler(model.path),
            sink=sink,
        )
    counts = pipelines.counts(sink)
    predictions.metadata.update(counts, table=table)
    print(f"batch predictions: {counts} -> {table}")
    return counts["predictions"]


@dsl.pipeline(
    name="babyweight",
    description="natality -> train -> release gate -> export -> batch predictions",
)
def babyweight_pipeline(
    serving_base: str,
    rows: int = 4000,
    eval_rows: int = 1000,
    epochs: int = 1,
    learning_rate: float = 0.003,
    seed: int = 42,
    predictions_table: str = "babyweight.eval_predictions",
):
    data = query_natality(rows=rows, eval_rows=eval_rows)
    trained = train(
        train_data=data.outputs["train_data"],
        eval_data=data.outputs["eval_data"],
        epochs=epochs,
        learning_rate=learning_rate,
        seed=seed,
    )
    gate = evaluate(
        model=trained.outputs["model"],
        train_data=data.outputs["train_data"],
        eval_data=data.outputs["eval_data"],
        serving_base=serving_base,
    )
    # The local runner of kfp 2.17 resolves a condition on a component's return value
    # ("Output"), not on a named field of a NamedTuple, so evaluate returns just the decision.
    with dsl.If(gate.outputs["Output"] == "pass", name="gate-passed"):
        pushed = export(model=trained.outputs["model"], serving_base=serving_base)
        batch_predict(
            model=pushed.outputs["pushed"],
            eval_data=data.outputs["eval_data"],
            table=predictions_table,
        )


def main(argv: list[str] | None = None) -> None:
    """Run the pipeline once on this machine: every task a subprocess of this Python
    (``use_venv=True`` would build a virtual environment and pip-install into it, which needs
    the network), its artifacts under ``--pipeline-root``."""
    parser = argparse.ArgumentParser(description=main.__doc__.split("\n")[0])
    parser.add_argument("--pipeline-root", required=True, help="folder for the run's artifacts")
    parser.add_argument("--serving-base", required=True, help="the serving folder (versions)")
    parser.add_argument("--rows", type=int, default=4000, help="training rows")
    parser.add_argument("--eval-rows", type=int, default=1000, help="evaluation rows")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--learning-rate", type=float, default=0.003)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--predictions-table", default="babyweight.eval_predictions")
    args = parser.parse_args(argv)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=args.pipeline_root)
    babyweight_pipeline(
        serving_base=args.serving_base,
        rows=args.rows,
        eval_rows=args.eval_rows,
        epochs=args.epochs,
        learning_rate=args.learning_rate,
        seed=args.seed,
        predictions_table=args.predictions_table,
    )


if __name__ == "__main__":
    main()
