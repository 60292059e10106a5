"""Rows of a `datasets` ArrayXD column as numpy arrays of the stored dtype, without copies.

`datasets`' numpy and torch formats widen every integer to int64 and every float to float32
(uint8 frames become int64, float16 slots float32) unless one dtype is forced on all columns.
`array_rows` reads the Arrow storage directly: each row is a view into the memory-mapped file,
of the dtype the schema declares.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa


def array_rows(column: pa.ChunkedArray | pa.Array) -> list[np.ndarray]:
    """[rows] of [t, *shape[1:]] arrays from an ArrayXD column (a `with_format("arrow")` one)."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    return [row for chunk in chunks for row in _chunk_rows(chunk)]


def _chunk_rows(chunk: pa.Array) -> list[np.ndarray]:
    # datasets' Array2D..Array5D extension types carry `shape` and `ndims`
    if not isinstance(chunk, pa.ExtensionArray) or not hasattr(chunk.type, "ndims"):
        raise TypeError(f"expected an ArrayXD column, got {chunk.type}")
    storage = chunk.storage
    if storage.null_count:
        raise ValueError("ArrayXD column holds null rows")
    inner_shape = tuple(chunk.type.shape[1:])
    inner_size = math.prod(inner_shape)
    offsets = storage.offsets.to_numpy()
    offsets = offsets - offsets[0]  # a sliced array's offsets start where the slice does
    values = storage
    for _ in range(chunk.type.ndims):
        values = values.flatten()  # flatten() keeps only the values of the slice
    flat = values.to_numpy(zero_copy_only=False)
    return [
        flat[start * inner_size : stop * inner_size].reshape(stop - start, *inner_shape)
        for start, stop in zip(offsets[:-1], offsets[1:], strict=True)
    ]
