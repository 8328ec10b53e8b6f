"""Tuning: a tracked run per combination of flag values, in local processes or on Ray.

Example:
    >>> import layerflow as lf
    >>> results = lf.tuning_run("train.py", flags={"dropout": [0.2, 0.4], "lr": lf.tuning.loguniform(1e-4, 1e-2)},
    ...                         trials=4, metric="val_accuracy", early_stopping=True)
"""

from layerflow.tuning.asha import Asha
from layerflow.tuning.hptuning_config import hptuning_config
from layerflow.tuning.space import Range, TuningError, choice, loguniform, randint, search_space, trial_flags, uniform
from layerflow.tuning.tuning_run import tuning_run

__all__ = [
    "Asha",
    "hptuning_config",
    "Range",
    "TuningError",
    "choice",
    "loguniform",
    "randint",
    "search_space",
    "trial_flags",
    "tuning_run",
    "uniform",
]
