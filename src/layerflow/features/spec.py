"""Feature specs (tfdatasets' ``feature_spec() %>% step_*()``): declare, fit in one pass, use.

A spec turns raw columns into model inputs. Everything that needs strings (vocabulary
lookups, hashing, crossing, bucketing) is done on the batch in numpy by ``prepare``; what
can run in the model (normalisation, one-hot, embeddings) is built by ``keras_inputs`` so
it travels with the model.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from layerflow.data import Dataset, from_frame
from layerflow.data.dataset import ROWS, chunk_length
from layerflow.errors import InvalidTypeError, InvalidValueError, LayerflowError, MissingKeyError
from layerflow.features.columns import NORMALIZERS, CategoricalColumn, DenseOf, NumericColumn
from layerflow.features.selectors import Selector

FORMAT_VERSION = 1
Columns = Sequence[str | Selector]


class NotFittedError(LayerflowError, RuntimeError):
    """A feature spec used before ``fit()``."""


def _column_kind(values: np.ndarray) -> str:
    return "numeric" if values.dtype.kind in "biuf" else "nominal"


class FeatureSpec:
    """A declared (then fitted) set of feature columns over a dataset.

    Build one with ``lf.feature_spec(dataset, label="y")`` and chain steps; ``fit()`` makes
    one streaming pass and returns the spec, which then shows what it learned.

    Example:
        >>> spec = (lf.feature_spec(ds, label="y")
        ...         .numeric("a", "b", normalizer="standard")
        ...         .categorical_vocab("city")
        ...         .indicator("city")
        ...         .fit())
        >>> inputs, dense = spec.keras_inputs()
        >>> model.fit(spec.prepare(ds), epochs=1)
    """

    def __init__(self, dataset: Dataset | None = None, label: str | Sequence[str] | None = None):
        if dataset is not None and hasattr(dataset, "columns") and not isinstance(dataset, Dataset):
            dataset = from_frame(dataset)
        if dataset is not None and not isinstance(dataset, Dataset):
            raise InvalidTypeError(f"feature_spec() takes a lf.data Dataset or a pandas DataFrame; got {type(dataset).__name__}.")
        self.dataset = dataset
        self.label = [label] if isinstance(label, str) else list(label or [])
        self._steps: list[tuple[str, tuple, dict]] = []
        self.numeric_columns: dict[str, NumericColumn] = {}
        self.categorical_columns: dict[str, CategoricalColumn] = {}
        self.dense_columns: list[DenseOf] = []
        self.fitted = False

    # -- declaring --------------------------------------------------------------------------
    def _step(self, kind: str, columns: tuple, **options: Any) -> "FeatureSpec":
        if not columns:
            raise InvalidValueError(f"{kind}() needs at least one column name or selector.")
        for column in columns:
            if not isinstance(column, (str, Selector)):
                raise InvalidTypeError(f"{kind}(): {column!r} is neither a column name nor a selector such as lf.all_numeric().")
        self._steps.append((kind, columns, options))
        self.fitted = False
        return self

    def numeric(self, *columns: str | Selector, normalizer: str | None = None) -> "FeatureSpec":
        """Numeric columns; ``normalizer`` ``"standard"`` (z-score) or ``"minmax"`` (to [0, 1])."""
        if normalizer not in NORMALIZERS:
            raise InvalidValueError(f"normalizer={normalizer!r} is not known; expected one of {NORMALIZERS}.")
        return self._step("numeric", columns, normalizer=normalizer)

    def categorical_vocab(self, *columns: str | Selector, vocabulary: Sequence[str] | None = None,
                          num_oov_buckets: int = 1, max_tokens: int | None = None) -> "FeatureSpec":
        """Categorical columns mapped through a vocabulary (learned in ``fit`` unless given).

        Values never seen in fit go to ``num_oov_buckets`` out-of-vocabulary ids.
        """
        if num_oov_buckets < 1:
            raise InvalidValueError("num_oov_buckets must be at least 1 (unseen values need a bucket).")
        return self._step("categorical_vocab", columns, vocabulary=list(vocabulary) if vocabulary else None,
                          num_oov_buckets=num_oov_buckets, max_tokens=max_tokens)

    def categorical_identity(self, *columns: str | Selector, num_buckets: int) -> "FeatureSpec":
        """Integer columns already holding ids in ``[0, num_buckets)`` (others go to one extra id)."""
        return self._step("categorical_identity", columns, num_buckets=int(num_buckets))

    def categorical_hash(self, *columns: str | Selector, hash_bucket_size: int) -> "FeatureSpec":
        """Categorical columns hashed into ``hash_bucket_size`` ids (no vocabulary to learn)."""
        return self._step("categorical_hash", columns, hash_bucket_size=int(hash_bucket_size))

    def bucketized(self, column: str, boundaries: Sequence[float], name: str | None = None) -> "FeatureSpec":
        """A numeric column cut into buckets at ``boundaries`` (a categorical column ``<col>_bucketized``)."""
        if list(boundaries) != sorted(boundaries) or not boundaries:
            raise InvalidValueError(f"boundaries {list(boundaries)} must be a non-empty increasing list.")
        return self._step("bucketized", (column,), boundaries=[float(b) for b in boundaries], name=name)

    def crossed(self, columns: Sequence[str], hash_bucket_size: int, name: str | None = None) -> "FeatureSpec":
        """The cross of several columns, hashed into ``hash_bucket_size`` ids."""
        if len(columns) < 2:
            raise InvalidValueError("crossed() needs at least two columns.")
        return self._step("crossed", tuple(columns), hash_bucket_size=int(hash_bucket_size), name=name)

    def indicator(self, *columns: str | Selector) -> "FeatureSpec":
        """One-hot encodes categorical columns into the dense tensor."""
        return self._step("indicator", columns)

    def embedding(self, *columns: str | Selector, dimension: int) -> "FeatureSpec":
        """Learns a ``dimension``-wide embedding of categorical columns in the dense tensor."""
        if dimension < 1:
            raise InvalidValueError("dimension must be at least 1.")
        return self._step("embedding", columns, dimension=int(dimension))

    # -- fitting ----------------------------------------------------------------------------
    def _dataset_kinds(self) -> dict[str, str]:
        if self.dataset is None:
            raise InvalidValueError("This spec has no dataset to fit on; give one: lf.feature_spec(dataset, label=...).")
        first = next(self.dataset.chunks(), None)
        if not isinstance(first, dict) or not chunk_length(first):
            raise InvalidValueError("The dataset is empty or not made of columns: nothing to fit the spec on.")
        missing = [name for name in self.label if name not in first]
        if missing:
            raise MissingKeyError(f"Label column(s) {missing} are not in the dataset; it has {sorted(first)}.")
        return {name: _column_kind(values) for name, values in first.items() if name not in self.label}

    def _resolve(self, kind: str, columns: tuple, pool: dict[str, str]) -> list[str]:
        names: list[str] = []
        for column in columns:
            if isinstance(column, Selector):
                chosen = [n for n, k in pool.items() if column.choose(n, k)]
                if not chosen:
                    raise InvalidValueError(f"{kind}({column!r}) selects no column.")
                names += chosen
            elif column not in pool:
                close = [n for n in pool if n.lower() == column.lower()]
                raise MissingKeyError(f"{kind}(): column {column!r} is not in the data"
                               f"{'' if not close else f' (did you mean {close[0]!r}?)'}; columns are {sorted(pool)}.")
            else:
                names.append(column)
        return list(dict.fromkeys(names))

    def fit(self) -> "FeatureSpec":
        """Learns statistics and vocabularies in one streaming pass; returns the fitted spec."""
        kinds = self._dataset_kinds()
        self.numeric_columns, self.categorical_columns, self.dense_columns = {}, {}, []
        for kind, columns, options in self._steps:
            if kind in ("indicator", "embedding"):
                pool = {name: "nominal" for name in self.categorical_columns}
                for name in self._resolve(kind, columns, pool):
                    self.dense_columns.append(DenseOf(name, kind, options.get("dimension")))
                continue
            pool = {**kinds, **{n: "nominal" for n in self.categorical_columns}} if kind == "crossed" else kinds
            names = self._resolve(kind, columns, pool)
            if kind == "numeric":
                for name in names:
                    self.numeric_columns[name] = NumericColumn(name, options["normalizer"])
            elif kind == "bucketized":
                name = options["name"] or f"{names[0]}_bucketized"
                self.categorical_columns[name] = CategoricalColumn(name, "bucketized", names,
                                                                   boundaries=options["boundaries"])
            elif kind == "crossed":
                name = options["name"] or "_X_".join(names)
                self.categorical_columns[name] = CategoricalColumn(name, "crossed", names,
                                                                   num_buckets=options["hash_bucket_size"])
            else:
                for name in names:
                    style = kind.removeprefix("categorical_")
                    self.categorical_columns[name] = CategoricalColumn(
                        name, style, [name], vocabulary=options.get("vocabulary"),
                        num_oov_buckets=options.get("num_oov_buckets", 1), max_tokens=options.get("max_tokens"),
                        num_buckets=options.get("num_buckets") or options.get("hash_bucket_size"))
        learning = [c for c in self.categorical_columns.values() if c.learns_vocabulary]
        for chunk in self.dataset.chunks():
            for column in self.numeric_columns.values():
                column.observe(chunk[column.name])
            for column in learning:
                column.observe(chunk[column.source[0]])
        for column in [*self.numeric_columns.values(), *self.categorical_columns.values()]:
            column.finish()
        self.fitted = True
        return self

    # -- using ------------------------------------------------------------------------------
    def _require_fitted(self) -> None:
        if not self.fitted:
            raise NotFittedError("This feature spec is not fitted yet: call .fit() first.")

    @property
    def input_names(self) -> list[str]:
        """Names of the model inputs the spec produces (numeric values and categorical ids)."""
        self._require_fitted()
        return [*self.numeric_columns, *self.categorical_columns]

    def transform(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Encodes one batch of raw columns into the model's inputs (arrays of shape (n, 1))."""
        self._require_fitted()
        needed = {*self.numeric_columns, *(s for c in self.categorical_columns.values() for s in c.source)}
        missing = sorted(needed - set(batch) - set(self.categorical_columns))
        if missing:
            raise MissingKeyError(f"Columns {missing} used by the feature spec are not in the data; it has {sorted(batch)}.")
        features = {name: column.encode(batch[name]) for name, column in self.numeric_columns.items()}
        for name, column in self.categorical_columns.items():
            # a crossed column may cross earlier categorical columns (e.g. a bucketized one)
            sources = [batch[s] if s in batch else features[s] for s in column.source]
            features[name] = column.encode(sources)
        return {name: values.reshape(-1, 1) for name, values in features.items()}

    def prepare(self, dataset: Dataset | None = None, batch_size: int | None = None) -> Dataset:
        """A dataset of ``(inputs dict, label)`` batches for Keras, encoded by this spec."""
        self._require_fitted()
        dataset = dataset if dataset is not None else self.dataset
        if dataset.kind == ROWS:
            if batch_size is None:
                raise InvalidTypeError("prepare() needs batches: batch the dataset or pass batch_size=.")
            dataset = dataset.batch(batch_size)
        labels = self.label

        def encode(batch):
            features = self.transform(batch)
            if not labels:
                return (features,)
            if labels[0] not in batch:
                raise MissingKeyError(f"Label column {labels[0]!r} is not in the data; it has {sorted(batch)}.")
            label = batch[labels[0]] if len(labels) == 1 else {n: batch[n] for n in labels}
            return features, label

        return Dataset(lambda: (encode(batch) for batch in dataset.chunks()), "prepared")

    def keras_inputs(self) -> tuple[dict[str, Any], Any]:
        """Keras inputs (one per encoded feature) and the dense feature tensor built from them.

        Numeric columns enter normalised, ``indicator`` columns one-hot, ``embedding``
        columns through a learned embedding; the result is one float tensor per row.
        """
        self._require_fitted()
        from layerflow.backend import load_keras

        keras = load_keras()
        inputs = {name: keras.Input(shape=(1,), name=name, dtype="float32") for name in self.numeric_columns}
        inputs.update({name: keras.Input(shape=(1,), name=name, dtype="int32") for name in self.categorical_columns})
        parts = []
        for name, column in self.numeric_columns.items():
            offset, divisor = column.scale()
            parts.append(keras.layers.Rescaling(1.0 / divisor, offset=-offset / divisor, name=f"{name}_scaled")(inputs[name])
                         if column.normalizer else inputs[name])
        for dense in self.dense_columns:
            depth = self.categorical_columns[dense.column].depth
            ids = inputs[dense.column]
            if dense.kind == "indicator":
                parts.append(keras.layers.CategoryEncoding(depth, output_mode="one_hot",
                                                           name=f"{dense.column}_indicator")(ids))
            else:
                embedded = keras.layers.Embedding(depth, dense.dimension, name=f"{dense.column}_embedding")(ids)
                parts.append(keras.layers.Flatten(name=f"{dense.column}_embedding_flat")(embedded))
        if not parts:
            raise InvalidValueError("The spec yields no dense feature: add numeric columns or indicator/embedding steps.")
        dense_tensor = parts[0] if len(parts) == 1 else keras.layers.Concatenate(name="dense_features")(parts)
        return inputs, dense_tensor

    # -- inspection and saving --------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Everything the spec learned, JSON-ready (also what ``save`` writes)."""
        self._require_fitted()
        return {
            "format": FORMAT_VERSION,
            "label": self.label,
            "numeric": [c.state() for c in self.numeric_columns.values()],
            "categorical": [c.state() for c in self.categorical_columns.values()],
            "dense": [d.state() for d in self.dense_columns],
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Writes the fitted spec as JSON (load it with ``lf.load_feature_spec``)."""
        path = Path(path)
        path.write_text(json.dumps(self.state(), indent=2) + "\n")
        return path

    def __repr__(self) -> str:
        if not self.fitted:
            steps = ", ".join(f"{k}({', '.join(map(repr, c))})" for k, c, _ in self._steps)
            return f"<FeatureSpec (not fitted) label={self.label} steps: {steps}>"
        lines = [f"FeatureSpec (fitted), label={self.label}"]
        for c in self.numeric_columns.values():
            lines.append(f"  numeric {c.name}: normalizer={c.normalizer} mean={c.mean:.4g} std={c.std:.4g} "
                         f"min={c.min:.4g} max={c.max:.4g} missing={c.missing}")
        for c in self.categorical_columns.values():
            detail = f"vocabulary={c.vocabulary[:10]}{'...' if len(c.vocabulary) > 10 else ''}" if c.vocabulary else ""
            lines.append(f"  categorical {c.name} ({c.kind} of {c.source}): depth={c.depth} {detail}".rstrip())
        for d in self.dense_columns:
            lines.append(f"  {d.kind} {d.column}" + (f" dimension={d.dimension}" if d.dimension else ""))
        return "\n".join(lines)


def feature_spec(dataset: Any, label: str | Sequence[str] | None = None) -> FeatureSpec:
    """Starts a feature spec over ``dataset`` (a lf.data Dataset or a pandas DataFrame)."""
    return FeatureSpec(dataset, label)


def load_feature_spec(path: str | os.PathLike[str]) -> FeatureSpec:
    """Reads a spec written by ``FeatureSpec.save``; it is fitted and ready to transform."""
    path = Path(path)
    try:
        state = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise InvalidValueError(f"{path} is not a saved feature spec (invalid JSON: {error}).") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT_VERSION:
        raise InvalidValueError(f"{path} is not a saved feature spec of format {FORMAT_VERSION}.")
    spec = FeatureSpec(None, state["label"])
    for item in state["numeric"]:
        column = NumericColumn(item["name"], item["normalizer"])
        for key in ("count", "missing", "mean", "std", "min", "max"):
            setattr(column, key, item[key])
        spec.numeric_columns[column.name] = column
    for item in state["categorical"]:
        spec.categorical_columns[item["name"]] = CategoricalColumn(
            item["name"], item["kind"].removeprefix("categorical_"), item["source"],
            vocabulary=item.get("vocabulary"), num_oov_buckets=item.get("num_oov_buckets", 1),
            num_buckets=item.get("num_buckets"), boundaries=item.get("boundaries"))
    spec.dense_columns = [DenseOf(d["column"], d["kind"], d.get("dimension")) for d in state["dense"]]
    spec.fitted = True
    return spec
