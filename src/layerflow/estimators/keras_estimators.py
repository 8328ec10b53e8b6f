"""The Keras estimators: linear, DNN, wide & deep, and ``Estimator(model_fn=...)``."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from layerflow.backend import load_keras
from layerflow.estimators import keras_models as km
from layerflow.estimators import tracking
from layerflow.estimators.base import BaseEstimator, EpochHook
from layerflow.estimators.dropout_seeds import EpochRng
from layerflow.estimators.errors import EstimatorError
from layerflow.estimators.heads import BINARY, MULTICLASS, REGRESSION, Head
from layerflow.estimators.step_threads import StepThreads
from layerflow.estimators.train_steps import EpochLoss, TrainSteps
from layerflow.estimators.training_feed import TrainingFeed

if TYPE_CHECKING:
    from layerflow.features.spec import FeatureSpec

keras = load_keras()
import layerflow.estimators.layers  # noqa: E402,F401 - registers LinearBias before any checkpoint loads

# Dropout draws from (its seed, counter); each epoch starts its counter here.
EPOCH_SEED_STRIDE = 100_003
ACTIVATIONS = ("relu", "elu", "selu", "gelu", "tanh", "sigmoid", "swish", "leaky_relu", "linear")


def _check_rate(name: str, value: Any, low: float = 0.0, high: float | None = None) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or value < low
        or (high is not None and value >= high)
    ):
        bound = f"in [{low}, {high})" if high is not None else f">= {low}"
        raise EstimatorError(f"{name}={value!r} must be a number {bound}.")
    return float(value)


class KerasEstimator(BaseEstimator):
    """An estimator whose model is a Keras functional model over the spec's encoded inputs."""

    # the canned models take the numeric columns as one packed input (one tensor, not one per column)
    packs_numeric = True

    def __init__(
        self,
        label: str,
        feature_columns: Any = None,
        *,
        optimizer: Any = None,
        learning_rate: float | None = None,
        l1: float = 0.0,
        l2: float = 0.0,
        weight_column: str | None = None,
        model_dir: str | os.PathLike[str] | None = None,
        n_classes: int | None = None,
        label_vocabulary: Sequence[str] | None = None,
        batch_size: int | None = None,
        shuffle_buffer: int | None = 10_000,
        seed: int | None = None,
    ):
        super().__init__(
            label, feature_columns, weight_column, model_dir, n_classes, label_vocabulary, batch_size, seed
        )
        self.optimizer = optimizer if optimizer is not None else self._default("optimizer")
        if isinstance(self.optimizer, str):
            if self.optimizer.lower() not in km.OPTIMIZERS:
                raise EstimatorError(
                    f"optimizer={self.optimizer!r} is not known; expected one of "
                    f"{sorted(km.OPTIMIZERS.values())} or a Keras optimizer."
                )
        elif not isinstance(self.optimizer, keras.optimizers.Optimizer):
            raise EstimatorError(
                f"optimizer= takes a name ({', '.join(sorted(km.OPTIMIZERS.values()))}) or a "
                f"Keras optimizer; got {type(self.optimizer).__name__}."
            )
        self.learning_rate = _check_rate(
            "learning_rate", learning_rate if learning_rate is not None else self._default("learning_rate"), 0.0
        )
        self.l1 = _check_rate("l1", l1)
        self.l2 = _check_rate("l2", l2)
        if shuffle_buffer is not None and (not isinstance(shuffle_buffer, int) or shuffle_buffer < 1):
            raise EstimatorError(f"shuffle_buffer={shuffle_buffer!r} must be a positive whole number or None.")
        self.shuffle_buffer = shuffle_buffer
        self.model: Any | None = None  # the Keras model (keras has no type information)
        self._packed_numeric: Any = None  # the scaled numeric pack while the model is being built
        self._pack_columns: list[str] | None = None  # numeric columns the model takes packed, in order

    # -- what each Keras estimator defines ---------------------------------------------------
    def _model_options(self) -> dict[str, Any]:
        return {}

    def _logits(self, inputs: dict[str, Any], dense: Any) -> Any:
        raise NotImplementedError

    # -- BaseEstimator -----------------------------------------------------------------------
    def _options(self) -> dict[str, Any]:
        optimizer = self.optimizer if isinstance(self.optimizer, str) else type(self.optimizer).__name__
        return {
            **self._model_options(),
            "optimizer": optimizer,
            "learning_rate": self.learning_rate,
            "l1": self.l1,
            "l2": self.l2,
        }

    def _training_settings(self) -> dict[str, Any]:
        return {**super()._training_settings(), "shuffle_buffer": self.shuffle_buffer}

    @property
    def model_outputs(self) -> str:
        return "logits" if self.head.is_classifier else "predictions"

    @property
    def trained(self) -> bool:
        return self.model is not None and self.global_step > 0

    def _build(self) -> Any:
        if self.seed is not None:
            keras.utils.set_random_seed(self.seed)
        if self.packs_numeric and km.can_pack(self.spec):
            inputs, dense, self._packed_numeric = km.packed_inputs(keras, self.spec)
        else:
            inputs, dense = km.spec_inputs(keras, self.spec)
        try:
            outputs = self._logits(inputs, dense)
        finally:
            self._packed_numeric = None
        model = keras.Model(inputs=inputs, outputs=outputs, name=self.kind.lower())
        model.compile(
            optimizer=km.make_optimizer(keras, self.optimizer, self.learning_rate),
            loss=km.loss_for(keras, self.head.kind),
        )
        self._set_model(model)
        return model

    def _set_model(self, model: Any) -> None:
        """Adopts ``model``, noting whether it takes the numeric columns packed (checkpoints
        written before packing take one input per column, and keep being fed that way)."""
        from layerflow.features.spec import PACKED_NUMERIC_INPUT

        self.model = model
        names = {getattr(t, "name", None) for t in keras.tree.flatten(model.inputs)}
        self._pack_columns = list(self._fitted_spec().numeric_columns) if PACKED_NUMERIC_INPUT in names else None

    def _encode(self, batch: dict[str, np.ndarray], labelled: bool = True):
        features, targets, weights = super()._encode(batch, labelled)
        if self._pack_columns:
            from layerflow.features.spec import PACKED_NUMERIC_INPUT

            features = dict(features)
            columns = [features.pop(name) for name in self._pack_columns]
            features[PACKED_NUMERIC_INPUT] = np.concatenate(columns, axis=1).astype(np.float32, copy=False)
        return features, targets, weights

    def _fit(self, dataset: Any, epochs: int | None, steps: int | None, on_epoch_end: EpochHook | None) -> None:
        if self.model is None:
            self._build()
        feed = TrainingFeed(
            dataset, self._encode, self.batch_size, self.shuffle_buffer, keep_encoded=self._train_data_in_memory
        )
        step = TrainSteps(self.model)
        with StepThreads(self.model) as threads, EpochRng(self.model, self.seed) as rng:
            self._epochs(feed, step, threads, rng, epochs, steps, on_epoch_end)

    def _epochs(
        self,
        feed: TrainingFeed,
        step: TrainSteps,
        threads: StepThreads,
        rng: EpochRng,
        epochs: int | None,
        steps: int | None,
        on_epoch_end: EpochHook | None,
    ) -> None:
        target = epochs if epochs is not None else (None if steps is not None else self.epochs_done + 1)
        remaining = steps
        while (target is None or self.epochs_done < target) and (remaining is None or remaining > 0):
            seed = None if self.seed is None else self.seed * 1000 + self.epochs_done
            self._reseed_random_layers()
            rng.start_epoch(self.epochs_done)
            loss, finished = EpochLoss(), True
            for features, targets, weights in feed.epoch(seed):
                threads.before(len(targets))
                loss.add(step(features, targets, weights))
                threads.after()
                self.global_step += 1
                if remaining is not None:
                    remaining -= 1
                    if remaining == 0:
                        finished = False
                        break
            if not loss.count:
                raise EstimatorError("The training data has no rows.")
            if not finished:
                self._checkpoint()
                break
            self.epochs_done += 1
            self._checkpoint()
            metrics = {"loss": loss.mean()}
            stop = False
            if on_epoch_end is not None:
                extra, stop = on_epoch_end(self, self.epochs_done)
                metrics.update(extra or {})
            tracking.record_epoch(self.epochs_done, metrics)
            if stop:
                break

    def _reseed_random_layers(self) -> None:
        """Sets each random layer's (dropout's) generator from the epoch number, so that an epoch
        resumed from a checkpoint draws the same masks (Keras does not save generator states)."""
        assert self.model is not None, "_fit builds or loads the model before the epochs run"
        for variable in self.model.non_trainable_variables:
            if variable.path.endswith("seed_generator_state"):
                state = np.asarray(variable.numpy())
                variable.assign(np.asarray([state[0], self.epochs_done * EPOCH_SEED_STRIDE], dtype=state.dtype))

    def _outputs(self, features: dict[str, np.ndarray]) -> np.ndarray:
        assert self.model is not None, "_collect calls _require_trained first, and a trained estimator has a model"
        return np.asarray(self.model.predict_on_batch(features))

    def _save_model(self, folder: Path) -> str:
        name = f"checkpoint-{self.epochs_done:06d}-{self.global_step:09d}.keras"
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".saving-{name}"
        keras.saving.save_model(self.model, tmp)  # not Model.save, which a tracked run copies to model/
        os.replace(tmp, folder / name)
        return name

    def _load_model(self, path: Path) -> None:
        self._set_model(keras.saving.load_model(path))

    def _export_model(self) -> Any:
        return self.model


