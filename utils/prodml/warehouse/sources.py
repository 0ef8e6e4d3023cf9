"""Load sources: the bytes of a file (uploaded, or read from a load URI) as an Arrow "staging"
table, and the options of BigQuery's ``configuration.load`` that say how to read them.

Text formats (CSV, newline-delimited JSON) are read as strings, one location per row (``file
line N``), and typed later by the load's checks (:mod:`~prodml.warehouse.loads`); columnar
formats (Parquet, Avro, ORC) keep their own types.
"""

from __future__ import annotations

import csv
import glob
import io
import itertools
import json
import os
import re
from dataclasses import dataclass, field

import pyarrow as pa

from prodml.warehouse.errors import Invalid, NotFound

__all__ = ["LOCATION", "LoadOptions", "Staged", "local_paths", "read", "as_text", "bad_record"]

LOCATION = "__location"
FORMATS = ("CSV", "NEWLINE_DELIMITED_JSON", "PARQUET", "AVRO", "ORC")


def _integer(load: dict, key: str) -> int | None:
    value = load.get(key)
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise Invalid(f"Invalid value for {key}: {value!r} is not an integer") from None


@dataclass
class LoadOptions:
    """BigQuery's ``JobConfigurationLoad``, the parts the local warehouse honours."""

    source_format: str = "CSV"
    schema: list[dict] | None = None
    autodetect: bool = False
    skip_leading_rows: int | None = None
    field_delimiter: str = ","
    quote: str | None = '"'
    allow_quoted_newlines: bool = False
    encoding: str = "utf-8"
    null_marker: str = ""
    max_bad_records: int = 0
    ignore_unknown_values: bool = False
    write_disposition: str = "WRITE_APPEND"
    create_disposition: str = "CREATE_IF_NEEDED"

    @classmethod
    def from_api(cls, load: dict) -> LoadOptions:
        if load.get("allowJaggedRows"):
            raise Invalid("allowJaggedRows is not supported by the local warehouse")
        fmt = (load.get("sourceFormat") or "CSV").upper()
        if fmt not in FORMATS:
            raise Invalid(f"sourceFormat {fmt!r} is not supported: use one of {FORMATS}")
        skip = _integer(load, "skipLeadingRows")
        encoding = (load.get("encoding") or "UTF-8").lower().replace("iso-8859-1", "latin-1")
        return cls(
            source_format=fmt,
            schema=(load.get("schema") or {}).get("fields") or None,
            autodetect=bool(load.get("autodetect")),
            skip_leading_rows=skip,
            field_delimiter=load.get("fieldDelimiter") or ",",
            quote=load.get("quote", '"'),
            allow_quoted_newlines=bool(load.get("allowQuotedNewlines")),
            encoding=encoding,
            null_marker=load.get("nullMarker") or "",
            max_bad_records=_integer(load, "maxBadRecords") or 0,
            ignore_unknown_values=bool(load.get("ignoreUnknownValues")),
            write_disposition=(load.get("writeDisposition") or "WRITE_APPEND").upper(),
            create_disposition=(load.get("createDisposition") or "CREATE_IF_NEEDED").upper(),
        )


@dataclass
class Staged:
    """A source read for loading: its columns plus :data:`LOCATION`, the rows rejected while
    reading, and the target schema (None: keep the Arrow types)."""

    table: pa.Table
    errors: list[dict] = field(default_factory=list)
    schema: list[dict] | None = None


def bad_record(location: str, message: str, reason: str = "invalid") -> dict:
    """One bad record, as a load job's ``status.errors`` lists it."""
    return {"reason": reason, "location": location, "message": message}


