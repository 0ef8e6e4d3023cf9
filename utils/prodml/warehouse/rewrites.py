"""BigQuery semantics DuckDB does not share, as expression rewrites.

Each function takes one sqlglot node and returns its replacement; :data:`NODE_REWRITES` is the
table :mod:`prodml.warehouse.sql`'s ``bigquery_semantics`` pass applies to every node.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlglot import exp

from prodml.warehouse.errors import InvalidQuery

__all__ = ["NODE_REWRITES", "rewrite_node"]

_STRING_TYPES = {exp.DataType.Type.TEXT, exp.DataType.Type.VARCHAR}
_INT_TYPES = {exp.DataType.Type.BIGINT, exp.DataType.Type.INT}


def _typeof_is_float(arg: exp.Expression) -> exp.Expression:
    """True for DOUBLE, FLOAT and DECIMAL (DuckDB types a literal 2005.0 as DECIMAL; BigQuery as
    FLOAT64). DuckDB folds typeof() to a constant, so this costs nothing per row."""
    typeof = exp.Anonymous(this="typeof", expressions=[arg.copy()])
    return exp.or_(
        exp.In(
            this=typeof, expressions=[exp.Literal.string("DOUBLE"), exp.Literal.string("FLOAT")]
        ),
        exp.Like(this=typeof.copy(), expression=exp.Literal.string("DECIMAL%")),
    )


def _as_double(arg: exp.Expression) -> exp.Expression:
    return exp.TryCast(this=arg.copy(), to=exp.DataType.build("DOUBLE"))


def cast_to_string(node: exp.Cast) -> exp.Expression:
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


def cast_to_int(node: exp.Cast) -> exp.Expression:
    """BigQuery rounds FLOAT64 halves away from zero (CAST(-2.5 AS INT64) = -3); DuckDB rounds
    them to even."""
    arg = node.this
    rounded = node.__class__(
        this=exp.func("round", _as_double(arg)), to=exp.DataType.build("BIGINT")
    )
    plain = node.__class__(this=arg.copy(), to=exp.DataType.build("BIGINT"))
    return exp.Case(ifs=[exp.If(this=_typeof_is_float(arg), true=rounded)], default=plain)


def approx_quantiles(node: exp.ApproxQuantiles) -> exp.Expression:
    """APPROX_QUANTILES(x, n): n + 1 values of x (minimum, n - 1 cut points, maximum)."""
    n = node.expression
    if not isinstance(n, exp.Literal) or n.is_string or int(n.this) < 1:
        raise InvalidQuery(
            "APPROX_QUANTILES(x, n) needs a positive integer literal n in the local warehouse"
        )
    count = int(n.this)
    fractions = exp.Array(expressions=[exp.Literal.number(i / count) for i in range(count + 1)])
    return exp.Anonymous(this="quantile_disc", expressions=[node.this.copy(), fractions])


def dayofweek(node: exp.Extract) -> exp.Expression:
    """EXTRACT(DAYOFWEEK ...): BigQuery counts Sunday as 1, DuckDB's dayofweek as 0."""
    if node.name.upper() != "DAYOFWEEK":
        return node
    day = exp.Anonymous(this="dayofweek", expressions=[node.expression.copy()])
    return exp.Paren(this=exp.Add(this=day, expression=exp.Literal.number(1)))


def float_literal(node: exp.Literal) -> exp.Expression:
    """BigQuery types a number with a point or an exponent (``2.5``, ``1e6``) as FLOAT64; DuckDB
    as DECIMAL, which would reach the client as NUMERIC (Python ``Decimal`` values)."""
    if node.is_string or not any(c in node.this for c in ".eE"):
        return node
    return exp.Cast(this=node.copy(), to=exp.DataType.build("DOUBLE"))


def _cast(node: exp.Cast) -> exp.Expression:
    if node.to.this in _STRING_TYPES:
        return cast_to_string(node)
    if node.to.this in _INT_TYPES:
        return cast_to_int(node)
    return node


#: node class -> its rewrite (subclasses included: TryCast is a Cast)
NODE_REWRITES: dict[type, Callable[[exp.Expression], exp.Expression]] = {
    exp.Cast: _cast,
    exp.ApproxQuantiles: approx_quantiles,
    exp.Extract: dayofweek,
    exp.Literal: float_literal,
}


def rewrite_node(node: exp.Expression) -> exp.Expression:
    """Apply the rewrite of ``node``'s class, if any."""
    for kind, rewrite in NODE_REWRITES.items():
        if isinstance(node, kind):
            return rewrite(node)
    return node
