"""The study behind a tuning run: Optuna's ask-and-tell, stored in SQLite beside the runs index.

The driver asks the study for each trial's flag values and tells it how the trial ended;
the trials themselves run anywhere (local processes, Ray jobs). Grid and random searches
enqueue their precomputed combinations, TPE (Bayesian optimisation) samples each one from
what the finished trials taught it. Everything about a study that a resume must match
(search, space, metric, fixed flags) is kept in its user attributes.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from layerflow.runs.files import TUNINGS_DIR
from layerflow.tuning.space import Range, TuningError

SEARCHES = ("grid", "random", "tpe")
STUDY_FILE = "tuning.sqlite"


def _optuna():
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


def check_search(search: str | None, space: Mapping[str, Any] | None) -> str:
    """The search to run (``grid``, ``random`` or ``tpe``); the default is random over ranges, else grid.

    Raises:
        TuningError: an unknown search, a grid search over a continuous range, or TPE over a
            space with nothing to learn (every flag has a single value).
    """
    space = space or {}
    has_range = any(isinstance(v, Range) and v.kind != "choice" for v in space.values())
    if search is None:
        return "random" if any(isinstance(v, Range) for v in space.values()) else "grid"
    if search not in SEARCHES:
        raise TuningError(
            f"Unknown search {search!r}; expected one of {', '.join(SEARCHES)} "
            f"(tpe: Bayesian optimisation, random: independent draws, grid: every combination)."
        )
    if search == "grid" and has_range:
        ranged = [n for n, v in space.items() if isinstance(v, Range) and v.kind != "choice"]
        raise TuningError(
            f"A grid search needs lists of values; {ranged} are continuous ranges "
            f"(use --search random or tpe, or give --grid values)."
        )
    if search == "tpe":
        sizes = [
            math.inf
            if isinstance(v, Range) and v.kind != "choice"
            else len(v.options)
            if isinstance(v, Range)
            else len(v)
            if isinstance(v, (list, tuple))
            else 1
            for v in space.values()
        ]
        if math.prod(sizes) <= 1:
            raise TuningError(
                "TPE has nothing to learn over a space of a single point; give a flag more than "
                "one value (--grid dropout=0.1,0.3 or --range lr=loguniform:1e-4,1e-1)."
            )
    return search


def describe_space(space: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-able description of a search space (what a resume compares and rebuilds)."""
    described: dict[str, dict[str, Any]] = {}
    for name, value in space.items():
        if isinstance(value, Range) and value.kind == "choice":
            described[name] = {"kind": "choice", "values": list(value.options)}
        elif isinstance(value, Range):
            described[name] = {"kind": value.kind, "low": value.low, "high": value.high}
        else:
            described[name] = {"kind": "grid", "values": list(value) if isinstance(value, (list, tuple)) else [value]}
    return json.loads(json.dumps(described))


def space_from_description(described: Mapping[str, Any]) -> dict[str, Any]:
    """The search space a ``describe_space`` description stands for."""
    space: dict[str, Any] = {}
    for name, d in described.items():
        if d["kind"] == "grid":
            space[name] = list(d["values"])
        elif d["kind"] == "choice":
            space[name] = Range("choice", options=tuple(d["values"]))
        else:
            space[name] = Range(d["kind"], d["low"], d["high"])
    return space


def space_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """What differs between two space descriptions, one phrase per flag (empty when equal)."""
    changes = [f"flag {n!r} added" for n in new if n not in old]
    changes += [f"flag {n!r} removed" for n in old if n not in new]
    changes += [
        f"flag {n!r} changed from {_show(old[n])} to {_show(new[n])}" for n in old if n in new and old[n] != new[n]
    ]
    return changes


def _show(d: Mapping[str, Any]) -> str:
    if "values" in d:
        return f"{d['kind']} {d['values']}"
    return f"{d['kind']}({d['low']}, {d['high']})"


