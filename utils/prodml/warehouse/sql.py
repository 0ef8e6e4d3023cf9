"""BigQuery Standard SQL -> DuckDB SQL for the local warehouse.

sqlglot does the dialect translation; this module adds what it cannot know:

* table names: ``project.dataset.table`` (or ``dataset.table`` in the default project) becomes
  the DuckDB table ``"project.dataset"."table"`` -- one DuckDB schema per BigQuery dataset,
  named ``<project>.<dataset>``;
* BigQuery semantics DuckDB lacks: ``FARM_FINGERPRINT`` (a vectorized Python UDF over Arrow
  arrays), ``CAST(float AS STRING)`` without a trailing ``.0`` for whole numbers,
  ``CAST(float AS INT64)`` rounding halves away from zero, ``APPROX_QUANTILES`` returning input
  values (``quantile_disc``), typed query parameters;
* BigQuery DDL: column lists with BigQuery types, ``CREATE TABLE ... LIKE / COPY``, ``CREATE
  SCHEMA``; ``PARTITION BY``, ``CLUSTER BY`` and ``OPTIONS(...)`` are accepted and dropped (on
  BigQuery they change storage and cost, never an answer);
* ``INFORMATION_SCHEMA.COLUMNS / TABLES / SCHEMATA`` (answered from the catalogue by the client);
  ``publicdata.`` as BigQuery's alias of ``bigquery-public-data.``;
* clear errors (:class:`UnsupportedSQL`): every BigQuery ML statement and function with one
  message; DuckDB-only statements and table functions (``COPY``, ``ATTACH``, ``PRAGMA``,
  ``read_csv()``...), refused as "not BigQuery SQL" so that SQL which runs here runs on
  BigQuery; functions with no equivalent, wildcard tables.
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
from google.api_core import exceptions
from sqlglot import exp
from sqlglot.errors import ErrorLevel, ParseError, UnsupportedError


class UnsupportedSQL(exceptions.BadRequest, ValueError):
    """SQL the local warehouse refuses (400, as BigQuery's invalidQuery); the message names the
    construct. Also a ValueError, as it was before it was a BadRequest."""


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
    connection to the same file in this process shares, and outlives that connection: a second
    registration on the same instance (a notebook's client and a pipeline's client open side by
    side) finds it there, which is fine.
    """
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
        return TableName(canonical_project(table.project), table.dataset_id, table.table_id)
    text = str(table).strip().strip("`")
    text = text.replace(":", ".", 1) if text.count(":") == 1 else text
    parts = text.split(".")
    if len(parts) == 2:
        parts = [project, *parts]
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"table id {table!r} must be 'project.dataset.table' or 'dataset.table'")
    return TableName(canonical_project(parts[0]), parts[1], parts[2])


def dataset_name(dataset: object, project: str) -> tuple[str, str]:
    """``(project, dataset)`` from ``'dataset'``, ``'project.dataset'`` or a bigquery Dataset."""
    if hasattr(dataset, "dataset_id") and hasattr(dataset, "project"):
        return canonical_project(dataset.project), dataset.dataset_id
    parts = str(dataset).strip("`").replace(":", ".").split(".")
    if len(parts) == 1:
        parts = [project, *parts]
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"dataset id {dataset!r} must be 'dataset' or 'project.dataset'")
    return canonical_project(parts[0]), parts[1]


# ---------------------------------------------------------------------------------------------
# Statements
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
    writes: list[TableName] = field(default_factory=list)  # DML/DDL targets (datasets: table "")
    catalog: list[CatalogView] = field(default_factory=list)  # INFORMATION_SCHEMA views used
    schema_ddl: bool = False  # CREATE/DROP SCHEMA


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


# ---------------------------------------------------------------------------------------------
# What is refused before parsing (by tokens: some of it is not even parseable as BigQuery SQL)
# ---------------------------------------------------------------------------------------------

