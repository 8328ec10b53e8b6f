"""The browser export: a static page run in headless Chromium predicts what Python predicts."""

import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

import layerflow as lf
from layerflow import keras
from layerflow.deploy.web import build_web_page
from tests.test_serve import free_port

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def render(folder, tmp_path) -> str:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "-d", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        import httpx

        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{port}/index.html", timeout=1)
                break
            except httpx.TransportError:
                pass
        done = subprocess.run(
            [
                CHROMIUM,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={tmp_path / 'profile'}",
                "--virtual-time-budget=20000",
                "--dump-dom",
                f"http://127.0.0.1:{port}/index.html",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        return done.stdout
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (apt-get install chromium)")
def test_web_page_predicts_like_python(tmp_path):
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
    bundle = lf.export_model(model, tmp_path / "models", name="cnn")
    page = build_web_page(bundle, tmp_path / "site", sample=x.tolist())
    assert {p.name for p in page.parent.iterdir()} >= {
        "index.html",
        "model.onnx",
        "signature.json",
        "ort.wasm.min.js",
        "ort-wasm-simd-threaded.wasm",
    }
    assert "cdn" not in page.read_text().lower()
    dom = render(page.parent, tmp_path)
    assert 'data-state="predicted"' in dom, dom[-3000:]
    outputs = json.loads(re.search(r'<pre id="output">(.*?)</pre>', dom).group(1))
    np.testing.assert_allclose(outputs["output"], model.predict(x, verbose=0), atol=1e-5)


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (apt-get install chromium)")
def test_cli_builds_the_page_from_a_run(tmp_path, runs_dir, write_script):
    script = write_script("""
        import numpy as np
        from layerflow import keras
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        model.compile(loss="mse", optimizer="sgd")
        model.fit(np.ones((4, 3)), np.ones((4, 2)), epochs=1, verbose=0)
        model.save("tiny.keras")
    """)
    record = lf.training_run(script, echo=False)
    (tmp_path / "sample.json").write_text(json.dumps([[1.0, 2.0, 3.0]]))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "layerflow.cli",
            "export",
            "latest",
            "--format",
            "web",
            "--out",
            str(tmp_path / "site"),
            "--sample",
            str(tmp_path / "sample.json"),
        ],
        cwd=runs_dir.parent,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    dom = render(tmp_path / "site", tmp_path)
    outputs = json.loads(re.search(r'<pre id="output">(.*?)</pre>', dom).group(1))
    model = keras.saving.load_model(f"{record['path']}/model/tiny.keras")
    np.testing.assert_allclose(outputs["output"], model.predict(np.array([[1.0, 2.0, 3.0]]), verbose=0), atol=1e-5)
    done = subprocess.run(
        [sys.executable, "-m", "layerflow.cli", "export", "latest", "--format", "pdf", "--out", str(tmp_path / "x")],
        cwd=runs_dir.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "format 'pdf' is not known" in done.stderr


WEB_TEMPLATES = ("form.html", "image.html", "index.html")
LOAD_FAILURE = 'status.textContent = "Could not load the model: " + error.message;'


def test_the_pages_share_one_start_up_error_block():
    from importlib import resources

    from layerflow.deploy.web import render_page

    folder = resources.files("layerflow.deploy") / "web_template"
    sources = {path.name: path.read_text() for path in folder.iterdir() if path.name.endswith(".html")}
    assert [name for name, text in sources.items() if LOAD_FAILURE in text] == ["_page.html"]
    for template in WEB_TEMPLATES:
        assert "{% call load_or_show_error() %}" in sources[template], template
        page = render_page(template, "a<b & c")
        assert page.count(LOAD_FAILURE) == 1 and page.count("(async () => {") == 1, template
        assert "{%" not in page and "{{" not in page and "caller" not in page, template
        assert "<title>a&lt;b &amp; c — layerflow</title>" in page and "<h1>a&lt;b &amp; c</h1>" in page


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (apt-get install chromium)")
@pytest.mark.parametrize(
    "template, signature",
    [
        (
            "index.html",
            {
                "inputs": [{"name": "x", "dtype": "float32", "shape": [None, 3]}],
                "outputs": [{"name": "y", "dtype": "float32", "shape": [None, 2]}],
            },
        ),
        (
            "image.html",
            {
                "inputs": [{"name": "x", "dtype": "float32", "shape": [None, 8, 8, 1]}],
                "outputs": [{"name": "y", "dtype": "float32", "shape": [None, 4]}],
            },
        ),
        (
            "form.html",
            {
                "raw_inputs": True,
                "inputs": [{"name": "age", "dtype": "float64", "shape": [None]}],
                "outputs": [{"name": "y", "dtype": "float32", "shape": [None, 1]}],
            },
        ),
    ],
)
def test_a_page_whose_model_cannot_load_says_so(tmp_path, template, signature):
    from layerflow.deploy.web import RUNTIME_FILES, _runtime_dir, render_page

    site = tmp_path / "site"
    site.mkdir()
    for name in RUNTIME_FILES:
        shutil.copy2(_runtime_dir() / name, site / name)
    (site / "signature.json").write_text(json.dumps(signature))
    (site / "model.onnx").write_bytes(b"not an ONNX model")
    (site / "index.html").write_text(render_page(template, "broken"))
    dom = render(site, tmp_path)
    assert 'data-state="error"' in dom, dom[-3000:]
    status = re.search(r'<p id="status">(.*?)</p>', dom).group(1)
    assert status.startswith("Could not load the model: "), status
