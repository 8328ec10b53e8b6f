"""The search space of a tuning run: a grid of flag values, or ranges to draw from."""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeGuard

from layerflow.errors import LayerflowError

if TYPE_CHECKING:
    import pandas as pd


class TuningError(LayerflowError, ValueError):
    """A search space, sample size or trial count that cannot be used."""


@dataclass(frozen=True)
class Range:
    """A range of flag values for random search; made by ``uniform``, ``loguniform``, ``randint``, ``choice``."""

    kind: str
    low: float | int | None = None
    high: float | int | None = None
    options: tuple[Any, ...] = ()

    def draw(self, rng: random.Random) -> Any:
        if self.kind == "uniform":
            low, high = self._set_bounds()
            return rng.uniform(low, high)
        if self.kind == "loguniform":
            low, high = self._set_bounds()
            return math.exp(rng.uniform(math.log(low), math.log(high)))
        if self.kind == "int":
            low, high = self._set_bounds()
            assert isinstance(low, int) and isinstance(high, int), "randint() only makes ranges of whole numbers"
            return rng.randint(low, high)
        return rng.choice(self.options)

    def _set_bounds(self) -> tuple[float | int, float | int]:
        assert self.low is not None and self.high is not None, f"a {self.kind} range is always made with both bounds"
        return self.low, self.high

    def __repr__(self) -> str:
        if self.kind == "choice":
            return f"choice({list(self.options)!r})"
        name = {"int": "randint"}.get(self.kind, self.kind)
        return f"{name}({self.low!r}, {self.high!r})"


def _bounds(kind: str, low: Any, high: Any) -> tuple[float, float]:
    for name, value in (("low", low), ("high", high)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise TuningError(f"{kind}({low!r}, {high!r}): {name} must be a finite number.")
    if not low < high:
        raise TuningError(f"{kind}({low!r}, {high!r}): low must be below high.")
    return low, high


def uniform(low: float, high: float) -> Range:
    """Values spread evenly between ``low`` and ``high`` (e.g. a dropout rate)."""
    low, high = _bounds("uniform", low, high)
    return Range("uniform", float(low), float(high))


def loguniform(low: float, high: float) -> Range:
    """Values spread evenly in log space between ``low`` and ``high`` (e.g. a learning rate)."""
    low, high = _bounds("loguniform", low, high)
    if low <= 0:
        raise TuningError(f"loguniform({low!r}, {high!r}): both bounds must be above 0.")
    return Range("loguniform", float(low), float(high))


def randint(low: int, high: int) -> Range:
    """Whole numbers from ``low`` to ``high``, both included (e.g. a layer size)."""
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (low, high)):
        raise TuningError(f"randint({low!r}, {high!r}): bounds must be whole numbers.")
    _bounds("randint", low, high)
    return Range("int", low, high)


def choice(options: Sequence[Any]) -> Range:
    """One of ``options``, each as likely."""
    options = tuple(options)
    if not options:
        raise TuningError("choice([]) has no options; give at least one value.")
    return Range("choice", options=options)


def parse_grid_option(text: str) -> tuple[str, list[str]]:
    """``dropout=0.2,0.3`` (from ``--grid``) -> ("dropout", ["0.2", "0.3"])."""
    name, sep, values = text.partition("=")
    name = name.strip()
    if not sep or not name.isidentifier():
        raise TuningError(f"--grid {text!r} is malformed; expected --grid name=v1,v2,..., e.g. --grid dropout=0.2,0.3.")
    options = [v.strip() for v in values.split(",") if v.strip()]
    if not options:
        raise TuningError(f"--grid {text!r} gives flag {name!r} no values; expected --grid {name}=v1,v2,...")
    return name, options


_RANGE_KINDS: dict[str, Callable[..., Range]] = {
    "uniform": uniform,
    "loguniform": loguniform,
    "int": randint,
    "randint": randint,
    "choice": choice,
}


