"""Multi-class classification from a DataFrame with a string label and bucketized features.

layerflow run examples/iris_categorical.py
"""

import numpy as np

import layerflow as lf
from layerflow import keras

FLAGS = lf.flags(epochs=60, batch_size=16, seed=1)
keras.utils.set_random_seed(FLAGS.seed)

table = lf.datasets.iris().sample(frac=1.0, random_state=FLAGS.seed)
species = sorted(table["species"].unique())
table["label"] = table["species"].map({name: i for i, name in enumerate(species)})
train, test = table.iloc[:120], table.iloc[120:]

spec = (
    lf.feature_spec(train.drop(columns="species"), label="label")
    .numeric("sepal_length", "sepal_width", "petal_length", "petal_width", normalizer="standard")
    .bucketized("petal_length", boundaries=[2.0, 4.5, 5.5])
    .indicator("petal_length_bucketized")
    .fit()
)
print(spec)
inputs, dense = spec.keras_inputs()
outputs = keras.layers.Dense(len(species), activation="softmax")(keras.layers.Dense(16, activation="relu")(dense))
model = keras.Model(inputs, outputs)
model.compile(loss="sparse_categorical_crossentropy", optimizer=keras.optimizers.Adam(0.01), metrics=["accuracy"])

batches = lambda frame: spec.prepare(lf.data.from_frame(frame.drop(columns="species")).batch(FLAGS.batch_size))  # noqa: E731
model.fit(batches(train).shuffle(100, seed=FLAGS.seed), epochs=FLAGS.epochs, verbose=0)
loss, accuracy = model.evaluate(batches(test), verbose=0)
print(f"test loss {loss:.4f}, test accuracy {accuracy:.4f}")
predicted = np.argmax(model.predict(batches(test), verbose=0), axis=1)
print("predicted:", [species[i] for i in predicted[:5]])
