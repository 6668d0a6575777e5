"""Shared pytest fixtures."""

import struct

import numpy as np
import pytest

from entropic_ae.timing import threads


@pytest.fixture
def one_thread():
    """Run a test on one torch thread: as fast for tiny tensors, and immune to a busy machine
    (the package's own :func:`entropic_ae.timing.threads`)."""
    with threads(1):
        yield


@pytest.fixture
def reference_idx_bytes():
    """A slow, obviously-correct IDX encoder: ``f(array, type_code, struct_format)`` writes the
    header field by field and the values one at a time (big endian)."""

    def encode(array: np.ndarray, code: int, big_endian: str) -> bytes:
        out = bytearray([0, 0, code, array.ndim])
        for size in array.shape:
            out += size.to_bytes(4, "big")
        for value in array.ravel().tolist():
            out += struct.pack(">" + big_endian, value)
        return bytes(out)

    return encode
