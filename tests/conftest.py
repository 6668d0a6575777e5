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


@pytest.fixture
def test_device():
    """The device of the tests marked ``device``: ``$ENTROPIC_AE_TEST_DEVICE`` (``cpu`` when
    unset); ``python -m entropic_ae.gpu_check`` sets it to ``cuda``. Skips, with the reason,
    when that device is not available here."""
    import os

    import torch

    name = os.environ.get("ENTROPIC_AE_TEST_DEVICE", "").strip() or "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        pytest.fail(f"ENTROPIC_AE_TEST_DEVICE={name!r} is not a torch device")
    if device.type == "cuda" and not torch.cuda.is_available():
        pytest.skip(f"ENTROPIC_AE_TEST_DEVICE={name} but no CUDA GPU is available")
    if device.type == "mps" and not torch.backends.mps.is_available():
        pytest.skip(f"ENTROPIC_AE_TEST_DEVICE={name} but Apple MPS is not available")
    return device
