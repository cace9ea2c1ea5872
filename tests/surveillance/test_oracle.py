"""Acceptance 1: our EARS C1–C3 and Farrington flexible against R's ``surveillance`` package.

Seeded simulated weekly series (seasonal negative binomial counts, some with injected
outbreaks) go to ``Rscript``; R's upper bounds must match ours within 1e-6 relative and the
alarms must be identical, week by week.
"""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from telehealth.surveillance import detectors
from tests.conftest import need_service

WEEKS = 6 * 52 + 10
R_SCRIPT = r"""
suppressMessages(library(surveillance))
args <- commandArgs(trailingOnly = TRUE)
y <- as.matrix(read.csv(args[1], header = FALSE))
run <- function(name, f) {
  for (j in seq_len(ncol(y))) {
    s <- sts(observed = y[, j], start = c(2000, 1), frequency = 52)
    r <- f(s)
    n <- nrow(y) - nrow(r@observed)
    cat(sprintf("%s,%d,%d,%.17g,%d\n", name, j, n + seq_len(nrow(r@observed)),
                as.numeric(upperbound(r)), as.integer(alarms(r))), sep = "")
  }
}
run("C1", function(s) earsC(s, control = list(method = "C1")))
run("C2", function(s) earsC(s, control = list(method = "C2")))
run("C3", function(s) earsC(s, control = list(method = "C3")))
run("C1a", function(s) earsC(s, control = list(method = "C1", alpha = 0.05, baseline = 5)))
run("F1", function(s) farringtonFlexible(s, control = list(glmWarnings = FALSE)))
run("F10", function(s) farringtonFlexible(s, control = list(noPeriods = 10, b = 3,
                                                            glmWarnings = FALSE)))
run("F2", function(s) farringtonFlexible(s, control = list(b = 2, w = 2, trend = FALSE,
                                                           glmWarnings = FALSE)))
"""

OURS = {
    "C1": lambda y: detectors.ears(y, "C1"),
    "C2": lambda y: detectors.ears(y, "C2"),
    "C3": lambda y: detectors.ears(y, "C3"),
    "C1a": lambda y: detectors.ears(y, "C1", baseline=5, alpha=0.05),
    "F1": lambda y: detectors.farrington_flexible(y),
    "F10": lambda y: detectors.farrington_flexible(
        y, detectors.FarringtonControl(b=3, no_periods=10)
    ),
    "F2": lambda y: detectors.farrington_flexible(
        y, detectors.FarringtonControl(b=2, w=2, trend=False)
    ),
}


def simulate(seed: int) -> np.ndarray:
    """Seasonal overdispersed weekly counts with a trend and two outbreaks, as in Noufaily 2013."""
    rng = np.random.default_rng(seed)
    t = np.arange(WEEKS)
    base = rng.uniform(1.0, 25.0)
    mean = base * np.exp(
        rng.uniform(-0.002, 0.003) * t + rng.uniform(0.1, 0.6) * np.cos(2 * np.pi * t / 52)
    )
    size = rng.uniform(2.0, 30.0)
    counts = rng.negative_binomial(size, size / (size + mean)).astype(float)
    for start in rng.choice(np.arange(60, WEEKS - 6), size=2, replace=False):
        counts[start : start + 4] += rng.poisson(3 * np.sqrt(base), 4)
    return counts


@pytest.fixture(scope="module")
def oracle(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, dict]:
    rscript = shutil.which("Rscript")
    if rscript is None:
        need_service("Rscript", "apt-get install r-cran-surveillance")
    series = np.column_stack([simulate(seed) for seed in range(8)])
    folder = tmp_path_factory.mktemp("oracle")
    data, script = folder / "series.csv", folder / "oracle.R"
    np.savetxt(data, series, fmt="%d", delimiter=",")
    script.write_text(R_SCRIPT)
    done = subprocess.run([rscript, str(script), str(data)], capture_output=True, text=True,
                          timeout=600)
    if "there is no package called" in done.stderr:
        need_service("R surveillance", "apt-get install r-cran-surveillance")
    assert done.returncode == 0, done.stderr
    rows: dict[tuple[str, int], dict[int, tuple[float, bool]]] = {}
    for line in done.stdout.splitlines():
        name, column, week, upper, alarm = line.split(",")
        rows.setdefault((name, int(column) - 1), {})[int(week) - 1] = (
            float("nan") if upper == "NA" else float(upper), alarm == "1"
        )
    return series, rows


@pytest.mark.parametrize("name", sorted(OURS))
def test_bounds_and_alarms_match_r(oracle: tuple[np.ndarray, dict], name: str) -> None:
    series, rows = oracle
    alarms_seen = 0
    for column in range(series.shape[1]):
        r = rows[(name, column)]
        ours = OURS[name](series[:, column])
        weeks = sorted(r)
        r_upper = np.array([r[w][0] for w in weeks])
        r_alarm = np.array([r[w][1] for w in weeks])
        assert list(np.flatnonzero(~np.isnan(ours.upper))) == [
            w for w in weeks if not np.isnan(r[w][0])
        ], f"{name} series {column}: bounds defined in different weeks"
        np.testing.assert_allclose(ours.upper[weeks], r_upper, rtol=1e-6, atol=0,
                                   err_msg=f"{name} series {column}")
        assert list(ours.alarm[weeks]) == list(r_alarm), f"{name} series {column}: alarms"
        alarms_seen += int(r_alarm.sum())
    assert alarms_seen > 0, "the simulated outbreaks should raise some alarms"
