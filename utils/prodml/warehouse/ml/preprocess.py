"""BigQuery ML's preprocessing functions, rewritten into plain SQL with fitted constants.

Each function is a fit (aggregates over the rows it sees) and an apply (a row-wise SQL expression
holding the fitted values as constants):

======================================  ===============================  =========================
function                                fitted over the rows              applied to a row
======================================  ===============================  =========================
``ML.BUCKETIZE(x, splits [, excl])``    nothing (splits are constants)   ``'bin_<i>'``
``ML.QUANTILE_BUCKETIZE(x, n) OVER()``  ``APPROX_QUANTILES(x, n)``       ``'bin_<i>'`` at the n-1 inner quantiles
``ML.STANDARD_SCALER(x) OVER()``        ``AVG(x)``, ``STDDEV_SAMP(x)``    ``(x - mean) / stddev``
``ML.MIN_MAX_SCALER(x) OVER()``         ``MIN(x)``, ``MAX(x)``            ``(x - min) / (max - min)``, capped to [0, 1]
``ML.FEATURE_CROSS(STRUCT(a, b, ...))`` nothing                          ``STRUCT(a || '_' || b AS a_b, ...)``
======================================  ===============================  =========================

In an ordinary query the rows are those of the ``SELECT`` that calls the function (its
``FROM`` and ``WHERE``). In a model's ``TRANSFORM`` they are the training query's rows, and the
rewritten ``TRANSFORM`` -- the fitted constants frozen in it -- is what the model stores and
applies, unchanged, to the rows of ``ML.EVALUATE`` and ``ML.PREDICT``: the same SQL at training
and at serving. Bucket ``i`` holds ``splits[i-2] <= x < splits[i-1]`` (``bin_1`` below the first
split), as BigQuery's; NULL stays NULL. A scaler over a constant column gives 0.
"""

from __future__ import annotations

import itertools

import pyarrow as pa
from sqlglot import exp

from prodml.warehouse.ml.errors import InvalidQuery
from prodml.warehouse.ml.parse import preprocessing_calls, preprocessing_name

ANALYTIC = {"QUANTILE_BUCKETIZE", "STANDARD_SCALER", "MIN_MAX_SCALER"}


def _float(value: float) -> exp.Expression:
    return exp.cast(exp.Literal.number(repr(float(value))), "FLOAT64", dialect="bigquery")


def _string(text: str) -> exp.Expression:
    return exp.Literal.string(text)


def _args(call: exp.Dot) -> list[exp.Expression]:
    return list(call.expression.expressions)


def _call_site(call: exp.Dot, name: str) -> exp.Expression:
    """The node a call's rewrite replaces: the ``OVER()`` window of an analytic function."""
    parent = call.parent
    is_window = isinstance(parent, exp.Window) and parent.this is call
    if name in ANALYTIC:
        if not is_window:
            raise InvalidQuery(
                f"Analytic function ML.{name} cannot be called without an OVER clause"
            )
        if any(parent.args.get(k) for k in ("partition_by", "order", "spec")):
            raise InvalidQuery(f"ML.{name} takes an empty OVER() clause")
        return parent
    if is_window:
        raise InvalidQuery(f"ML.{name} is not an analytic function: it takes no OVER clause")
    return call


def _owner(node: exp.Expression) -> exp.Select:
    select = node.find_ancestor(exp.Select)
    if select is None:
        raise InvalidQuery("BigQuery ML preprocessing functions are allowed only in a SELECT list")
    return select


def over_rows(select: exp.Select, projections: list[exp.Expression]) -> exp.Select:
    """A query of ``projections`` over the rows ``select`` reads (its FROM, joins and WHERE),
    with the CTEs it can see."""
    if select.args.get("group") or select.args.get("having") or select.args.get("distinct"):
        raise InvalidQuery(
            "BigQuery ML preprocessing functions in a query with GROUP BY, HAVING or DISTINCT "
            "are not supported by the local warehouse"
        )
    query = select.copy()
    query.set("expressions", projections)
    for arg in ("order", "limit", "offset", "qualify"):
        query.set(arg, None)
    outer = select.parent
    while outer is not None and not query.args.get("with_", query.args.get("with")):
        with_ = outer.args.get("with_", outer.args.get("with"))
        if isinstance(with_, exp.With):
            query.set("with_" if "with_" in exp.Select.arg_types else "with", with_.copy())
        outer = outer.parent
    return query


def _one_row(ctx, select: exp.Select, projections: list[exp.Expression]) -> dict:
    table: pa.Table = ctx.query(over_rows(select, projections))
    return {name: table.column(name)[0].as_py() for name in table.column_names}


