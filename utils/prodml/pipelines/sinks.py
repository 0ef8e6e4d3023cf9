"""Where the pipeline's results go: output rows, dead letters and the counts.

A :class:`Sink` names a folder (a run folder path or ``gs://``) and, optionally, warehouse
tables (by default the record contract's). Rows are written one window pane at a time in a
stream and all at once in batch: a JSONL and a CSV file per pane,
``<folder>/<prefix>-<window start | global>-<pane index>`` (the prefix is the contract's name
for its rows, e.g. ``predictions``), and one load job per pane into the table. The counts go to
``<folder>/counts.json``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import apache_beam as beam
from apache_beam.transforms import window

from prodml import config, storage
from prodml.contracts import RecordContract
from prodml.pipelines.counting import in_one_global_window

__all__ = [
    "CONTRACT_TABLE",
    "DEAD_LETTER_COLUMNS",
    "Sink",
    "WriteCounts",
    "WriteDeadLetters",
    "WriteRows",
    "read_counts",
]

DEAD_LETTER_COLUMNS = ("record", "reason")
#: ``Sink.table``'s default: the record contract's table (``contract.table``)
CONTRACT_TABLE = "<the contract's table>"


@dataclass
class Sink:
    """Where output rows and dead letters go: files (JSONL and CSV) under ``folder`` (a run
    folder path or ``gs://``), and warehouse tables: ``table`` for the rows (default the record
    contract's own table, ``None`` to skip) and ``dead_letter_table`` (``None``: skip)."""

    folder: str = field(default_factory=lambda: str(config.run_path("pipelines", "predictions")))
    table: str | None = CONTRACT_TABLE
    dead_letter_table: str | None = None
    write_disposition: str = "WRITE_APPEND"

    def table_for(self, contract: RecordContract) -> str | None:
        """The rows' table: ``table``, or the contract's when ``table`` is left at its default."""
        return contract.table if self.table == CONTRACT_TABLE else self.table


class _Rows(beam.CombineFn):
    """Rows (dicts) -> one list of tuples in ``columns`` order: a pane's rows travel to the
    writer as compact tuples (cheaper to encode than dicts); keys outside ``columns`` are not
    written."""

    def __init__(self, columns: Sequence[str]):
        self.columns = tuple(columns)

    def create_accumulator(self):
        return []

    def add_input(self, acc, row):
        acc.append(tuple(row.get(c) for c in self.columns))
        return acc

    def merge_accumulators(self, accumulators):
        merged = []
        for acc in accumulators:
            merged.extend(acc)
        return merged

    def extract_output(self, acc):
        return acc


class _WritePane(beam.DoFn):
    """Write one window pane's rows (all rows in batch): a JSONL and a CSV file, and a table."""

    def __init__(self, folder: str, prefix: str, table: str | None, disposition: str, columns):
        self.folder, self.prefix, self.table = folder, prefix, table
        self.disposition, self.columns = disposition, list(columns)

    def process(self, rows, win=beam.DoFn.WindowParam, pane=beam.DoFn.PaneInfoParam):
        if not rows:
            return
        rows.sort(key=lambda r: str(r[0]))  # by key (predictions) or record (dead letters)
        part = "global" if not isinstance(win, window.IntervalWindow) else str(int(win.start))
        stem = f"{self.folder}/{self.prefix}-{part}-{pane.index:03d}"
        fs = storage.filesystem(self.folder)
        fs.makedirs(self.folder, exist_ok=True)
        columns, dumps = self.columns, json.JSONEncoder(default=str).encode
        with fs.open(f"{stem}.jsonl", "w") as f:
            f.write("".join(dumps(dict(zip(columns, r, strict=True))) + "\n" for r in rows))
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(columns)
        writer.writerows(rows)
        with fs.open(f"{stem}.csv", "w") as f:
            f.write(buffer.getvalue())
        if self.table:
            _load(rows, columns, self.table, self.disposition)
        yield f"{stem}.jsonl"


def _load(rows: list[tuple], columns: Sequence[str], table: str, disposition: str) -> None:
    import pandas as pd
    from google.cloud import bigquery

    from prodml import warehouse

    df = pd.DataFrame(rows, columns=list(columns))
    job_config = bigquery.LoadJobConfig(write_disposition=disposition)
    warehouse.client().load_table_from_dataframe(df, table, job_config=job_config).result()


class _WriteRows(beam.PTransform):
    def __init__(self, sink: Sink, prefix: str, table: str | None, columns):
        super().__init__()
        self.sink, self.prefix, self.table, self.columns = sink, prefix, table, columns

    def expand(self, rows):
        write = _WritePane(
            self.sink.folder, self.prefix, self.table, self.sink.write_disposition, self.columns
        )
        if rows.is_bounded and not in_one_global_window(rows):  # batch: one write, not one a window
            rows = rows | "OneWrite" >> beam.WindowInto(window.GlobalWindows())
        return (
            rows
            | "PerPane" >> beam.CombineGlobally(_Rows(self.columns)).without_defaults()
            | "Write" >> beam.ParDo(write)
        )


class WriteRows(_WriteRows):
    """Output rows -> ``<folder>/<contract.rows>-*.jsonl|csv`` (e.g. ``predictions-*``) and the
    sink's table (:meth:`Sink.table_for`), columns ``contract.columns``."""

    def __init__(self, sink: Sink, contract: RecordContract):
        super().__init__(sink, contract.rows, sink.table_for(contract), contract.columns)


class WriteDeadLetters(_WriteRows):
    """Dead letters (``record``, ``reason``) -> ``<folder>/dead_letters-*`` (and a table)."""

    def __init__(self, sink: Sink):
        super().__init__(sink, "dead_letters", sink.dead_letter_table, DEAD_LETTER_COLUMNS)


class WriteCounts(beam.PTransform):
    """The pipeline's counts (one dict) -> ``<folder>/counts.json``."""

    def __init__(self, sink: Sink):
        super().__init__()
        self.folder = sink.folder

    def expand(self, counts):
        return counts | "WriteCounts" >> beam.ParDo(_WriteCounts(self.folder))


class _WriteCounts(beam.DoFn):
    def __init__(self, folder: str):
        self.folder = folder

    def process(self, counts):
        fs = storage.filesystem(self.folder)
        fs.makedirs(self.folder, exist_ok=True)
        with fs.open(f"{self.folder}/counts.json", "w") as f:
            f.write(json.dumps(counts, sort_keys=True) + "\n")
        yield f"{self.folder}/counts.json"


def read_counts(sink: Sink | str) -> dict[str, int]:
    """The counts a finished run wrote to ``<folder>/counts.json`` (a :class:`Sink` or folder)."""
    folder = sink.folder if isinstance(sink, Sink) else str(sink)
    path = f"{folder.rstrip('/')}/counts.json"
    fs = storage.filesystem(path)
    if not fs.exists(path):
        raise FileNotFoundError(f"no counts at {path}: has a pipeline with this sink finished?")
    with fs.open(path) as f:
        return json.load(f)