class _Linear:
    def _linear_init(self, linear_feature_columns: Sequence[str] | None) -> None:
        if linear_feature_columns is not None and (
            isinstance(linear_feature_columns, str) or not all(isinstance(c, str) for c in linear_feature_columns)
        ):
            raise EstimatorError("linear_feature_columns= takes a list of the spec's column names.")
        self.linear_feature_columns = list(linear_feature_columns) if linear_feature_columns is not None else None


class _DNN:
    # given by KerasEstimator, the other base of every estimator that mixes this in
    spec: FeatureSpec | None
    seed: int | None
    head: Head
    l1: float
    l2: float
    _packed_numeric: Any

    def _dnn_init(self, hidden_units: Sequence[int], activation: str, dropout: float | None, batch_norm: bool) -> None:
        if (
            isinstance(hidden_units, (int, str))
            or not hidden_units
            or not all(isinstance(u, int) and not isinstance(u, bool) and u > 0 for u in hidden_units)
        ):
            raise EstimatorError(
                f"hidden_units={hidden_units!r} must be a non-empty list of positive layer widths, e.g. [64, 32]."
            )
        if activation not in ACTIVATIONS:
            raise EstimatorError(f"activation={activation!r} is not known; expected one of {ACTIVATIONS}.")
        self.hidden_units = list(hidden_units)
        self.activation = activation
        self.dropout = None if not dropout else _check_rate("dropout", dropout, 0.0, 1.0)
        self.batch_norm = bool(batch_norm)

    def _dnn_part(self, inputs: dict[str, Any], dense: Any) -> Any:
        spec = self.spec
        assert spec is not None, "the model is built by train(), after it fitted the spec"
        if dense is None or not spec.state()["dense"] and spec.state()["categorical"]:
            dense = km.auto_dense(keras, inputs, spec, self.seed, self._packed_numeric)
        return km.dnn_logits(
            keras,
            dense,
            self.head.output_units,
            self.hidden_units,
            self.activation,
            self.dropout,
            self.batch_norm,
            self.l1,
            self.l2,
            self.seed,
        )

    def _dnn_options(self) -> dict[str, Any]:
        return {
            "hidden_units": self.hidden_units,
            "activation": self.activation,
            "dropout": self.dropout,
            "batch_norm": self.batch_norm,
        }


