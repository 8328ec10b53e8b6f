"""Hyperparameter tuning over flags: ``layerflow tune`` and ``lf.tuning_run``."""

from __future__ import annotations

import concurrent.futures
import os
import secrets
import signal
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from layerflow.errors import training_stack
from layerflow.flags.declared import declared_flags
from layerflow.flags.flags import Flag, _unknown_message
from layerflow.flags.parsing import FlagError, coerce
from layerflow.runs.metric_goals import default_metric, metric_column, metric_mode
from layerflow.runs.record import flatten_record, read_record
from layerflow.runs.store import RunStore
from layerflow.runs.training_run import check_script
from layerflow.tuning.asha import Asha
from layerflow.tuning.space import Range, TuningError, choice, frame_combinations, is_frame, trial_flags
from layerflow.tuning.study import Study, check_search, describe_space, space_changes
from layerflow.tuning.trial import Transport, Trial

if TYPE_CHECKING:
    import pandas as pd


def _new_tuning_id() -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(2)}"


def _typed_space(declared: Mapping[str, Flag | None] | None, script: Path, space: Mapping[str, Any]) -> dict[str, Any]:
    """Grid values converted to the script's declared flag types; unknown flags and ill-typed ranges refused."""
    if declared is None:
        return dict(space)
    typed: dict[str, Any] = {}
    for name, value in space.items():
        if name not in declared:
            raise FlagError(_unknown_message(name, declared, f"tuning space of {script.name}"))
        spec = declared[name]
        if spec is None:
            typed[name] = value
        elif isinstance(value, Range) and value.kind == "choice":
            typed[name] = Range(
                "choice", options=tuple(coerce(name, v, spec.type, "tuning range") for v in value.options)
            )
        elif isinstance(value, Range):
            allowed = {float: ("uniform", "loguniform", "int"), int: ("int",)}.get(spec.type, ())
            if value.kind not in allowed:
                expected = {int: "int:LOW,HIGH or choice:A,B", float: "a numeric range"}.get(spec.type, "choice:A,B")
                raise FlagError(
                    f"Flag {name!r} is a {spec.type.__name__}; the range {value!r} does not fit it "
                    f"(expected {expected})."
                )
            typed[name] = value
        else:
            values = value if isinstance(value, (list, tuple)) else [value]
            typed[name] = [coerce(name, v, spec.type, "tuning grid") for v in values]
    return typed


def _typed_values(
    declared: Mapping[str, Flag | None] | None, script: Path, values: Mapping[str, Any]
) -> dict[str, Any]:
    """One combination's values converted to the script's declared flag types."""
    return {
        name: typed[0] for name, typed in _typed_space(declared, script, {k: [v] for k, v in values.items()}).items()
    }


def _transport(
    address: str | None,
    script: Path,
    runs_dir: Path,
    args: Sequence[str],
    command_line_flags: Mapping[str, str],
    parallel: int,
    cpus: float,
    gpus: float,
    requirements: str | os.PathLike[str] | None,
) -> Transport:
    if address is None:
        if requirements is not None or gpus:
            raise TuningError("--requirements and --gpus apply to trials on Ray; add --address (or --address local).")
        from layerflow.tuning.local import LocalProcesses

        return LocalProcesses(script, runs_dir, args, command_line_flags, parallel)
    from layerflow.tuning.ray_trials import RayTrials

    return RayTrials(
        address,
        script,
        runs_dir,
        args=args,
        command_line_flags=command_line_flags,
        cpus=cpus,
        gpus=gpus,
        requirements=requirements,
    )


