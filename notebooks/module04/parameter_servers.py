"""Notebook 04's asynchronous cluster: parameter servers, workers and a coordinator (section 3.4).

Every task runs this program, ``python parameter_servers.py JOB``, with its own ``TF_CONFIG``.
A ``ps`` or ``worker`` task starts a TensorFlow server and serves until it is stopped; the
``chief`` is the coordinator. It creates the variables on the parameter servers, a large
embedding sharded over both of them by ``MinSizePartitioner``, and schedules steps on the
workers with ``ClusterCoordinator``: ``schedule`` queues a step and returns at once, any idle
worker runs it. Halfway through it writes ``JOB["stop_signal"]``: the launcher then kills
worker 1 (and starts it again); the coordinator gives the steps that worker had in flight to
the other. Every step counts itself in a variable on a parameter server, so the report shows
steps scheduled, steps returned and updates applied. At the end it evaluates inline: it
schedules evaluation steps on the workers too, each over its own slice of the evaluation set.

``JOB``: ``train_files``, ``eval_file``, ``per_replica_batch``, ``learning_rate``, ``seed``,
``wide_learning_rate``, ``steps``, ``eval_batch``, ``embedding_bins``, ``min_shard_bytes``, ``stop_signal`` (a file
name, or None for no failure) and ``out``.
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import tensorflow as tf
from prodml.babyweight import model as babyweight_model
from records import eval_rmse, network, parse, task, write_json


def serve(me: dict) -> None:
    """A parameter server or a worker: a gRPC server that runs what the coordinator sends."""
    cluster = tf.train.ClusterSpec(json.loads(os.environ["TF_CONFIG"])["cluster"])
    # More inter-op threads than 2 cores: a worker's blocking receives must not starve its sends.
    threads = tf.compat.v1.ConfigProto(inter_op_parallelism_threads=4)
    server = tf.distribute.Server(
        cluster, job_name=me["type"], task_index=me["index"], config=threads, start=True
    )
    server.join()


def cross_ids(features, bins: int):
    """Every (sex, plurality, age, gestation) combination hashed to one of ``bins`` rows."""
    age = tf.strings.as_string(tf.round(features["mother_age"]), precision=0)
    weeks = tf.strings.as_string(tf.round(features["gestation_weeks"]), precision=0)
    key = tf.strings.join([features["is_male"], features["plurality"], age, weeks], "|")
    return tf.strings.to_hash_bucket_fast(key, bins)


class WideAndDeep(tf.Module):
    """The babyweight Keras model plus a large *wide* table: one learned weight per hashed
    feature cross, as a recommender's sparse features are. The table is a plain variable: under
    ``ParameterServerStrategy`` with a partitioner it is created as a ``ShardedVariable``, one
    row range per parameter server (Keras 3 layers cannot take a sharded variable's gradient)."""

    def __init__(self, job: dict):
        self.net = babyweight_model.build(seed=job["seed"], learning_rate=job["learning_rate"])
        self.bins = job["embedding_bins"]
        self.table = tf.Variable(tf.zeros([self.bins, 1]), name="wide_crosses")

    def __call__(self, features, training=False):
        deep = tf.squeeze(self.net(features, training=training), axis=-1)
        wide = tf.nn.embedding_lookup(self.table, cross_ids(features, self.bins))
        return deep + tf.squeeze(wide, axis=-1)


def make_train_step(strategy, model, optimizer, job, applied):
    """One worker's step on its own batch: no all-reduce; its update goes straight to the
    parameter servers (Adam for the dense weights, sparse SGD for the rows of the wide table
    the batch touched). Returns the loss and which worker ran it; counts itself in ``applied``."""
    batch, dense = job["per_replica_batch"], model.net.trainable_variables
    shards = getattr(model.table, "variables", [model.table])

    @tf.function
    def train_step(iterator):
        def step(features, label):
            with tf.GradientTape() as tape:
                per_example = tf.square(label - model(features, training=True))
                loss = tf.nn.compute_average_loss(per_example, global_batch_size=batch)
            gradients = tape.gradient(loss, [*dense, *shards])
            optimizer.apply_gradients(zip(gradients[: len(dense)], dense, strict=True))
            for shard, grad in zip(shards, gradients[len(dense) :], strict=True):
                shard.scatter_sub(
                    tf.IndexedSlices(job["wide_learning_rate"] * grad.values, grad.indices)
                )
            applied.assign_add(1)
            return loss, tf.distribute.coordinator.experimental_get_current_worker_index()

        return strategy.run(step, args=next(iterator))

    return train_step


def make_dataset_fn(job: dict):
    files = sorted(job["train_files"])
    batch = job["per_replica_batch"]

    def dataset_fn(context):
        ds = tf.data.Dataset.from_tensor_slices(files)
        ds = ds.shard(context.num_input_pipelines, context.input_pipeline_id)
        ds = ds.interleave(tf.data.TFRecordDataset, num_parallel_calls=tf.data.AUTOTUNE)
        ds = ds.shuffle(10_000, seed=job["seed"]).repeat().batch(batch, drop_remainder=True)
        return ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)

    return dataset_fn


