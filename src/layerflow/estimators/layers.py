"""The one Keras layer the canned estimators add: the linear model's bias (intercept)."""

from __future__ import annotations

from layerflow.backend import load_keras

keras = load_keras()


@keras.saving.register_keras_serializable(package="layerflow", name="LinearBias")
class LinearBias(keras.layers.Layer):
    """Adds a learned bias per output unit.

    Example:
        >>> logits = LinearBias(name="linear_logits")(summed_weights)
    """

    def build(self, input_shape):
        self.bias = self.add_weight(shape=(input_shape[-1],), initializer="zeros", name="bias")

    def call(self, inputs):
        return inputs + self.bias