_COMMON_ARGS = """
        label: the label column.
        feature_columns: a lf.feature_spec (fitted or not); None builds one from the column
            types in one pass (numbers standardised, other columns as vocabularies).
        optimizer: "Adagrad", "Ftrl", "Adam", "RMSProp", "SGD" or a Keras optimizer.
        learning_rate: the optimizer's learning rate.
        l1, l2: regularisation of the weights.
        weight_column: a column of per-example weights.
        model_dir: checkpoints and the fitted spec; training there again resumes.
        batch_size: rows per batch; shuffle_buffer: rows shuffled through (None: no shuffle).
        seed: makes initialisation, shuffling and dropout repeatable."""


class _LinearEstimator(_Linear, KerasEstimator):
    def _model_options(self) -> dict[str, Any]:
        return {"linear_feature_columns": self.linear_feature_columns}

    def _logits(self, inputs, dense):
        return km.linear_logits(
            keras,
            inputs,
            self.spec,
            self.head.output_units,
            self.linear_feature_columns,
            self.l1,
            self.l2,
            self._packed_numeric,
        )


class LinearRegressor(_LinearEstimator):
    __doc__ = f"""A linear model of a numeric label (tf.estimator's LinearRegressor).

    Args:{_COMMON_ARGS}
        linear_feature_columns: the spec columns of the linear model (all by default).

    Example:
        >>> est = lf.estimators.LinearRegressor(label="price")
        >>> est.train(frame, epochs=10)
        >>> est.evaluate(test)["mae"]
    """
    head_kind = REGRESSION

    def __init__(
        self,
        label: str,
        feature_columns: Any = None,
        *,
        linear_feature_columns: Sequence[str] | None = None,
        optimizer: Any = "Ftrl",
        learning_rate: float = 0.2,
        l1: float = 0.0,
        l2: float = 0.0,
        weight_column: str | None = None,
        model_dir: str | os.PathLike[str] | None = None,
        batch_size: int = 128,
        shuffle_buffer: int | None = 10_000,
        seed: int | None = None,
    ) -> None:
        self._linear_init(linear_feature_columns)
        super().__init__(
            label,
            feature_columns,
            optimizer=optimizer,
            learning_rate=learning_rate,
            l1=l1,
            l2=l2,
            weight_column=weight_column,
            model_dir=model_dir,
            batch_size=batch_size,
            shuffle_buffer=shuffle_buffer,
            seed=seed,
        )


