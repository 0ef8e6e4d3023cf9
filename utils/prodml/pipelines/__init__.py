"""Apache Beam prediction pipeline for babyweight, one definition for batch and streaming.

The lab composes these pieces (each a plain Beam ``PTransform``)::

    import apache_beam as beam
    from prodml import pipelines

    with beam.Pipeline(options=pipelines.options("batch")) as p:
        out = pipelines.build_pipeline(
            p,
            pipelines.from_csv("natality-*.csv"),
            model=pipelines.SavedModelHandler(export_dir),
            mode="batch",
            sink=pipelines.Sink(),
        )

or step by step: ``ParseRecords`` (records and dead letters), ``Windowed`` (streaming),
``Predict`` (``RunInference`` with :class:`SavedModelHandler` or :class:`HTTPModelHandler`),
``WritePredictions`` / ``WriteDeadLetters``. See :mod:`prodml.pipelines.pipeline`.
"""

from prodml.pipelines.inference import (
    HTTPModelHandler,
    PredictionServiceError,
    SavedModelHandler,
    resolve_export,
)
from prodml.pipelines.pipeline import (
    ALLOWED_LATENESS,
    COLUMNS,
    COUNTED,
    MODES,
    PREDICTIONS_TABLE,
    WINDOW_SECONDS,
    Outputs,
    Predict,
    Sink,
    Source,
    Windowed,
    WriteDeadLetters,
    WritePredictions,
    build_pipeline,
    count_elements,
    counts,
    event_times,
    from_csv,
    from_pubsub,
    from_records,
    from_warehouse,
    options,
    replay,
    stream_source,
)
from prodml.pipelines.records import ParseRecords, RecordError, check, parse

__all__ = [
    "ALLOWED_LATENESS",
    "COLUMNS",
    "COUNTED",
    "MODES",
    "PREDICTIONS_TABLE",
    "WINDOW_SECONDS",
    "HTTPModelHandler",
    "Outputs",
    "ParseRecords",
    "Predict",
    "PredictionServiceError",
    "RecordError",
    "SavedModelHandler",
    "Sink",
    "Source",
    "Windowed",
    "WriteDeadLetters",
    "WritePredictions",
    "build_pipeline",
    "count_elements",
    "check",
    "counts",
    "event_times",
    "from_csv",
    "from_pubsub",
    "from_records",
    "from_warehouse",
    "options",
    "parse",
    "replay",
    "resolve_export",
    "stream_source",
]
