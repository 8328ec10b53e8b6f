"""The exported web page of an image model: samples, a dropped or picked image and a drawing, top classes as bars."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import layerflow as lf
from layerflow import keras
from layerflow.deploy.web import build_web_page, page_template
from tests.test_serve import free_port
from tests.test_ui import CHROMIUM, wait_for_http

LABELS = ["circle", "square", "triangle", "star"]


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (apt-get install chromium)")
def test_image_page_predicts_samples_files_and_drawings(tmp_path):
    playwright_api = pytest.importorskip("playwright.sync_api")
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((1, 8, 8)),
            keras.layers.Conv2D(3, 3, padding="same", activation="relu", data_format="channels_first"),
            keras.layers.Flatten(),
            keras.layers.Dense(4, activation="softmax"),
        ]
    )
    x = np.random.default_rng(0).random((3, 1, 8, 8)).astype("float32")
    bundle = lf.export_model(model, tmp_path / "models", name="shapes", class_labels=LABELS)
    assert page_template(json.loads((bundle / "signature.json").read_text())) == "image.html"
    site = build_web_page(bundle, tmp_path / "site", sample=x.tolist()).parent
    picture = (np.random.default_rng(1).random((8, 8)) * 255).astype(np.uint8)
    from PIL import Image

    Image.fromarray(picture, mode="L").save(tmp_path / "picture.png")
    expected = model.predict(x, verbose=0)
    from_file = model.predict((picture / 255.0).astype("float32")[None, None], verbose=0)[0]

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "-d", str(site)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(base + "/index.html")
        with playwright_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page()
            requests: list[str] = []
            page.on("request", lambda request: requests.append(request.url))
            page.goto(base + "/index.html")
            page.wait_for_selector("body[data-state=predicted]", timeout=60_000)

            def bars():
                return page.locator("#top .bar").evaluate_all(
                    "bars => bars.map(b => [b.querySelector('.label').textContent, Number(b.dataset.p)])"
                )

            # On load: every sample predicted (the JSON view), the first one's classes as bars.
            outputs = json.loads(page.locator("#output").text_content())
            np.testing.assert_allclose(outputs["output"], expected, atol=1e-5)
            shown = bars()
            assert [label for label, _ in shown] == [LABELS[i] for i in np.argsort(-expected[0])]
            np.testing.assert_allclose([p for _, p in shown], np.sort(expected[0])[::-1], atol=1e-5)
            widths = page.locator("#top .bar .fill").evaluate_all(
                "fills => fills.map(f => f.getBoundingClientRect().width)"
            )
            track = page.locator("#top .bar .track").first.bounding_box()["width"]
            np.testing.assert_allclose(widths, np.sort(expected[0])[::-1] * track, atol=1.5)  # bars drawn to scale
            # Picking another sample.
            page.click("#samples canvas[data-sample='2']")
            page.wait_for_selector("body[data-source='sample 2']")
            assert bars()[0][0] == LABELS[int(np.argmax(expected[2]))]
            np.testing.assert_allclose(bars()[0][1], expected[2].max(), atol=1e-5)
            # An image file (picked; dropping goes through the same code).
            page.set_input_files("#file", str(tmp_path / "picture.png"))
            page.wait_for_selector("body[data-source=file]")
            assert bars()[0][0] == LABELS[int(np.argmax(from_file))]
            np.testing.assert_allclose([p for _, p in bars()], np.sort(from_file)[::-1], atol=2e-3)
            # A drawing.
            box = page.locator("#pad").bounding_box()
            page.mouse.move(box["x"] + 40, box["y"] + 40)
            page.mouse.down()
            for step in range(1, 11):
                page.mouse.move(box["x"] + 40 + step * 20, box["y"] + 40 + step * 18)
            page.mouse.up()
            page.wait_for_selector("body[data-source=drawing]")
            drawn = bars()
            assert len(drawn) == 4 and abs(sum(p for _, p in drawn) - 1) < 1e-4
            assert all(url.startswith(base) or url.startswith("blob:") for url in requests), requests
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_page_template_chooses_by_signature():
    def signature(shape, dtype="float32", inputs=1):
        return {"inputs": [{"name": f"x{i}", "dtype": dtype, "shape": shape} for i in range(inputs)]}

    assert page_template(signature([None, 28, 28, 1])) == "image.html"
    assert page_template(signature([None, 3, 32, 32])) == "image.html"
    assert page_template(signature([None, 28, 28])) == "image.html"
    assert page_template(signature([None, 784])) == "index.html"
    assert page_template(signature([None, 28, 28, 1], dtype="string")) == "index.html"
    assert page_template(signature([None, 28, 28, 1], inputs=2)) == "index.html"
    assert page_template(signature([None, None, None, 3])) == "index.html"
    assert page_template({}) == "index.html"
