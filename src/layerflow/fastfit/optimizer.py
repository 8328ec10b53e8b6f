"""Applying gradients to the Keras variables: Keras's own update step, without the Python around it.

For Adam with none of clipping, weight decay, EMA, gradient accumulation, loss scaling, a
learning-rate schedule, AMSGrad or variable constraints, ``optimizer.apply`` comes down to the
torch backend's update step (``keras/src/backend/torch/optimizers/torch_adam.py``: a few
scalar operations, then ``torch._foreach_*`` over the moments and variables) and one increment
of ``iterations``. ``KerasAdamStep`` issues those same torch operations in the same order on
the same tensors, with the lists built once instead of per step, so the update is Keras's bit
for bit (``tests/test_fast_fit_differential.py`` compares the weights) without Keras's
per-step Python. Any other optimizer or option goes through ``optimizer.apply``, unchanged. (torch's fused Adam kernel was used here
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
    options_off = (
        not optimizer.amsgrad
        and optimizer.clipnorm is None
        and optimizer.clipvalue is None
        and optimizer.global_clipnorm is None
        and not optimizer.weight_decay
        and not optimizer.use_ema
        and not ki.uses_gradient_accumulation(optimizer)
        and optimizer.loss_scale_factor is None
        and not ki.learning_rate_is_schedule(optimizer)
    )
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
        self.step = KerasAdamStep(optimizer, variables) if self.direct else None

    def __call__(self, grads: list[torch.Tensor | None]) -> None:
        if self.step is None or any(g is None for g in grads):
            self.optimizer.apply(grads, self.variables)
            return
        self.step(grads)  # type: ignore[arg-type]


class KerasAdamStep:
    """Keras 3.15's torch Adam update (``torch_adam.Adam._parallel_update_step``) and the
    ``iterations`` increment of ``apply``, operation for operation.

    Args:
        optimizer: a built ``keras.optimizers.Adam`` without AMSGrad or other options.
        variables: the trainable Keras variables, in the order gradients are given.
    """

    def __init__(self, optimizer: Any, variables: list[Any]) -> None:
        self.params = [v.value for v in variables]
        self.m_list, self.v_list = ki.adam_moments(optimizer, variables)
        self.iterations = ki.iterations_tensor(optimizer)
        self.learning_rate = ki.learning_rate_tensor(optimizer)  # ReduceLROnPlateau assigns into it
        self.dtype = self.params[0].dtype
        device = self.params[0].device
        self.beta_1, self.beta_2, self.epsilon = optimizer.beta_1, optimizer.beta_2, optimizer.epsilon
        self.beta_1_tensor = torch.as_tensor(self.beta_1, dtype=self.dtype, device=device)
        self.beta_2_tensor = torch.as_tensor(self.beta_2, dtype=self.dtype, device=device)

    def __call__(self, grads: list[torch.Tensor]) -> None:
        with torch.no_grad():
            lr = self.learning_rate.to(self.dtype)
            local_step = (self.iterations + 1).to(self.dtype)
            beta_1_power = torch.pow(self.beta_1_tensor, local_step)
            beta_2_power = torch.pow(self.beta_2_tensor, local_step)
            alpha = lr * torch.sqrt(1 - beta_2_power) / (1 - beta_1_power)
            m_list, v_list = self.m_list, self.v_list
            torch._foreach_mul_(m_list, self.beta_1)
            torch._foreach_add_(m_list, grads, alpha=1 - self.beta_1)
            torch._foreach_mul_(v_list, self.beta_2)
            squares = torch._foreach_mul(grads, grads)
            torch._foreach_add_(v_list, squares, alpha=1 - self.beta_2)
            # Keras's expression, with its temporaries reused in place (the same values, fewer allocations):
            # params -= (m * alpha) / (sqrt(v) + epsilon)
            denominators = torch._foreach_sqrt(v_list)
            torch._foreach_add_(denominators, self.epsilon)
            steps = torch._foreach_mul(m_list, alpha)
            torch._foreach_div_(steps, denominators)
            torch._foreach_add_(self.params, steps, alpha=-1)
            self.iterations.add_(1)
