"""The fit's uncertainty on curves that none of its forms contains: a small run of benchmarks/calibration.py's
simulator (Hill curves, two mechanisms, repeated data, stretched exponentials; seed and item noise)."""

import numpy as np
import pandas as pd
import pytest
from conftest import load_benchmark


@pytest.fixture(scope="module")
def calibration():
    return load_benchmark("calibration")


def test_ninety_percent_intervals_cover_misspecified_curves_in_the_grid_and_beyond_it(calibration):
    outcomes = [calibration.score(seed, bootstrap=200) for seed in range(36)]
    intervals = pd.DataFrame([row for outcome in outcomes for row in outcome["intervals"]])
    coverage = intervals.groupby("where")["covered"].mean()
    assert 0.82 <= coverage["grid"] <= 0.97, coverage
    assert 0.78 <= coverage["beyond"] <= 0.97, coverage
    pairs = pd.DataFrame([row for outcome in outcomes for row in outcome["pairs"]])
    assert pairs["fit"].mean() > pairs["micro"].mean() and pairs["fit"].mean() > pairs["largest"].mean()
    read = intervals[intervals["where"] != "below"]
    assert np.median(read["width"] / read["noise"]) < 8  # useful: a few cell-noise widths, not everything
