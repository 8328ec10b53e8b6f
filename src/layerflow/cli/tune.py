"""``layerflow tune``: a tracked run per combination of flag values."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from layerflow.cli.common import RunsDirOption

app = typer.Typer()


@app.command()
def tune(
    script: Path = typer.Argument(..., help="The training script; every trial is a tracked run of it."),
    grid: List[str] = typer.Option([], "--grid", help="name=v1,v2,... values of a flag to try (repeatable)."),
    range_: List[str] = typer.Option([], "--range", help="name=KIND:VALUES for random search: uniform:LOW,HIGH, "
                                     "loguniform:LOW,HIGH, int:LOW,HIGH or choice:A,B (repeatable; needs --trials)."),
    flag: List[str] = typer.Option([], "--flag", help="name=value shared by every trial (repeatable)."),
    sample: Optional[float] = typer.Option(None, "--sample", help="Run a random fraction (0, 1] of the grid."),
    trials: Optional[int] = typer.Option(None, "--trials", help="Run N combinations (grid) or N draws (ranges)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of the sample or the draws."),
    parallel: int = typer.Option(1, "--parallel", help="Trials running at once."),
    metric: Optional[str] = typer.Option(None, "--metric", help="Metric ordering the summary (and watched by "
                                         "--early-stop), e.g. val_accuracy or eval_accuracy."),
    mode: Optional[str] = typer.Option(None, "--mode", help="max or min (default: min for losses, else max)."),
    early_stop: bool = typer.Option(False, "--early-stop", help="Stop poor trials early (ASHA on --metric)."),
    grace_epochs: int = typer.Option(1, "--grace-epochs", help="Epochs every trial runs before ASHA may stop it."),
    reduction_factor: float = typer.Option(3, "--reduction-factor", help="ASHA keeps 1/N of the trials at each rung."),
    address: Optional[str] = typer.Option(None, "--address", help="Run the trials on Ray: its job-submission "
                                          "address (http://head:8265) or `local` to start a Ray cluster here."),
    cpus: float = typer.Option(1, "--cpus", help="CPUs per trial on Ray."),
    gpus: float = typer.Option(0, "--gpus", help="GPUs per trial on Ray."),
    requirements: Optional[Path] = typer.Option(None, "--requirements", help="pip requirements file for trials on Ray."),
    runs_dir: Optional[Path] = RunsDirOption,
) -> None:
    """Run SCRIPT once per combination of flag values, each as a tracked run; print them best first."""
    from layerflow.flags import parse_flag_assignments
    from layerflow.tuning import search_space, tuning_run

    tuning_run(script, flags=search_space(grid, range_), sample=sample, trials=trials, seed=seed, parallel=parallel,
               metric=metric, mode=mode, early_stopping=early_stop, grace_epochs=grace_epochs,
               reduction_factor=reduction_factor, address=address, cpus=cpus, gpus=gpus, requirements=requirements,
               runs_dir=runs_dir, fixed_flags=parse_flag_assignments(flag))
