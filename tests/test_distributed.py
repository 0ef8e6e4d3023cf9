"""Notebook 04's cluster programs under failure, run by ``prodml.distributed`` in a loopback-only
network namespace on small generated data.

- ``multi_worker.py`` (``MultiWorkerMirroredStrategy``, custom loop, ``CheckpointManager``):
  a worker killed after the chief's checkpoint at step 20 takes the chief down with it; the
  restarted cluster resumes from that checkpoint at step 20 and ends with the same losses and
  evaluation as a run that was never interrupted.
- ``parameter_servers.py`` (``ParameterServerStrategy``): with worker 1 killed and restarted
  mid-run, every scheduled step returns exactly once, the updates applied on the parameter
  servers are the scheduled count plus at most the one step the dead worker had in flight,
  the wide table is sharded over both parameter servers and inline evaluation equals the
  coordinator's own.
"""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import numpy as np
import pytest
from prodml import distributed

REPO = Path(__file__).resolve().parents[1]
PROGRAMS = REPO / "notebooks" / "module04"
NAMESPACE = distributed.loopback_namespace()
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(NAMESPACE is None, reason="no loopback-only network namespace here"),
]


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> list[str]:
    """Four TFRecord shards of 1,000 generated natality-like records (weight from gestation)."""
    import tensorflow as tf

    sys.path.insert(0, str(PROGRAMS))
    from records import SPEC

    folder = tmp_path_factory.mktemp("shards")
    rng = np.random.default_rng(0)
    n = 4000
    columns = {
        "is_male": rng.choice(["True", "False"], n),
        "plurality": rng.choice(["Single(1)", "Twins(2)"], n, p=[0.97, 0.03]),
        "mother_age": rng.uniform(18, 40, n),
        "gestation_weeks": rng.uniform(30, 42, n),
    }
    columns["weight_pounds"] = 0.3 * columns["gestation_weeks"] - 4 + rng.normal(0, 1, n)
    files = []
    for i, part in enumerate(np.array_split(np.arange(n), 4)):
        files.append(str(folder / f"part-{i}.tfrecord"))
        with tf.io.TFRecordWriter(files[-1]) as writer:
            for row in part:
                feature = {}
                for name, spec in SPEC.items():
                    value = columns[name][row]
                    if spec.dtype == tf.string:
                        feature[name] = tf.train.Feature(
                            bytes_list=tf.train.BytesList(value=[value.encode()])
                        )
                    else:
                        feature[name] = tf.train.Feature(
                            float_list=tf.train.FloatList(value=[value])
                        )
                example = tf.train.Example(features=tf.train.Features(feature=feature))
                writer.write(example.SerializeToString())
    return files


def worker_configs(n: int) -> list[dict]:
    cluster = {"worker": [f"localhost:{12345 + i}" for i in range(n)]}
    return [{"cluster": cluster, "task": {"type": "worker", "index": i}} for i in range(n)]


def mw_job(files, checkpoints, out) -> dict:
    return {
        "train_files": files,
        "eval_file": files[0],
        "per_replica_batch": 64,
        "learning_rate": 0.006,
        "seed": 42,
        "steps": 40,
        "checkpoint_every": 10,
        "checkpoints": str(checkpoints),
        "out": str(out),
        "try_fit": False,
    }


