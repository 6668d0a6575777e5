"""The C allocator's thresholds for training processes (private).

A training step allocates and frees the same large tensors again and again. With glibc's
defaults, allocations above the (adaptive) mmap threshold are mapped fresh, zero-filled by the
kernel and unmapped after use, and freed heap memory above the trim threshold is given back:
thousands of page faults per step. :func:`tune_allocator` raises both thresholds for the
calling process (``mallopt``), so freed blocks are reused. It does nothing on systems without
glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "tune_allocator"]

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
#: glibc's largest allowed mmap threshold on 64-bit systems (32 MiB).
MMAP_THRESHOLD = 32 * 1024 * 1024
#: Keep up to this much freed memory at the top of the heap (256 MiB).
TRIM_THRESHOLD = 256 * 1024 * 1024


@functools.cache
def tune_allocator() -> bool:
    """Raise glibc's mmap and trim thresholds for this process (once); True if it did."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
                and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
