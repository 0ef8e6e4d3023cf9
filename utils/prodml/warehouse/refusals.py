"""What the local warehouse refuses, and in which words.

SQL that runs here must run on BigQuery, so DuckDB's own statements (``COPY``, ``ATTACH``,
``PRAGMA``, ``SET``...) and table functions (``read_csv()``, ``glob()``...) are refused as
"not BigQuery SQL". BigQuery ML is refused with one message when no BigQuery ML engine is
plugged in (see ``prodml.warehouse.engine.ML_ENGINE``). Some of this is refused by tokens,
before parsing: not all of it is even parseable as BigQuery SQL.
"""

from __future__ import annotations

import duckdb
import sqlglot
from sqlglot import exp
from sqlglot.tokens import TokenType

from prodml.warehouse.errors import InvalidQuery

__all__ = ["BIGQUERY_ML", "NOT_BIGQUERY", "refuse_by_tokens", "reject", "ml_construct"]

BIGQUERY_ML = (
    "{construct} is BigQuery ML, which the local warehouse does not run. Train, evaluate and "
    "predict with the model in Python instead (Keras, as the babyweight notebooks do), or set "
    "warehouse='bigquery' to run BigQuery ML on BigQuery itself"
)
NOT_BIGQUERY = (
    "{construct} is not BigQuery SQL (it is DuckDB's): the local warehouse runs only SQL that "
    "also runs on BigQuery{hint}"
)
# statements DuckDB has and BigQuery does not, with a hint where BigQuery has another way
_DUCKDB_STATEMENTS = {
    **dict.fromkeys(
        ["ATTACH", "DETACH", "INSTALL", "LOAD", "PRAGMA", "SET", "RESET", "CHECKPOINT", "FORCE",
         "VACUUM", "USE", "SUMMARIZE", "CALL", "PIVOT"],
        "",
    ),
    "COPY": "; write query results to files with client.extract_table(...)",
    "DESCRIBE": "; see a table's columns in dataset.INFORMATION_SCHEMA.COLUMNS",
    "SHOW": "; list tables in dataset.INFORMATION_SCHEMA.TABLES",
}  # fmt: skip
# BigQuery statements that exist but are not run locally, with what to use instead
_BIGQUERY_ELSEWHERE = {
    ("EXPORT", "DATA"): "client.extract_table(...)",
    ("LOAD", "DATA"): "client.load_table_from_uri(...)",
}
# DuckDB table functions BigQuery lacks (UNNEST, RANGE and REPEAT are BigQuery's too), and
# scalar functions that reach outside the database
_SHARED_NAMES = {"unnest", "range", "repeat"}
_OUTSIDE_SCALARS = {"getenv", "current_setting", "read_text", "read_blob"}
_MODEL_VERBS = {"CREATE", "DROP", "ALTER", "EXPORT"}
_catalogue: dict[str, set[str]] = {}


def _duckdb_names(kind: str) -> set[str]:
    """DuckDB's function names: ``table`` (table functions) or ``all`` (every function)."""
    if kind not in _catalogue:
        where = "WHERE function_type IN ('table', 'table_macro')" if kind == "table" else ""
        rows = duckdb.connect().execute(
            f"SELECT DISTINCT lower(function_name) FROM duckdb_functions() {where}"
        )
        _catalogue[kind] = {r[0] for r in rows.fetchall()}
    return _catalogue[kind]


def _duckdb_only_function(name: str) -> bool:
    name = name.lower()
    return name in _duckdb_names("table") - _SHARED_NAMES or name in _OUTSIDE_SCALARS


def _tokens(sql: str):
    from sqlglot.dialects.bigquery import BigQuery

    try:
        return BigQuery().tokenize(sql)
    except sqlglot.errors.TokenError:
        return []  # the parser reports it


