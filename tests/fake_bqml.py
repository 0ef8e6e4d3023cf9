"""A stand-in BigQuery ML engine for testing the warehouse's hook (``ML_ENGINE``), not BigQuery ML.

It implements the seam the real engine (``prodml.warehouse.ml``, another branch) provides:
``CREATE MODEL`` records the model (its label's mean over the training rows, computed through
``ctx.query``) in a catalogue table on the warehouse's connection; ``ML.PREDICT`` predicts that
mean for each input row, materialised into a table the rewritten query reads; ``models.*``
read and delete the catalogue. Every call is appended to ``_fake_bqml.calls`` so tests can
check what the hook handed over.
"""

from __future__ import annotations

import json

import pyarrow as pa
from sqlglot import exp

CATALOG = '"_fake_bqml"."models"'


def _setup(con) -> None:
    con.execute('CREATE SCHEMA IF NOT EXISTS "_fake_bqml"')
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {CATALOG} (project VARCHAR, dataset VARCHAR, model VARCHAR, mean DOUBLE)"
    )
    con.execute('CREATE TABLE IF NOT EXISTS "_fake_bqml"."calls" (call VARCHAR)')


def _log(con, call: dict) -> None:
    _setup(con)
    con.execute('INSERT INTO "_fake_bqml"."calls" VALUES (?)', [json.dumps(call)])


def _name(table: exp.Table, ctx) -> tuple[str, str, str]:
    return table.catalog or ctx.project, table.db or ctx.dataset, table.name


def is_model_statement(tree) -> bool:
    return isinstance(tree, exp.Create | exp.Drop) and str(tree.args.get("kind")).upper() == "MODEL"


def execute_model_statement(tree, ctx):
    target = tree.this if isinstance(tree, exp.Create) else tree.args["tables"][0]
    project, dataset, model = _name(target, ctx)
    _log(
        ctx.con,
        {
            "statement": type(tree).__name__,
            "model": model,
            "project": ctx.project,
            "dataset": ctx.dataset,
        },
    )
    ctx.con.execute(
        f"DELETE FROM {CATALOG} WHERE project = ? AND dataset = ? AND model = ?",
        [project, dataset, model],
    )
    if isinstance(tree, exp.Create):
        rows = ctx.query(tree.expression)
        mean = float(pa.compute.mean(rows.column("label")).as_py())
        ctx.con.execute(
            f"INSERT INTO {CATALOG} VALUES (?, ?, ?, ?)", [project, dataset, model, mean]
        )
    return None


def has_ml_functions(tree) -> bool:
    return any(True for _ in tree.find_all(exp.Predict))


def materialize_ml_functions(tree, ctx):
    for i, node in enumerate(list(tree.find_all(exp.Predict))):
        project, dataset, model = _name(node.this, ctx)
        mean = get_model(ctx.con, project, dataset, model)["mean"]
        rows = ctx.query(node.expression)
        rows = rows.append_column("predicted_label", pa.array([mean] * rows.num_rows, pa.float64()))
        name = f"__fake_predict_{i}"
        ctx.con.register(name, rows)
        _log(ctx.con, {"statement": "ML.PREDICT", "model": model, "rows": rows.num_rows})
        # sqlglot reads ML.PREDICT(...) as a table (db ML) whose `this` is the call: replace it
        target = (
            node.parent if isinstance(node.parent, exp.Table) and node.parent.this is node else node
        )
        target.replace(exp.to_table(name))
    return tree


def _resource(project, dataset, model, mean) -> dict:
    reference = {"projectId": project, "datasetId": dataset, "modelId": model}
    return {"modelReference": reference, "modelType": "LINEAR_REGRESSION", "mean": mean}


def list_models(con, project, dataset) -> list[dict]:
    _setup(con)
    rows = con.execute(
        f"SELECT model, mean FROM {CATALOG} WHERE project = ? AND dataset = ? ORDER BY model",
        [project, dataset],
    ).fetchall()
    return [_resource(project, dataset, m, mean) for m, mean in rows]


def get_model(con, project, dataset, model) -> dict:
    for found in list_models(con, project, dataset):
        if found["modelReference"]["modelId"] == model:
            return found
    from prodml.warehouse.errors import NotFound

    raise NotFound(f"Not found: Model {project}:{dataset}.{model}")


def delete_model(con, project, dataset, model) -> None:
    get_model(con, project, dataset, model)
    con.execute(
        f"DELETE FROM {CATALOG} WHERE project = ? AND dataset = ? AND model = ?",
        [project, dataset, model],
    )
