"""Tabular classification with a streamed CSV and a feature spec (data shipped with scikit-learn).

The table is written to a CSV first so that the whole path is the one of a file larger than
memory: csv_dataset streams it, the feature spec learns the normalisation in one pass, and
the model carries that normalisation.

    layerflow run examples/breast_cancer_feature_spec.py --flag epochs=30
"""

import tempfile
from pathlib import Path

import layerflow as lf
from layerflow import keras

FLAGS = lf.flags(
    lf.flag("units", 32, description="hidden units"),
    lf.flag("epochs", 30, description="training epochs"),
    lf.flag("batch_size", 64, description="rows per batch"),
    lf.flag("learning_rate", 1e-3, description="Adam learning rate"),
    lf.flag("seed", 1, description="random seed"),
)
keras.utils.set_random_seed(FLAGS.seed)

table = lf.datasets.breast_cancer().sample(frac=1.0, random_state=FLAGS.seed)
folder = Path(tempfile.mkdtemp(prefix="breast-cancer-"))
table.iloc[:450].to_csv(folder / "train.csv", index=False)
table.iloc[450:].to_csv(folder / "test.csv", index=False)

train = lf.data.csv_dataset(str(folder / "train.csv")).shuffle(1000, seed=FLAGS.seed).batch(FLAGS.batch_size)
test = lf.data.csv_dataset(str(folder / "test.csv"), batch_size=FLAGS.batch_size)

spec = lf.feature_spec(train, label="target").numeric(lf.all_numeric(), normalizer="standard").fit()
print(spec)
inputs, dense = spec.keras_inputs()
hidden = keras.layers.Dense(FLAGS.units, activation="relu")(dense)
model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(hidden))
model.compile(loss="binary_crossentropy", optimizer=keras.optimizers.Adam(FLAGS.learning_rate), metrics=["accuracy"])
model.fit(spec.prepare(train), validation_data=spec.prepare(test), epochs=FLAGS.epochs, verbose=2)
loss, accuracy = model.evaluate(spec.prepare(test), verbose=0)
print(f"test loss {loss:.4f}, test accuracy {accuracy:.4f}")
lf.write_run_data("feature_spec.json", spec.state())
