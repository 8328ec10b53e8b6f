"""The serving install: `pip install 'layerflow[serve]'` in a fresh virtual environment pulls neither
torch, Keras nor matplotlib, and serves (and lf.predicts) a raw-feature bundle exported elsewhere."""

import json
import shutil
import subprocess
import sys
import time

import httpx
import pytest

import layerflow as lf
from tests.raw_models import REQUEST_ROWS, assert_same_outputs, estimator, expected_outputs, fitted_spec, \
    request_frame, training_frame
from tests.test_serve import free_port

REPO = __import__("pathlib").Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_serve_extra_serves_without_the_training_stack(tmp_path):
    frame = training_frame()
    fitted = estimator("keras", "multiclass", frame, fitted_spec(frame))
    lf.export_model(fitted, tmp_path / "models", name="wide")
    expected = expected_outputs(fitted, request_frame())

    source = tmp_path / "layerflow-src"  # the sources alone: building in the checkout would leave files there
    source.mkdir()
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    done = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", f"{source}[serve]"], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    listed = json.loads(subprocess.run([str(venv / "bin" / "pip"), "list", "--format", "json"], capture_output=True,
                                       text=True, check=True).stdout)
    installed = {p["name"].lower() for p in listed}
    assert {"layerflow", "onnxruntime", "starlette", "uvicorn"} <= installed
    assert not installed & {"torch", "keras", "matplotlib", "pandas", "onnx"}, sorted(installed)

    # lf.predict in that environment, on the bundle folder
    script = (f"import json, layerflow as lf; print(json.dumps(lf.predict({str(tmp_path / 'models')!r}, "
              f"{REQUEST_ROWS!r})))")
    run = subprocess.run([str(venv / "bin" / "python"), "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    assert_same_outputs(json.loads(run.stdout), expected)

    # layerflow serve from that environment
    port = free_port()
    server = subprocess.Popen([str(venv / "bin" / "layerflow"), "serve", str(tmp_path / "models"), "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        reply = httpx.post(f"{url}/v1/models/wide:predict", json={"instances": REQUEST_ROWS}, timeout=30)
        assert reply.status_code == 200, reply.text
        predictions = reply.json()["predictions"]
        assert_same_outputs({k: [p[k] for p in predictions] for k in predictions[0]}, expected)
        bad = httpx.post(f"{url}/v1/models/wide:predict", json={"instances": [{**REQUEST_ROWS[0], "age": "x"}]})
        assert bad.status_code == 400 and "'age'" in bad.json()["error"]
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0].decode(errors="replace")
    assert "Traceback" not in output, output[-3000:]