def as_text(value: object) -> str | None:
    """A JSON value as the text a CSV cell would hold (booleans as true/false)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def local_paths(uris: list[str]) -> list[str]:
    """Local file paths for load URIs (absolute paths, file://, one * wildcard); gs:// refused."""
    paths: list[str] = []
    for uri in map(str, uris):
        if uri.startswith("gs://"):
            raise Invalid(
                f"the local warehouse cannot read {uri}: it loads local files only. Use a local "
                "or prodml.storage path, or set warehouse='bigquery' to load from GCS"
            )
        if "://" in uri and not uri.startswith("file://"):
            raise Invalid(f"unsupported load URI {uri!r}: use a local path or file://")
        path = uri.removeprefix("file://")
        if not os.path.isabs(path):
            raise Invalid(
                f"load URI {uri!r} is a relative path: the warehouse service has its own working "
                "folder, so give an absolute path (prodml.storage.path(...) is one)"
            )
        matches = sorted(glob.glob(path)) if "*" in path else [path]
        if not matches or not all(os.path.isfile(p) for p in matches):
            raise NotFound(f"Not found: URI {uri} (no such local file)")
        paths.extend(matches)
    return paths


# -- CSV -------------------------------------------------------------------------------------------


def _record_lines(text: str, options: LoadOptions) -> list[int]:
    """The line (1-based) each CSV record starts on (pyarrow numbers records, not lines)."""
    quote = options.quote or None
    reader = csv.reader(
        io.StringIO(text, newline=""),
        delimiter=options.field_delimiter,
        quotechar=quote,
        quoting=csv.QUOTE_MINIMAL if quote else csv.QUOTE_NONE,
    )
    starts, previous = [], 0
    for record in reader:
        if record:  # pyarrow skips empty lines and does not number them
            starts.append(previous + 1)
        previous = reader.line_num
    return starts


def _csv_head(data: bytes, options: LoadOptions) -> list[list[str]]:
    text = io.StringIO(data[: 1 << 20].decode(options.encoding, errors="replace"), newline="")
    rows = (options.skip_leading_rows or 0) + 1
    return list(itertools.islice(csv.reader(text, delimiter=options.field_delimiter), rows))


def _csv_table(data: bytes, names: list[str], options: LoadOptions, where: str):
    """pyarrow's CSV reader, every column a string; bad rows reported with their line."""
    import pyarrow.csv as pacsv

    starts = (
        _record_lines(data.decode(options.encoding), options)
        if options.allow_quoted_newlines
        else None
    )

    def line_of(record: int) -> int:
        return starts[record - 1] if starts and record <= len(starts) else record

    errors, bad = [], set()

    def invalid(row):
        bad.add(row.number)
        many = "many" if row.actual_columns > row.expected_columns else "few"
        errors.append(
            bad_record(
                f"{where}line {line_of(row.number)}",
                f"Too {many} columns: expected {row.expected_columns} column(s) but got "
                f"{row.actual_columns}: {row.text[:80]!r}",
            )
        )
        return "skip"

    table = pacsv.read_csv(
        io.BytesIO(data),
        read_options=pacsv.ReadOptions(
            column_names=names,
            skip_rows=options.skip_leading_rows or 0,
            use_threads=False,
            encoding=options.encoding,
        ),
        parse_options=pacsv.ParseOptions(
            delimiter=options.field_delimiter,
            quote_char=options.quote or False,
            newlines_in_values=options.allow_quoted_newlines,
            invalid_row_handler=invalid,
        ),
        convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(names, pa.string()),
            strings_can_be_null=True,
            null_values=[options.null_marker],
        ),
    )
    good = (r for r in itertools.count((options.skip_leading_rows or 0) + 1) if r not in bad)
    lines = [f"{where}line {line_of(r)}" for r in itertools.islice(good, table.num_rows)]
    return table.append_column(LOCATION, pa.array(lines, pa.string())), errors


def _column_name(text: str, index: int) -> str:
    name = re.sub(r"\W", "_", text.strip())
    return name if name and not name[0].isdigit() else f"_{name or index}"


def read_csv(data: bytes, options: LoadOptions, where: str, infer) -> Staged:
    """A CSV source; with no schema its header and types are detected as BigQuery does
    (``infer(table, names)`` types string columns)."""
    head = _csv_head(data, options)
    if not head:
        return Staged(pa.table({LOCATION: pa.array([], pa.string())}), schema=options.schema)
    skip = options.skip_leading_rows
    width = len(head[min(skip or 0, len(head) - 1)])
    names = (
        [f["name"] for f in options.schema] if options.schema else [f"c{i}" for i in range(width)]
    )
    table, errors = _csv_table(data, names, options, where)
    if options.schema:
        return Staged(table, errors, options.schema)
    header = head[skip - 1] if skip else None
    if skip is None and table.num_rows > 1:  # a header row is one that types differently
        first, rest = infer(table.slice(0, 1), names), infer(table.slice(1), names)
        values = [table.column(n)[0].as_py() for n in names]
        if all(values) and any(
            r != "STRING" and f == "STRING" for r, f in zip(rest, first, strict=True)
        ):
            header, table = values, table.slice(1)
    types = infer(table, names)
    if header and len(header) == len(names):
        final = [_column_name(h, i) for i, h in enumerate(header)]
    else:
        final = [f"{_AUTONAME[t]}_field_{i}" for i, t in enumerate(types)]
    table = table.rename_columns([*final, LOCATION])
    schema = [{"name": n, "type": t, "mode": "NULLABLE"} for n, t in zip(final, types, strict=True)]
    return Staged(table, errors, schema)