class LinearClassifier(_LinearEstimator):
    __doc__ = f"""A linear (logistic) classifier (tf.estimator's LinearClassifier).

    Args:{_COMMON_ARGS}
        n_classes: number of classes (2 by default); label_vocabulary: the class labels.
        linear_feature_columns: the spec columns of the linear model (all by default).

    Example:
        >>> est = lf.estimators.LinearClassifier(label="churned", label_vocabulary=["no", "yes"])
        >>> est.train("customers.csv", epochs=5).predict(new_rows, keys="classes")
    """
    head_kind = BINARY

    def __init__(
        self,
        label: str,
        feature_columns: Any = None,
        *,
        linear_feature_columns: Sequence[str] | None = None,
        optimizer: Any = "Ftrl",
        learning_rate: float = 0.2,
        l1: float = 0.0,
        l2: float = 0.0,
        weight_column: str | None = None,
        model_dir: str | os.PathLike[str] | None = None,
        n_classes: int | None = None,
        label_vocabulary: Sequence[str] | None = None,
        batch_size: int = 128,
        shuffle_buffer: int | None = 10_000,
        seed: int | None = None,
    ) -> None:
        self._linear_init(linear_feature_columns)
        super().__init__(
            label,
            feature_columns,
            optimizer=optimizer,
            learning_rate=learning_rate,
            l1=l1,
            l2=l2,
            weight_column=weight_column,
            model_dir=model_dir,
            n_classes=n_classes,
            label_vocabulary=label_vocabulary,
            batch_size=batch_size,
            shuffle_buffer=shuffle_buffer,
            seed=seed,
        )


class _DNNEstimator(_DNN, KerasEstimator):
    def _model_options(self) -> dict[str, Any]:
        return self._dnn_options()

    def _logits(self, inputs, dense):
        return self._dnn_part(inputs, dense)