def parse_range_option(text: str) -> tuple[str, Range]:
    """``lr=loguniform:1e-4,1e-1`` (from ``--range``) -> ("lr", loguniform(1e-4, 1e-1)).

    Kinds: ``uniform:LOW,HIGH``, ``loguniform:LOW,HIGH``, ``int:LOW,HIGH``, ``choice:A,B,...``.
    """
    name, sep, spec = text.partition("=")
    kind, colon, values = spec.partition(":")
    name, kind = name.strip(), kind.strip()
    example = "e.g. --range learning_rate=loguniform:1e-4,1e-1 or --range units=int:64,512"
    if not sep or not name.isidentifier() or not colon or kind not in _RANGE_KINDS:
        raise TuningError(
            f"--range {text!r} is malformed; expected name=KIND:VALUES with KIND one of "
            f"uniform, loguniform, int, choice ({example})."
        )
    parts = [v.strip() for v in values.split(",") if v.strip()]
    if kind == "choice":
        return name, choice(parts)
    if len(parts) != 2:
        raise TuningError(f"--range {text!r}: {kind} takes two bounds LOW,HIGH ({example}).")
    try:
        bounds = [int(p) for p in parts] if kind in ("int", "randint") else [float(p) for p in parts]
    except ValueError:
        raise TuningError(f"--range {text!r}: bounds {parts} are not numbers ({example}).") from None
    return name, _RANGE_KINDS[kind](*bounds)


def search_space(grid: Sequence[str] = (), ranges: Sequence[str] = ()) -> dict[str, list[str] | Range]:
    """A search space from ``--grid name=v1,v2`` and ``--range name=KIND:VALUES`` strings.

    Args:
        grid: ``name=v1,v2,...`` items: every value is tried.
        ranges: ``name=KIND:VALUES`` items (``uniform:LOW,HIGH``, ``loguniform:LOW,HIGH``,
            ``int:LOW,HIGH``, ``choice:A,B``) for a random search.

    Returns:
        The space as ``tuning_run(flags=)`` takes it (values still strings: the script's
        declared flag types convert them).

    Raises:
        TuningError: a malformed item, a flag given twice, or no flag at all.

    Example:
        >>> search_space(["dropout=0.2,0.4"], ["lr=loguniform:1e-4,1e-2"])
        {'dropout': ['0.2', '0.4'], 'lr': Range(kind='loguniform', low=0.0001, high=0.01, options=())}
    """
    space: dict[str, list[str] | Range] = {}
    items: list[tuple[str, list[str] | Range]] = [
        *(parse_grid_option(item) for item in grid),
        *(parse_range_option(item) for item in ranges),
    ]
    for name, values in items:
        if name in space:
            raise TuningError(f"Flag {name!r} is given twice (by --grid or --range); give it once.")
        space[name] = values
    if not space:
        raise TuningError("Empty grid: nothing to tune; give at least one --grid name=v1,v2 (or --range).")
    return space


def _as_options(name: str, value: Any) -> list[Any] | Range:
    if isinstance(value, Range):
        return value
    if isinstance(value, (list, tuple)):
        if not value:
            raise TuningError(f"Empty grid: flag {name!r} has no values; give at least one, e.g. [0.2, 0.3].")
        return list(value)
    if isinstance(value, (set, dict)) or hasattr(value, "__next__"):
        raise TuningError(f"Flag {name!r}: give its values as a list, not a {type(value).__name__}.")
    return [value]


def _check_sampling(sample: float | None, trials: int | None) -> None:
    if sample is not None and trials is not None:
        raise TuningError("Give either a sample fraction or a number of trials, not both.")
    if sample is not None and (isinstance(sample, bool) or not isinstance(sample, (int, float)) or not 0 < sample <= 1):
        raise TuningError(f"Sample fraction {sample!r} is outside (0, 1]; e.g. 0.5 runs half of the grid.")
    if trials is not None and (isinstance(trials, bool) or not isinstance(trials, int) or trials < 1):
        raise TuningError(f"Number of trials {trials!r} must be a whole number of at least 1.")


