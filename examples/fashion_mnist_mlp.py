"""Fashion-MNIST with a multi-layer perceptron (dense 256-128 with dropout).

Run it plainly (`python examples/fashion_mnist_mlp.py --flag epochs=3`) or as a tracked
run (`layerflow run examples/fashion_mnist_mlp.py --flag dropout=0.3`).
"""

import numpy as np

import layerflow as lf
from layerflow import keras

FLAGS = lf.flags(
    lf.flag("units1", 256, description="units of the first dense layer"),
    lf.flag("units2", 128, description="units of the second dense layer"),
    lf.flag("dropout", 0.3, description="dropout rate after each dense layer"),
    lf.flag("epochs", 20, description="training epochs"),
    lf.flag("batch_size", 128, description="samples per gradient step"),
    lf.flag("learning_rate", 1e-3, description="Adam learning rate"),
    lf.flag("subset", 0, description="train on the first N samples only (0 = all)"),
    lf.flag("seed", 1, description="random seed"),
)
keras.utils.set_random_seed(FLAGS.seed)

(x_train, y_train), (x_test, y_test) = lf.datasets.fashion_mnist()
if FLAGS.subset:
    x_train, y_train = x_train[: FLAGS.subset], y_train[: FLAGS.subset]
    x_test, y_test = x_test[: max(FLAGS.subset // 5, 100)], y_test[: max(FLAGS.subset // 5, 100)]
x_train = x_train.reshape(len(x_train), 784).astype(np.float32) / 255.0
x_test = x_test.reshape(len(x_test), 784).astype(np.float32) / 255.0

model = keras.Sequential(
    [
        keras.Input(shape=(784,)),
        keras.layers.Dense(FLAGS.units1, activation="relu"),
        keras.layers.Dropout(FLAGS.dropout),
        keras.layers.Dense(FLAGS.units2, activation="relu"),
        keras.layers.Dropout(FLAGS.dropout),
        keras.layers.Dense(10, activation="softmax"),
    ],
    name="fashion_mnist_mlp",
)
model.compile(
    loss="sparse_categorical_crossentropy",
    optimizer=keras.optimizers.Adam(FLAGS.learning_rate),
    metrics=["accuracy"],
)
print(lf.model_summary(model))

history = model.fit(x_train, y_train, epochs=FLAGS.epochs, batch_size=FLAGS.batch_size, validation_split=0.1, verbose=2)
loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
print(f"test loss {loss:.4f}, test accuracy {accuracy:.4f}")
model.save("fashion_mnist_mlp.keras")