BIGQUERY_ML = (
    "{construct} is BigQuery ML, which the local warehouse does not run. Train, evaluate and "
    "predict with the model in Python instead (Keras, as the babyweight notebooks do), or set "
    "warehouse='bigquery' to run BigQuery ML on BigQuery itself"
)
NOT_BIGQUERY = (
    "{construct} is not BigQuery SQL (it is DuckDB's): the local warehouse runs only SQL that "
    "also runs on BigQuery{hint}"
)
# statements DuckDB has and BigQuery does not (BigQuery's own EXPORT DATA / LOAD DATA are
# refused separately, as not available locally)
_DUCKDB_STATEMENTS = {
    "ATTACH": "",
    "DETACH": "",
    "INSTALL": "",
    "LOAD": "",
    "COPY": "; write query results to files with client.extract_table(...)",
    "PRAGMA": "",
    "SET": "",
    "RESET": "",
    "CHECKPOINT": "",
    "FORCE": "",
    "VACUUM": "",
    "USE": "",
    "SUMMARIZE": "",
    "DESCRIBE": "; see a table's columns in dataset.INFORMATION_SCHEMA.COLUMNS",
    "SHOW": "; list tables in dataset.INFORMATION_SCHEMA.TABLES",
    "CALL": "",
    "PIVOT": "",
}
# DuckDB table functions (duckdb_functions() of type 'table') that BigQuery lacks, and scalar
# functions that reach outside the database; UNNEST, RANGE and REPEAT are BigQuery's too.
_SHARED_NAMES = {"unnest", "range", "repeat"}
_OUTSIDE_SCALARS = {"getenv", "current_setting", "read_text", "read_blob"}
_duckdb_table_functions: set[str] | None = None


def _duckdb_only_function(name: str) -> bool:
    global _duckdb_table_functions
    if _duckdb_table_functions is None:
        rows = duckdb.connect().execute(
            "SELECT DISTINCT lower(function_name) FROM duckdb_functions() "
            "WHERE function_type IN ('table', 'table_macro')"
        )
        _duckdb_table_functions = {r[0] for r in rows.fetchall()} - _SHARED_NAMES
    name = name.lower()
    return name in _duckdb_table_functions or name in _OUTSIDE_SCALARS


def position(sql: str, offset: int) -> str:
    """BigQuery's ``[line:column]`` (1-based) of a character offset in ``sql``."""
    line = sql.count("\n", 0, offset) + 1
    column = offset - (sql.rfind("\n", 0, offset) + 1) + 1
    return f"[{line}:{column}]"


def _tokens(sql: str):
    from sqlglot.dialects.bigquery import BigQuery

    try:
        return BigQuery().tokenize(sql)
    except sqlglot.errors.TokenError:
        return []  # the parser reports it


def _refuse_by_tokens(sql: str) -> None:
    from sqlglot.tokens import TokenType

    tokens = _tokens(sql)
    first = 0  # index of the current statement's first token
    for i, tok in enumerate(tokens):
        if tok.token_type == TokenType.SEMICOLON:
            first = i + 1
            continue
        text = tok.text.upper()
        after = tokens[i + 1].text.upper() if i + 1 < len(tokens) else ""
        if i == first and tok.token_type not in (TokenType.IDENTIFIER, TokenType.STRING):
            if text in ("EXPORT", "IMPORT") and after == "DATABASE":
                raise UnsupportedSQL(NOT_BIGQUERY.format(construct=f"{text} DATABASE", hint=""))
            if text in ("EXPORT", "LOAD") and after == "DATA":
                raise UnsupportedSQL(
                    f"{text} DATA is BigQuery SQL the local warehouse does not run: use "
                    + (
                        "client.extract_table(...)"
                        if text == "EXPORT"
                        else "client.load_table_from_uri(...)"
                    )
                )
            if text in _DUCKDB_STATEMENTS:
                raise UnsupportedSQL(
                    NOT_BIGQUERY.format(construct=text, hint=_DUCKDB_STATEMENTS[text])
                )
        if text == "MODEL" and i > first:
            verb = tokens[first].text.upper()
            if verb in ("CREATE", "DROP", "ALTER", "EXPORT"):
                raise UnsupportedSQL(BIGQUERY_ML.format(construct=f"{verb} MODEL"))
        if (
            text == "ML"
            and after == "."
            and i + 3 < len(tokens)
            and tokens[i + 3].token_type == TokenType.L_PAREN
        ):
            raise UnsupportedSQL(BIGQUERY_ML.format(construct=f"ML.{tokens[i + 2].text.upper()}"))
        if (
            after == "("
            and tok.token_type not in (TokenType.IDENTIFIER, TokenType.STRING)
            and (i == 0 or tokens[i - 1].token_type != TokenType.DOT)
            and _duckdb_only_function(tok.text)
        ):
            reads_files = tok.text.lower().startswith(("read_", "glob", "parquet_", "sniff_"))
            hint = "; load files with client.load_table_from_uri(...)" if reads_files else ""
            raise UnsupportedSQL(NOT_BIGQUERY.format(construct=f"{tok.text.lower()}()", hint=hint))


