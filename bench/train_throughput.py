"""Training, evaluation and prediction throughput (samples/s) on Fashion-MNIST, interleaved.

Engines, each in its own long-lived process (a Keras backend is fixed per process):
  keras-torch       layerflow's default: Keras on torch with layerflow's fast path
  keras-torch-slow  the same with LAYERFLOW_FAST_FIT=0 (Keras's own per-step Python)
  keras-jax         Keras on JAX (XLA-compiled steps)
  torch-loop        a hand-written PyTorch loop over the same architecture (the engine's limit)

The driver asks each process in turn for one epoch of fit (then one evaluate, one predict
pass), round after round, so all engines see the same load on a shared machine; the ratio to
the torch loop is taken within each round and its median and range over the rounds are
reported. Batch 128. One-time costs (tracing, JIT) are measured apart: the first epoch's
extra seconds and the fast path's own trace time, set against one full 54,000-sample
Fashion-MNIST epoch.

    .venv/bin/python bench/train_throughput.py [--rounds 3] [--mlp-samples 30000] [--cnn-samples 8000]
        [--engines keras-torch,torch-loop] [--threads 1] [--profile]

Every engine gets the same number of intra-op threads (--threads, default 1): on a machine
shared with other jobs, two OpenMP threads per process make torch's kernels stall at random
(one fit epoch measured anywhere from 2x to 50x slower), which no interleaving evens out.
--threads 0 leaves each library's default.

Writes bench/results/train_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "train_throughput.json"
BATCH = 128
FULL_EPOCH = 54_000  # the examples' training split (60,000 less 10% validation)
ENGINES = ("keras-torch", "keras-torch-slow", "keras-jax", "torch-loop")
OPS = ("fit", "evaluate", "predict")


def load(samples: int, model: str):
    import numpy as np

    import layerflow as lf

    (x, y), _ = lf.datasets.fashion_mnist()
    x = x[:samples].astype(np.float32) / 255.0
    y = y[:samples].astype(np.int64)
    if model == "mlp":
        return x.reshape(len(x), 784), y
    return x[:, None, :, :], y  # channels-first, as examples/fashion_mnist_cnn.py


def keras_model(kind: str):
    from layerflow import keras

    if kind == "mlp":
        layers = [
            keras.Input((784,)),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.Dropout(0.3),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dropout(0.3),
        ]
    else:
        layout = "channels_first"
        layers = [
            keras.Input((1, 28, 28)),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu", data_format=layout),
            keras.layers.MaxPooling2D(2, data_format=layout),
            keras.layers.Conv2D(64, 3, padding="same", activation="relu", data_format=layout),
            keras.layers.MaxPooling2D(2, data_format=layout),
            keras.layers.Flatten(),
            keras.layers.Dropout(0.3),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dropout(0.3),
        ]
    model = keras.Sequential(layers + [keras.layers.Dense(10, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model


class KerasEngine:
    def __init__(self, kind: str, samples: int, profile: bool) -> None:
        self.x, self.y = load(samples, kind)
        self.model = keras_model(kind)
        self.profile = profile

    def fit(self) -> float:
        start = time.perf_counter()
        if self.profile:
            import cProfile
            import pstats

            profiler = cProfile.Profile()
            profiler.enable()
        self.model.fit(self.x, self.y, batch_size=BATCH, epochs=1, verbose=0, shuffle=True)
        if self.profile:
            profiler.disable()
            pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(25)
            self.profile = False
        return time.perf_counter() - start

    def evaluate(self) -> float:
        start = time.perf_counter()
        self.model.evaluate(self.x, self.y, batch_size=BATCH, verbose=0)
        return time.perf_counter() - start

    def predict(self) -> float:
        start = time.perf_counter()
        self.model.predict(self.x, batch_size=BATCH, verbose=0)
        return time.perf_counter() - start

    def one_time(self) -> dict:
        from layerflow import keras

        if keras.backend.backend() != "torch":
            return {}
        from layerflow.fastfit import fast_fit_status, one_time_seconds

        return {"trace_seconds": one_time_seconds(self.model), "status": fast_fit_status(self.model)}


class TorchLoop:
    def __init__(self, kind: str, samples: int, profile: bool) -> None:
        import torch
        from torch import nn

        x, y = load(samples, kind)
        self.x, self.y = torch.from_numpy(x), torch.from_numpy(y)
        if kind == "mlp":
            self.model = nn.Sequential(
                nn.Linear(784, 256),
                nn.ReLU(),
                nn.Dropout(0.3),
                nn.Linear(256, 128),
                nn.ReLU(),
                nn.Dropout(0.3),
                nn.Linear(128, 10),
            )
        else:
            self.model = nn.Sequential(
                nn.Conv2d(1, 32, 3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Conv2d(32, 64, 3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Flatten(),
                nn.Dropout(0.3),
                nn.Linear(64 * 7 * 7, 128),
                nn.ReLU(),
                nn.Dropout(0.3),
                nn.Linear(128, 10),
            )
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.loss_fn = nn.CrossEntropyLoss()

    def fit(self) -> float:
        import torch

        start = time.perf_counter()
        order = torch.randperm(len(self.x))
        correct = 0
        self.model.train()
        for i in range(0, len(self.x), BATCH):
            index = order[i : i + BATCH]
            xb, yb = self.x[index], self.y[index]
            self.optimizer.zero_grad()
            logits = self.model(xb)
            loss = self.loss_fn(logits, yb)
            loss.backward()
            self.optimizer.step()
            correct += (logits.argmax(1) == yb).sum().item()  # the same accuracy metric Keras computes
        return time.perf_counter() - start

    def evaluate(self) -> float:
        import torch

        start = time.perf_counter()
        self.model.eval()
        total = correct = 0.0
        with torch.no_grad():
            for i in range(0, len(self.x), BATCH):
                xb, yb = self.x[i : i + BATCH], self.y[i : i + BATCH]
                logits = self.model(xb)
                total += self.loss_fn(logits, yb).item() * len(xb)
                correct += (logits.argmax(1) == yb).sum().item()
        return time.perf_counter() - start

    def predict(self) -> float:
        import numpy as np
        import torch

        start = time.perf_counter()
        self.model.eval()
        with torch.no_grad():
            outputs = [torch.softmax(self.model(self.x[i : i + BATCH]), 1) for i in range(0, len(self.x), BATCH)]
        np.concatenate([o.numpy() for o in outputs])
        return time.perf_counter() - start

    def one_time(self) -> dict:
        return {}


def worker(args) -> None:
    """Serves one engine: reads an op per line on stdin, answers '@@' + JSON on stdout."""
    if args.threads and args.engine != "keras-jax":
        import torch

        torch.set_num_threads(args.threads)
    engine = (TorchLoop if args.engine == "torch-loop" else KerasEngine)(args.model, args.samples, args.profile)
    first = engine.fit()  # the first epoch: tracing / JIT / allocator warm-up included
    engine.evaluate(), engine.predict()
    print("@@" + json.dumps({"first_fit": first, **engine.one_time()}), flush=True)
    for line in sys.stdin:
        op = line.strip()
        if not op:
            continue
        if op == "quit":
            break
        print("@@" + json.dumps({"seconds": getattr(engine, op)()}), flush=True)


class Worker:
    def __init__(self, engine: str, model: str, samples: int, profile: bool, threads: int) -> None:
        env = dict(os.environ)
        if threads:
            env["XLA_FLAGS"] = (
                env.get("XLA_FLAGS", "") + f" --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads={threads}"
            ).strip()
            env["OMP_NUM_THREADS"] = str(threads)
        if engine.startswith("keras-"):
            env["KERAS_BACKEND"] = "jax" if engine == "keras-jax" else "torch"
        env["LAYERFLOW_FAST_FIT"] = "0" if engine == "keras-torch-slow" else "1"
        command = [
            sys.executable,
            __file__,
            "--worker",
            "--engine",
            engine,
            "--model",
            model,
            "--samples",
            str(samples),
            "--threads",
            str(threads),
        ] + (["--profile"] if profile else [])
        self.name = engine
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self.setup = self._reply()

    def _reply(self) -> dict:
        for line in self.process.stdout:
            if line.startswith("@@"):
                return json.loads(line[2:])
        raise RuntimeError(f"{self.name} worker ended (exit {self.process.wait()})")

    def ask(self, op: str) -> float:
        self.process.stdin.write(op + "\n")
        self.process.stdin.flush()
        return self._reply()["seconds"]

    def close(self) -> None:
        self.process.stdin.write("quit\n")
        self.process.stdin.close()
        self.process.wait()


def measure_model(model: str, samples: int, rounds: int, engines: list[str], profile: bool, threads: int) -> dict:
    workers = {}
    for engine in engines:  # started one at a time, so that set-up costs do not overlap
        workers[engine] = Worker(engine, model, samples, profile and engine == "keras-torch", threads)
    seconds = {engine: {op: [] for op in OPS} for engine in engines}
    for _ in range(rounds):
        for op in OPS:
            for engine in engines:
                seconds[engine][op].append(workers[engine].ask(op))
    for w in workers.values():
        w.close()
    result = {"model": model, "samples": samples, "rounds": rounds, "engines": {}}
    for engine in engines:
        rates = {op: [samples / s for s in seconds[engine][op]] for op in OPS}
        entry = {
            "seconds": seconds[engine],
            "samples_per_second": {op: statistics.median(r) for op, r in rates.items()},
            "first_fit_seconds": workers[engine].setup["first_fit"],
            "steady_fit_seconds": statistics.median(seconds[engine]["fit"]),
        }
        entry.update({k: v for k, v in workers[engine].setup.items() if k != "first_fit"})
        if "torch-loop" in engines:
            loop = seconds["torch-loop"]
            entry["ratio_to_loop"] = {op: [lo / s for s, lo in zip(seconds[engine][op], loop[op])] for op in OPS}
            entry["best_ratio_to_loop"] = {op: min(loop[op]) / min(seconds[engine][op]) for op in OPS}
        result["engines"][engine] = entry
    return result


def print_table(results: list[dict], engines: list[str]) -> None:
    print(
        "\nsamples/s (median of rounds); ratio to the torch loop: median of the per-round ratios "
        "[min-max], and best epoch / best epoch"
    )
    print(
        f"{'model':5} {'op':9} "
        + " ".join(f"{e:>16}" for e in engines)
        + "   "
        + " ".join(f"{e + '/loop':>30}" for e in engines if e != "torch-loop")
    )
    for result in results:
        for op in OPS:
            rates = " ".join(f"{result['engines'][e]['samples_per_second'][op]:16,.0f}" for e in engines)
            ratios = ""
            if "torch-loop" in engines:
                cells = []
                for e in engines:
                    if e == "torch-loop":
                        continue
                    r = result["engines"][e]["ratio_to_loop"][op]
                    best = result["engines"][e]["best_ratio_to_loop"][op]
                    cells.append(f"{statistics.median(r):.2f}x [{min(r):.2f}-{max(r):.2f}] {best:.2f}x".rjust(30))
                ratios = " ".join(cells)
            print(f"{result['model']:5} {op:9} {rates}   {ratios}")
    print("\none-time costs (first epoch of this run less a steady epoch; the fast path's own trace time):")
    for result in results:
        for e in engines:
            entry = result["engines"][e]
            extra = entry["first_fit_seconds"] - entry["steady_fit_seconds"]
            full_epoch = FULL_EPOCH / entry["samples_per_second"]["fit"]
            trace = entry.get("trace_seconds", {})
            traced = (
                f"; traced fit {trace.get('train', 0):.2f} s, evaluate {trace.get('test', 0):.2f} s, "
                f"predict {trace.get('predict', 0):.2f} s"
                if trace
                else ""
            )
            print(
                f"  {result['model']:4} {e:16} first epoch +{extra:6.2f} s{traced}; "
                f"a full Fashion-MNIST epoch takes {full_epoch:6.1f} s"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mlp-samples", type=int, default=30000)
    parser.add_argument("--cnn-samples", type=int, default=8000)
    parser.add_argument("--models", default="mlp,cnn")
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads per engine (0: library default)")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of one keras-torch epoch")
    parser.add_argument("--results", default=str(RESULTS), help="where to write the JSON results")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--engine", default="keras-torch", help=argparse.SUPPRESS)
    parser.add_argument("--model", default="mlp", help=argparse.SUPPRESS)
    parser.add_argument("--samples", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    engines = [e for e in args.engines.split(",") if e]
    unknown = set(engines) - set(ENGINES)
    if unknown:
        parser.error(f"unknown engines {sorted(unknown)}; expected some of {', '.join(ENGINES)}")
    results = []
    for model in args.models.split(","):
        samples = args.mlp_samples if model == "mlp" else args.cnn_samples
        results.append(measure_model(model, samples, args.rounds, engines, args.profile, args.threads))
        print(f"{model}: done", flush=True)
    print_table(results, engines)
    results_path = Path(args.results)
    results_path.parent.mkdir(parents=True, exist_ok=True)
    import torch

    results_path.write_text(
        json.dumps(
            {
                "batch_size": BATCH,
                "cpus": os.cpu_count(),
                "threads": args.threads,
                "torch": torch.__version__,
                "results": results,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
