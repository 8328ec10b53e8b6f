import gzip

import numpy as np
import pytest

import layerflow as lf
from layerflow.datasets import DatasetNotFoundError, IdxFormatError, read_idx, write_idx
from tests.conftest import make_idx_dataset


def test_fashion_mnist_from_debian_package_has_keras_shapes():
    (x_train, y_train), (x_test, y_test) = lf.datasets.fashion_mnist()
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert y_train.shape == (60000,) and y_test.shape == (10000,)
    assert x_train.dtype == np.uint8 and y_train.dtype == np.uint8
    assert set(np.unique(y_train)) == set(range(10))
    assert x_train.max() == 255 and x_train.min() == 0
    assert len(lf.datasets.FASHION_MNIST_CLASSES) == 10


def test_layerflow_data_takes_precedence(tmp_path, monkeypatch):
    make_idx_dataset(tmp_path / "fashion-mnist", n_train=30, n_test=7)
    monkeypatch.setenv("LAYERFLOW_DATA", str(tmp_path))
    (x_train, y_train), (x_test, y_test) = lf.datasets.fashion_mnist()
    assert x_train.shape == (30, 28, 28) and x_test.shape == (7, 28, 28)
    assert y_train.max() < 10


def test_user_cache_is_searched_last(tmp_path, monkeypatch):
    monkeypatch.setenv("LAYERFLOW_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    make_idx_dataset(tmp_path / "cache" / "layerflow" / "datasets" / "mnist", n_train=11, n_test=3)
    (x_train, _), (x_test, _) = lf.datasets.mnist()
    assert len(x_train) == 11 and len(x_test) == 3


def test_missing_files_error_says_where_and_how(tmp_path, monkeypatch):
    monkeypatch.setenv("LAYERFLOW_DATA", str(tmp_path / "nowhere"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(DatasetNotFoundError) as info:
        lf.datasets.mnist()
    message = str(info.value)
    assert str(tmp_path / "nowhere" / "mnist") in message
    assert "/usr/share/datasets/mnist" in message
    assert "train-images-idx3-ubyte" in message and "LAYERFLOW_DATA" in message
    assert "never downloads" in message


def test_idx_round_trip_and_corrupt_files(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    assert np.array_equal(read_idx(write_idx(tmp_path / "a.gz", array)), array)
    plain = write_idx(tmp_path / "b", np.arange(5, dtype=np.int32))
    assert read_idx(plain).tolist() == [0, 1, 2, 3, 4]
    truncated = tmp_path / "t.gz"
    with gzip.open(tmp_path / "a.gz") as source:
        data = source.read()
    with gzip.open(truncated, "wb") as target:
        target.write(data[:-3])
    with pytest.raises(IdxFormatError, match="expects 24"):
        read_idx(truncated)
    (tmp_path / "junk").write_bytes(b"hello world")
    with pytest.raises(IdxFormatError, match="not an IDX file"):
        read_idx(tmp_path / "junk")


def test_mismatched_image_and_label_files_are_rejected(tmp_path, monkeypatch):
    make_idx_dataset(tmp_path / "mnist", n_train=10, n_test=4)
    write_idx(tmp_path / "mnist" / "train-labels-idx1-ubyte.gz", np.zeros(9, dtype=np.uint8))
    monkeypatch.setenv("LAYERFLOW_DATA", str(tmp_path))
    with pytest.raises(ValueError, match="do not fit together"):
        lf.datasets.mnist()


def test_bundled_datasets():
    (x_train, y_train), (x_test, y_test) = lf.datasets.digits()
    assert x_train.shape[1:] == (8, 8) and len(x_train) + len(x_test) == 1797
    assert x_train.dtype == np.uint8 and y_train.max() == 9
    frame = lf.datasets.breast_cancer()
    assert frame.shape == (569, 31) and set(frame["target"].unique()) == {0, 1}
    iris = lf.datasets.iris()
    assert list(iris.columns) == ["sepal_length", "sepal_width", "petal_length", "petal_width", "species"]
    assert set(iris["species"]) == {"setosa", "versicolor", "virginica"}
    with pytest.raises(ValueError, match="test_fraction"):
        lf.datasets.digits(test_fraction=1.5)
