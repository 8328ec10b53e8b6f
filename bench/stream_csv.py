"""Streaming a large CSV through csv_dataset + a feature spec, against pandas' chunked read_csv.

Generates a CSV of --gb gigabytes (not committed; removed afterwards), then, each in its own
process so that peak memory (max RSS) is measured apart:
  parse      layerflow csv_dataset batches      vs  pandas read_csv(chunksize=...) batches
  + spec     ... each batch encoded by a fitted feature spec (the same spec for both)
Reports rows/s, the ratio layerflow/pandas, and peak memory.

    .venv/bin/python bench/stream_csv.py [--gb 5] [--batch 4096]

Writes bench/results/stream_csv.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "stream_csv.json"
CITIES = [f"city_{i:03d}" for i in range(200)]


def generate(path: Path, gigabytes: float) -> int:
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pcsv

    rng = np.random.default_rng(0)
    target, rows, block = gigabytes * 1e9, 0, 1_000_000
    with pcsv.CSVWriter(
        path,
        pa.schema(
            [("a", pa.float64()), ("b", pa.float64()), ("c", pa.int64()), ("city", pa.string()), ("y", pa.int64())]
        ),
    ) as writer:
        while path.stat().st_size < target:
            a, b = rng.normal(size=block), rng.uniform(0, 100, block)
            table = pa.table(
                {
                    "a": a,
                    "b": b,
                    "c": rng.integers(0, 1000, block),
                    "city": np.asarray(CITIES, dtype=object)[rng.integers(0, len(CITIES), block)],
                    "y": (a + b / 50 > 1).astype(np.int64),
                }
            )
            writer.write_table(table)
            rows += block
    return rows


def fitted_spec(path: Path):
    import layerflow as lf

    sample = lf.data.csv_dataset(str(path)).take(200_000)
    return (
        lf.feature_spec(sample, label="y")
        .numeric("a", "b", "c", normalizer="standard")
        .categorical_vocab("city")
        .indicator("city")
        .fit()
    )


def worker(args) -> None:
    import numpy as np

    path = Path(args.path)
    spec = fitted_spec(path) if args.spec else None
    rows, start = 0, time.perf_counter()
    if args.engine == "layerflow":
        import layerflow as lf

        dataset = lf.data.csv_dataset(str(path), batch_size=args.batch)
        batches = spec.prepare(dataset) if spec else dataset.chunks()
        for batch in batches:
            rows += len(batch[1]) if spec else len(batch["y"])
    else:
        import pandas as pd

        for frame in pd.read_csv(path, chunksize=args.batch, dtype={"a": np.float32, "b": np.float32}):
            batch = {name: frame[name].to_numpy() for name in frame.columns}
            if spec:
                spec.transform(batch)
            rows += len(frame)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"rows": rows, "seconds": seconds, "peak_rss_bytes": peak}))


def measure(engine: str, path: Path, batch: int, spec: bool) -> dict:
    command = [sys.executable, __file__, "--worker", "--engine", engine, "--path", str(path), "--batch", str(batch)]
    done = subprocess.run(command + (["--spec"] if spec else []), capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(done.stderr[-3000:])
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result.update(engine=engine, spec=spec, rows_per_second=result["rows"] / result["seconds"])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gb", type=float, default=5.0)
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--engine", default="layerflow")
    parser.add_argument("--path")
    parser.add_argument("--spec", action="store_true")
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        path = Path(tmp) / "big.csv"
        start = time.perf_counter()
        total_rows = generate(path, args.gb)
        size = path.stat().st_size
        print(f"generated {size / 1e9:.2f} GB, {total_rows:,} rows in {time.perf_counter() - start:.0f} s", flush=True)
        rows = []
        for spec in (False, True):
            for engine in ("layerflow", "pandas"):
                rows.append(measure(engine, path, args.batch, spec))
                r = rows[-1]
                print(
                    f"{'parse + spec' if spec else 'parse':13} {engine:10} {r['rows_per_second']:12,.0f} rows/s"
                    f"  peak {r['peak_rss_bytes'] / 2**20:7.0f} MiB",
                    flush=True,
                )
    print("\nstage          layerflow/pandas (rows/s)")
    for spec in (False, True):
        lf_rate, pd_rate = (
            next(r["rows_per_second"] for r in rows if r["engine"] == e and r["spec"] == spec)
            for e in ("layerflow", "pandas")
        )
        print(f"{'parse + spec' if spec else 'parse':14} {lf_rate / pd_rate:.2f}x")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps({"file_bytes": size, "rows": total_rows, "batch": args.batch, "runs": rows}, indent=2) + "\n"
    )


if __name__ == "__main__":
    main()
