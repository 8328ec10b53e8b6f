"""``layerflow tune``: a tracked run per trial of a grid, random or Bayesian (TPE) search."""

from __future__ import annotations

from pathlib import Path

import typer

from layerflow.cli.common import RunsDirOption

app = typer.Typer()


@app.command()
def tune(
    script: Path | None = typer.Argument(
        None,
        help="The training script; every trial is a tracked run of it "
        "(default: train.py, or the resumed tuning run's).",
    ),
    search: str | None = typer.Option(
        None,
        "--search",
        help="tpe (Bayesian optimisation, Optuna's TPE), random or grid (default: random over ranges, else grid).",
    ),
    config: Path | None = typer.Option(
        None,
        "--config",
        help="cloudml's tuning config (hptuning.yml: trainingInput.hyperparameters); command-line options override it.",
    ),
    resume: str | None = typer.Option(
        None, "--resume", help="TUNING_ID: add --trials N to that stored study, reusing its finished trials."
    ),
    grid: list[str] = typer.Option([], "--grid", help="name=v1,v2,... values of a flag to try (repeatable)."),
    range_: list[str] = typer.Option(
        [],
        "--range",
        help="name=KIND:VALUES for random search: uniform:LOW,HIGH, "
        "loguniform:LOW,HIGH, int:LOW,HIGH or choice:A,B (repeatable; needs --trials).",
    ),
    flag: list[str] = typer.Option([], "--flag", help="name=value shared by every trial (repeatable)."),
    sample: float | None = typer.Option(None, "--sample", help="Run a random fraction (0, 1] of the grid."),
    trials: int | None = typer.Option(None, "--trials", help="Run N combinations (grid) or N draws (ranges)."),
    seed: int | None = typer.Option(None, "--seed", help="Seed of the sample or the draws."),
    parallel: int | None = typer.Option(None, "--parallel", help="Trials running at once (default 1)."),
    metric: str | None = typer.Option(
        None,
        "--metric",
        help="Metric ordering the summary (and watched by --early-stop), e.g. val_accuracy or eval_accuracy.",
    ),
    mode: str | None = typer.Option(None, "--mode", help="max or min (default: min for losses, else max)."),
    early_stop: bool = typer.Option(False, "--early-stop", help="Stop poor trials early (ASHA on --metric)."),
    grace_epochs: int = typer.Option(1, "--grace-epochs", help="Epochs every trial runs before ASHA may stop it."),
    reduction_factor: float = typer.Option(3, "--reduction-factor", help="ASHA keeps 1/N of the trials at each rung."),
    address: str | None = typer.Option(
        None,
        "--address",
        help="Run the trials on Ray: its job-submission "
        "address (http://head:8265) or `local` to start a Ray cluster here.",
    ),
    cpus: float = typer.Option(1, "--cpus", help="CPUs per trial on Ray."),
    gpus: float = typer.Option(0, "--gpus", help="GPUs per trial on Ray."),
    requirements: Path | None = typer.Option(None, "--requirements", help="pip requirements file for trials on Ray."),
    runs_dir: Path | None = RunsDirOption,
) -> None:
    """Run SCRIPT once per combination of flag values, each as a tracked run; print them best first."""
    from layerflow.flags import parse_flag_assignments
    from layerflow.tuning import hptuning_config, search_space, tuning_run

    options = hptuning_config(config) if config is not None else {}
    given = {
        "search": search,
        "metric": metric,
        "mode": mode,
        "trials": trials,
        "parallel": parallel,
        "early_stopping": early_stop or None,
        "resume": resume,
    }
    options.update({k: v for k, v in given.items() if v is not None})
    if grid or range_ or "flags" not in options and options.get("resume") is None:
        options["flags"] = search_space(grid, range_)
    options.setdefault("parallel", 1)
    options.setdefault("early_stopping", False)
    tuning_run(
        script,
        sample=sample,
        seed=seed,
        grace_epochs=grace_epochs,
        reduction_factor=reduction_factor,
        address=address,
        cpus=cpus,
        gpus=gpus,
        requirements=requirements,
        runs_dir=runs_dir,
        fixed_flags=parse_flag_assignments(flag),
        **options,
    )
