"""The serving install: `pip install 'layerflow[serve]'` in a fresh virtual environment pulls neither
torch, Keras nor matplotlib, and serves (and lf.predicts) a raw-feature bundle exported elsewhere; what
needs the training stack says `pip install 'layerflow[train]'`."""

import json
import shutil
import subprocess
import sys

import httpx
import pytest

import layerflow as lf
from tests.raw_models import (
    REQUEST_ROWS,
    assert_same_outputs,
    estimator,
    expected_outputs,
    fitted_spec,
    request_frame,
    training_frame,
)
from tests.test_serve import free_port, wait_for_server

REPO = __import__("pathlib").Path(__file__).resolve().parents[1]

# Each training entry point, called where the training stack is missing: the error each raises.
TRAINING_ENTRY_POINTS = [
    "from layerflow import keras",
    "import layerflow as lf; lf.keras",
    "import layerflow as lf; lf.data",
    "import layerflow as lf; lf.features",
    "import layerflow as lf; lf.feature_spec",
    "import layerflow as lf; lf.plot_history({'loss': [1.0, 0.5]})",
    "import layerflow as lf; lf.history_frame({'loss': [1.0, 0.5]})",
    "import layerflow as lf; lf.backend_info()",
    "import layerflow as lf; lf.export_run('model.keras', 'models')",
    # what needs pandas (or scikit-learn's data) but is reachable without importing it first
    "import layerflow as lf; lf.ls_runs()",
    "import layerflow as lf; lf.flags(units=8).to_frame()",
    "import layerflow as lf; lf.datasets.iris()",
    "import layerflow as lf; lf.datasets.digits()",
    "import layerflow as lf; lf.tuning_run('model.keras', flags={'units': [8, 16]})",
    "import layerflow as lf; lf.cloud.cloud_jobs('http://127.0.0.1:9')",
]
PROBE = f"""
import json, os, sys
blocked = sys.argv[1:]
for name in blocked:
    sys.modules[name] = None  # as if not installed: importing it raises ModuleNotFoundError
open("model.keras", "w").close()
answers = []
for statement in {TRAINING_ENTRY_POINTS!r}:
    try:
        exec(statement, {{}})
        answers.append([statement, None, None])
    except Exception as error:
        answers.append([statement, type(error).__module__ + "." + type(error).__name__, str(error)])
print(json.dumps(answers))
"""


def assert_training_entry_points_name_the_train_extra(python, cwd, blocked=()):
    done = subprocess.run([str(python), "-c", PROBE, *blocked], capture_output=True, text=True, timeout=300, cwd=cwd)
    assert done.returncode == 0, done.stderr[-3000:]
    for statement, error, message in json.loads(done.stdout.splitlines()[-1]):
        assert error == "layerflow.errors.MissingDependencyError", (statement, error, message)
        assert "pip install 'layerflow[train]'" in message, (statement, message)


def test_training_entry_points_name_the_train_extra_when_it_is_missing(tmp_path):
    # This interpreter has the training stack; hiding its packages stands in for a serving-only install
    # here (fast), and the test below checks a real one.
    for blocked in (
        ["torch", "keras", "pandas", "matplotlib", "pyarrow", "sklearn"],
        ["keras", "pandas", "matplotlib", "sklearn"],
    ):
        assert_training_entry_points_name_the_train_extra(sys.executable, tmp_path, blocked)


def test_the_training_packages_are_the_train_extra():
    import tomllib

    from layerflow.backend import TRAINING_PACKAGES

    train = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["train"]
    import_names = {"scikit-learn": "sklearn"}
    distributions = {__import__("re").split(r"[<>=!~\[; ]", r, maxsplit=1)[0].lower() for r in train}
    assert {import_names.get(d, d) for d in distributions} == set(TRAINING_PACKAGES)


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
    done = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", f"{source}[serve]"], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    listed = json.loads(
        subprocess.run(
            [str(venv / "bin" / "pip"), "list", "--format", "json"], capture_output=True, text=True, check=True
        ).stdout
    )
    installed = {p["name"].lower() for p in listed}
    assert {"layerflow", "onnxruntime", "starlette", "uvicorn"} <= installed
    assert not installed & {"torch", "keras", "matplotlib", "pandas", "onnx"}, sorted(installed)

    # lf.predict in that environment, on the bundle folder
    script = (
        f"import json, layerflow as lf; print(json.dumps({{k: v.tolist() for k, v in "
        f"lf.predict({str(tmp_path / 'models')!r}, {REQUEST_ROWS!r}).items()}}))"
    )
    run = subprocess.run([str(venv / "bin" / "python"), "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    assert_same_outputs(json.loads(run.stdout), expected)

    # what needs the training stack says how to install it
    assert_training_entry_points_name_the_train_extra(venv / "bin" / "python", tmp_path)

    # layerflow serve from that environment
    port = free_port()
    server = subprocess.Popen(
        [str(venv / "bin" / "layerflow"), "serve", str(tmp_path / "models"), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_server(server, url)
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
