"""Numbers in words."""

import pytest

from entropic_ae.prose import duration_words, extra_cost, join_words, ordinal, power_of_ten


def test_power_of_ten():
    assert power_of_ten(10_312_216_477_696) == "1.03 × 10¹³"
    assert power_of_ten(0.00042) == "4.20 × 10⁻⁴"
    assert power_of_ten(9.999e5) == "1.00 × 10⁶"
    for bad in (0, -1.0, float("inf"), True):
        with pytest.raises(ValueError):
            power_of_ten(bad)


def test_durations():
    assert duration_words(5 * 3600) == "5 hours"
    assert duration_words(17 * 86400) == "17 days"
    assert duration_words(3200 * 365.25 * 86400) == "3,200 years"
    with pytest.raises(ValueError):
        duration_words(-1)


def test_join_words():
    assert join_words([]) == "none"
    assert join_words([3]) == "3"
    assert join_words(["a", "b"]) == "a and b"
    assert join_words([1, 2, 3], "or") == "1, 2 or 3"


def test_ordinals():
    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 101, 111)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "101st", "111th"]
    with pytest.raises(TypeError):
        ordinal(1.0)


def test_extra_cost_never_reports_noise_as_a_saving():
    assert extra_cost(1.13, 1.0) == "13 %"
    assert extra_cost(0.97, 1.0) == "under 5 % (within timing noise)"
    assert extra_cost(1.04, 1.0, resolution=0.02) == "4 %"
    for bad in ((0.0, 1.0), (1.0, float("nan")), (1.0, True)):
        with pytest.raises(ValueError, match="positive finite"):
            extra_cost(*bad)
    with pytest.raises(ValueError, match="resolution"):
        extra_cost(1.0, 1.0, resolution=5)
