"""Training throughput (samples/s of one epoch) on Fashion-MNIST, side by side in one run.

Engines: layerflow's Keras on the torch backend, Keras on JAX, and a hand-written PyTorch
loop of the same architecture (the engine's limit). Each engine runs in its own process
(a Keras backend is fixed per process). Batch 128; the median of the timed epochs is kept.

    .venv/bin/python bench/train_throughput.py [--samples 30000] [--epochs 3] [--profile]

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


def load(samples: int, model: str):
    import numpy as np

    import layerflow as lf

    (x, y), _ = lf.datasets.fashion_mnist()
    x = x[:samples].astype(np.float32) / 255.0
    y = y[:samples].astype(np.int64)
    if model == "mlp":
        return x.reshape(len(x), 784), y
    return x[:, None, :, :], y  # channels-first


def keras_model(kind: str, layout: str):
    from layerflow import keras

    if kind == "mlp":
        layers = [keras.Input((784,)), keras.layers.Dense(256, activation="relu"), keras.layers.Dropout(0.3),
                  keras.layers.Dense(128, activation="relu"), keras.layers.Dropout(0.3)]
    else:
        shape = (1, 28, 28) if layout == "channels_first" else (28, 28, 1)
        layers = [keras.Input(shape),
                  keras.layers.Conv2D(32, 3, padding="same", activation="relu", data_format=layout),
                  keras.layers.MaxPooling2D(2, data_format=layout),
                  keras.layers.Conv2D(64, 3, padding="same", activation="relu", data_format=layout),
                  keras.layers.MaxPooling2D(2, data_format=layout),
                  keras.layers.Flatten(), keras.layers.Dropout(0.3),
                  keras.layers.Dense(128, activation="relu"), keras.layers.Dropout(0.3)]
    model = keras.Sequential(layers + [keras.layers.Dense(10, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model


def run_keras(kind: str, samples: int, epochs: int, layout: str, profile: bool) -> list[float]:
    import numpy as np

    x, y = load(samples, kind)
    if kind == "cnn" and layout == "channels_last":
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    model = keras_model(kind, layout)
    model.fit(x[: BATCH * 4], y[: BATCH * 4], batch_size=BATCH, epochs=1, verbose=0)  # warm-up
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        if profile:
            import cProfile
            import pstats

            profiler = cProfile.Profile()
            profiler.enable()
        model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, shuffle=True)
        if profile:
            profiler.disable()
            pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(25)
            profile = False
        times.append(time.perf_counter() - start)
    return times


def run_torch_loop(kind: str, samples: int, epochs: int) -> list[float]:
    import torch
    from torch import nn

    x, y = load(samples, kind)
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    if kind == "mlp":
        model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Dropout(0.3), nn.Linear(256, 128), nn.ReLU(),
                              nn.Dropout(0.3), nn.Linear(128, 10))
    else:
        model = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                              nn.Dropout(0.3), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Dropout(0.3),
                              nn.Linear(128, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    times = []
    for epoch in range(epochs + 1):
        start = time.perf_counter()
        order = torch.randperm(len(x))
        correct = 0
        model.train()
        for i in range(0, len(x), BATCH):
            index = order[i:i + BATCH]
            xb, yb = x[index], y[index]
            optimizer.zero_grad()
            logits = model(xb)
            loss = loss_fn(logits, yb)
            loss.backward()
            optimizer.step()
            correct += (logits.argmax(1) == yb).sum().item()  # the same accuracy metric Keras computes
        if epoch:  # the first epoch is the warm-up
            times.append(time.perf_counter() - start)
    return times


def worker(args) -> None:
    if args.engine == "torch-loop":
        times = run_torch_loop(args.model, args.samples, args.epochs)
    else:
        times = run_keras(args.model, args.samples, args.epochs, args.layout, args.profile)
    print(json.dumps({"times": times}))


def measure(engine: str, model: str, samples: int, epochs: int, layout: str = "channels_first",
            profile: bool = False) -> dict:
    env = dict(os.environ)
    if engine.startswith("keras-"):
        env["KERAS_BACKEND"] = engine.removeprefix("keras-")
    command = [sys.executable, __file__, "--worker", "--engine", engine, "--model", model, "--samples",
               str(samples), "--epochs", str(epochs), "--layout", layout] + (["--profile"] if profile else [])
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{engine} {model} failed:\n{done.stderr[-3000:]}")
    if profile:
        print(done.stderr, file=sys.stderr)
    times = json.loads(done.stdout.strip().splitlines()[-1])["times"]
    median = statistics.median(times)
    return {"engine": engine, "model": model, "layout": layout, "samples": samples,
            "epoch_seconds": times, "samples_per_second": samples / median}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=30000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="print a cProfile of one Keras-torch epoch")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--engine", default="keras-torch")
    parser.add_argument("--model", default="mlp")
    parser.add_argument("--layout", default="channels_first")
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    rows = []
    for model in ("mlp", "cnn"):
        for engine in ("keras-torch", "keras-jax", "torch-loop"):
            rows.append(measure(engine, model, args.samples, args.epochs,
                                profile=args.profile and engine == "keras-torch"))
            print(f"{model:4} {engine:12} {rows[-1]['samples_per_second']:10,.0f} samples/s", flush=True)
    rows.append(measure("keras-torch", "cnn", args.samples, args.epochs, layout="channels_last"))
    print(f"cnn  keras-torch  {rows[-1]['samples_per_second']:10,.0f} samples/s (channels_last)")

    rate = {(r["engine"], r["model"], r["layout"]): r["samples_per_second"] for r in rows}
    print("\nmodel  keras-torch   keras-jax  torch-loop   torch/loop  jax/loop")
    for model in ("mlp", "cnn"):
        kt, kj, loop = (rate[(e, model, "channels_first")] for e in ("keras-torch", "keras-jax", "torch-loop"))
        print(f"{model:5} {kt:11,.0f} {kj:11,.0f} {loop:11,.0f}   {kt / loop:9.2f}x {kj / loop:8.2f}x")
    first, last = rate[("keras-torch", "cnn", "channels_first")], rate[("keras-torch", "cnn", "channels_last")]
    print(f"cnn on keras-torch: channels_first / channels_last = {first / last:.2f}x")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"batch_size": BATCH, "cpus": os.cpu_count(), "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
