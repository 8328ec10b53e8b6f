"""Tracked runs end to end: real subprocesses, real files, real SQLite."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

import layerflow as lf
from layerflow.runs import RunNotFoundError
from layerflow.runs.ids import new_run_folder
from layerflow.runs.store import RunStore
from tests.conftest import layerflow_cli

SIMPLE = """
    import layerflow as lf
    FLAGS = lf.flags(lr=0.1, units=8, name="base")
    print("training with", dict(FLAGS))
    lf.run_properties(dataset="toy", rows=3)
    lf.write_run_data("notes.txt", "hello")
    lf.write_run_data("table.json", {"a": [1, 2]})
"""


def test_completed_run_records_the_contract(runs_dir, write_script):
    script = write_script(SIMPLE)
    (script.parent / ".gitignore").write_text("secret.txt\n")
    (script.parent / "secret.txt").write_text("do not copy")
    (script.parent / "helper.py").write_text("X = 1\n")
    record = lf.training_run(script, flags={"lr": 0.5}, command_line_flags={"units": "16", "lr": "0.2"}, echo=False)

    assert record["status"] == "completed" and record["exit_code"] == 0
    run_dir = runs_dir / record["id"]
    saved = json.loads((run_dir / "run.json").read_text())
    for key in (
        "id",
        "script",
        "start",
        "end",
        "status",
        "flags",
        "metrics",
        "evaluation",
        "properties",
        "environment",
        "source_hash",
    ):
        assert key in saved, key
    assert saved["flags"] == {"lr": 0.5, "units": 16, "name": "base"}
    assert saved["flag_types"] == {"lr": "float", "units": "int", "name": "str"}
    assert saved["properties"] == {"dataset": "toy", "rows": 3}
    assert "training with" in (run_dir / "output.log").read_text()
    assert (run_dir / "data" / "notes.txt").read_text() == "hello"
    assert json.loads((run_dir / "data" / "table.json").read_text()) == {"a": [1, 2]}
    copied = {p.name for p in (run_dir / "source").rglob("*") if p.is_file()}
    assert copied == {"train.py", "helper.py", ".gitignore"}
    assert saved["environment"]["packages"]["layerflow"] == lf.__version__


def test_script_that_raises_is_recorded_as_failed(runs_dir, write_script):
    script = write_script("""
        import layerflow as lf
        lf.run_properties(stage="before crash")
        print("about to fail", flush=True)
        raise RuntimeError("boom at step 3")
    """)
    record = lf.training_run(script, echo=False)
    assert record["status"] == "failed" and record["exit_code"] == 1
    assert record["error"] == "RuntimeError: boom at step 3"
    output = (runs_dir / record["id"] / "output.log").read_text()
    assert "about to fail" in output and "Traceback" in output
    assert record["properties"] == {"stage": "before crash"}


def test_flag_typo_fails_the_run_naming_the_flag(runs_dir, write_script):
    script = write_script(SIMPLE)
    done = layerflow_cli("run", str(script), "--flag", "unitz=3", cwd=runs_dir.parent)
    assert done.returncode == 1
    assert "Unknown flag 'unitz'" in done.stderr + done.stdout and "Did you mean 'units'" in done.stdout
    frame = lf.ls_runs()
    assert frame.loc[0, "status"] == "failed" and "unitz" in frame.loc[0, "error"]


def test_bad_run_inputs_create_no_run(runs_dir, write_script):
    with pytest.raises(FileNotFoundError, match="'missing.py' does not exist"):
        lf.training_run("missing.py")
    text_file = write_script("print(1)", name="notes.txt")
    with pytest.raises(ValueError, match="not a Python file"):
        lf.training_run(text_file)
    assert not runs_dir.exists() or not any(runs_dir.iterdir())
    done = layerflow_cli("run", "nope.py", cwd=runs_dir.parent)
    assert done.returncode == 2 and "Error: Script 'nope.py' does not exist" in done.stderr
    done = layerflow_cli("run", str(text_file), "--flag", "oops", cwd=runs_dir.parent)
    assert done.returncode == 2 and "expected --flag name=value" in done.stderr


def test_nonzero_exit_and_script_arguments(runs_dir, write_script):
    script = write_script("import sys\nprint('args', sys.argv[1:])\nsys.exit(3)\n")
    record = lf.training_run(script, args=["--epochs", "2"], echo=False)
    assert record["status"] == "failed" and record["exit_code"] == 3 and record["error"] == "SystemExit(3)"
    assert "args ['--epochs', '2']" in (runs_dir / record["id"] / "output.log").read_text()


def _make_runs(store_path, count):
    return [new_run_folder(Path(store_path))[0] for _ in range(count)]


def test_run_ids_never_collide_across_processes(tmp_path):
    with ProcessPoolExecutor(4) as pool:
        batches = list(pool.map(_make_runs, [tmp_path] * 8, [50] * 8))
    ids = [i for batch in batches for i in batch]
    assert len(ids) == len(set(ids)) == 400
    assert sorted(ids) == sorted(p.name for p in tmp_path.iterdir())


def test_two_runs_started_in_the_same_second(runs_dir, write_script):
    script = write_script("import time; import layerflow as lf; lf.flags(n=0); time.sleep(0.3)\n")
    results = []
    threads = [
        threading.Thread(target=lambda i=i: results.append(lf.training_run(script, flags={"n": i}, echo=False)))
        for i in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({r["id"] for r in results}) == 3
    frame = lf.ls_runs()
    assert len(frame) == 3 and set(frame["status"]) == {"completed"}
    assert sorted(frame["flag_n"]) == [0, 1, 2]


def _corrupt_runs(runs_dir, write_script):
    first = lf.training_run(write_script(SIMPLE), echo=False)
    # A torn line in metrics.jsonl, as a crash in the middle of a write leaves it.
    second = lf.training_run(
        write_script(
            """
        import os
        path = os.path.join(os.environ["LAYERFLOW_RUN_DIR"], "metrics.jsonl")
        with open(path, "a") as stream:
            stream.write('{"epoch": 1, "loss": 0.9}\\n{"epoch": 2, "lo\\n{"epoch": 3, "loss": 0.5}\\n')
    """,
            name="torn.py",
        ),
        echo=False,
    )
    (runs_dir / first["id"] / "run.json").write_text('{"id": "broken", ')
    return first, second


def test_corrupt_files_still_list_and_show(runs_dir, write_script, tmp_path):
    first, second = _corrupt_runs(runs_dir, write_script)
    frame = lf.ls_runs().set_index("id")
    assert frame.loc[first["id"], "status"] == "corrupt"
    assert frame.loc[second["id"], "status"] == "completed"
    assert frame.loc[second["id"], "metric_loss"] == 0.5 and frame.loc[second["id"], "epochs"] == 2
    record = RunStore().record(second["id"])
    assert any("lines [2]" in p for p in record["problems"])
    html = lf.view_run(first["id"], out=tmp_path / "first.html").read_text()
    assert "Damaged files" in html and "is not valid JSON" in html
    assert "SIMPLE" not in html and "training with" in html


def _runner(script_path, runs_dir):
    return subprocess.Popen(
        [sys.executable, "-m", "layerflow.cli", "run", str(script_path), "--runs-dir", str(runs_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _wait_for(predicate, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("timed out waiting")


SLOW_KERAS = """
    import time
    import numpy as np
    import layerflow as lf
    from layerflow import keras
    FLAGS = lf.flags(epochs=200)
    x = np.random.default_rng(0).normal(size=(64, 3)).astype("float32"); y = (x[:, 0] > 0).astype("float32")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(loss="binary_crossentropy", optimizer="sgd", metrics=["accuracy"])
    class Slow(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            time.sleep(0.05)
    model.fit(x, y, epochs=FLAGS.epochs, batch_size=16, callbacks=[Slow()], verbose=2)
"""


@pytest.mark.slow
def test_sigkill_mid_epoch_keeps_the_record(runs_dir, write_script, tmp_path):
    script = write_script(SLOW_KERAS)
    process = _runner(script, runs_dir)
    metrics = lambda: list(runs_dir.glob("*/metrics.jsonl"))  # noqa: E731
    _wait_for(lambda: metrics() and len(metrics()[0].read_text().splitlines()) >= 2)
    os.killpg(process.pid, signal.SIGKILL)  # the driver and the script, as a crash of the session would
    process.wait()
    frame = lf.ls_runs()
    assert len(frame) == 1
    row = frame.iloc[0]
    assert row["status"] == "unfinished" and "without recording an end" in row["error"]
    assert row["epochs"] >= 2 and "metric_loss" in frame.columns and row["flag_epochs"] == 200
    html = lf.view_run("latest", out=tmp_path / "killed.html").read_text()
    assert "unfinished" in html and "Epoch 1/200" in html
    # Only the script killed: the driver records how it ended.
    process = _runner(script, runs_dir)
    _wait_for(lambda: len(lf.ls_runs()) == 2 and lf.ls_runs().iloc[0]["epochs"] >= 1)
    child = int(subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True).stdout.split()[0])
    os.kill(child, signal.SIGKILL)
    process.wait(timeout=60)
    assert process.returncode != 0
    latest = lf.ls_runs().iloc[0]
    assert latest["status"] == "killed" and latest["error"] == "killed by SIGKILL"


def test_ctrl_c_marks_the_run_interrupted(runs_dir, write_script):
    script = write_script("""
        import time
        print("started", flush=True)
        time.sleep(60)
    """)
    process = _runner(script, runs_dir)
    _wait_for(lambda: any(p.read_text().startswith("started") for p in runs_dir.glob("*/output.log")))
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    process.wait(timeout=60)
    record = RunStore(runs_dir).record("latest")
    assert record["status"] == "interrupted" and process.returncode == 130
    assert "KeyboardInterrupt" in (Path(record["path"]) / "output.log").read_text()


@pytest.mark.slow
def test_references_ls_runs_and_index(runs_dir, write_script):
    script = write_script(SIMPLE)
    ids = [lf.training_run(script, flags={"lr": lr}, echo=False)["id"] for lr in (0.3, 0.1, 0.2)]
    store = RunStore()
    assert store.resolve("latest").name == ids[2] and store.resolve("latest~2").name == ids[0]
    assert store.resolve(ids[1][:22]).name == ids[1]
    with pytest.raises(RunNotFoundError, match="holds 3 run"):
        store.resolve("latest~3")
    with pytest.raises(RunNotFoundError, match="No run 'zzz'"):
        store.resolve("zzz")
    with pytest.raises(RunNotFoundError, match="ambiguous"):
        store.resolve("2")

    frame = lf.ls_runs()
    assert frame["id"].tolist() == ids[::-1]
    assert list(frame.columns[:5]) == ["id", "status", "script", "start", "end"]
    assert {"flag_lr", "flag_units", "prop_dataset"} <= set(frame.columns)
    assert lf.ls_runs(order="flag_lr")["flag_lr"].tolist() == [0.1, 0.2, 0.3]
    assert lf.ls_runs(order="flag_lr", decreasing=True)["flag_lr"].tolist() == [0.3, 0.2, 0.1]
    assert lf.ls_runs(latest_n=2)["id"].tolist() == ids[:0:-1]
    assert lf.ls_runs(filter="flag_lr > 0.15")["flag_lr"].tolist() == [0.2, 0.3]
    with pytest.raises(ValueError, match="Cannot order by 'eval_auc'.*flag_lr"):
        lf.ls_runs(order="eval_auc")
    with pytest.raises(ValueError, match="Filter 'flag_lr >>> 1' could not be applied"):
        lf.ls_runs(filter="flag_lr >>> 1")
    with pytest.raises(ValueError, match="positive"):
        lf.ls_runs(latest_n=0)

    (runs_dir / "index.sqlite").unlink()
    for extra in runs_dir.glob("index.sqlite-*"):
        extra.unlink()
    assert lf.ls_runs()["id"].tolist() == ids[::-1]  # rebuilt from the folders
    done = layerflow_cli("runs", "--reindex", "--json", "--order", "flag_lr", cwd=runs_dir.parent)
    assert done.returncode == 0, done.stderr
    records = json.loads(done.stdout)
    assert [r["flags"]["lr"] for r in records] == [0.1, 0.2, 0.3] and "Reindexed 3 runs" in done.stderr
    table = layerflow_cli("runs", "--latest", "1", cwd=runs_dir.parent)
    assert ids[2] in table.stdout and ids[0] not in table.stdout
    bad = layerflow_cli("runs", "--order", "nope", cwd=runs_dir.parent)
    assert bad.returncode == 2 and "Cannot order by 'nope'" in bad.stderr


def _index_worker(runs_dir):
    from layerflow.runs import files
    from layerflow.runs.index import RunIndex

    index = RunIndex(Path(runs_dir))
    for _ in range(25):
        run_id, folder, start = new_run_folder(Path(runs_dir))
        files.write_json(folder / "run.json", {"id": run_id, "status": "completed", "start": start.isoformat()})
        index.update([folder])
        index.records()
    return True


def test_index_is_safe_under_parallel_writers(tmp_path):
    with ProcessPoolExecutor(4) as pool:
        assert all(pool.map(_index_worker, [tmp_path] * 4))
    store = RunStore(tmp_path)
    assert len(store.records()) == 100
    assert store.index.rebuild() == 100


def test_show_compare_clean_and_purge(runs_dir, write_script, tmp_path):
    script = write_script(SIMPLE)
    first = lf.training_run(script, echo=False)
    script.write_text(script.read_text().replace("units=8", "units=32") + "ADDED_IN_SECOND = 1\n")
    second = lf.training_run(script, echo=False)

    html = lf.view_run("latest", out=tmp_path / "report.html").read_text()
    assert second["id"] in html and "training with" in html and "lf.run_properties" in html
    comparison = lf.compare_runs(first["id"], "latest", out=tmp_path / "compare.html").read_text()
    assert first["id"] in comparison and second["id"] in comparison
    assert 'class="changed"' in comparison  # the units flag differs
    assert "ADDED_IN_SECOND" in comparison and "diff_add" in comparison and "diff_chg" in comparison

    done = layerflow_cli("show", "latest~1", "--out", str(tmp_path / "cli.html"), cwd=runs_dir.parent)
    assert done.returncode == 0 and first["id"] in (tmp_path / "cli.html").read_text()
    done = layerflow_cli("compare", "latest~1", "latest", "--out", str(tmp_path / "c.html"), cwd=runs_dir.parent)
    assert done.returncode == 0 and (tmp_path / "c.html").exists()
    done = layerflow_cli("show", "latest~5", cwd=runs_dir.parent)
    assert done.returncode == 2 and "holds 2 run(s)" in done.stderr

    assert layerflow_cli("runs", "clean", cwd=runs_dir.parent).returncode == 2
    done = layerflow_cli("runs", "clean", "latest", cwd=runs_dir.parent)
    assert done.returncode == 0 and "Archived 1 run" in done.stdout
    assert lf.ls_runs()["id"].tolist() == [first["id"]]
    assert (runs_dir / "_archive" / second["id"] / "run.json").exists()
    done = layerflow_cli("runs", "purge", "--yes", cwd=runs_dir.parent)
    assert done.returncode == 0 and "Deleted 1" in done.stdout
    assert not (runs_dir / "_archive" / second["id"]).exists()


def test_clean_failed_runs(runs_dir, write_script):
    good = lf.training_run(write_script(SIMPLE), echo=False)
    lf.training_run(write_script("raise SystemExit(2)\n", name="bad.py"), echo=False)
    done = layerflow_cli("runs", "clean", "--failed", cwd=runs_dir.parent)
    assert done.returncode == 0 and "Archived 1 run" in done.stdout
    assert lf.ls_runs()["id"].tolist() == [good["id"]]


def test_clean_and_purge_runs_from_python(runs_dir, write_script):
    from layerflow.errors import InvalidTypeError, InvalidValueError

    script = write_script(SIMPLE)
    first, second, third = (lf.training_run(script, echo=False) for _ in range(3))
    lf.training_run(write_script("raise SystemExit(2)\n", name="bad.py"), echo=False)
    with pytest.raises(InvalidValueError, match="Say which runs to archive"):
        lf.clean_runs()
    with pytest.raises(InvalidTypeError, match="got a int"):
        lf.clean_runs(42)
    with pytest.raises(lf.RunNotFoundError, match="No run 'nope'"):
        lf.clean_runs(["latest", "nope"])
    with pytest.raises(InvalidValueError, match="'id' column"):
        lf.clean_runs(lf.ls_runs()[["status"]])
    assert len(lf.ls_runs()) == 4  # nothing archived by a refused call
    assert lf.clean_runs(lf.ls_runs(filter=f"id == '{first['id']}'")) == [first["id"]]
    assert lf.clean_runs(second["id"]) == [second["id"]]
    (failed,) = lf.clean_runs(failed=True)
    assert lf.ls_runs()["id"].tolist() == [third["id"]]
    assert lf.run_info("latest")["id"] == third["id"]
    assert lf.purge_runs() == sorted([first["id"], second["id"], failed])
    assert lf.runs.archived_runs() == [] and lf.purge_runs() == []


def test_run_helpers_outside_a_run_warn_and_check_input(monkeypatch):
    monkeypatch.delenv("LAYERFLOW_RUN_DIR", raising=False)
    import layerflow.runs.context as context

    monkeypatch.setattr(context, "_warned_untracked", False)
    with pytest.warns(UserWarning, match="not running as a tracked run"):
        lf.run_properties(a=1)
    with pytest.raises(TypeError, match="not JSON-serialisable"):
        lf.run_properties(model=object())
    with pytest.raises(ValueError, match="plain file name"):
        lf.write_run_data("../escape.txt", "x")


def test_copy_run_and_the_run_dir_column(runs_dir, write_script, tmp_path):
    from layerflow.errors import InvalidValueError

    record = lf.training_run(write_script(SIMPLE), echo=False)
    frame = lf.ls_runs()
    assert frame["run_dir"].tolist() == [record["path"]] and frame.attrs["runs_dir"] == str(runs_dir)
    copied = lf.copy_run("latest", to=tmp_path / "keep")
    assert copied == tmp_path / "keep" / record["id"]
    assert (copied / "run.json").read_text() == (Path(record["path"]) / "run.json").read_text()
    assert (copied / "data" / "notes.txt").read_text() == "hello"
    with pytest.raises(InvalidValueError, match="exists already"):
        lf.copy_run(record["id"], to=tmp_path / "keep")
    with pytest.raises(InvalidValueError, match="plain folder name"):
        lf.copy_run("latest", to=tmp_path, rename="../out")
    with pytest.raises(InvalidValueError, match="its own folder"):
        lf.copy_run("latest", to=record["path"])
    with pytest.raises(lf.RunNotFoundError):
        lf.copy_run("nope", to=tmp_path)
    done = layerflow_cli("runs", "copy", "latest", str(tmp_path / "cli"), "--rename", "baseline", cwd=runs_dir.parent)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "cli" / "baseline" / "source" / "train.py").is_file()
    assert sorted(p.name for p in runs_dir.iterdir() if p.is_dir()) == [record["id"]]  # nothing new filed


def test_the_store_is_the_one_writer_of_the_run_lifecycle(runs_dir, tmp_path):
    from layerflow.runs.archive import pack_run
    from layerflow.runs.ids import RunExistsError

    store = RunStore(runs_dir)
    run_id, run_dir = store.open_run(
        tmp_path / "train.py",
        args=["-v"],
        requested_flags={"units": "4"},
        properties={"trial": 1},
        remote={"transport": "ray-job", "address": "x"},
    )
    opened = json.loads((run_dir / "run.json").read_text())
    assert opened["status"] == "running" and opened["remote"]["address"] == "x" and "driver_pid" not in opened
    assert lf.ls_runs()["status"].tolist() == ["running"]  # indexed at once
    with pytest.raises(RunExistsError):
        store.open_run(tmp_path / "train.py", run_id=run_id)
    store.update_run(run_dir, remote={"transport": "ray-job", "address": "x", "job_id": "job1"})
    # A run made elsewhere under the same id comes back as an archive and is filed in place.
    elsewhere = RunStore(tmp_path / "remote-runs")
    _, remote_dir = elsewhere.open_run(tmp_path / "train.py", run_id=run_id)
    (remote_dir / "metrics.jsonl").write_text('{"epoch": 1, "loss": 0.5}\n')
    filed_remote = elsewhere.finish_run(remote_dir, "completed")
    assert filed_remote["metrics"] == {"loss": 0.5}
    record = store.file_returned_run(run_dir, pack_run(remote_dir))
    assert record["status"] == "completed" and record["metrics"] == {"loss": 0.5}
    assert record["remote"]["job_id"] == "job1" and record["remote"]["host"] == filed_remote["host"]
    finished = store.finish_run(run_dir, "interrupted", "stopped by the user")
    assert finished["status"] == "interrupted" and finished["end"] and finished["metrics"] == {"loss": 0.5}
    assert lf.run_info(run_id)["status"] == "interrupted"


WRITES_FILES = """
    import os
    from pathlib import Path
    import layerflow as lf

    FLAGS = lf.flags(rows=3)
    Path("results.csv").write_text("a,b\\n" + "1,2\\n" * FLAGS.rows)
    Path("plots_here").mkdir(exist_ok=True)
    Path("plots_here/curve.svg").write_text("<svg/>")
    Path("scratch.bin").write_bytes(b"ignored by .gitignore")
    Path("changed.txt").write_text("changed by the run")
    with open("huge.dat", "wb") as stream:  # sparse: over the per-file cap without using the disk
        stream.truncate(60 * 1024 * 1024)
"""


def test_files_written_in_the_working_directory_are_kept(runs_dir, write_script, tmp_path):
    script = write_script(WRITES_FILES)
    (tmp_path / ".gitignore").write_text("*.bin\n")
    (tmp_path / "unchanged.txt").write_text("there before")
    (tmp_path / "changed.txt").write_text("there before")
    record = lf.training_run(script, echo=False)
    assert record["status"] == "completed", record.get("error")
    outputs = Path(record["path"]) / "outputs"
    assert sorted(record["outputs"]) == ["changed.txt", "plots_here/curve.svg", "results.csv"]
    assert record["outputs_skipped"] == ["huge.dat"]
    assert (outputs / "results.csv").read_text().count("1,2") == 3
    assert (outputs / "changed.txt").read_text() == "changed by the run"
    assert not (outputs / "scratch.bin").exists() and not (outputs / "unchanged.txt").exists()
    assert not (outputs / "runs").exists() and not (outputs / "project").exists()  # the run itself, the source
    html = lf.view_run("latest", out=tmp_path / "report.html").read_text()
    assert "Files written" in html and "plots_here/curve.svg" in html and "huge.dat" in html


@pytest.mark.slow
def test_flags_from_a_file_and_named_profiles(runs_dir, write_script, tmp_path):
    from layerflow.errors import InvalidTypeError

    script = write_script("""
        import layerflow as lf
        FLAGS = lf.flags(units=8, dropout=0.5, name="base")
        print("resolved", dict(FLAGS), FLAGS.to_frame().set_index("name")["source"].to_dict())
    """)
    (script.parent / "flags.yml").write_text("default:\n  units: 16\n  dropout: 0.4\nproduction:\n  units: 512\n")
    (tmp_path / "tuned.yml").write_text("dropout: 0.25\nname: tuned\n")
    record = lf.training_run(script, flags=tmp_path / "tuned.yml", command_line_flags={"name": "cli"}, echo=False)
    assert record["flags"] == {"units": 16, "dropout": 0.25, "name": "cli"}  # --flag beats the file
    assert record["flags_file"] == str(tmp_path / "tuned.yml")
    record = lf.training_run(script, config="production", echo=False)
    assert record["flags"] == {"units": 512, "dropout": 0.4, "name": "base"} and record["config"] == "production"
    assert (
        "'units': 'flags.yml[production]', 'dropout': 'flags.yml'" in (Path(record["path"]) / "output.log").read_text()
    )
    done = layerflow_cli(
        "run", str(script), "--flags-file", str(tmp_path / "tuned.yml"), "--config", "production", cwd=runs_dir.parent
    )
    assert done.returncode == 0, done.stderr
    assert lf.run_info("latest")["flags"] == {"units": 512, "dropout": 0.25, "name": "tuned"}

    before = len(lf.ls_runs())
    failed = lf.training_run(script, config="staging", echo=False)  # checked by the script: the run fails
    assert (
        failed["status"] == "failed" and "no profile 'staging'" in failed["error"] and "production" in failed["error"]
    )
    (tmp_path / "nested.yml").write_text("units: [1, 2]\n")
    for flags, error, message in [
        (tmp_path / "missing.yml", lf.FlagError, "does not exist"),
        (tmp_path / "nested.yml", lf.FlagError, "one plain value per flag"),
        (42, InvalidTypeError, "got a int"),
    ]:
        with pytest.raises(error, match=message):
            lf.training_run(script, flags=flags, echo=False)
    assert len(lf.ls_runs()) == before + 1  # refused calls make no run
    done = layerflow_cli("run", str(script), "--flags-file", str(tmp_path / "nested.yml"), cwd=runs_dir.parent)
    assert done.returncode == 2 and "one plain value per flag" in done.stderr


SEEDED = """
    import numpy as np
    import layerflow as lf
    from layerflow import keras

    FLAGS = lf.flags(units=4, epochs=2)
    keras.utils.set_random_seed(1)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3)).astype("float32")
    y = (x.sum(axis=1) > 0).astype("int64")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(FLAGS.units, activation="relu"),
                              keras.layers.Dense(2, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    model.fit(x, y, epochs=FLAGS.epochs, batch_size=16, verbose=0, shuffle=False)
    model.evaluate(x, y, verbose=0)
"""


@pytest.mark.slow
def test_rerun_repeats_a_run_from_its_snapshot_and_checks_it(runs_dir, write_script, tmp_path):
    script = write_script(SEEDED)
    original = lf.training_run(script, flags={"units": 6}, echo=False)
    assert original["status"] == "completed", original.get("error")
    script.write_text("raise SystemExit('the script changed since')\n")  # the rerun uses the snapshot
    again = lf.rerun(original["id"], check=True, echo=False)
    assert again["status"] == "completed" and again["id"] != original["id"]
    assert again["properties"]["rerun_of"] == original["id"] and again["flags"]["units"] == 6
    assert again["source_hash"] == original["source_hash"] and again["script"] == original["script"]
    assert again["check"]["matches"], again["check"]
    assert {r["name"] for r in again["check"]["differences"]} >= {"metric_loss", "eval_accuracy"}
    assert json.loads((Path(original["path"]) / "run.json").read_text())["status"] == "completed"  # untouched

    # A run whose metrics differ is reported, with the difference.
    metrics = Path(original["path"]) / "metrics.jsonl"
    metrics.write_text(metrics.read_text().replace('"loss": ', '"loss": 1').replace("\n{", "\n{"))
    done = layerflow_cli("rerun", original["id"], "--check", cwd=runs_dir.parent)
    assert done.returncode == 1 and "differs from" in done.stderr and "! metric_loss" in done.stderr
    done = layerflow_cli("rerun", "nope", cwd=runs_dir.parent)
    assert done.returncode == 2 and "No run 'nope'" in done.stderr
    (Path(original["path"]) / "source" / "train.py").unlink()
    with pytest.raises(lf.LayerflowError, match="no snapshot of its script"):
        lf.rerun(original["id"])


@pytest.mark.slow
def test_a_huge_working_directory_is_not_watched(runs_dir, write_script, tmp_path):
    from layerflow.runs.outputs import MAX_WATCHED_FILES

    crowd = tmp_path / "crowd"
    crowd.mkdir()
    for i in range(MAX_WATCHED_FILES + 1):
        (crowd / f"{i}.txt").touch()
    record = lf.training_run(write_script('open("result.txt", "w").write("x")\n'), echo=False)
    assert record["status"] == "completed" and record["outputs"] == []
    assert "holds over 20000 files" in record["outputs_note"]
