"""Calibration of the fit's uncertainty on curves that no fitted form contains.

Each simulated problem is one domain decision for a 7B model: 3–5 sources of every curation kind (given: no
acquisition cost; filtered: a classifier's pass over the pool; synthesized: a 70B teacher's generation), annealed
at 5 budgets from 0.5B to 8B tokens with 1–3 seeds, scored on one task of 300 items (a Brier score, lower is
better) with per-item results, so the fit runs its paired item bootstrap. True curves come from four families,
none of them a fitted form (a Hill curve, two mechanisms at different scales, a data-constrained source that
repeats its unique tokens, a stretched exponential), each source's drawn at random, plus seed noise. Evaluation
noise is 0.005, 0.01 or 0.02 per cell. Decisions are taken at the training compute of 1B to 32B tokens: inside
the grid and up to 4× beyond it.

It runs `annealscope fit`'s analysis on every problem and prints the coverage of its 90% intervals of the true
metric in the grid and beyond it, their mean width, pairwise decision accuracy against micro-annealing (the
smallest budget) and the largest-budget point, and the calibration of `p_best` (observed frequency of being
best against the predicted probability, by bin, and its Brier score).

    python benchmarks/calibration.py [--problems 720 --bootstrap 1000 --jobs 2]
"""

from __future__ import annotations

import argparse
import itertools
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd

from annealscope.fit.analysis import analyse
from annealscope.fit.curves import FitSettings

TRAIN_FLOPS_PER_TOKEN = 6 * 7e9
BUDGETS = (0.5e9 * 2 ** np.arange(5)).astype(np.int64)
DECISION_TOKENS = np.array([1e9, 3e9, 8e9, 16e9, 32e9])  # training-compute equivalents of the decisions
NOISE_LEVELS = (0.005, 0.01, 0.02)
ITEMS = 300
ITEM_SPREAD = 0.1  # sd of the items' own difficulty, shared by every cell (what the paired bootstrap keeps)
KINDS = ("given", "filtered", "synthesized")
FAMILIES = ("hill", "two_mechanisms", "repeated", "stretched_exponential")
P_BINS = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0 + 1e-9)


@dataclass(frozen=True)
class Source:
    """A source's true gain over the base model as a function of training tokens (in billions)."""

    name: str
    kind: str
    family: str
    flops_per_token: float
    params: tuple[float, ...]

    def gain(self, tokens: np.ndarray) -> np.ndarray:
        t = np.asarray(tokens, float) / 1e9
        if self.family == "hill":  # D·t^k / (t^k + T^k), k away from 1 (k = 1 is an anchored power law)
            depth, scale, k = self.params
            return depth * t**k / (t**k + scale**k)
        if self.family == "two_mechanisms":  # fast format learning plus slow knowledge, at separate scales
            d1, s1, a1, d2, s2, a2 = self.params
            return d1 * (1 - (1 + t / s1) ** -a1) + d2 * (1 - (1 + t / s2) ** -a2)
        if self.family == "repeated":  # unique tokens U repeated: diminishing effective data, then overfitting
            depth, scale, a, unique, r_star = self.params
            epochs = np.maximum(t / unique - 1.0, 0.0)
            effective = np.minimum(t, unique) + unique * r_star * (1 - np.exp(-epochs / r_star))
            overfit = 0.15 * depth * np.maximum(np.log(t / (8 * unique)), 0.0) ** 2
            return depth * (1 - (1 + effective / scale) ** -a) - overfit
        depth, scale, k = self.params  # stretched exponential
        return depth * (1 - np.exp(-((t / scale) ** k)))


