"""An estimator's encoded batches as XGBoost reads them: one float32 matrix a batch, through a DataIter.

Shared by the boosted trees trained here (``boosted_trees.py``) and on Ray Train workers
(``distributed_trees.py``), each building its external-memory matrix from it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from layerflow.estimators.inputs import batches


def feature_matrix(features: dict[str, np.ndarray], names: Sequence[str]) -> np.ndarray:
    """The encoded columns of a batch as one float32 matrix, in ``names`` order."""
    return np.column_stack([np.asarray(features[name], dtype=np.float32).reshape(-1) for name in names])


class DMatrixBatches:
    """Builds an ``xgboost.DataIter`` over an estimator's encoded batches (made lazily: xgboost is imported late)."""

    @staticmethod
    def make(estimator: Any, dataset: Any, cache_prefix: str) -> Any:
        import xgboost as xgb

        class BatchIter(xgb.DataIter):
            def __init__(self):
                self._batches = None
                super().__init__(cache_prefix=cache_prefix)

            def next(self, input_data: Callable[..., None]) -> bool:
                if self._batches is None:
                    self._batches = batches(dataset, estimator.batch_size).chunks()
                batch = next(self._batches, None)
                if batch is None:
                    return False
                features, targets, weights = estimator._encode(batch)
                input_data(
                    data=feature_matrix(features, estimator._feature_names),
                    label=targets,
                    weight=weights,
                    feature_names=estimator._feature_names,
                )
                return True

            def reset(self) -> None:
                self._batches = None

        return BatchIter()
