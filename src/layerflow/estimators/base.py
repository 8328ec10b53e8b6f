"""What every estimator shares: data and label handling, train/evaluate/predict, model_dir."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from layerflow.estimators import tracking
from layerflow.estimators.errors import EstimatorError, ModelDirError, NotTrainedError
from layerflow.estimators.heads import REGRESSION, Head
from layerflow.estimators.inputs import as_dataset, batches, check_columns, first_batch, fitted_spec, spec_columns
from layerflow.estimators.model_dir import (
    FORMAT_VERSION,
    LOADER,
    LOADER_FILE,
    MANIFEST,
    SPEC_FILE,
    check_compatible,
    check_same_spec,
    read_manifest,
    write_json_atomic,
)

if TYPE_CHECKING:
    from layerflow.features.spec import FeatureSpec

# An epoch-end hook: called with (estimator, epochs done); returns (metrics to record with the
# epoch, or None; True to stop training).
EpochHook = Callable[[Any, int], tuple[dict[str, float] | None, bool]]

ESTIMATOR_KINDS: dict[str, type[BaseEstimator]] = {}


class _Constructor(type):
    """Builds an estimator in one place: checks the keywords against the constructor's signature
    (an unknown one is an ``EstimatorError`` naming it and the accepted ones), runs ``__init__``,
    keeps the arguments for ``get_params`` and opens the ``model_dir`` (checks it, resumes from it)."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        signature = inspect.signature(cls)
        accepted = list(signature.parameters)
        unknown = [name for name in kwargs if name not in signature.parameters]
        if unknown:
            hint = ""
            if getattr(cls, "head_kind", None) == REGRESSION and {"n_classes", "label_vocabulary"} & set(unknown):
                hint = " (n_classes and label_vocabulary are for classifiers, not regressors)"
            raise EstimatorError(
                f"{cls.__name__}() got the unknown keyword{'s' if len(unknown) > 1 else ''} "
                f"{', '.join(unknown)}{hint}; it accepts {', '.join(accepted)}."
            )
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as error:
            raise EstimatorError(f"{cls.__name__}(): {error}; it accepts {', '.join(accepted)}.") from None
        bound.apply_defaults()
        estimator = super().__call__(*args, **kwargs)
        estimator._params = dict(bound.arguments)
        estimator._open_model_dir()
        return estimator