def draw_source(rng: np.random.Generator, name: str, kind: str) -> Source:
    family = FAMILIES[rng.integers(len(FAMILIES))]
    depth = rng.uniform(0.03, 0.10)
    if family == "hill":
        params = (depth, np.exp(rng.uniform(np.log(0.5), np.log(30))), rng.choice([rng.uniform(0.3, 0.7),
                                                                                    rng.uniform(1.4, 2.2)]))
    elif family == "two_mechanisms":
        share = rng.uniform(0.2, 0.6)
        params = (depth * share, np.exp(rng.uniform(np.log(0.05), np.log(0.5))), rng.uniform(0.8, 2.0),
                  depth * (1 - share), np.exp(rng.uniform(np.log(5), np.log(60))), rng.uniform(0.3, 1.0))
    elif family == "repeated":
        params = (depth, np.exp(rng.uniform(np.log(0.3), np.log(5))), rng.uniform(0.4, 1.0),
                  np.exp(rng.uniform(np.log(0.5), np.log(6))), rng.uniform(3, 15))
    else:
        params = (depth, np.exp(rng.uniform(np.log(0.5), np.log(30))), rng.uniform(0.25, 0.6))
    acquisition = {"given": 0.0, "filtered": rng.uniform(0.05, 0.6), "synthesized": rng.uniform(1.5, 4.0)}[kind]
    return Source(name, kind, family, TRAIN_FLOPS_PER_TOKEN * (1 + acquisition), tuple(float(p) for p in params))


@dataclass
class Problem:
    sources: list[Source]
    base: float
    noise: float
    seeds: int
    table: pd.DataFrame
    items: pd.DataFrame

    def truth(self, source: str, flops: float) -> float:
        chosen = next(s for s in self.sources if s.name == source)
        return float(self.base - chosen.gain(np.array([flops / chosen.flops_per_token]))[0])


def simulate(seed: int, noise: float | None = None, seeds: int | None = None, items: int = ITEMS) -> Problem:
    """One problem: its sources, and the metrics table and per-item results a grid over them would give."""
    rng = np.random.default_rng(seed)
    count = int(rng.integers(3, 6))
    kinds = [*KINDS, *rng.choice(KINDS, count - len(KINDS))]
    sources = [draw_source(rng, f"{kind}_{index}", kind) for index, kind in enumerate(kinds)]
    noise = noise if noise is not None else float(rng.choice(NOISE_LEVELS))
    seeds = seeds if seeds is not None else int(rng.integers(1, 4))
    seed_noise = noise * rng.uniform(0.3, 1.0)
    base = rng.uniform(0.18, 0.24)
    difficulty = rng.normal(0, ITEM_SPREAD, items)
    cells = [("base", 0, 0, 0.0, base)]
    for source in sources:
        for budget, replicate in itertools.product(BUDGETS, range(seeds)):
            truth = base - source.gain(np.array([budget]))[0] + rng.normal(0, seed_noise)
            cells.append((source.name, int(budget), replicate, budget * source.flops_per_token, truth))
    rows, frames = [], []
    for name, budget, replicate, flops, truth in cells:
        values = truth + difficulty + rng.normal(0, noise * np.sqrt(items), items)
        frames.append(pd.DataFrame({"source": name, "budget_tokens": budget, "seed": replicate, "task": "domain",
                                    "metric": "brier", "item": np.arange(items), "value": values}))
        rows.append({"source": name, "budget_tokens": budget, "seed": replicate, "total_flops": flops,
                     "task": "domain", "metric": "brier", "value": values.mean(),
                     "stderr": values.std(ddof=1) / np.sqrt(items)})
    return Problem(sources, base, noise, seeds, pd.DataFrame(rows), pd.concat(frames, ignore_index=True))


