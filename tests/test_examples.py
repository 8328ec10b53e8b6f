"""The examples train on a subset to clearly better than chance, as tracked and plain runs."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import layerflow as lf
from tests.conftest import EXAMPLES


@pytest.mark.slow
def test_mlp_example_as_a_tracked_run_records_keras_training(runs_dir):
    record = lf.training_run(EXAMPLES / "fashion_mnist_mlp.py", flags={"epochs": 3, "subset": 4000}, echo=False)
    assert record["status"] == "completed", record.get("error")
    run_dir = Path(record["path"])
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [1, 2, 3]
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(lines[0])
    assert record["metrics"]["accuracy"] == lines[-1]["accuracy"]
    assert record["evaluation"]["accuracy"] > 0.6  # chance is 0.1
    assert set(record["evaluation"]) == {"loss", "accuracy"}
    assert record["keras"]["optimizer"]["name"] == "adam"
    assert record["keras"]["loss"] == "sparse_categorical_crossentropy"
    assert record["keras"]["epochs"] == 3 and record["keras"]["params"] == 235146
    assert "fashion_mnist_mlp" in (run_dir / "model_summary.txt").read_text()
    assert (run_dir / "plots" / "history.png").read_bytes()[:4] == b"\x89PNG"
    assert (run_dir / "model" / "fashion_mnist_mlp.keras").stat().st_size > 100_000
    assert record["flags"]["epochs"] == 3 and record["flags"]["dropout"] == 0.3


@pytest.mark.slow
def test_cnn_example_runs_plainly_with_command_line_flags(tmp_path):
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "fashion_mnist_cnn.py"), "--flag", "epochs=2", "--flag", "subset=3000"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    accuracy = float(re.search(r"test accuracy ([0-9.]+)", done.stdout).group(1))
    assert accuracy > 0.5  # chance is 0.1
    assert (tmp_path / "fashion_mnist_cnn.keras").exists()
    assert not (tmp_path / "runs").exists()  # a plain run records nothing


@pytest.mark.slow
def test_tabular_examples_stream_and_use_feature_specs(runs_dir, tmp_path):
    record = lf.training_run(EXAMPLES / "breast_cancer_feature_spec.py", flags={"epochs": 5}, echo=False)
    assert record["status"] == "completed", record.get("error")
    assert record["evaluation"]["accuracy"] > 0.8  # the majority class is 0.63
    spec = json.loads((Path(record["path"]) / "data" / "feature_spec.json").read_text())
    assert len(spec["numeric"]) == 30 and spec["label"] == ["target"]
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "iris_categorical.py"), "--flag", "epochs=20"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert float(re.search(r"test accuracy ([0-9.]+)", done.stdout).group(1)) > 0.6  # chance is 0.33
