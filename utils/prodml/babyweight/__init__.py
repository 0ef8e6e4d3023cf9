"""babyweight: the course's flagship model.

- :mod:`prodml.babyweight.data` — the query on natality, the train/eval split, the feature mapping;
- :mod:`prodml.babyweight.model` — the Keras 3 wide-and-deep regressor and its serving signatures;
- :mod:`prodml.babyweight.task` — the trainer entry point (``python -m prodml.babyweight.task``)
  and :func:`~prodml.babyweight.task.export`.

Importing this package does not import TensorFlow; :mod:`model` and :mod:`task` do.
"""

from prodml.babyweight.data import (
    FEATURES,
    GENDERS,
    LABEL,
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