def score(seed: int, bootstrap: int) -> dict[str, list]:
    """Fit one problem and compare every interval, decision and probability with the truth."""
    problem = simulate(seed)
    decision_flops = DECISION_TOKENS * TRAIN_FLOPS_PER_TOKEN
    settings = FitSettings(bootstrap=bootstrap, target_flops=decision_flops.tolist(), seed=seed,
                           micro_anneal_budget=int(BUDGETS[0]))
    analysis = analyse(problem.table, settings, problem.items)
    predictions = analysis.result.predictions
    predictions = predictions[np.isin(predictions["total_flops"], decision_flops)]
    highest = problem.table.groupby("source")["total_flops"].max()
    intervals = []
    for row in predictions.itertuples():
        truth = problem.truth(row.source, row.total_flops)
        where = "beyond" if row.total_flops > highest[row.source] * 1.001 else (
            "below" if row.extrapolated else "grid")
        intervals.append({"where": where, "covered": row.lower <= truth <= row.upper, "width": row.upper - row.lower,
                          "noise": problem.noise})
    annealed = problem.table[problem.table["source"] != "base"]
    by_budget = annealed.groupby(["source", "budget_tokens"])["value"].mean()
    micro, largest = by_budget.xs(BUDGETS[0], level=1), by_budget.xs(BUDGETS[-1], level=1)
    predicted = predictions.set_index(["source", "total_flops"])["predicted"]
    pairs = []
    for flops in decision_flops:
        truth = {s.name: problem.truth(s.name, flops) for s in problem.sources}
        for a, b in itertools.combinations(sorted(truth), 2):
            if (a, flops) not in predicted.index or (b, flops) not in predicted.index:
                continue
            better = truth[a] < truth[b]
            pairs.append({"fit": (predicted[a, flops] < predicted[b, flops]) == better,
                          "micro": (micro[a] < micro[b]) == better, "largest": (largest[a] < largest[b]) == better,
                          "beyond": flops > min(highest[a], highest[b])})
    best = []
    for row in analysis.decisions[analysis.decisions["kind"] == "fitted"].itertuples():
        truth = {s.name: problem.truth(s.name, row.total_flops) for s in problem.sources}
        best.append({"p_best": row.p_best, "right": min(truth, key=truth.get) == row.best_source})
    return {"intervals": intervals, "pairs": pairs, "best": best}


def report(outcomes: list[dict[str, list]], elapsed: float) -> None:
    intervals = pd.DataFrame([row for outcome in outcomes for row in outcome["intervals"]])
    pairs = pd.DataFrame([row for outcome in outcomes for row in outcome["pairs"]])
    best = pd.DataFrame([row for outcome in outcomes for row in outcome["best"]])
    print(f"{len(outcomes)} problems, {len(intervals):,} intervals, {len(pairs):,} source pairs × computes, "
          f"{len(best):,} decisions in {elapsed:.0f} s")
    print("90% intervals of the true metric (goal: coverage 0.85–0.95 in the grid and beyond it):")
    for where, group in intervals.groupby("where"):
        print(f"  {where:>6}: coverage {group['covered'].mean():.3f} over {len(group):4d}; mean width "
              f"{group['width'].mean():.4f} ({(group['width'] / group['noise']).mean():.1f}× the cell noise)")
    print("pairwise decisions right (the better source at each decision compute):")
    for column, label in (("fit", "annealscope fit"), ("largest", "largest-budget point"),
                          ("micro", "micro-anneal (smallest budget)")):
        print(f"  {label:>30}: {pairs[column].mean():.3f} (in grid {pairs.loc[~pairs['beyond'], column].mean():.3f}, "
              f"beyond {pairs.loc[pairs['beyond'], column].mean():.3f})")
    best["bin"] = pd.cut(best["p_best"], P_BINS, right=False)
    print(f"p_best calibration (goal: within 0.05 in every bin of ≥ 50 decisions); Brier score of p_best "
          f"{np.mean((best['p_best'] - best['right']) ** 2):.4f}:")
    for interval, group in best.groupby("bin", observed=True):
        gap = group["right"].mean() - group["p_best"].mean()
        flag = "" if len(group) < 50 else ("  ok" if abs(gap) <= 0.05 else "  MISSED")
        print(f"  p_best in [{interval.left:.2f}, {min(interval.right, 1.0):.2f}): predicted "
              f"{group['p_best'].mean():.3f}, observed {group['right'].mean():.3f} over {len(group):4d}{flag}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=720)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=os.cpu_count())
    args = parser.parse_args()
    start = time.perf_counter()
    with ProcessPoolExecutor(args.jobs) as pool:
        outcomes = list(pool.map(score, range(args.problems), itertools.repeat(args.bootstrap)))
    report(outcomes, time.perf_counter() - start)


if __name__ == "__main__":
    main()
