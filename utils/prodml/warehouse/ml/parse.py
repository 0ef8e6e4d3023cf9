"""Parsing BigQuery ML: the statements and table functions, as sqlglot expressions.

sqlglot's BigQuery dialect parses ``CREATE MODEL`` (with ``TRANSFORM`` and ``OPTIONS``),
``DROP MODEL`` and ``ML.PREDICT(MODEL m, ...)``, but not the other table functions that take a
``MODEL`` argument. :data:`DIALECT` is BigQuery's dialect with ``ML.EVALUATE``,
``ML.TRAINING_INFO``, ``ML.WEIGHTS`` and ``ML.FEATURE_INFO`` added (each an :class:`MLFunction`
with the model as ``this``, the input query or table as ``expression`` and the ``STRUCT`` of
settings as ``params_struct``, the shape sqlglot gives ``ML.PREDICT``), and it writes them back
as BigQuery SQL.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.dialects.bigquery import BigQuery
from sqlglot.errors import ParseError
from sqlglot.tokens import TokenType

from prodml.warehouse.ml.errors import InvalidQuery

# sqlglot 30 made Func a mixin beside Expression; before, Func was an Expression itself
_FUNC_BASES = (exp.Func,) if issubclass(exp.Func, exp.Expression) else (exp.Expression, exp.Func)


class MLFunction(*_FUNC_BASES):
    """A BigQuery ML table function sqlglot does not know: ``ML.<NAME>(MODEL m [, input]
    [, STRUCT(...)])``."""

    arg_types = {"this": True, "expression": False, "params_struct": False}


class MLEvaluate(MLFunction):
    """``ML.EVALUATE``."""

    _sql_names = ["ML_EVALUATE"]


class MLTrainingInfo(MLFunction):
    """``ML.TRAINING_INFO``."""

    _sql_names = ["ML_TRAINING_INFO"]


class MLWeights(MLFunction):
    """``ML.WEIGHTS``."""

    _sql_names = ["ML_WEIGHTS"]


class MLFeatureInfo(MLFunction):
    """``ML.FEATURE_INFO``."""

    _sql_names = ["ML_FEATURE_INFO"]


_ADDED = {
    "EVALUATE": MLEvaluate,
    "TRAINING_INFO": MLTrainingInfo,
    "WEIGHTS": MLWeights,
    "FEATURE_INFO": MLFeatureInfo,
}
#: Every BigQuery ML table function this engine answers, by its BigQuery name.
TABLE_FUNCTIONS: dict[str, type[exp.Expression]] = {"PREDICT": exp.Predict, **_ADDED}
#: The preprocessing functions (scalar or analytic) the engine rewrites into plain SQL.
PREPROCESSING = {"BUCKETIZE", "QUANTILE_BUCKETIZE", "STANDARD_SCALER", "MIN_MAX_SCALER"}
PREPROCESSING |= {"FEATURE_CROSS"}


def _ml_function_parser(kind: type[MLFunction], name: str):
    def parse(self):
        # only after ``ML.``: a function of the same name elsewhere stays an ordinary call
        prefix = self._tokens[self._index - 4] if self._index >= 4 else None
        if prefix is None or prefix.text.upper() != "ML":
            return exp.Anonymous(this=name, expressions=self._parse_csv(self._parse_lambda))
        self._match_text_seq("MODEL")
        model = self._parse_table()
        source = params = None
        if self._match(TokenType.COMMA):
            if self._match_text_seq("TABLE"):
                source = self._parse_table()
            elif self._curr and self._curr.token_type == TokenType.L_PAREN:
                source = self._parse_table()
            else:
                params = self._parse_bitwise()
        if params is None and self._match(TokenType.COMMA):
            params = self._parse_bitwise()
        return self.expression(kind(this=model, expression=source, params_struct=params))

    return parse


def _ml_function_sql(self, node: MLFunction) -> str:
    name = next(k for k, v in _ADDED.items() if isinstance(node, v))
    args = [f"MODEL {self.sql(node, 'this')}"]
    if node.expression is not None:
        source = node.expression
        args.append(
            self.sql(source)
            if isinstance(source, exp.Subquery)
            else f"TABLE {source.sql('bigquery')}"
        )
    if node.args.get("params_struct") is not None:
        args.append(self.sql(node, "params_struct"))
    return f"{name}({', '.join(args)})"


class BigQueryML(BigQuery):
    """BigQuery's dialect, with every BigQuery ML table function the engine answers."""

    class Parser(BigQuery.Parser):
        FUNCTION_PARSERS = {
            **BigQuery.Parser.FUNCTION_PARSERS,
            **{name: _ml_function_parser(kind, name) for name, kind in _ADDED.items()},
        }

    class Generator(BigQuery.Generator):
        TRANSFORMS = {
            **BigQuery.Generator.TRANSFORMS,
            **dict.fromkeys(_ADDED.values(), _ml_function_sql),
        }


DIALECT = BigQueryML


def parse(sql: str) -> list[exp.Expression]:
    """The statements of a BigQuery script, BigQuery ML's statements and table functions
    included. A syntax error is an :class:`InvalidQuery` naming where it is."""
    try:
        return [tree for tree in sqlglot.parse(sql, dialect=DIALECT) if tree is not None]
    except ParseError as err:
        _refuse_unknown_table_function(sql)
        first = err.errors[0] if err.errors else {}
        where = f" at [{first['line']}:{first['col']}]" if first.get("line") else ""
        description = str(first.get("description") or err).split(". Line ")[0]
        raise InvalidQuery(f"Syntax error: {description}{where}") from None


