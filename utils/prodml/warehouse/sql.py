"""BigQuery Standard SQL -> DuckDB SQL: sqlglot's dialect translation, plus a list of named
rewrite passes for what sqlglot cannot know.

:func:`translate` refuses what does not run here (by tokens, before parsing:
:mod:`~prodml.warehouse.refusals`), parses the script with sqlglot, runs every statement through
:data:`PASSES` in order and writes it out as DuckDB SQL. Each pass takes the statement's tree and
a :class:`Context` (which it may fill: the tables read and written, the views, the parameters)
and returns the tree:

``reject_unsupported``   DuckDB-only statements, unknown functions, wildcard tables
``bigquery_ddl``         ``CREATE TABLE ... COPY|CLONE`` as ``AS SELECT``; ``PARTITION BY``,
                         ``CLUSTER BY`` and ``OPTIONS(...)`` dropped (on BigQuery they change
                         storage and cost, never an answer)
``written_tables``       the tables (or dataset) a statement writes or creates
``information_schema``   ``INFORMATION_SCHEMA`` views (:mod:`~prodml.warehouse.catalog`)
``table_names``          ``project.dataset.table`` -> ``"project.dataset"."table"``;
                         ``publicdata.`` is ``bigquery-public-data.``; bare names take the job's
                         default dataset
``column_qualifiers``    ``dataset.table.column`` references, the same way
``parameters``           the ``@named`` and ``?`` parameters used
``bigquery_semantics``   casts, ``APPROX_QUANTILES``, ``DAYOFWEEK`` (:mod:`~prodml.warehouse.rewrites`)

Translations are cached: a query run again (a loop, a dashboard, a benchmark) is not parsed
again.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, ParseError, UnsupportedError

from prodml.warehouse import catalog, refusals
from prodml.warehouse.catalog import CatalogView
from prodml.warehouse.errors import InvalidQuery
from prodml.warehouse.functions import UDFS
from prodml.warehouse.names import TableName, canonical_project
from prodml.warehouse.rewrites import rewrite_node

__all__ = [
    "NONDETERMINISTIC",
    "Statement",
    "Context",
    "PASSES",
    "deterministic",
    "translate",
    "translate_tree",
    "position",
]


@dataclass
class Statement:
    """One translated statement of a script."""

    bigquery: str  # the whole script, as sent (for error positions)
    duckdb: str
    statement_type: str  # BigQuery's statementType: SELECT, INSERT, CREATE_TABLE...
    reads: list[TableName] = field(default_factory=list)
    writes: list[TableName] = field(default_factory=list)  # dataset statements: table ""
    creates: list[TableName] = field(default_factory=list)
    parameters: list[str] = field(default_factory=list)  # named parameters used, in order
    positional: int = 0  # count of ? parameters
    catalog: list[CatalogView] = field(default_factory=list)  # INFORMATION_SCHEMA views used
    tree: exp.Expression | None = None  # BigQuery ML statements: the parsed statement
    deterministic: bool = True  # no function whose answer depends on when it runs

    @property
    def is_query(self) -> bool:
        """Whether the statement returns rows."""
        return self.statement_type == "SELECT"

    @functools.cached_property
    def cacheable(self) -> bool:
        """Whether BigQuery would cache this statement's answer: a query, not BigQuery ML,
        deterministic, reading neither INFORMATION_SCHEMA nor a wildcard table."""
        return (
            self.is_query
            and not self.is_ml
            and self.deterministic
            and not self.catalog
            and not any(name.table.endswith("*") for name in self.reads)
        )

    @property
    def is_ml(self) -> bool:
        """Whether the statement is BigQuery ML (for the ML engine)."""
        return self.tree is not None


@dataclass
class Context:
    """What the passes learn about one statement."""

    project: str
    dataset: str | None  # the job's default dataset
    views: int = 0  # INFORMATION_SCHEMA views named so far in the script
    reads: list[TableName] = field(default_factory=list)
    writes: list[TableName] = field(default_factory=list)
    creates: list[TableName] = field(default_factory=list)
    parameters: list[str] = field(default_factory=list)
    positional: int = 0
    catalog: list[CatalogView] = field(default_factory=list)


def position(sql: str, offset: int) -> str:
    """BigQuery's ``[line:column]`` (1-based) of a character offset in ``sql``."""
    line = sql.count("\n", 0, offset) + 1
    column = offset - (sql.rfind("\n", 0, offset) + 1) + 1
    return f"[{line}:{column}]"


