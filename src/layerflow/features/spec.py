"""Feature specs (tfdatasets' ``feature_spec() %>% step_*()``): declare, fit in one pass, use.

A spec turns raw columns into model inputs. Everything that needs strings (vocabulary
lookups, hashing, crossing, bucketing) is done on the batch, vectorised (pyarrow kernels and
numpy), by ``prepare``; what can run in the model (normalisation, one-hot, embeddings) is
built by ``keras_inputs`` so it travels with the model.

Specs are values: every step returns a new spec and leaves the one it was called on as it
was (as tfdatasets' recipes do), so specs branched from one base never share steps, and a
fitted spec is never changed by a later step.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from layerflow.data import Dataset, from_frame
from layerflow.data.dataset import ROWS, chunk_length, read_ahead
from layerflow.errors import LayerflowError
from layerflow.features.columns import (
    NORMALIZERS,
    CategoricalColumn,
    DenseOf,
    NumericColumn,
    default_embedding_dimension,
)
from layerflow.features.errors import SpecColumnError, SpecError, SpecFileError, SpecTypeError
from layerflow.features.hashing import HASH_FUNCTION
from layerflow.features.selectors import Selector

# 2: hashed buckets (categorical_hash, crossed, several out-of-vocabulary buckets) are MurmurHash3's.
# Format 1 hashed with CRC32: such a spec still loads when it hashes nothing, and is refused when it
# does (its buckets would now differ, silently).
FORMAT_VERSION = 2
CRC32_FORMAT = 1
# A model input holding all numeric columns side by side (float32, [batch, n_numeric], in the
# spec's column order), as the canned estimators take them; the export graph builds it too.
PACKED_NUMERIC_INPUT = "numeric_pack"
Columns = Sequence[str | Selector]


class NotFittedError(LayerflowError, RuntimeError):
    """A feature spec used before ``fit()``."""


def _column_kind(values: np.ndarray) -> str:
    return "numeric" if values.dtype.kind in "biuf" else "nominal"


def _column_type(values: np.ndarray) -> str:
    return {"f": "float", "i": "int", "u": "int", "b": "bool"}.get(values.dtype.kind, "string")


def _as_dataset(dataset: Any, what: str) -> Dataset:
    if dataset is not None and hasattr(dataset, "columns") and not isinstance(dataset, Dataset):
        dataset = from_frame(dataset)
    if not isinstance(dataset, Dataset):
        raise SpecTypeError(f"{what} takes a lf.data Dataset or a pandas DataFrame; got {type(dataset).__name__}.")
    return dataset


def _read_vocabulary_file(path: str | os.PathLike[str]) -> list[str]:
    path = Path(path)
    if not path.is_file():
        raise SpecFileError(f"vocabulary_file {str(path)!r} does not exist (one value per line expected).")
    values = [line.rstrip("\r\n") for line in path.read_text(encoding="utf-8").splitlines()]
    values = [v for v in values if v != ""]
    if not values:
        raise SpecError(f"vocabulary_file {str(path)!r} holds no values (one value per line expected).")
    duplicated = sorted({v for v in values if values.count(v) > 1}) if len(set(values)) != len(values) else []
    if duplicated:
        raise SpecError(f"vocabulary_file {str(path)!r} lists {duplicated[:5]} more than once.")
    return values


class _Outputs:
    """The names a spec's steps produce (model inputs and dense outputs), each claimed by one step.

    A column may feed several features (``numeric("x")`` and ``bucketized("x")`` make ``x`` and
    ``x_bucketized``), but two steps making the *same* name would silently replace one another
    (TensorFlow's feature columns refuse that too: "Duplicate feature column name found").
    """

    def __init__(self) -> None:
        self._steps: dict[str, str] = {}

    def claim(self, name: str, kind: str, columns: tuple, selected: str | None = None) -> None:
        step = f"{kind}({', '.join(map(repr, columns))})"
        if selected is not None and not any(c == selected for c in columns):
            step += f", which selected {selected!r}"
        if name in self._steps:
            raise SpecError(
                f"Column {name!r} is declared twice: by {self._steps[name]} and by {step}; both would produce the "
                f"model input or output {name!r}, and one would silently replace the other. Declare it once (a "
                f"selector takes exclude=[{name!r}]), or .remove({name!r}) before declaring it again; to feed one "
                f"column into two features give the second its own name (e.g. bucketized({name!r}, ...) makes "
                f"{name + '_bucketized'!r})."
            )
        self._steps[name] = step

    def keep(self, names: set[str]) -> None:
        """Forgets the names a ``remove`` step dropped (they may be declared again)."""
        self._steps = {n: s for n, s in self._steps.items() if n in names}


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
        if dataset is not None:
            dataset = _as_dataset(dataset, "feature_spec()")
        self.dataset = dataset
        self.label = [label] if isinstance(label, str) else list(label or [])
        self._steps: list[tuple[str, tuple, dict]] = []
        self.numeric_columns: dict[str, NumericColumn] = {}
        self.categorical_columns: dict[str, CategoricalColumn] = {}
        self.dense_columns: list[DenseOf] = []
        self.fitted = False

    # -- declaring --------------------------------------------------------------------------
    def _step(self, kind: str, columns: tuple, **options: Any) -> FeatureSpec:
        """A new, unfitted spec with this spec's steps and one more; this spec is left unchanged."""
        if not columns:
            raise SpecError(f"{kind}() needs at least one column name or selector.")
        for column in columns:
            if not isinstance(column, (str, Selector)):
                raise SpecTypeError(
                    f"{kind}(): {column!r} is neither a column name nor a selector such as lf.all_numeric()."
                )
        spec = FeatureSpec(None, self.label)
        spec.dataset = self.dataset
        spec._steps = [*self._steps, (kind, tuple(columns), copy.deepcopy(options))]
        return spec

    def numeric(self, *columns: str | Selector, normalizer: str | None = None) -> FeatureSpec:
        """Numeric columns; ``normalizer`` ``"standard"`` (z-score) or ``"minmax"`` (to [0, 1])."""
        if normalizer not in NORMALIZERS:
            raise SpecError(f"normalizer={normalizer!r} is not known; expected one of {NORMALIZERS}.")
        return self._step("numeric", columns, normalizer=normalizer)

    def categorical_vocab(
        self,
        *columns: str | Selector,
        vocabulary: Sequence[str] | None = None,
        vocabulary_file: str | os.PathLike[str] | None = None,
        num_oov_buckets: int = 1,
        max_tokens: int | None = None,
    ) -> FeatureSpec:
        """Categorical columns mapped through a vocabulary (learned in ``fit`` unless given).

        Args:
            *columns: column names or selectors.
            vocabulary: the values, in id order; None learns them in ``fit`` (most frequent first).
            vocabulary_file: a text file with one value per line, in id order (read now).
            num_oov_buckets: ids for values not in the vocabulary (hashed among them).
            max_tokens: keep at most this many learned values.

        Returns:
            A new spec with the step added.

        Example:
            >>> spec = lf.feature_spec(df, label="y").categorical_vocab("city", vocabulary_file="cities.txt")
        """
        if not isinstance(num_oov_buckets, int) or num_oov_buckets < 1:
            raise SpecError("num_oov_buckets must be at least 1 (unseen values need a bucket).")
        if vocabulary is not None and vocabulary_file is not None:
            raise SpecError("Give vocabulary= or vocabulary_file=, not both.")
        if vocabulary_file is not None:
            vocabulary = _read_vocabulary_file(vocabulary_file)
        return self._step(
            "categorical_vocab",
            columns,
            vocabulary=list(vocabulary) if vocabulary else None,
            num_oov_buckets=num_oov_buckets,
            max_tokens=max_tokens,
        )

    def categorical_identity(self, *columns: str | Selector, num_buckets: int) -> FeatureSpec:
        """Integer columns already holding ids in ``[0, num_buckets)`` (others go to one extra id)."""
        return self._step("categorical_identity", columns, num_buckets=int(num_buckets))

    def categorical_hash(self, *columns: str | Selector, hash_bucket_size: int) -> FeatureSpec:
        """Categorical columns hashed into ``hash_bucket_size`` ids (no vocabulary to learn)."""
        return self._step("categorical_hash", columns, hash_bucket_size=int(hash_bucket_size))

    def bucketized(self, column: str, boundaries: Sequence[float], name: str | None = None) -> FeatureSpec:
        """A numeric column cut into buckets at ``boundaries`` (a categorical column ``<col>_bucketized``)."""
        if list(boundaries) != sorted(boundaries) or not boundaries:
            raise SpecError(f"boundaries {list(boundaries)} must be a non-empty increasing list.")
        return self._step("bucketized", (column,), boundaries=[float(b) for b in boundaries], name=name)

    def crossed(self, columns: Sequence[str], hash_bucket_size: int, name: str | None = None) -> FeatureSpec:
        """The cross of several columns, hashed into ``hash_bucket_size`` ids."""
        if len(columns) < 2:
            raise SpecError("crossed() needs at least two columns.")
        return self._step("crossed", tuple(columns), hash_bucket_size=int(hash_bucket_size), name=name)

    def indicator(self, *columns: str | Selector, name: str | None = None) -> FeatureSpec:
        """One-hot encodes categorical columns into the dense tensor.

        Args:
            *columns: categorical column names or selectors.
            name: the output's name (and its Keras layer's), for a single column; by default
                ``<column>_indicator``.

        Returns:
            A new spec with the step added.

        Example:
            >>> spec = spec.indicator("city", name="city_onehot")
        """
        return self._step("indicator", columns, name=self._output_name(columns, name))

    def embedding(self, *columns: str | Selector, dimension: int | None = None, name: str | None = None) -> FeatureSpec:
        """Learns an embedding of categorical columns in the dense tensor.

        Args:
            *columns: categorical column names or selectors.
            dimension: the embedding width; None uses ``ceil(depth ** 0.25)`` of each column
                (tfdatasets' rule of thumb; e.g. 2 for 4 to 16 ids, 3 for 17 to 81).
            name: the output's name, for a single column; by default ``<column>_embedding``.

        Returns:
            A new spec with the step added.

        Example:
            >>> spec = spec.embedding("shop")                  # width from the number of shops
        """
        if dimension is not None and (not isinstance(dimension, int) or dimension < 1):
            raise SpecError(f"dimension={dimension!r} must be a positive integer (or None for the default).")
        return self._step("embedding", columns, dimension=dimension, name=self._output_name(columns, name))

    def remove(self, *columns: str | Selector) -> FeatureSpec:
        """Drops features declared by earlier steps (tfdatasets' ``step_remove_column``).

        Useful after a column served only to build another, e.g. a numeric column that was
        bucketized. A column another feature is built from (a crossed column's source) cannot
        be removed.

        Returns:
            A new spec with the step added.

        Example:
            >>> spec = (lf.feature_spec(df, label="y").numeric(lf.all_numeric())
            ...         .bucketized("age", [18, 30, 50]).remove("age"))
        """
        return self._step("remove", columns)

    @staticmethod
    def _output_name(columns: tuple, name: str | None) -> str | None:
        if name is None:
            return None
        if not isinstance(name, str) or not name:
            raise SpecError(f"name={name!r} must be a non-empty string.")
        if len(columns) != 1 or not isinstance(columns[0], str):
            raise SpecError(f"name={name!r} names one output: give it with a single column name.")
        return name

    # -- fitting ----------------------------------------------------------------------------
    def _dataset_columns(self, dataset: Dataset) -> dict[str, tuple[str, str]]:
        first = next(dataset.chunks(), None)
        if not isinstance(first, dict) or not chunk_length(first):
            raise SpecError("The dataset is empty or not made of columns: nothing to fit the spec on.")
        missing = [name for name in self.label if name not in first]
        if missing:
            raise SpecColumnError(f"Label column(s) {missing} are not in the dataset; it has {sorted(first)}.")
        return {
            name: (_column_kind(values), _column_type(values))
            for name, values in first.items()
            if name not in self.label
        }

    @staticmethod
    def _resolve(kind: str, columns: tuple, pool: dict[str, tuple[str, str]]) -> list[str]:
        names: list[str] = []
        for column in columns:
            if isinstance(column, Selector):
                chosen = [n for n, (k, t) in pool.items() if column.selects(n, k, t)]
                if not chosen:
                    raise SpecError(f"{kind}({column!r}) selects no column.")
                names += chosen
            elif column not in pool:
                close = [n for n in pool if n.lower() == column.lower()]
                raise SpecColumnError(
                    f"{kind}(): column {column!r} is not in the data"
                    f"{'' if not close else f' (did you mean {close[0]!r}?)'}; "
                    f"columns are {sorted(pool)}."
                )
            else:
                names.append(column)
        return list(dict.fromkeys(names))

    def fit(self, dataset: Any = None) -> FeatureSpec:
        """Learns statistics and vocabularies in one streaming pass; returns this spec, fitted.

        Args:
            dataset: the data to learn from, if not the one the spec was declared on (a
                lf.data Dataset or a DataFrame with the same columns).

        Returns:
            This spec (fitted in place, as scikit-learn's ``fit``); later steps on it return new specs.

        Example:
            >>> spec = lf.feature_spec(sample, label="y").numeric("a", normalizer="standard")
            >>> spec.fit(dataset=lf.data.csv_dataset("all.csv", batch_size=4096))
        """
        source = self.dataset if dataset is None else _as_dataset(dataset, "fit(dataset=...)")
        if source is None:
            raise SpecError(
                "This spec has no dataset to fit on; give one: lf.feature_spec(dataset, label=...) "
                "or spec.fit(dataset=...)."
            )
        pool = self._dataset_columns(source)
        numeric: dict[str, NumericColumn] = {}
        categorical: dict[str, CategoricalColumn] = {}
        dense: list[DenseOf] = []
        outputs = _Outputs()
        for kind, columns, options in self._steps:
            if kind in ("indicator", "embedding"):
                for name in self._resolve(kind, columns, {n: ("nominal", "int") for n in categorical}):
                    item = DenseOf(name, kind, options.get("dimension"), options.get("name"))
                    outputs.claim(item.output_name, kind, columns, name)
                    dense.append(item)
                continue
            if kind == "remove":
                declared = {
                    **{n: ("numeric", "float") for n in numeric},
                    **{n: ("nominal", "int") for n in categorical},
                    **{d.output_name: ("dense", "float") for d in dense},
                }
                for name in self._resolve(kind, columns, declared):
                    users = [
                        c.name for c in categorical.values() if name in c.source and c.name != name and name not in pool
                    ]
                    if users:
                        raise SpecError(f"remove({name!r}): {users} are built from it; remove them first.")
                    numeric.pop(name, None)
                    categorical.pop(name, None)
                    dense = [d for d in dense if d.output_name != name and d.column != name]
                outputs.keep({*numeric, *categorical, *(d.output_name for d in dense)})
                continue
            step_pool = {**pool, **{n: ("nominal", "int") for n in categorical}} if kind == "crossed" else pool
            names = self._resolve(kind, columns, step_pool)
            if kind == "numeric":
                for name in names:
                    outputs.claim(name, kind, columns, name)
                    numeric[name] = NumericColumn(name, options["normalizer"])
            elif kind == "bucketized":
                name = options["name"] or f"{names[0]}_bucketized"
                outputs.claim(name, kind, columns)
                categorical[name] = CategoricalColumn(name, "bucketized", names, boundaries=options["boundaries"])
            elif kind == "crossed":
                name = options["name"] or "_X_".join(names)
                outputs.claim(name, kind, (list(columns),))
                categorical[name] = CategoricalColumn(name, "crossed", names, num_buckets=options["hash_bucket_size"])
            else:
                for name in names:
                    outputs.claim(name, kind, columns, name)
                    categorical[name] = CategoricalColumn(
                        name,
                        kind.removeprefix("categorical_"),
                        [name],
                        vocabulary=options.get("vocabulary"),
                        num_oov_buckets=options.get("num_oov_buckets", 1),
                        max_tokens=options.get("max_tokens"),
                        num_buckets=options.get("num_buckets") or options.get("hash_bucket_size"),
                    )
        learning = [c for c in categorical.values() if c.learns_vocabulary]
        observed: list[NumericColumn | CategoricalColumn] = [*numeric.values(), *(c for c in learning)]
        source_arrow = source.arrow_batches()
        if source_arrow is not None:  # a CSV: learn from its Arrow batches, no Python string per row
            blocks: Any = (
                {n: b.column(i) for i, n in enumerate(b.schema.names)} for b in source_arrow.record_batches()
            )
        else:
            blocks = source.chunks()
        for chunk in blocks:
            for column in numeric.values():
                column.observe(chunk[column.name])
            for learner in learning:
                learner.observe(chunk[learner.source[0]])
        for fitted in [*observed, *(c for c in categorical.values() if c not in learning)]:
            fitted.finish()
        for item in dense:
            if item.kind == "embedding" and item.dimension is None:
                item.dimension = default_embedding_dimension(categorical[item.column].depth)
        self.numeric_columns, self.categorical_columns, self.dense_columns = numeric, categorical, dense
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

    def transform(self, batch: Any) -> dict[str, np.ndarray]:
        """Encodes one batch of raw columns into the model's inputs (arrays of shape (n, 1)).

        Args:
            batch: a dict of column arrays (numpy or Arrow), or an Arrow record batch.

        Returns:
            A dict of (n, 1) arrays: float32 for numeric columns, int32 ids for categorical ones.

        Example:
            >>> spec.transform({"a": np.array([1.5]), "city": np.array(["rome"], dtype=object)})
        """
        self._require_fitted()
        if hasattr(batch, "schema") and hasattr(batch, "column"):  # an Arrow record batch
            batch = {name: batch.column(i) for i, name in enumerate(batch.schema.names)}
        needed = {*self.numeric_columns, *(s for c in self.categorical_columns.values() for s in c.source)}
        missing = sorted(needed - set(batch) - set(self.categorical_columns))
        if missing:
            raise SpecColumnError(
                f"Columns {missing} used by the feature spec are not in the data; it has {sorted(batch)}."
            )
        features = {name: column.encode(batch[name]) for name, column in self.numeric_columns.items()}
        for name, column in self.categorical_columns.items():
            # a crossed column may cross earlier categorical columns (e.g. a bucketized one)
            sources = [batch[s] if s in batch else features[s] for s in column.source]
            features[name] = column.encode(sources)
        return {name: values.reshape(-1, 1) for name, values in features.items()}

    def prepare(self, dataset: Dataset | None = None, batch_size: int | None = None) -> Dataset:
        """A dataset of ``(inputs dict, label)`` batches for Keras, encoded by this spec."""
        self._require_fitted()
        dataset = _as_dataset(dataset, "prepare()") if dataset is not None else self.dataset
        if dataset is None:
            raise SpecError("prepare() needs a dataset: this spec was loaded from a file; pass one.")
        if dataset.kind == ROWS:
            if batch_size is None:
                raise SpecTypeError("prepare() needs batches: batch the dataset or pass batch_size=.")
            dataset = dataset.batch(batch_size)
        labels = self.label
        arrow = dataset.arrow_batches()
        if arrow is not None:  # encode the Arrow batches as they are: no Python strings made per row

            def encode_arrow(record_batch):
                features = self.transform(record_batch)
                if not labels:
                    return (features,)
                missing = [n for n in labels if n not in record_batch.schema.names]
                if missing:
                    raise SpecColumnError(
                        f"Label column {missing[0]!r} is not in the data; it has {sorted(record_batch.schema.names)}."
                    )
                label_chunk = arrow.to_chunk(record_batch.select(labels))
                return features, (label_chunk[labels[0]] if len(labels) == 1 else label_chunk)

            def encoded():
                # parsing (pyarrow, GIL released) runs ahead on a thread while this one encodes
                return map(encode_arrow, read_ahead(arrow.record_batches, 4))

            return Dataset(encoded, "prepared", None, dataset.known_length)

        def encode(batch):
            features = self.transform(batch)
            if not labels:
                return (features,)
            if labels[0] not in batch:
                raise SpecColumnError(f"Label column {labels[0]!r} is not in the data; it has {sorted(batch)}.")
            label = batch[labels[0]] if len(labels) == 1 else {n: batch[n] for n in labels}
            return features, label

        return Dataset(lambda: (encode(batch) for batch in dataset.chunks()), "prepared", None, dataset.known_length)

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
            if column.normalizer:
                scaling = keras.layers.Rescaling(1.0 / divisor, offset=-offset / divisor, name=f"{name}_scaled")
                parts.append(scaling(inputs[name]))
            else:
                parts.append(inputs[name])
        for dense in self.dense_columns:
            depth = self.categorical_columns[dense.column].depth
            ids = inputs[dense.column]
            if dense.kind == "indicator":
                parts.append(keras.layers.CategoryEncoding(depth, output_mode="one_hot", name=dense.output_name)(ids))
            else:
                embedded = keras.layers.Embedding(depth, dense.dimension, name=dense.output_name)(ids)
                parts.append(keras.layers.Flatten(name=f"{dense.output_name}_flat")(embedded))
        if not parts:
            raise SpecError("The spec yields no dense feature: add numeric columns or indicator/embedding steps.")
        dense_tensor = parts[0] if len(parts) == 1 else keras.layers.Concatenate(name="dense_features")(parts)
        return inputs, dense_tensor

    # -- inspection and saving --------------------------------------------------------------
    def feature_types(self) -> dict[str, str]:
        """The type of every feature the spec produces, by name: model inputs, then dense outputs.

        Types: ``numeric``, ``categorical_vocab``, ``categorical_identity``, ``categorical_hash``,
        ``bucketized``, ``crossed`` (the inputs), ``indicator`` and ``embedding`` (dense outputs).

        Example:
            >>> spec.feature_types()
            {'a': 'numeric', 'city': 'categorical_vocab', 'city_indicator': 'indicator'}
        """
        self._require_fitted()
        types = {name: "numeric" for name in self.numeric_columns}
        for name, column in self.categorical_columns.items():
            types[name] = column.kind if column.kind in ("bucketized", "crossed") else f"categorical_{column.kind}"
        types.update({d.output_name: d.kind for d in self.dense_columns})
        return types

    def state(self) -> dict[str, Any]:
        """Everything the spec learned, JSON-ready (also what ``save`` writes)."""
        self._require_fitted()
        return {
            "format": FORMAT_VERSION,
            "hashing": HASH_FUNCTION,
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
        for n in self.numeric_columns.values():
            lines.append(
                f"  numeric {n.name}: normalizer={n.normalizer} mean={n.mean:.4g} std={n.std:.4g} "
                f"min={n.min:.4g} max={n.max:.4g} missing={n.missing}"
            )
        for c in self.categorical_columns.values():
            detail = f"vocabulary={c.vocabulary[:10]}{'...' if len(c.vocabulary) > 10 else ''}" if c.vocabulary else ""
            lines.append(f"  categorical {c.name} ({c.kind} of {c.source}): depth={c.depth} {detail}".rstrip())
        for d in self.dense_columns:
            width = f" dimension={d.dimension}" if d.dimension else ""
            lines.append(f"  {d.kind} {d.column} -> {d.output_name}{width}")
        return "\n".join(lines)


def feature_spec(dataset: Any, label: str | Sequence[str] | None = None) -> FeatureSpec:
    """Starts a feature spec over ``dataset`` (a lf.data Dataset or a pandas DataFrame).

    Args:
        dataset: the data the spec describes and, by default, is fitted on.
        label: the label column(s), never a feature.

    Returns:
        An empty, unfitted spec; add steps (each returns a new spec), then ``fit()``.

    Example:
        >>> spec = lf.feature_spec(df, label="y").numeric(lf.all_numeric()).fit()
    """
    return FeatureSpec(dataset, label)


def _hashed_columns(categorical: list[dict[str, Any]]) -> list[str | None]:
    """The saved categorical columns whose ids come from a hash (their buckets depend on the hash function)."""
    return [
        item.get("name")
        for item in categorical
        if isinstance(item, dict)
        and (
            item.get("kind") in ("categorical_hash", "categorical_crossed")
            or (item.get("kind") == "categorical_vocab" and (item.get("num_oov_buckets") or 1) > 1)
        )
    ]


def load_feature_spec(path: str | os.PathLike[str]) -> FeatureSpec:
    """Reads a spec written by ``FeatureSpec.save``; it is fitted and ready to transform.

    Args:
        path: the JSON file ``spec.save(path)`` wrote.

    Returns:
        A fitted ``FeatureSpec`` (with no dataset: pass one to ``prepare``).

    Raises:
        SpecError: not a saved spec, a newer format, or a spec saved before hashing became
            MurmurHash3 (format 1) that has hashed columns: refit and save it again.

    Example:
        >>> spec = lf.load_feature_spec("spec.json")
        >>> spec.transform({"a": np.array([1.5]), "city": np.array(["rome"], dtype=object)})
    """
    path = Path(path)
    try:
        state = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise SpecError(f"{path} is not a saved feature spec (invalid JSON: {error}).") from None
    except FileNotFoundError:
        raise SpecFileError(f"{path} does not exist (a feature spec saved with spec.save(path) expected).") from None
    version = state.get("format") if isinstance(state, dict) else None
    if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
        raise SpecError(
            f"{path} is a feature spec of format {version}, written by a newer layerflow than this one "
            f"(format {FORMAT_VERSION}); upgrade layerflow to load it."
        )
    if version not in (CRC32_FORMAT, FORMAT_VERSION) or isinstance(version, bool):
        raise SpecError(
            f"{path} is not a saved feature spec (format {FORMAT_VERSION} expected, found "
            f"{'no format' if version is None else f'format {version!r}'})."
        )
    if version == CRC32_FORMAT:
        hashed = _hashed_columns(state.get("categorical") or [])
        if hashed:
            raise SpecError(
                f"{path} was saved by an older layerflow (feature spec format {CRC32_FORMAT}) that hashed with CRC32; "
                f"its hashed columns {hashed} would now fall into other buckets (this layerflow hashes with "
                f"MurmurHash3), so a model trained with it would silently get wrong inputs. Refit the spec on the "
                f"data, retrain the model that uses it, and save the spec again (format {FORMAT_VERSION})."
            )
    elif state.get("hashing", HASH_FUNCTION) != HASH_FUNCTION:
        raise SpecError(f"{path} hashes with {state['hashing']!r}; this layerflow hashes with {HASH_FUNCTION!r}.")
    spec = FeatureSpec(None, state["label"])
    for item in state["numeric"]:
        column = NumericColumn(item["name"], item["normalizer"])
        for key in ("count", "missing", "mean", "std", "min", "max"):
            setattr(column, key, item[key])
        spec.numeric_columns[column.name] = column
    for item in state["categorical"]:
        spec.categorical_columns[item["name"]] = CategoricalColumn(
            item["name"],
            item["kind"].removeprefix("categorical_"),
            item["source"],
            vocabulary=item.get("vocabulary"),
            num_oov_buckets=item.get("num_oov_buckets", 1),
            num_buckets=item.get("num_buckets"),
            boundaries=item.get("boundaries"),
        )
    spec.dense_columns = [
        DenseOf(
            d["column"],
            d["kind"],
            d.get("dimension"),
            d.get("name") if d.get("name") != f"{d['column']}_{d['kind']}" else None,
        )
        for d in state["dense"]
    ]
    spec.fitted = True
    return spec