def _reject(tree: exp.Expression, sql: str) -> None:
    """Raise UnsupportedSQL for parsed constructs the local warehouse cannot run."""
    if isinstance(tree, exp.Command):
        raise UnsupportedSQL(
            f"the statement {str(tree.this).upper()} ... is not supported by the local "
            f"warehouse: {sql.strip()[:80]!r}"
        )
    for node in tree.walk():
        if isinstance(node, exp.Predict):
            raise UnsupportedSQL(BIGQUERY_ML.format(construct="ML.PREDICT"))
        if isinstance(node, exp.Anonymous) and not _known_function(node.name):
            raise UnsupportedSQL(
                f"Function not found: {node.name.upper()} (the function {node.name.upper()}() "
                "has no equivalent in the local warehouse: known BigQuery functions are "
                "translated by sqlglot; this one is not)"
            )
        if isinstance(node, exp.Table) and "*" in node.name:
            raise UnsupportedSQL(f"wildcard table {node.name!r} is not supported locally")


# ---------------------------------------------------------------------------------------------
# Translation
# ---------------------------------------------------------------------------------------------

#: BigQuery's name for the public project, as legacy SQL and the course's notebooks spell it.
PROJECT_ALIASES = {"publicdata": "bigquery-public-data"}
CATALOG_VIEWS = ("COLUMNS", "TABLES", "SCHEMATA")


def canonical_project(project: str) -> str:
    return PROJECT_ALIASES.get(project, project)


@dataclass(frozen=True)
class CatalogView:
    """``INFORMATION_SCHEMA.<view>`` of a dataset (COLUMNS, TABLES) or project (SCHEMATA),
    registered under ``name`` when the statement runs."""

    name: str
    view: str
    project: str
    dataset: str | None


def _table_target(node) -> exp.Table | None:
    """The table a DDL/DML node writes (unwrapping a column list)."""
    if isinstance(node, exp.Schema):
        node = node.this
    return node if isinstance(node, exp.Table) and node.name else None


def _written(tree: exp.Expression) -> list[exp.Table]:
    if isinstance(tree, exp.Insert | exp.Update | exp.Delete | exp.Merge | exp.Create | exp.Alter):
        target = _table_target(tree.this)
        return [target] if target is not None else []
    if isinstance(tree, exp.Drop):
        return [t for t in tree.args.get("tables") or [tree.this] if _table_target(t) is not None]
    if isinstance(tree, exp.TruncateTable):
        return list(tree.expressions)
    return []


def _name(table: exp.Table, project: str) -> TableName:
    return TableName(canonical_project(table.catalog or project), table.db, table.name)


def _schema_statement(tree: exp.Create | exp.Drop, sql: str, project: str) -> Statement:
    """CREATE SCHEMA / DROP SCHEMA: the DuckDB schema is named ``<project>.<dataset>``."""
    target = tree.this if isinstance(tree, exp.Create) else (tree.args.get("tables") or [None])[0]
    if not isinstance(target, exp.Table) or not target.db:
        raise UnsupportedSQL("CREATE/DROP SCHEMA needs a dataset name: CREATE SCHEMA dataset")
    parts = [*(target.catalog.split(".") if target.catalog else []), *target.db.split(".")]
    if len(parts) == 1:
        parts = [project, *parts]
    if len(parts) != 2:
        raise UnsupportedSQL(
            f"a dataset is named dataset or project.dataset, not {'.'.join(parts)}"
        )
    dataset = TableName(canonical_project(parts[0]), parts[1], "")
    exists = " IF NOT EXISTS" if isinstance(tree, exp.Create) else " IF EXISTS"
    exists = exists if tree.args.get("exists") else ""
    if isinstance(tree, exp.Create):
        text = f"CREATE SCHEMA{exists} {quote(dataset.schema)}"
    else:
        text = f"DROP SCHEMA{exists} {quote(dataset.schema)}"
        text += " CASCADE" if tree.args.get("cascade") else ""
    return Statement(sql, text, False, writes=[dataset], schema_ddl=True)