class DNNRegressor(_DNNEstimator):
    __doc__ = f"""A feed-forward network for a numeric label (tf.estimator's DNNRegressor).

    Args:{_COMMON_ARGS}
        hidden_units: widths of the hidden layers, e.g. [64, 32].
        activation: the hidden layers' activation; dropout: drop rate; batch_norm: batch
            normalisation after each hidden layer.

    Example:
        >>> est = lf.estimators.DNNRegressor(label="price", hidden_units=[64, 32], seed=1)
        >>> est.train(frame, epochs=20)
    """
    head_kind = REGRESSION

    def __init__(
        self,
        label: str,
        hidden_units: Sequence[int] = (),
        feature_columns: Any = None,
        *,
        activation: str = "relu",
        dropout: float | None = None,
        batch_norm: bool = False,
        optimizer: Any = "Adagrad",
        learning_rate: float = 0.05,
        l1: float = 0.0,
        l2: float = 0.0,
        weight_column: str | None = None,
        model_dir: str | os.PathLike[str] | None = None,
        batch_size: int = 128,
        shuffle_buffer: int | None = 10_000,
        seed: int | None = None,
    ) -> None:
        self._dnn_init(hidden_units, activation, dropout, batch_norm)
        super().__init__(
            label,
            feature_columns,
            optimizer=optimizer,
            learning_rate=learning_rate,
            l1=l1,
            l2=l2,
            weight_column=weight_column,
            model_dir=model_dir,
            batch_size=batch_size,
            shuffle_buffer=shuffle_buffer,
            seed=seed,
        )


class DNNClassifier(_DNNEstimator):
    __doc__ = f"""A feed-forward classifier (tf.estimator's DNNClassifier).

    Args:{_COMMON_ARGS}
        hidden_units: widths of the hidden layers, e.g. [256, 128].
        activation, dropout, batch_norm: as in DNNRegressor.
        n_classes: number of classes (2 by default); label_vocabulary: the class labels.

    Example:
        >>> est = lf.estimators.DNNClassifier(label="y", hidden_units=[256, 128], n_classes=10)
        >>> est.train(train, epochs=10).evaluate(test)["accuracy"]
    """
    head_kind = BINARY

    def __init__(
        self,
        label: str,
        hidden_units: Sequence[int] = (),
        feature_columns: Any = None,
        *,
        activation: str = "relu",
        dropout: float | None = None,
        batch_norm: bool = False,
        optimizer: Any = "Adagrad",
        learning_rate: float = 0.05,
        l1: float = 0.0,
        l2: float = 0.0,
        weight_column: str | None = None,
        model_dir: str | os.PathLike[str] | None = None,
        n_classes: int | None = None,
        label_vocabulary: Sequence[str] | None = None,
        batch_size: int = 128,
        shuffle_buffer: int | None = 10_000,
        seed: int | None = None,
    ) -> None:
        self._dnn_init(hidden_units, activation, dropout, batch_norm)
        super().__init__(
            label,
            feature_columns,
            optimizer=optimizer,
            learning_rate=learning_rate,
            l1=l1,
            l2=l2,
            weight_column=weight_column,
            model_dir=model_dir,
            n_classes=n_classes,
            label_vocabulary=label_vocabulary,
            batch_size=batch_size,
            shuffle_buffer=shuffle_buffer,
            seed=seed,
        )


class _CombinedEstimator(_Linear, _DNN, KerasEstimator):
    def _model_options(self) -> dict[str, Any]:
        return {"linear_feature_columns": self.linear_feature_columns, **self._dnn_options()}

    def _logits(self, inputs, dense):
        wide = km.linear_logits(
            keras,
            inputs,
            self.spec,
            self.head.output_units,
            self.linear_feature_columns,
            self.l1,
            self.l2,
            self._packed_numeric,
        )
        deep = self._dnn_part(inputs, dense)
        return keras.layers.Add(name="wide_and_deep_logits")([wide, deep])


