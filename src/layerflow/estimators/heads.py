"""Heads: what a label means (regression, binary or multiclass), its metrics and prediction keys.

A head turns raw label values into training targets (checking them), model outputs into
the tf.estimator prediction keys, and labels plus outputs into the tf.estimator metrics.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from layerflow.estimators.errors import EstimatorError

REGRESSION, BINARY, MULTICLASS = "regression", "binary", "multiclass"
REGRESSION_KEYS = ("predictions",)
CLASSIFIER_KEYS = ("logits", "logistic", "probabilities", "class_ids", "classes", "all_class_ids", "all_classes")


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


class Head:
    """The label side of an estimator.

    Args:
        kind: ``"regression"``, ``"binary"`` or ``"multiclass"``.
        n_classes: number of classes of a classifier (2 for binary).
        label_vocabulary: the class labels as strings (their order gives the class ids).
    """

    def __init__(self, kind: str, n_classes: int | None = None, label_vocabulary: Sequence[str] | None = None):
        self.kind = kind
        self.label_vocabulary = [str(v) for v in label_vocabulary] if label_vocabulary is not None else None
        if kind == REGRESSION:
            self.n_classes = None
            return
        if self.label_vocabulary is not None:
            if len(set(self.label_vocabulary)) != len(self.label_vocabulary) or len(self.label_vocabulary) < 2:
                raise EstimatorError(f"label_vocabulary={label_vocabulary!r} must hold at least two distinct labels.")
            if n_classes is not None and n_classes != len(self.label_vocabulary):
                raise EstimatorError(
                    f"n_classes={n_classes} does not match label_vocabulary, which has "
                    f"{len(self.label_vocabulary)} labels."
                )
            n_classes = len(self.label_vocabulary)
        n_classes = 2 if n_classes is None else n_classes
        if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) or n_classes < 2:
            raise EstimatorError(f"n_classes={n_classes!r} must be a whole number of at least 2.")
        self.n_classes = int(n_classes)
        self.kind = BINARY if self.n_classes == 2 else MULTICLASS
        self._index = {label: i for i, label in enumerate(self.label_vocabulary or [])}

    @property
    def is_classifier(self) -> bool:
        return self.kind != REGRESSION

    @property
    def _classes(self) -> int:
        """n_classes of a classifier head (the callers are all on the classifier path)."""
        assert self.n_classes is not None, "only a regression head has no n_classes, and it is never asked for one"
        return self.n_classes

    @property
    def output_units(self) -> int:
        """Width of the model's output: 1 (regression, binary logit) or n_classes logits."""
        return self._classes if self.kind == MULTICLASS else 1

    @property
    def class_labels(self) -> list[str] | None:
        if not self.is_classifier:
            return None
        return self.label_vocabulary or [str(i) for i in range(self._classes)]

    def config(self) -> dict[str, Any]:
        return {"head": self.kind, "n_classes": self.n_classes, "label_vocabulary": self.label_vocabulary}

    # -- labels ----------------------------------------------------------------------------
    def encode_labels(self, values: np.ndarray, label: str) -> np.ndarray:
        """Training targets for raw label values (float32 for regression, int class ids otherwise)."""
        values = np.asarray(values).reshape(-1)
        if not self.is_classifier:
            try:
                target = values.astype(np.float32)
            except (TypeError, ValueError):
                raise EstimatorError(
                    f"Label column {label!r} of a regressor must hold numbers; "
                    f"got values such as {values[:3].tolist()}."
                ) from None
            if np.isnan(target).any():
                raise EstimatorError(
                    f"Label column {label!r} has missing (NaN) values "
                    f"({int(np.isnan(target).sum())} in this batch); drop or fill them."
                )
            return target
        if self.label_vocabulary is not None:
            text = (
                np.asarray([("" if v is None else str(v)) for v in values], dtype=object)
                if values.dtype.kind not in "US"
                else values.astype(str)
            )
            unique, inverse = np.unique(text.astype(str), return_inverse=True)
            unknown = [str(u) for u in unique if u not in self._index]
            if unknown:
                raise EstimatorError(
                    f"Label column {label!r} holds {unknown[:5]} which are not in "
                    f"label_vocabulary={self.label_vocabulary}."
                )
            ids = np.asarray([self._index[u] for u in unique], dtype=np.int64)
            return ids[inverse.reshape(-1)]
        if values.dtype.kind not in "biuf":
            raise EstimatorError(
                f"Label column {label!r} holds strings such as {values[:3].tolist()}; "
                "give label_vocabulary=[...] to name the classes."
            )
        as_float = values.astype(np.float64)
        if np.isnan(as_float).any():
            raise EstimatorError(
                f"Label column {label!r} has missing (NaN) values "
                f"({int(np.isnan(as_float).sum())} in this batch); drop or fill them."
            )
        if (as_float != np.round(as_float)).any() or (as_float < 0).any():
            raise EstimatorError(
                f"Label column {label!r} of a classifier must hold class ids 0..n_classes-1; "
                f"got values such as {as_float[(as_float != np.round(as_float)) | (as_float < 0)][:3].tolist()}."
            )
        if as_float.max() >= self.n_classes:
            raise EstimatorError(
                f"Label column {label!r} holds class id {int(as_float.max())}, but "
                f"n_classes={self.n_classes}; pass n_classes={int(as_float.max()) + 1} or more."
            )
        return as_float.astype(np.int64)

    # -- outputs ---------------------------------------------------------------------------
    def probabilities(self, outputs: np.ndarray, kind: str) -> np.ndarray:
        """(n, n_classes) probabilities from ``logits`` or ``probabilities`` outputs."""
        outputs = np.asarray(outputs, dtype=np.float64)
        if self.kind == BINARY:
            p = outputs.reshape(-1) if kind == "probabilities" else 1.0 / (1.0 + np.exp(-outputs.reshape(-1)))
            return np.stack([1.0 - p, p], axis=1)
        outputs = outputs.reshape(len(outputs), -1)
        return outputs if kind == "probabilities" else _softmax(outputs)

    def predictions(self, outputs: np.ndarray, kind: str, keys: Sequence[str] | None = None) -> pd.DataFrame:
        """The tf.estimator prediction keys for a block of model outputs, one row per example."""
        allowed = (
            REGRESSION_KEYS
            if not self.is_classifier
            else (CLASSIFIER_KEYS if self.kind == BINARY else tuple(k for k in CLASSIFIER_KEYS if k != "logistic"))
        )
        keys = list(allowed if keys is None else ([keys] if isinstance(keys, str) else keys))
        unknown = [k for k in keys if k not in allowed]
        if unknown:
            raise EstimatorError(
                f"Prediction keys {unknown} are not produced by this estimator; expected some of {list(allowed)}."
            )
        outputs = np.asarray(outputs)
        n = len(outputs)
        if not self.is_classifier:
            return pd.DataFrame({"predictions": outputs.reshape(-1).astype(np.float64)})
        probabilities = self.probabilities(outputs, kind)
        if kind == "probabilities":
            clipped = np.clip(probabilities, 1e-12, 1.0)
            logits = (
                (np.log(clipped[:, 1]) - np.log(clipped[:, 0]))[:, None] if self.kind == BINARY else np.log(clipped)
            )
        else:
            logits = outputs.reshape(n, -1).astype(np.float64)
        class_ids = probabilities.argmax(axis=1)
        labels = np.asarray(self.class_labels, dtype=object)
        columns: dict[str, Any] = {
            "logits": list(logits),
            "logistic": probabilities[:, 1] if self.kind == BINARY else None,
            "probabilities": list(probabilities),
            "class_ids": class_ids.astype(np.int64),
            "classes": labels[class_ids],
            "all_class_ids": [np.arange(self._classes)] * n,
            "all_classes": [labels] * n,
        }
        return pd.DataFrame({key: columns[key] for key in keys})

    # -- metrics ---------------------------------------------------------------------------
    def metrics(
        self, targets: np.ndarray, outputs: np.ndarray, kind: str, weights: np.ndarray | None = None
    ) -> dict[str, float]:
        """The tf.estimator evaluation metrics for all of the evaluation data's labels and outputs."""
        from sklearn import metrics as m

        if len(targets) == 0:
            raise EstimatorError("The evaluation data is empty.")
        w = None if weights is None else np.asarray(weights, dtype=np.float64)
        if not self.is_classifier:
            predictions = np.asarray(outputs, dtype=np.float64).reshape(-1)
            y = np.asarray(targets, dtype=np.float64)
            mse = float(np.average((predictions - y) ** 2, weights=w))
            return {
                "loss": mse,
                "average_loss": mse,
                "mse": mse,
                "mae": float(np.average(np.abs(predictions - y), weights=w)),
                "r2": float(m.r2_score(y, predictions, sample_weight=w)),
                "label/mean": float(np.average(y, weights=w)),
                "prediction/mean": float(np.average(predictions, weights=w)),
            }
        y = np.asarray(targets, dtype=np.int64)
        probabilities = self.probabilities(outputs, kind)
        picked = np.clip(probabilities[np.arange(len(y)), y], 1e-15, 1.0)
        average_loss = float(np.average(-np.log(picked), weights=w))
        predicted = probabilities.argmax(axis=1)
        frequencies = np.bincount(y, weights=w, minlength=self._classes)
        result = {
            "loss": average_loss,
            "average_loss": average_loss,
            "accuracy": float(np.average(predicted == y, weights=w)),
            "accuracy_baseline": float(frequencies.max() / frequencies.sum()),
        }
        present = np.unique(y)
        if self.kind == BINARY:
            score = probabilities[:, 1]
            both = len(present) == 2
            result.update(
                {
                    "auc": float(m.roc_auc_score(y, score, sample_weight=w)) if both else float("nan"),
                    "auc_precision_recall": float(m.average_precision_score(y, score, sample_weight=w))
                    if both
                    else float("nan"),
                    "precision": float(m.precision_score(y, predicted, sample_weight=w, zero_division=0)),
                    "recall": float(m.recall_score(y, predicted, sample_weight=w, zero_division=0)),
                    "label/mean": float(np.average(y, weights=w)),
                    "prediction/mean": float(np.average(score, weights=w)),
                }
            )
            return result
        onehot = np.eye(self._classes)[y]
        scored = [c for c in range(self._classes) if 0 < onehot[:, c].sum() < len(y)]
        result.update(
            {
                "auc": float(
                    np.mean([m.roc_auc_score(onehot[:, c], probabilities[:, c], sample_weight=w) for c in scored])
                )
                if scored
                else float("nan"),
                "auc_precision_recall": float(
                    np.mean(
                        [m.average_precision_score(onehot[:, c], probabilities[:, c], sample_weight=w) for c in scored]
                    )
                )
                if scored
                else float("nan"),
                "precision": float(m.precision_score(y, predicted, average="macro", sample_weight=w, zero_division=0)),
                "recall": float(m.recall_score(y, predicted, average="macro", sample_weight=w, zero_division=0)),
            }
        )
        return result
