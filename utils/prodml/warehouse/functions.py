"""BigQuery functions DuckDB lacks, registered on the warehouse's connection.

``FARM_FINGERPRINT`` is a vectorized Python function over Arrow arrays: FarmHash Fingerprint64
of the UTF-8 bytes as a signed INT64, bit-exact with BigQuery's.
"""

from __future__ import annotations

import duckdb
import farmhash
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["UDFS", "fingerprint", "register_functions"]

#: The functions the warehouse adds (upper case), which SQL may call.
UDFS = {"FARM_FINGERPRINT"}


def fingerprint(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """BigQuery's FARM_FINGERPRINT over an Arrow array of strings (or bytes): FarmHash
    Fingerprint64 of the UTF-8 bytes as a signed INT64; NULL stays NULL.

    Each distinct value is hashed once (dictionary encoding), so a split on a few hundred
    distinct keys over a million rows costs a few hundred hash calls.
    """
    encoded = pc.dictionary_encode(values)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    distinct = encoded.dictionary.to_pylist()
    hashes = np.fromiter(
        (farmhash.fingerprint64(v) for v in distinct), dtype=np.uint64, count=len(distinct)
    ).view(np.int64)
    return pa.array(hashes, type=pa.int64()).take(encoded.indices)


def register_functions(con: duckdb.DuckDBPyConnection) -> None:
    """Add the BigQuery functions DuckDB lacks to a connection (and so to its cursors: a
    function lives in the database instance every cursor of the connection shares)."""
    try:
        con.create_function(
            "farm_fingerprint",
            fingerprint,
            ["VARCHAR"],
            "BIGINT",
            type="arrow",
            null_handling="special",
            side_effects=False,
        )
    except duckdb.CatalogException as err:
        if "already exists" not in str(err):
            raise
