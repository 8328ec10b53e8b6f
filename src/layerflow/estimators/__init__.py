"""Canned estimators (the tfestimators part): linear, DNN, wide & deep and boosted trees.

Each takes raw data (a lf.data Dataset, a DataFrame, or a CSV/Parquet path) with the
label named once, fits or builds its feature spec, and speaks tf.estimator's vocabulary:
``train``, ``evaluate`` -> dict, ``predict`` -> DataFrame of prediction keys.

Example:
    >>> import layerflow as lf
    >>> est = lf.estimators.DNNClassifier(label="species", hidden_units=[16], n_classes=3,
    ...                                   model_dir="models/iris", seed=1)
    >>> est.train(lf.datasets.iris(), epochs=20)
    >>> est.evaluate(lf.datasets.iris())["accuracy"]
    >>> lf.estimators.load("models/iris").predict(lf.datasets.iris(), keys="classes")
"""

from layerflow.estimators.base import BaseEstimator, load
from layerflow.estimators.boosted_trees import BoostedTreesClassifier, BoostedTreesRegressor
from layerflow.estimators.distributed_trees import DistributedTrainingError
from layerflow.estimators.errors import EstimatorError, MissingColumnError, ModelDirError, NotTrainedError
from layerflow.estimators.keras_estimators import (
    DNNClassifier,
    DNNLinearCombinedClassifier,
    DNNLinearCombinedRegressor,
    DNNRegressor,
    Estimator,
    LinearClassifier,
    LinearRegressor,
)
from layerflow.estimators.train_and_evaluate import EarlyStopping, train_and_evaluate

__all__ = [
    "BaseEstimator",
    "BoostedTreesClassifier",
    "BoostedTreesRegressor",
    "DNNClassifier",
    "DNNLinearCombinedClassifier",
    "DNNLinearCombinedRegressor",
    "DNNRegressor",
    "DistributedTrainingError",
    "EarlyStopping",
    "Estimator",
    "EstimatorError",
    "LinearClassifier",
    "LinearRegressor",
    "MissingColumnError",
    "ModelDirError",
    "NotTrainedError",
    "load",
    "train_and_evaluate",
]