def _constant_array(ctx, node: exp.Expression, what: str) -> list[float]:
    if node.find(exp.Column) is not None:
        raise InvalidQuery(f"{what} must be a constant array, not {node.sql('bigquery')}")
    values = ctx.query(exp.select(exp.alias_(node.copy(), "a"))).column("a")[0].as_py()
    if values is None or any(v is None for v in values):
        raise InvalidQuery(f"{what} must be an array of numbers without NULLs")
    if list(values) != sorted(values):
        raise InvalidQuery(f"{what} must be in ascending order, got {values}")
    return [float(v) for v in values]


def bucket_expression(value: exp.Expression, splits: list[float]) -> exp.Expression:
    """``'bin_<i>'`` for ``value`` between ``splits`` (BigQuery's ML.BUCKETIZE); NULL for NULL."""
    case = exp.Case().when(exp.Is(this=value.copy(), expression=exp.Null()), exp.Null())
    for i, split in enumerate(splits, start=1):
        case = case.when(exp.LT(this=value.copy(), expression=_float(split)), _string(f"bin_{i}"))
    return case.else_(_string(f"bin_{len(splits) + 1}"))


def _bucketize(ctx, call: exp.Dot) -> exp.Expression:
    args = _args(call)
    if not 2 <= len(args) <= 4:
        raise InvalidQuery(
            "ML.BUCKETIZE takes (numerical_expression, array_split_points [, exclude_boundaries] [, output_format])"
        )
    splits = _constant_array(ctx, args[1], "ML.BUCKETIZE's array_split_points")
    if len(args) >= 3:
        if not isinstance(args[2], exp.Boolean):
            raise InvalidQuery("ML.BUCKETIZE's exclude_boundaries must be TRUE or FALSE")
        splits = splits[1:-1] if args[2].this else splits
    if len(args) == 4 and args[3].name.lower() != "bucket_names":
        raise InvalidQuery(
            f"ML.BUCKETIZE output_format {args[3].name!r} is not supported by the local warehouse "
            "(bucket_names is)"
        )
    return bucket_expression(args[0], splits)


def _quantile_bucketize(ctx, call: exp.Dot, select: exp.Select) -> exp.Expression:
    args = _args(call)
    count = args[1] if len(args) >= 2 else None
    if len(args) not in (2, 3) or not (isinstance(count, exp.Literal) and count.is_int):
        raise InvalidQuery(
            "ML.QUANTILE_BUCKETIZE takes (numerical_expression, num_buckets) with an INT64 literal num_buckets"
        )
    if len(args) == 3 and args[2].name.lower() != "bucket_names":
        raise InvalidQuery(
            f"ML.QUANTILE_BUCKETIZE output_format {args[2].name!r} is not supported by the local warehouse (bucket_names is)"
        )
    buckets = int(count.this)
    if buckets < 2:
        raise InvalidQuery(f"ML.QUANTILE_BUCKETIZE needs num_buckets >= 2, got {buckets}")
    quantiles = exp.ApproxQuantiles(this=args[0].copy(), expression=exp.Literal.number(buckets))
    row = _one_row(ctx, select, [exp.alias_(quantiles, "q")])
    edges = row["q"] or []
    return bucket_expression(args[0], [float(v) for v in edges[1:-1]])


def _scaler(ctx, call: exp.Dot, select: exp.Select, name: str) -> exp.Expression:
    args = _args(call)
    if len(args) != 1:
        raise InvalidQuery(f"ML.{name} takes one numerical expression")
    x = args[0]
    if name == "STANDARD_SCALER":
        stats = [
            exp.alias_(exp.func("AVG", x.copy()), "a"),
            exp.alias_(exp.func("STDDEV_SAMP", x.copy()), "b"),
        ]
    else:
        stats = [
            exp.alias_(exp.func("MIN", x.copy()), "a"),
            exp.alias_(exp.func("MAX", x.copy()), "b"),
        ]
    row = _one_row(ctx, select, stats)
    low, high = row["a"], row["b"]
    if low is None:
        return exp.cast(exp.Null(), "FLOAT64", dialect="bigquery")  # no non-NULL value to fit on
    spread = (high or 0.0) - low if name == "MIN_MAX_SCALER" else (high or 0.0)
    centred = exp.Sub(
        this=exp.cast(x.copy(), "FLOAT64", dialect="bigquery"), expression=_float(low)
    )
    if spread == 0:
        return exp.Mul(this=exp.paren(centred), expression=_float(0.0))
    scaled = exp.Div(this=exp.paren(centred), expression=_float(spread))
    if name == "STANDARD_SCALER":
        return scaled
    return exp.func("GREATEST", _float(0.0), exp.func("LEAST", _float(1.0), scaled))