_AUTONAME = {"STRING": "string", "INTEGER": "int64", "FLOAT": "double", "BOOLEAN": "bool",
             "DATE": "date", "TIMESTAMP": "timestamp"}  # fmt: skip


# -- newline-delimited JSON ------------------------------------------------------------------------


def read_json(data: bytes, options: LoadOptions, where: str, infer) -> Staged:
    """Newline-delimited JSON: one object per line; values kept as text to be typed."""
    known = {f["name"] for f in options.schema} if options.schema else None
    rows, locations, errors = [], [], []
    for number, line in enumerate(data.decode(options.encoding).splitlines(), start=1):
        if not line.strip():
            continue
        at = f"{where}line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            errors.append(bad_record(at, f"JSON parsing error: {err}"))
            continue
        if not isinstance(record, dict):
            errors.append(bad_record(at, "a JSON object is expected on each line"))
            continue
        unknown = set(record) - known if known is not None else set()
        if unknown and not options.ignore_unknown_values:
            errors.append(bad_record(at, f"No such field: {', '.join(sorted(unknown))}"))
            continue
        rows.append(record)
        locations.append(at)
    names = (
        [f["name"] for f in options.schema]
        if options.schema
        else list(dict.fromkeys(k for r in rows for k in r))
    )
    columns = {n: pa.array([as_text(r.get(n)) for r in rows], pa.string()) for n in names}
    table = pa.table({**columns, LOCATION: pa.array(locations, pa.string())})
    schema = options.schema or [
        {"name": n, "type": t, "mode": "NULLABLE"}
        for n, t in zip(names, infer(table, names), strict=True)
    ]
    return Staged(table, errors, schema)


# -- columnar formats ------------------------------------------------------------------------------

_AVRO_TYPES = {"null": pa.null(), "boolean": pa.bool_(), "int": pa.int64(), "long": pa.int64(),
               "float": pa.float64(), "double": pa.float64(), "bytes": pa.binary(),
               "string": pa.string()}  # fmt: skip
_AVRO_LOGICAL = {"date": pa.date32(), "timestamp-millis": pa.timestamp("us", tz="UTC"),
                 "timestamp-micros": pa.timestamp("us", tz="UTC")}  # fmt: skip


def _avro_type(spec) -> pa.DataType:
    if isinstance(spec, list):  # a union: ["null", "long"]
        kinds = [s for s in spec if s != "null"]
        return _avro_type(kinds[0]) if len(kinds) == 1 else pa.string()
    if isinstance(spec, dict):
        if spec.get("logicalType") in _AVRO_LOGICAL:
            return _AVRO_LOGICAL[spec["logicalType"]]
        if spec.get("type") == "array":
            return pa.list_(_avro_type(spec["items"]))
        return _avro_type(spec.get("type"))
    if spec not in _AVRO_TYPES:
        raise Invalid(f"Avro type {spec!r} is not supported by the local warehouse")
    return _AVRO_TYPES[spec]


def read_columnar(data: bytes, source_format: str) -> pa.Table:
    """A Parquet, ORC or Avro file's rows with the file's own types."""
    if source_format == "PARQUET":
        import pyarrow.parquet as pq

        return pq.read_table(pa.BufferReader(data))
    if source_format == "ORC":
        import pyarrow.orc as orc

        return orc.read_table(pa.BufferReader(data))
    import fastavro

    reader = fastavro.reader(io.BytesIO(data))
    fields = reader.writer_schema["fields"]
    schema = pa.schema([(f["name"], _avro_type(f["type"])) for f in fields])
    return pa.Table.from_pylist(list(reader), schema=schema)


def read(data: bytes, options: LoadOptions, name: str | None, infer) -> Staged:
    """One source's bytes as a :class:`Staged` table; ``name`` (a file) prefixes locations."""
    where = f"{name} " if name else ""
    if options.source_format == "CSV":
        return read_csv(data, options, where, infer)
    if options.source_format == "NEWLINE_DELIMITED_JSON":
        return read_json(data, options, where, infer)
    try:
        table = read_columnar(data, options.source_format)
    except (pa.ArrowInvalid, ValueError, OSError) as err:
        raise Invalid(
            f"Error while reading data: {where}is not valid {options.source_format}: {err}"
        ) from None
    locations = pa.array([f"{where}row {i}" for i in range(table.num_rows)], pa.string())
    return Staged(table.append_column(LOCATION, locations), schema=options.schema)


def concat(parts: list[Staged]) -> Staged:
    """Several sources (a wildcard URI) as one."""
    if len(parts) == 1:
        return parts[0]
    return Staged(
        pa.concat_tables([p.table for p in parts], promote_options="permissive"),
        [e for p in parts for e in p.errors],
        parts[0].schema,
    )