def tuning_run(
    script: str | os.PathLike[str] | None = None,
    flags: Mapping[str, Any] | pd.DataFrame | None = None,
    search: str | None = None,
    sample: float | None = None,
    trials: int | None = None,
    seed: int | None = None,
    parallel: int = 1,
    metric: str | None = None,
    mode: str | None = None,
    early_stopping: bool | Asha = False,
    grace_epochs: int = 1,
    reduction_factor: float = 3,
    address: str | None = None,
    cpus: float = 1,
    gpus: float = 0,
    requirements: str | os.PathLike[str] | None = None,
    runs_dir: str | os.PathLike[str] | None = None,
    fixed_flags: Mapping[str, Any] | None = None,
    args: Sequence[str] = (),
    echo: bool = True,
    resume: str | None = None,
):
    """Runs a script once per combination of flag values, each as a tracked run; returns a summary.

    Every trial is a tracked run with the properties ``tuning_id`` and ``trial``. Trials run
    ``parallel`` at a time in local processes, or on a Ray cluster given by ``address``
    (a job-submission address such as ``http://head:8265``, or ``"local"`` to start one
    here). A failing trial is recorded as failed and the others go on; Ctrl-C stops the
    running trials (recorded as interrupted), keeps the finished ones and starts no more.

    Args:
        script: the training script (default ``train.py``, or the resumed run's).
        flags: the search space: ``{"dropout": [0.2, 0.3], "units": [64, 128]}`` is a grid;
            ``lf.tuning.uniform``, ``loguniform``, ``randint`` and ``choice`` make a random search;
            a pandas DataFrame runs exactly its rows, one trial per row (tfruns' expand.grid).
        search: ``"grid"`` (every combination; the default for lists), ``"random"`` (independent
            draws; the default when a flag is a range) or ``"tpe"`` (Bayesian optimisation with
            Optuna's TPE: each trial's values chosen from the finished trials; needs ``metric``
            and ``trials``). Every search runs through one Optuna study, stored in the runs
            folder's ``tuning.sqlite`` under the tuning id.
        sample: run a seeded random fraction (0, 1] of the grid.
        trials: run this many combinations (a grid) or draws (a random search).
        seed: the seed of the sample or the draws.
        parallel: trials running at once.
        metric: the metric that orders the summary and drives early stopping: a per-epoch
            metric (``val_accuracy``) or an evaluation one (``eval_accuracy``).
        mode: ``max`` or ``min`` (default: ``min`` for losses and errors, else ``max``).
        early_stopping: True for ASHA with its defaults, or an ``Asha(...)`` to tune it;
            stopped trials are recorded with status ``stopped``.
        grace_epochs: with ``early_stopping=True``, the epochs every trial runs before ASHA may stop it.
        reduction_factor: with ``early_stopping=True``, ASHA keeps ``1/reduction_factor`` of the trials at each rung.
        address: run the trials on Ray: a job-submission address or ``"local"``.
        cpus, gpus: resources each trial takes on Ray.
        requirements: a pip requirements file installed for the trials on Ray.
        runs_dir: the runs folder (default ``$LAYERFLOW_RUNS_DIR`` or ``./runs``).
        fixed_flags: flag values shared by every trial.
        args: further command-line arguments for the script.
        echo: print a line per finished trial and the summary.
        resume: a tuning id: add ``trials`` to that stored study (a grid runs the combinations it
            has not finished), reusing its search, space, metric and fixed flags.

    Returns:
        A pandas DataFrame, one row per trial that ran, best first, with ``attrs["tuning_id"]``,
        ``attrs["metric"]``, ``attrs["mode"]`` and ``attrs["best"]`` (the best trial's row as a
        dict, or None).

    Raises:
        TuningError: bad input (before any trial starts), or no trial reported the named metric.

    Example:
        >>> results = lf.tuning_run("train.py", flags={"dropout": [0.2, 0.3, 0.4], "units": [128, 256]},
        ...                         sample=0.5, parallel=2, metric="val_accuracy")
        >>> results.iloc[0]["id"]
    """
    with training_stack("lf.tuning_run"):  # its summary is a DataFrame: say so before any trial runs
        import pandas  # noqa: F401
    store = RunStore(runs_dir)
    stored = _resumed(store, resume) if resume is not None else None
    if stored is not None:
        settings = stored.settings
        if flags is not None:
            changes = space_changes(settings["space"], describe_space(_as_space(flags)))
            if changes:
                raise TuningError(
                    f"Cannot resume tuning run {resume!r} with a changed search space: "
                    f"{'; '.join(changes)}. Resume it without --grid/--range, or start a new one."
                )
        for name, given in (("search", search), ("metric", metric), ("mode", mode)):
            if given is not None and given != settings.get(name):
                raise TuningError(
                    f"Cannot resume tuning run {resume!r} with {name}={given!r}; it was started "
                    f"with {name}={settings.get(name)!r}."
                )
        script = script if script is not None else settings["script"]
        search, metric, mode = settings["search"], settings.get("metric"), settings.get("mode")
        seed = settings.get("seed") if seed is None else seed
        fixed_flags = {**settings.get("fixed", {}), **(fixed_flags or {})}
        flags = stored.space
    script_path = check_script(script if script is not None else "train.py")
    if isinstance(parallel, bool) or not isinstance(parallel, int) or parallel < 1:
        raise TuningError(f"parallel={parallel!r}: expected a whole number of trials at once, at least 1.")
    if mode is not None and mode not in ("min", "max"):
        raise TuningError(f"mode {mode!r} must be 'min' or 'max'.")
    scheduler = _scheduler(early_stopping, metric, mode, grace_epochs, reduction_factor)
    declared = declared_flags(script_path)
    fixed = _typed_values(declared, script_path, fixed_flags or {})
    if is_frame(flags):
        if search not in (None, "grid"):
            raise TuningError(f"A DataFrame of flags runs exactly its rows (a grid); search={search!r} does not apply.")
        combos = [
            _typed_values(declared, script_path, row)
            for row in frame_combinations(flags, sample=sample, trials=trials, seed=seed)
        ]
        tuned = set(flags.columns)
        space = {name: list(dict.fromkeys(c[name] for c in combos)) for name in flags.columns}
        search = "grid"
    elif flags is None or isinstance(flags, Mapping):
        space = _typed_space(declared, script_path, flags or {})
        combos, tuned = None, set(space)
        search = check_search(search, space)
    else:
        raise TuningError(
            f"flags= takes a mapping of flag names to values ({{'dropout': [0.2, 0.4]}}) or a pandas "
            f"DataFrame with one row per combination; got a {type(flags).__name__}."
        )
    overlap = set(fixed) & tuned
    if overlap:
        raise TuningError(f"Flags {sorted(overlap)} are both tuned and fixed; give each either way, not both.")
    if search == "tpe":
        if not space:
            raise TuningError("Empty grid: no flags to tune; give at least one, e.g. --range lr=loguniform:1e-4,1e-1.")
        if trials is None:
            raise TuningError("A TPE search needs a number of trials, e.g. --trials 20.")
        if sample is not None:
            raise TuningError("--sample applies to a grid; a TPE search takes --trials.")
        if metric is None:
            raise TuningError(
                "A TPE search learns from a metric: name it, e.g. --metric val_accuracy "
                "(metric='val_accuracy'); --mode min|max if its name does not say."
            )
        trial_flags({k: v for k, v in space.items()}, trials=1, seed=0)  # the space's own checks
    elif combos is None:
        drawn = {k: (choice(v) if search == "random" and isinstance(v, list) else v) for k, v in space.items()}
        if stored is not None:
            assert resume is not None, "a stored study is only loaded to resume one"
            combos = _remaining(stored, search, drawn, trials, seed, resume)
        else:
            combos = trial_flags(drawn, sample=sample, trials=trials, seed=seed)
    total = trials if combos is None else len(combos)
    assert total is not None, "only a TPE search has no combinations, and it has checked that trials is given"
    direction = mode or (metric_mode(metric) if metric else "max")

    transport = _transport(address, script_path, store.path, args, {}, parallel, cpus, gpus, requirements)
    try:
        if stored is not None:
            assert resume is not None, "a stored study is only loaded to resume one"
            study, tuning_id = stored, resume
        else:
            tuning_id = _new_tuning_id()
            study = Study.create(
                store.path,
                tuning_id,
                search,
                space,
                direction,
                seed,
                {"script": str(script_path), "metric": metric, "mode": mode, "fixed": fixed},
            )
    except BaseException:
        transport.close()
        raise
    pending = iter(combos or [])
    earlier = (
        []
        if stored is None
        else [
            Trial(t.number + 1, t.params, run_id=t.user_attrs.get("run_id"), status=t.state.name.lower())
            for t in stored.study.get_trials(deepcopy=False)
        ]
    )

    def next_trial() -> Trial:
        given = next(pending, None)
        number, values = study.ask(given)
        return Trial(number, {**fixed, **values})

    def told(trial: Trial) -> None:
        value = _trial_value(store, trial, metric)
        study.tell(trial.number, trial.status, value, trial.run_id)

    plan: list[Trial] = []
    if echo:
        where = f"Ray at {address}" if address else "local processes"
        print(
            f"Tuning {tuning_id}{' (resumed)' if stored else ''}: {total} trials of {script_path.name} "
            f"({search} search), {parallel} at a time on {where}" + (f", {scheduler!r}" if scheduler else ""),
            file=sys.stderr,
        )
    try:
        _run_all(plan, next_trial, told, total, transport, tuning_id, parallel, scheduler, echo)
    except KeyboardInterrupt:
        study.write_summary(store.path, direction)
        summary = _summary(plan, store, metric, mode, tuning_id, earlier)
        if echo:
            _print_summary(summary, plan, interrupted=True, total=total)
        raise
    finally:
        transport.close()
    study.write_summary(store.path, direction)
    summary = _summary(plan, store, metric, mode, tuning_id, earlier)
    if echo:
        _print_summary(summary, plan, interrupted=False, total=total)
    column = summary.attrs.get("metric")
    if metric is not None and (column not in summary.columns or summary[column].isna().all()) and len(summary):
        reported = sorted(c for c in summary.columns if c.startswith(("metric_", "eval_")) and summary[c].notna().any())
        raise TuningError(
            f"No trial of tuning run {tuning_id} reported the metric {metric!r} ({column}); "
            f"they reported {reported or 'no metric'}. Name one of those with --metric."
        )
    return summary