SUPPORTED = "ML.PREDICT, ML.EVALUATE, ML.TRAINING_INFO, ML.WEIGHTS and ML.FEATURE_INFO"


def _refuse_unknown_table_function(sql: str) -> None:
    """``ML.<NAME>(MODEL ...`` for a table function this engine lacks: say so by name (sqlglot
    would only report a syntax error)."""
    tokens = DIALECT().tokenize(sql)
    for i in range(len(tokens) - 4):
        ml, dot, name, paren, model = (t.text.upper() for t in tokens[i : i + 5])
        if (ml, dot, paren, model) == ("ML", ".", "(", "MODEL") and name not in TABLE_FUNCTIONS:
            raise InvalidQuery(
                f"ML.{name} is not supported by the local warehouse's BigQuery ML (it runs "
                f"{SUPPORTED}): run it on BigQuery itself (warehouse='bigquery')"
            )


def to_sql(tree: exp.Expression) -> str:
    """A statement or expression back as BigQuery SQL."""
    return tree.sql(dialect=DIALECT)


@dataclass(frozen=True)
class ModelName:
    """A model ``project.dataset.model``."""

    project: str
    dataset: str
    model_id: str

    def __str__(self) -> str:
        return f"{self.project}.{self.dataset}.{self.model_id}"

    @property
    def path(self) -> str:
        """BigQuery's spelling in messages: ``project:dataset.model``."""
        return f"{self.project}:{self.dataset}.{self.model_id}"


def model_name(table: exp.Expression, project: str, dataset: str | None) -> ModelName:
    """The model a ``MODEL`` argument or a ``CREATE/DROP MODEL`` target names, with the job's
    default project and dataset filled in (``model``, ``dataset.model``, ``project.dataset.model``,
    quoted whole or in parts)."""
    parts = [p.name for p in (table.args.get("catalog"), table.args.get("db"), table.this) if p]
    parts = [piece for part in parts for piece in part.split(".")]
    if len(parts) == 1 and dataset:
        parts = [dataset, *parts]
    if len(parts) == 2:
        parts = [project, *parts]
    if len(parts) != 3 or not all(parts):
        raise InvalidQuery(
            f"Table-valued function or model name {'.'.join(parts)!r} is missing a dataset while no "
            "default dataset is set in the request"
        )
    return ModelName(*parts)


def is_model_statement(statement: exp.Expression) -> bool:
    """``CREATE [OR REPLACE] MODEL`` or ``DROP MODEL``."""
    kind = str(statement.args.get("kind") or "").upper()
    return isinstance(statement, exp.Create | exp.Drop) and kind == "MODEL"


def table_functions(statement: exp.Expression) -> list[exp.Expression]:
    """The BigQuery ML table functions in a statement, innermost first."""
    kinds = tuple(TABLE_FUNCTIONS.values())
    return [node for node in statement.walk(bfs=False) if isinstance(node, kinds)][::-1]


def preprocessing_name(node: exp.Expression) -> str | None:
    """``BUCKETIZE`` for ``ML.BUCKETIZE(...)`` (a ``Dot`` of ``ML`` and the call), else None."""
    if not isinstance(node, exp.Dot) or node.this.name.upper() != "ML":
        return None
    call = node.expression
    name = call.name.upper() if isinstance(call, exp.Anonymous) else ""
    return name if name in PREPROCESSING else None


def preprocessing_calls(tree: exp.Expression) -> list[exp.Dot]:
    """The ML preprocessing function calls in a tree (``ML.BUCKETIZE(...)`` ...), innermost
    first, so that rewriting them in this order never rewrites a call twice."""
    return [n for n in tree.walk(bfs=False) if preprocessing_name(n)][::-1]


def unknown_ml_call(tree: exp.Expression) -> str | None:
    """The name of an ``ML.<NAME>(...)`` call this engine does not run, if any."""
    for node in tree.walk():
        if isinstance(node, exp.Dot) and node.this.name.upper() == "ML":
            call = node.expression
            if isinstance(call, exp.Func) and not preprocessing_name(node):
                if not isinstance(call, tuple(TABLE_FUNCTIONS.values())):
                    return f"ML.{(call.name or call.sql_name()).upper()}"
    return None


def has_ml_functions(statement: exp.Expression) -> bool:
    """A statement (not a model statement) that calls BigQuery ML: a table function
    (``ML.PREDICT``, ``ML.EVALUATE``...) or a preprocessing function (``ML.BUCKETIZE``...)."""
    if is_model_statement(statement):
        return False
    return bool(
        table_functions(statement) or preprocessing_calls(statement) or unknown_ml_call(statement)
    )


__all__ = [
    "DIALECT",
    "PREPROCESSING",
    "TABLE_FUNCTIONS",
    "BigQueryML",
    "MLEvaluate",
    "MLFeatureInfo",
    "MLFunction",
    "MLTrainingInfo",
    "MLWeights",
    "ModelName",
    "has_ml_functions",
    "is_model_statement",
    "model_name",
    "parse",
    "preprocessing_calls",
    "preprocessing_name",
    "table_functions",
    "to_sql",
    "unknown_ml_call",
]
