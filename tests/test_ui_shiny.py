"""examples/shiny_app: a Shiny for Python app predicting from an exported bundle, driven in headless Chromium."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import numpy as np
import pytest

import layerflow as lf
from layerflow import keras
from tests.conftest import EXAMPLES
from tests.test_serve import free_port
from tests.test_ui import CHROMIUM, wait_for_http

LABELS = ["setosa", "versicolor", "virginica"]


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (apt-get install chromium)")
def test_shiny_app_predicts_from_a_bundle(tmp_path):
    pytest.importorskip("shiny")
    playwright_api = pytest.importorskip("playwright.sync_api")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    bundle = lf.export_model(model, tmp_path / "models", name="iris", class_labels=LABELS)
    row = [5.1, 3.5, -1.4, 0.2]
    expected = model.predict(np.array([row], "float32"), verbose=0)[0]

    port = free_port()
    app = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "shiny",
            "run",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            str(EXAMPLES / "shiny_app" / "app.py"),
        ],
        env={**os.environ, "LAYERFLOW_BUNDLE": str(bundle)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/")
        with playwright_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/")
            for i, value in enumerate(row):
                page.fill(f"#in_{i}", str(value))
            page.click("#predict")
            page.wait_for_selector("#predicted-class", timeout=60_000)
            assert page.inner_text("#predicted-class") == LABELS[int(np.argmax(expected))]
            shown = page.locator("#classes tr").evaluate_all(
                "rows => rows.map(r => [r.cells[0].textContent, Number(r.cells[1].textContent)])"
            )
            assert [label for label, _ in shown] == [LABELS[i] for i in np.argsort(-expected)]
            np.testing.assert_allclose([p for _, p in shown], np.sort(expected)[::-1], atol=1e-4)
            browser.close()
    finally:
        app.send_signal(signal.SIGINT)
        try:
            app.wait(timeout=20)
        except subprocess.TimeoutExpired:
            app.kill()
