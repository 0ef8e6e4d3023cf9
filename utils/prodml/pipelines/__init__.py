"""Apache Beam pipelines for any record contract, one definition for batch and streaming.

A record contract (:class:`prodml.contracts.RecordContract`: the fields with their kinds and
ranges, the label, the key, the output table) says what the records hold; this package names no
model. The lab composes these pieces (each a plain Beam ``PTransform``)::

    import apache_beam as beam
    from prodml import babyweight, pipelines

    with beam.Pipeline(options=pipelines.options("batch")) as p:
        out = pipelines.build_pipeline(
            p,
            pipelines.from_csv("natality-*.csv"),
            babyweight.CONTRACT,
            model=pipelines.SavedModelHandler(export_dir),
            mode="batch",
            sink=pipelines.Sink(),
        )

The modules, one job each: :mod:`~prodml.pipelines.sources` (files, the warehouse, streams),
:mod:`~prodml.pipelines.records` (``ParseRecords``: records checked against the contract, and
dead letters),
:mod:`~prodml.pipelines.transforms` (``Windowed`` / ``fixed_windows`` and ``LabelPanes`` for
streams, ``Predict``: ``RunInference``), :mod:`~prodml.pipelines.inference` (the model
handlers: :class:`SavedModelHandler` in process, :class:`HTTPModelHandler` over the prediction
service), :mod:`~prodml.pipelines.sinks` (``WriteRows``, ``WriteDeadLetters``,
``WriteCounts``) and :mod:`~prodml.pipelines.pipeline` (``build_pipeline``, the counts).
"""

from prodml.contracts import Derived, Field, RecordContract, RecordError
from prodml.pipelines.inference import (
    APIS,
    HTTPModelHandler,
    PredictionServiceError,
    SavedModelHandler,
    prediction_url,
    resolve_export,
)
from prodml.pipelines.pipeline import (
    COUNTED,
    MODES,
    Outputs,
    build_pipeline,
    count_elements,
    counts,
    options,
)
from prodml.pipelines.records import ParseRecords, check_csv_lines, dead_letter, parse
from prodml.pipelines.sinks import (
    CONTRACT_TABLE,
    Sink,
    WriteCounts,
    WriteDeadLetters,
    WriteRows,
    read_counts,
)
from prodml.pipelines.sources import (
    Source,
    event_times,
    from_csv,
    from_parquet,
    from_pubsub,
    from_records,
    from_warehouse,
    replay,
    replay_schedule,
    stream_source,
)
from prodml.pipelines.transforms import (
    ALLOWED_LATENESS,
    WINDOW_SECONDS,
    LabelPanes,
    Predict,
    Windowed,
    fixed_windows,
    row_maker,
)

__all__ = [
    "ALLOWED_LATENESS",
    "APIS",
    "CONTRACT_TABLE",
    "COUNTED",
    "MODES",
    "WINDOW_SECONDS",
    "Derived",
    "Field",
    "HTTPModelHandler",
    "LabelPanes",
    "Outputs",
    "ParseRecords",
    "Predict",
    "PredictionServiceError",
    "RecordContract",
    "RecordError",
    "SavedModelHandler",
    "Sink",
    "Source",
    "Windowed",
    "WriteCounts",
    "WriteDeadLetters",
    "WriteRows",
    "build_pipeline",
    "check_csv_lines",
    "count_elements",
    "dead_letter",
    "counts",
    "event_times",
    "fixed_windows",
    "from_csv",
    "from_parquet",
    "from_pubsub",
    "from_records",
    "from_warehouse",
    "options",
    "parse",
    "prediction_url",
    "read_counts",
    "replay",
    "replay_schedule",
    "resolve_export",
    "row_maker",
    "stream_source",
]
