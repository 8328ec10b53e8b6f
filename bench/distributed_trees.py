"""Boosted trees on 1 process against 1, 2 and 4 Ray Train workers, side by side in one run.

Generates the narrow table of bench/estimators.py (6 columns, ~64 bytes a row) of --gb
gigabytes, fits its feature spec on a sample, then trains BoostedTreesClassifier(n_trees, depth 6)
from the CSV: once in its own process (the peer: layerflow's one-process path, XGBoost on both
cores), then with ``train(..., workers=N)`` on a local Ray cluster of 2 CPUs for each N of
--workers (each worker 2/N CPUs and one XGBoost thread). Reports rows/s (rows x rounds are the
same in every case) and each process's peak RSS (ru_maxrss, read by the worker itself after its
last round), plus the AUC on the first 200,000 rows.

    .venv/bin/python bench/distributed_trees.py [--gb 0.2] [--n-trees 10] [--workers 1,2,4]

Writes bench/results/distributed_trees.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from estimators import big_spec, generate

RESULTS = Path(__file__).parent / "results" / "distributed_trees.json"


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def one_process(path: str, spec_path: str, n_trees: int) -> None:
    """The peer: one process, layerflow's plain path (prints one JSON line)."""
    import layerflow as lf

    est = lf.estimators.BoostedTreesClassifier(
        label="y", feature_columns=lf.load_feature_spec(spec_path), n_trees=n_trees, max_depth=6, seed=0
    )
    start = time.perf_counter()
    est.train(lf.data.csv_dataset(path))
    seconds = time.perf_counter() - start
    auc = est.evaluate(lf.data.csv_dataset(path).take(200_000))["auc"]
    print(json.dumps({"seconds": seconds, "auc": auc, "peak_rss_bytes": [_peak_rss_bytes()]}))


def _report_peak(folder: str):
    """A per-round hook that leaves each worker's peak RSS in ``folder/rank<r>.json``."""

    def hook(estimator, epoch):
        import ray.train

        rank = ray.train.get_context().get_world_rank()
        Path(folder, f"rank{rank}.json").write_text(json.dumps({"rank": rank, "peak_rss_bytes": _peak_rss_bytes()}))
        return {}, False

    return hook


def on_workers(path: str, spec_path: str, n_trees: int, workers: int) -> dict:
    import ray

    import layerflow as lf
    from layerflow.estimators.distributed_trees import train_on_workers

    est = lf.estimators.BoostedTreesClassifier(
        label="y", feature_columns=lf.load_feature_spec(spec_path), n_trees=n_trees, max_depth=6, seed=0, n_threads=1
    )
    with tempfile.TemporaryDirectory() as peaks:
        start = time.perf_counter()
        train_on_workers(
            est,
            lf.data.csv_dataset(path),
            workers=workers,
            cpus_per_worker=ray.cluster_resources()["CPU"] / workers,
            _on_epoch_end=_report_peak(peaks),
        )
        seconds = time.perf_counter() - start
        ranks = sorted((json.loads(p.read_text()) for p in Path(peaks).glob("rank*.json")), key=lambda r: r["rank"])
    auc = est.evaluate(lf.data.csv_dataset(path).take(200_000))["auc"]
    return {"seconds": seconds, "auc": auc, "peak_rss_bytes": [r["peak_rss_bytes"] for r in ranks]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gb", type=float, default=0.2)
    parser.add_argument("--n-trees", type=int, default=10)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--one-process", nargs=2, metavar=("CSV", "SPEC"))
    args = parser.parse_args()
    if args.one_process:
        one_process(*args.one_process, args.n_trees)
        return
    import ray

    import layerflow as lf

    with tempfile.TemporaryDirectory(prefix="layerflow-bench-") as folder:
        path = Path(folder) / "narrow.csv"
        rows = generate(path, args.gb)
        print(f"generated {path.stat().st_size / 1e9:.2f} GB, {rows:,} rows", flush=True)
        spec_path = Path(folder) / "spec.json"
        big_spec("narrow", lf.data.csv_dataset(str(path)).take(200_000)).save(spec_path)
        out = subprocess.run(
            [sys.executable, __file__, "--one-process", str(path), str(spec_path), "--n-trees", str(args.n_trees)],
            capture_output=True,
            text=True,
        )
        if out.returncode != 0:
            raise SystemExit(f"one-process run failed:\n{out.stderr[-4000:]}")
        runs = [{"how": "one process (2 threads)", "workers": 0, **json.loads(out.stdout.strip().splitlines()[-1])}]
        print(runs[-1], flush=True)
        ray.init(num_cpus=2, log_to_driver=False, configure_logging=False, include_dashboard=False)
        try:
            for workers in [int(w) for w in args.workers.split(",")]:
                runs.append(
                    {
                        "how": f"{workers} Ray Train worker(s)",
                        "workers": workers,
                        **on_workers(str(path), str(spec_path), args.n_trees, workers),
                    }
                )
                print(runs[-1], flush=True)
        finally:
            ray.shutdown()
    for run in runs:
        run["rows_per_second"] = rows / run["seconds"]
        run["peak_rss_mib"] = [round(b / 2**20) for b in run.pop("peak_rss_bytes")]
    result = {"file_bytes": int(args.gb * 1e9), "rows": rows, "n_trees": args.n_trees, "cpus": 2, "runs": runs}
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'how':<26} {'rows/s':>10} {'seconds':>8} {'auc':>7}  peak RSS per process (MiB)")
    for run in runs:
        print(
            f"{run['how']:<26} {run['rows_per_second']:>10,.0f} {run['seconds']:>8.1f} {run['auc']:>7.4f}  "
            f"{run['peak_rss_mib']}"
        )


if __name__ == "__main__":
    main()
