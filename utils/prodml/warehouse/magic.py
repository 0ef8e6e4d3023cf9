"""The ``%%bigquery`` cell magic, answering from the configured warehouse.

Load it as the course loads its magic, with ``%load_ext`` (``%load_ext prodml.warehouse``), then::

    %%bigquery                      # show the result
    %%bigquery df                   # assign it to df
    %%bigquery df --params '{"year": 2005}' --project my-project
    SELECT ... WHERE year = @year

The syntax is bigquery-magics' (0.15) own: the line is split by its parser, ``--params`` (a JSON
object or Python dict, bare, quoted or ``$var``) become query parameters through
google-cloud-bigquery's DB-API helper (types from the values: INT64, FLOAT64, BOOL, STRING...), and a query given as ``$var``
is taken from the notebook's variables. Only the client differs: :func:`prodml.warehouse.client`,
the local DuckDB warehouse or BigQuery, whichever is configured.

Why a magic of our own and not bigquery-magics itself: bigquery-magics always builds its own
``google.cloud.bigquery.Client``, and its one redirection is an API endpoint, i.e. a server
speaking BigQuery's REST API. The local warehouse is in-process (see
:mod:`prodml.warehouse.local` for why it is not a server), so the magic calls the warehouse
client directly. Options that only tune BigQuery itself (``--use_bqstorage_api``,
``--use_rest_api``, ``--progress_bar_type``, ``--no_query_cache``, ``--maximum_bytes_billed``,
``--location``) are accepted and ignored locally; ``--engine bigframes``, ``--graph`` and
``--use_geodataframe`` are refused with NotImplementedError. Errors are raised (bigquery-magics
prints them and returns nothing), so a failing query stops a notebook run where it fails.
"""

from __future__ import annotations

import ast
import json

from google.cloud import bigquery

_REFUSED = ("graph", "use_geodataframe", "bigquery_api_endpoint", "bqstorage_api_endpoint")


def _literal(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return ast.literal_eval(text)


def _parse(line: str):
    """bigquery-magics' own split of the line, and its parameters, also from quoted JSON
    (``--params '{"n": 2}'``, which bigquery-magics 0.15 reads as a string and drops)."""
    from bigquery_magics import bigquery as upstream
    from google.cloud.bigquery.dbapi import _helpers
    from IPython.core import magic_arguments

    value, rest = upstream._split_args_line(line)
    args = magic_arguments.parse_argstring(upstream._cell_magic, rest)
    if not value:
        return [], args
    if value.startswith("$"):
        raise NameError(f'Parameter expansion failed, undefined variable "{value[1:]}".')
    try:
        params = _literal(value)
        if isinstance(params, str):
            params = _literal(params)
    except (ValueError, SyntaxError) as err:
        raise ValueError(f"--params {value}: not a JSON object or Python dict: {err}") from None
    if not isinstance(params, dict):
        raise ValueError(f"--params must be a dictionary of parameter values, got {value}")
    return _helpers.to_query_parameters(params, {}), args


def _cell_magic(line: str, query: str):
    from bigquery_magics import bigquery as upstream
    from IPython import get_ipython

    from prodml import warehouse

    params, args = _parse(line)
    query = query.strip()
    if not query:
        raise ValueError("Query is missing.")
    query = upstream._validate_and_resolve_query(query, args)
    if args.engine == "bigframes":
        raise NotImplementedError("%%bigquery --engine bigframes is not implemented locally")
    for option in _REFUSED:
        if getattr(args, option, None):
            raise NotImplementedError(f"%%bigquery --{option} is not implemented by prodml")
    job_config = bigquery.QueryJobConfig(
        query_parameters=params, use_legacy_sql=args.use_legacy_sql, dry_run=args.dry_run
    )
    if args.destination_table:
        job_config.destination = args.destination_table
        job_config.write_disposition = "WRITE_TRUNCATE"
    client = warehouse.client(project=args.project)
    frame = client.query(query, job_config=job_config).to_dataframe()
    if args.max_results:
        frame = frame.head(int(args.max_results))
    if args.destination_var:
        get_ipython().push({args.destination_var: frame})
        return None
    return frame


def load_ipython_extension(ipython) -> None:
    """Register ``%%bigquery`` (``%load_ext prodml.warehouse``)."""
    ipython.register_magic_function(_cell_magic, magic_kind="cell", magic_name="bigquery")
