"""babyweight: the course's flagship model.

- :mod:`prodml.babyweight.contract` — the feature contract: the natality table, the clean filter,
  the features and their plausible ranges, the course's instance;
- :mod:`prodml.babyweight.data` — the query on natality, the train/eval split, the feature mapping;
- :mod:`prodml.babyweight.model` — the Keras 3 wide-and-deep regressor and its serving signatures;
- :mod:`prodml.babyweight.task` — the trainer entry point (``python -m prodml.babyweight.task``)
  and :func:`~prodml.babyweight.task.export`.

Importing this package does not import TensorFlow; :mod:`model` and :mod:`task` do.
"""

from prodml.babyweight.contract import (
    CLEAN_WHERE,
    COURSE_INSTANCE,
    FEATURES,
    LABEL,
    RANGES,
    TABLE,
    clean,
)
from prodml.babyweight.data import (
    GENDERS,
    PLURALITIES,
    augment,
    features,
    gender,
    plurality,
    preprocess,
    query,
    read,
    to_dataset,
)

__all__ = [
    "CLEAN_WHERE",
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
