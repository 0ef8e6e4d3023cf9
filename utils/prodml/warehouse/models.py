"""``models.*``: BigQuery ML models as REST resources, read from the ML engine's catalogue.

The models live in the warehouse file, in catalogue tables the BigQuery ML engine keeps (see
``prodml.warehouse.engine.ML_ENGINE``); these resources ask the engine. With no engine there
are no models: ``list`` is empty and a named model is BigQuery's Not found.
"""

from __future__ import annotations

from prodml.warehouse.engine import Warehouse
from prodml.warehouse.errors import NotFound, NotImplementedHere
from prodml.warehouse.names import TableName

__all__ = ["list_models", "get_model", "delete_model", "patch_model"]


def _missing(name: TableName) -> NotFound:
    return NotFound(f"Not found: Model {name.project}:{name.dataset}.{name.table}")


def list_models(warehouse: Warehouse, dataset: TableName) -> dict:
    """``models.list``: the dataset's models (an empty answer without an engine)."""
    ml = warehouse.ml_engine()
    models = ml.list_models(warehouse.cursor(), dataset.project, dataset.dataset) if ml else []
    return {"models": models} if models else {}


def get_model(warehouse: Warehouse, name: TableName) -> dict:
    """``models.get``: one model's resource, or BigQuery's Not found."""
    ml = warehouse.ml_engine()
    if ml is None:
        raise _missing(name)
    return ml.get_model(warehouse.cursor(), name.project, name.dataset, name.table)


def delete_model(warehouse: Warehouse, name: TableName) -> None:
    """``models.delete``, inside the write turn."""
    ml = warehouse.ml_engine()
    if ml is None:
        raise _missing(name)
    with warehouse.writing() as cur:
        ml.delete_model(cur, name.project, name.dataset, name.table)


def patch_model(warehouse: Warehouse, name: TableName, body: dict) -> dict:
    """``models.patch``, if the engine offers it."""
    ml = warehouse.ml_engine()
    if ml is None:
        raise _missing(name)
    if not hasattr(ml, "patch_model"):
        raise NotImplementedHere("models.patch is not implemented by this BigQuery ML engine")
    with warehouse.writing() as cur:
        return ml.patch_model(cur, name.project, name.dataset, name.table, body)
