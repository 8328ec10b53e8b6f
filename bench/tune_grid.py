"""Wall time of a 12-trial grid: local processes vs a local Ray cluster, 1 and 2 trials at a time.

The trial is a small Keras model (an MLP on scikit-learn's digits, 5 epochs). Each
transport runs the same grid (units x dropout x learning rate = 3 x 2 x 2); the
per-trial overhead of a transport is its sequential wall time per trial minus the time
of the same script run plainly with python (the median of three plain runs).

    .venv/bin/python bench/tune_grid.py [--epochs 5]

Writes bench/results/tune_grid.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "tune_grid.json"
GRID = ["--grid", "units=32,64,128", "--grid", "dropout=0.1,0.3", "--grid", "learning_rate=0.001,0.003"]
TRIALS = 12

SCRIPT = """
    import layerflow as lf
    from layerflow import keras

    FLAGS = lf.flags(units=64, dropout=0.2, learning_rate=0.001, epochs={epochs})
    (x_train, y_train), (x_test, y_test) = lf.datasets.digits()
    model = keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(FLAGS.units, activation="relu"),
        keras.layers.Dropout(FLAGS.dropout),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  optimizer=keras.optimizers.Adam(FLAGS.learning_rate))
    x_train, x_test = x_train.reshape(-1, 64) / 16, x_test.reshape(-1, 64) / 16
    model.fit(x_train, y_train, epochs=FLAGS.epochs, batch_size=64, validation_split=0.2, verbose=2)
    model.evaluate(x_test, y_test, verbose=0)
"""


def timed(command: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        (folder / "project").mkdir()
        script = folder / "project" / "train.py"
        script.write_text(textwrap.dedent(SCRIPT.format(epochs=args.epochs)))
        timed([sys.executable, str(script)], folder)  # warm the file cache first
        plain = statistics.median(timed([sys.executable, str(script)], folder) for _ in range(3))
        print(f"plain script: {plain:.2f} s", flush=True)
        for transport, address in (("local", []), ("ray", ["--address", "local"])):
            for parallel in (1, 2):
                runs_dir = folder / f"runs-{transport}-{parallel}"
                command = [
                    sys.executable,
                    "-m",
                    "layerflow.cli",
                    "tune",
                    str(script),
                    *GRID,
                    "--parallel",
                    str(parallel),
                    "--metric",
                    "eval_accuracy",
                    "--runs-dir",
                    str(runs_dir),
                    *address,
                ]
                wall = timed(command, folder)
                statuses = [json.loads(p.read_text())["status"] for p in runs_dir.glob("*/run.json")]
                if statuses.count("completed") != TRIALS:
                    errors = {json.loads(p.read_text()).get("error") for p in runs_dir.glob("*/run.json")}
                    raise SystemExit(
                        f"{transport} x{parallel}: expected {TRIALS} completed trials, got {statuses}: {errors}"
                    )
                results[f"{transport}_parallel{parallel}_s"] = wall
                print(
                    f"{transport:5s} parallel {parallel}: {wall:7.1f} s  ({wall / TRIALS:.2f} s per trial)", flush=True
                )

    table = {
        transport: {
            "sequential_s": results[f"{transport}_parallel1_s"],
            "parallel2_s": results[f"{transport}_parallel2_s"],
            "speedup_parallel2": results[f"{transport}_parallel1_s"] / results[f"{transport}_parallel2_s"],
            "overhead_per_trial_s": results[f"{transport}_parallel1_s"] / TRIALS - plain,
        }
        for transport in ("local", "ray")
    }
    print("\n| transport | 12 trials, 1 at a time | 2 at a time | speedup | overhead per trial |")
    print("|---|---|---|---|---|")
    for transport, row in table.items():
        print(
            f"| {transport} | {row['sequential_s']:.1f} s | {row['parallel2_s']:.1f} s | "
            f"{row['speedup_parallel2']:.2f}x | {row['overhead_per_trial_s']:.2f} s |"
        )
    ratio = table["ray"]["sequential_s"] / table["local"]["sequential_s"]
    print(
        f"\nplain script {plain:.2f} s; Ray/local wall time, sequential: {ratio:.2f}x "
        "(Ray's includes starting the local cluster)"
    )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "epochs": args.epochs,
                "trials": TRIALS,
                "plain_script_s": plain,
                "transports": table,
                "ray_over_local_sequential": ratio,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