def distributions(space: Mapping[str, Any]) -> dict[str, Any]:
    """Optuna distributions of a search space: lists and choices are categorical."""
    optuna = _optuna()
    d = optuna.distributions
    result = {}
    for name, value in space.items():
        if isinstance(value, Range) and value.kind == "uniform":
            result[name] = d.FloatDistribution(value.low, value.high)
        elif isinstance(value, Range) and value.kind == "loguniform":
            result[name] = d.FloatDistribution(value.low, value.high, log=True)
        elif isinstance(value, Range) and value.kind == "int":
            result[name] = d.IntDistribution(value.low, value.high)
        else:
            options = (
                value.options if isinstance(value, Range) else value if isinstance(value, (list, tuple)) else [value]
            )
            result[name] = d.CategoricalDistribution(list(dict.fromkeys(options)))
    return result


def _sampler(search: str, seed: int | None):
    optuna = _optuna()
    if search == "tpe":
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True)
    return optuna.samplers.RandomSampler(seed=seed)  # grid and random enqueue their combinations


def storage_url(runs_dir: Path) -> str:
    """The SQLAlchemy URL of the runs folder's study storage."""
    return f"sqlite:///{Path(runs_dir) / STUDY_FILE}"


def _storage(runs_dir: Path):
    """Optuna's RDBStorage on the runs folder's SQLite file, in WAL mode.

    WAL with ``synchronous=NORMAL`` stays consistent when the process dies (Ctrl-C, kill) and
    halves the time of each ask and tell (no fsync per commit; measured 147 -> 81 ms per
    ask + tell on this loaded machine, bench/tuning_search.py).
    """
    from sqlalchemy import event

    storage = _optuna().storages.RDBStorage(storage_url(runs_dir), engine_kwargs={"connect_args": {"timeout": 60}})

    @event.listens_for(storage.engine, "connect")
    def _pragmas(connection, _record) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    storage.engine.dispose()  # the connection made while creating the tables predates the pragmas
    return storage