# -- the passes ----------------------------------------------------------------------------------


def reject_unsupported(tree: exp.Expression, ctx: Context) -> exp.Expression:
    refusals.reject(tree, UDFS)
    return tree


def bigquery_ddl(tree: exp.Expression, ctx: Context) -> exp.Expression:
    if not isinstance(tree, exp.Create):
        return tree
    clone = tree.args.get("clone")
    if clone is not None:  # CREATE TABLE t COPY s / CLONE s: a copy of the rows
        tree.set("clone", None)
        tree.set("expression", exp.select("*").from_(clone.this.copy()))
    properties = tree.args.get("properties")
    if properties is not None:
        keep = [
            p
            for p in properties.expressions
            if isinstance(p, exp.TemporaryProperty | exp.LikeProperty)
        ]
        tree.set("properties", exp.Properties(expressions=keep) if keep else None)
    for name in ("partition_by", "cluster_by"):
        tree.set(name, None)
    return tree


def _target(node) -> exp.Table | None:
    """The table a DDL/DML node names (unwrapping a column list)."""
    if isinstance(node, exp.Schema):
        node = node.this
    return node if isinstance(node, exp.Table) and (node.name or node.db) else None


def _kind(tree: exp.Expression) -> str:
    return str(tree.args.get("kind") or "").upper()


def _written(tree: exp.Expression) -> list[exp.Table]:
    if isinstance(tree, exp.Insert | exp.Update | exp.Delete | exp.Merge | exp.Create | exp.Alter):
        target = _target(tree.this)
        return [target] if target is not None else []
    if isinstance(tree, exp.Drop):
        return [t for t in tree.args.get("tables") or [tree.this] if _target(t) is not None]
    if isinstance(tree, exp.TruncateTable):
        return list(tree.expressions)
    return []


def _dataset_of(table: exp.Table, ctx: Context) -> TableName:
    """``CREATE|DROP SCHEMA [project.]dataset``: sqlglot parses the dataset as the table's db."""
    parts = [*(table.catalog.split(".") if table.catalog else []), *table.db.split(".")]
    parts = [ctx.project, *parts] if len(parts) == 1 else parts
    if len(parts) != 2 or not all(parts):
        raise InvalidQuery(f"a dataset is named dataset or project.dataset, not {'.'.join(parts)}")
    return TableName(canonical_project(parts[0]), parts[1], "")


def written_tables(tree: exp.Expression, ctx: Context) -> exp.Expression:
    if _kind(tree) == "SCHEMA":
        for table in _written(tree):
            dataset = _dataset_of(table, ctx)
            ctx.writes.append(dataset)
            table.set("catalog", None)
            table.set("db", exp.to_identifier(dataset.schema, quoted=True))
        return tree
    written = [_qualified(t, ctx) for t in _written(tree)]
    ctx.writes.extend(written)
    # CREATE makes its target and DROP ... IF EXISTS may name a missing one: neither must exist
    if isinstance(tree, exp.Create) or (isinstance(tree, exp.Drop) and tree.args.get("exists")):
        ctx.creates.extend(written)
    return tree


def information_schema(tree: exp.Expression, ctx: Context) -> exp.Expression:
    for table in list(tree.find_all(exp.Table)):
        view = catalog.information_schema(table, ctx.project, ctx.views)
        if view is not None:
            ctx.catalog.append(view)
            ctx.views += 1
    return tree


