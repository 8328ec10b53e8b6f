"""Datasets that load from local files or installed packages; none is downloaded.

Example:
    >>> (x_train, y_train), (x_test, y_test) = layerflow.datasets.fashion_mnist()
"""

from layerflow.datasets.bundled import breast_cancer, digits, iris
from layerflow.datasets.idx import IdxFormatError, read_idx, write_idx
from layerflow.datasets.mnist_family import (
    FASHION_MNIST_CLASSES,
    DatasetNotFoundError,
    fashion_mnist,
    mnist,
)

__all__ = [
    "FASHION_MNIST_CLASSES",
    "DatasetNotFoundError",
    "IdxFormatError",
    "breast_cancer",
    "digits",
    "fashion_mnist",
    "iris",
    "mnist",
    "read_idx",
    "write_idx",
]