class Study:
    """One tuning run's Optuna study: ``ask`` the next trial's flags, ``tell`` how it ended.

    Args:
        runs_dir: the runs folder; the study lives in its ``tuning.sqlite``.
        tuning_id: the study's name.
        search: ``grid``, ``random`` or ``tpe``.
        space: the search space (as ``tuning_run(flags=)`` takes it, typed).
        direction: ``min`` or ``max``.
        seed: the sampler's seed.
        settings: what a resume must match or reuse (metric, script, fixed flags ...), kept with the study.

    Example:
        >>> study = Study.create(Path("runs"), "20261208T030000-abcd", "tpe", {"lr": loguniform(1e-4, 1e-1)},
        ...                      "max", seed=1, settings={"metric": "val_accuracy"})
        >>> number, flags = study.ask()
        >>> study.tell(number, "completed", 0.9)
    """

    def __init__(self, study: Any, search: str, space: Mapping[str, Any]):
        self.study, self.search, self.space = study, search, dict(space)
        self.distributions = distributions(space)
        self._asked: dict[int, Any] = {}

    @classmethod
    def create(
        cls,
        runs_dir: Path,
        tuning_id: str,
        search: str,
        space: Mapping[str, Any],
        direction: str,
        seed: int | None,
        settings: Mapping[str, Any],
    ) -> Study:
        optuna = _optuna()
        Path(runs_dir).mkdir(parents=True, exist_ok=True)
        study = optuna.create_study(
            storage=_storage(runs_dir),
            study_name=tuning_id,
            sampler=_sampler(search, seed),
            direction="minimize" if direction == "min" else "maximize",
        )
        for key, value in {**settings, "search": search, "space": describe_space(space), "seed": seed}.items():
            study.set_user_attr(key, json.loads(json.dumps(value, default=str)))
        return cls(study, search, space)

    @classmethod
    def load(cls, runs_dir: Path, tuning_id: str) -> Study:
        """The stored study ``tuning_id``; its running trials (left by a killed driver) are told failed.

        Raises:
            TuningError: no such study in the runs folder.
        """
        optuna = _optuna()
        path = Path(runs_dir) / STUDY_FILE
        storage = _storage(runs_dir) if path.exists() else None
        known = optuna.get_all_study_names(storage) if storage is not None else []
        if tuning_id not in known:
            raise TuningError(f"No tuning run {tuning_id!r} to resume in {path}; known: {known or 'none'}.")
        attrs = optuna.load_study(study_name=tuning_id, storage=storage).user_attrs
        study = optuna.load_study(
            study_name=tuning_id, storage=storage, sampler=_sampler(attrs["search"], attrs.get("seed"))
        )
        for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
        return cls(study, attrs["search"], space_from_description(attrs["space"]))

    @property
    def settings(self) -> dict[str, Any]:
        return dict(self.study.user_attrs)

    def finished_params(self) -> list[dict[str, Any]]:
        """The flag values of every trial that completed or was pruned (a resume does not repeat them)."""
        states = self._states()
        return [
            t.params
            for t in self.study.get_trials(deepcopy=False)
            if t.state in (states["completed"], states["stopped"])
        ]

    def ask(self, flags: Mapping[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        """The next trial: its number (from 1) and flag values (``flags`` when given, else the sampler's)."""
        if flags is not None:
            self.study.enqueue_trial(dict(flags), skip_if_exists=False)
        trial = self.study.ask(self.distributions)
        self._asked[trial.number + 1] = trial
        return trial.number + 1, dict(trial.params)

    def tell(self, number: int, status: str, value: float | None, run_id: str | None = None) -> None:
        """Ends trial ``number``: ``completed`` with its value, ``stopped`` (pruned) or anything else (failed)."""
        states = self._states()
        trial_number = self._asked.pop(number, number - 1)
        if run_id and not isinstance(trial_number, int):
            trial_number.set_user_attr("run_id", run_id)
        if status == "completed" and value is not None and math.isfinite(value):
            self.study.tell(trial_number, value, state=states["completed"], skip_if_finished=True)
        elif status == "stopped":
            self.study.tell(trial_number, state=states["stopped"], skip_if_finished=True)
        else:
            self.study.tell(trial_number, state=states["failed"], skip_if_finished=True)

    @staticmethod
    def _states() -> dict[str, Any]:
        state = _optuna().trial.TrialState
        return {"completed": state.COMPLETE, "stopped": state.PRUNED, "failed": state.FAIL}

    def summary(self, mode: str) -> dict[str, Any]:
        """The optimisation history (best so far by trial) and each flag's fANOVA importance, as JSON."""
        optuna = _optuna()
        history, best = [], None
        for trial in self.study.get_trials(deepcopy=False):
            value = trial.value if trial.state == optuna.trial.TrialState.COMPLETE else None
            if value is not None and (best is None or (value < best if mode == "min" else value > best)):
                best = value
            history.append(
                {
                    "trial": trial.number + 1,
                    "state": trial.state.name.lower(),
                    "value": value,
                    "best": best,
                    "run_id": trial.user_attrs.get("run_id"),
                    "params": trial.params,
                }
            )
        importances, note = {}, None
        complete = [t for t in self.study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
        if len(complete) >= 2:
            try:
                evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
                importances = {
                    k: float(v)
                    for k, v in optuna.importance.get_param_importances(self.study, evaluator=evaluator).items()
                }
            except (ValueError, RuntimeError) as error:
                note = f"no importances: {error}"
        else:
            note = "importances need at least 2 completed trials"
        return {
            "tuning_id": self.study.study_name,
            "search": self.search,
            "metric": self.settings.get("metric"),
            "mode": mode,
            "history": history,
            "importances": importances,
            "importance_note": note,
        }

    def write_summary(self, runs_dir: Path, mode: str) -> Path:
        """Writes ``summary()`` to ``<runs>/tunings/<tuning_id>.json`` (read by the UI's tuning page)."""
        folder = Path(runs_dir) / TUNINGS_DIR
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.study.study_name}.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.summary(mode), default=str))
        tmp.replace(path)
        return path
