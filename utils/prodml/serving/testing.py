"""A tiny SavedModel with babyweight's serving signatures, for tests and benchmarks of the server.

It is a real SavedModel (a ``tf.Module`` with ``tf.function`` signatures), not trained: its
weight is a fixed formula times ``scale``, so tests can tell versions apart by their answers.
"""

from __future__ import annotations

import os
from pathlib import Path

INSTANCE = {"is_male": "True", "mother_age": 26.0, "plurality": "Single(1)", "gestation_weeks": 39}


def toy_weight(instance: dict, scale: float = 1.0) -> float:
    """What the toy model answers for ``instance`` (float64; the model computes in float32)."""
    male = 1.0 if instance["is_male"] == "True" else 0.0
    single = 1.0 if instance["plurality"] == "Single(1)" else 0.0
    return scale * (
        0.2 * instance["gestation_weeks"]
        - 0.01 * instance["mother_age"]
        + 0.3 * male
        + single
        - 1.0
    )


def export_toy_model(base_dir: str | os.PathLike, version: int = 1, scale: float = 1.0) -> Path:
    """Write ``base_dir/<version>/`` with signatures ``serving_default`` and ``keyed``."""
    import tensorflow as tf

    S, F = tf.string, tf.float32
    features = [tf.TensorSpec([None], S, name="is_male"), tf.TensorSpec([None], F, name="mother_age"),
                tf.TensorSpec([None], S, name="plurality"), tf.TensorSpec([None], F, name="gestation_weeks")]  # fmt: skip

    class Toy(tf.Module):
        def __init__(self):
            super().__init__()
            self.scale = tf.Variable(scale, dtype=F, trainable=False)

        def weight(self, is_male, mother_age, plurality, gestation_weeks):
            male = tf.cast(tf.equal(is_male, "True"), F)
            single = tf.cast(tf.equal(plurality, "Single(1)"), F)
            return self.scale * (
                0.2 * gestation_weeks - 0.01 * mother_age + 0.3 * male + single - 1.0
            )

        @tf.function(input_signature=features)
        def serve(self, is_male, mother_age, plurality, gestation_weeks):
            return {"weight": self.weight(is_male, mother_age, plurality, gestation_weeks)}

        @tf.function(input_signature=[tf.TensorSpec([None], S, name="key"), *features])
        def keyed(self, key, is_male, mother_age, plurality, gestation_weeks):
            w = self.weight(is_male, mother_age, plurality, gestation_weeks)
            return {"weight": w, "key": tf.identity(key)}

    toy = Toy()
    path = Path(base_dir) / str(version)
    tf.saved_model.save(
        toy, str(path), signatures={"serving_default": toy.serve, "keyed": toy.keyed}
    )
    return path
