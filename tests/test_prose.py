"""Numbers in words."""

import pytest

from entropic_ae.prose import (
    change_verb,
    correlation_phrase,
    count_phrase,
    duration_words,
    extra_cost,
    growth_phrase,
    how_often,
    join_words,
    listed,
    nodes_phrase,
    ordinal,
    percent,
    power_of_ten,
    power_of_ten_above,
    relative_phrase,
    share_word,
)


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


# --- qualitative words chosen from numbers -------------------------------------------------------


def test_nodes_phrase_branches():
    # chapter 3's numbers: the hand-written "collapses to about one node (at most 5.32)" was wrong
    assert nodes_phrase([3.96, 2.36, 2.30, 2.70, 5.32], [64, 16, 16, 16, 64]) == \
        "narrows to a few nodes"
    assert nodes_phrase([1.02, 1.4, 1.5], 16) == "collapses to about one node"
    assert nodes_phrase(1.51, 16) == "narrows to a few nodes"
    assert nodes_phrase([1.1, 4.0], 16) == "narrows to a few nodes"  # the widest class counts
    assert nodes_phrase([7.0, 2.0], 16) == "narrows to at most half its width"
    assert nodes_phrase(8.0, 16) == "narrows to at most half its width"
    assert nodes_phrase(4.0, 6) == "stays wide"  # a few nodes, but more than half of 6
    assert nodes_phrase([12.0, 15.9], 16) == "stays wide"
    assert nodes_phrase([1.0, 15.0], 16) == "narrows in some layers only"
    with pytest.raises(ValueError, match="exceed"):
        nodes_phrase(17.0, 16)
    with pytest.raises(ValueError, match="one per value"):
        nodes_phrase([1.0, 2.0], [16, 16, 16])
    for bad in ([], [0.0], [float("nan")], [True]):
        with pytest.raises(ValueError):
            nodes_phrase(bad, 16)


def test_relative_phrase_branches():
    assert relative_phrase(0.0201, 0.0200) == "about the same as"
    assert relative_phrase(0.0200, 0.0201) == "about the same as"
    assert relative_phrase(0.021, 0.020) == "barely higher than"
    assert relative_phrase(0.019, 0.020) == "barely lower than"
    assert relative_phrase(0.025, 0.020) == "higher than"
    assert relative_phrase(0.016, 0.020) == "lower than"
    assert relative_phrase(0.030, 0.020) == "much higher than"
    assert relative_phrase(0.010, 0.020) == "much lower than"
    assert relative_phrase(3.0, 1.0, "slower", "faster") == "much slower than"
    for bad in ((0.0, 1.0), (1.0, -1.0), (float("inf"), 1.0), (True, 1.0)):
        with pytest.raises(ValueError, match="positive"):
            relative_phrase(*bad)


def test_count_phrase_never_says_none():
    assert count_phrase(0, "width") == "no widths"
    assert count_phrase(1, "width") == "one width"
    assert count_phrase(12, "width") == "12 widths"
    assert count_phrase(2500, "setting") == "2,500 settings"
    assert count_phrase(0, "unit", "units") == "no units"
    assert count_phrase(3, "goose", "geese") == "3 geese"
    for bad in (-1, 1.0, True):
        with pytest.raises(ValueError):
            count_phrase(bad, "width")
    with pytest.raises(TypeError):
        count_phrase(1, "")


def test_listed_reads_right_for_empty_and_full_lists():
    some, none = "No setting landed on k = {items}.", "Every width was reached."
    assert listed([], some, none) == "Every width was reached."
    assert listed([4], some, none) == "No setting landed on k = 4."
    assert listed([4, 7, 9], some, none) == "No setting landed on k = 4, 7 and 9."
    assert listed([4, 7], "{n} widths ({items})", "", "or") == "2 widths (4 or 7)"
    assert "none" not in listed([], "at {items} the best landing was further off", "")
    assert listed(["a, b", "c"], "{items}", "", quote=True) == "“a, b” and “c”"
    with pytest.raises(ValueError, match="items"):
        listed([1], "no placeholder", "")
    with pytest.raises(TypeError):
        listed([1], None, "")


