"""The count thresholds on the week and on the two-week sum (``detectors.count_two_weeks``,
and ``detectors.count_seasonal`` around a seasonal baseline)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from telehealth.surveillance import detectors

# Thirty weeks around 10 cases, the spread of Poisson noise: nothing to see.
QUIET = [8, 10, 12, 9, 11, 10, 13, 7, 10, 11, 9, 10, 12, 8, 10, 11, 9, 10, 11, 10,
         8, 12, 10, 9, 11, 10, 12, 9, 10, 11]


def _pmf(mean: float, dispersion: float, upto: int) -> np.ndarray:
    """Negative binomial (Poisson at dispersion 1) probabilities, by the textbook formula."""
    if dispersion <= 1.0001:
        return np.array([math.exp(k * math.log(mean) - mean - math.lgamma(k + 1))
                         for k in range(upto)])
    size = mean / (dispersion - 1.0)
    p = size / (size + mean)
    return np.array([math.exp(math.lgamma(k + size) - math.lgamma(size) - math.lgamma(k + 1)
                              + size * math.log(p) + k * math.log1p(-p)) for k in range(upto)])


def test_a_quiet_series_does_not_alarm() -> None:
    result = detectors.count_two_weeks(QUIET)
    assert not result.alarm.any()
    assert result.two_week_alarm is not None and not result.two_week_alarm.any()
    assert result.two_week_expected is not None and result.two_week_upper is not None
    last = len(QUIET) - 1
    assert result.two_week_expected[last] == pytest.approx(2 * result.expected[last])
    assert result.two_week_upper[last] > result.upper[last]


def test_a_doubling_over_two_weeks_alarms_on_the_sum_the_week_alone_does_not_show() -> None:
    series = QUIET + [18, 18]
    result = detectors.count_two_weeks(series)
    assert result.two_week_alarm is not None and result.two_week_upper is not None
    last = len(series) - 1
    assert 18 <= result.upper[last]  # the week alone is within its bound
    assert 36 > result.two_week_upper[last]  # the two weeks together are not
    assert result.alarm[last] and result.two_week_alarm[last]
    # The one-week rule at the same budget misses it.
    assert not detectors.count_quantile(series, alpha=detectors.TWO_WEEK_ALPHA).alarm[last]


def test_a_one_week_burst_alarms_in_its_week() -> None:
    series = QUIET + [30]
    result = detectors.count_two_weeks(series)
    assert result.alarm[-1] and 30 > result.upper[-1]


def test_too_short_a_history_says_so_and_the_fixed_threshold_stands_in() -> None:
    with pytest.raises(detectors.NotEnoughHistory) as raised:
        detectors.count_two_weeks([1, 0, 2, 1, 0])
    assert (raised.value.detector, raised.value.needed, raised.value.have) == (
        "count over two weeks", 10, 5)
    name, result = detectors.detect("count_two_weeks", [0, 0, 1, 0, 3], threshold=3)
    assert name == "fixed" and list(result.alarm) == [False] * 4 + [True]


@pytest.mark.parametrize(("mean", "dispersion", "share"), [
    (0.3, 2.0, 0.25), (3.0, 1.0, 0.25), (12.0, 3.0, 0.25), (30.0, 1.5, 0.5), (60.0, 2.0, 0.1),
])
def test_the_union_of_the_two_tests_keeps_within_the_budget(mean, dispersion, share) -> None:
    alpha = 0.01
    k1, k2 = detectors.two_week_thresholds(mean, dispersion, alpha, share)
    pmf = _pmf(mean, dispersion, 400)
    week_tail = 1.0 - pmf[:k1].sum()
    assert week_tail <= alpha * share
    sums = np.convolve(pmf, pmf)[:400]

    def union(k: int) -> float:
        # P(X_t >= k1) + P(X_t < k1 and X_t + X_{t-1} >= k)
        both_below = sum(pmf[x] * pmf[: max(0, k - x)].sum() for x in range(k1))
        return 1.0 - both_below

    assert union(k2) <= alpha < union(k2 - 1)  # the smallest sum that keeps the budget
    assert union(k2) < week_tail + (1.0 - sums[:k2].sum())  # tighter than Bonferroni's sum


def test_weeks_before_start_are_left_without_a_verdict() -> None:
    series = QUIET + [18, 18]
    full = detectors.count_two_weeks(series)
    recent = detectors.count_two_weeks(series, start=len(series) - 2)
    assert np.isnan(recent.upper[:-2]).all() and not recent.alarm[:-2].any()
    assert recent.two_week_upper is not None and full.two_week_upper is not None
    assert list(recent.upper[-2:]) == list(full.upper[-2:])
    assert list(recent.two_week_upper[-2:]) == list(full.two_week_upper[-2:])
    assert recent.alarm[-1]


# --- count_seasonal: the same thresholds around a Serfling baseline ---------------------------

# Three years around a season of 20·exp(0.5·cos(2πt/52)) cases a week (12 in the trough, 33 at
# the peak, the peak in the first week of each year), with a deterministic wiggle well inside
# Poisson noise: nothing to see.
WEEK = np.arange(3 * detectors.WEEKS_PER_YEAR)
SEASONAL = np.round(20 * np.exp(0.5 * np.cos(2 * np.pi * WEEK / 52)) + 3 * np.sin(2.3 * WEEK))
PEAK, TROUGH = 2 * 52, 2 * 52 + 26  # the third year's peak and trough


def test_a_quiet_seasonal_series_does_not_alarm_at_its_peak() -> None:
    result = detectors.count_seasonal(SEASONAL)
    assert not result.alarm.any()
    # The expected count follows the season (a flat mean would sit near 20 all year).
    assert result.expected[PEAK] == pytest.approx(SEASONAL[PEAK], abs=3)
    assert result.expected[TROUGH] == pytest.approx(SEASONAL[TROUGH], abs=3)
    assert result.two_week_expected is not None
    assert result.two_week_expected[PEAK] == pytest.approx(
        result.expected[PEAK] + result.expected[PEAK - 1], rel=0.05)


def test_a_doubling_in_the_trough_alarms_where_a_flat_baseline_misses_it() -> None:
    series = SEASONAL.copy()
    series[TROUGH - 1 : TROUGH + 1] *= 2  # two weeks at twice the trough's count
    result = detectors.count_seasonal(series)
    assert result.two_week_alarm is not None
    assert result.alarm[TROUGH] and result.two_week_alarm[TROUGH]
    assert not result.alarm[: TROUGH - 1].any()
    # The flat mean of the past two years is the whole year's: the trough's doubling is under it.
    assert not detectors.count_two_weeks(series).alarm[TROUGH - 1 : TROUGH + 1].any()


def test_a_seasonal_baseline_needs_a_year_and_the_two_week_rule_stands_in() -> None:
    with pytest.raises(detectors.NotEnoughHistory) as raised:
        detectors.count_seasonal(SEASONAL[:50])
    assert (raised.value.detector, raised.value.needed, raised.value.have) == (
        "seasonal count", 54, 50)
    name, result = detectors.detect("count_seasonal", SEASONAL[:50], threshold=5)
    assert name == "count_two_weeks"
    assert result.expected[-1] == detectors.count_two_weeks(SEASONAL[:50]).expected[-1]


def test_a_past_without_cases_keeps_the_minimum_count() -> None:
    # Nothing to fit a season to: the flat fit's one-case (here three-case) rule stands.
    quiet = detectors.count_seasonal(np.zeros(70), minimum=3)
    assert quiet.upper[-1] == 2 and not quiet.alarm.any()
    assert detectors.count_seasonal(np.r_[np.zeros(69), 3.0], minimum=3).alarm[-1]
