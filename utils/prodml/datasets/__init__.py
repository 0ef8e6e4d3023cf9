"""Deterministic generators standing in for the public data sets the course queries.

:data:`PUBLIC_TABLES` is the registry the local warehouse consults: a public table id (as
BigQuery spells it, ``bigquery-public-data.dataset.table``) maps to a zero-argument callable
returning the table at its default size, as a pandas DataFrame or a pyarrow Table. The first
query in a run folder that names one of these tables generates it into that run folder's
warehouse (once); on the BigQuery backend the real public table answers and this is unused.
"""

from __future__ import annotations

from collections.abc import Callable

from prodml.datasets import natality, traffic

PUBLIC_TABLES: dict[str, Callable[[], object]] = {
    natality.TABLE: natality.public_table,
    # The workbook's own stand-in for the course's San Diego sensor file (not a BigQuery table;
    # no such project exists there): see prodml.datasets.traffic.
    traffic.TABLE: traffic.default_table,
}

__all__ = ["PUBLIC_TABLES"]
