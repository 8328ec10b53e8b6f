"""The Keras layers the canned estimators add: the linear bias and the packed numeric input's scaling."""

from __future__ import annotations

from typing import Any

from layerflow.backend import load_keras

keras = load_keras()
# The Keras base classes, as names mypy accepts as bases: load_keras() returns the keras module
# chosen at run time (typed Any), whose attributes mypy cannot resolve as classes.
_Layer: Any = keras.layers.Layer
_Dropout: Any = keras.layers.Dropout


@keras.saving.register_keras_serializable(package="layerflow", name="LinearBias")
class LinearBias(_Layer):
    """Adds a learned bias per output unit.

    Example:
        >>> logits = LinearBias(name="linear_logits")(summed_weights)
    """

    def build(self, input_shape):
        self.bias = self.add_weight(shape=(input_shape[-1],), initializer="zeros", name="bias")

    def call(self, inputs):
        return inputs + self.bias


@keras.saving.register_keras_serializable(package="layerflow", name="Standardize")
class Standardize(_Layer):
    """Scales each column of a packed numeric tensor: ``(x - offset) / divisor``, column by column.

    The offsets and divisors are fixed (non-trainable) weights, saved with the model.

    Args:
        offsets: one value per column subtracted first.
        divisors: one value per column divided by next (non-zero).

    Example:
        >>> scaled = Standardize([0.5, 10.0], [2.0, 4.0], name="numeric_scaled")(packed)
    """

    def __init__(self, offsets, divisors, **kwargs):
        super().__init__(**kwargs)
        self.offsets = [float(v) for v in offsets]
        self.divisors = [float(v) for v in divisors]

    def build(self, input_shape):
        self.offset = self.add_weight(
            shape=(len(self.offsets),),
            trainable=False,
            name="offset",
            initializer=keras.initializers.Constant(self.offsets),
        )
        self.inverse = self.add_weight(
            shape=(len(self.divisors),),
            trainable=False,
            name="inverse",
            initializer=keras.initializers.Constant([1.0 / d for d in self.divisors]),
        )

    def call(self, inputs):
        return (inputs - self.offset) * self.inverse

    def get_config(self):
        return {**super().get_config(), "offsets": self.offsets, "divisors": self.divisors}


@keras.saving.register_keras_serializable(package="layerflow", name="SelectColumns")
class SelectColumns(_Layer):
    """Keeps the given columns (by position) of a packed tensor.

    Args:
        indices: the column positions kept, in order.

    Example:
        >>> chosen = SelectColumns([0, 2], name="linear_numeric_chosen")(packed)
    """

    def __init__(self, indices, **kwargs):
        super().__init__(**kwargs)
        self.indices = [int(i) for i in indices]

    def call(self, inputs):
        return keras.ops.take(inputs, self.indices, axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], len(self.indices))

    def get_config(self):
        return {**super().get_config(), "indices": self.indices}


@keras.saving.register_keras_serializable(package="layerflow", name="EpochSeededDropout")
class EpochSeededDropout(_Dropout):
    """Keras's ``Dropout``, whose masks on the torch backend come from torch's global generator.

    Keras's seeded dropout on torch builds a ``torch.Generator`` from the seed state at every
    step (a read of a tensor's value), which no traced graph can hold, so a seeded DNN stayed on
    Keras's slow per-layer loop. This layer draws as Keras's unseeded dropout does (torch's
    ``dropout``, traceable); the estimator seeds torch's generator at the start of every epoch
    from its seed and the epoch number (``dropout_seeds.epoch_rng``), so the masks are
    repeatable and an epoch resumed from a checkpoint draws the same ones. On another backend,
    or with a ``noise_shape``, it is Keras's ``Dropout`` with its seed.

    Args:
        rate: the fraction of units dropped; noise_shape, seed: as in ``keras.layers.Dropout``.

    Example:
        >>> x = EpochSeededDropout(0.2, seed=101, name="dropout_0")(x)
    """

    def call(self, inputs, training=False):
        if training and self.rate > 0 and self.noise_shape is None and keras.backend.backend() == "torch":
            import torch

            return torch.nn.functional.dropout(inputs, p=self.rate, training=True)
        return super().call(inputs, training=training)
