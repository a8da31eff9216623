"""Decisions from fitted curves: the best source at each compute and how sure that is, the probability
that one source beats another, where rankings flip (crossovers, with intervals), and what
micro-annealing at one small budget would have concluded instead.

All probabilities and intervals come from the curves' bootstrap draws, which share their replicate
index across sources (the item bootstrap is paired), so comparisons keep their correlation.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from scipy.stats import kendalltau

from annealscope.fit.curves import INTERVAL, CurveFit, FitSettings, marginal_gain
from annealscope.fit.forms import higher_is_better

DECISION_COLUMNS = ["task", "metric", "kind", "total_flops", "best_source", "p_best", "ranking",
                    "kendall_tau_vs_micro", "best_gain_per_1e18_flops", "best_gain_per_usd"]
PAIRWISE_COLUMNS = ["task", "metric", "total_flops", "source_a", "source_b", "p_a_better"]
CROSSOVER_COLUMNS = ["task", "metric", "source_a", "source_b", "total_flops", "lower", "upper", "p_crossing",
                     "better_below", "better_above", "extrapolated"]
CROSSOVER_GRID = 120


def feasible(curves: list[CurveFit], flops: np.ndarray) -> np.ndarray:
    """(sources, computes): whether each source can be bought at each compute (`CurveFit.affords`)."""
    return np.stack([curve.affords(flops) for curve in curves])


def _scores(curves: list[CurveFit], flops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Point predictions (sources, computes) and draws (draws, sources, computes), both oriented so
    larger is better and −inf where a source cannot be bought (below its floor); draws where any
    source's refit failed are dropped."""
    point = np.stack([curve.predict(flops) * curve.better for curve in curves])
    draws = np.stack([curve.predict_draws(flops) * curve.better for curve in curves], axis=1)
    complete = np.isfinite(draws).all(axis=(1, 2))
    draws = draws[complete] if complete.any() else point[None]
    possible = feasible(curves, flops)
    return np.where(possible, point, -np.inf), np.where(possible[None], draws, -np.inf)


def decision_rows(task: str, metric: str, curves: list[CurveFit], flops: np.ndarray, table: pd.DataFrame,
                  settings: FitSettings) -> list[dict]:
    """Best source, its probability of being best, its marginal gain per FLOP and per dollar and the ranking
    of the sources that compute can buy, with Kendall's tau against the micro-anneal ranking; then the
    micro-anneal row."""
    micro = micro_anneal_ranking(table, metric, settings)
    rows = []
    if curves and len(flops):
        point, draws = _scores(curves, flops)
        winners = np.argmax(draws, axis=1)
        for column, compute in enumerate(flops):
            order = [index for index in np.argsort(-point[:, column]) if np.isfinite(point[index, column])]
            if not order:
                continue
            ranking = [curves[index].source for index in order]
            best = curves[order[0]]
            gain = float(marginal_gain(best, np.array([compute]))[0])
            rows.append({"task": task, "metric": metric, "kind": "fitted", "total_flops": compute,
                         "best_source": ranking[0], "p_best": float(np.mean(winners[:, column] == order[0])),
                         "ranking": " > ".join(ranking), "kendall_tau_vs_micro": rank_agreement(micro, ranking),
                         "best_gain_per_1e18_flops": gain * 1e18, "best_gain_per_usd": gain / best.usd_per_flop})
    if micro:
        rows.append({"task": task, "metric": metric, "kind": "micro_anneal", "total_flops": np.nan,
                     "best_source": micro[0], "p_best": np.nan, "ranking": " > ".join(micro),
                     "kendall_tau_vs_micro": 1.0})
    return rows


def rank_agreement(first: list[str], second: list[str]) -> float:
    """Kendall's tau between two rankings over the sources they share (NaN for fewer than two)."""
    common = [source for source in first if source in second]
    if len(common) < 2:
        return np.nan
    return float(kendalltau([first.index(s) for s in common], [second.index(s) for s in common]).statistic)


def micro_anneal_ranking(table: pd.DataFrame, metric: str, settings: FitSettings) -> list[str]:
    """Sources ordered by their observed value at the micro-anneal budget (mean over seeds); the budget
    defaults to the smallest one in the table."""
    annealed = table[table["budget_tokens"] > 0]
    if annealed.empty:
        return []
    budget = settings.micro_anneal_budget or annealed["budget_tokens"].min()
    means = annealed[annealed["budget_tokens"] == budget].groupby("source")["value"].mean()
    return list(means.sort_values(ascending=not higher_is_better(metric, settings.higher_is_better)).index)


