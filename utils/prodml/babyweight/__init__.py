"""babyweight: the course's flagship model.

- :mod:`prodml.babyweight.contract` — the feature contract: the features and the label, the
  mapping of a value to what the model takes, the course's instance, and :data:`CONTRACT`, the
  record contract the prediction pipeline checks records against (the natality table, its clean
  filter and ranges are the table's facts, taken from :mod:`prodml.datasets.natality`);
- :mod:`prodml.babyweight.data` — the query on natality, the train/eval split, the feature mapping;
- :mod:`prodml.babyweight.model` — the Keras 3 wide-and-deep regressor and its serving signatures;
- :mod:`prodml.babyweight.task` — the trainer entry point (``python -m prodml.babyweight.task``)
  and :func:`~prodml.babyweight.task.export`.

Importing this package does not import TensorFlow; :mod:`model` and :mod:`task` do.
"""

from prodml.babyweight.contract import (
    CLEAN_WHERE,
    CONTRACT,
    COURSE_INSTANCE,
    FEATURES,
    GENDERS,
    LABEL,
    PLURALITIES,
    RANGES,
    TABLE,
    clean,
    gender,
    plurality,
)
from prodml.babyweight.data import (
    augment,
    features,
    preprocess,
    query,
    read,
    to_dataset,
)

__all__ = [
    "CLEAN_WHERE",
    "CONTRACT",
    "COURSE_INSTANCE",
    "RANGES",
    "TABLE",
    "clean",
    "FEATURES",
    "GENDERS",
    "LABEL",
    "PLURALITIES",
    "augment",
    "features",
    "gender",
    "plurality",
    "preprocess",
    "query",
    "read",
    "to_dataset",
]
