"""Searches that learn: TPE through an Optuna study, resumable studies, cloudml's tuning config."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

import layerflow as lf
from layerflow.runs.store import RunStore
from layerflow.tuning import Asha, TuningError, hptuning_config, randint, uniform
from layerflow.tuning.study import STUDY_FILE, storage_url
from tests.conftest import layerflow_cli
from tests.test_tuning import TRAIN

State = optuna.trial.TrialState


def load(runs_dir: Path, tuning_id: str) -> optuna.Study:
    return optuna.load_study(study_name=tuning_id, storage=storage_url(runs_dir))


def states(study: optuna.Study) -> list[str]:
    return sorted(t.state.name for t in study.trials)


def test_tpe_search_tells_every_trial_to_the_stored_study(runs_dir, write_script):
    script = write_script(TRAIN)
    summary = lf.tuning_run(
        script,
        flags={"dropout": uniform(0.05, 0.9), "units": [32, 99, 64]},
        search="tpe",
        trials=6,
        seed=3,
        parallel=2,
        metric="val_accuracy",
        fixed_flags={"fail_units": 99},
        echo=False,
    )
    tuning_id = summary.attrs["tuning_id"]
    study = load(runs_dir, tuning_id)
    assert study.user_attrs["search"] == "tpe" and study.direction == optuna.study.StudyDirection.MAXIMIZE
    assert len(study.trials) == 6 and all(t.state in (State.COMPLETE, State.FAIL) for t in study.trials)
    failed = [t for t in study.trials if t.state == State.FAIL]
    assert all(t.params["units"] == 99 for t in failed)  # a failing trial is told failed; the search goes on
    assert len(summary) == 6 and (summary.status == "failed").sum() == len(failed)
    for trial in study.trials:  # each trial is a tracked run with the study's values and the told metric
        record = RunStore().record(trial.user_attrs["run_id"])
        assert record["properties"] == {"tuning_id": tuning_id, "trial": trial.number + 1}
        assert record["flags"]["units"] == trial.params["units"]
        if trial.state == State.COMPLETE:
            assert trial.value == pytest.approx(
                record["metrics"]["val_accuracy"]["last"]
                if isinstance(record["metrics"]["val_accuracy"], dict)
                else record["metrics"]["val_accuracy"]
            )
    best = summary.attrs["best"]
    assert best["metric_val_accuracy"] == pytest.approx(study.best_value)
    assert best["flag_dropout"] == pytest.approx(study.best_params["dropout"])
    page = json.loads((runs_dir / "tunings" / f"{tuning_id}.json").read_text())
    assert [h["trial"] for h in page["history"]] == [1, 2, 3, 4, 5, 6]
    bests = [h["best"] for h in page["history"] if h["best"] is not None]
    assert bests == sorted(bests) and bests[-1] == pytest.approx(study.best_value)
    if sum(t.state == State.COMPLETE for t in study.trials) >= 2:
        assert set(page["importances"]) <= {"dropout", "units"} and page["importances"]
        assert sum(page["importances"].values()) == pytest.approx(1.0)


@pytest.mark.slow
def test_an_asha_stopped_trial_is_told_as_pruned(runs_dir, write_script):
    script = write_script(TRAIN)
    summary = lf.tuning_run(
        script,
        flags={"dropout": [0.1, 0.6, 0.5]},
        fixed_flags={"epochs": 8, "sleep": 0.3},
        metric="val_accuracy",
        early_stopping=Asha("val_accuracy", "max", 1, 2),
        echo=False,
    )
    study = load(runs_dir, summary.attrs["tuning_id"])
    assert states(study) == ["COMPLETE", "PRUNED", "PRUNED"]
    assert study.best_params == {"dropout": 0.1}


def test_bad_searches_are_refused_before_any_trial(runs_dir, write_script):
    script = write_script(TRAIN)
    cases = [
        (dict(flags={"dropout": [0.1, 0.2]}, search="bayes"), "Unknown search 'bayes'"),
        (dict(flags={"dropout": [0.1]}, search="tpe", trials=3, metric="val_accuracy"), "nothing to learn"),
        (dict(flags={"dropout": uniform(0.1, 0.2)}, search="tpe", trials=3), "learns from a metric"),
        (dict(flags={"dropout": uniform(0.1, 0.2)}, search="tpe", metric="val_accuracy"), "needs a number of trials"),
        (dict(flags={"dropout": uniform(0.1, 0.2)}, search="grid", trials=2), "needs lists of values"),
        (dict(resume="20990101T000000-dead", trials=2), "No tuning run '20990101T000000-dead' to resume"),
    ]
    for kwargs, message in cases:
        with pytest.raises(TuningError, match=message):
            lf.tuning_run(script, echo=False, **kwargs)
    assert not runs_dir.exists() or not any(runs_dir.iterdir())  # nothing written


def test_a_metric_no_trial_reports_is_a_clear_error(runs_dir, write_script):
    script = write_script(TRAIN)
    with pytest.raises(TuningError, match="reported the metric 'val_auc'.*metric_val_accuracy"):
        lf.tuning_run(
            script, flags={"dropout": uniform(0.1, 0.5)}, search="tpe", trials=2, metric="val_auc", echo=False
        )


def test_a_finished_grid_cannot_be_resumed_and_a_changed_space_is_named(runs_dir, write_script):
    script = write_script(TRAIN)
    first = lf.tuning_run(script, flags={"dropout": [0.1, 0.3, 0.5]}, trials=2, seed=1, echo=False)
    tuning_id = first.attrs["tuning_id"]
    with pytest.raises(
        TuningError, match="flag 'dropout' changed from grid \\[0.1, 0.3, 0.5\\] to grid \\[0.1, 0.3\\]"
    ):
        lf.tuning_run(script, flags={"dropout": [0.1, 0.3]}, resume=tuning_id, echo=False)
    with pytest.raises(TuningError, match="flag 'units' added"):
        lf.tuning_run(script, flags={"dropout": [0.1, 0.3, 0.5], "units": [1, 2]}, resume=tuning_id, echo=False)
    rest = lf.tuning_run(script, resume=tuning_id, echo=False)  # the one combination not run yet
    assert len(rest) == 3 and sorted(rest.flag_dropout) == [0.1, 0.3, 0.5] and sorted(rest.trial) == [1, 2, 3]
    with pytest.raises(TuningError, match="is finished: every one of its 3 grid combinations has run"):
        lf.tuning_run(script, resume=tuning_id, echo=False)
    assert states(load(runs_dir, tuning_id)) == ["COMPLETE"] * 3


@pytest.mark.slow
def test_ctrl_c_keeps_the_study_consistent_and_resume_adds_trials(runs_dir, write_script, tmp_path):
    script = write_script(TRAIN)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "layerflow.cli",
            "tune",
            str(script),
            "--search",
            "tpe",
            "--range",
            "dropout=uniform:0.1,0.5",
            "--grid",
            "units=16,32",
            "--trials",
            "6",
            "--metric",
            "val_accuracy",
            "--flag",
            "epochs=40",
            "--flag",
            "sleep=0.25",
            "--seed",
            "2",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env={**os.environ, "LAYERFLOW_RUNS_DIR": str(runs_dir)},
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # trial 1 running
        records = RunStore(runs_dir).records() if runs_dir.exists() else []
        if any(r["status"] == "running" for r in records):
            break
        time.sleep(0.2)
    time.sleep(1.5)
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 130, output
    tuning_id = next(r["properties"]["tuning_id"] for r in RunStore(runs_dir).records())
    study = load(runs_dir, tuning_id)
    assert states(study) == ["FAIL"], output  # the interrupted trial: no trial left running
    assert (runs_dir / STUDY_FILE).exists() and (runs_dir / "tunings" / f"{tuning_id}.json").exists()

    env = {"LAYERFLOW_RUNS_DIR": str(runs_dir)}
    result = layerflow_cli(
        "tune", "--resume", tuning_id, "--trials", "3", "--flag", "epochs=2", "--flag", "sleep=0", cwd=tmp_path, env=env
    )
    assert result.returncode == 0, result.stderr
    assert "(resumed)" in result.stderr and "tpe search" in result.stderr
    study = load(runs_dir, tuning_id)
    assert states(study) == ["COMPLETE"] * 3 + ["FAIL"]
    assert [t.number for t in study.trials] == [0, 1, 2, 3]
    records = [r for r in RunStore(runs_dir).records() if r["properties"].get("tuning_id") == tuning_id]
    assert sorted(r["properties"]["trial"] for r in records) == [1, 2, 3, 4]
    result = layerflow_cli(
        "tune",
        "--resume",
        tuning_id,
        "--trials",
        "1",
        "--range",
        "dropout=uniform:0.1,0.9",
        "--grid",
        "units=16,32",
        cwd=tmp_path,
        env=env,
    )
    assert (
        result.returncode == 2 and "flag 'dropout' changed from uniform(0.1, 0.5) to uniform(0.1, 0.9)" in result.stderr
    )
    result = layerflow_cli(
        "tune", "--resume", tuning_id, "--trials", "1", "--metric", "val_loss", cwd=tmp_path, env=env
    )
    assert result.returncode == 2 and "with metric='val_loss'" in result.stderr


HPTUNING = """
trainingInput:
  scaleTier: CUSTOM
  hyperparameters:
    goal: MINIMIZE
    hyperparameterMetricTag: val_loss
    maxTrials: 12
    maxParallelTrials: 3
    enableTrialEarlyStopping: true
    algorithm: {algorithm}
    params:
      - parameterName: learning_rate
        type: DOUBLE
        minValue: 0.0001
        maxValue: 0.1
        scaleType: UNIT_LOG_SCALE
      - parameterName: dropout
        type: DOUBLE
        minValue: 0.1
        maxValue: 0.5
        scaleType: UNIT_LINEAR_SCALE
      - parameterName: units
        type: INTEGER
        minValue: 16
        maxValue: 64
      - parameterName: optimizer
        type: CATEGORICAL
        categoricalValues: [adam, rmsprop]
      - parameterName: batch_size
        type: DISCRETE
        discreteValues: [32, 64, 128]
