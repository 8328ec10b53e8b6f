"""Estimators exported to ONNX bundles: raw values in, the same predictions as est.predict out."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import layerflow as lf
from tests.conftest import layerflow_cli

E = lf.estimators


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 400
    frame = pd.DataFrame(
        {
            "age": rng.uniform(18, 70, n),
            "city": rng.choice(["lima", "oslo", "rome"], n),
            "job": rng.choice(["dev", "ops"], n),
            "income": rng.normal(50, 10, n),
        }
    )
    frame["y"] = np.where((frame.age > 40) ^ (frame.city == "oslo"), "yes", "no")
    return frame


def spec_of(frame):
    spec = lf.feature_spec(frame, label="y").numeric("age", "income", normalizer="standard")
    spec = spec.categorical_vocab("city", "job").bucketized("age", boundaries=[30, 50])
    spec = spec.crossed(["city", "job"], hash_bucket_size=8).indicator("job").embedding("city", dimension=2)
    return spec.fit()


@pytest.mark.parametrize(
    "make",
    [
        lambda spec: E.LinearClassifier(label="y", feature_columns=spec, label_vocabulary=["no", "yes"], seed=0),
        lambda spec: E.DNNLinearCombinedClassifier(
            label="y",
            hidden_units=[4],
            feature_columns=spec,
            seed=0,
            label_vocabulary=["no", "yes"],
            linear_feature_columns=["city_X_job", "age_bucketized"],
        ),
        lambda spec: E.BoostedTreesClassifier(
            label="y", feature_columns=spec, label_vocabulary=["no", "yes"], n_trees=5
        ),
    ],
    ids=["linear", "wide_deep", "trees"],
)
def test_bundle_predicts_what_the_estimator_predicts_on_raw_rows(frame, make, tmp_path):
    est = make(spec_of(frame)).train(frame, epochs=2)
    bundle = lf.export_model(est, tmp_path / "models", name="m")
    rows = frame.drop(columns=["y"]).head(25).copy()
    rows.loc[0, "city"] = "unseen-town"  # out of vocabulary: a bucket, not an error
    ours = est.predict(rows)
    for given in (rows, rows.to_dict(orient="records")):
        served = lf.predict(bundle, given)
        np.testing.assert_allclose(np.asarray(served["probabilities"]), np.stack(ours.probabilities), atol=1e-5)
        assert [str(c) for c in np.asarray(served["classes"]).reshape(-1)] == list(ours.classes)
    signature = json.loads((bundle / "signature.json").read_text())
    assert signature["class_labels"] == ["no", "yes"]


@pytest.mark.slow
def test_layerflow_export_of_a_tracked_run_with_an_estimator(runs_dir, write_script, tmp_path, frame):
    frame.to_csv(tmp_path / "data.csv", index=False)
    script = write_script(f"""
        import layerflow as lf
        est = lf.estimators.BoostedTreesRegressor(label="income", n_trees=5, max_depth=3)
        est.train({str(tmp_path / "data.csv")!r})
        est.evaluate({str(tmp_path / "data.csv")!r})
    """)
    record = lf.training_run(script, echo=False)
    assert record["status"] == "completed", (runs_dir / record["id"] / "output.log").read_text()
    result = layerflow_cli("export", record["id"], "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    bundle = next((tmp_path / "out").glob("*/*"))
    est = E.load(runs_dir / record["id"] / "model" / "estimator")
    rows = frame.drop(columns=["income"]).head(10)
    served = lf.predict(bundle, rows)  # one output, still by name, as est.predict names it
    assert json.loads((bundle / "signature.json").read_text())["outputs"][0]["name"] == "predictions"
    assert list(served) == ["predictions"] and served["predictions"].dtype == np.float32
    np.testing.assert_allclose(served["predictions"].reshape(-1), est.predict(rows).predictions, rtol=1e-5, atol=1e-4)
    assert json.loads((bundle / "lineage.json").read_text())["run_id"] == record["id"]