def _qualified(table: exp.Table, ctx: Context) -> TableName:
    if table.db:
        return TableName(canonical_project(table.catalog or ctx.project), table.db, table.name)
    if ctx.dataset is None:
        raise InvalidQuery(
            f'Table "{table.name}" must be qualified with a dataset (e.g. dataset.table).'
        )
    return TableName(ctx.project, ctx.dataset, table.name)


def _skipped(table: exp.Table, ctes: set[str]) -> bool:
    """Tables the naming pass leaves alone: table functions, CTEs, the warehouse's own
    relations (bare names starting ``__``: INFORMATION_SCHEMA views being answered, tables the
    BigQuery ML engine materialised), schema statements' targets and the new name of ALTER
    TABLE ... RENAME TO."""
    return (
        not isinstance(table.this, exp.Identifier)
        or (not table.db and table.name.startswith("__"))
        or not table.name
        or (not table.db and table.name.lower() in ctes)
        or isinstance(table.parent, exp.AlterRename)
    )


def table_names(tree: exp.Expression, ctx: Context) -> exp.Expression:
    if _kind(tree) == "SCHEMA":
        return tree
    ctes = {cte.alias.lower() for cte in tree.find_all(exp.CTE)}
    for table in list(tree.find_all(exp.Table)):
        if _skipped(table, ctes):
            continue
        name = _qualified(table, ctx)
        if name not in ctx.creates and name not in ctx.reads and name not in ctx.writes:
            ctx.reads.append(name)
        table.set("catalog", None)
        table.set("db", exp.to_identifier(name.schema, quoted=True))
        table.set("this", exp.to_identifier(name.table, quoted=True))
    return tree


def column_qualifiers(tree: exp.Expression, ctx: Context) -> exp.Expression:
    for column in list(tree.find_all(exp.Column)):
        if column.args.get("db") is not None and column.args.get("table") is not None:
            schema = f"{canonical_project(column.catalog or ctx.project)}.{column.db}"
            column.set("catalog", None)
            column.set("db", exp.to_identifier(schema, quoted=True))
    return tree


def parameters(tree: exp.Expression, ctx: Context) -> exp.Expression:
    for node in tree.find_all(exp.Parameter):
        if node.name not in ctx.parameters:
            ctx.parameters.append(node.name)
    ctx.positional = sum(1 for _ in tree.find_all(exp.Placeholder))
    return tree


def bigquery_semantics(tree: exp.Expression, ctx: Context) -> exp.Expression:
    return tree.transform(rewrite_node, copy=False)


#: The rewrite passes, in the order they run (see the module's docstring).
PASSES: list[tuple[str, Callable[[exp.Expression, Context], exp.Expression]]] = [
    ("reject_unsupported", reject_unsupported),
    ("bigquery_ddl", bigquery_ddl),
    ("written_tables", written_tables),
    ("information_schema", information_schema),
    ("table_names", table_names),
    ("column_qualifiers", column_qualifiers),
    ("parameters", parameters),
    ("bigquery_semantics", bigquery_semantics),
]


# -- translation ---------------------------------------------------------------------------------

_TYPES: list[tuple[type, str]] = [
    (exp.Query, "SELECT"),
    (exp.Insert, "INSERT"),
    (exp.Update, "UPDATE"),
    (exp.Delete, "DELETE"),
    (exp.Merge, "MERGE"),
    (exp.Alter, "ALTER_TABLE"),
    (exp.TruncateTable, "TRUNCATE_TABLE"),
]


def statement_type(tree: exp.Expression) -> str:
    """BigQuery's ``statementType`` of a parsed statement."""
    kind = _kind(tree) or "TABLE"
    if isinstance(tree, exp.Create):
        as_select = kind == "TABLE" and tree.expression is not None
        return "CREATE_TABLE_AS_SELECT" if as_select else f"CREATE_{kind}"
    if isinstance(tree, exp.Drop):
        return f"DROP_{kind}"
    return next((name for cls, name in _TYPES if isinstance(tree, cls)), "SCRIPT")