def trial_flags(
    space: Mapping[str, Any],
    sample: float | None = None,
    trials: int | None = None,
    seed: int | None = None,
) -> list[dict[str, Any]]:
    """The flag values of every trial.

    A space of lists is a grid: every combination runs, or a seeded random ``sample``
    (a fraction in (0, 1]) or ``trials`` of them. A space holding a ``Range`` is a random
    search: ``trials`` draws, lists drawn from as choices. A single value is fixed.

    Example:
        >>> trial_flags({"dropout": [0.2, 0.4], "units": [64, 128]}, sample=0.5, seed=1)
        [{'dropout': 0.2, 'units': 128}, {'dropout': 0.4, 'units': 64}]
    """
    if not space:
        raise TuningError("Empty grid: no flags to tune; give at least one, e.g. --grid dropout=0.2,0.3.")
    _check_sampling(sample, trials)
    options = {name: _as_options(name, value) for name, value in space.items()}
    rng = random.Random(seed)

    if any(isinstance(o, Range) for o in options.values()):
        if trials is None:
            raise TuningError("A random search (a flag given as a range) needs a number of trials, e.g. --trials 20.")
        return [
            {name: o.draw(rng) if isinstance(o, Range) else rng.choice(o) for name, o in options.items()}
            for _ in range(trials)
        ]

    names = list(options)
    lists = [o for o in options.values() if not isinstance(o, Range)]  # all of them: a Range made a random search above
    grid = [dict(zip(names, values)) for values in itertools.product(*lists)]
    return _choose(grid, sample, trials, rng)


def _choose(
    grid: list[dict[str, Any]], sample: float | None, trials: int | None, rng: random.Random
) -> list[dict[str, Any]]:
    """All of ``grid``, or a seeded random ``sample`` fraction or ``trials`` of its combinations, in order."""
    if sample is not None:
        count = max(1, round(len(grid) * sample))
    elif trials is not None:
        if trials > len(grid):
            raise TuningError(
                f"{trials} trials asked of a grid of {len(grid)} combinations; "
                f"ask for at most {len(grid)} (or drop --trials to run them all)."
            )
        count = trials
    else:
        return grid
    return [grid[i] for i in sorted(rng.sample(range(len(grid)), count))]


def is_frame(value: Any) -> TypeGuard[pd.DataFrame]:
    """Whether ``value`` is a pandas DataFrame (checked without importing pandas)."""
    return type(value).__name__ == "DataFrame" and hasattr(value, "columns") and hasattr(value, "to_dict")


def frame_combinations(
    frame: Any, sample: float | None = None, trials: int | None = None, seed: int | None = None
) -> list[dict[str, Any]]:
    """The rows of a DataFrame as flag combinations (tfruns' expand.grid data frame), exactly as given.

    ``sample`` or ``trials`` run a seeded subset of the rows, as for a grid.
    """
    if frame.empty or not len(frame.columns):
        raise TuningError("The flags DataFrame has no rows (or no columns); give one row per combination to run.")
    bad = [c for c in frame.columns if not isinstance(c, str) or not c.isidentifier()]
    if bad:
        raise TuningError(f"Flags DataFrame columns {bad} are not flag names; name each column after a flag.")
    if frame.columns.duplicated().any():
        raise TuningError(
            f"Flags DataFrame has duplicate columns {sorted(set(frame.columns[frame.columns.duplicated()]))}."
        )
    missing = frame.isna()
    if missing.to_numpy().any():
        row, column = next((r, c) for r in range(len(frame)) for c in frame.columns if missing.iloc[r][c])
        raise TuningError(f"Flags DataFrame row {row} has no value for {column!r}; every row must give every flag.")
    rows = [
        {name: value.item() if hasattr(value, "item") else value for name, value in row.items()}
        for row in frame.to_dict("records")
    ]
    if sample is not None or trials is not None:
        _check_sampling(sample, trials)
    return _choose(rows, sample, trials, random.Random(seed))
