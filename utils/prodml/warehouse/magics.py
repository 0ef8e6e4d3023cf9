"""``%%bigquery``: bigquery-magics' own cell magic, pointed at the configured warehouse.

``%load_ext prodml.warehouse`` registers bigquery-magics' ``%%bigquery`` (its syntax, its
parameters, its DataFrame results, its error reporting) and, before each cell, points
``bigquery_magics.context`` at the warehouse ``prodml.warehouse.client()`` would use: on the local
warehouse the run folder's service (``context.bigquery_client_options`` with its endpoint,
anonymous credentials, the configured project) and ``--use_rest_api``, since the local service
does not speak the BigQuery Storage Read API (see :mod:`~prodml.warehouse.bqclient`), and no
progress bars (a local query is done before one could move); on BigQuery the configured project
with Application Default Credentials.
"""

from __future__ import annotations

__all__ = ["point_context", "load_ipython_extension"]


def point_context() -> bool:
    """Point ``bigquery_magics.context`` at the configured warehouse; True when it is local."""
    import bigquery_magics
    from google.api_core.client_options import ClientOptions

    from prodml import config
    from prodml.warehouse import service

    context = bigquery_magics.context
    settings = config.settings()
    context.project = settings.project
    if settings.warehouse == "bigquery":
        context.bigquery_client_options = ClientOptions()
        context.credentials = None  # Application Default Credentials, found on first use
        return False
    from google.auth.credentials import AnonymousCredentials

    context.credentials = AnonymousCredentials()
    context.bigquery_client_options = ClientOptions(api_endpoint=service.ensure())
    context.progress_bar_type = None  # a local query is done before a bar could show progress
    return True


def _cell_magic(line: str, query: str):
    from bigquery_magics import bigquery as upstream

    local = point_context()
    if local and "--use_rest_api" not in line:
        line = f"{line} --use_rest_api"
    return upstream._cell_magic(line, query)


def load_ipython_extension(ipython) -> None:
    """Register ``%%bigquery`` (``%load_ext prodml.warehouse``)."""
    ipython.register_magic_function(_cell_magic, magic_kind="cell", magic_name="bigquery")
