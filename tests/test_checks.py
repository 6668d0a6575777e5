"""Tests of entropic_ae._checks: the shared argument checks."""

import numpy as np
import pytest

from entropic_ae._checks import check_int, check_real, is_integer, is_real


def test_predicates_refuse_bools_and_accept_numpy_scalars():
    assert is_integer(np.int64(3)) and not is_integer(True) and not is_integer(3.0)
    assert is_real(np.float32(0.5)) and is_real(2) and not is_real(np.bool_(True))


def test_check_int_names_the_argument_and_the_bound():
    assert check_int("n", np.int32(4), minimum=1) == 4
    with pytest.raises(TypeError, match=r"n must be an int, got float \(4.0\)"):
        check_int("n", 4.0)
    with pytest.raises(TypeError, match="bool"):
        check_int("n", True)
    with pytest.raises(ValueError, match="n must be >= 1, got 0"):
        check_int("n", 0, minimum=1)
    with pytest.raises(ValueError, match="n must be <= 3, got 4"):
        check_int("n", 4, maximum=3)


def test_check_real_bounds_and_finiteness():
    assert check_real("lr", 1, gt=0) == 1.0
    with pytest.raises(ValueError, match="lr must be > 0, got 0"):
        check_real("lr", 0.0, gt=0)
    with pytest.raises(ValueError, match="finite"):
        check_real("lr", float("inf"))
    with pytest.raises(TypeError, match="lr must be a number, got str"):
        check_real("lr", "0.1")
    with pytest.raises(ValueError, match="<= 1"):
        check_real("p", 1.5, ge=0, le=1)
