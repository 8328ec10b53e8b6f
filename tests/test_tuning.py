"""Tuning over flags in local processes: search spaces, ASHA, failures, Ctrl-C, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import layerflow as lf
from layerflow.flags import FlagError
from layerflow.flags.declared import declared_flags
from layerflow.runs.store import RunStore
from layerflow.tuning import Asha, TuningError, choice, loguniform, randint, trial_flags, uniform
from layerflow.tuning.space import parse_grid_option, parse_range_option
from tests.conftest import layerflow_cli

# A training script that needs no Keras: one metric per epoch from its flags, quickly.
TRAIN = """
    import time
    import layerflow as lf

    FLAGS = lf.flags(dropout=0.2, units=64, epochs=4, sleep=0.0, fail_units=0)
    if FLAGS.units == FLAGS.fail_units:
        raise RuntimeError("units rejected on purpose")
    for epoch in range(1, FLAGS.epochs + 1):
        time.sleep(FLAGS.sleep)
        lf.log_metrics(epoch, val_accuracy=1 - FLAGS.dropout + FLAGS.units / 1000 + epoch / 100)
    print("trained", FLAGS.dropout, FLAGS.units)
"""


# --- search spaces -----------------------------------------------------------------------------


def test_grid_is_every_combination_in_order():
    assert trial_flags({"a": [1, 2], "b": ["x", "y"]}) == [
        {"a": 1, "b": "x"},
        {"a": 1, "b": "y"},
        {"a": 2, "b": "x"},
        {"a": 2, "b": "y"},
    ]
    assert trial_flags({"a": [1, 2], "fixed": 5}) == [{"a": 1, "fixed": 5}, {"a": 2, "fixed": 5}]


def test_sample_and_trials_are_seeded_subsets_of_the_grid():
    grid = {"a": [1, 2, 3, 4], "b": [0.1, 0.2, 0.3]}
    half = trial_flags(grid, sample=0.5, seed=7)
    assert len(half) == 6 and half == trial_flags(grid, sample=0.5, seed=7)
    assert all(combo in trial_flags(grid) for combo in half)
    assert len({json.dumps(c) for c in half}) == 6
    assert trial_flags(grid, sample=0.5, seed=8) != half
    assert len(trial_flags(grid, trials=5, seed=1)) == 5
    assert len(trial_flags(grid, sample=0.01)) == 1  # at least one trial


def test_ranges_draw_values_of_their_kind_within_bounds():
    draws = trial_flags(
        {
            "lr": loguniform(1e-4, 1e-1),
            "units": randint(8, 16),
            "dropout": uniform(0.1, 0.5),
            "act": choice(["relu", "tanh"]),
            "batch": [32, 64],
        },
        trials=200,
        seed=3,
    )
    assert len(draws) == 200
    assert all(1e-4 <= d["lr"] <= 1e-1 and 8 <= d["units"] <= 16 and 0.1 <= d["dropout"] <= 0.5 for d in draws)
    assert all(isinstance(d["units"], int) and d["act"] in ("relu", "tanh") and d["batch"] in (32, 64) for d in draws)
    assert sum(d["lr"] < 1e-2 for d in draws) > 100  # log-uniform: two of three decades lie below 1e-2
    assert {d["units"] for d in draws} == set(range(8, 17))


@pytest.mark.parametrize(
    "space, kwargs, message",
    [
        ({}, {}, "Empty grid"),
        ({"a": []}, {}, "Empty grid: flag 'a' has no values"),
        ({"a": [1, 2]}, {"sample": 0}, "outside (0, 1]"),
        ({"a": [1, 2]}, {"sample": 1.5}, "outside (0, 1]"),
        ({"a": [1, 2]}, {"trials": 3}, "at most 2"),
        ({"a": [1, 2]}, {"trials": 0}, "at least 1"),
        ({"a": [1, 2]}, {"trials": 1, "sample": 0.5}, "not both"),
        ({"a": uniform(0, 1)}, {}, "needs a number of trials"),
        ({"a": {1, 2}}, {}, "as a list"),
    ],
)
def test_bad_spaces_are_refused_with_the_reason(space, kwargs, message):
    with pytest.raises(TuningError, match=__import__("re").escape(message)):
        trial_flags(space, **kwargs)


def test_command_line_grid_and_range_options():
    assert parse_grid_option("dropout=0.2, 0.3") == ("dropout", ["0.2", "0.3"])
    assert parse_range_option("lr=loguniform:1e-4,1e-1")[1] == loguniform(1e-4, 1e-1)
    assert parse_range_option("units=int:64,512")[1] == randint(64, 512)
    assert parse_range_option("act=choice:relu,tanh")[1] == choice(["relu", "tanh"])
    for bad in ("dropout", "dropout=", "=1,2", "1x=2"):
        with pytest.raises(TuningError, match="--grid"):
            parse_grid_option(bad)
    for bad in ("lr=normal:0,1", "lr=uniform:1", "lr=uniform:a,b", "lr=uniform:2,1", "lr=loguniform:0,1", "lr"):
        with pytest.raises(TuningError):
            parse_range_option(bad)


# --- ASHA --------------------------------------------------------------------------------------


def test_asha_keeps_the_top_fraction_at_each_rung():
    asha = Asha("acc", "max", grace_epochs=1, reduction_factor=2)
    assert asha.report("first", 1, 0.5) is False  # nothing to compare with yet
    assert asha.report("better", 1, 0.9) is False
    assert asha.report("worse", 1, 0.1) is True
    assert asha.report("better", 2, 0.95) is False  # rung 2: first to arrive
    assert asha.report("first", 2, 0.6) is True
    assert asha.report("better", 3, 0.99) is False  # between rungs: no decision
    losses = Asha("loss", "min", grace_epochs=2, reduction_factor=2)
    assert losses.report("a", 1, 9.0) is False  # before the grace period
    assert losses.report("a", 2, 1.0) is False
    assert losses.report("b", 2, 2.0) is True
    assert losses.report("c", 2, float("nan")) is True  # a diverged trial is the worst
    with pytest.raises(ValueError, match="mode"):
        Asha("loss", "lowest")
    with pytest.raises(ValueError, match="reduction_factor"):
        Asha("loss", "min", reduction_factor=1)


# --- flag checks before launching ----------------------------------------------------------------


def test_declared_flags_are_read_without_running_the_script(write_script):
    script = write_script("""
        import layerflow as lf
        N = 3
        FLAGS = lf.flags(lf.flag("lr", 0.01, description="step"), units=64, name="x", computed=N * 2)
        raise SystemExit("never run")
    """)
    declared = declared_flags(script)
    assert {name: (spec.type if spec else None) for name, spec in declared.items()} == {
        "lr": float,
        "units": int,
        "name": str,
        "computed": None,
    }
    assert declared_flags(write_script("print('no flags')", name="plain.py")) is None


def test_grid_values_are_checked_against_the_scripts_flags_before_any_trial(runs_dir, write_script):
    script = write_script(TRAIN)
    with pytest.raises(FlagError, match="Unknown flag 'dropuot'.*Did you mean 'dropout'"):
        lf.tuning_run(script, flags={"dropuot": [0.1, 0.2]}, echo=False)
    with pytest.raises(FlagError, match="Flag 'units' \\(tuning grid\\): value '1.5' is not a valid int"):
        lf.tuning_run(script, flags={"units": ["64", "1.5"]}, echo=False)
    with pytest.raises(FlagError, match="'units' is a int; the range uniform"):
        lf.tuning_run(script, flags={"units": uniform(1, 5)}, trials=2, echo=False)
    with pytest.raises(TuningError, match="parallel"):
        lf.tuning_run(script, flags={"units": [1]}, parallel=0, echo=False)
    with pytest.raises(TuningError, match="needs the metric"):
        lf.tuning_run(script, flags={"units": [1]}, early_stopping=True, echo=False)
    with pytest.raises(FileNotFoundError):
        lf.tuning_run(runs_dir.parent / "missing.py", flags={"units": [1]}, echo=False)
    assert not runs_dir.exists() or not any(runs_dir.iterdir())


# --- tuning runs ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_grid_runs_as_tracked_runs_in_parallel_and_a_failing_trial_leaves_the_rest(runs_dir, write_script):
    script = write_script(TRAIN)
    summary = lf.tuning_run(
        script,
        flags={"dropout": [0.1, 0.3], "units": ["32", "64", "99"]},
        fixed_flags={"fail_units": 99},
        parallel=2,
        metric="val_accuracy",
        echo=False,
    )
    assert len(summary) == 6
    tuning_id = summary.attrs["tuning_id"]
    completed = summary[summary.status == "completed"]
    failed = summary[summary.status == "failed"]
    assert len(completed) == 4 and len(failed) == 2
    assert set(failed.flag_units) == {99} and failed.error.str.contains("units rejected on purpose").all()
    # Best first: the metric grows with units and falls with dropout.
    assert list(completed.metric_val_accuracy) == sorted(completed.metric_val_accuracy, reverse=True)
    assert (completed.iloc[0].flag_dropout, completed.iloc[0].flag_units) == (0.1, 64)
    assert summary.metric_val_accuracy.isna().tolist()[-2:] == [True, True]  # failures last
    runs = lf.ls_runs()
    assert (runs.prop_tuning_id == tuning_id).sum() == 6
    assert sorted(runs.prop_trial) == [1, 2, 3, 4, 5, 6]
    record = RunStore().record(completed.iloc[0].id)
    assert record["flags"]["units"] == 64 and "trained 0.1 64" in (Path(record["path"]) / "output.log").read_text()


@pytest.mark.slow
def test_asha_stops_poor_trials_and_records_them_as_stopped(runs_dir, write_script):
    script = write_script(TRAIN)
    summary = lf.tuning_run(
        script,
        flags={"dropout": [0.1, 0.6, 0.5]},
        fixed_flags={"epochs": 8, "sleep": 0.4},
        metric="val_accuracy",
        early_stopping=Asha("val_accuracy", "max", 1, 2),
        echo=False,
    )
    by_dropout = summary.set_index("flag_dropout")
    assert by_dropout.loc[0.1, "status"] == "completed" and by_dropout.loc[0.1, "epochs"] == 8
    for dropout in (0.6, 0.5):
        assert by_dropout.loc[dropout, "status"] == "stopped"
        assert by_dropout.loc[dropout, "epochs"] < 8
        assert "stopped early by ASHA" in by_dropout.loc[dropout, "error"]


def test_random_search_over_ranges(runs_dir, write_script):
    script = write_script(TRAIN)
    summary = lf.tuning_run(
        script, flags={"dropout": uniform(0.1, 0.5), "units": randint(10, 20)}, trials=3, seed=5, parallel=2, echo=False
    )
    assert len(summary) == 3 and (summary.status == "completed").all()
    assert summary.flag_dropout.between(0.1, 0.5).all() and summary.flag_units.between(10, 20).all()
    assert summary.attrs["metric"] == "metric_val_accuracy"  # picked when none is named


@pytest.mark.slow
def test_ctrl_c_keeps_finished_trials_and_marks_running_ones_interrupted(runs_dir, write_script, tmp_path):
    script = write_script(TRAIN)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "layerflow.cli",
            "tune",
            str(script),
            "--grid",
            "epochs=1,40,40,40,40",
            "--flag",
            "sleep=0.25",
            "--parallel",
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
    while time.monotonic() < deadline:  # trial 1 done, trials 2 and 3 running
        records = RunStore(runs_dir).records() if runs_dir.exists() else []
        if (
            sum(r["status"] == "completed" for r in records) == 1
            and sum(r["status"] == "running" for r in records) == 2
        ):
            break
        time.sleep(0.2)
    time.sleep(1.0)
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 130, output
    statuses = sorted(r["status"] for r in RunStore(runs_dir).records())
    assert statuses == ["completed", "interrupted", "interrupted"], output
    assert "2 trial(s) did not start (interrupted)" in output


@pytest.mark.slow
def test_tune_command_line(runs_dir, write_script, tmp_path):
    script = write_script(TRAIN)
    result = layerflow_cli(
        "tune",
        str(script),
        "--grid",
        "dropout=0.1,0.4",
        "--range",
        "units=int:10,90",
        "--trials",
        "2",
        "--seed",
        "1",
        "--parallel",
        "2",
        "--metric",
        "val_accuracy",
        cwd=tmp_path,
        env={"LAYERFLOW_RUNS_DIR": str(runs_dir)},
    )
    assert result.returncode == 0, result.stderr
    assert "ordered by metric_val_accuracy (max)" in result.stdout
    assert result.stderr.count(" completed ") == 2
    for args, message in [
        (["--grid", "dropout=0.1", "--sample", "2"], "outside (0, 1]"),
        (["--grid", "units=a,b"], "value 'a' is not a valid int"),
        (["--grid", "dropout"], "--grid 'dropout' is malformed"),
        ([], "Empty grid"),
        (["--range", "dropout=uniform:0.1,0.2"], "needs a number of trials"),
        (["--grid", "dropout=0.1", "--early-stop"], "needs the metric to watch"),
        (["--grid", "dropout=0.1", "--early-stop", "--metric", "eval_accuracy"], "only known at the end"),
        (
            ["--grid", "dropout=0.1", "--address", "http://127.0.0.1:9"],
            "Cannot reach a Ray cluster at http://127.0.0.1:9",
        ),
        (["--grid", "dropout=0.1", "--gpus", "1"], "apply to trials on Ray"),
    ]:
        before = sorted(p.name for p in runs_dir.iterdir())
        started = time.monotonic()
        result = layerflow_cli("tune", str(script), *args, cwd=tmp_path, env={"LAYERFLOW_RUNS_DIR": str(runs_dir)})
        assert result.returncode == 2 and message in result.stderr, (args, result.stderr)
        assert time.monotonic() - started < 20
        assert sorted(p.name for p in runs_dir.iterdir()) == before  # nothing half-written


def test_log_metrics_checks_its_input(runs_dir):
    with pytest.raises(TypeError, match="Metric 'loss' is a str"):
        lf.log_metrics(1, loss="low")
    with pytest.raises(ValueError, match="epoch must be a whole number"):
        lf.log_metrics(0, loss=1.0)


def test_parallel_local_trials_share_the_cores(monkeypatch):
    from layerflow.runs.threads import THREAD_VARIABLES as _THREAD_VARIABLES
    from layerflow.runs.threads import thread_limits

    for name in _THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert thread_limits(1) == {}
    assert thread_limits(2) == {name: str(max(1, os.cpu_count() // 2)) for name in _THREAD_VARIABLES}
    assert thread_limits(64)["OMP_NUM_THREADS"] == "1"
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # the user's choice wins
    assert thread_limits(2) == {}


def test_run_control_and_given_run_ids_check_their_input(runs_dir, write_script):
    from layerflow.runs import RunControl
    from layerflow.runs.ids import new_run_folder

    with pytest.raises(ValueError, match="'stopped' or 'interrupted', not 'done'"):
        RunControl().stop("done")
    with pytest.raises(ValueError, match="'../escape' is not a run id"):
        new_run_folder(runs_dir, "../escape")
    run_id, _, _ = new_run_folder(runs_dir)
    with pytest.raises(FileExistsError, match=f"Run {run_id} already exists"):
        new_run_folder(runs_dir, run_id)


@pytest.mark.slow
def test_a_dataframe_of_flags_runs_exactly_its_rows(runs_dir, write_script):
    import pandas as pd

    script = write_script(TRAIN)
    frame = pd.DataFrame({"dropout": [0.1, 0.3, 0.3], "units": [16, 16, 32]})
    results = lf.tuning_run(script, flags=frame, fixed_flags={"epochs": 1}, echo=False)
    ran = sorted((r["flags"]["dropout"], r["flags"]["units"]) for r in RunStore(runs_dir).records())
    assert ran == [(0.1, 16), (0.3, 16), (0.3, 32)] and len(results) == 3
    assert all(isinstance(r["flags"]["units"], int) for r in RunStore(runs_dir).records())
    sampled = lf.tuning_run(script, flags=frame, trials=2, seed=0, fixed_flags={"epochs": 1}, echo=False)
    assert len(sampled) == 2
    before = sorted(p.name for p in runs_dir.iterdir())
    for flags, message in [
        ([("dropout", 0.1)], "takes a mapping of flag names to values"),
        ("dropout=0.1", "got a str"),
        (pd.DataFrame({"dropout": []}), "has no rows"),
        (pd.DataFrame({"dropout": [0.1, None]}), "row 1 has no value for 'dropout'"),
        (pd.DataFrame({"dropout": [0.1], "droput": [0.2]}), "Unknown flag 'droput'"),
        (pd.DataFrame({"units": ["many"]}), "value 'many' is not a valid int"),
        (pd.DataFrame({"epochs": [2]}), "both tuned and fixed"),
    ]:
        with pytest.raises(lf.LayerflowError, match=message):
            lf.tuning_run(script, flags=flags, fixed_flags={"epochs": 1}, echo=False)
    assert sorted(p.name for p in runs_dir.iterdir()) == before
