"""A model's frozen ``TRANSFORM`` as TensorFlow ops, for the SavedModel the model exports.

The TRANSFORM a model stores is BigQuery SQL with its fitted constants in it
(:func:`.preprocess.freeze_transform`): ``ML.BUCKETIZE`` and ``ML.QUANTILE_BUCKETIZE`` are
``CASE`` expressions over split points, the scalers arithmetic with the training statistics,
``ML.FEATURE_CROSS`` a ``STRUCT`` of ``CONCAT``\\ s. :func:`evaluate` runs that same SQL on a
batch of tensors, so the exported model applies exactly the transform ML.PREDICT applies: one
definition, two executions (DuckDB in the warehouse, TensorFlow in the SavedModel).

This is not a SQL compiler: it runs what those rewrites produce and the plain items a course
TRANSFORM holds -- column references, literals, ``CAST`` (to FLOAT64, or to STRING from STRING
and BOOL), ``CASE``, ``IS NULL``, comparisons, ``+ - * /``, ``CONCAT``, ``GREATEST``/``LEAST``
and ``STRUCT``. Anything else (``AND``/``OR``, ``IF``, other functions) is refused, naming the
expression, when the model is registered. NULL follows SQL's rules: each value carries a null mask (a NaN number input is
NULL), an operator on NULL gives NULL, a ``WHEN`` that is NULL is not taken.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlglot import exp

from prodml.warehouse.ml.errors import InvalidQuery

NUMBER, STRING, BOOL, NULL = "number", "string", "bool", "null"
_NUMERIC_CASTS = {"DOUBLE", "FLOAT", "DECIMAL", "BIGDECIMAL"}
_TEXT_CASTS = {"TEXT", "VARCHAR", "CHAR"}
_ARITHMETIC = {exp.Add: "add", exp.Sub: "subtract", exp.Mul: "multiply", exp.Div: "divide"}
_COMPARISONS = {exp.EQ: "equal", exp.NEQ: "not_equal", exp.LT: "less", exp.LTE: "less_equal",
                exp.GT: "greater", exp.GTE: "greater_equal"}  # fmt: skip


@dataclass
class Value:
    """A SQL value over a batch: its tensor (None for the NULL literal), its null mask and its
    kind (number: float64, string, bool)."""

    tensor: Any
    null: Any
    kind: str


class Unsupported(InvalidQuery):
    """An expression the SavedModel export cannot run."""


def _tf():
    import tensorflow as tf

    return tf


def _zero(kind: str):
    tf = _tf()
    return {NUMBER: tf.constant(0.0, tf.float64), STRING: tf.constant(""),
            BOOL: tf.constant(False)}[kind]  # fmt: skip


def _filled(value: Value, kind: str) -> Value:
    """``value`` with a tensor of ``kind`` (the NULL literal becomes a NULL of that kind)."""
    if value.kind == NULL:
        return Value(_zero(kind), _tf().constant(True), kind)
    return value


def require(value: Value, kind: str, node: exp.Expression) -> Value:
    """``value`` as a ``kind`` (the NULL literal becomes a NULL of it); refused otherwise."""
    if value.kind not in (kind, NULL):
        raise Unsupported(f"{node.sql('bigquery')} needs a {kind} operand, it has a {value.kind}")
    return _filled(value, kind)


def _literal(node: exp.Literal) -> Value:
    tf = _tf()
    if node.is_string:
        return Value(tf.constant(node.this), tf.constant(False), STRING)
    return Value(tf.constant(float(node.this), tf.float64), tf.constant(False), NUMBER)


def _cast(node: exp.Cast, inputs) -> Value:
    tf = _tf()
    value = evaluate(node.this, inputs)
    target = node.to.this.name
    if target in _NUMERIC_CASTS and value.kind in (NUMBER, NULL):
        return _filled(value, NUMBER)
    if target in _TEXT_CASTS and value.kind in (STRING, NULL):
        return _filled(value, STRING)
    if target in _TEXT_CASTS and value.kind == BOOL:  # BigQuery's CAST(TRUE AS STRING): 'true'
        return Value(tf.where(value.tensor, "true", "false"), value.null, STRING)
    raise Unsupported(
        f"{node.sql('bigquery')}: a cast from {value.kind} to {node.to.sql('bigquery')}"
    )


def _choose(branches: list[tuple[Value, Value]], otherwise: Value) -> Value:
    """``CASE WHEN c1 THEN v1 ... ELSE otherwise END``."""
    tf = _tf()
    kinds = {v.kind for _, v in branches} | {otherwise.kind}
    kinds.discard(NULL)
    if len(kinds) > 1:
        raise Unsupported(f"CASE with results of different kinds: {sorted(kinds)}")
    kind = kinds.pop() if kinds else NUMBER
    result = _filled(otherwise, kind)
    for condition, value in reversed(branches):
        value = _filled(value, kind)
        taken = tf.logical_and(condition.tensor, tf.logical_not(condition.null))
        result = Value(
            tf.where(taken, value.tensor, result.tensor),
            tf.where(taken, value.null, result.null),
            kind,
        )
    return result


def _case(node: exp.Case, inputs) -> Value:
    branches = []
    for branch in node.args.get("ifs") or []:
        condition = require(evaluate(branch.this, inputs), BOOL, branch)
        branches.append((condition, evaluate(branch.args["true"], inputs)))
    default = node.args.get("default")
    otherwise = evaluate(default, inputs) if default is not None else Value(None, None, NULL)
    return _choose(branches, otherwise)


def _binary(node: exp.Binary, inputs) -> Value:
    tf = _tf()
    left, right = evaluate(node.left, inputs), evaluate(node.right, inputs)
    null = tf.logical_or(_filled(left, NUMBER).null, _filled(right, NUMBER).null)
    if type(node) in _ARITHMETIC:
        a, b = require(left, NUMBER, node), require(right, NUMBER, node)
        return Value(getattr(tf.math, _ARITHMETIC[type(node)])(a.tensor, b.tensor), null, NUMBER)
    kind = next((v.kind for v in (left, right) if v.kind != NULL), NUMBER)
    if kind == STRING and type(node) not in (exp.EQ, exp.NEQ):
        raise Unsupported(f"{node.sql('bigquery')}: only = and != compare strings here")
    a, b = require(left, kind, node), require(right, kind, node)
    return Value(getattr(tf.math, _COMPARISONS[type(node)])(a.tensor, b.tensor), null, BOOL)


def _concat(node: exp.Concat, inputs) -> Value:
    tf = _tf()
    parts = [require(evaluate(e, inputs), STRING, node) for e in node.expressions]
    null = parts[0].null
    for part in parts[1:]:
        null = tf.logical_or(null, part.null)
    return Value(tf.strings.join([p.tensor for p in parts]), null, STRING)


def _extreme(node: exp.Expression, inputs) -> Value:
    tf = _tf()
    values = [require(evaluate(e, inputs), NUMBER, node) for e in [node.this, *node.expressions]]
    pick = tf.math.maximum if isinstance(node, exp.Greatest) else tf.math.minimum
    result = values[0]
    for value in values[1:]:
        result = Value(pick(result.tensor, value.tensor), tf.logical_or(result.null, value.null),
                       NUMBER)  # fmt: skip
    return result


def _column(node: exp.Column, inputs) -> Value:
    value = inputs.get(node.name.lower())
    if value is None:
        raise Unsupported(f"the TRANSFORM reads column {node.name}, which is not a model input")
    return value


def struct_fields(node: exp.Struct, inputs) -> dict[str, Value]:
    """A ``STRUCT(expression AS name, ...)`` as ``{name: value}``."""
    fields = {}
    for item in node.expressions:
        if isinstance(item, exp.PropertyEQ):
            fields[item.this.name] = evaluate(item.expression, inputs)
        elif isinstance(item, exp.Alias | exp.Column):
            fields[item.alias_or_name] = evaluate(item, inputs)
        else:
            raise Unsupported(f"a STRUCT field needs a name: {item.sql('bigquery')}")
    return fields


def evaluate(node: exp.Expression, inputs: dict[str, Value]) -> Value:
    """One scalar SQL expression over ``inputs`` (column name, lower case -> :class:`Value`)."""
    tf = _tf()
    if isinstance(node, exp.Alias | exp.Paren):
        return evaluate(node.this, inputs)
    simple = {
        exp.Column: _column, exp.Cast: _cast, exp.Case: _case, exp.Concat: _concat,
        exp.Greatest: _extreme, exp.Least: _extreme,
    }  # fmt: skip
    for kind, run in simple.items():
        if type(node) is kind:
            return run(node, inputs)
    if isinstance(node, exp.Literal):
        return _literal(node)
    if isinstance(node, exp.Boolean):
        return Value(tf.constant(bool(node.this)), tf.constant(False), BOOL)
    if isinstance(node, exp.Null):
        return Value(None, None, NULL)
    if isinstance(node, exp.Neg):
        value = require(evaluate(node.this, inputs), NUMBER, node)
        return Value(tf.math.negative(value.tensor), value.null, NUMBER)
    if isinstance(node, exp.Is) and isinstance(node.expression, exp.Null):
        value = evaluate(node.this, inputs)
        null = tf.constant(True) if value.kind == NULL else value.null
        return Value(null, tf.constant(False), BOOL)
    if type(node) in _ARITHMETIC or type(node) in _COMPARISONS:
        return _binary(node, inputs)
    raise Unsupported(
        f"{node.sql('bigquery')} cannot be exported to a SavedModel: the export runs column "
        "references, literals, CAST, CASE, IS NULL, comparisons, arithmetic, CONCAT, "
        "GREATEST/LEAST, STRUCT and the ML preprocessing functions (write other expressions in "
        "the query the model is trained on, or predict with ML.PREDICT)"
    )


def columns_read(items: list[exp.Expression]) -> list[str]:
    """The input columns a list of expressions reads, in order of first reference."""
    names: list[str] = []
    for item in items:
        for column in item.find_all(exp.Column):
            if column.name.lower() not in [n.lower() for n in names]:
                names.append(column.name)
    return names


__all__ = ["BOOL", "NULL", "NUMBER", "STRING", "Unsupported", "Value", "columns_read",
           "evaluate", "require", "struct_fields"]  # fmt: skip
