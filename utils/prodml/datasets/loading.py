"""What the generators share: loading a generated dataset into the local warehouse once
(natality's and traffic's ``load()``), and the fingerprint that pins a frame's determinism.

A marker file under the run folder (``datasets/<name>.json``) records, per warehouse file and
table, the arguments the rows were generated with and how many were loaded; the next call with
the same arguments finds the table holding that many rows and loads nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

import pandas as pd

__all__ = [
    "fingerprint",
    "load_once",
]


def fingerprint(df: pd.DataFrame) -> str:
    """A SHA-256 of a frame's values, index, column names and dtypes (to pin determinism)."""
    digest = hashlib.sha256(json.dumps([list(df.columns), [str(t) for t in df.dtypes]]).encode())
    digest.update(pd.util.hash_pandas_object(df, index=True).to_numpy().tobytes())
    return digest.hexdigest()


def load_once(
    client,
    table: str,
    spec: dict,
    frame: Callable,
    name: str,
    schema: list | None = None,
) -> str:
    """Load ``frame()`` (a DataFrame) into ``table`` with ``WRITE_TRUNCATE`` through the
    client's ``load_table_from_dataframe``, unless the marker ``datasets/<name>.json`` says the
    table already holds the rows of ``spec`` and its row count agrees. Returns ``table``."""
    from google.api_core.exceptions import NotFound
    from google.cloud import bigquery

    from prodml import config, warehouse

    marker = config.run_path("datasets", f"{name}.json")
    done = json.loads(marker.read_text()) if marker.is_file() else {}
    key = f"{warehouse.warehouse_file(client) or ''}|{table}"  # which warehouse file, which table
    if done.get(key, {}).get("spec") == spec:
        try:
            if client.get_table(table).num_rows == done[key]["num_rows"]:
                return table
        except NotFound:
            pass
    df = frame()
    job_config = bigquery.LoadJobConfig(write_disposition="WRITE_TRUNCATE", schema=schema)
    client.load_table_from_dataframe(df, table, job_config=job_config).result()
    num_rows = client.get_table(table).num_rows
    if num_rows != len(df):
        raise RuntimeError(f"loaded {len(df)} rows into {table} but it holds {num_rows}")
    done[key] = {"spec": spec, "num_rows": num_rows}
    marker.write_text(json.dumps(done, indent=2, sort_keys=True) + "\n")
    return table
