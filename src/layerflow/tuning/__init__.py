"""Tuning: a tracked run per combination of flag values, in local processes or on Ray."""

from layerflow.tuning.asha import Asha
from layerflow.tuning.space import Range, TuningError, choice, loguniform, randint, search_space, trial_flags, uniform
from layerflow.tuning.tuning_run import tuning_run

__all__ = ["Asha", "Range", "TuningError", "choice", "loguniform", "randint", "search_space", "trial_flags", "tuning_run", "uniform"]
