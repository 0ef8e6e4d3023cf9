"""The integrated front-end of notebook 01 §11: the babyweight model's age x gestation embedding
written for the Embedding Projector (prodml.tensorboard.write_projector: vectors and metadata as
TSV files, one row per vocabulary entry, and the Projector tab's config), and TensorBoard served
on 127.0.0.1 over a trainer's logs, opened in Chromium."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
import requests
from prodml import tensorboard

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def read_tsv(path) -> list[list[str]]:
    return [line.split("\t") for line in path.read_text().splitlines()]


# -- quick: the file format and its refusals -----------------------------------------------------
def test_the_projector_files_hold_one_row_per_entry_and_a_config_that_names_them(tmp_path):
    vectors = np.arange(12, dtype="float32").reshape(4, 3) / 7
    metadata = pd.DataFrame({"word": ["a", "b", "c", "d"], "count": [3, 1, np.nan, 2]})
    paths = tensorboard.write_projector(tmp_path, "words", vectors, metadata)
    rows = read_tsv(paths["vectors"])
    assert len(rows) == 4 and all(len(r) == 3 for r in rows)
    np.testing.assert_allclose(np.array(rows, dtype=float), vectors, rtol=1e-5)
    assert read_tsv(paths["metadata"]) == [
        ["word", "count"],  # a header: more than one column
        ["a", "3.0"], ["b", "1.0"], ["c", ""], ["d", "2.0"],
    ]  # fmt: skip
    config = paths["config"].read_text()
    assert 'tensor_name: "words"' in config and 'tensor_path: "words_vectors.tsv"' in config
    assert 'metadata_path: "words_metadata.tsv"' in config


def test_a_second_embedding_joins_the_config_and_one_column_has_no_header(tmp_path):
    tensorboard.write_projector(tmp_path, "first", np.ones((2, 2)))
    paths = tensorboard.write_projector(tmp_path, "second", np.ones((3, 2)), pd.DataFrame({"w": list("xyz")}))  # fmt: skip
    assert read_tsv(paths["metadata"]) == [["x"], ["y"], ["z"]]
    config = paths["config"].read_text()
    assert config.count("embeddings {") == 2 and '"first"' in config and '"second"' in config
    tensorboard.write_projector(tmp_path, "second", np.ones((3, 2)))  # rewritten, not doubled
    assert paths["config"].read_text().count("embeddings {") == 2


@pytest.mark.parametrize(
    ("vectors", "metadata", "message"),
    [
        (np.ones(3), None, "finite 2-D array"),
        (np.array([[1.0, np.nan]]), None, "finite 2-D array"),
        (np.ones((3, 2)), pd.DataFrame({"w": ["a", "b"]}), "2 metadata rows for 3 vectors"),
        (np.ones((2, 2)), pd.DataFrame({"w": ["a\tb", "c"]}), "column 'w' holds a tab"),
    ],
)
def test_bad_input_is_refused_by_name(tmp_path, vectors, metadata, message):
    with pytest.raises(ValueError, match=message):
        tensorboard.write_projector(tmp_path, "bad", vectors, metadata)


def wait_for_the_projector(board, timeout: float = 60) -> None:
    """The Projector looks for its config in a background thread: inactive until it is found."""
    deadline = time.monotonic() + timeout
    while "projector" not in board.plugins() and time.monotonic() < deadline:
        time.sleep(0.5)


# -- slow: the babyweight model's embedding; TensorBoard over a trainer's logs -------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A babyweight model fitted for a few steps with Keras' TensorBoard callback, and its cross
    embedding written for the Projector at the log folder's root (as notebook 01 §11 does)."""
    import keras
    from prodml.babyweight import data
    from prodml.babyweight import model as babyweight_model
    from prodml.datasets import natality

    logdir = tmp_path_factory.mktemp("tensorboard")
    frame = natality.generate(2_000, seed=7)
    rows = data.preprocess(natality.clean(frame))
    model = babyweight_model.build(seed=7)
    callback = keras.callbacks.TensorBoard(log_dir=str(logdir / "trainer"), update_freq=2)
    model.fit(data.to_dataset(rows, batch_size=256), epochs=2, callbacks=[callback], verbose=0)
    vectors, metadata = babyweight_model.cross_embedding(model, rows)
    paths = tensorboard.write_projector(logdir, "age_x_gestation", vectors, metadata)
    return logdir, model, rows, paths


