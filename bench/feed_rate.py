"""Does the lf.data pipeline keep up with training and with the parser? Side by side in one run.

CSV through a fitted feature spec (generated file: 2 float columns, 1 string column of 200
values, an int label), rows/s, each measured --rounds times, alternating, median:
  pyarrow   pyarrow.csv.open_csv streaming the file (1 MiB blocks, threads): the parser alone
  spec      spec.prepare(lf.data.csv_dataset(file, batch_size=4096)): parse + batch + encode
  epoch 1/2 the same through .cache() (in memory, then in an Arrow file): the first pass
            parses, the second replays
Fashion-MNIST MLP (skipped with --skip-mlp):
  feeding   samples/s the pipeline alone delivers (from_arrays -> shuffle -> batch -> prepare)
  training  samples/s of model.fit on the same batches given as numpy arrays (Keras' own feed)
  fit(ds)   samples/s of model.fit fed by the pipeline

    .venv/bin/python bench/feed_rate.py [--epochs 3] [--csv-rows 2000000] [--rounds 3] [--skip-mlp]

Writes bench/results/feed_rate.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

import layerflow as lf
from layerflow import keras

RESULTS = Path(__file__).parent / "results" / "feed_rate.json"
BATCH = 128


def mlp():
    model = keras.Sequential(
        [
            keras.Input((784,)),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.Dropout(0.3),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dropout(0.3),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model


def write_csv(path: Path, rows: int) -> None:
    import pyarrow as pa
    import pyarrow.csv as pcsv

    rng = np.random.default_rng(0)
    cities = np.asarray([f"city_{i:03d}" for i in range(200)], dtype=object)
    a = rng.normal(size=rows)
    pcsv.write_csv(
        pa.table(
            {
                "a": a,
                "b": rng.uniform(0, 100, rows),
                "city": cities[rng.integers(0, 200, rows)],
                "y": (a > 0).astype(np.int64),
            }
        ),
        path,
    )


def csv_rates(rows: int, rounds: int) -> dict:
    import pyarrow.csv as pcsv

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "feed.csv"
        write_csv(path, rows)
        spec = (
            lf.feature_spec(lf.data.csv_dataset(path).take(100_000), label="y")
            .numeric("a", "b", normalizer="standard")
            .categorical_vocab("city")
            .indicator("city")
            .fit()
        )

        def parse() -> int:
            count = 0
            for batch in pcsv.open_csv(path, read_options=pcsv.ReadOptions(block_size=1 << 20)):
                count += batch.num_rows
            return count

        def through_spec(dataset) -> int:
            count = 0
            for _, label in dataset:
                count += len(label)
            return count

        def timed(fn) -> float:
            start = time.perf_counter()
            assert fn() == rows
            return rows / (time.perf_counter() - start)

        runs: dict[str, list[float]] = {k: [] for k in ("pyarrow", "spec", "memory_1", "memory_2", "file_1", "file_2")}
        for round_ in range(rounds):
            runs["pyarrow"].append(timed(parse))
            runs["spec"].append(timed(lambda: through_spec(spec.prepare(lf.data.csv_dataset(path, batch_size=4096)))))
            in_memory = spec.prepare(lf.data.csv_dataset(path, batch_size=4096)).cache()
            runs["memory_1"].append(timed(lambda: through_spec(in_memory)))
            runs["memory_2"].append(timed(lambda: through_spec(in_memory)))
            on_disk = spec.prepare(lf.data.csv_dataset(path, batch_size=4096).cache(Path(tmp) / f"c{round_}.arrow"))
            runs["file_1"].append(timed(lambda: through_spec(on_disk)))
            runs["file_2"].append(timed(lambda: through_spec(on_disk)))
        rates = {k: statistics.median(v) for k, v in runs.items()}
    result = {
        "csv_rows": rows,
        "rounds": rounds,
        "rows_per_s": rates,
        "runs": runs,
        "spec_over_pyarrow": rates["spec"] / rates["pyarrow"],
        "memory_cache_epoch2_over_epoch1": rates["memory_2"] / rates["memory_1"],
        "file_cache_epoch2_over_epoch1": rates["file_2"] / rates["file_1"],
    }
    print(f"CSV, {rows:,} rows (a, b, city, y)      rows/s")
    print(f"  pyarrow streaming parse alone   {rates['pyarrow']:12,.0f}")
    print(f"  csv_dataset + fitted spec       {rates['spec']:12,.0f}   {result['spec_over_pyarrow']:.2f}x pyarrow")
    print(
        f"  cache() in memory, epoch 1 / 2  {rates['memory_1']:12,.0f} / {rates['memory_2']:,.0f}   "
        f"epoch 2 = {result['memory_cache_epoch2_over_epoch1']:.1f}x epoch 1"
    )
    print(
        f"  cache(file),       epoch 1 / 2  {rates['file_1']:12,.0f} / {rates['file_2']:,.0f}   "
        f"epoch 2 = {result['file_cache_epoch2_over_epoch1']:.1f}x epoch 1",
        flush=True,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--csv-rows", type=int, default=2_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-mlp", action="store_true")
    args = parser.parse_args()
    result = {"csv": csv_rates(args.csv_rows, args.rounds)}
    if args.skip_mlp:  # keep the MLP figures of the last full run beside the new CSV ones
        earlier = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps({**earlier, **result}, indent=2) + "\n")
        return
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
    result.update(
        {
            "feeding_samples_per_s": statistics.median(feeding),
            "fit_arrays_samples_per_s": training,
            "fit_dataset_samples_per_s": from_pipeline,
        }
    )
    result["feeding_over_training"] = result["feeding_samples_per_s"] / training
    result["fit_dataset_over_fit_arrays"] = from_pipeline / training
    print(f"pipeline alone     {result['feeding_samples_per_s']:10,.0f} samples/s")
    print(f"fit(numpy arrays)  {training:10,.0f} samples/s")
    print(f"fit(lf.data)       {from_pipeline:10,.0f} samples/s")
    print(
        f"feeding / training = {result['feeding_over_training']:.1f}x; "
        f"fit(lf.data) / fit(arrays) = {result['fit_dataset_over_fit_arrays']:.2f}"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
