"""Horizontal scaling on one machine, measured: ``prodml serve`` replicas behind Caddy
(``prodml.serving.balancer``) against one replica reached directly, the floor of the same run.

    .venv/bin/python benchmarks/balancer.py [--replicas 4] [--requests 4000] [--concurrency 16]

The model is babyweight's wide-and-deep Keras model (untrained weights: speed does not depend on
them). Each replica count is measured twice: with dynamic batching off (``max_batch_size=1``,
every request one model call) and on (the server's default), since batching changes what a
replica can do with one core. Prints requests/s and p99 per row, and the ratios
``replicas k / replicas 1`` (what scaling out bought) and ``balanced 1 / direct`` (what the
balancer's hop costs). On 2 cores expect the first ratio to peak near 2 replicas with batching
off, and to stay below 1 with batching on. Everything is written under the run folder.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

INSTANCE = {"is_male": "True", "mother_age": 26.0, "plurality": "Single(1)", "gestation_weeks": 39}
PREDICT = "/v1/models/babyweight:predict"


def export_model() -> str:
    from prodml import config
    from prodml.babyweight import model as babyweight_model
    from prodml.babyweight import task

    return task.export(babyweight_model.build(seed=1), config.run_path("bench-balancer", "model"))


def measure(url: str, requests: int, concurrency: int) -> tuple[float, float]:
    from prodml.serving.load import run_load

    body = {"instances": [INSTANCE]}
    run_load(url, PREDICT, body, requests=concurrency * 4, concurrency=concurrency)  # warm up
    result = run_load(url, PREDICT, body, requests=requests, concurrency=concurrency)
    if result.failures:
        raise RuntimeError(f"{result.failures} failed requests at {url}: {result.errors[:3]}")
    return result.rate, 1000 * result.percentile(99)


def sweep(export: str, replicas: int, batch: int, args) -> None:
    from prodml.serving import balancer

    servers = balancer.start_replicas({"babyweight": export}, replicas, max_batch_size=batch)
    try:
        direct, direct_p99 = measure(servers[0].url, args.requests, args.concurrency)
        print(f"max_batch_size={batch}: direct to 1 replica  {direct:8.0f} req/s  p99 {direct_p99:6.1f} ms")  # fmt: skip
        first = None
        for count in range(1, replicas + 1):
            with balancer.start([s.url for s in servers[:count]]) as lb:
                rate, p99 = measure(lb.url, args.requests, args.concurrency)
            first = first or rate
            print(f"  {count} replica(s) behind Caddy   {rate:8.0f} req/s  p99 {p99:6.1f} ms  "
                  f"replicas {count}/replicas 1: {rate / first:.2f}")  # fmt: skip
        print(f"  balanced 1/direct: {first / direct:.2f}")
    finally:
        for server in servers:
            server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=4)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores; {args.requests} requests per row, {args.concurrency} in flight")
    export = export_model()
    for batch in (1, 256):
        sweep(export, args.replicas, batch, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