class DNNLinearCombinedRegressor(_CombinedEstimator):
    __doc__ = f"""Wide & deep for a numeric label: a linear part and a DNN trained jointly.

    Args:{_COMMON_ARGS}
        hidden_units, activation, dropout, batch_norm: the DNN part.
        linear_feature_columns: the spec columns of the linear (wide) part, e.g. crossed
            and bucketized columns (all by default); the DNN part takes the spec's dense
            tensor (its numeric, indicator and embedding columns).

    Example:
        >>> est = lf.estimators.DNNLinearCombinedRegressor(label="price", hidden_units=[32])
        >>> est.train(frame, epochs=5)
    """
    head_kind = REGRESSION

    def __init__(
        self,
        label: str,
        hidden_units: Sequence[int] = (),
        feature_columns: Any = None,
        *,
        linear_feature_columns: Sequence[str] | None = None,
        activation: str = "relu",
        dropout: float | None = None,
        batch_norm: bool = False,
        optimizer: Any = "Adagrad",
        learning_rate: float = 0.05,
        l1: float = 0.0,
        l2: float = 0.0,
        weight_column: str | None = None,
        model_dir: str | os.PathLike[str] | None = None,
        batch_size: int = 128,
        shuffle_buffer: int | None = 10_000,
        seed: int | None = None,
    ) -> None:
        self._linear_init(linear_feature_columns)
        self._dnn_init(hidden_units, activation, dropout, batch_norm)
        super().__init__(
            label,
            feature_columns,
            optimizer=optimizer,
            learning_rate=learning_rate,
            l1=l1,
            l2=l2,
            weight_column=weight_column,
            model_dir=model_dir,
            batch_size=batch_size,
            shuffle_buffer=shuffle_buffer,
            seed=seed,
        )


class DNNLinearCombinedClassifier(_CombinedEstimator):
    __doc__ = f"""Wide & deep classifier: a linear part and a DNN trained jointly on one loss.

    Args:{_COMMON_ARGS}
        hidden_units, activation, dropout, batch_norm: the DNN part.
        linear_feature_columns: the spec columns of the wide part (all by default).
        n_classes: number of classes (2 by default); label_vocabulary: the class labels.

    Example:
        >>> spec = (lf.feature_spec(frame, label="y").numeric("age", normalizer="standard")
        ...         .categorical_vocab("city").embedding("city", dimension=4)
        ...         .crossed(["city", "job"], hash_bucket_size=100).fit())
        >>> est = lf.estimators.DNNLinearCombinedClassifier(label="y", hidden_units=[32], feature_columns=spec,
        ...                                                 linear_feature_columns=["city_X_job"])
        >>> est.train(frame, epochs=5)
    """
    head_kind = BINARY

    def __init__(
        self,
        label: str,
        hidden_units: Sequence[int] = (),
        feature_columns: Any = None,
        *,
        linear_feature_columns: Sequence[str] | None = None,
        activation: str = "relu",
        dropout: float | None = None,
        batch_norm: bool = False,
        optimizer: Any = "Adagrad",
        learning_rate: float = 0.05,
        l1: float = 0.0,
        l2: float = 0.0,
        weight_column: str | None = None,
        model_dir: str | os.PathLike[str] | None = None,
        n_classes: int | None = None,
        label_vocabulary: Sequence[str] | None = None,
        batch_size: int = 128,
        shuffle_buffer: int | None = 10_000,
        seed: int | None = None,
    ) -> None:
        self._linear_init(linear_feature_columns)
        self._dnn_init(hidden_units, activation, dropout, batch_norm)
        super().__init__(
            label,
            feature_columns,
            optimizer=optimizer,
            learning_rate=learning_rate,
            l1=l1,
            l2=l2,
            weight_column=weight_column,
            model_dir=model_dir,
            n_classes=n_classes,
            label_vocabulary=label_vocabulary,
            batch_size=batch_size,
            shuffle_buffer=shuffle_buffer,
            seed=seed,
        )


