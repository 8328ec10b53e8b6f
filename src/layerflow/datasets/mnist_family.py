"""MNIST and Fashion-MNIST, read from local IDX files; nothing is downloaded."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from layerflow.datasets.idx import read_idx
from layerflow.errors import InvalidValueError, LayerflowError

SYSTEM_DATA_DIR = Path("/usr/share/datasets")

_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

_INSTALL_HINTS = {
    "fashion-mnist": "sudo apt-get install dataset-fashion-mnist   (Debian/Ubuntu; files land in /usr/share/datasets/fashion-mnist)",
    "mnist": "download the four MNIST IDX files once and place them in one of the folders above",
}

FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


class DatasetNotFoundError(LayerflowError, FileNotFoundError):
    """The IDX files of a dataset are in none of the folders layerflow looks in."""


def user_cache_dir() -> Path:
    """The per-user folder layerflow looks in last (``$XDG_CACHE_HOME/layerflow/datasets``)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "layerflow" / "datasets"


def candidate_dirs(name: str) -> list[Path]:
    """Folders searched for dataset ``name``, in order."""
    dirs = []
    if os.environ.get("LAYERFLOW_DATA"):
        dirs.append(Path(os.environ["LAYERFLOW_DATA"]) / name)
    dirs += [SYSTEM_DATA_DIR / name, user_cache_dir() / name]
    return dirs


def _find_file(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    return None


def locate(name: str) -> dict[str, Path]:
    """Finds the four IDX files of ``name`` in the first folder that has them all."""
    searched = candidate_dirs(name)
    for folder in searched:
        found = {key: _find_file(folder, stem) for key, stem in _FILES.items()}
        if all(found.values()):
            return found  # type: ignore[return-value]
    folders = "\n  ".join(str(d) for d in searched)
    files = ", ".join(f"{stem}[.gz]" for stem in _FILES.values())
    raise DatasetNotFoundError(
        f"The {name} dataset was not found. layerflow never downloads data; it looks for "
        f"the files {files} in:\n  {folders}\n"
        f"To install it: {_INSTALL_HINTS[name]}.\n"
        f"Or set LAYERFLOW_DATA to a folder holding a '{name}' subfolder with those files."
    )


def load_idx_dataset(name: str) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Loads ``(x_train, y_train), (x_test, y_test)`` of an MNIST-family dataset."""
    paths = locate(name)
    arrays = {key: read_idx(path) for key, path in paths.items()}
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise InvalidValueError(
                f"{name} {split} files do not fit together: images {images.shape} "
                f"({paths[f'{split}_images']}), labels {labels.shape} ({paths[f'{split}_labels']}); "
                "expected (n, rows, cols) images and n labels."
            )
    return (arrays["train_images"], arrays["train_labels"]), (arrays["test_images"], arrays["test_labels"])


def fashion_mnist():
    """Loads Fashion-MNIST as Keras does: ``(x_train, y_train), (x_test, y_test)``.

    Images are uint8 arrays of shape (n, 28, 28); labels are uint8 class ids 0-9
    (names in ``FASHION_MNIST_CLASSES``). Files are read from ``$LAYERFLOW_DATA/fashion-mnist``,
    then ``/usr/share/datasets/fashion-mnist``, then the user cache.

    Example:
        >>> (x_train, y_train), (x_test, y_test) = layerflow.datasets.fashion_mnist()
        >>> x_train.shape
        (60000, 28, 28)
    """
    return load_idx_dataset("fashion-mnist")


def mnist():
    """Loads MNIST as Keras does: ``(x_train, y_train), (x_test, y_test)`` (uint8, 28x28).

    Files are read from ``$LAYERFLOW_DATA/mnist``, ``/usr/share/datasets/mnist`` or the
    user cache; nothing is downloaded.
    """
    return load_idx_dataset("mnist")
