"""Feature columns: what each learns in ``fit`` and how it encodes a batch (numpy only)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from layerflow.errors import InvalidValueError
from layerflow.features.hashing import stable_hash

NORMALIZERS = (None, "standard", "minmax")


def _as_text(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values)
    if values.dtype.kind == "f":
        text = np.where(np.isnan(values), "", values.astype(str))
        return np.asarray(text, dtype=object)
    return np.asarray([("" if v is None else str(v)) for v in values], dtype=object)


@dataclass
class NumericColumn:
    """A numeric column, optionally normalised (the normalisation runs inside the model)."""

    name: str
    normalizer: str | None = None
    count: int = 0
    missing: int = 0
    mean: float | None = None
    std: float | None = None
    min: float | None = None
    max: float | None = None
    _sum: float = field(default=0.0, repr=False)
    _sumsq: float = field(default=0.0, repr=False)

    def observe(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float64)
        finite = values[~np.isnan(values)]
        self.missing += len(values) - len(finite)
        if len(finite):
            self.count += len(finite)
            self._sum += float(finite.sum())
            self._sumsq += float(np.square(finite).sum())
            low, high = float(finite.min()), float(finite.max())
            self.min = low if self.min is None else min(self.min, low)
            self.max = high if self.max is None else max(self.max, high)

    def finish(self) -> None:
        if not self.count:
            raise InvalidValueError(f"Numeric column {self.name!r} has no values in the data (all missing).")
        self.mean = self._sum / self.count
        self.std = float(np.sqrt(max(self._sumsq / self.count - self.mean ** 2, 0.0)))

    def encode(self, values: np.ndarray) -> np.ndarray:
        """Raw values as float32, missing ones replaced by the mean."""
        values = np.asarray(values, dtype=np.float32)
        return np.where(np.isnan(values), np.float32(self.mean), values)

    def scale(self) -> tuple[float, float]:
        """(offset, divisor) that the model applies: (x - offset) / divisor."""
        if self.normalizer == "standard":
            return self.mean, self.std or 1.0
        if self.normalizer == "minmax":
            return self.min, (self.max - self.min) or 1.0
        return 0.0, 1.0

    def state(self) -> dict[str, Any]:
        return {"kind": "numeric", "name": self.name, "normalizer": self.normalizer, "count": self.count,
                "missing": self.missing, "mean": self.mean, "std": self.std, "min": self.min, "max": self.max}


@dataclass
class CategoricalColumn:
    """A categorical column encoded to integer ids: ``vocab``, ``identity``, ``hash`` or ``bucketized``."""

    name: str
    kind: str
    source: list[str]
    vocabulary: list[str] | None = None
    num_oov_buckets: int = 1
    max_tokens: int | None = None
    num_buckets: int | None = None
    boundaries: list[float] | None = None
    _counts: dict[str, int] = field(default_factory=dict, repr=False)

    @property
    def depth(self) -> int:
        """How many distinct ids the column produces."""
        if self.kind == "vocab":
            return len(self.vocabulary or []) + self.num_oov_buckets
        if self.kind == "identity":
            return self.num_buckets + 1  # the last id holds out-of-range values
        if self.kind == "bucketized":
            return len(self.boundaries) + 1
        return self.num_buckets

    @property
    def learns_vocabulary(self) -> bool:
        return self.kind == "vocab" and (self.vocabulary is None or bool(self._counts))

    def observe(self, values: np.ndarray) -> None:
        if self.learns_vocabulary:
            unique, counts = np.unique(_as_text(values), return_counts=True)
            for value, count in zip(unique, counts):
                if value != "":
                    self._counts[value] = self._counts.get(value, 0) + int(count)

    def finish(self) -> None:
        if self.kind == "vocab" and self._counts:
            ranked = sorted(self._counts.items(), key=lambda item: (-item[1], item[0]))
            self.vocabulary = [value for value, _ in ranked[: self.max_tokens]]
        if self.kind == "vocab" and not self.vocabulary:
            raise InvalidValueError(f"Categorical column {self.name!r} has no values in the data to learn a vocabulary from.")

    def encode(self, columns: list[np.ndarray]) -> np.ndarray:
        """Integer ids (int32) for a batch; unseen values go to the out-of-vocabulary bucket(s)."""
        if self.kind == "vocab":
            text = _as_text(columns[0])
            index = {value: i for i, value in enumerate(self.vocabulary)}
            unique, inverse = np.unique(text, return_inverse=True)
            size = len(self.vocabulary)
            oov = size + stable_hash(unique, self.num_oov_buckets)
            ids = np.fromiter((index.get(u, o) for u, o in zip(unique, oov.tolist())), np.int64, len(unique))
            return ids[inverse.reshape(-1)].astype(np.int32)
        if self.kind == "identity":
            values = np.asarray(columns[0], dtype=np.float64)
            ok = ~np.isnan(values) & (values >= 0) & (values < self.num_buckets)
            return np.where(ok, np.nan_to_num(values), self.num_buckets).astype(np.int32)
        if self.kind == "bucketized":
            return np.digitize(np.asarray(columns[0], dtype=np.float64), self.boundaries).astype(np.int32)
        if self.kind == "crossed":
            text = _as_text(columns[0])
            for other in columns[1:]:
                text = np.char.add(np.char.add(text.astype(str), "\x1f"), _as_text(other).astype(str))
            return stable_hash(text, self.num_buckets)
        return stable_hash(_as_text(columns[0]), self.num_buckets)  # hash

    def state(self) -> dict[str, Any]:
        state = {"kind": f"categorical_{self.kind}", "name": self.name, "source": self.source, "depth": self.depth}
        for key in ("vocabulary", "num_oov_buckets", "num_buckets", "boundaries"):
            value = getattr(self, key)
            if value is not None and (key != "num_oov_buckets" or self.kind == "vocab"):
                state[key] = value
        return state


@dataclass
class DenseOf:
    """How a categorical column enters the dense tensor: ``indicator`` (one-hot) or ``embedding``."""

    column: str
    kind: str
    dimension: int | None = None

    def state(self) -> dict[str, Any]:
        state = {"kind": self.kind, "column": self.column}
        if self.dimension:
            state["dimension"] = self.dimension
        return state
