"""What a machine gives a training job: threads and memory, measured in a process of its own.

    python resources.py --threads 1 --batches 1024,16384,131072 [--headroom-mb 100]

TensorFlow sizes its thread pools once, when it starts, so a thread budget other than the
machine's needs a fresh process: this one sets ``tf.config.threading`` before anything runs,
predicts one batch of each size, smallest first, recording the process's peak resident memory
after each (:func:`peak_memory`), then trains the babyweight model for ``--steps`` steps at the
first batch size (examples per second, :func:`training_rate`). With ``--headroom-mb`` the process may then
grow by only that much (``RLIMIT_DATA`` set to its data memory plus the headroom: a smaller
machine) and predicts a batch four times the largest; a job that needs more memory than the
machine has is killed, as here. One JSON line per measurement on stdout. Linux only (it reads
/proc/self/status), as on Colab and in Vertex AI's training containers.

The notebook runs it twice: with one thread, and with one thread per core (TensorFlow's default).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time


def examples(rows: int = 8_192):
    """Preprocessed natality rows (features and label) to train and predict on."""
    from prodml.babyweight import data
    from prodml.datasets import natality

    return data.preprocess(natality.clean(natality.generate(rows, seed=7)))


def training_rate(rows, batch: int, steps: int, repeats: int = 3) -> float:
    """Examples per second of ``steps`` training steps of a new model at ``batch``: the best of
    ``repeats`` timings (on a shared machine the best is the least disturbed)."""
    from prodml.babyweight import data
    from prodml.babyweight import model as babyweight_model

    model = babyweight_model.build(seed=7)
    train = data.to_dataset(rows, batch).repeat()
    model.fit(train, steps_per_epoch=2, epochs=1, verbose=0)  # build and trace first
    best = 0.0
    for _ in range(repeats):
        started = time.perf_counter()
        model.fit(train, steps_per_epoch=steps, epochs=1, verbose=0)
        best = max(best, steps * batch / (time.perf_counter() - started))
    return best


def peak_memory(model, rows, batch: int) -> float:
    """The process's peak resident memory (MiB) after predicting one batch of ``batch`` rows."""
    from prodml.babyweight import data

    chunk = rows.drop(columns=[data.LABEL]).sample(batch, replace=True, random_state=7)
    model.predict(data.to_dataset(chunk, batch), verbose=0)
    # VmHWM, not getrusage's ru_maxrss: Linux keeps the parent's ru_maxrss across exec, so a
    # process started from a big notebook kernel would report the kernel's peak
    return status_kib("VmHWM") / 1024


def status_kib(field: str) -> int:
    """A memory figure of this process from /proc/self/status (Linux), in KiB."""
    with open("/proc/self/status") as status:
        line = next(x for x in status if x.startswith(f"{field}:"))
    return int(line.split()[1])


def data_bytes() -> int:
    """The process's data memory now (VmData: what RLIMIT_DATA counts)."""
    return status_kib("VmData") * 1024


def report(**fields) -> None:
    print(json.dumps(fields), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, required=True, help="intra- and inter-op threads")
    parser.add_argument("--batches", default="1024,16384", help="batch sizes, comma-separated")
    parser.add_argument("--steps", type=int, default=20, help="training steps timed")
    parser.add_argument("--headroom-mb", type=float, help="data memory it may then grow by")
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    from prodml.babyweight import model as babyweight_model

    rows = examples()
    model = babyweight_model.build(seed=7)
    for batch in sorted(batches):  # first: the peak only grows, and training has its own
        report(threads=args.threads, batch=batch, peak_mb=peak_memory(model, rows, batch))
    rate = training_rate(rows, batches[0], args.steps)
    report(threads=args.threads, batch=batches[0], examples_per_s=rate)
    if args.headroom_mb:
        limit = data_bytes() + int(args.headroom_mb * 2**20)
        resource.setrlimit(
            resource.RLIMIT_DATA, (limit, resource.getrlimit(resource.RLIMIT_DATA)[1])
        )
        report(threads=args.threads, limit_mb=limit / 2**20, attempting=4 * batches[-1])
        report(
            threads=args.threads,
            batch=4 * batches[-1],
            peak_mb=peak_memory(model, rows, 4 * batches[-1]),
        )


if __name__ == "__main__":
    main()