def _as_space(flags: Any) -> dict[str, Any]:
    if is_frame(flags):
        return {name: list(dict.fromkeys(flags[name].tolist())) for name in flags.columns}
    return {name: value if isinstance(value, (Range, list, tuple)) else [value] for name, value in dict(flags).items()}


def _resumed(store: RunStore, resume: str) -> Study:
    """The stored study of tuning run ``resume`` (an error when unknown)."""
    if not isinstance(resume, str) or not resume:
        raise TuningError(f"resume={resume!r}: expected a tuning id, e.g. 20261128T235006-e915.")
    return Study.load(store.path, resume)


def _remaining(
    study: Study, search: str, space: Mapping[str, Any], trials: int | None, seed: int | None, tuning_id: str
) -> list[dict[str, Any]]:
    """The combinations a resumed grid or random search runs next (a grid skips those already finished)."""
    done = study.finished_params()
    if search == "random":
        if trials is None:
            raise TuningError("Resuming a random search needs the number of trials to add, e.g. --trials 10.")
        return trial_flags(space, trials=trials, seed=None if seed is None else seed + len(study.study.trials))
    grid = trial_flags(space)
    left = [c for c in grid if c not in done]
    if not left:
        raise TuningError(
            f"Tuning run {tuning_id!r} is finished: every one of its {len(grid)} grid combinations "
            f"has run. Start a new tuning run (or use --search tpe/random to keep searching)."
        )
    if trials is not None:
        left = left[:trials]
    return left


