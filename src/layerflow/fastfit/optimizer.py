"""Applying gradients to the Keras variables: Keras's own update step, without the Python around it.

For Adam with none of clipping, weight decay, EMA, gradient accumulation, loss scaling, a
learning-rate schedule, AMSGrad or variable constraints, ``optimizer.apply`` comes down to the
torch backend's update step (its ``torch._foreach_*`` operations, in Keras's order) and one
increment of ``iterations``; that step is called directly, so the update is Keras's, bit for
bit (``tests/test_fast_fit_differential.py`` compares the weights). Any other optimizer or
option goes through ``optimizer.apply``, unchanged. (torch's fused Adam kernel was used here
before: it places epsilon and rounds differently, 1-2 ulp per step, enough to flip ReLU, MaxPool
and BatchNorm decisions within a few steps.)
"""

from __future__ import annotations

from typing import Any

import torch

from layerflow.fastfit import _keras_internals as ki


def _direct_update_applies(optimizer: Any, variables: list[Any]) -> bool:
    import keras

    if not isinstance(optimizer, keras.optimizers.Adam) or type(optimizer).__name__ != "Adam":
        return False
    options_off = (not optimizer.amsgrad and optimizer.clipnorm is None and optimizer.clipvalue is None
                   and optimizer.global_clipnorm is None and not optimizer.weight_decay and not optimizer.use_ema
                   and not ki.uses_gradient_accumulation(optimizer) and optimizer.loss_scale_factor is None
                   and not ki.learning_rate_is_schedule(optimizer))
    return options_off and all(v.constraint is None and v.dtype in ("float32", "float64") for v in variables)


class GradientApplier:
    """Updates ``variables`` from their gradients exactly as ``optimizer.apply`` would.

    Args:
        optimizer: the model's built Keras optimizer.
        variables: the trainable Keras variables, in the order gradients are given.
    """

    def __init__(self, optimizer: Any, variables: list[Any]) -> None:
        self.optimizer = optimizer
        self.variables = variables
        self.direct = _direct_update_applies(optimizer, variables)
        if self.direct:
            self.iterations = ki.iterations_tensor(optimizer)

    def __call__(self, grads: list[torch.Tensor | None]) -> None:
        if not self.direct or any(g is None for g in grads):
            self.optimizer.apply(grads, self.variables)
            return
        ki.parallel_update_step(self.optimizer, grads, self.variables)
        self.iterations.add_(1)
