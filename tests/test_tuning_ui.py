"""The UI's tuning page shows the study: optimisation history and flag importances (headless Chromium)."""

from __future__ import annotations

import json

import httpx
import pytest

import layerflow as lf
from layerflow.tuning import uniform
from tests.test_tuning import TRAIN
from tests.test_ui import browser, page  # noqa: F401 - the headless Chromium fixtures


@pytest.fixture
def tuned(runs_dir, write_script):
    script = write_script(TRAIN)
    summary = lf.tuning_run(
        script,
        flags={"dropout": uniform(0.05, 0.9), "units": [16, 32, 64]},
        search="tpe",
        trials=6,
        seed=1,
        metric="val_accuracy",
        echo=False,
    )
    running = lf.ui(runs_dir, port=0)
    yield running.url.rstrip("/"), summary, runs_dir
    running.stop()


@pytest.mark.slow
def test_tuning_page_shows_history_and_importance_charts(tuned, page):  # noqa: F811
    server, summary, runs_dir = tuned
    tuning_id = summary.attrs["tuning_id"]
    stored = json.loads((runs_dir / "tunings" / f"{tuning_id}.json").read_text())
    page.goto(f"{server}/tuning/{tuning_id}")
    assert page.locator("#history canvas").count() >= 1  # uPlot drew the history
    assert "best val_accuracy so far (max)" in page.locator("#history").inner_text()
    rows = page.locator("#importance tr")
    shown = {rows.nth(i).get_attribute("data-flag") for i in range(rows.count())}
    assert shown == set(stored["importances"]) and shown <= {"dropout", "units"} and shown
    top = max(stored["importances"], key=stored["importances"].get)
    assert rows.first.get_attribute("data-flag") == top  # largest first
    assert page.locator("#scatter canvas").count() == 2  # today's scatter plots stay
    bests = [h["best"] for h in stored["history"]]
    assert bests[-1] == pytest.approx(summary.attrs["best"]["metric_val_accuracy"])


def test_tuning_page_of_a_run_without_a_study_summary_still_renders(tuned):
    server, summary, runs_dir = tuned
    (runs_dir / "tunings" / f"{summary.attrs['tuning_id']}.json").write_text("{not json")
    shown = httpx.get(f"{server}/tuning/{summary.attrs['tuning_id']}")
    assert shown.status_code == 200 and 'id="history"' not in shown.text and 'id="scatter"' in shown.text
