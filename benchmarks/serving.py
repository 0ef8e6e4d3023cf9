"""Prediction serving, measured: the in-process signature call, ``prodml serve`` over loopback,
and a naive Flask app that calls ``model.predict`` per request.

    .venv/bin/python benchmarks/serving.py [--requests 3000]

The model is babyweight's wide-and-deep Keras model (untrained weights: speed does not depend on
them), exported with its serving signatures. Targets on a 2-core machine: p50 <= 2 ms for one
instance, >= 1,000 instances/s at concurrency 32, >= 30x the naive app's throughput.
Everything is written under the run folder.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

INSTANCE = {"is_male": "True", "mother_age": 26.0, "plurality": "Single(1)", "gestation_weeks": 39}


def naive_app(model_path: str, port_file: str) -> None:
    """The baseline: Flask, the Keras model, ``model.predict`` on every request."""
    import keras
    import numpy as np
    from flask import Flask, jsonify, request
    from werkzeug.serving import make_server

    model = keras.saving.load_model(model_path)
    app = Flask("naive")

    @app.post("/predict")
    def predict():
        instances = request.get_json()["instances"]
        features = {
            "is_male": np.array([i["is_male"] for i in instances], dtype=object),
            "mother_age": np.array([i["mother_age"] for i in instances], dtype="float32"),
            "plurality": np.array([i["plurality"] for i in instances], dtype=object),
            "gestation_weeks": np.array([i["gestation_weeks"] for i in instances], dtype="float32"),
        }
        import tensorflow as tf

        inputs = {k: tf.constant(v) for k, v in features.items()}
        weights = model.predict(inputs, verbose=0)[:, 0]
        return jsonify({"predictions": [{"weight": float(w)} for w in weights]})

    server = make_server("127.0.0.1", 0, app, threaded=True)
    Path(port_file).write_text(json.dumps({"port": server.server_port}))
    server.serve_forever()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--requests", type=int, default=3000, help="requests per server measurement"
    )
    parser.add_argument(
        "--naive-requests", type=int, default=120, help="requests per naive measurement"
    )
    parser.add_argument(
        "--skip-naive", action="store_true", help="measure prodml serve only (no Flask baseline)"
    )
    parser.add_argument(
        "--naive-app", nargs=2, metavar=("MODEL", "PORT_FILE"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.naive_app:
        naive_app(*args.naive_app)
        return 0

    import tensorflow as tf
    from prodml import config, serving
    from prodml.babyweight import model as babyweight_model
    from prodml.babyweight import task
    from prodml.serving.load import run_load

    out = config.run_path("benchmarks", "serving", "x").parent
    model = babyweight_model.build(seed=42)
    export_path = task.export(model, out / "export")
    keras_path = out / "model.keras"
    model.save(keras_path)

    # 1. the floor: the signature called in process
    sig = tf.saved_model.load(export_path).signatures["serving_default"]
    feed = {
        k: tf.constant([v], dtype=tf.string if isinstance(v, str) else tf.float32)
        for k, v in INSTANCE.items()
    }
    for _ in range(50):
        sig(**feed)
    times = []
    for _ in range(2000):
        t0 = time.perf_counter()
        sig(**feed)
        times.append(time.perf_counter() - t0)
    floor = statistics.median(times) * 1000
    rows = [("in-process signature call, 1 instance (floor)", f"p50 {floor:.3f} ms")]
    body = {"instances": [INSTANCE]}

    # 2. prodml serve
    results = {}
    with serving.start({"babyweight": out / "export"}) as server:
        path = "/v1/models/babyweight:predict"
        run_load(server.url, path, body, 300, 8)  # warm up
        for c in (1, 8, 32):
            r = run_load(server.url, path, body, args.requests, c)
            assert r.failures == 0, r.errors[:3]
            results[c] = r
    lat = results[1]
    rows.append(("prodml serve, 1 instance, concurrency 1",
                 f"p50 {lat.percentile(50) * 1000:.2f} ms  p99 {lat.percentile(99) * 1000:.2f} ms"))  # fmt: skip
    for c, r in results.items():
        rows.append((f"prodml serve throughput, concurrency {c}", f"{r.rate:,.0f} instances/s"))

    p50 = lat.percentile(50) * 1000
    # against the floor measured in this run, so loaded machines compare like with like
    rows.append(("ratio: serve p50 / in-process floor p50", f"{p50 / floor:.2f}x"))
    rows.append(("ratio: serve c32 instances/s x floor p50 (1.0 = one in-process call's rate)",
                 f"{results[32].rate * floor / 1000:.2f}"))  # fmt: skip
    if args.skip_naive:
        _print(rows)
        return 0

    # 3. the naive app
    port_file = out / "naive.port.json"
    port_file.unlink(missing_ok=True)
    log = open(out / "naive.log", "wb")
    proc = subprocess.Popen([sys.executable, __file__, "--naive-app", str(keras_path), str(port_file)],
                            stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        for _ in range(1200):
            if port_file.is_file() or proc.poll() is not None:
                break
            time.sleep(0.1)
        if not port_file.is_file():
            raise RuntimeError(f"the naive app did not start; see {out / 'naive.log'}")
        url = f"http://127.0.0.1:{json.loads(port_file.read_text())['port']}"
        run_load(url, "/predict", body, 10, 1)  # warm up
        naive1 = run_load(url, "/predict", body, max(20, args.naive_requests // 3), 1)
        naive32 = run_load(url, "/predict", body, args.naive_requests, 32)
        assert naive1.failures == 0 and naive32.failures == 0, naive32.errors[:3]
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()
    rows.append(("naive Flask + model.predict, concurrency 1",
                 f"p50 {naive1.percentile(50) * 1000:.1f} ms, {naive1.rate:,.0f} instances/s"))  # fmt: skip
    rows.append(("naive Flask + model.predict, concurrency 32", f"{naive32.rate:,.0f} instances/s"))

    ratio = results[32].rate / naive32.rate
    rows.append(("ratio: serve / naive throughput at concurrency 32", f"{ratio:,.0f}x"))
    rows.append(("ratio: naive / serve p50 latency", f"{naive1.percentile(50) * 1000 / p50:,.0f}x"))
    _print(rows)
    checks = [
        (f"p50 {p50:.2f} ms <= 2 ms", p50 <= 2),
        (
            f"{results[32].rate:,.0f} instances/s >= 1,000 at concurrency 32",
            results[32].rate >= 1000,
        ),
        (f"{ratio:,.0f}x >= 30x the naive app", ratio >= 30),
    ]
    print("\nTargets:")
    for text, ok in checks:
        print(f"  [{'met' if ok else 'MISSED'}] {text}")
    return 0


def _print(rows) -> None:
    width = max(len(k) for k, _ in rows)
    print(f"\nServing benchmark ({os.cpu_count()} CPUs, loopback, babyweight model)\n")
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")


if __name__ == "__main__":
    sys.exit(main())
