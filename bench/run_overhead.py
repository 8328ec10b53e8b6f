"""Cost of recording: `layerflow run` of the MLP example vs the same script run plainly.

Plain and tracked runs alternate (so that drifts in machine speed hit both alike); the
wall time of each whole command is measured, and the median of each kind compared.

    .venv/bin/python bench/run_overhead.py [--epochs 10] [--pairs 3]

Writes bench/results/run_overhead.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "fashion_mnist_mlp.py"
RESULTS = Path(__file__).parent / "results" / "run_overhead.json"


def timed(command: list[str], cwd: str) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--pairs", type=int, default=3)
    args = parser.parse_args()
    flags = ["--flag", f"epochs={args.epochs}"]
    plain_cmd = [sys.executable, str(SCRIPT), *flags]
    tracked_cmd = [sys.executable, "-m", "layerflow.cli", "run", str(SCRIPT), *flags]
    plain, tracked = [], []
    with tempfile.TemporaryDirectory() as cwd:
        for pair in range(args.pairs):
            plain.append(timed(plain_cmd, cwd))
            tracked.append(timed(tracked_cmd, cwd))
            print(f"pair {pair + 1}: plain {plain[-1]:.2f} s, tracked {tracked[-1]:.2f} s", flush=True)
    result = {
        "epochs": args.epochs,
        "plain_s": plain,
        "tracked_s": tracked,
        "plain_median_s": statistics.median(plain),
        "tracked_median_s": statistics.median(tracked),
    }
    result["overhead_ratio"] = result["tracked_median_s"] / result["plain_median_s"]
    print(f"\nMLP example, {args.epochs} epochs, full Fashion-MNIST")
    print(f"plain python   {result['plain_median_s']:8.2f} s (median of {args.pairs})")
    print(f"layerflow run  {result['tracked_median_s']:8.2f} s")
    print(f"tracked / plain = {result['overhead_ratio']:.3f}  (target <= 1.02)")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
