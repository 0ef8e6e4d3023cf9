"""One worker of notebook 04's ``MultiWorkerMirroredStrategy`` cluster (sections 3.2 and 3.3).

Every worker of a cluster runs this same program, ``python multi_worker.py JOB``, with its own
``TF_CONFIG``. ``JOB`` is a JSON object: ``train_files``, ``eval_file``, ``per_replica_batch``,
``learning_rate``, ``seed``, ``steps``, ``checkpoint_every``, ``checkpoints`` (the chief's
checkpoint folder), ``out`` (where this launch writes its reports) and ``try_fit``.

Checkpoints: every worker saves (saving reads the mirrored variables, which takes every
worker), but only the chief (worker 0) writes to ``checkpoints``; the others write to a
temporary folder of their own and delete it. A worker that starts while a checkpoint exists
restores it (weights, optimizer slots, the step; it skips the batches already seen) and carries on
from that step, so a cluster restarted after a failure loses only the steps since the last
checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import tensorflow as tf
from prodml.babyweight import model as babyweight_model
from records import eval_rmse, network, parse, task, write_json


def write_dir(checkpoints: str, task_index: int) -> str:
    """Where this worker saves: the chief the real folder, the others a temporary one."""
    if task_index == 0:
        return checkpoints
    return os.path.join(checkpoints, f"worker-{task_index}-temp")


def make_dataset_fn(job: dict, global_batch: int, start_step: int = 0):
    """Each worker reads its own shard of the files, shuffled the same way in every run, from
    batch ``start_step`` on (a distributed iterator cannot be checkpointed: skipping the batches
    already trained on puts a restarted worker where the checkpoint left off)."""
    files = sorted(job["train_files"])

    def dataset_fn(context):
        ds = tf.data.Dataset.from_tensor_slices(files)
        ds = ds.shard(context.num_input_pipelines, context.input_pipeline_id)
        ds = ds.interleave(tf.data.TFRecordDataset)
        ds = ds.shuffle(10_000, seed=job["seed"]).repeat()
        ds = ds.batch(context.get_per_replica_batch_size(global_batch), drop_remainder=True)
        return ds.skip(start_step).map(parse)

    return dataset_fn


def try_fit(model, strategy, dataset_fn) -> str | None:
    """Keras ``fit`` for one step under this strategy: None if it works, else the error."""
    try:
        model.fit(strategy.distribute_datasets_from_function(dataset_fn), steps_per_epoch=1)
    except Exception as err:  # the known failure (keras-team/keras#20585), reported not quoted
        return f"{type(err).__name__}: {str(err).splitlines()[0][:120]}"
    return None


def make_train_step(strategy, model, optimizer, global_batch):
    """The synchronous step: each replica's gradients, all-reduced, applied everywhere."""

    @tf.function
    def train_step(iterator):
        def step(features, label):
            with tf.GradientTape() as tape:
                prediction = tf.squeeze(model(features, training=True), axis=-1)
                per_example = tf.square(label - prediction)
                loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
            gradients = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
            return loss

        losses = strategy.run(step, args=next(iterator))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)

    return train_step


def train(job: dict, me: dict) -> dict:
    """Train to ``job["steps"]``, resuming from the chief's latest checkpoint if there is one."""
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    global_batch = job["per_replica_batch"] * strategy.num_replicas_in_sync
    with strategy.scope():
        model = babyweight_model.build(seed=job["seed"], learning_rate=job["learning_rate"])
        optimizer = keras.optimizers.Adam(job["learning_rate"])
        optimizer.build(model.trainable_variables)
        step = tf.Variable(0, dtype=tf.int64, name="step")
    fit_error = None
    if job.get("try_fit"):
        fit_error = try_fit(model, strategy, make_dataset_fn(job, global_batch))
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, step=step)
    folder = write_dir(job["checkpoints"], me["index"])
    manager = tf.train.CheckpointManager(checkpoint, folder, max_to_keep=2)
    restored = tf.train.latest_checkpoint(job["checkpoints"])
    if restored:
        checkpoint.restore(restored).assert_existing_objects_matched()
    start = int(step.numpy())
    dataset_fn = make_dataset_fn(job, global_batch, start)
    iterator = iter(strategy.distribute_datasets_from_function(dataset_fn))
    train_step = make_train_step(strategy, model, optimizer, global_batch)
    losses, seconds = {}, []
    while int(step.numpy()) < job["steps"]:
        started = time.perf_counter()
        loss = float(train_step(iterator))
        seconds.append(time.perf_counter() - started)
        step.assign_add(1)
        losses[int(step.numpy())] = loss
        if int(step.numpy()) % job["checkpoint_every"] == 0 or int(step.numpy()) == job["steps"]:
            manager.save(checkpoint_number=int(step.numpy()))
            if me["index"] != 0:
                shutil.rmtree(folder, ignore_errors=True)
    return {
        "model": model,
        "replicas": strategy.num_replicas_in_sync,
        "global_batch": global_batch,
        "fit_error": fit_error,
        "restored_from": os.path.basename(restored) if restored else None,
        "start_step": start,
        "losses": losses,
        "step_seconds": seconds,
    }


def save_model(model, out: str, task_index: int) -> str:
    """Every worker saves the Keras model; only the chief's copy is kept."""
    folder = out if task_index == 0 else os.path.join(out, f"worker-{task_index}-temp")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "babyweight.keras")
    model.save(path)
    if task_index != 0:
        shutil.rmtree(folder, ignore_errors=True)
    return path


def main() -> None:
    job = json.loads(sys.argv[1])
    me = task()
    with open(os.path.join(job["out"], f"pid-{me['index']}"), "w") as f:
        f.write(str(os.getpid()))
    run = train(job, me)
    model = run.pop("model")
    saved = save_model(model, job["out"], me["index"])
    result = {
        "task": me,
        "pid": os.getpid(),
        **network(),
        **run,
        "saved_model": saved if me["index"] == 0 else None,
        "eval_rmse": eval_rmse(model, job["eval_file"]),
    }
    write_json(os.path.join(job["out"], f"worker-{me['index']}.json"), result)


if __name__ == "__main__":
    main()
