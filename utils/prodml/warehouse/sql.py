"""BigQuery Standard SQL -> DuckDB SQL for the local warehouse.

sqlglot does the dialect translation; this module adds what it cannot know:

* table names: ``project.dataset.table`` (or ``dataset.table`` in the default project) becomes
  the DuckDB table ``"project.dataset"."table"`` -- one DuckDB schema per BigQuery dataset,
  named ``<project>.<dataset>``;
* BigQuery semantics DuckDB lacks: ``FARM_FINGERPRINT`` (a vectorized Python UDF over Arrow
  arrays), ``CAST(float AS STRING)`` without a trailing ``.0`` for whole numbers,
  ``CAST(float AS INT64)`` rounding halves away from zero, ``APPROX_QUANTILES`` returning input
  values (``quantile_disc``), typed query parameters;
* clear errors (:class:`UnsupportedSQL`) for constructs DuckDB cannot run (BigQuery ML, functions
  with no DuckDB equivalent, wildcard tables).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import duckdb
import farmhash
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, ParseError, UnsupportedError


class UnsupportedSQL(ValueError):
    """BigQuery SQL the local DuckDB warehouse cannot run; the message names the construct."""


# BigQuery type names (query parameters and SchemaField.field_type) -> DuckDB types.
BQ_TO_DUCKDB = {
    "STRING": "VARCHAR",
    "INT64": "BIGINT",
    "INTEGER": "BIGINT",
    "FLOAT64": "DOUBLE",
    "FLOAT": "DOUBLE",
    "BOOL": "BOOLEAN",
    "BOOLEAN": "BOOLEAN",
    "NUMERIC": "DECIMAL(38, 9)",
    "BIGNUMERIC": "DECIMAL(38, 9)",
    "DATE": "DATE",
    "DATETIME": "TIMESTAMP",
    "TIMESTAMP": "TIMESTAMPTZ",
    "TIME": "TIME",
    "BYTES": "BLOB",
    "JSON": "JSON",
}


# ---------------------------------------------------------------------------------------------
# Functions registered on every local connection
# ---------------------------------------------------------------------------------------------


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
    """Add the BigQuery functions DuckDB lacks to a connection.

    A Python function registered on one connection lives in the database instance that every
    connection to the same file in this process shares, and outlives that connection: register
    once per instance (a notebook's client and a pipeline's client are open side by side).
    """
    registered = con.execute(
        "SELECT count(*) FROM duckdb_functions() WHERE function_name = 'farm_fingerprint'"
    ).fetchall()[0][0]
    if registered:
        return
    con.create_function(
        "farm_fingerprint",
        fingerprint,
        ["VARCHAR"],
        "BIGINT",
        type="arrow",
        null_handling="special",
        side_effects=False,
    )


_UDFS = {"FARM_FINGERPRINT"}
_duckdb_functions: set[str] | None = None


def _known_function(name: str) -> bool:
    global _duckdb_functions
    if _duckdb_functions is None:
        rows = duckdb.connect().execute(
            "SELECT DISTINCT upper(function_name) FROM duckdb_functions()"
        )
        _duckdb_functions = {r[0] for r in rows.fetchall()}
    return name.upper() in _duckdb_functions or name.upper() in _UDFS


# ---------------------------------------------------------------------------------------------
# Table names
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TableName:
    """A BigQuery table ``project.dataset.table`` and its DuckDB home ``"project.dataset".table``."""

    project: str
    dataset: str
    table: str

    @property
    def schema(self) -> str:
        return f"{self.project}.{self.dataset}"

    @property
    def duckdb(self) -> str:
        return f"{quote(self.schema)}.{quote(self.table)}"

    def __str__(self) -> str:
        return f"{self.project}.{self.dataset}.{self.table}"


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def table_name(table: object, project: str) -> TableName:
    """Parse a table id (``project.dataset.table``, ``dataset.table``, a bigquery ``Table`` or
    ``TableReference``) into a :class:`TableName`."""
    if all(hasattr(table, a) for a in ("project", "dataset_id", "table_id")):
        return TableName(table.project, table.dataset_id, table.table_id)
    text = str(table).strip().strip("`")
    text = text.replace(":", ".", 1) if text.count(":") == 1 else text
    parts = text.split(".")
    if len(parts) == 2:
        parts = [project, *parts]
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"table id {table!r} must be 'project.dataset.table' or 'dataset.table'")
    return TableName(*parts)


def dataset_name(dataset: object, project: str) -> tuple[str, str]:
    """``(project, dataset)`` from ``'dataset'``, ``'project.dataset'`` or a bigquery Dataset."""
    if hasattr(dataset, "dataset_id") and hasattr(dataset, "project"):
        return dataset.project, dataset.dataset_id
    parts = str(dataset).strip("`").replace(":", ".").split(".")
    if len(parts) == 1:
        parts = [project, *parts]
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"dataset id {dataset!r} must be 'dataset' or 'project.dataset'")
    return parts[0], parts[1]


# ---------------------------------------------------------------------------------------------
# Translation
# ---------------------------------------------------------------------------------------------


@dataclass
class Statement:
    """One translated statement."""

    bigquery: str
    duckdb: str
    is_query: bool  # returns rows (SELECT, WITH ..., set operations)
    reads: list[TableName] = field(default_factory=list)
    creates: list[TableName] = field(default_factory=list)
    parameters: list[str] = field(default_factory=list)  # named parameters used, in order
    positional: int = 0  # count of ? parameters


_STRING_TYPES = {exp.DataType.Type.TEXT, exp.DataType.Type.VARCHAR}
_INT_TYPES = {exp.DataType.Type.BIGINT, exp.DataType.Type.INT}


def _typeof_is_float(arg: exp.Expression) -> exp.Expression:
    """True for DOUBLE, FLOAT and DECIMAL (DuckDB types a literal 2005.0 as DECIMAL; BigQuery as
    FLOAT64). DuckDB folds typeof() to a constant, so this costs nothing per row."""
    typeof = exp.Anonymous(this="typeof", expressions=[arg.copy()])
    return exp.or_(
        exp.In(
            this=typeof,
            expressions=[exp.Literal.string("DOUBLE"), exp.Literal.string("FLOAT")],
        ),
        exp.Like(this=typeof.copy(), expression=exp.Literal.string("DECIMAL%")),
    )


def _as_double(arg: exp.Expression) -> exp.Expression:
    return exp.TryCast(this=arg.copy(), to=exp.DataType.build("DOUBLE"))


def _cast_to_string(node: exp.Cast) -> exp.Expression:
    """BigQuery writes whole FLOAT64 (and NUMERIC) values without '.0' (CAST(2005.0 AS STRING)
    = '2005'); DuckDB writes '2005.0'. Other types cast the same way in both (TRUE -> 'true')."""
    arg = node.this
    whole = exp.and_(
        _typeof_is_float(arg),
        exp.EQ(this=_as_double(arg), expression=exp.func("trunc", _as_double(arg))),
        exp.LT(this=exp.func("abs", _as_double(arg)), expression=exp.Literal.number("1e15")),
    )
    as_int = exp.Cast(
        this=exp.Cast(this=_as_double(arg), to=exp.DataType.build("BIGINT")),
        to=exp.DataType.build("VARCHAR"),
    )
    plain = node.__class__(this=arg.copy(), to=exp.DataType.build("VARCHAR"))
    return exp.Case(ifs=[exp.If(this=whole, true=as_int)], default=plain)


def _cast_to_int(node: exp.Cast) -> exp.Expression:
    """BigQuery rounds FLOAT64 halves away from zero (CAST(-2.5 AS INT64) = -3); DuckDB rounds
    them to even."""
    arg = node.this
    rounded = node.__class__(
        this=exp.func("round", _as_double(arg)), to=exp.DataType.build("BIGINT")
    )
    plain = node.__class__(this=arg.copy(), to=exp.DataType.build("BIGINT"))
    return exp.Case(ifs=[exp.If(this=_typeof_is_float(arg), true=rounded)], default=plain)


def _approx_quantiles(node: exp.ApproxQuantiles) -> exp.Expression:
    """APPROX_QUANTILES(x, n): n + 1 values of x (minimum, n - 1 cut points, maximum)."""
    n = node.expression
    if not isinstance(n, exp.Literal) or n.is_string or int(n.this) < 1:
        raise UnsupportedSQL(
            "APPROX_QUANTILES(x, n) needs a positive integer literal n in the local warehouse"
        )
    count = int(n.this)
    fractions = exp.Array(expressions=[exp.Literal.number(i / count) for i in range(count + 1)])
    return exp.Anonymous(this="quantile_disc", expressions=[node.this.copy(), fractions])


def _reject(tree: exp.Expression, sql: str) -> None:
    """Raise UnsupportedSQL for constructs the local warehouse cannot run."""
    if isinstance(tree, exp.Command):
        raise UnsupportedSQL(
            f"the statement {str(tree.this).upper()} ... is not supported by the local "
            f"DuckDB warehouse: {sql.strip()[:80]!r}"
        )
    if isinstance(tree, exp.Create) and str(tree.args.get("kind", "")).upper() == "MODEL":
        raise UnsupportedSQL(
            "CREATE MODEL (BigQuery ML) is not available in the local DuckDB warehouse; "
            "train the model in Python (Keras) or set warehouse='bigquery'"
        )
    for node in tree.walk():
        if isinstance(node, exp.Predict):
            raise UnsupportedSQL(
                "ML.PREDICT (BigQuery ML) is not available in the local DuckDB warehouse; "
                "predict in Python or set warehouse='bigquery'"
            )
        if isinstance(node, exp.Anonymous) and not _known_function(node.name):
            raise UnsupportedSQL(
                f"the function {node.name.upper()}() has no equivalent in the local DuckDB "
                "warehouse (known BigQuery functions are translated by sqlglot; this one is not)"
            )
        if isinstance(node, exp.Table) and "*" in node.name:
            raise UnsupportedSQL(
                f"wildcard table {node.name!r} is not supported by the local DuckDB warehouse"
            )
        if isinstance(node, exp.Table) and node.db.upper() == "INFORMATION_SCHEMA":
            raise UnsupportedSQL("INFORMATION_SCHEMA views are not supported locally")


def translate(sql: str, project: str) -> list[Statement]:
    """Translate a BigQuery script (one or more statements) into DuckDB statements."""
    try:
        trees = [t for t in sqlglot.parse(sql, read="bigquery") if t is not None]
    except ParseError as err:
        raise UnsupportedSQL(
            f"cannot read this as BigQuery Standard SQL (a syntax error, or a construct sqlglot "
            f"does not know): {err}"
        ) from None
    statements = []
    for tree in trees:
        _reject(tree, sql)
        created: list[TableName] = []
        # CREATE makes its target and DROP may name a missing one: neither must exist already.
        if isinstance(tree, exp.Create | exp.Drop) and isinstance(tree.this, exp.Table):
            target = tree.this
            if target.db:
                created.append(TableName(target.catalog or project, target.db, target.name))
        reads: list[TableName] = []
        for table in list(tree.find_all(exp.Table)):
            if not table.db or not isinstance(table.this, exp.Identifier):
                continue  # a CTE or a table function
            name = TableName(table.catalog or project, table.db, table.name)
            if name not in created and name not in reads:
                reads.append(name)
            table.set("catalog", None)
            table.set("db", exp.to_identifier(name.schema, quoted=True))
            table.set("this", exp.to_identifier(name.table, quoted=True))
        for column in list(tree.find_all(exp.Column)):
            if column.args.get("db") is not None and column.args.get("table") is not None:
                schema = f"{column.catalog or project}.{column.db}"
                column.set("catalog", None)
                column.set("db", exp.to_identifier(schema, quoted=True))
        params: list[str] = []
        for node in tree.find_all(exp.Parameter):
            name = node.name
            if name not in params:
                params.append(name)
        positional = sum(1 for _ in tree.find_all(exp.Placeholder))

        def rewrite(node: exp.Expression) -> exp.Expression:
            if isinstance(node, exp.Cast) and node.to.this in _STRING_TYPES:
                return _cast_to_string(node)
            if isinstance(node, exp.Cast) and node.to.this in _INT_TYPES:
                return _cast_to_int(node)
            if isinstance(node, exp.ApproxQuantiles):
                return _approx_quantiles(node)
            if isinstance(node, exp.Extract) and node.name.upper() == "DAYOFWEEK":
                # BigQuery counts Sunday as 1, DuckDB's dayofweek as 0
                day = exp.Anonymous(this="dayofweek", expressions=[node.expression.copy()])
                return exp.Paren(this=exp.Add(this=day, expression=exp.Literal.number(1)))
            return node

        tree = tree.transform(rewrite, copy=False)
        try:
            text = tree.sql(dialect="duckdb", unsupported_level=ErrorLevel.RAISE)
        except UnsupportedError as err:
            raise UnsupportedSQL(f"the local DuckDB warehouse cannot run this: {err}") from None
        statements.append(
            Statement(
                bigquery=sql,
                duckdb=text,
                is_query=isinstance(tree, exp.Query),
                reads=reads,
                creates=created if isinstance(tree, exp.Create) else [],
                parameters=params,
                positional=positional,
            )
        )
    if not statements:
        raise UnsupportedSQL("the query text holds no SQL statement")
    return statements


_MISSING_FUNCTION = re.compile(
    r"(?:Scalar|Aggregate|Table)? ?Function with name \"?(\w+)\"? does not exist", re.I
)


def explain_duckdb_error(err: duckdb.Error) -> UnsupportedSQL | None:
    """An UnsupportedSQL for a DuckDB error that means 'BigQuery construct with no equivalent'."""
    match = _MISSING_FUNCTION.search(str(err))
    if match:
        return UnsupportedSQL(
            f"the function {match.group(1).upper()}() has no equivalent in the local DuckDB "
            "warehouse"
        )
    return None