def test_killed_worker_resumes_from_the_checkpoint_at_the_saved_step(shards, tmp_path):
    program = PROGRAMS / "multi_worker.py"
    whole = mw_job(shards, tmp_path / "whole" / "ckpt", tmp_path / "whole" / "run")
    launch = distributed.run_cluster(program, worker_configs(2), whole, whole["out"], NAMESPACE)
    assert launch.returncodes == {0: 0, 1: 0}, launch.log(0)

    first = mw_job(shards, tmp_path / "cut" / "ckpt", tmp_path / "cut" / "first")
    kill = distributed.Kill(task=1, when=str(tmp_path / "cut" / "ckpt" / "ckpt-20.index"))
    killed = distributed.run_cluster(program, worker_configs(2), first, first["out"], NAMESPACE,
                                     kill=kill)  # fmt: skip
    assert [e["event"] for e in killed.events if e["task"] == 1] == ["started", "killed"]
    assert killed.returncodes[1] == -9  # SIGKILL
    assert killed.returncodes[0] != 0  # the chief's all-reduce lost its peer
    assert "Unavailable" in killed.log(0, 20_000) or "Connection" in killed.log(0, 20_000)
    assert not (Path(first["out"]) / "worker-0.json").exists()

    second = {**first, "out": str(tmp_path / "cut" / "second")}
    resumed = distributed.run_cluster(program, worker_configs(2), second, second["out"], NAMESPACE)
    assert resumed.returncodes == {0: 0, 1: 0}, resumed.log(0)

    reference = json.loads((Path(whole["out"]) / "worker-0.json").read_text())
    chief = json.loads((Path(second["out"]) / "worker-0.json").read_text())
    assert chief["restored_from"] == "ckpt-20" and chief["start_step"] == 20
    assert sorted(map(int, chief["losses"])) == list(range(21, 41))  # only the steps left
    for step, loss in chief["losses"].items():
        assert loss == pytest.approx(reference["losses"][step], rel=1e-5), step
    assert chief["eval_rmse"] == pytest.approx(reference["eval_rmse"], rel=1e-5)
    assert chief["interfaces"] == ["lo"]
    # the other worker saved to a temporary folder and removed it: only the chief's remain
    kept = sorted(p.name for p in (tmp_path / "cut" / "ckpt").iterdir())
    assert kept == ["checkpoint", "ckpt-30.data-00000-of-00001", "ckpt-30.index",
                    "ckpt-40.data-00000-of-00001", "ckpt-40.index"]  # fmt: skip


def test_coordinator_counts_every_step_once_after_a_worker_stop(shards, tmp_path):
    names = [("chief", 0), ("worker", 0), ("worker", 1), ("ps", 0), ("ps", 1)]
    cluster = {"chief": [], "worker": [], "ps": []}
    for i, (kind, _) in enumerate(names):
        cluster[kind].append(f"localhost:{12345 + i}")
    configs = [{"cluster": cluster, "task": {"type": t, "index": i}} for t, i in names]
    steps = 200
    job = {
        "train_files": shards,
        "eval_file": shards[0],
        "per_replica_batch": 64,
        "learning_rate": 0.003,
        "wide_learning_rate": 0.05,
        "seed": 42,
        "steps": steps,
        "eval_batch": 256,
        "embedding_bins": 1 << 18,
        "min_shard_bytes": 256 << 10,
        "stop_signal": str(tmp_path / "stop-worker-1"),
        "out": str(tmp_path),
    }
    kill = distributed.Kill(task=2, when=job["stop_signal"], restart_after_s=1.0)
    launch = distributed.run_cluster(
        PROGRAMS / "parameter_servers.py", configs, job, tmp_path, NAMESPACE, until=[0], kill=kill
    )
    assert launch.returncodes[0] == 0, launch.log(0)
    assert [e["event"] for e in launch.events if e["task"] == 2][:3] == [
        "started", "killed", "started"
    ]  # fmt: skip
    result = json.loads((tmp_path / "coordinator.json").read_text())
    assert result["steps_scheduled"] == steps
    assert result["steps_returned"] == steps  # none lost
    assert len(result["losses"]) == steps and np.isfinite(result["losses"]).all()
    assert sum(result["steps_by_worker"]) == steps  # each returned once: none doubled
    assert steps <= result["updates_applied"] <= steps + 1  # at most the step in flight, twice
    assert result["stop_signal_at_s"] is not None
    shards_ = result["table_shards"]
    assert [s["shape"] for s in shards_] == [[1 << 17, 1], [1 << 17, 1]]
    assert {s["device"].split("/")[3] for s in shards_} == {"task:0", "task:1"}
    assert result["eval_records"] == 1000
    assert result["inline_eval_rmse"] == pytest.approx(result["eval_rmse"], rel=1e-5)
    assert result["eval_rmse"] < 1.5  # the generator's noise is 1 lb


def test_free_ports_are_distinct_and_bindable():
    ports = distributed.free_ports(3)
    assert len(set(ports)) == 3
    for port in ports:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))
