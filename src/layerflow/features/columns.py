"""Feature columns: what each learns in ``fit`` and how it encodes a batch.

Encoding is vectorised (pyarrow compute kernels and numpy): a vocabulary lookup is one
``index_in`` over the batch, bucketing one ``digitize``; Python runs once per *distinct*
out-of-vocabulary or hashed value (in ``stable_hash``), never once per row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from layerflow.features.errors import SpecError
from layerflow.features.hashing import stable_hash

NORMALIZERS = (None, "standard", "minmax")


def arrow_text(values: Any):
    """Values (numpy or Arrow) as a pyarrow string array, "" for missing ones, without a per-row Python loop.

    The text of a value is the same whichever form it comes in: numpy's ``str`` for floats and
    bools (and for integers with missing values, which read as float32), the digits for integers.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        kind = values.type
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            text = values if pa.types.is_string(kind) else values.cast(pa.string())
            return pc.fill_null(text, "") if text.null_count else text
        if pa.types.is_integer(kind) and not values.null_count:
            return pc.cast(values, pa.string())
        values = values.to_numpy(zero_copy_only=False)
        if pa.types.is_integer(kind):
            values = values.astype(np.float32)
    values = np.asarray(values)
    if values.dtype.kind in "fb":
        text = values.astype(str)
        if values.dtype.kind == "f":
            text = np.where(np.isnan(values), "", text)
        return pa.array(text, type=pa.string())
    if values.dtype.kind in "iu":
        return pc.cast(pa.array(values), pa.string())
    try:
        array = pa.array(values, type=pa.string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        array = pa.array(["" if v is None else str(v) for v in values], type=pa.string())
    return pc.fill_null(array, "") if array.null_count else array


def hashed_ids(text, buckets: int) -> np.ndarray:
    """``stable_hash`` of an Arrow string array, computed once per distinct value (dictionary-encoded)."""
    import pyarrow.compute as pc

    encoded = pc.dictionary_encode(text)
    if isinstance(encoded, type(text)) and hasattr(encoded, "chunks"):
        encoded = encoded.combine_chunks()
    distinct = encoded.dictionary.to_numpy(zero_copy_only=False)
    ids = stable_hash(distinct, buckets) if len(distinct) else np.zeros(0, dtype=np.int32)
    return ids[encoded.indices.to_numpy(zero_copy_only=False)]


def _float64(values: Any) -> np.ndarray:
    if hasattr(values, "to_numpy") and not isinstance(values, np.ndarray):
        values = values.to_numpy(zero_copy_only=False)
    return np.asarray(values, dtype=np.float64)


def _fitted(value: float | None, column: str) -> float:
    if value is None:
        raise SpecError(f"Numeric column {column!r} is not fitted yet: fit the spec on data first.")
    return value


def default_embedding_dimension(depth: int) -> int:
    """The embedding width used when none is given: ``ceil(depth ** 0.25)`` (tfdatasets' rule of thumb)."""
    return max(1, math.ceil(depth**0.25))


@dataclass
class NumericColumn:
    """A numeric column, optionally normalised (the normalisation runs inside the model).

    ``std`` is the *sample* standard deviation (divisor n - 1), as tfdatasets' ``scaler_standard``
    and pandas' ``std()`` compute it.
    """

    name: str
    normalizer: str | None = None
    count: int = 0
    missing: int = 0
    mean: float | None = None
    std: float | None = None
    min: float | None = None
    max: float | None = None
    _m2: float = field(default=0.0, repr=False)
    _mean: float = field(default=0.0, repr=False)

    def observe(self, values: Any) -> None:
        values = _float64(values)
        finite = values[~np.isnan(values)]
        self.missing += len(values) - len(finite)
        if not len(finite):
            return
        n, batch_mean = len(finite), float(finite.mean())
        batch_m2 = float(np.square(finite - batch_mean).sum())
        total = self.count + n
        delta = batch_mean - self._mean  # Chan et al.'s pairwise merge: stable for large means
        self._mean += delta * n / total
        self._m2 += batch_m2 + delta * delta * self.count * n / total
        self.count = total
        low, high = float(finite.min()), float(finite.max())
        self.min = low if self.min is None else min(self.min, low)
        self.max = high if self.max is None else max(self.max, high)

    def finish(self) -> None:
        if not self.count:
            raise SpecError(f"Numeric column {self.name!r} has no values in the data (all missing).")
        self.mean = self._mean
        self.std = float(np.sqrt(self._m2 / (self.count - 1))) if self.count > 1 else 0.0

    def encode(self, values: Any) -> np.ndarray:
        """Raw values (numpy or Arrow) as float32, missing ones replaced by the mean."""
        if hasattr(values, "to_numpy") and not isinstance(values, np.ndarray):
            values = values.to_numpy(zero_copy_only=False)
        values = np.asarray(values, dtype=np.float32)
        return np.where(np.isnan(values), np.float32(self.mean), values)

    def scale(self) -> tuple[float, float]:
        """(offset, divisor) that the model applies: (x - offset) / divisor."""
        if self.normalizer == "standard":
            return _fitted(self.mean, self.name), _fitted(self.std, self.name) or 1.0
        if self.normalizer == "minmax":
            low, high = _fitted(self.min, self.name), _fitted(self.max, self.name)
            return low, (high - low) or 1.0
        return 0.0, 1.0

    def state(self) -> dict[str, Any]:
        return {
            "kind": "numeric",
            "name": self.name,
            "normalizer": self.normalizer,
            "count": self.count,
            "missing": self.missing,
            "mean": self.mean,
            "std": self.std,
            "min": self.min,
            "max": self.max,
        }


@dataclass
class CategoricalColumn:
    """A categorical column encoded to integer ids: ``vocab``, ``identity``, ``hash``, ``bucketized`` or ``crossed``."""

    name: str
    kind: str
    source: list[str]
    vocabulary: list[str] | None = None
    num_oov_buckets: int = 1
    max_tokens: int | None = None
    num_buckets: int | None = None
    boundaries: list[float] | None = None
    _counts: dict[str, int] = field(default_factory=dict, repr=False)
    _lookup: Any = field(default=None, repr=False, compare=False)

    @property
    def depth(self) -> int:
        """How many distinct ids the column produces."""
        if self.kind == "vocab":
            return len(self.vocabulary or []) + self.num_oov_buckets
        if self.kind == "identity":
            return self._buckets() + 1  # the last id holds out-of-range values
        if self.kind == "bucketized":
            return len(self._boundaries()) + 1
        return self._buckets()

    def _buckets(self) -> int:
        if self.num_buckets is None:
            raise SpecError(f"Categorical column {self.name!r} ({self.kind}) has no num_buckets.")
        return self.num_buckets

    def _boundaries(self) -> list[float]:
        if self.boundaries is None:
            raise SpecError(f"Bucketized column {self.name!r} has no boundaries.")
        return self.boundaries

    def _fitted_vocabulary(self) -> list[str]:
        if self.vocabulary is None:
            raise SpecError(f"Categorical column {self.name!r} has no vocabulary yet: fit the spec first.")
        return self.vocabulary

    @property
    def learns_vocabulary(self) -> bool:
        return self.kind == "vocab" and (self.vocabulary is None or bool(self._counts))

    def observe(self, values: np.ndarray) -> None:
        if not self.learns_vocabulary:
            return
        import pyarrow.compute as pc

        counted = pc.value_counts(arrow_text(values))
        for value, count in zip(counted.field("values").to_pylist(), counted.field("counts").to_pylist()):
            if value != "":
                self._counts[value] = self._counts.get(value, 0) + int(count)

    def finish(self) -> None:
        if self.kind == "vocab" and self._counts:
            ranked = sorted(self._counts.items(), key=lambda item: (-item[1], item[0]))
            self.vocabulary = [value for value, _ in ranked[: self.max_tokens]]
            self._counts = {}
        if self.kind == "vocab" and not self.vocabulary:
            raise SpecError(f"Categorical column {self.name!r} has no values in the data to learn a vocabulary from.")
        self._lookup = None

    def _vocabulary_array(self):
        import pyarrow as pa

        if self._lookup is None:
            self._lookup = pa.array(self.vocabulary, type=pa.string())
        return self._lookup

    def encode(self, columns: list[np.ndarray]) -> np.ndarray:
        """Integer ids (int32) for a batch; unseen values go to the out-of-vocabulary bucket(s)."""
        if self.kind == "vocab":
            import pyarrow.compute as pc

            text = arrow_text(columns[0])
            found = pc.index_in(text, value_set=self._vocabulary_array())
            ids = pc.fill_null(found, -1).to_numpy(zero_copy_only=False).astype(np.int32, copy=False)
            unseen = ids < 0
            if unseen.any():
                size = len(self._fitted_vocabulary())
                if self.num_oov_buckets == 1:
                    ids = np.where(unseen, np.int32(size), ids)
                else:
                    ids = ids.copy()
                    ids[unseen] = size + hashed_ids(text.filter(unseen), self.num_oov_buckets)
            return ids
        if self.kind == "identity":
            values = _float64(columns[0])
            buckets = self._buckets()
            ok = ~np.isnan(values) & (values >= 0) & (values < buckets)
            return np.where(ok, np.nan_to_num(values), buckets).astype(np.int32)
        if self.kind == "bucketized":
            return np.digitize(_float64(columns[0]), self._boundaries()).astype(np.int32)
        if self.kind == "crossed":
            import pyarrow.compute as pc

            crossed = pc.binary_join_element_wise(*(arrow_text(c) for c in columns), "\x1f")
            return hashed_ids(crossed, self._buckets())
        return hashed_ids(arrow_text(columns[0]), self._buckets())  # hash

    def state(self) -> dict[str, Any]:
        state = {"kind": f"categorical_{self.kind}", "name": self.name, "source": self.source, "depth": self.depth}
        for key in ("vocabulary", "num_oov_buckets", "num_buckets", "boundaries"):
            value = getattr(self, key)
            if value is not None and (key != "num_oov_buckets" or self.kind == "vocab"):
                state[key] = value
        return state


@dataclass
class DenseOf:
    """How a categorical column enters the dense tensor: ``indicator`` (one-hot) or ``embedding``.

    ``name`` names the output (and its Keras layer); by default ``<column>_indicator`` or
    ``<column>_embedding``.
    """

    column: str
    kind: str
    dimension: int | None = None
    name: str | None = None

    @property
    def output_name(self) -> str:
        return self.name or f"{self.column}_{self.kind}"

    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = {"kind": self.kind, "column": self.column, "name": self.output_name}
        if self.dimension:
            state["dimension"] = self.dimension
        return state
