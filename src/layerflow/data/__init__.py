"""Streaming datasets (the tfdatasets part): read lazily, transform, feed Keras in batches.

Example:
    >>> ds = lf.data.csv_dataset("big.csv", batch_size=4096)
    >>> model.fit(ds.prepare(y="label"), epochs=2)
"""

from layerflow.data.chunks import ragged
from layerflow.data.dataset import Dataset
from layerflow.data.errors import (
    CsvFormatError,
    DatasetArgumentError,
    DatasetColumnError,
    DatasetFileNotFoundError,
    DatasetKindError,
    UnknownLengthError,
)
from layerflow.data.readers import (
    csv_dataset,
    file_list_dataset,
    from_arrays,
    from_frame,
    list_files,
    parquet_dataset,
    range_dataset,
    text_line_dataset,
)

__all__ = [
    "CsvFormatError",
    "Dataset",
    "DatasetArgumentError",
    "DatasetColumnError",
    "DatasetFileNotFoundError",
    "DatasetKindError",
    "UnknownLengthError",
    "csv_dataset",
    "file_list_dataset",
    "from_arrays",
    "from_frame",
    "list_files",
    "parquet_dataset",
    "ragged",
    "range_dataset",
    "text_line_dataset",
]
