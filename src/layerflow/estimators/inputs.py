"""What an estimator accepts as data, and the feature spec it trains on.

Data is a lf.data ``Dataset`` (rows or batches), a pandas DataFrame, or a CSV/Parquet
path (a glob pattern works). It is always read in a stream of batches.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from layerflow.data import Dataset, csv_dataset, from_frame, parquet_dataset
from layerflow.estimators.errors import EstimatorError, MissingColumnError

PARQUET_SUFFIXES = (".parquet", ".pq")


def as_dataset(data: Any) -> Dataset:
    """A lf.data Dataset (rows or batches) over ``data``.

    Args:
        data: a ``Dataset``, a pandas DataFrame, or a CSV/Parquet path or glob pattern.

    Returns:
        The dataset, not read yet.

    Example:
        >>> as_dataset("train.csv").columns
    """
    if isinstance(data, Dataset):
        if data.kind == "prepared":
            raise EstimatorError(
                "Estimators take raw columns (a dataset of rows or batches), "
                "not a prepared (features, label) dataset: pass the dataset before .prepare()."
            )
        return data
    if hasattr(data, "columns") and hasattr(data, "iloc"):
        return from_frame(data)
    if isinstance(data, (str, os.PathLike)):
        path = str(data)
        if path.lower().endswith(PARQUET_SUFFIXES):
            return parquet_dataset(path)
        return csv_dataset(path)
    raise EstimatorError(
        f"Estimators take a lf.data Dataset, a pandas DataFrame or a CSV/Parquet path; got {type(data).__name__}."
    )


def batches(dataset: Dataset, batch_size: int, shuffle_buffer: int | None = None, seed: int | None = None) -> Dataset:
    """``dataset`` as batches of ``batch_size`` rows, shuffled through a seeded buffer if asked.

    A dataset that is already batched keeps its batches (and is shuffled batch-wise).
    """
    if dataset.kind == "rows":
        if shuffle_buffer:
            dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=False)
        return dataset.batch(batch_size)
    if shuffle_buffer:
        return dataset.shuffle(max(1, shuffle_buffer // batch_size), seed=seed, reshuffle_each_iteration=False)
    return dataset


def first_batch(dataset: Dataset) -> dict[str, np.ndarray]:
    """The first block of rows of ``dataset``; an error when it is empty."""
    first = next(dataset.chunks(), None)
    if not isinstance(first, dict) or not first or not len(next(iter(first.values()))):
        raise EstimatorError("The data is empty: there are no rows to train on.")
    return first


def check_columns(batch: dict[str, np.ndarray], names: Sequence[str], role: str) -> None:
    """Raises ``MissingColumnError`` naming the missing columns and the data's columns."""
    missing = [name for name in names if name not in batch]
    if missing:
        which = ", ".join(repr(m) for m in missing)
        raise MissingColumnError(
            f"The {role} {which} {'is' if len(missing) == 1 else 'are'} not in the data; "
            f"its columns are {sorted(batch)}."
        )


def spec_columns(spec: Any) -> list[str]:
    """The raw columns a fitted feature spec reads (read from its public ``state()``)."""
    state = spec.state()
    produced = {item["name"] for item in state["categorical"]}
    names = [item["name"] for item in state["numeric"]]
    for item in state["categorical"]:
        names += [source for source in item["source"] if source not in produced or source == item["name"]]
    return list(dict.fromkeys(names))


def auto_spec(dataset: Dataset, label: str, exclude: Sequence[str] = ()) -> Any:
    """A fitted spec from the column types: numbers standardised, other columns as vocabularies.

    One streaming pass over ``dataset`` (the spec's ``fit``).
    """
    from layerflow.features import feature_spec

    first = first_batch(dataset)
    check_columns(first, [label], "label column")
    numeric: list[str] = []
    nominal: list[str] = []
    for name, values in first.items():
        if name == label or name in exclude:
            continue
        (numeric if np.asarray(values).dtype.kind in "biuf" else nominal).append(name)
    if not numeric and not nominal:
        raise EstimatorError(f"The data has no feature columns besides the label {label!r}.")
    spec = feature_spec(dataset, label=label)
    if numeric:
        spec = spec.numeric(*numeric, normalizer="standard")
    if nominal:
        spec = spec.categorical_vocab(*nominal)
    return spec.fit()


def fitted_spec(feature_columns: Any, dataset: Dataset, label: str, exclude: Sequence[str] = ()) -> Any:
    """The spec to train on: ``feature_columns`` fitted if needed, or one built from the data."""
    if feature_columns is None:
        return auto_spec(dataset, label, exclude)
    if not hasattr(feature_columns, "state") or not hasattr(feature_columns, "transform"):
        raise EstimatorError(
            f"feature_columns= takes a lf.feature_spec (fitted or not); got {type(feature_columns).__name__}."
        )
    if getattr(feature_columns, "fitted", False):
        return feature_columns
    if getattr(feature_columns, "dataset", None) is None:
        raise EstimatorError(
            "feature_columns= is an unfitted spec with no dataset; declare it over the "
            "training data (lf.feature_spec(data, label=...)) or fit it first."
        )
    return feature_columns.fit()
