"""Deterministic generators standing in for the public data sets the course queries.

:data:`PUBLIC_TABLES` maps a public table id (as BigQuery spells it,
``bigquery-public-data.dataset.table``) to a zero-argument callable returning the table at its
default size, as a pandas DataFrame or a pyarrow Table. The local warehouse learns of them by
name, not by import: each is registered in ``pyproject.toml``'s ``prodml.public_tables``
entry-point group (``tests/test_warehouse_bigquery.py`` checks the two agree), and the
warehouse service resolves the name the first time a query names the table, generating it into
that run folder's warehouse once. On the BigQuery backend the real public table answers and
this is unused.
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
