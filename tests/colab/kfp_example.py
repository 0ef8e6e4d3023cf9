"""A Kubeflow Pipelines run in Colab's separate environment, the way notebook 05 runs its own.

One lightweight component loads the kernel's TensorFlow (Colab's) and the workbook under the
separate environment's protobuf (kfp's), saves a SavedModel, serves it and reports what it saw.
``tests/test_colab_standin.py`` compiles this file with the environment's ``kfp dsl compile`` and runs
it with the environment's Python::

    python kfp_example.py PIPELINE_ROOT REPORT_JSON
"""

import sys

from kfp import dsl, local


@dsl.component(install_kfp_package=False, packages_to_install=[])
def tensorflow_step(report: str):
    """Save and serve a SavedModel; write the versions this process imported."""
    import json
    import sys
    import tempfile

    import google.protobuf
    import prodml
    import tensorflow as tf

    module = tf.Module()
    module.scale = tf.Variable(2.0)
    module.call = tf.function(
        lambda x: x * module.scale, input_signature=[tf.TensorSpec([None], tf.float32)]
    )
    path = tempfile.mkdtemp(prefix="savedmodel-")
    tf.saved_model.save(module, path)
    served = tf.saved_model.load(path)
    found = {
        "python": sys.executable,
        "protobuf": google.protobuf.__version__,
        "tensorflow": tf.__version__,
        "prodml": prodml.__file__,
        "predictions": served.call(tf.constant([1.0, 2.5])).numpy().tolist(),
    }
    with open(report, "w") as out:
        json.dump(found, out)


@dsl.pipeline(name="colab-separate-environment")
def example(report: str):
    tensorflow_step(report=report)


if __name__ == "__main__":
    pipeline_root, report = sys.argv[1:]
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=pipeline_root)
    example(report=report)
