"""The latency-adding filesystem (``latency://``): same bytes as the local file, one delay per
open and per block read, counted; writes immediate; bad settings rejected by name."""

from __future__ import annotations

import math
import os
import pickle
import time

import fsspec
import pytest
from prodml import storage

BLOCK = 4096
SIZE = 10 * BLOCK + 123  # 11 blocks


def latency_fs(**kwargs) -> storage.LatencyFileSystem:
    options = {"open_latency": 0.0, "read_latency": 0.0, "block_size": BLOCK, **kwargs}
    return storage.LatencyFileSystem(**options, skip_instance_cache=True)


@pytest.fixture(scope="module")
def blob(tmp_path_factory):
    path = tmp_path_factory.mktemp("latency") / "blob.bin"
    data = os.urandom(SIZE)
    path.write_bytes(data)
    return path, data


def test_reads_the_local_bytes_one_counted_request_per_block(blob):
    path, data = blob
    fs = latency_fs()
    with fs.open(f"latency://{path}", "rb") as f:
        assert f.read() == data
    assert fs.stats() == {"opens": 1, "reads": math.ceil(SIZE / BLOCK), "bytes_read": SIZE}
    fs.reset_stats()
    assert fs.cat_file(str(path), start=BLOCK, end=BLOCK + 10) == data[BLOCK : BLOCK + 10]
    assert fs.stats() == {"opens": 1, "reads": 1, "bytes_read": BLOCK}


def test_line_iteration_reads_every_line(tmp_path):
    lines = [f"{i},{i * 0.5},Single(1)\n" for i in range(2000)]
    path = tmp_path / "part-0.csv"
    path.write_text("".join(lines))
    fs = latency_fs()
    with fs.open(str(path), "rt") as f:
        assert list(f) == lines
    assert fs.stats()["reads"] == math.ceil(path.stat().st_size / BLOCK)


def test_waits_at_least_the_configured_delays(blob):
    path, data = blob
    fs = latency_fs(open_latency=0.03, read_latency=0.01)
    started = time.perf_counter()
    assert fs.cat(str(path)) == data
    elapsed = time.perf_counter() - started
    blocks = math.ceil(SIZE / BLOCK)
    assert elapsed >= 0.03 + blocks * 0.01  # sleeps never end early; no upper bound is asserted


def test_registered_protocol_and_url_forms(blob):
    path, data = blob
    fs, stripped = fsspec.core.url_to_fs(f"latency://{path}", open_latency=0, read_latency=0)
    assert isinstance(fs, storage.LatencyFileSystem)
    assert stripped == str(path)
    assert fs.unstrip_protocol(str(path)) == f"latency://{path}"
    with fsspec.open(f"latency://{path}", "rb", open_latency=0, read_latency=0) as f:
        assert f.read(100) == data[:100]
    assert storage.filesystem(f"latency://{path}").protocol == ("latency",)


def test_listing_and_info_are_not_reads(blob):
    path, _ = blob
    fs = latency_fs()
    assert fs.info(str(path))["size"] == SIZE
    assert str(path) in fs.ls(str(path.parent), detail=False)
    assert fs.stats() == {"opens": 0, "reads": 0, "bytes_read": 0}


def test_get_and_cp_read_through_the_delay_writes_are_local(blob, tmp_path):
    path, data = blob
    fs = latency_fs()
    fs.get(str(path), str(tmp_path / "down.bin"))
    assert (tmp_path / "down.bin").read_bytes() == data
    assert fs.stats()["reads"] == math.ceil(SIZE / BLOCK)
    fs.reset_stats()
    fs.cp(str(path), str(tmp_path / "copy.bin"))
    assert (tmp_path / "copy.bin").read_bytes() == data
    assert fs.stats()["bytes_read"] == SIZE
    fs.reset_stats()
    with fs.open(str(tmp_path / "new.txt"), "w") as f:
        f.write("written locally")
    fs.put(str(tmp_path / "new.txt"), str(tmp_path / "put.txt"))
    assert (tmp_path / "put.txt").read_text() == "written locally"
    assert fs.stats() == {"opens": 1, "reads": 0, "bytes_read": 0}


def test_survives_pickling_with_its_settings(blob):
    path, data = blob
    fs = pickle.loads(pickle.dumps(latency_fs(open_latency=0.001, read_latency=0.002)))
    assert (fs.open_latency, fs.read_latency, fs.block_size) == (0.001, 0.002, BLOCK)
    assert fs.cat(str(path)) == data


def test_missing_file_and_bad_settings_are_named(tmp_path):
    with pytest.raises(FileNotFoundError):
        latency_fs().open(str(tmp_path / "absent.bin"), "rb")
    with pytest.raises(ValueError, match="open_latency"):
        latency_fs(open_latency=-1)
    with pytest.raises(ValueError, match="read_latency"):
        latency_fs(read_latency="fast")
    with pytest.raises(ValueError, match="block_size"):
        latency_fs(block_size=0)
