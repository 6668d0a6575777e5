"""Tests of entropic_ae._checks: the shared argument checks."""

import numpy as np
import pytest
import torch

from entropic_ae._checks import check_int, check_matrix, check_real, is_integer, is_real


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


def test_check_matrix_names_the_shape_and_the_problem():
    check_matrix("z", torch.zeros(3, 2), "B")
    with pytest.raises(TypeError, match=r"z must be a torch.Tensor of shape \(B, d\), got list"):
        check_matrix("z", [[0.0]], "B")
    with pytest.raises(ValueError, match=r"z must have shape \(N, d\), got \(3,\)"):
        check_matrix("z", torch.zeros(3), "N")
    with pytest.raises(TypeError, match="floating-point tensor, got torch.int64"):
        check_matrix("z", torch.zeros(3, 2, dtype=torch.long))