def _field_name(field: exp.Expression) -> str | None:
    if isinstance(field, exp.PropertyEQ | exp.Alias):
        return field.alias or field.this.name
    return field.name if isinstance(field, exp.Column) else None


def _feature_cross(ctx, call: exp.Dot, select: exp.Select) -> exp.Expression:
    args = _args(call)
    if not args or not isinstance(args[0], exp.Struct) or len(args) > 2:
        raise InvalidQuery("ML.FEATURE_CROSS takes (STRUCT(categorical features) [, degree])")
    degree = int(args[1].this) if len(args) == 2 and isinstance(args[1], exp.Literal) else 2
    if len(args) == 2 and not (isinstance(args[1], exp.Literal) and 2 <= degree <= 4):
        raise InvalidQuery("ML.FEATURE_CROSS's degree must be an INT64 literal in [2, 4]")
    fields = args[0].expressions
    names = [_field_name(f) for f in fields]
    if not 2 <= len(fields) <= 10 or None in names or len(set(names)) != len(names):
        raise InvalidQuery(
            "ML.FEATURE_CROSS needs 2 to 10 named, distinct features in its STRUCT, got "
            f"{args[0].sql('bigquery')}"
        )
    values = [
        f.expression if isinstance(f, exp.PropertyEQ) else f.this if isinstance(f, exp.Alias) else f
        for f in fields
    ]
    _require_strings(ctx, select, names, values)
    crosses = []
    for size in range(2, degree + 1):
        for combo in itertools.combinations(range(len(fields)), size):
            parts: list[exp.Expression] = []
            for i in combo:
                parts += [values[i].copy(), _string("_")]
            # a field as sqlglot parses BigQuery's STRUCT(expression AS name)
            name = exp.to_identifier("_".join(names[i] for i in combo))
            crosses.append(exp.PropertyEQ(this=name, expression=exp.func("CONCAT", *parts[:-1])))
    return exp.Struct(expressions=crosses)


def _require_strings(ctx, select, names, values) -> None:
    probe = over_rows(select, [exp.alias_(v.copy(), f"f{i}") for i, v in enumerate(values)])
    probe.set("limit", exp.Limit(expression=exp.Literal.number(0)))
    schema = ctx.query(probe).schema
    for name, kind in zip(names, schema.types, strict=True):
        if not (
            pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind)
        ):
            raise InvalidQuery(
                f"ML.FEATURE_CROSS crosses STRING features: {name} is {kind}; CAST it AS STRING"
            )


def rewrite_call(ctx, call: exp.Dot) -> None:
    """Replace one ML preprocessing call in its tree by plain SQL (fitted over its rows)."""
    name = preprocessing_name(call)
    site = _call_site(call, name)
    select = _owner(site)
    if name == "BUCKETIZE":
        new = _bucketize(ctx, call)
    elif name == "QUANTILE_BUCKETIZE":
        new = _quantile_bucketize(ctx, call, select)
    elif name == "FEATURE_CROSS":
        new = _feature_cross(ctx, call, select)
    else:
        new = _scaler(ctx, call, select, name)
    site.replace(new)


def rewrite_preprocessing(tree: exp.Expression, ctx) -> exp.Expression:
    """A copy of ``tree`` whose ML preprocessing calls are plain SQL, each fitted over the rows
    of the SELECT that calls it (innermost first)."""
    tree = tree.copy()
    for call in preprocessing_calls(tree):
        rewrite_call(ctx, call)
    return tree


def output_name(expression: exp.Expression) -> str | None:
    """The column name a select-list item produces (its alias, or the column it names)."""
    if isinstance(expression, exp.Alias):
        return expression.alias
    return expression.name if isinstance(expression, exp.Column) else None


def freeze_transform(items: list[exp.Expression], training: exp.Expression, ctx) -> list[str]:
    """A ``TRANSFORM(...)`` list fitted on the training query's rows: its items as BigQuery SQL
    with the fitted constants in them, to apply to any rows with :func:`apply_transform`."""
    for item in items:
        if isinstance(item, exp.Star) or output_name(item) is None:
            raise InvalidQuery(
                f"Every TRANSFORM output needs a name: {item.sql('bigquery')} has none (add AS name)"
            )
    names = [output_name(i) for i in items]
    if len(set(n.lower() for n in names)) != len(names):
        raise InvalidQuery(f"Duplicate column names in TRANSFORM: {names}")
    select = exp.select(*[i.copy() for i in items]).from_(
        exp.alias_(exp.paren(training.copy()), "__training", table=True)
    )
    frozen = rewrite_preprocessing(select, ctx)
    return [item.sql("bigquery") for item in frozen.expressions]


__all__ = [
    "bucket_expression",
    "freeze_transform",
    "output_name",
    "over_rows",
    "rewrite_call",
    "rewrite_preprocessing",
]
