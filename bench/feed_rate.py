"""Does the lf.data pipeline keep up with training? Fashion-MNIST MLP, side by side in one run.

  feeding   samples/s the pipeline alone delivers (from_arrays -> shuffle -> batch -> prepare)
  training  samples/s of model.fit on the same batches given as numpy arrays (Keras' own feed)
  fit(ds)   samples/s of model.fit fed by the pipeline

The pipeline is never the bottleneck when feeding >> training and fit(ds) ~ training.

    .venv/bin/python bench/feed_rate.py [--epochs 3]

Writes bench/results/feed_rate.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

import layerflow as lf
from layerflow import keras

RESULTS = Path(__file__).parent / "results" / "feed_rate.json"
BATCH = 128


def mlp():
    model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(256, activation="relu"),
                              keras.layers.Dropout(0.3), keras.layers.Dense(128, activation="relu"),
                              keras.layers.Dropout(0.3), keras.layers.Dense(10, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    (x, y), _ = lf.datasets.fashion_mnist()
    x = x.reshape(len(x), 784).astype(np.float32) / 255.0
    y = y.astype(np.int64)
    n = len(x)
    pipeline = lf.data.from_arrays(x, y).shuffle(10_000, seed=1).batch(BATCH).prepare(x="x", y="y").prefetch(4)

    feeding = []
    for _ in range(args.epochs):
        start = time.perf_counter()
        for _ in pipeline:
            pass
        feeding.append(n / (time.perf_counter() - start))

    def fit_rate(data, **kwargs) -> float:
        model = mlp()
        model.fit(x[:1024], y[:1024], batch_size=BATCH, epochs=1, verbose=0)  # warm-up
        rates = []
        for _ in range(args.epochs):
            start = time.perf_counter()
            model.fit(*data, epochs=1, verbose=0, **kwargs)
            rates.append(n / (time.perf_counter() - start))
        return statistics.median(rates)

    training = fit_rate((x, y), batch_size=BATCH, shuffle=True)
    from_pipeline = fit_rate((pipeline,))
    result = {"feeding_samples_per_s": statistics.median(feeding), "fit_arrays_samples_per_s": training,
              "fit_dataset_samples_per_s": from_pipeline}
    result["feeding_over_training"] = result["feeding_samples_per_s"] / training
    result["fit_dataset_over_fit_arrays"] = from_pipeline / training
    print(f"pipeline alone     {result['feeding_samples_per_s']:10,.0f} samples/s")
    print(f"fit(numpy arrays)  {training:10,.0f} samples/s")
    print(f"fit(lf.data)       {from_pipeline:10,.0f} samples/s")
    print(f"feeding / training = {result['feeding_over_training']:.1f}x; "
          f"fit(lf.data) / fit(arrays) = {result['fit_dataset_over_fit_arrays']:.2f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
