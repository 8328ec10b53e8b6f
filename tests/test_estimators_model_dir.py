"""lf.estimators model_dir: checkpoints, load, resume after a real kill, tracked runs, train_and_evaluate."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import layerflow as lf

E = lf.estimators


def make_frame(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"age": rng.uniform(18, 70, n), "city": rng.choice(["lima", "oslo", "rome"], n)})
    frame["y"] = ((frame.age > 40) ^ (frame.city == "oslo")).astype(np.int64)
    return frame


def folder_digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_model_dir_checkpoints_loads_and_resumes(tmp_path):
    frame = make_frame()
    est = E.DNNClassifier(label="y", hidden_units=[8], model_dir=tmp_path / "m", seed=0, optimizer="Adam")
    est.train(frame, epochs=2)
    manifest = json.loads((tmp_path / "m" / "estimator.json").read_text())
    assert manifest["kind"] == "DNNClassifier" and manifest["epochs_done"] == 2
    assert (tmp_path / "m" / manifest["checkpoint"]).is_file() and (tmp_path / "m" / "feature_spec.json").is_file()
    assert len(list((tmp_path / "m").glob("*.keras"))) == 1  # older checkpoints are replaced
    assert json.loads((tmp_path / "m" / "layerflow_model.json").read_text()) == {"loader": "layerflow.estimators:load"}

    loaded = E.load(tmp_path / "m")
    assert isinstance(loaded, E.DNNClassifier) and loaded.epochs_done == 2 and loaded.hidden_units == [8]
    pd.testing.assert_frame_equal(loaded.predict(frame, keys=["logistic"]), est.predict(frame, keys=["logistic"]))
    loaded.train(frame, epochs=3)  # resumes: one more epoch
    assert loaded.epochs_done == 3 and json.loads((tmp_path / "m" / "estimator.json").read_text())["epochs_done"] == 3
    again = E.DNNClassifier(label="y", hidden_units=[8], model_dir=tmp_path / "m", seed=0, optimizer="Adam")
    assert again.epochs_done == 3 and again.trained

    trees = E.BoostedTreesClassifier(label="y", n_trees=6, max_depth=2, model_dir=tmp_path / "t").train(frame, epochs=3)
    assert E.load(tmp_path / "t").booster.num_boosted_rounds() == 3
    E.BoostedTreesClassifier(label="y", n_trees=6, max_depth=2, model_dir=tmp_path / "t").train(frame)
    assert E.load(tmp_path / "t").booster.num_boosted_rounds() == 6
    assert trees.save(tmp_path / "copy") == tmp_path / "copy"
    np.testing.assert_allclose(E.load(tmp_path / "copy").predict(frame).logistic, trees.predict(frame).logistic)


def test_a_model_dir_of_another_kind_config_or_spec_is_refused_and_untouched(tmp_path):
    frame = make_frame()
    spec = lf.feature_spec(frame, label="y").numeric("age", normalizer="standard").categorical_vocab("city")
    spec = spec.indicator("city").fit()
    E.DNNClassifier(label="y", hidden_units=[8], feature_columns=spec, model_dir=tmp_path / "m").train(frame, epochs=1)
    before = folder_digest(tmp_path / "m")
    with pytest.raises(E.ModelDirError, match=r"holds a DNNClassifier, not a LinearClassifier"):
        E.LinearClassifier(label="y", model_dir=tmp_path / "m")
    with pytest.raises(E.ModelDirError, match=r"hidden_units: saved \[8\], given \[16\]"):
        E.DNNClassifier(label="y", hidden_units=[16], model_dir=tmp_path / "m")
    other = lf.feature_spec(frame, label="y").numeric("age").fit()
    with pytest.raises(E.ModelDirError, match=r"saved columns \['age', 'city'\], given \['age'\]"):
        E.DNNClassifier(label="y", hidden_units=[8], feature_columns=other, model_dir=tmp_path / "m")
    trained = E.LinearClassifier(label="y").train(frame, epochs=1)
    with pytest.raises(E.ModelDirError, match="DNNClassifier, not a LinearClassifier"):
        trained.save(tmp_path / "m")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("mine")
    with pytest.raises(E.ModelDirError, match="not empty"):
        trained.save(tmp_path / "junk")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "estimator.json").write_text("{not json")
    with pytest.raises(E.ModelDirError, match="damaged"):
        E.load(tmp_path / "broken")
    with pytest.raises(E.ModelDirError, match="holds no estimator"):
        E.load(tmp_path / "junk")
    assert folder_digest(tmp_path / "m") == before


@pytest.mark.slow
def test_train_and_evaluate_with_early_stopping(tmp_path):
    frame = make_frame()
    est = E.DNNClassifier(label="y", hidden_units=[8], optimizer="Adam", seed=0)
    stopper = E.EarlyStopping("loss", patience=1, min_delta=1e9)  # nothing after the first counts as better
    result = E.train_and_evaluate(est, frame, frame.head(100), epochs=10, early_stopping=stopper)
    assert result["stopped_early"] and est.epochs_done == 2 and result["best_epoch"] == 1
    assert [epoch for epoch, _ in result["history"]] == [1, 2]
    assert {"accuracy", "auc", "loss"} <= set(result["evaluation"])
    trees = E.BoostedTreesClassifier(label="y", n_trees=8, max_depth=2)
    result = E.train_and_evaluate(trees, frame, frame, every_n_epochs=4)
    assert [epoch for epoch, _ in result["history"]] == [4, 8] and not result["stopped_early"]
    with pytest.raises(E.EstimatorError, match="every_n_epochs"):
        E.train_and_evaluate(trees, frame, frame, every_n_epochs=0)
    with pytest.raises(E.EstimatorError, match="does not report"):
        E.train_and_evaluate(E.LinearClassifier(label="y"), frame, frame, epochs=1, early_stopping="rmse")
    with pytest.raises(E.EstimatorError, match="early_stopping"):
        E.train_and_evaluate(est, frame, frame, early_stopping=3)


KILL_SCRIPT = """
    import sys
    import numpy as np, pandas as pd
    import layerflow as lf

    kind, model_dir = sys.argv[1], sys.argv[2]
    rng = np.random.default_rng(0)
    n = 1200
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "c": rng.choice(list("pqrs"), n)})
    frame["y"] = ((frame.a * frame.b > 0) ^ (frame.c == "p")).astype(int)
    if kind == "dnn":
        est = lf.estimators.DNNLinearCombinedClassifier(label="y", hidden_units=[16], dropout=0.2, optimizer="Adam",
                                                        learning_rate=0.01, batch_size=64, seed=7, model_dir=model_dir)
        est.train(frame, epochs=5)
    else:
        est = lf.estimators.BoostedTreesClassifier(label="y", n_trees=80, max_depth=6, learning_rate=0.05,
                                                   model_dir=model_dir, seed=7)
        est.train(frame)