def test_percent_writes_one_percent_sign():
    assert percent(0.132) == "13 %"
    assert percent(0.1325, 1) == "13.2 %"
    assert percent(0.02) == "2 %"
    assert percent(0.0) == "0 %"
    assert percent(-0.0) == "0 %"
    assert percent(-0.25) == "-25 %"
    assert percent(0.004) == "under 1 %"
    assert percent(0.0004, 1) == "under 0.1 %"
    assert percent(-0.004) == "between -1 % and 0 %"
    assert percent(1.5) == "150 %"
    for text in (percent(x, d) for x in (0.02, 0.004, -0.004, 0.5) for d in (0, 1, 2)):
        assert text.count("%") == (2 if "between" in text else 1) and "% %" not in text
    for bad in (float("nan"), "5", True):
        with pytest.raises(ValueError, match="fraction"):
            percent(bad)
    with pytest.raises(ValueError, match="digits"):
        percent(0.1, -1)


def test_share_word_branches():
    assert [share_word(k, 16) for k in (0, 1, 2, 3, 6, 7, 8, 9, 10, 15, 16)] == [
        "none", "a few", "a few", "some", "some", "about half", "about half", "about half",
        "most", "most", "all"]
    for bad in ((3, 2), (1, 0), (-1, 4), (1.0, 4), (True, 4)):
        with pytest.raises(ValueError):
            share_word(*bad)


def test_correlation_phrase_branches():
    assert correlation_phrase(0.95) == "almost identically"
    assert correlation_phrase(0.8) == "much alike"
    assert correlation_phrase(0.5) == "somewhat alike"
    assert correlation_phrase(0.1) == "with little relation"
    assert correlation_phrase(-0.1) == "with little relation"
    assert correlation_phrase(-0.6) == "in roughly opposite ways"
    for bad in (1.5, float("nan"), True):
        with pytest.raises(ValueError):
            correlation_phrase(bad)


def test_change_verb_branches():
    assert change_verb(0.0300, 0.0303) == "barely changes"
    assert change_verb(0.030, 0.036) == "rises"
    assert change_verb(0.036, 0.030) == "falls"
    assert change_verb(0.02, 0.05) == "rises sharply"
    assert change_verb(0.05, 0.02) == "falls sharply"
    assert change_verb(1.0, 2.0, "grows", "shrinks") == "grows sharply"
    with pytest.raises(ValueError, match="positive"):
        change_verb(0.0, 1.0)


def test_how_often_branches():
    assert [how_often(f) for f in (0, 0.005, 0.05, 0.3, 0.7, 0.95, 1)] == [
        "never", "almost never", "rarely", "sometimes", "mostly", "almost always", "always"]
    for bad in (-0.1, 1.1, True):
        with pytest.raises(ValueError):
            how_often(bad)


def test_growth_phrase_branches():
    assert growth_phrase(1.08) == "in proportion to"
    assert growth_phrase(0.9) == "in proportion to"
    assert growth_phrase(1.62) == "as the 1.62 power of"
    assert growth_phrase(0.5) == "as the 0.50 power of"
    with pytest.raises(ValueError):
        growth_phrase(float("inf"))
    with pytest.raises(ValueError):
        growth_phrase(1.0, tolerance=0)


@pytest.mark.parametrize("x, bound", [(5.36e-07, 1e-06), (4.47e-07, 1e-06), (1e-06, 1e-05),
                                      (0.0, 1e-12), (3.0, 10.0)])
def test_power_of_ten_above_bounds_a_residue(x, bound):
    assert power_of_ten_above(x) == pytest.approx(bound) and x < power_of_ten_above(x)


@pytest.mark.parametrize("x", [-1e-7, float("nan"), "1e-7", True])
def test_power_of_ten_above_refuses_bad_input(x):
    with pytest.raises(ValueError, match="non-negative finite"):
        power_of_ten_above(x)
