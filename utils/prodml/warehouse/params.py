"""Query parameters as BigQuery's REST API sends them, bound as DuckDB values.

``{"name": "year", "parameterType": {"type": "INT64"}, "parameterValue": {"value": "2000"}}``
becomes ``year = 2000``; an ``ARRAY`` parameter a Python list. Named parameters (``@year``) bind
by name, positional ones (``?``) in order.
"""

from __future__ import annotations

import base64
import datetime
import decimal

from prodml.warehouse.errors import Invalid, InvalidQuery

__all__ = ["QueryParameters", "decode"]


def _timestamp(text: str) -> datetime.datetime:
    value = datetime.datetime.fromisoformat(text.replace(" UTC", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=datetime.UTC)


_CONVERT = {
    "INT64": int,
    "INTEGER": int,
    "FLOAT64": float,
    "FLOAT": float,
    "BOOL": lambda v: str(v).lower() == "true",
    "BOOLEAN": lambda v: str(v).lower() == "true",
    "STRING": str,
    "NUMERIC": lambda v: float(decimal.Decimal(v)),
    "BIGNUMERIC": lambda v: float(decimal.Decimal(v)),
    "DATE": datetime.date.fromisoformat,
    "DATETIME": datetime.datetime.fromisoformat,
    "TIMESTAMP": _timestamp,
    "TIME": datetime.time.fromisoformat,
    "BYTES": base64.b64decode,
    "JSON": str,
}


def _scalar(value, kind: str):
    if value is None:
        return None
    convert = _CONVERT.get(kind.upper())
    if convert is None:
        raise InvalidQuery(f"query parameter type {kind} is not supported locally")
    try:
        return convert(value)
    except (TypeError, ValueError, decimal.InvalidOperation) as err:
        raise Invalid(f"Invalid {kind} value for a query parameter: {value!r} ({err})") from None


def _value(param: dict):
    kind = param.get("parameterType") or {}
    value = param.get("parameterValue") or {}
    if kind.get("type", "").upper() == "ARRAY":
        inner = (kind.get("arrayType") or {}).get("type", "STRING")
        return [_scalar(v.get("value"), inner) for v in value.get("arrayValues") or []]
    if kind.get("type", "").upper() == "STRUCT":
        raise InvalidQuery("STRUCT query parameters are not supported locally")
    return _scalar(value.get("value"), kind.get("type", "STRING"))


class QueryParameters:
    """A job's parameters, decoded: ``named`` (name -> value) and ``positional`` (in order)."""

    def __init__(self, named: dict | None = None, positional: list | None = None):
        self.named = named or {}
        self.positional = positional or []

    def bind(self, names: list[str], positional: int):
        """The values one statement uses: a dict by name, a list in order, or None."""
        missing = [n for n in names if n not in self.named]
        if missing:
            raise InvalidQuery(
                f"Query parameter(s) {', '.join('@' + m for m in missing)} not found: pass them "
                "in QueryJobConfig(query_parameters=[bigquery.ScalarQueryParameter(...)])"
            )
        if positional and positional != len(self.positional):
            raise InvalidQuery(
                f"the query has {positional} positional parameter(s) (?) but the job gives "
                f"{len(self.positional)}"
            )
        if positional:
            return list(self.positional)
        return {n: self.named[n] for n in names} or None


def decode(params: list[dict] | None) -> QueryParameters:
    """The REST ``queryParameters`` list, decoded."""
    named, positional = {}, []
    for param in params or []:
        if param.get("name"):
            named[param["name"]] = _value(param)
        else:
            positional.append(_value(param))
    return QueryParameters(named, positional)
