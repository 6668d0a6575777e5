"""Timing helpers shared by the chapters, the benchmark and the tests.

Wall-clock times on a shared machine are noisy: :func:`median_seconds` reports the median of
repeated runs after a warm-up, synchronising the GPU around each run so that asynchronous
kernels are counted, and :func:`threads` pins the number of torch threads while timing.
:func:`format_seconds` writes a duration the way the book's nbval sanitize file recognises.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterator

import torch

__all__ = ["format_seconds", "median_seconds", "sync", "threads"]


def sync(device: torch.device | str | None = None) -> None:
    """Wait for the GPU's queued work (a no-op on the CPU and when no GPU is in use)."""
    dev = torch.device(device) if device is not None else None
    if (dev is None or dev.type == "cuda") and torch.cuda.is_available():
        torch.cuda.synchronize(dev if dev is not None and dev.index is not None else None)
    elif dev is not None and dev.type == "mps":
        torch.mps.synchronize()


def median_seconds(fn: Callable[[], object], repeats: int = 5, inner: int = 1,
                   device: torch.device | str | None = None, warmup: int = 1) -> float:
    """Median over ``repeats`` runs of the wall-clock seconds of one call of ``fn``.

    Each run calls ``fn`` ``inner`` times and divides by ``inner`` (for calls far shorter than
    the clock's resolution); ``warmup`` runs come first and are not counted; the device is
    synchronised before and after each run.
    """
    for name, value, minimum in (("repeats", repeats, 1), ("inner", inner, 1),
                                 ("warmup", warmup, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        sync(device)
        times.append((time.perf_counter() - start) / inner)
    return statistics.median(times)


@contextlib.contextmanager
def threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch CPU threads, then restore the previous number."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"the number of threads must be a positive int, got {n!r}")
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def format_seconds(seconds: float) -> str:
    """``'1.23 s'`` from 1 s on, ``'4.56 ms'`` below, ``'7.9 µs'`` below a millisecond, and
    ``'12 min'`` from 10 minutes on (forms the nbval sanitize file rewrites)."""
    if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
        raise ValueError(f"seconds must be a non-negative number, got {seconds!r}")
    if seconds >= 600:
        return f"{seconds / 60:.0f} min"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds * 1e6:.3g} µs"
