"""Boosted trees on XGBoost, trained from a stream of batches through external memory.

The spec encodes each batch (numbers as they are, categories as their ids); an
``xgboost.DataIter`` hands the batches to an ``ExtMemQuantileDMatrix`` whose pages live in
a cache folder on disk, so the table of features is never held in memory whole.

What external memory does not bound: XGBoost keeps per-row state in memory whatever the
width of the table (measured with XGBoost 3.2, binary objective, depth 6): labels 4 bytes
(about 7 a row while the matrix is built), then the prediction cache 4, gradient pairs 8,
the row-partition indices 8, the partition builder's blocks 8 growing towards 16 over rounds
and each round's leaf positions 4: about 35 bytes a row more after the first round and 47
after twenty. Evaluating the training matrix every round keeps one more copy of the
predictions (4 bytes a row), so it is done only where its numbers go somewhere: inside a
tracked run (``metrics.jsonl``).
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from layerflow.estimators import tracking
from layerflow.estimators.base import BaseEstimator, EpochHook
from layerflow.estimators.errors import EstimatorError
from layerflow.estimators.heads import BINARY, REGRESSION
from layerflow.estimators.tree_batches import DMatrixBatches, feature_matrix

MODEL_FILE = "trees.ubj"
PRUNING_MODES = ("none", "pre", "post")


class _BoostedTrees(BaseEstimator):
    def __init__(
        self,
        label: str,
        feature_columns: Any,
        *,
        n_trees: int,
        max_depth: int,
        learning_rate: float,
        l1: float,
        l2: float,
        tree_complexity: float,
        min_node_weight: float,
        center_bias: bool,
        pruning_mode: str,
        max_bin: int,
        weight_column: str | None,
        model_dir: str | os.PathLike[str] | None,
        n_classes: int | None,
        label_vocabulary: Sequence[str] | None,
        batch_size: int | None,
        seed: int | None,
        n_threads: int | None,
    ) -> None:
        super().__init__(
            label, feature_columns, weight_column, model_dir, n_classes, label_vocabulary, batch_size, seed
        )
        for name, value, low in (("n_trees", n_trees, 1), ("max_depth", max_depth, 1), ("max_bin", max_bin, 2)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise EstimatorError(f"{name}={value!r} must be a whole number >= {low}.")
        rates: tuple[tuple[str, float], ...] = (
            ("learning_rate", learning_rate),
            ("l1", l1),
            ("l2", l2),
            ("tree_complexity", tree_complexity),
            ("min_node_weight", min_node_weight),
        )
        for name, rate in rates:
            if isinstance(rate, bool) or not isinstance(rate, (int, float)) or rate < 0:
                raise EstimatorError(f"{name}={rate!r} must be a number >= 0.")
        if learning_rate <= 0:
            raise EstimatorError(f"learning_rate={learning_rate!r} must be above 0.")
        if pruning_mode not in PRUNING_MODES:
            raise EstimatorError(f"pruning_mode={pruning_mode!r} must be one of {PRUNING_MODES}.")
        if pruning_mode == "none" and tree_complexity > 0:
            raise EstimatorError("tree_complexity > 0 prunes splits: give pruning_mode='pre' or 'post' with it.")
        if pruning_mode != "none" and tree_complexity <= 0:
            raise EstimatorError(
                f"pruning_mode={pruning_mode!r} needs tree_complexity > 0 (the gain a split must exceed)."
            )
        self.n_trees, self.max_depth, self.max_bin = n_trees, max_depth, max_bin
        self.learning_rate, self.l1, self.l2 = float(learning_rate), float(l1), float(l2)
        self.tree_complexity, self.min_node_weight = float(tree_complexity), float(min_node_weight)
        self.center_bias, self.pruning_mode = bool(center_bias), pruning_mode
        self.n_threads = n_threads
        self.booster: Any = None  # an xgboost.Booster once trained or loaded

    export_kind = "xgboost"

    @property
    def model_outputs(self) -> str:
        return "probabilities" if self.head.is_classifier else "predictions"

    def _options(self) -> dict[str, Any]:
        return {
            "n_trees": self.n_trees,
            "max_depth": self.max_depth,
            "learning_rate": self.learning_rate,
            "l1": self.l1,
            "l2": self.l2,
            "tree_complexity": self.tree_complexity,
            "min_node_weight": self.min_node_weight,
            "center_bias": self.center_bias,
            "pruning_mode": self.pruning_mode,
            "max_bin": self.max_bin,
        }

    @property
    def trained(self) -> bool:
        return self.booster is not None and self.booster.num_boosted_rounds() > 0

    @property
    def _feature_names(self) -> list[str]:
        return list(self._fitted_spec().input_names)

    def params(self) -> dict[str, Any]:
        """The XGBoost parameters these options map to."""
        params: dict[str, Any] = {
            "tree_method": "hist",
            "max_depth": self.max_depth,
            "eta": self.learning_rate,
            "alpha": self.l1,
            "lambda": self.l2,
            "gamma": self.tree_complexity,
            "min_child_weight": self.min_node_weight,
            "max_bin": self.max_bin,
            "seed": self.seed or 0,
        }
        if self.n_threads:
            params["nthread"] = self.n_threads
        if self.pruning_mode == "post":
            params["updater"] = "grow_quantile_histmaker,prune"
        if self.head.kind == REGRESSION:
            params.update(objective="reg:squarederror", eval_metric="rmse")
        elif self.head.kind == BINARY:
            params.update(objective="binary:logistic", eval_metric="logloss")
        else:
            params.update(objective="multi:softprob", num_class=self.head.n_classes, eval_metric="mlogloss")
        if not self.center_bias:
            params["base_score"] = 0.5 if self.head.kind == BINARY else 0.0 if self.head.kind == REGRESSION else 0.5
        return params

    def train(
        self,
        data: Any,
        epochs: int | None = None,
        steps: int | None = None,
        _on_epoch_end: EpochHook | None = None,
        *,
        workers: int | None = None,
        max_failures: int = 0,
    ) -> _BoostedTrees:
        """Trains on ``data`` in this process, or with ``workers=N`` on N Ray Train workers.

        Args:
            data: a lf.data Dataset, a pandas DataFrame, or a CSV/Parquet path.
            epochs: boosting rounds in all, counting those already in model_dir.
            steps: this many more boosting rounds.
            workers: train on this many Ray Train workers (XGBoost's collective, each worker its
                shard of the rows; ``estimators/distributed_trees.py``); None trains here.
            max_failures: with ``workers``, how many times a failed worker group restarts from
                the last round's checkpoint (Ray Train's FailureConfig).

        Returns:
            The estimator (trained).

        Example:
            >>> est.train("big.csv", workers=4, max_failures=2)
        """
        if workers is None:
            if max_failures:
                raise EstimatorError("max_failures= applies to training on workers: give workers= with it.")
            super().train(data, epochs, steps, _on_epoch_end)
            return self
        from layerflow.estimators.distributed_trees import train_on_workers

        return train_on_workers(
            self,
            data,
            epochs=epochs,
            steps=steps,
            workers=workers,
            max_failures=max_failures,
            _on_epoch_end=_on_epoch_end,
        )

    def _fit(self, dataset: Any, epochs: int | None, steps: int | None, on_epoch_end: EpochHook | None) -> None:
        import xgboost as xgb

        done = self.booster.num_boosted_rounds() if self.booster is not None else 0
        target = min(self.n_trees, epochs) if epochs is not None else self.n_trees
        if steps is not None:
            target = min(self.n_trees, done + steps)
        if target <= done:
            return
        estimator = self

        class Checkpoint(xgb.callback.TrainingCallback):
            def after_iteration(self, model, epoch, evals_log):
                estimator.booster = model
                estimator.epochs_done = estimator.global_step = model.num_boosted_rounds()
                estimator._checkpoint()
                metrics = {f"train_{name}": float(values[-1]) for name, values in evals_log.get("train", {}).items()}
                stop = False
                if on_epoch_end is not None:
                    extra, stop = on_epoch_end(estimator, estimator.epochs_done)
                    metrics.update(extra or {})
                tracking.record_epoch(estimator.epochs_done, metrics)
                return bool(stop)

        with tempfile.TemporaryDirectory(prefix="layerflow-xgb-") as cache:
            data_iter = DMatrixBatches.make(self, dataset, os.path.join(cache, "pages"))
            matrix = xgb.ExtMemQuantileDMatrix(data_iter, max_bin=self.max_bin, missing=np.nan, nthread=self.n_threads)
            with warnings.catch_warnings():  # post-pruning names its updaters, which xgboost warns about
                warnings.filterwarnings("ignore", message=".*manually specified the `updater`")
                self.booster = xgb.train(
                    self.params(),
                    matrix,
                    num_boost_round=target - done,
                    xgb_model=self.booster,
                    evals=self._train_evals(matrix),
                    verbose_eval=False,
                    callbacks=[Checkpoint()],
                )
            del matrix, data_iter  # frees the cache pages before their folder goes
        self.epochs_done = self.global_step = self.booster.num_boosted_rounds()

    @staticmethod
    def _train_evals(matrix: Any) -> list[tuple[Any, str]]:
        """The training matrix as XGBoost's eval set inside a tracked run (its per-round metrics are
        recorded there); none outside one, which saves a copy of the predictions (4 bytes a row)
        and a pass over them each round. The trees are the same either way."""
        inside_a_run = tracking.run_model_dir() is not None
        return [(matrix, "train")] if inside_a_run else []

    def _outputs(self, features: dict[str, np.ndarray]) -> np.ndarray:
        return np.asarray(self.booster.inplace_predict(feature_matrix(features, self._feature_names)))

    def _save_model(self, folder: Path) -> str:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".saving-{MODEL_FILE}"
        self.booster.save_model(tmp)
        os.replace(tmp, folder / MODEL_FILE)
        return MODEL_FILE

    def _load_model(self, path: Path) -> None:
        import xgboost as xgb

        self.booster = xgb.Booster()
        self.booster.load_model(path)
        self.booster.feature_names = self._feature_names if self.spec is not None else self.booster.feature_names

    def _export_model(self) -> Any:
        # a copy without names: converters (onnxmltools) read features as f0, f1, ... in the
        # order of export_parts()["feature_names"]
        booster = self.booster.copy()
        booster.feature_names = None
        return booster

    def export_parts(self) -> dict[str, Any]:
        parts = super().export_parts()
        parts["feature_names"] = self._feature_names
        state = self._fitted_spec().state()
        parts["feature_encoding"] = {
            "numeric": [c["name"] for c in state["numeric"]],
            "categorical_ids": [c["name"] for c in state["categorical"]],
        }
        return parts


_TREE_ARGS = """
        label: the label column.
        feature_columns: a lf.feature_spec (fitted or not); None builds one from the column types.
        n_trees: boosting rounds (for multiclass, each round grows one tree per class).
        max_depth: depth of each tree; learning_rate: shrinkage of each tree.
        l1, l2: regularisation of the leaf weights; tree_complexity: the gain a split must
            exceed (with pruning_mode "pre" or "post"); min_node_weight: least hessian per leaf.
        center_bias: start from the label's mean (log-odds) instead of 0.
        pruning_mode: "none", "pre" (splits below tree_complexity are not made) or "post"
            (trees are grown, then pruned).
        max_bin: histogram bins per feature.
        weight_column, model_dir, batch_size (rows per streamed batch), seed, n_threads."""


class BoostedTreesRegressor(_BoostedTrees):
    __doc__ = f"""Gradient-boosted trees for a numeric label (XGBoost, external memory).

    Args:{_TREE_ARGS}

    Example:
        >>> est = lf.estimators.BoostedTreesRegressor(label="price", n_trees=200, max_depth=6)
        >>> est.train("sales/*.parquet").evaluate("test.parquet")["mae"]
    """
    head_kind = REGRESSION

    def __init__(
        self,
        label: str,
        feature_columns: Any = None,
        *,
        n_trees: int = 100,
        max_depth: int = 6,
        learning_rate: float = 0.1,
        l1: float = 0.0,
        l2: float = 1.0,
        tree_complexity: float = 0.0,
        min_node_weight: float = 0.0,
        center_bias: bool = True,
        pruning_mode: str = "none",
        max_bin: int = 256,
        weight_column: str | None = None,
        model_dir: str | os.PathLike[str] | None = None,
        batch_size: int = 65_536,
        seed: int | None = None,
        n_threads: int | None = None,
    ) -> None:
        super().__init__(
            label,
            feature_columns,
            n_trees=n_trees,
            max_depth=max_depth,
            learning_rate=learning_rate,
            l1=l1,
            l2=l2,
            tree_complexity=tree_complexity,
            min_node_weight=min_node_weight,
            center_bias=center_bias,
            pruning_mode=pruning_mode,
            max_bin=max_bin,
            weight_column=weight_column,
            model_dir=model_dir,
            n_classes=None,
            label_vocabulary=None,
            batch_size=batch_size,
            seed=seed,
            n_threads=n_threads,
        )


class BoostedTreesClassifier(_BoostedTrees):
    __doc__ = f"""Gradient-boosted trees classifier (XGBoost, external memory).

    Args:{_TREE_ARGS}
        n_classes: number of classes (2 by default); label_vocabulary: the class labels.

    Example:
        >>> est = lf.estimators.BoostedTreesClassifier(label="y", n_classes=10, n_trees=100)
        >>> est.train(train).predict(test, keys=["classes"])
    """
    head_kind = BINARY

    def __init__(
        self,
        label: str,
        feature_columns: Any = None,
        *,
        n_trees: int = 100,
        max_depth: int = 6,
        learning_rate: float = 0.1,
        l1: float = 0.0,
        l2: float = 1.0,
        tree_complexity: float = 0.0,
        min_node_weight: float = 0.0,
        center_bias: bool = True,
        pruning_mode: str = "none",
        max_bin: int = 256,
        weight_column: str | None = None,
        model_dir: str | os.PathLike[str] | None = None,
        n_classes: int | None = None,
        label_vocabulary: Sequence[str] | None = None,
        batch_size: int = 65_536,
        seed: int | None = None,
        n_threads: int | None = None,
    ) -> None:
        super().__init__(
            label,
            feature_columns,
            n_trees=n_trees,
            max_depth=max_depth,
            learning_rate=learning_rate,
            l1=l1,
            l2=l2,
            tree_complexity=tree_complexity,
            min_node_weight=min_node_weight,
            center_bias=center_bias,
            pruning_mode=pruning_mode,
            max_bin=max_bin,
            weight_column=weight_column,
            model_dir=model_dir,
            n_classes=n_classes,
            label_vocabulary=label_vocabulary,
            batch_size=batch_size,
            seed=seed,
            n_threads=n_threads,
        )
