"""Sample efficiency of `--search tpe` against random search, and the sampler's overhead per trial.

Both searches run through layerflow's own study (``layerflow.tuning.study.Study``: Optuna's
ask-and-tell over the SQLite storage a tuning run uses), side by side, on the 6-D Hartmann
function (a standard synthetic objective, minimum -3.32237), with the same budget and seeds:

- trials TPE needs to reach random search's final best, as a ratio of the budget (per seed,
  then the median over the seeds; target <= 0.5x);
- the best value each reaches after N trials (median over the seeds);
- the sampler's overhead per trial (ask + tell) with 200 finished trials in the study
  (target < 50 ms).

    .venv/bin/python bench/tuning_search.py [--budget 100] [--seeds 10]

Writes bench/results/tuning_search.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from layerflow.tuning import uniform
from layerflow.tuning.study import Study

RESULTS = Path(__file__).parent / "results" / "tuning_search.json"

# Hartmann 6-D (Dixon & Szego 1978), on [0, 1]^6.
ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
A = np.array(
    [[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]]
)
P = 1e-4 * np.array(
    [
        [1312, 1696, 5569, 124, 8283, 5886],
        [2329, 4135, 8307, 3736, 1004, 9991],
        [2348, 1451, 3522, 2883, 3047, 6650],
        [4047, 8828, 8732, 5743, 1091, 381],
    ]
)
SPACE = {f"x{i}": uniform(0.0, 1.0) for i in range(6)}


def hartmann6(x: np.ndarray) -> float:
    return float(-np.sum(ALPHA * np.exp(-np.sum(A * (x - P) ** 2, axis=1))))


def search(runs_dir: Path, name: str, kind: str, seed: int, budget: int) -> list[float]:
    """The value of each trial of a search, in trial order."""
    study = Study.create(runs_dir, name, kind, SPACE, "min", seed, settings={"metric": "hartmann6"})
    values = []
    for _ in range(budget):
        number, params = study.ask()
        value = hartmann6(np.array([params[f"x{i}"] for i in range(6)]))
        study.tell(number, "completed", value)
        values.append(value)
    return values


def best_so_far(values: list[float]) -> list[float]:
    return list(np.minimum.accumulate(values))


def overhead(runs_dir: Path, finished: int = 200, timed: int = 20) -> dict[str, float]:
    """Milliseconds of ask + tell per trial (wall and this process's CPU) for TPE and random with
    ``finished`` trials already told; the wall time includes waiting for a loaded machine's cores and disk."""
    out = {}
    for kind in ("tpe", "random"):
        study = Study.create(runs_dir, f"overhead-{kind}", kind, SPACE, "min", 0, settings={})
        for _ in range(finished):
            number, params = study.ask()
            study.tell(number, "completed", hartmann6(np.array([params[f"x{i}"] for i in range(6)])))
        times, cpu = [], []
        for _ in range(timed):
            started, started_cpu = time.perf_counter(), time.process_time()
            number, params = study.ask()
            study.tell(number, "completed", hartmann6(np.array([params[f"x{i}"] for i in range(6)])))
            times.append((time.perf_counter() - started) * 1000)
            cpu.append((time.process_time() - started_cpu) * 1000)
        out[f"{kind}_wall_ms"] = round(statistics.median(times), 2)
        out[f"{kind}_cpu_ms"] = round(statistics.median(cpu), 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=10)
    options = parser.parse_args()
    per_seed = []
    with tempfile.TemporaryDirectory() as folder:
        runs_dir = Path(folder)
        for seed in range(options.seeds):
            tpe = best_so_far(search(runs_dir, f"tpe-{seed}", "tpe", seed, options.budget))
            rnd = best_so_far(search(runs_dir, f"random-{seed}", "random", seed, options.budget))
            target = rnd[-1]
            reached = next((i + 1 for i, v in enumerate(tpe) if v <= target), math.inf)
            per_seed.append(
                {
                    "seed": seed,
                    "tpe_best": tpe[-1],
                    "random_best": rnd[-1],
                    "tpe_trials_to_random_best": reached,
                    "tpe_best_at": {n: tpe[n - 1] for n in sorted({10, 25, 50, options.budget}) if n <= options.budget},
                    "random_best_at": {
                        n: rnd[n - 1] for n in sorted({10, 25, 50, options.budget}) if n <= options.budget
                    },
                }
            )
            print(f"seed {seed}: tpe {tpe[-1]:.4f} random {rnd[-1]:.4f}; TPE reached random's best at trial {reached}")
        costs = overhead(runs_dir)
    ratios = [min(s["tpe_trials_to_random_best"], math.inf) / options.budget for s in per_seed]
    result = {
        "objective": "hartmann6 (minimise; global minimum -3.32237)",
        "budget": options.budget,
        "seeds": options.seeds,
        "tpe_trials_to_random_final_best_ratio_median": statistics.median(ratios),
        "tpe_best_median": statistics.median(s["tpe_best"] for s in per_seed),
        "random_best_median": statistics.median(s["random_best"] for s in per_seed),
        "best_after_n_median": {
            search_kind: {
                n: statistics.median(s[f"{search_kind}_best_at"][n] for s in per_seed)
                for n in sorted({10, 25, 50, options.budget})
                if n <= options.budget
            }
            for search_kind in ("tpe", "random")
        },
        "sampler_overhead_ms_per_trial_at_200_finished": costs,
        "load_average_1min": os.getloadavg()[0],
        "storage": "Optuna RDBStorage on SQLite (as a tuning run uses it)",
        "per_seed": per_seed,
    }
    RESULTS.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "per_seed"}, indent=2, default=str))


if __name__ == "__main__":
    main()