def pairwise_rows(task: str, metric: str, curves: list[CurveFit], flops: np.ndarray) -> list[dict]:
    """For each pair of sources and each compute, the bootstrap probability that the first is better."""
    if len(curves) < 2 or not len(flops):
        return []
    _, draws = _scores(curves, flops)
    rows = []
    for first, second in itertools.combinations(range(len(curves)), 2):
        wins = np.mean(draws[:, first] > draws[:, second], axis=0)
        rows += [{"task": task, "metric": metric, "total_flops": compute, "source_a": curves[first].source,
                  "source_b": curves[second].source, "p_a_better": float(p)}
                 for compute, p in zip(flops, wins, strict=True)]
    return rows


def crossover_rows(task: str, metric: str, curves: list[CurveFit], flops: np.ndarray) -> list[dict]:
    """Every compute where two fitted curves cross within the range of interest (the grid up to the
    largest target, where both sources can be bought), with a 90% bootstrap interval, the probability that
    the pair crosses anywhere in the range at all, and whether the crossing lies outside either source's
    observed compute (an extrapolation).

    The interval is over every replicate: one that crosses takes its crossing nearest the point's; one that
    never crosses in the range is censored, at +inf when the source better below the point stays better
    throughout (its crossing lies beyond the range, if anywhere) and at 0 when the other does. So an interval
    ends at 0 or inf when more than 5% of the replicates lie beyond that end, rather than describing only
    the replicates that happen to cross."""
    if len(curves) < 2:
        return []
    lowest = min(curve.lowest for curve in curves)
    highest = max(max(curve.highest for curve in curves), float(np.max(flops, initial=0.0)))
    grid = np.geomspace(lowest, highest, CROSSOVER_GRID)
    point, draws = _scores(curves, grid)
    rows = []
    for first, second in itertools.combinations(range(len(curves)), 2):
        both = np.isfinite(point[first]) & np.isfinite(point[second])
        gap = np.where(both, point[first] - point[second], np.nan)
        at_point = _crossings(grid, gap[None, :])[0]
        if not np.isfinite(at_point).any():
            continue
        replicate_gaps = np.where(both[None], draws[:, first] - draws[:, second], np.nan)
        replicate_crossings = _crossings(grid, replicate_gaps)
        for step in np.flatnonzero(np.isfinite(at_point)):
            at, first_better_below = at_point[step], gap[step] > 0
            crossed = _nearest(replicate_crossings, at)
            # A replicate that never crosses keeps one order throughout: the order below the point puts its
            # crossing beyond the range's end, the order above it before the range's start.
            stays_below_order = (replicate_gaps[:, step] > 0) == first_better_below
            log_crossed = np.where(np.isfinite(crossed), np.log(crossed), np.where(stays_below_order, np.inf, -np.inf))
            lower, upper = np.exp(outward_percentiles(log_crossed, INTERVAL))
            below, above = (first, second) if first_better_below else (second, first)
            rows.append({"task": task, "metric": metric, "source_a": curves[first].source,
                         "source_b": curves[second].source, "total_flops": float(at), "lower": lower,
                         "upper": upper, "p_crossing": float(np.mean(np.isfinite(crossed))),
                         "better_below": curves[below].source, "better_above": curves[above].source,
                         "extrapolated": not all(c.lowest * 0.999 <= at <= c.highest * 1.001
                                                 for c in (curves[first], curves[second]))})
    return rows


def outward_percentiles(values: np.ndarray, percentiles: tuple[float, float]) -> np.ndarray:
    """numpy's linear percentiles of `values`, which may hold ±inf: where an interpolation would reach an
    infinite neighbour, the lower percentile takes the lower neighbour and the upper the higher, so an open
    end is never blurred into a finite number, nor a finite one into NaN."""
    ordered = np.sort(values)
    position = np.asarray(percentiles, float) / 100 * (len(ordered) - 1)
    below, above = ordered[np.floor(position).astype(int)], ordered[np.ceil(position).astype(int)]
    with np.errstate(invalid="ignore"):
        linear = below + (above - below) * (position - np.floor(position))
    outward = np.where(np.asarray(percentiles) < 50, below, above)
    return np.where(np.isfinite(below) & np.isfinite(above), linear, outward)


def _crossings(grid: np.ndarray, gaps: np.ndarray) -> np.ndarray:
    """Per row of `gaps` (rows, computes), the computes where it changes sign, interpolated linearly in log
    compute, as (rows, computes − 1) with NaN where there is no change."""
    log_grid = np.log(grid)
    changes = np.sign(gaps[:, :-1]) * np.sign(gaps[:, 1:]) < 0
    with np.errstate(all="ignore"):
        fraction = gaps[:, :-1] / (gaps[:, :-1] - gaps[:, 1:])
        return np.where(changes, np.exp(log_grid[:-1] + np.diff(log_grid) * fraction), np.nan)


def _nearest(crossings: np.ndarray, target: float) -> np.ndarray:
    """Per row, its crossing nearest to `target` in log compute (NaN where it has none)."""
    distance = np.abs(np.log(crossings / target))
    nearest = np.argmin(np.where(np.isfinite(distance), distance, np.inf), axis=1)
    return crossings[np.arange(len(crossings)), nearest]