class BaseEstimator(metaclass=_Constructor):
    """The shared machinery of the canned estimators (not used directly).

    Args:
        label: the label column's name.
        feature_columns: a lf.feature_spec (fitted or not); None builds one from the column types.
        weight_column: a column of per-example weights (not a feature).
        model_dir: a folder for checkpoints and the fitted spec; training there resumes.
        n_classes: number of classes (classifiers; 2 by default).
        label_vocabulary: the class labels as strings (classifiers), in class-id order.
        batch_size: rows per training batch.
        seed: makes initialisation, shuffling and dropout repeatable.
    """

    head_kind = REGRESSION
    # the constructor's arguments, set by _Constructor right after __init__
    _params: dict[str, Any]

    def __init__(
        self,
        label: str,
        feature_columns: Any = None,
        weight_column: str | None = None,
        model_dir: str | os.PathLike[str] | None = None,
        n_classes: int | None = None,
        label_vocabulary: Sequence[str] | None = None,
        batch_size: int | None = None,
        seed: int | None = None,
    ):
        if not isinstance(label, str) or not label:
            raise EstimatorError(f"label= must name the label column (a string); got {label!r}.")
        if weight_column is not None and (not isinstance(weight_column, str) or weight_column == label):
            raise EstimatorError(f"weight_column={weight_column!r} must name a column other than the label.")
        batch_size = batch_size or self._default("batch_size")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise EstimatorError(f"batch_size={batch_size!r} must be a positive whole number.")
        if self.head_kind == REGRESSION and (n_classes is not None or label_vocabulary is not None):
            raise EstimatorError("n_classes and label_vocabulary are for classifiers, not regressors.")
        self.label = label
        self.weight_column = weight_column
        self.head = Head(self.head_kind, n_classes, label_vocabulary)
        self.batch_size = batch_size
        self.seed = seed
        self.spec: FeatureSpec | None = None
        self._given_spec = feature_columns
        if feature_columns is not None and not hasattr(feature_columns, "state"):
            raise EstimatorError(
                f"feature_columns= takes a lf.feature_spec (fitted or not); got {type(feature_columns).__name__}."
            )
        self.model_dir = Path(model_dir) if model_dir is not None else None
        self.epochs_done = 0
        self.global_step = 0
        self._train_data_in_memory = False

    @classmethod
    def _default(cls, name: str) -> Any:
        """The default of a constructor parameter (its one copy: the public constructor's signature)."""
        return inspect.signature(cls).parameters[name].default

    # -- to be provided by each family -----------------------------------------------------
    def _options(self) -> dict[str, Any]:
        """The options that define the model (checked against a model_dir)."""
        raise NotImplementedError

    def _fit(self, dataset: Any, epochs: int | None, steps: int | None, on_epoch_end: EpochHook | None) -> None:
        raise NotImplementedError

    def _outputs(self, features: dict[str, np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def _save_model(self, folder: Path) -> str:
        """Writes the trained model into ``folder``; returns the file name written."""
        raise NotImplementedError

    def _load_model(self, path: Path) -> None:
        raise NotImplementedError

    @property
    def trained(self) -> bool:
        raise NotImplementedError

    @property
    def model_outputs(self) -> str:
        """What the model's output holds: ``"logits"``, ``"probabilities"`` or ``"predictions"``."""
        return "logits"

    # -- configuration ---------------------------------------------------------------------
    @property
    def kind(self) -> str:
        return type(self).__name__

    def config(self) -> dict[str, Any]:
        """Everything that defines this estimator (saved in its model_dir)."""
        return {"label": self.label, "weight_column": self.weight_column, **self.head.config(), **self._options()}

    # -- parameters (scikit-learn's get_params / set_params) ---------------------------------
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's arguments, by name, as given (defaults filled in).

        Args:
            deep: accepted for scikit-learn's protocol (an estimator holds no sub-estimators).

        Returns:
            A new dict, one entry per constructor parameter: ``type(est)(**est.get_params())``
            builds the same estimator, untrained.

        Example:
            >>> lf.estimators.DNNClassifier(label="y", hidden_units=[8]).get_params()["hidden_units"]
            [8]
        """
        return dict(self._params)

    def set_params(self, **params: Any) -> BaseEstimator:
        """Changes constructor arguments: the estimator is built again from them (checked as the
        constructor checks them; on an error nothing changes).

        Args:
            params: constructor arguments by name.

        Returns:
            The estimator: untrained, or resumed from its model_dir when that holds a checkpoint
            (which must then have the same model options).

        Example:
            >>> est.set_params(learning_rate=0.01, batch_size=64)
        """
        unknown = [name for name in params if name not in self._params]
        if unknown:
            raise EstimatorError(
                f"{self.kind}.set_params() got the unknown parameter{'s' if len(unknown) > 1 else ''} "
                f"{', '.join(unknown)}; it accepts {', '.join(self._params)}."
            )
        if self.trained and self.model_dir is None:
            raise EstimatorError(
                f"set_params() on a trained {self.kind} without a model_dir would discard its model; "
                "save() it first, or build a new estimator from get_params()."
            )
        rebuilt = type(self)(**{**self._params, **params})
        self.__dict__.clear()
        self.__dict__.update(rebuilt.__dict__)
        return self

    @classmethod
    def _from_config(cls, config: dict[str, Any], **more: Any) -> BaseEstimator:
        """The estimator a saved configuration describes (what its constructor takes of it), built
        with ``more`` (a model_dir opens as at construction)."""
        accepted = inspect.signature(cls).parameters
        return cls(**{**{k: v for k, v in config.items() if k in accepted and v is not None}, **more})

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # the constructor's own signature (not the builder's *args, **kwargs) for inspect and help()
        init = inspect.signature(cls.__init__)
        cls.__signature__ = init.replace(parameters=list(init.parameters.values())[1:])
        ESTIMATOR_KINDS[cls.__name__] = cls

    def _open_model_dir(self) -> None:
        """Checks a model_dir given at construction and resumes from what it holds (called once,
        by the constructor, after ``__init__``)."""
        if self.model_dir is None:
            return
        manifest = read_manifest(self.model_dir)
        if manifest is None:
            return
        check_compatible(self.model_dir, manifest, self.kind, self.config())
        self._restore(self.model_dir, manifest)

    def _restore(self, folder: Path, manifest: dict[str, Any]) -> None:
        from layerflow.features import load_feature_spec

        spec_path = folder / SPEC_FILE
        if spec_path.is_file():
            saved = load_feature_spec(spec_path)
            given = self._given_spec
            if given is not None and getattr(given, "fitted", False):
                check_same_spec(folder, saved.state(), given.state())
            self.spec = saved
        if manifest.get("checkpoint"):
            self._load_model(folder / manifest["checkpoint"])
        self.epochs_done = int(manifest.get("epochs_done", 0))
        self.global_step = int(manifest.get("global_step", 0))

    def _manifest(self, checkpoint: str | None) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "kind": self.kind,
            "config": self.config(),
            "checkpoint": checkpoint,
            "epochs_done": self.epochs_done,
            "global_step": self.global_step,
            "training": self._training_settings(),
        }

    def _training_settings(self) -> dict[str, Any]:
        """How batches are drawn (not part of the model: not checked against a model_dir, but
        given back by ``load`` so that training a loaded estimator resumes as it would have)."""
        return {"batch_size": self.batch_size, "seed": self.seed}

    def _fitted_spec(self) -> FeatureSpec:
        """The fitted feature spec (fitted by train() or read from a model_dir)."""
        if self.spec is None:
            raise NotTrainedError(
                f"{self.kind} has no fitted feature spec: call train() first (it fits one), "
                f"or load a model_dir that holds its {SPEC_FILE}."
            )
        return self.spec

    def _write_spec(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{SPEC_FILE}.tmp"
        self._fitted_spec().save(tmp)
        os.replace(tmp, folder / SPEC_FILE)

    def _checkpoint(self) -> None:
        """Saves the model and progress into model_dir (the previous checkpoint stays until replaced)."""
        if self.model_dir is None:
            return
        previous = (read_manifest(self.model_dir) or {}).get("checkpoint")
        name = self._save_model(self.model_dir)
        write_json_atomic(self.model_dir / MANIFEST, self._manifest(name))
        write_json_atomic(self.model_dir / LOADER_FILE, LOADER)
        if previous and previous != name:
            (self.model_dir / previous).unlink(missing_ok=True)

    # -- data ------------------------------------------------------------------------------
    def _prepare_spec(self, dataset: Any) -> None:
        if self.spec is not None:
            return
        given = self._given_spec
        exclude = [self.weight_column] if self.weight_column else []
        spec = fitted_spec(given, dataset, self.label, exclude)
        self.spec = spec
        if self.model_dir is not None:
            self.model_dir.mkdir(parents=True, exist_ok=True)
            self._write_spec(self.model_dir)

    def _encode(self, batch: dict[str, np.ndarray], labelled: bool = True):
        spec = self._fitted_spec()
        check_columns(batch, spec_columns(spec), "feature spec column")
        features = spec.transform(batch)
        if not labelled:
            return features, None, None
        check_columns(batch, [self.label], "label column")
        targets = self.head.encode_labels(batch[self.label], self.label)
        weights = None
        if self.weight_column is not None:
            check_columns(batch, [self.weight_column], "weight column")
            weights = np.asarray(batch[self.weight_column], dtype=np.float32).reshape(-1)
            if np.isnan(weights).any() or (weights < 0).any():
                raise EstimatorError(f"Weight column {self.weight_column!r} has missing or negative values.")
        return features, targets, weights

    def _check_data(self, dataset: Any, labelled: bool = True) -> dict[str, np.ndarray]:
        first = first_batch(dataset)
        if labelled:
            check_columns(first, [self.label], "label column")
            if self.weight_column:
                check_columns(first, [self.weight_column], "weight column")
        return first

    # -- the vocabulary --------------------------------------------------------------------
    def train(
        self, data: Any, epochs: int | None = None, steps: int | None = None, _on_epoch_end: EpochHook | None = None
    ) -> BaseEstimator:
        """Trains on ``data``; with a model_dir, checkpoints as it goes and resumes from it.

        Args:
            data: a lf.data Dataset, a pandas DataFrame, or a CSV/Parquet path.
            epochs: train until this many epochs (boosting rounds for trees) are done in all,
                counting those already in model_dir (so a rerun after a kill resumes).
            steps: train this many more batches (boosting rounds for trees).

        Returns:
            The estimator (trained).

        Example:
            >>> est = lf.estimators.DNNClassifier(label="y", hidden_units=[32, 16], n_classes=3)
            >>> est.train("train.csv", epochs=5)
        """
        for name, value in (("epochs", epochs), ("steps", steps)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise EstimatorError(f"{name}={value!r} must be a positive whole number.")
        if epochs is not None and steps is not None:
            raise EstimatorError("Give epochs= or steps=, not both.")
        dataset = as_dataset(data)
        self._check_data(dataset)
        self._prepare_spec(dataset)
        check_columns(first_batch(dataset), spec_columns(self.spec), "feature spec column")
        # a DataFrame is in memory already: its encoded rows may be kept for the later epochs
        self._train_data_in_memory = isinstance(data, pd.DataFrame)
        try:
            self._fit(dataset, epochs, steps, _on_epoch_end)
        finally:
            self._train_data_in_memory = False
        tracking.save_to_run(self)
        return self

    def _collect(self, data: Any, labelled: bool):
        self._require_trained("evaluate" if labelled else "predict")
        dataset = as_dataset(data)
        self._check_data(dataset, labelled)
        for batch in batches(dataset, max(self.batch_size, 1024)).chunks():
            features, targets, weights = self._encode(batch, labelled)
            yield self._outputs(features), targets, weights

    def evaluate(self, data: Any) -> dict[str, float]:
        """Metrics on labelled ``data`` (tf.estimator's keys); recorded as the run's evaluation.

        Args:
            data: a lf.data Dataset, a pandas DataFrame, or a CSV/Parquet path, with the label.

        Returns:
            Classifiers: loss, average_loss, accuracy, accuracy_baseline, auc,
            auc_precision_recall, precision, recall (and label/mean, prediction/mean for
            binary); regressors: loss, average_loss, mse, mae, r2, label/mean,
            prediction/mean; both: global_step.

        Example:
            >>> est.evaluate(test_frame)["accuracy"]
        """
        outputs, targets, weights = [], [], []
        for out, target, weight in self._collect(data, labelled=True):
            outputs.append(out)
            targets.append(target)
            if weight is not None:
                weights.append(weight)
        metrics = self.head.metrics(
            np.concatenate(targets),
            np.concatenate(outputs),
            self.model_outputs,
            np.concatenate(weights) if weights else None,
        )
        metrics["global_step"] = float(self.global_step)
        tracking.record_evaluation(metrics)
        return metrics

    def predict(self, data: Any, keys: Sequence[str] | str | None = None) -> pd.DataFrame:
        """Predictions for ``data`` (the label column may be there or not).

        Args:
            data: a lf.data Dataset, a pandas DataFrame, or a CSV/Parquet path.
            keys: which prediction keys to return (all by default).

        Returns:
            A DataFrame, one row per example: ``predictions`` (regressors); ``logits``,
            ``logistic`` (binary), ``probabilities``, ``class_ids``, ``classes``,
            ``all_class_ids``, ``all_classes`` (classifiers).

        Example:
            >>> est.predict(new_rows, keys=["classes", "probabilities"])
        """
        frames = [
            self.head.predictions(out, self.model_outputs, keys) for out, _, _ in self._collect(data, labelled=False)
        ]
        return (
            pd.concat(frames, ignore_index=True)
            if frames
            else self.head.predictions(np.zeros((0, self.head.output_units)), self.model_outputs, keys)
        )

    def _require_trained(self, what: str) -> None:
        if not self.trained:
            raise NotTrainedError(
                f"{self.kind}.{what}() needs a trained estimator: call train() first "
                "(or lf.estimators.load(model_dir) for one trained before)."
            )

    # -- saving and export -----------------------------------------------------------------
    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Writes the trained estimator (manifest, fitted spec, model) into ``folder``.

        Args:
            folder: a new or empty folder, or one holding this same estimator.

        Returns:
            The folder; ``lf.estimators.load(folder)`` reads it back.

        Example:
            >>> est.save("models/churn")
        """
        self._require_trained("save")
        folder = Path(folder)
        manifest = read_manifest(folder)
        if manifest is not None:
            check_compatible(folder, manifest, self.kind, self.config())
        elif folder.exists() and any(folder.iterdir()):
            raise ModelDirError(f"{folder} is not empty and holds no estimator; save into a new folder.")
        self._write_spec(folder)
        name = self._save_model(folder)
        write_json_atomic(folder / MANIFEST, self._manifest(name))
        write_json_atomic(folder / LOADER_FILE, LOADER)
        if manifest and manifest.get("checkpoint") not in (None, name):
            (folder / manifest["checkpoint"]).unlink(missing_ok=True)
        return folder

    def export_parts(self) -> dict[str, Any]:
        """The trained model and what a serving bundle needs to wrap it with raw inputs.

        Returns:
            ``kind`` ("keras" or "xgboost"), ``model`` (over the spec's encoded inputs),
            ``feature_spec``, ``head``, ``class_labels``, ``model_outputs``
            ("logits", "probabilities" or "predictions") and ``encode`` (raw columns -> the
            model's inputs: ``feature_spec.transform``, with a canned Keras model's numeric
            columns packed into one ``numeric_pack`` array).

        Example:
            >>> parts = est.export_parts(); parts["head"]
        """
        self._require_trained("export_parts")
        return {
            "kind": self.export_kind,
            "model": self._export_model(),
            "feature_spec": self.spec,
            "head": self.head.kind,
            "class_labels": self.head.class_labels,
            "model_outputs": self.model_outputs,
            "encode": lambda batch: self._encode(batch, labelled=False)[0],
        }

    export_kind = "keras"

    def _export_model(self) -> Any:
        raise NotImplementedError

    def __repr__(self) -> str:
        """The class and the parameters given other values than their defaults (scikit-learn's style)."""
        defaults = inspect.signature(type(self)).parameters
        shown = []
        for name, value in self._params.items():
            default = defaults[name].default if name in defaults else inspect.Parameter.empty
            if default is inspect.Parameter.empty or not _same(value, default):
                shown.append(f"{name}={_shown(value)}")
        return f"{self.kind}({', '.join(shown)})"


def _shown(value: Any) -> str:
    """A parameter's value in a repr: a function by its name, anything else by its repr."""
    if inspect.isfunction(value) or inspect.ismethod(value):
        return value.__qualname__
    return repr(value)


def _same(value: Any, default: Any) -> bool:
    try:
        return bool(value == default) and type(value) is type(default)
    except Exception:  # noqa: BLE001 - values whose == is not a plain bool (arrays)
        return False


def load(model_dir: str | os.PathLike[str]) -> BaseEstimator:
    """The estimator saved in ``model_dir`` (by training there or by ``save``), ready to use.

    Args:
        model_dir: a folder written by an estimator.

    Returns:
        The estimator, trained as far as its last checkpoint; training it again resumes there.

    Example:
        >>> est = lf.estimators.load("models/churn")
        >>> est.predict(rows)
    """
    folder = Path(model_dir)
    manifest = read_manifest(folder)
    if manifest is None:
        raise ModelDirError(f"{folder} holds no estimator (no {MANIFEST}).")
    cls = ESTIMATOR_KINDS.get(manifest["kind"])
    if cls is None:
        raise ModelDirError(f"{folder} holds a {manifest['kind']!r}, which is not an estimator this layerflow knows.")
    accepted = inspect.signature(cls).parameters
    # training settings are absent from folders written before they were kept
    training = {k: v for k, v in manifest.get("training", {}).items() if k in accepted}
    return cls._from_config(manifest["config"], **training, model_dir=folder)