def translate(sql: str, project: str) -> list[Statement]:
    """Translate a BigQuery script (one or more statements) into DuckDB statements."""
    _refuse_by_tokens(sql)
    try:
        trees = [t for t in sqlglot.parse(sql, read="bigquery") if t is not None]
    except ParseError as err:
        first = err.errors[0] if err.errors else {}
        where = f" at [{first['line']}:{first['col']}]" if first.get("line") else ""
        description = strip_ansi(first.get("description") or str(err)).split(". Line ")[0]
        description = re.sub(
            r"<Token token_type: [^,]+, text: (.*?), line: .*?>", r'"\1"', description
        )
        raise UnsupportedSQL(f"Syntax error: {description}{where}") from None
    statements = []
    views = 0
    for tree in trees:
        _reject(tree, sql)
        kind = str(tree.args.get("kind") or "").upper()
        if isinstance(tree, exp.Create | exp.Drop) and kind == "SCHEMA":
            statements.append(_schema_statement(tree, sql, project))
            continue
        if isinstance(tree, exp.Create):
            clone = tree.args.get("clone")
            if clone is not None:  # CREATE TABLE t COPY s / CLONE s: a copy of the rows
                tree.set("clone", None)
                tree.set("expression", exp.select("*").from_(clone.this.copy()))
            properties = tree.args.get("properties")
            if properties is not None:
                # PARTITION BY, CLUSTER BY and OPTIONS(...) only change storage and cost on
                # BigQuery, never a query's answer: accepted, and dropped here
                keep = [
                    p
                    for p in properties.expressions
                    if isinstance(p, exp.TemporaryProperty | exp.LikeProperty)
                ]
                tree.set("properties", exp.Properties(expressions=keep) if keep else None)
            for name in ("partition_by", "cluster_by"):
                tree.set(name, None)
        written = [_name(t, project) for t in _written(tree)]
        # CREATE makes its target and DROP ... IF EXISTS may name a missing one: neither must
        # exist already; every other table named must.
        created: list[TableName] = []
        if isinstance(tree, exp.Create) or (isinstance(tree, exp.Drop) and tree.args.get("exists")):
            created = written
        reads: list[TableName] = []
        catalog: list[CatalogView] = []
        for table in list(tree.find_all(exp.Table)):
            if not isinstance(table.this, exp.Identifier):
                continue  # a table function
            parts = table.name.split(".")
            if len(parts) == 2 and parts[0].upper() == "INFORMATION_SCHEMA":
                catalog.append(_catalog_view(table, parts[1].upper(), project, views))
                views += 1
                continue
            if not table.db:
                continue  # a CTE, or the new name of ALTER TABLE ... RENAME TO
            name = _name(table, project)
            if name not in created and name not in reads:
                reads.append(name)
            table.set("catalog", None)
            table.set("db", exp.to_identifier(name.schema, quoted=True))
            table.set("this", exp.to_identifier(name.table, quoted=True))
        for column in list(tree.find_all(exp.Column)):
            if column.args.get("db") is not None and column.args.get("table") is not None:
                schema = f"{canonical_project(column.catalog or project)}.{column.db}"
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
            raise UnsupportedSQL(f"the local warehouse cannot run this: {err}") from None
        statements.append(
            Statement(
                bigquery=sql,
                duckdb=text,
                is_query=isinstance(tree, exp.Query),
                reads=reads,
                creates=created if isinstance(tree, exp.Create) else [],
                parameters=params,
                positional=positional,
                writes=written,
                catalog=catalog,
            )
        )
    if not statements:
        raise UnsupportedSQL("the query text holds no SQL statement")
    return statements


def _catalog_view(table: exp.Table, view: str, project: str, index: int) -> CatalogView:
    if view not in CATALOG_VIEWS:
        raise UnsupportedSQL(
            f"INFORMATION_SCHEMA.{view} is not available in the local warehouse (COLUMNS, TABLES "
            "and SCHEMATA are)"
        )
    if view == "SCHEMATA":  # project.INFORMATION_SCHEMA.SCHEMATA or `region-us`.INFORMATION_...
        owner = table.db or project
        target = CatalogView(
            f"__information_schema_{index}",
            view,
            project if owner.lower().startswith("region-") else canonical_project(owner),
            None,
        )
    else:
        if not table.db:
            raise UnsupportedSQL(
                f"INFORMATION_SCHEMA.{view} needs a dataset: dataset.INFORMATION_SCHEMA.{view}"
            )
        target = CatalogView(
            f"__information_schema_{index}",
            view,
            canonical_project(table.catalog or project),
            table.db,
        )
    if not table.alias:
        table.set("alias", exp.TableAlias(this=exp.to_identifier(view)))
    table.set("catalog", None)
    table.set("db", None)
    table.set("this", exp.to_identifier(target.name, quoted=True))
    return target


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


_MISSING_FUNCTION = re.compile(
    r"(?:Scalar|Aggregate|Table)? ?Function with name \"?(\w+)\"? does not exist", re.I
)


def explain_duckdb_error(err: duckdb.Error) -> UnsupportedSQL | None:
    """An UnsupportedSQL for a DuckDB error that means 'BigQuery construct with no equivalent'."""
    match = _MISSING_FUNCTION.search(str(err))
    if match:
        return UnsupportedSQL(
            f"Function not found: {match.group(1).upper()} (it has no equivalent in the local "
            "warehouse)"
        )
    return None