"""


def _run(script: Path, kind: str, model_dir: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(script), kind, str(model_dir)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _epochs_done(model_dir: Path) -> int:
    try:
        return json.loads((model_dir / "estimator.json").read_text())["epochs_done"]
    except (FileNotFoundError, json.JSONDecodeError):
        return 0


@pytest.mark.slow
@pytest.mark.parametrize("kind, target", [("dnn", 5), ("trees", 80)])
def test_a_run_killed_mid_training_resumes_to_the_same_model(tmp_path, kind, target):
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(KILL_SCRIPT))
    whole = _run(script, kind, tmp_path / "whole")
    output, _ = whole.communicate(timeout=300)
    assert whole.returncode == 0, output

    killed = _run(script, kind, tmp_path / "killed")
    deadline = time.time() + 300
    while _epochs_done(tmp_path / "killed") < (1 if kind == "dnn" else 10) and killed.poll() is None:
        assert time.time() < deadline
        time.sleep(0.01)
    killed.send_signal(signal.SIGKILL)
    killed.communicate(timeout=60)
    done_when_killed = _epochs_done(tmp_path / "killed")
    assert 0 < done_when_killed < target, f"the run was not killed mid-training ({done_when_killed} of {target})"
    assert E.load(tmp_path / "killed").epochs_done == done_when_killed  # the checkpoint survived the kill

    resumed = _run(script, kind, tmp_path / "killed")
    output, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, output
    a, b = E.load(tmp_path / "whole"), E.load(tmp_path / "killed")
    assert a.epochs_done == b.epochs_done == target
    frame = pd.DataFrame({"a": np.linspace(-2, 2, 50), "b": np.linspace(2, -2, 50), "c": ["p", "q"] * 25})
    if kind == "trees":
        assert a.booster.get_dump(dump_format="json") == b.booster.get_dump(dump_format="json")
    else:
        np.testing.assert_allclose(np.stack(a.predict(frame).logits), np.stack(b.predict(frame).logits), atol=1e-6)


TRACKED_SCRIPT = """
    import numpy as np, pandas as pd
    import layerflow as lf

    rng = np.random.default_rng(0)
    n = 300
    frame = pd.DataFrame({"age": rng.uniform(18, 70, n), "city": rng.choice(["lima", "oslo"], n)})
    frame["y"] = np.where((frame.age > 40) ^ (frame.city == "oslo"), "yes", "no")
    FLAGS = lf.flags(kind="dnn")
    if FLAGS.kind == "dnn":
        est = lf.estimators.DNNClassifier(label="y", hidden_units=[8], label_vocabulary=["no", "yes"],
                                          optimizer="Adam", learning_rate=0.05, seed=0)
        lf.estimators.train_and_evaluate(est, frame, frame, epochs=3)
    else:
        est = lf.estimators.BoostedTreesRegressor(label="age", n_trees=4, max_depth=2)
        est.train(frame.drop(columns=["y"]))
        est.evaluate(frame)
