"""Early stopping of poor trials: asynchronous successive halving (ASHA) on a per-epoch metric."""

from __future__ import annotations

import math
import sys
import threading

import numpy as np

from layerflow.errors import InvalidValueError


class Asha:
    """Stops a trial whose metric, at a rung epoch, falls below the best ``1/reduction_factor`` so far.

    Rungs sit at ``grace_epochs * reduction_factor**k`` epochs. When a trial reaches a
    rung, its metric is compared with those recorded there by earlier trials; below the
    ``1 - 1/reduction_factor`` quantile, it stops. This is the rule of Li et al. (2018),
    as Ray Tune's ``AsyncHyperBandScheduler`` applies it, fed from the metric stream
    (``metrics.jsonl``) of trials running locally or on Ray. Thread-safe.

    Args:
        metric: the per-epoch metric, as in ``metrics.jsonl`` (e.g. ``val_loss``).
        mode: ``"min"`` or ``"max"``.
        grace_epochs: epochs every trial runs before it can be stopped.
        reduction_factor: the fraction (1/n) of trials kept at each rung.

    Example:
        >>> asha = Asha("val_accuracy", "max", grace_epochs=1, reduction_factor=2)
        >>> asha.report("a", 1, 0.80), asha.report("b", 1, 0.60)
        (False, True)
    """

    def __init__(self, metric: str, mode: str = "max", grace_epochs: int = 1, reduction_factor: float = 3):
        if mode not in ("min", "max"):
            raise InvalidValueError(f"mode {mode!r} must be 'min' or 'max'.")
        if not isinstance(grace_epochs, int) or grace_epochs < 1:
            raise InvalidValueError(f"grace_epochs {grace_epochs!r} must be a whole number of at least 1.")
        if not reduction_factor > 1:
            raise InvalidValueError(f"reduction_factor {reduction_factor!r} must be above 1 (e.g. 3 keeps a third).")
        self.metric, self.mode = metric, mode
        self.grace_epochs, self.reduction_factor = grace_epochs, reduction_factor
        rungs, milestone = [], grace_epochs
        while milestone <= 1_000_000:
            rungs.append(milestone)
            milestone = math.ceil(milestone * reduction_factor)
        self._rungs: list[tuple[int, dict[str, float]]] = [(m, {}) for m in reversed(rungs)]
        self._lock = threading.Lock()

    def report(self, trial: str, epoch: int, value: float) -> bool:
        """Records a trial's metric after ``epoch``; returns True when the trial should stop."""
        score = float(value) if self.mode == "max" else -float(value)
        if math.isnan(score):
            score = -sys.float_info.max  # worst, yet finite for the quantile
        with self._lock:
            for milestone, recorded in self._rungs:
                if epoch >= milestone and trial not in recorded:
                    values = list(recorded.values())
                    recorded[trial] = score
                    if not values:
                        return False
                    cutoff = float(np.percentile(values, (1 - 1 / self.reduction_factor) * 100))
                    return score < cutoff
        return False

    def __repr__(self) -> str:
        return (
            f"Asha(metric={self.metric!r}, mode={self.mode!r}, grace_epochs={self.grace_epochs}, "
            f"reduction_factor={self.reduction_factor})"
        )
