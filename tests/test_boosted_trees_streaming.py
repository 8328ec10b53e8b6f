"""Boosted trees train from a stream: batches are not kept, and the per-round training metrics
(an extra copy of the predictions in XGBoost) are computed only inside a tracked run."""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pandas as pd
import pytest

import layerflow as lf

E = lf.estimators
FEATURES = [f"x{i}" for i in range(6)]


def write_csv(path, n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({name: rng.normal(size=n) for name in FEATURES})
    frame["city"] = rng.choice(["lima", "oslo", "rome"], n)
    frame["y"] = ((frame.x0 + 0.5 * frame.x1 + (frame.city == "oslo") + rng.normal(size=n)) > 0.5).astype(np.int64)
    frame.to_csv(path, index=False)
    return path


def fitted_spec(path):
    return lf.feature_spec(lf.data.csv_dataset(str(path)), label="y").numeric(*FEATURES).categorical_vocab("city").fit()


@pytest.mark.slow
def test_training_streams_batches_without_keeping_them(tmp_path):
    n = 200_000
    path = write_csv(tmp_path / "big.csv", n)
    spec = fitted_spec(path)
    E.BoostedTreesClassifier(label="y", feature_columns=spec, n_trees=1, max_depth=2).train(path)  # imports done
    est = E.BoostedTreesClassifier(label="y", feature_columns=spec, n_trees=2, max_depth=2, batch_size=2048)
    tracemalloc.start()
    try:
        est.train(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    encoded_table = n * len(spec.input_names) * 4  # the float32 matrix of all rows
    # the Python side holds a few batches of 2,048 rows at a time (measured: ~5% of the table),
    # never the table: kept batches (or a concatenation) would reach 100%
    assert peak < encoded_table / 4, (peak, encoded_table)
    assert est.booster.num_boosted_rounds() == 2
    assert est.evaluate(path)["accuracy"] > 0.7


TRACKED_TREES = """
import layerflow as lf

spec = lf.load_feature_spec("{spec}")
est = lf.estimators.BoostedTreesClassifier(label="y", feature_columns=spec, n_trees=4, max_depth=3, seed=0,
                                           batch_size=512)
est.train("{data}")
"""


@pytest.mark.slow
def test_trees_are_the_same_inside_a_run_that_records_train_metrics(tmp_path, runs_dir, write_script):
    path = write_csv(tmp_path / "train.csv", 3_000, seed=1)
    spec = fitted_spec(path)
    spec.save(tmp_path / "spec.json")
    outside = E.BoostedTreesClassifier(
        label="y", feature_columns=spec, n_trees=4, max_depth=3, seed=0, batch_size=512
    ).train(path)
    script = write_script(TRACKED_TREES.format(spec=tmp_path / "spec.json", data=path))
    record = lf.training_run(script, echo=False)
    run_dir = runs_dir / record["id"]
    assert record["status"] == "completed", (run_dir / "output.log").read_text()
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [1, 2, 3, 4]
    losses = [line["train_logloss"] for line in lines]
    assert losses == sorted(losses, reverse=True) and losses[-1] < 0.6
    inside = E.load(run_dir / "model" / "estimator")
    assert inside.booster.get_dump(dump_format="json") == outside.booster.get_dump(dump_format="json")
    frame = pd.read_csv(path)
    np.testing.assert_array_equal(
        inside.predict(frame).probabilities.tolist(), outside.predict(frame).probabilities.tolist()
    )