"""


@pytest.mark.slow
def test_estimators_inside_a_tracked_run(runs_dir, write_script):
    script = write_script(TRACKED_SCRIPT)
    frame = make_frame(50).assign(y=lambda f: np.where(f.y == 1, "yes", "no"))
    record = lf.training_run(script, echo=False)
    assert record["status"] == "completed", (runs_dir / record["id"] / "output.log").read_text()
    run_dir = runs_dir / record["id"]
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [1, 2, 3]
    assert all("loss" in line and "eval_accuracy" in line for line in lines)
    saved = json.loads((run_dir / "run.json").read_text())
    assert {"accuracy", "auc", "label_mean"} <= set(saved["evaluation"])
    assert not list((run_dir / "model").glob("*.keras"))  # checkpoints are not taken for a script's saved model
    est = E.load(run_dir / "model" / "estimator")
    assert est.epochs_done == 3 and set(est.predict(frame).classes) <= {"no", "yes"}
    assert lf.ls_runs(runs_dir=runs_dir)["eval_accuracy"].iloc[0] == saved["evaluation"]["accuracy"]

    record = lf.training_run(script, flags={"kind": "trees"}, echo=False)
    run_dir = runs_dir / record["id"]
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [1, 2, 3, 4] and all("train_rmse" in line for line in lines)
    assert {"mse", "r2"} <= set(json.loads((run_dir / "run.json").read_text())["evaluation"])
    assert E.load(run_dir / "model" / "estimator").booster.num_boosted_rounds() == 4


def test_a_custom_estimator_loads_without_its_model_fn(tmp_path):
    frame = make_frame()
    keras = lf.keras

    def model_fn(inputs, dense, params):
        return keras.layers.Dense(params["n_outputs"])(keras.layers.Dense(4, activation="relu")(dense))

    est = E.Estimator(model_fn, label="y", head="binary", model_dir=tmp_path / "c", seed=0).train(frame, epochs=1)
    loaded = E.load(tmp_path / "c")
    assert loaded.model_fn is None and loaded.head.kind == "binary"
    np.testing.assert_allclose(loaded.predict(frame).logistic, est.predict(frame).logistic, rtol=1e-6)
    loaded.train(frame, epochs=2)  # the model comes from the checkpoint
    assert loaded.epochs_done == 2
    with pytest.raises(E.EstimatorError, match="no model_fn"):
        E.Estimator(None, label="y", head="binary").train(frame, epochs=1)