def train(job: dict, strategy, coordinator, model, optimizer, applied) -> dict:
    """Schedule ``job["steps"]`` steps; write the stop signal once a third have been applied."""
    train_step = make_train_step(strategy, model, optimizer, job, applied)
    per_worker = coordinator.create_per_worker_dataset(
        lambda: strategy.distribute_datasets_from_function(make_dataset_fn(job))
    )
    iterator = iter(per_worker)
    coordinator.schedule(train_step, args=(iterator,))  # trace the step before timing
    coordinator.join()
    start_count = int(applied.numpy())
    started = time.perf_counter()
    scheduled = [coordinator.schedule(train_step, args=(iterator,)) for _ in range(job["steps"])]
    signalled_at = None
    while not coordinator.done():
        if job["stop_signal"] and signalled_at is None:
            if int(applied.numpy()) - start_count >= job["steps"] // 3:
                open(job["stop_signal"], "w").close()
                signalled_at = time.perf_counter() - started
        time.sleep(0.05)
    coordinator.join()
    seconds = time.perf_counter() - started
    results = [r.fetch() for r in scheduled]
    return {
        "steps_scheduled": len(scheduled),
        "steps_returned": len(results),
        "updates_applied": int(applied.numpy()) - start_count,
        "steps_by_worker": [int(sum(int(w) == i for _, w in results)) for i in range(2)],
        "losses": [float(loss) for loss, _ in results],
        "stop_signal_at_s": signalled_at,
        "seconds": seconds,
    }


def inline_eval(job: dict, strategy, coordinator, model) -> dict:
    """Evaluation scheduled on the workers: one closure per slice of the evaluation set, each
    slice scheduled once, so every record is evaluated exactly once."""
    records = list(tf.data.TFRecordDataset(job["eval_file"]).batch(1 << 20).map(parse))
    features, label = records[0]
    size, batch = int(tf.size(label)), job["eval_batch"]

    @tf.function
    def eval_step(begin):
        end = tf.minimum(begin + batch, size)
        part = {k: v[begin:end] for k, v in features.items()}
        prediction = model(part, training=False)
        return tf.reduce_sum(tf.square(label[begin:end] - prediction)), end - begin

    results = [
        coordinator.schedule(eval_step, args=(tf.constant(b),)) for b in range(0, size, batch)
    ]
    coordinator.join()
    sums = [(float(s), int(n)) for s, n in (r.fetch() for r in results)]
    count = sum(n for _, n in sums)
    return {
        "eval_closures": len(results),
        "eval_records": count,
        "inline_eval_rmse": (sum(s for s, _ in sums) / count) ** 0.5,
    }


def coordinate(job: dict) -> dict:
    """The chief: variables on the parameter servers, steps and evaluation on the workers."""
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    partitioner = tf.distribute.experimental.partitioners.MinSizePartitioner(
        min_shard_bytes=job["min_shard_bytes"], max_shards=resolver.cluster_spec().num_tasks("ps")
    )
    strategy = tf.distribute.ParameterServerStrategy(resolver, variable_partitioner=partitioner)
    coordinator = tf.distribute.coordinator.ClusterCoordinator(strategy)
    with strategy.scope():  # every variable is created on a parameter server
        model = WideAndDeep(job)
        optimizer = keras.optimizers.Adam(job["learning_rate"])
        optimizer.build(model.net.trainable_variables)
        applied = tf.Variable(0, dtype=tf.int64, name="updates_applied")
    shards = [
        {"name": v.name, "device": v.device, "shape": list(v.shape)}
        for v in getattr(model.table, "variables", [model.table])
    ]
    run = train(job, strategy, coordinator, model, optimizer, applied)
    evaluated = inline_eval(job, strategy, coordinator, model)
    return {
        "table_shape": list(model.table.shape),
        "table_shards": shards,
        "dense_variables": [{"name": v.path, "device": v.value.device} for v in model.net.weights],
        **run,
        **evaluated,
        "eval_rmse": eval_rmse(model, job["eval_file"]),  # the same, computed here
    }


def main() -> None:
    job = json.loads(sys.argv[1])
    me = task()
    if me["type"] in ("ps", "worker"):
        serve(me)
        return
    result = {"task": me, "pid": os.getpid(), **network(), **coordinate(job)}
    write_json(os.path.join(job["out"], "coordinator.json"), result)


if __name__ == "__main__":
    main()
