"""String hashing for feature columns: MurmurHash3 (x86, 32 bit, seed 0) of each value's UTF-8 text.

The same function is onnxruntime's ``com.microsoft.MurmurHash3`` operator (also in
onnxruntime-web), so an exported bundle computes the very bucket Python computed in
training, inside the ONNX graph.
"""

from __future__ import annotations

import mmh3
import numpy as np

SEED = 0
# Recorded in a saved spec (and so in a bundle's signature.json): what its hashed buckets mean.
HASH_FUNCTION = "murmur3_x86_32/seed=0/utf-8"


def murmur3(text: str) -> int:
    """The unsigned 32-bit MurmurHash3 of ``text``'s UTF-8 bytes.

    Args:
        text: the value's text.

    Returns:
        An integer in ``[0, 2**32)``.

    Example:
        >>> murmur3("lima")
        3743994873
    """
    return mmh3.hash(text.encode("utf-8"), SEED, signed=False)


def stable_hash(values: np.ndarray, buckets: int) -> np.ndarray:
    """Bucket ids (int32) of each value's text: ``murmur3(str(value)) % buckets``.

    The same in every process and language, and in the exported ONNX graph.

    Args:
        values: the values (strings, or anything ``str()`` turns into the text that is hashed).
        buckets: how many buckets.

    Returns:
        An int32 array of bucket ids shaped like ``values`` flattened.

    Example:
        >>> stable_hash(np.array(["lima", "oslo"]), 10).tolist()
        [3, 1]
    """
    text = np.asarray(values).astype(str)
    unique, inverse = np.unique(text, return_inverse=True)
    hashed = np.fromiter((murmur3(u) % buckets for u in unique), np.int64, len(unique))
    return hashed[inverse.reshape(-1)].astype(np.int32)