@pytest.mark.slow
def test_the_embedding_has_one_row_per_vocabulary_entry(trained):
    from prodml.babyweight import model as babyweight_model

    _, model, rows, paths = trained
    bins = babyweight_model.CROSS_BINS
    vectors = np.array(read_tsv(paths["vectors"]), dtype=float)
    assert vectors.shape == (bins, babyweight_model.EMBED_DIM)
    weights = model.get_layer("cross_embedding").get_weights()[0]
    np.testing.assert_allclose(vectors, weights, rtol=1e-5, atol=1e-6)
    metadata = read_tsv(paths["metadata"])
    assert metadata[0] == ["bin", "pairs", "label", "age", "weeks", "rows", "mean_weight"]
    assert len(metadata) == bins + 1 and [int(r[0]) for r in metadata[1:]] == list(range(bins))
    pairs = [int(r[1]) for r in metadata[1:]]
    ages, weeks = len(babyweight_model.AGE_BOUNDARIES) + 1, len(babyweight_model.GESTATION_BOUNDARIES) + 1  # fmt: skip
    assert sum(pairs) == ages * weeks  # every (age bucket, gestation bucket) pair, once
    assert max(pairs) > 1 and pairs.count(0) > 0  # hashing collides and leaves bins empty
    assert sum(int(r[5]) for r in metadata[1:]) == len(rows)  # every row lands in one bin
    course = next(r for r in metadata[1:] if "age 26 x 39 wk" in r[2].split(" | "))
    assert int(course[5]) > 0  # the course's instance's bin is one the training rows reach
    reached = [float(r[6]) for r in metadata[1:] if int(r[5]) > 0]
    assert all(0 < w < 20 for w in reached)  # the rows' mean birth weight (lb)
    assert all(r[6] == "" for r in metadata[1:] if int(r[5]) == 0)  # none: left empty


@pytest.mark.slow
@pytest.mark.server
def test_tensorboard_serves_the_trainers_scalars_and_the_projectors_tensor(trained):
    logdir = trained[0]
    with tensorboard.start(logdir) as board:
        wait_for_the_projector(board)
        assert {"scalars", "projector"} <= set(board.plugins())
        tags = requests.get(f"{board.url}data/plugin/scalars/tags", timeout=30).json()
        assert "epoch_loss" in tags["trainer/train"], tags
        runs = requests.get(f"{board.url}data/plugin/projector/runs", timeout=30).json()
        assert runs == ["."], runs  # the config at the log folder's root
        info = requests.get(f"{board.url}data/plugin/projector/info?run=.", timeout=30).json()
        (embedding,) = info["embeddings"]
        assert embedding["tensorName"] == "age_x_gestation"
        assert embedding["tensorShape"] == [1000, 8]


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.server
def test_the_browser_opens_tensorboard_on_the_trainers_logs(trained):
    from playwright.sync_api import expect, sync_playwright

    logdir = trained[0]
    with tensorboard.start(logdir) as board, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(board.page("timeseries"))
            expect(page.get_by_text("trainer/train").first).to_be_visible(timeout=60_000)
            expect(page.get_by_text("epoch_loss").first).to_be_visible(timeout=60_000)
            wait_for_the_projector(board)
            page.goto(board.page("projector"))  # the Projector runs in frames, in shadow DOM
            wanted = ("1 tensor found", "age_x_gestation", "age_x_gestation_metadata.tsv")
            deadline, found = time.monotonic() + 60, {}
            while time.monotonic() < deadline and not all(found.values()):
                page.wait_for_timeout(500)
                found = {w: any(f.get_by_text(w, exact=True).count() for f in page.frames) for w in wanted}  # fmt: skip
        finally:
            browser.close()
    assert all(found.values()), found
