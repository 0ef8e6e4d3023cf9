"""What every program of notebook 04's clusters shares: the TFRecord features and the network report.

The worker, parameter-server and coordinator programs beside this file import it; the notebook
writes the TFRecord shards they read (section 1).
"""

from __future__ import annotations

import json
import os
import socket

import tensorflow as tf
from prodml.babyweight.contract import FEATURES, LABEL, STRING_FEATURES

#: the tf.train.Example features of a training record: the four model inputs and the label.
SPEC = {
    name: tf.io.FixedLenFeature([], tf.string if name in STRING_FEATURES else tf.float32)
    for name in (*FEATURES, LABEL)
}


def parse(records):
    """A batch of serialized examples -> (features dict, label)."""
    features = tf.io.parse_example(records, SPEC)
    return features, features.pop(LABEL)


def eval_rmse(model, eval_file: str) -> float:
    """The model's root mean squared error (lb) over every record of ``eval_file``."""
    squared, count = 0.0, 0
    for features, label in tf.data.TFRecordDataset(eval_file).batch(4096).map(parse):
        prediction = tf.reshape(model(features, training=False), [-1])
        squared += float(tf.reduce_sum(tf.square(label - prediction)))
        count += int(tf.size(label))
    return (squared / count) ** 0.5


def listening() -> list[str]:
    """The TCP addresses this network namespace listens on, from /proc/net/tcp{,6}."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            lines = f.read().splitlines()[1:]
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            if state == "0A":  # LISTEN
                address, port = local.split(":")
                shown = "0.0.0.0 (every interface)" if set(address) == {"0"} else address
                found.add(f"{shown}:{int(port, 16)}")
    return sorted(found)


def network() -> dict:
    """The interfaces this process sees and the addresses it listens on."""
    return {"interfaces": [name for _, name in socket.if_nameindex()], "listening": listening()}


def task() -> dict:
    """This process's task in the cluster, from ``TF_CONFIG`` (``{"type": ..., "index": ...}``)."""
    return json.loads(os.environ["TF_CONFIG"])["task"]


def write_json(path: str, value) -> None:
    """Write ``value`` as JSON atomically (readers never see half a file)."""
    with open(f"{path}.tmp", "w") as f:
        json.dump(value, f)
    os.replace(f"{path}.tmp", path)
