"""A TPE search whose trials are Ray jobs: the same ask-and-tell path as local processes."""

from __future__ import annotations

import optuna
import pytest

from layerflow.runs.store import RunStore
from layerflow.tuning.study import storage_url

pytest.importorskip("ray.job_submission")

from tests.test_ray import LocalRayHead, cli, project  # noqa: F401 - the real local cluster and script


@pytest.fixture(scope="module")
def ray_head():
    head = LocalRayHead()
    yield head
    head.stop()


@pytest.mark.slow
def test_tpe_search_on_ray_tells_every_job_to_the_study(ray_head, project, runs_dir, tmp_path):  # noqa: F811
    result = cli(
        "tune",
        str(project),
        "--search",
        "tpe",
        "--range",
        "dropout=uniform:0.1,0.6",
        "--trials",
        "3",
        "--parallel",
        "2",
        "--metric",
        "val_accuracy",
        "--seed",
        "4",
        "--address",
        ray_head.address,
        runs_dir=runs_dir,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    records = RunStore(runs_dir).records()
    assert len(records) == 3 and all(r["remote"]["job_id"] for r in records)
    tuning_id = records[0]["properties"]["tuning_id"]
    study = optuna.load_study(study_name=tuning_id, storage=storage_url(runs_dir))
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 3
    by_run = {r["id"]: r for r in records}
    for trial in study.trials:
        assert by_run[trial.user_attrs["run_id"]]["flags"]["dropout"] == pytest.approx(trial.params["dropout"])
