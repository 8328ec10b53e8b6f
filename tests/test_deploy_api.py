"""Deploy's public API (lf.export_run, lf.serve, build_web_page): what the CLI calls, and its bad input."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

import layerflow as lf
from layerflow import keras
from layerflow.deploy import BundleError, build_web_page, onnx_predict
from layerflow.errors import InvalidTypeError, InvalidValueError, LayerflowError, MissingFileError
from tests.conftest import layerflow_cli
from tests.test_serve import free_port, wait_for_server


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("saved")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="relu"), keras.layers.Dense(2)])
    model.save(folder / "tiny.keras")
    return folder / "tiny.keras", model


@pytest.mark.slow
def test_export_run_writes_a_bundle_from_a_run_or_a_model_file(saved_model, runs_dir, write_script, tmp_path):
    path, model = saved_model
    script = write_script(f"""
        from layerflow import keras
        keras.saving.load_model({str(path)!r}).save("tiny.keras")
    """)
    record = lf.training_run(script, echo=False)
    assert record["status"] == "completed", record.get("error")
    folder = lf.export_run("latest", tmp_path / "models")
    assert folder == tmp_path / "models" / "tiny" / "1"
    assert json.loads((folder / "lineage.json").read_text())["run_id"] == record["id"]
    x = np.random.default_rng(0).normal(size=(5, 3)).astype("float32")
    np.testing.assert_allclose(onnx_predict(folder, x)[0], model.predict(x, verbose=0), atol=1e-5)
    again = lf.export_run(path, tmp_path / "models", name="other", version=4)
    assert again == tmp_path / "models" / "other" / "4"


@pytest.mark.parametrize(
    "arguments, error, message",
    [
        ({"run": None}, InvalidTypeError, "run must be a run id"),
        ({"run": 3}, InvalidTypeError, "run must be a run id"),
        ({"out": None}, InvalidTypeError, "out must be a folder path"),
        ({"format": "pdf"}, InvalidValueError, "format 'pdf' is not known; expected one of onnx, web"),
        ({"sample": [[1.0, 2.0, 3.0]]}, InvalidValueError, "needs the format 'web'"),
        ({"run": "no-such-run"}, BundleError, "neither a model file nor a run"),
        ({"name": "bad name/x"}, BundleError, "Model name 'bad name/x' is not valid"),
        ({"version": 0}, BundleError, "version=0 must be a positive integer"),
    ],
)
def test_export_run_rejects_malformed_input(saved_model, runs_dir, tmp_path, arguments, error, message):
    call = {"run": saved_model[0], "out": tmp_path / "models", **arguments}
    with pytest.raises(error, match=message) as raised:
        lf.export_run(**call)
    assert isinstance(raised.value, LayerflowError)
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").rglob("model.onnx"))


@pytest.mark.skipif(shutil.which("npm") is None, reason="the page's runtime (onnxruntime-web) is installed with npm")
def test_export_run_web_writes_a_page_with_its_own_model_copy(saved_model, tmp_path):
    page = lf.export_run(saved_model[0], tmp_path / "site", format="web", sample=np.ones((1, 3), "float32"))
    assert page == tmp_path / "site" / "index.html"
    assert {p.name for p in page.parent.iterdir()} >= {"index.html", "model.onnx", "signature.json", "sample.json"}
    assert json.loads((page.parent / "sample.json").read_text()) == [[1.0, 1.0, 1.0]]  # an array is written as lists
    assert "tiny" in page.read_text()  # the page's title is the model's name


def test_build_web_page_rejects_malformed_input_and_writes_nothing(saved_model, tmp_path):
    bundle = lf.export_run(saved_model[0], tmp_path / "models")
    with pytest.raises(InvalidValueError, match="sample must be JSON-serialisable"):
        build_web_page(bundle, tmp_path / "site", sample={"x": object()})
    with pytest.raises(InvalidValueError, match="sample must be JSON-serialisable"):
        build_web_page(bundle, tmp_path / "site", sample=[[float("inf"), 1.0, 2.0]])
    with pytest.raises(InvalidTypeError, match="title must be a string"):
        build_web_page(bundle, tmp_path / "site", title=3)
    with pytest.raises(BundleError, match="not an export bundle"):
        build_web_page(tmp_path, tmp_path / "site")
    assert not (tmp_path / "site").exists()


@pytest.mark.parametrize(
    "arguments, error, message",
    [
        ({"model_dir": None}, InvalidTypeError, "model_dir must be a folder path"),
        ({"model_dir": "no-such-folder"}, MissingFileError, "does not exist; export a model first"),
        ({"host": ""}, InvalidValueError, "host='' must be an address to bind"),
        ({"port": 70000}, InvalidValueError, "port=70000 must be between 0 and 65535"),
        ({"port": -1}, InvalidValueError, "port=-1 must be between 0 and 65535"),
        ({"port": "8501"}, InvalidTypeError, "port='8501' must be a whole number"),
        ({"port": True}, InvalidTypeError, "port=True must be a whole number"),
        ({"token": ""}, InvalidValueError, "token must be a non-empty string"),
        ({"max_batch_size": -1}, InvalidValueError, "max_batch_size=-1 must be at least 0"),
        ({"max_batch_size": 2.5}, InvalidTypeError, "max_batch_size=2.5 must be a whole number"),
        ({"batch_delay_ms": -1.0}, InvalidValueError, "batch_delay_ms=-1.0 must be a number of milliseconds"),
        ({"batch_delay_ms": float("nan")}, InvalidValueError, "batch_delay_ms=nan must be a number of milliseconds"),
        ({"intra_op_threads": -2}, InvalidValueError, "intra_op_threads=-2 must be at least 0"),
        ({"inter_op_threads": -1}, InvalidValueError, "inter_op_threads=-1 must be at least 0"),
    ],
)
def test_serve_rejects_malformed_arguments_before_starting(tmp_path, monkeypatch, arguments, error, message):
    monkeypatch.chdir(tmp_path)
    call = {"model_dir": tmp_path, **arguments}
    with pytest.raises(error, match=message) as raised:
        lf.serve(**call)  # raises at once: a server that started would block here
    assert isinstance(raised.value, LayerflowError)


def test_serve_on_a_file_instead_of_a_folder(tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"")
    with pytest.raises(MissingFileError, match="does not exist"):
        lf.serve(tmp_path / "model.onnx")


def test_lf_serve_serves_what_export_run_wrote(saved_model, tmp_path):
    path, model = saved_model
    lf.export_run(path, tmp_path / "models")
    port = free_port()
    code = f"import layerflow as lf; lf.serve({str(tmp_path / 'models')!r}, port={port}, max_batch_size=8)"
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_server(process, url)
        x = np.random.default_rng(2).normal(size=(3, 3)).astype("float32")
        reply = httpx.post(f"{url}/v1/models/tiny:predict", json={"instances": x.tolist()}, timeout=30)
        assert reply.status_code == 200, reply.text
        np.testing.assert_allclose(reply.json()["predictions"], model.predict(x, verbose=0), atol=1e-5)
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0].decode(errors="replace")
    assert "Traceback" not in output, output[-3000:]


def test_cli_serve_reports_bad_arguments_as_one_line(tmp_path):
    done = layerflow_cli("serve", str(tmp_path / "nope"), cwd=tmp_path)
    assert done.returncode == 2 and "does not exist; export a model first" in done.stderr
    assert "Traceback" not in done.stderr
    done = layerflow_cli("serve", str(tmp_path), "--port", "70000", cwd=tmp_path)
    assert done.returncode == 2 and "port=70000 must be between 0 and 65535" in done.stderr
    done = layerflow_cli("serve", str(tmp_path), "--max-batch-size", "-1", cwd=tmp_path)
    assert done.returncode == 2 and "max_batch_size=-1 must be at least 0" in done.stderr


def test_cli_export_sample_needs_the_web_format(saved_model, tmp_path):
    (tmp_path / "sample.json").write_text("[[1, 2, 3]]")
    done = layerflow_cli(
        "export",
        str(saved_model[0]),
        "--out",
        str(tmp_path / "models"),
        "--sample",
        str(tmp_path / "sample.json"),
        cwd=tmp_path,
    )
    assert done.returncode == 2 and "needs the format 'web'" in done.stderr
    assert not Path(tmp_path / "models").exists()
