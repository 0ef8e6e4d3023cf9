"""The MLflow UI, used as a person uses it: the tracking server on 127.0.0.1 over the run
folder's store, the experiment opened in Debian's Chromium, the trainer's runs found on the
runs page and each run's metrics, with their values, on its own page."""

from __future__ import annotations

import pytest
from prodml import tracking

mlflow = pytest.importorskip("mlflow")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture
def trained_runs(run_dir):
    """Two tracked trainer runs (smoke sizes, two learning rates) in a fresh run folder."""
    from prodml.babyweight import task

    return [
        task.train_and_export("ui", smoke=True, train_examples=1_000, eval_examples=500,
                              learning_rate=rate, verbose=0, track=True, run_name=f"ui-lr-{rate}")
        for rate in (0.001, 0.01)
    ]  # fmt: skip


@pytest.mark.browser
@pytest.mark.slow
def test_the_ui_shows_the_trainers_runs_and_their_metrics(trained_runs):
    from playwright.sync_api import expect, sync_playwright

    tracking.use(experiment=None)
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name("babyweight").experiment_id
    with tracking.start() as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.goto(f"{server.url}/#/experiments/{experiment}/runs")
            for result in trained_runs:
                expect(page.get_by_text(f"ui-lr-{result['learning_rate']}")).to_be_visible(
                    timeout=60_000
                )
            expect(page.get_by_text("2 matching runs")).to_be_visible()
            for result in trained_runs:
                run = client.get_run(result["run_id"])
                page.goto(f"{server.url}/#/experiments/{experiment}/runs/{result['run_id']}")
                expect(page.get_by_text(run.info.run_name).first).to_be_visible(timeout=60_000)
                for name in ("val_rmse", "eval_rmse"):
                    value = run.data.metrics[name]
                    row = page.get_by_role("row").filter(has_text=name).filter(has_text=str(value))
                    expect(row.first).to_be_visible()
                assert float(run.data.params["learning_rate"]) == result["learning_rate"]
                expect(page.get_by_text("natality.train").first).to_be_visible()
        finally:
            browser.close()