#: BigQuery's functions whose answer depends on when (or by whom) a query runs, as sqlglot
#: names them (GENERATE_UUID is UUID): a query calling one is never answered from the cache
NONDETERMINISTIC = frozenset(
    {"CURRENT_DATE", "CURRENT_DATETIME", "CURRENT_TIME", "CURRENT_TIMESTAMP", "RAND", "UUID",
     "SESSION_USER"}
)  # fmt: skip


def deterministic(tree: exp.Expression) -> bool:
    """Whether a statement's answer depends only on the data (no NONDETERMINISTIC function,
    no TABLESAMPLE)."""
    if tree.find(exp.TableSample) is not None:
        return False
    return not any(
        (f.name if isinstance(f, exp.Anonymous) else f.sql_name()).upper() in NONDETERMINISTIC
        for f in tree.find_all(exp.Func)
    )


def translate_tree(tree: exp.Expression, sql: str, ctx: Context) -> Statement:
    """Run the passes over one parsed statement and write it as DuckDB SQL."""
    stable = deterministic(tree)
    for _name, run in PASSES:
        tree = run(tree, ctx)
    try:
        text = tree.sql(dialect="duckdb", unsupported_level=ErrorLevel.RAISE)
    except UnsupportedError as err:
        raise InvalidQuery(f"the local warehouse cannot run this: {err}") from None
    return Statement(
        bigquery=sql,
        duckdb=text,
        statement_type=statement_type(tree),
        reads=ctx.reads,
        writes=ctx.writes,
        creates=ctx.creates if isinstance(tree, exp.Create) else [],
        parameters=ctx.parameters,
        positional=ctx.positional,
        catalog=ctx.catalog,
        deterministic=stable,
    )


def _parse(sql: str) -> list[exp.Expression]:
    try:
        return [t for t in sqlglot.parse(sql, read="bigquery") if t is not None]
    except ParseError as err:
        first = err.errors[0] if err.errors else {}
        where = f" at [{first['line']}:{first['col']}]" if first.get("line") else ""
        text = re.sub(r"\x1b\[[0-9;]*m", "", first.get("description") or str(err))
        text = re.sub(r"<Token token_type: [^,]+, text: (.*?), line: .*?>", r'"\1"', text)
        raise InvalidQuery(f"Syntax error: {text.split('. Line ')[0]}{where}") from None


def translate(sql: str, project: str, dataset: str | None = None, ml=None) -> tuple[Statement, ...]:
    """Translate a BigQuery script (one or more statements) into DuckDB statements.

    ``dataset`` is the job's default dataset (bare table names); ``ml`` the BigQuery ML engine
    (a module with ``is_model_statement`` and ``has_ml_functions``, and optionally ``parse``, its
    parser of a script that uses BigQuery ML), or None to refuse BigQuery ML. Statements the
    engine takes come back with their parsed ``tree`` and no DuckDB text.
    """
    return _translate(sql, project, dataset, ml)


@functools.lru_cache(maxsize=512)
def _translate(sql: str, project: str, dataset: str | None, ml) -> tuple[Statement, ...]:
    has_ml = refusals.refuse_by_tokens(sql, allow_ml=ml is not None)
    statements = []
    views = 0
    # BigQuery ML's table functions are more than sqlglot's BigQuery dialect parses: an engine
    # may bring its own parser (``parse(sql)``) for the scripts that use BigQuery ML
    trees = ml.parse(sql) if has_ml and hasattr(ml, "parse") else _parse(sql)
    for tree in trees:
        if has_ml and (ml.is_model_statement(tree) or ml.has_ml_functions(tree)):
            kind = statement_type(tree) if ml.is_model_statement(tree) else "SELECT"
            statements.append(Statement(sql, "", kind, tree=tree))
            continue
        ctx = Context(project, dataset, views=views)
        statements.append(translate_tree(tree, sql, ctx))
        views = ctx.views
    if not statements:
        raise InvalidQuery("the query text holds no SQL statement")
    return tuple(statements)
