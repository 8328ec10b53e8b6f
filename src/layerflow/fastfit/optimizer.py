"""Applying gradients to the Keras variables: torch's fused Adam where it is exact, else Keras's own.

Keras's Adam and torch's differ only in where epsilon sits (Keras adds it to sqrt(v), torch
to sqrt(v)/sqrt(1 - beta2^t)), so torch's fused kernel with epsilon / sqrt(1 - beta2^t) makes
Keras's update exactly, on Keras's own moment variables and iteration counter. Any other
optimizer or option (clipping, weight decay, EMA, accumulation, schedules, constraints)
goes through ``optimizer.apply``, Keras's own code, unchanged.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from layerflow.fastfit import _keras_internals as ki


def _fused_adam_applies(optimizer: Any, variables: list[Any]) -> bool:
    import keras

    if not isinstance(optimizer, keras.optimizers.Adam) or type(optimizer).__name__ != "Adam":
        return False
    options_off = (not optimizer.amsgrad and optimizer.clipnorm is None and optimizer.clipvalue is None
                   and optimizer.global_clipnorm is None and not optimizer.weight_decay and not optimizer.use_ema
                   and not ki.uses_gradient_accumulation(optimizer) and optimizer.loss_scale_factor is None
                   and not ki.learning_rate_is_schedule(optimizer))
    return options_off and all(v.constraint is None and v.dtype in ("float32", "float64") for v in variables)


class GradientApplier:
    """Updates ``variables`` from their gradients the way ``optimizer.apply`` would.

    Args:
        optimizer: the model's built Keras optimizer.
        variables: the trainable Keras variables, in the order gradients are given.
    """

    def __init__(self, optimizer: Any, variables: list[Any]) -> None:
        self.optimizer = optimizer
        self.variables = variables
        self.fused = _fused_adam_applies(optimizer, variables)
        if self.fused:
            self.params = [v.value for v in variables]
            self.exp_avgs, self.exp_avg_sqs = ki.adam_slots(optimizer, variables)
            self.iterations = ki.iterations_tensor(optimizer)
            self.learning_rate = ki.learning_rate_tensor(optimizer)
            self.step = torch.zeros((), dtype=torch.float32, device=self.params[0].device)
            self.beta1, self.beta2 = float(optimizer.beta_1), float(optimizer.beta_2)
            self.epsilon = float(optimizer.epsilon)

    def __call__(self, grads: list[torch.Tensor | None]) -> None:
        if not self.fused or any(g is None for g in grads):
            self.optimizer.apply(grads, self.variables)
            return
        step = int(self.iterations) + 1
        self.step.fill_(step)
        eps = self.epsilon / math.sqrt(1.0 - self.beta2**step)
        ki.fused_adam(self.params, grads, self.exp_avgs, self.exp_avg_sqs, [self.step] * len(self.params),
                      lr=float(self.learning_rate), beta1=self.beta1, beta2=self.beta2, eps=eps)
        self.iterations.add_(1)
