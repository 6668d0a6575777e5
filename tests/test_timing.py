"""Timing helpers: medians of repeated runs, thread pinning, durations as text."""

import time

import pytest
import torch

from entropic_ae.timing import format_seconds, median_seconds, sync, threads


def test_median_seconds_of_a_known_sleep():
    calls = []
    t = median_seconds(lambda: (calls.append(1), time.sleep(0.01)), repeats=3, inner=2, warmup=1)
    assert 0.009 < t < 0.1 and len(calls) == 1 + 3 * 2
    with pytest.raises(ValueError):
        median_seconds(lambda: None, repeats=0)
    with pytest.raises(TypeError):
        median_seconds(42)


def test_threads_restores_the_setting():
    before = torch.get_num_threads()
    with threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError):
        with threads(0):
            pass


def test_format_seconds_in_the_forms_nbval_sanitizes():
    assert format_seconds(1234.5) == "21 min"
    assert format_seconds(2.345) == "2.35 s" and format_seconds(0.00456) == "4.56 ms"
    assert format_seconds(7.89e-6) == "7.89 µs"
    with pytest.raises(ValueError):
        format_seconds(-1)
    sync("cpu")  # a no-op without a GPU
