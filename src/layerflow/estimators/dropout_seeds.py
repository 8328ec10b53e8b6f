"""Seeding torch's generator per epoch for a canned model's ``EpochSeededDropout`` layers.

Keras's seeded dropout cannot be replayed from a traced step on torch (see
``layers.EpochSeededDropout``), so a seeded canned DNN draws its dropout masks from torch's
global generator instead, and ``EpochRng`` makes that generator repeatable: it sets it from
the estimator's seed and the epoch number when each epoch starts (so an epoch resumed from a
checkpoint draws the masks an uninterrupted run drew), and gives the caller's generator state
back when training ends, so that training leaves torch's random numbers as it found them.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

# Epoch e of an estimator seeded s draws from torch.manual_seed(s * SEED_STRIDE + e).
SEED_STRIDE = 1_000_003


class EpochRng:
    """Seeds torch's generator at each epoch start while ``model`` trains (a ``with`` block).

    Args:
        model: the estimator's Keras model.
        seed: the estimator's seed (None: nothing is seeded, as Keras's unseeded dropout).

    Example:
        >>> with EpochRng(model, seed=7) as rng:
        ...     for epoch in range(3):
        ...         rng.start_epoch(epoch)
        ...         train_one_epoch()
    """

    def __init__(self, model: Any, seed: int | None) -> None:
        import keras

        from layerflow.estimators.layers import EpochSeededDropout

        self.seed = seed
        self.active = (
            seed is not None
            and keras.backend.backend() == "torch"
            and any(isinstance(layer, EpochSeededDropout) for layer in model.layers)
        )
        self._fork: AbstractContextManager[Any] | None = None

    def __enter__(self) -> EpochRng:
        if self.active:
            import torch

            devices = [torch.cuda.current_device()] if torch.cuda.is_available() and torch.cuda.is_initialized() else []
            self._fork = torch.random.fork_rng(devices=devices)
            self._fork.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._fork is not None:
            fork, self._fork = self._fork, None
            fork.__exit__(*exc)

    def start_epoch(self, epoch: int) -> None:
        """Sets torch's generator for epoch ``epoch`` (0-based: the epochs done before it)."""
        if self.active:
            import torch

            assert self.seed is not None, "active is False when no seed was given"
            torch.manual_seed((self.seed * SEED_STRIDE + epoch) % 2**63)
