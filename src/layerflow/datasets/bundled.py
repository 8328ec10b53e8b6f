"""Small datasets that ship inside scikit-learn, for quick experiments and tabular models."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from layerflow.errors import InvalidValueError, training_stack

if TYPE_CHECKING:
    import pandas as pd


def _split(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if not 0.0 < test_fraction < 1.0:
        raise InvalidValueError(f"test_fraction={test_fraction!r} must be between 0 and 1 (exclusive).")
    order = np.random.default_rng(seed).permutation(n)
    n_test = int(round(n * test_fraction))
    return order[n_test:], order[:n_test]


@training_stack("lf.datasets.digits")
def digits(test_fraction: float = 0.2, seed: int = 0):
    """Loads the 8x8 handwritten digits as ``(x_train, y_train), (x_test, y_test)``.

    Images are uint8 in 0-16 with shape (n, 8, 8); labels 0-9. The split is seeded.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = bunch.images.astype(np.uint8)
    labels = bunch.target.astype(np.uint8)
    train, test = _split(len(labels), test_fraction, seed)
    return (images[train], labels[train]), (images[test], labels[test])


@training_stack("lf.datasets.breast_cancer")
def breast_cancer() -> pd.DataFrame:
    """The Wisconsin breast-cancer table: 30 numeric columns and a 0/1 ``target`` column."""
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    return frame


@training_stack("lf.datasets.iris")
def iris() -> pd.DataFrame:
    """The iris table: four numeric columns and the ``species`` name (a string column)."""
    from sklearn.datasets import load_iris

    bunch = load_iris(as_frame=True)
    frame = bunch.frame.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))
    frame["species"] = np.asarray(bunch.target_names)[frame.pop("target").to_numpy()]
    return frame
