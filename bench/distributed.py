"""Data-parallel Keras on Ray Train against one process, side by side in one run (CPU, gloo).

  allreduce  time per step spent in the gradient all-reduce (fastfit/distributed.py's
             average_gradients, timed on rank 0) for an MLP on 2 CPU workers
  throughput samples/s of `fit` on 2 workers x 1 torch thread (`lf.training_run(workers=2)`,
             global batch B) against 1 process x 2 threads (batch B), on the same 2 cores
             (and 1 process x 1 thread, for reference);
             the epochs after the first (which traces the step) are timed

    .venv/bin/python bench/distributed.py [--samples 20000] [--batch 256] [--epochs 3] [--hidden 256]

Writes bench/results/distributed.json. Needs `pip install 'layerflow[ray]'`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "distributed.json"

SCRIPT = textwrap.dedent("""
    import json, os, sys, time
    import numpy as np
    import torch
    torch.set_num_threads(int(os.environ["BENCH_THREADS"]))
    from layerflow import keras
    from layerflow.fastfit import distributed

    samples, batch, epochs, hidden = (int(v) for v in sys.argv[1:5])
    spent = {"allreduce": 0.0, "steps": 0}
    average = distributed.average_gradients

    def timed_average(grads):
        start = time.perf_counter()
        average(grads)
        spent["allreduce"] += time.perf_counter() - start
        spent["steps"] += 1

    distributed.average_gradients = timed_average
    rng = np.random.default_rng(0)
    x = rng.normal(size=(samples, 784)).astype("float32")
    y = rng.integers(0, 10, size=samples).astype("int32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(hidden, activation="relu"),
                              keras.layers.Dense(hidden, activation="relu"), keras.layers.Dense(10)])
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    times = []

    class EpochTimes(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()
        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.start)

    model.fit(x, y, batch_size=batch, epochs=epochs, verbose=0, callbacks=[EpochTimes()])
    import torch.distributed as dist
    if not dist.is_initialized() or dist.get_rank() == 0:
        timed = sum(times[1:])
        print("BENCH " + json.dumps({"samples_per_s": samples * (epochs - 1) / timed, "epoch_s": times,
                                      "allreduce_s_per_step": spent["allreduce"] / max(spent["steps"], 1),
                                      "steps": spent["steps"]}), flush=True)
""")


def _result(text: str) -> dict:
    line = next(line for line in text.splitlines() if line.startswith("BENCH "))
    return json.loads(line[len("BENCH ") :])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--hidden", type=int, default=256)
    options = parser.parse_args()
    args = [str(v) for v in (options.samples, options.batch, options.epochs, options.hidden)]
    import layerflow as lf

    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "mlp.py"
        script.write_text(SCRIPT)
        single = {}
        for threads in ("2", "1"):  # 1 thread: a reference for how loaded the cores are
            env = {**os.environ, "KERAS_BACKEND": "torch", "BENCH_THREADS": threads}
            single[threads] = _result(
                subprocess.run(
                    [sys.executable, str(script), *args], env=env, check=True, capture_output=True, text=True
                ).stdout
            )
        one = single["2"]
        os.environ["BENCH_THREADS"] = "1"
        started = time.perf_counter()
        run = lf.training_run(script, runs_dir=Path(folder) / "runs", workers=2, args=args, echo=False)
        wall = time.perf_counter() - started
        if run["status"] != "completed":
            raise SystemExit(f"the distributed run {run['status']}: {run.get('error')}")
        two = _result((Path(run["path"]) / "output.log").read_text())
    results = {
        "setup": {
            **vars(options),
            "model": f"MLP 784-{options.hidden}-{options.hidden}-10, Adam",
            "cores": os.cpu_count(),
            "backend": "gloo (CPU)",
        },
        "one_process_2_threads": one,
        "one_process_1_thread": single["1"],
        "two_workers_1_thread": {**two, "run_wall_s": wall},
        "ratio_samples_per_s": two["samples_per_s"] / one["samples_per_s"],
        "allreduce_share_of_step": two["allreduce_s_per_step"] * two["samples_per_s"] / options.batch,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