def _statement_word(tokens, i: int, first: int) -> str | None:
    """The refusal of a statement's first word (``COPY``, ``EXPORT DATABASE``...), if any."""
    tok = tokens[i]
    if i != first or tok.token_type in (TokenType.IDENTIFIER, TokenType.STRING):
        return None
    text = tok.text.upper()
    after = tokens[i + 1].text.upper() if i + 1 < len(tokens) else ""
    if text in ("EXPORT", "IMPORT") and after == "DATABASE":
        return NOT_BIGQUERY.format(construct=f"{text} DATABASE", hint="")
    if (text, after) in _BIGQUERY_ELSEWHERE:
        use = _BIGQUERY_ELSEWHERE[(text, after)]
        return f"{text} DATA is BigQuery SQL the local warehouse does not run: use {use}"
    if text in _DUCKDB_STATEMENTS:
        return NOT_BIGQUERY.format(construct=text, hint=_DUCKDB_STATEMENTS[text])
    return None


def ml_construct(tokens, i: int, first: int) -> str | None:
    """``CREATE MODEL``, ``ML.PREDICT``... when the token at ``i`` starts BigQuery ML."""
    tok = tokens[i]
    text = tok.text.upper()
    if text == "MODEL" and i > first and tokens[first].text.upper() in _MODEL_VERBS:
        return f"{tokens[first].text.upper()} MODEL"
    if (
        text == "ML"
        and i + 3 < len(tokens)
        and tokens[i + 1].token_type == TokenType.DOT
        and tokens[i + 3].token_type == TokenType.L_PAREN
    ):
        return f"ML.{tokens[i + 2].text.upper()}"
    return None


def _function_call(tokens, i: int) -> str | None:
    """The refusal of a DuckDB-only function called at token ``i``, if any."""
    tok = tokens[i]
    if (
        i + 1 >= len(tokens)
        or tokens[i + 1].token_type != TokenType.L_PAREN
        or tok.token_type in (TokenType.IDENTIFIER, TokenType.STRING)
        or (i > 0 and tokens[i - 1].token_type == TokenType.DOT)
        or not _duckdb_only_function(tok.text)
    ):
        return None
    reads_files = tok.text.lower().startswith(("read_", "glob", "parquet_", "sniff_"))
    hint = "; load files with client.load_table_from_uri(...)" if reads_files else ""
    return NOT_BIGQUERY.format(construct=f"{tok.text.lower()}()", hint=hint)


def refuse_by_tokens(sql: str, allow_ml: bool = False) -> bool:
    """Raise :class:`InvalidQuery` for DuckDB-only SQL (and BigQuery ML unless ``allow_ml``);
    returns whether the text holds BigQuery ML."""
    tokens = _tokens(sql)
    first, has_ml = 0, False  # index of the current statement's first token
    for i, tok in enumerate(tokens):
        if tok.token_type == TokenType.SEMICOLON:
            first = i + 1
            continue
        message = _statement_word(tokens, i, first) or _function_call(tokens, i)
        if message:
            raise InvalidQuery(message)
        construct = ml_construct(tokens, i, first)
        if construct and not allow_ml:
            raise InvalidQuery(BIGQUERY_ML.format(construct=construct))
        has_ml = has_ml or construct is not None
    return has_ml


def known_function(name: str, udfs: set[str]) -> bool:
    """Whether DuckDB (or one of the warehouse's own functions) has a function ``name``."""
    return name.lower() in _duckdb_names("all") or name.upper() in udfs


def reject(tree: exp.Expression, udfs: set[str]) -> None:
    """Raise :class:`InvalidQuery` for parsed constructs the local warehouse cannot run."""
    if isinstance(tree, exp.Command):
        raise InvalidQuery(
            f"the statement {str(tree.this).upper()} ... is not supported by the local "
            f"warehouse: {tree.sql()[:80]!r}"
        )
    for node in tree.walk():
        if isinstance(node, exp.Anonymous) and not known_function(node.name, udfs):
            name = node.name.upper()
            raise InvalidQuery(
                f"Function not found: {name} (the function {name}() has no equivalent in the "
                "local warehouse: known BigQuery functions are translated by sqlglot; this one "
                "is not)"
            )
        if isinstance(node, exp.Table) and "*" in node.name:
            raise InvalidQuery(f"wildcard table {node.name!r} is not supported locally")
