"""`lf.ls_runs` over 10,000 runs: the SQLite index vs scanning the run folders, in one run.

    .venv/bin/python bench/ls_runs_10k.py [--runs 10000]

Makes the runs (run.json, flags.json, metrics.jsonl of 10 epochs, evaluation.json) in a
temporary folder, then times: the first listing (index built), warm listings (index
current), and a listing that reads every folder's files instead of the index.
Writes bench/results/ls_runs_10k.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd

import layerflow as lf
from layerflow.runs import files
from layerflow.runs.ids import new_run_folder
from layerflow.runs.index import RunIndex
from layerflow.runs.record import flatten_record, read_record

RESULTS = Path(__file__).parent / "results" / "ls_runs_10k.json"


def make_runs(runs_dir: Path, count: int) -> None:
    for i in range(count):
        run_id, folder, start = new_run_folder(runs_dir)
        flags = {"dropout": 0.1 + (i % 5) / 10, "units": 64 * (1 + i % 4), "optimizer": "adam"}
        files.write_json(
            folder / "run.json",
            {
                "id": run_id,
                "script": "train.py",
                "start": start.isoformat(),
                "end": start.isoformat(),
                "status": "completed",
                "exit_code": 0,
            },
        )
        files.write_json(
            folder / "flags.json", {"values": flags, "types": {"dropout": "float", "units": "int", "optimizer": "str"}}
        )
        files.write_json(folder / "evaluation.json", {"loss": 0.3 + i % 7 / 100, "accuracy": 0.8 + i % 9 / 100})
        with open(folder / "metrics.jsonl", "w") as stream:
            for epoch in range(1, 11):
                stream.write(
                    json.dumps(
                        {
                            "epoch": epoch,
                            "loss": 1 / epoch,
                            "accuracy": 1 - 1 / (epoch + 1),
                            "val_loss": 1.1 / epoch,
                            "val_accuracy": 1 - 1.1 / (epoch + 2),
                        }
                    )
                    + "\n"
                )


def scan_folders(runs_dir: Path) -> pd.DataFrame:
    """The peer: what listing costs without an index (every run's files read and parsed)."""
    dirs = RunIndex(runs_dir).run_dirs()
    return pd.DataFrame([flatten_record(read_record(path)) for path in dirs.values()])


def timed(function, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        runs_dir = Path(tmp) / "runs"
        start = time.perf_counter()
        make_runs(runs_dir, args.runs)
        print(f"made {args.runs} runs in {time.perf_counter() - start:.1f} s")
        first = timed(lambda: lf.ls_runs(runs_dir), 1)[0]
        warm = timed(lambda: lf.ls_runs(runs_dir), args.repeat)
        ordered = timed(lambda: lf.ls_runs(runs_dir, order="eval_accuracy", decreasing=True, latest_n=100), args.repeat)
        scan = timed(lambda: scan_folders(runs_dir), max(2, args.repeat // 2))
        assert len(lf.ls_runs(runs_dir)) == args.runs == len(scan_folders(runs_dir))
    result = {
        "runs": args.runs,
        "first_listing_builds_index_s": first,
        "ls_runs_warm_median_s": statistics.median(warm),
        "ls_runs_ordered_latest_100_median_s": statistics.median(ordered),
        "scan_folders_median_s": statistics.median(scan),
    }
    result["scan_over_index_ratio"] = result["scan_folders_median_s"] / result["ls_runs_warm_median_s"]
    print(f"\n{'listing of ' + str(args.runs) + ' runs':40} {'seconds':>8}")
    print(f"{'ls_runs, first (builds the index)':40} {first:8.3f}")
    print(f"{'ls_runs, index current (median)':40} {result['ls_runs_warm_median_s']:8.3f}")
    print(f"{'ls_runs order+latest_n=100 (median)':40} {result['ls_runs_ordered_latest_100_median_s']:8.3f}")
    print(f"{'scan every folder (median)':40} {result['scan_folders_median_s']:8.3f}")
    print(f"index is {result['scan_over_index_ratio']:.1f}x faster than scanning the folders")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
