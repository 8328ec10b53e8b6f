"""Boosted trees on several Ray Train workers (XGBoostTrainer): a real local Ray cluster of 2 CPUs."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import layerflow as lf
from layerflow.estimators.distributed_trees import DistributedTrainingError

ray = pytest.importorskip("ray")
pytest.importorskip("ray.train.xgboost")

E = lf.estimators


@pytest.fixture(scope="module")
def cluster():
    """A local Ray cluster of 2 CPUs started in this process (a real raylet, GCS and workers)."""
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, log_to_driver=False, configure_logging=False, include_dashboard=False)
    yield ray
    ray.shutdown()


def frame(rows: int = 3000, seed: int = 0) -> pd.DataFrame:
    # Values on a grid of fewer than max_bin (256) levels: the quantile cuts are exact in one
    # process and on 2 workers alike, so both grow trees on the same bins.
    rng = np.random.default_rng(seed)
    x = np.round(rng.normal(size=(rows, 4)), 1).clip(-4, 4)
    y = (x[:, 0] + 0.5 * x[:, 1] ** 2 - x[:, 2] * x[:, 3] + rng.normal(scale=0.5, size=rows) > 0.5).astype(int)
    data = pd.DataFrame(x, columns=["a", "b", "c", "d"])
    data["y"] = y
    return data


@pytest.mark.slow
def test_two_workers_match_one_process_and_rank_0_writes_model_dir(cluster, tmp_path):
    train, test = frame(3000, 0), frame(1000, 1)
    one = E.BoostedTreesClassifier(label="y", n_trees=5, max_depth=4, seed=1).train(train)
    two = E.BoostedTreesClassifier(label="y", n_trees=5, max_depth=4, seed=1, model_dir=tmp_path / "m")
    two.train(train, workers=2)
    assert two.booster.num_boosted_rounds() == 5
    auc_one, auc_two = one.evaluate(test)["auc"], two.evaluate(test)["auc"]
    assert abs(auc_one - auc_two) < 0.001, (auc_one, auc_two)
    loaded = E.load(tmp_path / "m")  # the checkpoint rank 0 wrote, finished by the driver
    assert loaded.epochs_done == 5
    np.testing.assert_allclose(
        loaded.predict(test, keys="logistic")["logistic"].to_numpy(dtype=float),
        two.predict(test, keys="logistic")["logistic"].to_numpy(dtype=float),
    )


@pytest.mark.parametrize("workers", [0, -1, 1.5, True])
def test_a_bad_number_of_workers_is_refused(workers):
    with pytest.raises(lf.LayerflowError, match="workers=.* must be a whole number >= 1"):
        E.BoostedTreesClassifier(label="y", n_trees=2).train(frame(50), workers=workers)


def test_more_workers_than_the_cluster_can_place_fail_at_once_naming_the_cpus(cluster):
    started = time.monotonic()
    with pytest.raises(lf.LayerflowError, match=r"workers=3 need 3 CPU .* the Ray cluster has 2 CPU in all"):
        E.BoostedTreesClassifier(label="y", n_trees=2).train(frame(100), workers=3)
    assert time.monotonic() - started < 20  # no hang waiting for CPUs that do not exist


def test_data_that_cannot_be_sharded_and_too_few_rows_are_refused_before_training(cluster):
    rows = ({"a": float(i), "b": 1.0, "c": 0.0, "d": 0.0, "y": i % 2} for i in range(10))
    with pytest.raises(lf.LayerflowError, match="generator cannot be sharded across workers"):
        E.BoostedTreesClassifier(label="y", n_trees=2).train(rows, workers=2)
    with pytest.raises(lf.LayerflowError, match=r"workers=2 is more than the 1 row\(s\)"):
        E.BoostedTreesClassifier(label="y", n_trees=2).train(frame(1), workers=2)
    with pytest.raises(lf.LayerflowError, match="max_failures= applies to training on workers"):
        E.BoostedTreesClassifier(label="y", n_trees=2).train(frame(10), max_failures=1)


def _fail_on_rank_1(estimator, epoch):
    import ray.train

    if ray.train.get_context().get_world_rank() == 1 and epoch == 2:
        raise ValueError("rank 1 could not go on at round 2")
    return {}, False


@pytest.mark.slow
def test_a_failing_worker_fails_the_training_with_its_traceback(cluster, tmp_path):
    estimator = E.BoostedTreesClassifier(label="y", n_trees=4, seed=1, model_dir=tmp_path / "m")
    with pytest.raises(DistributedTrainingError, match="rank 1 could not go on at round 2") as failure:
        estimator.train(frame(400), workers=2, _on_epoch_end=_fail_on_rank_1)
    assert "Traceback" in str(failure.value) and "_fail_on_rank_1" in str(failure.value)
    assert isinstance(failure.value, lf.LayerflowError)


def _kill_rank_1_once(marker: str):
    def hook(estimator, epoch):
        import ray.train

        if ray.train.get_context().get_world_rank() == 1 and epoch == 3 and not os.path.exists(marker):
            Path(marker).write_text("killed")
            os.kill(os.getpid(), signal.SIGKILL)
        return {}, False

    return hook


@pytest.mark.slow
def test_a_killed_worker_resumes_from_the_last_round(cluster, tmp_path):
    train, test = frame(1000, 0), frame(300, 1)
    plain = E.BoostedTreesClassifier(label="y", n_trees=5, max_depth=3, seed=1).train(train, workers=2)
    marker = tmp_path / "killed.txt"
    resumed = E.BoostedTreesClassifier(label="y", n_trees=5, max_depth=3, seed=1)
    resumed.train(train, workers=2, max_failures=1, _on_epoch_end=_kill_rank_1_once(str(marker)))
    assert marker.exists()  # a worker really died mid-training
    assert resumed.booster.num_boosted_rounds() == 5
    np.testing.assert_allclose(
        resumed.predict(test, keys="logistic")["logistic"].to_numpy(dtype=float),
        plain.predict(test, keys="logistic")["logistic"].to_numpy(dtype=float),
        atol=1e-6,
    )