"""


def test_cloudml_config_is_mapped_field_by_field(tmp_path):
    path = tmp_path / "hptuning.yml"
    path.write_text(HPTUNING.format(algorithm="ALGORITHM_UNSPECIFIED").replace("  scaleTier: CUSTOM\n", ""))
    assert hptuning_config(path) == {
        "mode": "min",
        "metric": "val_loss",
        "trials": 12,
        "parallel": 3,
        "early_stopping": True,
        "search": "tpe",
        "flags": {
            "learning_rate": lf.tuning.loguniform(0.0001, 0.1),
            "dropout": uniform(0.1, 0.5),
            "units": randint(16, 64),
            "optimizer": ["adam", "rmsprop"],
            "batch_size": [32, 64, 128],
        },
    }
    for algorithm, search in [("BAYESIAN_OPTIMIZATION", "tpe"), ("RANDOM_SEARCH", "random")]:
        path.write_text(HPTUNING.format(algorithm=algorithm).replace("  scaleTier: CUSTOM\n", ""))
        assert hptuning_config(path)["search"] == search
    grid = """
      hyperparameters:
        algorithm: GRID_SEARCH
        params:
          - {parameterName: units, type: INTEGER, minValue: 2, maxValue: 4}
          - {parameterName: act, type: CATEGORICAL, categoricalValues: [relu, tanh]}
    """
    path.write_text(grid)
    assert hptuning_config(path) == {"search": "grid", "flags": {"units": [2, 3, 4], "act": ["relu", "tanh"]}}

    base = "hyperparameters:\n  params:\n    - {parameterName: lr, %s}\n"
    for body, message in [
        ("type: FLOAT, minValue: 0, maxValue: 1", "unknown type 'FLOAT'"),
        ("type: DOUBLE, minValue: 0.1, maxValue: 1, scaleType: LOG", "unknown scaleType 'LOG'"),
        ("type: DOUBLE, minValue: 2, maxValue: 1", "minValue 2 is above maxValue 1"),
        ("type: DOUBLE, minValue: 0, maxValue: 1, scaleType: UNIT_LOG_SCALE", "needs values above 0; minValue is 0"),
        ("type: DOUBLE, minValue: 0.1, maxValue: 1, scaleType: UNIT_REVERSE_LOG_SCALE", "cannot be honoured"),
        ("type: DOUBLE, maxValue: 1", "needs minValue"),
        ("type: CATEGORICAL, categoricalValues: []", "needs categoricalValues"),
        ("type: DOUBLE, minValue: 0, maxValue: 1, step: 2", "field(s) ['step'] cannot be honoured"),
    ]:
        path.write_text(base % body)
        with pytest.raises(TuningError, match=message.replace("(", "\\(").replace(")", "\\)").replace("[", "\\[")):
            hptuning_config(path)
    path.write_text(
        "hyperparameters:\n  goal: BEST\n  params: [{parameterName: a, type: DISCRETE, discreteValues: [1]}]\n"
    )
    with pytest.raises(TuningError, match="unknown goal 'BEST'; expected one of MAXIMIZE, MINIMIZE"):
        hptuning_config(path)
    path.write_text(HPTUNING.format(algorithm="GRID_SEARCH"))
    with pytest.raises(TuningError, match="field\\(s\\) \\['scaleTier'\\]|GRID_SEARCH cannot try every DOUBLE"):
        hptuning_config(path)


def test_tune_with_a_cloudml_config_file(runs_dir, write_script, tmp_path):
    script = write_script(TRAIN)
    config = tmp_path / "hptuning.yml"
    config.write_text("""