def _trial_value(store: RunStore, trial: Trial, metric: str | None) -> float | None:
    """The value a finished trial is told to the study with: its metric (the default one when none is named)."""
    if trial.run_id is None or not (store.path / trial.run_id / "run.json").exists():
        return None
    row = flatten_record(read_record(store.path / trial.run_id))
    column: str | None
    if metric is not None:
        column = metric_column(metric)
    else:
        found = default_metric(k for k, v in row.items() if isinstance(v, (int, float)))
        column = found[0] if found else None
    value = row.get(column) if column else None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _scheduler(
    early_stopping: bool | Asha,
    metric: str | None,
    mode: str | None,
    grace_epochs: int = 1,
    reduction_factor: float = 3,
) -> Asha | None:
    """The early-stopping rule of a tuning run (the one place that decides it, for lf.tuning_run and the CLI)."""
    if not isinstance(early_stopping, (bool, Asha)):
        raise TuningError(f"early_stopping={early_stopping!r}: expected True, False or an lf.tuning.Asha(...).")
    if early_stopping is False:
        return None
    watched = early_stopping.metric if isinstance(early_stopping, Asha) else metric
    if watched is None:
        raise TuningError(
            "Early stopping (--early-stop, early_stopping=True) needs the metric to watch: "
            "--metric val_loss (metric='val_loss')."
        )
    if watched.startswith("eval_"):
        raise TuningError(
            f"Early stopping watches a per-epoch metric; {watched!r} is only known at the end "
            f"(use e.g. {watched[len('eval_') :]!r} or 'val_{watched[len('eval_') :]}')."
        )
    if isinstance(early_stopping, Asha):
        return early_stopping
    try:
        return Asha(watched.removeprefix("metric_"), mode or metric_mode(watched), grace_epochs, reduction_factor)
    except ValueError as error:
        raise TuningError(str(error)) from None