class Estimator(KerasEstimator):
    """A custom estimator: your function builds the network, the estimator does the rest.

    Args:
        model_fn: ``model_fn(inputs, dense, params)`` -> the output tensor (logits for a
            classifier, predictions for a regressor) or a ``keras.Model`` built on ``inputs``
            with one output of ``n_outputs`` units; ``inputs`` are the spec's Keras inputs
            (one per encoded column), ``dense`` its dense tensor (None when it declares none),
            ``params`` the ``params`` dict plus ``n_outputs``. A compiled Model keeps its
            optimizer, loss and metrics (optimizer= and learning_rate= are then unused), and
            its loss says what its output holds: probabilities (Keras's crossentropy losses by
            name, or ``from_logits=False``) or logits; an uncompiled one is compiled with the
            estimator's optimizer and the head's loss on logits. Anything else is an
            ``EstimatorError``.
        label: the label column.
        head: ``"regression"``, ``"binary"`` or ``"multiclass"`` (give n_classes).
        params: values handed to ``model_fn``.
        (other arguments as in DNNClassifier)

    Example:
        >>> def model_fn(inputs, dense, params):
        ...     x = keras.layers.Dense(params["units"], activation="relu")(dense)
        ...     return keras.layers.Dense(params["n_outputs"])(x)
        >>> est = lf.estimators.Estimator(model_fn, label="y", head="binary", params={"units": 16})
        >>> est.train(frame, epochs=3)
        >>> def model_fn(inputs, dense, params):  # a compiled Model: its own optimizer and loss
        ...     out = keras.layers.Dense(params["n_outputs"], activation="softmax")(dense)
        ...     model = keras.Model(inputs, out)
        ...     model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
        ...     return model
    """

    packs_numeric = False  # model_fn gets one input per encoded column, as documented

    def __init__(
        self,
        model_fn: Callable[..., Any] | None = None,
        label: str = "",
        head: str = REGRESSION,
        feature_columns: Any = None,
        *,
        params: dict[str, Any] | None = None,
        optimizer: Any = "Adam",
        learning_rate: float = 0.001,
        l1: float = 0.0,
        l2: float = 0.0,
        weight_column: str | None = None,
        model_dir: str | os.PathLike[str] | None = None,
        n_classes: int | None = None,
        label_vocabulary: Sequence[str] | None = None,
        batch_size: int = 128,
        shuffle_buffer: int | None = 10_000,
        seed: int | None = None,
    ) -> None:
        if head not in (REGRESSION, BINARY, MULTICLASS):
            raise EstimatorError(f"head={head!r} must be 'regression', 'binary' or 'multiclass'.")
        if model_fn is not None and not callable(model_fn):
            raise EstimatorError(f"model_fn= must be a function building the model; got {type(model_fn).__name__}.")
        if head == BINARY and n_classes not in (None, 2):
            raise EstimatorError("head='binary' has n_classes=2; use head='multiclass' for more classes.")
        if head == MULTICLASS and n_classes is None and label_vocabulary is None:
            raise EstimatorError("head='multiclass' needs n_classes= (or label_vocabulary=).")
        self.head_kind = head
        self.model_fn = model_fn
        self.params = dict(params or {})
        super().__init__(
            label,
            feature_columns,
            optimizer=optimizer,
            learning_rate=learning_rate,
            l1=l1,
            l2=l2,
            weight_column=weight_column,
            model_dir=model_dir,
            n_classes=n_classes,
            label_vocabulary=label_vocabulary,
            batch_size=batch_size,
            shuffle_buffer=shuffle_buffer,
            seed=seed,
        )

    def _model_options(self) -> dict[str, Any]:
        return {
            "model_fn": getattr(self.model_fn, "__qualname__", None) if self.model_fn else None,
            "params": self.params,
        }

    def config(self) -> dict[str, Any]:
        config = super().config()
        if self.model_fn is None:  # loaded from a model_dir: the function is not needed any more
            config.pop("model_fn")
        return config

    @classmethod
    def _from_config(cls, config: dict[str, Any], **more: Any) -> BaseEstimator:
        # the saved model_fn is its name only: a loaded Estimator reads its model from the checkpoint
        return super()._from_config({k: v for k, v in config.items() if k != "model_fn"}, **more)

    @property
    def model_outputs(self) -> str:
        """What the model's output holds (``"logits"``, ``"probabilities"`` or ``"predictions"``):
        a Model that model_fn compiled says so through its loss (see ``keras_models.output_kind``)."""
        if self.model is None:
            return super().model_outputs
        return km.output_kind(self.model, self.head.kind)

    def _build(self) -> Any:
        if self.model_fn is None:
            raise EstimatorError("This Estimator has no model_fn and no checkpoint to load the model from.")
        if self.seed is not None:
            keras.utils.set_random_seed(self.seed)
        inputs, dense = km.spec_inputs(keras, self.spec)
        result = self.model_fn(inputs, dense, {**self.params, "n_outputs": self.head.output_units})
        model, compiled = km.model_from_fn(keras, result, inputs, self.head.output_units, self.head.kind)
        if not compiled:
            model.compile(
                optimizer=km.make_optimizer(keras, self.optimizer, self.learning_rate),
                loss=km.loss_for(keras, self.head.kind),
            )
        self._set_model(model)
        return model