trainingInput:
  hyperparameters:
    goal: MAXIMIZE
    hyperparameterMetricTag: val_accuracy
    maxTrials: 3
    maxParallelTrials: 2
    params:
      - {parameterName: dropout, type: DOUBLE, minValue: 0.1, maxValue: 0.5}
      - {parameterName: units, type: DISCRETE, discreteValues: [16, 32]}
""")
    result = layerflow_cli(
        "tune", str(script), "--config", str(config), cwd=tmp_path, env={"LAYERFLOW_RUNS_DIR": str(runs_dir)}
    )
    assert result.returncode == 0, result.stderr
    assert "3 trials of train.py (tpe search), 2 at a time" in result.stderr
    assert "ordered by metric_val_accuracy (max)" in result.stdout
    tuning_id = RunStore(runs_dir).records()[0]["properties"]["tuning_id"]
    assert states(load(runs_dir, tuning_id)) == ["COMPLETE"] * 3
    config.write_text("trainingInput:\n  hyperparameters:\n    goal: UP\n    params: []\n")
    result = layerflow_cli(
        "tune", str(script), "--config", str(config), cwd=tmp_path, env={"LAYERFLOW_RUNS_DIR": str(runs_dir)}
    )
    assert result.returncode == 2 and "unknown goal 'UP'" in result.stderr