def _run_all(
    plan: list[Trial],
    next_trial: Callable[[], Trial],
    told: Callable[[Trial], None],
    total: int,
    transport: Transport,
    tuning_id: str,
    parallel: int,
    scheduler: Asha | None,
    echo: bool,
) -> None:
    cancelled = threading.Event()
    print_lock = threading.Lock()

    def on_epoch(trial: Trial, epoch: Mapping[str, Any]) -> str | None:
        if scheduler is None or cancelled.is_set():
            return None
        value, number = epoch.get(scheduler.metric), epoch.get("epoch")
        if not isinstance(value, (int, float)) or not isinstance(number, int):
            return None
        if scheduler.report(str(trial.number), number, value):
            return f"stopped early by ASHA at epoch {number}: {scheduler.metric}={value:.4g} below the rung's cutoff"
        return None

    def run_trial(trial: Trial) -> None:
        if cancelled.is_set():
            return
        trial.status = "running"
        properties = {"tuning_id": tuning_id, "trial": trial.number}
        try:
            record = transport.run(trial, properties, on_epoch)
        except Exception as error:  # noqa: BLE001 - one trial's failure must not end the others
            trial.status, trial.error = "failed", f"{type(error).__name__}: {error}"
        else:
            trial.run_id, trial.status, trial.error = record["id"], record["status"], record.get("error")
        if echo:
            with print_lock:
                done = sum(t.status not in ("pending", "running") for t in plan)
                flags = " ".join(f"{k}={_short(v)}" for k, v in trial.flags.items())
                print(
                    f"[{done}/{total}] trial {trial.number} {trial.status}  {flags}  ({trial.run_id})"
                    + (f": {trial.error}" if trial.error and trial.status != "completed" else ""),
                    file=sys.stderr,
                )

    # Ctrl-C must reach this loop as KeyboardInterrupt, also where SIGINT was inherited ignored.
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _run_trials(plan, next_trial, told, total, run_trial, transport, parallel, cancelled)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def _run_trials(
    plan: list[Trial],
    next_trial: Callable[[], Trial],
    told: Callable[[Trial], None],
    total: int,
    run_trial,
    transport: Transport,
    parallel: int,
    cancelled: threading.Event,
) -> None:
    """Asks the study for trials as slots free up (``parallel`` in flight) and tells it each one's end."""
    in_flight: dict[concurrent.futures.Future, Trial] = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="trial") as pool:
        try:
            while True:
                while len(in_flight) < parallel and len(plan) < total:
                    trial = next_trial()
                    plan.append(trial)
                    in_flight[pool.submit(run_trial, trial)] = trial
                if not in_flight:
                    return
                done, _ = concurrent.futures.wait(
                    in_flight, timeout=0.5, return_when=concurrent.futures.FIRST_COMPLETED
                )
                for future in done:
                    told(in_flight.pop(future))
        except KeyboardInterrupt:
            cancelled.set()
            for trial in in_flight.values():
                if trial.status == "running":
                    transport.stop(trial, "interrupted", "interrupted (Ctrl-C during tuning)")
            concurrent.futures.wait(in_flight)
            for trial in in_flight.values():  # the study stays consistent: no trial left running
                if trial.status in ("pending", "running"):
                    trial.status = "interrupted"
                told(trial)
            raise


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _summary(
    plan: list[Trial],
    store: RunStore,
    metric: str | None,
    mode: str | None,
    tuning_id: str,
    earlier: Sequence[Trial] = (),
):
    import pandas as pd

    rows = []
    for trial in [*earlier, *plan]:
        if trial.run_id is None or not (store.path / trial.run_id / "run.json").exists():
            continue
        record = read_record(store.path / trial.run_id)
        row = flatten_record(record)
        rows.append({"trial": trial.number, **row})
    frame = pd.DataFrame(rows)
    column = metric_column(metric) if metric else None
    if column is None:
        found = default_metric(c for c in frame.columns if frame[c].notna().any())
        if found is not None:
            column, mode = found[0], mode or found[1]
    mode = mode or (metric_mode(column) if column else None)
    if column is not None and column in frame.columns:
        frame = frame.sort_values(column, ascending=(mode == "min"), na_position="last", kind="stable")
    frame = frame.reset_index(drop=True)
    best = None
    if column is not None and column in frame.columns and frame[column].notna().any():
        best = frame.iloc[0].dropna().to_dict()
    frame.attrs.update({"tuning_id": tuning_id, "metric": column, "mode": mode, "best": best})
    return frame


def _print_summary(frame, plan: list[Trial], interrupted: bool, total: int) -> None:
    not_run = total - sum(t.run_id is not None for t in plan)
    if frame.empty:
        print("No trial ran.", file=sys.stderr)
        return
    flags = [c for c in frame.columns if c.startswith("flag_")]
    metric = frame.attrs.get("metric")
    columns = ["trial", "id", "status", *flags, *([metric] if metric in frame.columns else []), "epochs"]
    shown = frame[columns].rename(columns={"epochs": "epochs_run"}).rename(columns=lambda c: c.removeprefix("flag_"))
    title = f"Tuning {frame.attrs['tuning_id']}" + (f", ordered by {metric} ({frame.attrs['mode']})" if metric else "")
    print(f"\n{title}\n{shown.to_string(index=False, float_format=lambda v: f'{v:.4g}')}")
    if not_run:
        print(f"{not_run} trial(s) did not start" + (" (interrupted)." if interrupted else "."), file=sys.stderr)
    if metric and metric not in frame.columns:
        print(f"No trial recorded {metric!r}; rows are in trial order.", file=sys.stderr)
