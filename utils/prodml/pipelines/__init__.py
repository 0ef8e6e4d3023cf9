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

The modules, one job each: :mod:`~prodml.pipelines.sources` (files, the warehouse, streams),
:mod:`~prodml.pipelines.records` (``ParseRecords``: records and dead letters),
:mod:`~prodml.pipelines.transforms` (``Windowed`` / ``fixed_windows`` and ``LabelPanes`` for
streams, ``Predict``: ``RunInference``), :mod:`~prodml.pipelines.inference` (the model
handlers: :class:`SavedModelHandler` in process, :class:`HTTPModelHandler` over the prediction
service), :mod:`~prodml.pipelines.sinks` (``WritePredictions``, ``WriteDeadLetters``,
``WriteCounts``) and :mod:`~prodml.pipelines.pipeline` (``build_pipeline``, the counts).
"""

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
from prodml.pipelines.records import ParseRecords, RecordError, check, parse
from prodml.pipelines.sinks import (
    PREDICTIONS_TABLE,
    Sink,
    WriteCounts,
    WriteDeadLetters,
    WritePredictions,
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
    COLUMNS,
    WINDOW_SECONDS,
    LabelPanes,
    Predict,
    Windowed,
    fixed_windows,
)

__all__ = [
    "ALLOWED_LATENESS",
    "APIS",
    "COLUMNS",
    "COUNTED",
    "MODES",
    "PREDICTIONS_TABLE",
    "WINDOW_SECONDS",
    "HTTPModelHandler",
    "LabelPanes",
    "Outputs",
    "ParseRecords",
    "Predict",
    "PredictionServiceError",
    "RecordError",
    "SavedModelHandler",
    "Sink",
    "Source",
    "Windowed",
    "WriteCounts",
    "WriteDeadLetters",
    "WritePredictions",
    "build_pipeline",
    "check",
    "count_elements",
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
    "replay",
    "replay_schedule",
    "resolve_export",
    "stream_source",
]
