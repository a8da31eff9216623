"""The planner against a full grid, on simulated sources with known curves.

Each scenario draws sources whose metric (lower is better) follows E + A·(C/1e15)^−α, each with its own
cost per token, and asks which source is best at a target compute. The full grid anneals every source at
6 budgets (1M to 32M tokens); the target is the compute of 32M tokens at the median cost. The planner
starts from each source's 3 smallest budgets, then repeatedly fits, stops once the best source has
P(best) ≥ --stop (or once no candidate is expected to raise it), and otherwise runs the one cell
`annealscope suggest` proposes. Each run here is an
evaluation drawn from the true curve with noise; every scenario, and each arm's noise, has its own seed.
Printed: the compute each arm spent, how often it picked the truly best source (near ties make both miss
sometimes), the metric it lost against that source (regret), and the ratio planner / full grid compute.

    python benchmarks/planner.py [--scenarios 30 --sources 4 --noise 0.01 --stop 0.99]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from annealscope.fit.curves import FitSettings
from annealscope.fit.suggest import decision, decision_curves, suggest

BUDGETS = [2**k * 1_000_000 for k in range(6)]
MAX_RUNS = 40


def scenario(rng: np.random.Generator, sources: int) -> dict[str, tuple[float, float, float, float]]:
    """Source -> (E, A, alpha, FLOPs per token)."""
    return {f"s{index}": (rng.uniform(2.0, 2.3), rng.uniform(0.4, 1.2), rng.uniform(0.2, 0.7),
                          rng.uniform(6e7, 2e8)) for index in range(sources)}


def truth(curve: tuple[float, float, float, float], flops: float) -> float:
    asymptote, scale, exponent, _ = curve
    return asymptote + scale * (flops / 1e15) ** -exponent


def observe(curves: dict, source: str, budget: int, seed: int, noise: float, rng: np.random.Generator) -> dict:
    flops = budget * curves[source][3]
    return {"source": source, "budget_tokens": budget, "seed": seed, "total_flops": flops, "task": "t",
            "metric": "nll", "value": truth(curves[source], flops) + rng.normal(0, noise), "stderr": noise}


def decide(table: pd.DataFrame, target: float, settings: FitSettings) -> tuple[str, float, dict]:
    """The best source at the target and its probability, over replicates that mix the forms."""
    decisions = decision_curves(table, settings)
    return (*decision(decisions["t", "nll"], target), decisions)


def planner_run(curves: dict, target: float, noise: float, settings: FitSettings, stop: float,
                rng: np.random.Generator) -> tuple[str, float, int]:
    rows = [observe(curves, source, budget, 0, noise, rng) for source in curves for budget in BUDGETS[:3]]
    for _ in range(MAX_RUNS):
        table = pd.DataFrame(rows)
        best, p_best, decisions = decide(table, target, settings)
        if p_best >= stop:
            break
        proposals = suggest(decisions, table, target, count=1)
        if proposals.empty:  # no candidate is expected to settle it further
            break
        proposal = proposals.iloc[0]
        rows.append(observe(curves, proposal["source"], int(proposal["budget_tokens"]), int(proposal["seed"]),
                            noise, rng))
    return best, float(pd.DataFrame(rows)["total_flops"].sum()), len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", type=int, default=30)
    parser.add_argument("--sources", type=int, default=4)
    parser.add_argument("--noise", type=float, default=0.01)
    parser.add_argument("--stop", type=float, default=0.99, help="stop once P(best) reaches this")
    args = parser.parse_args()
    settings = FitSettings(bootstrap=300, metrics=None)  # the default forms: those that apply here are mixed
    totals = {"grid": [0.0, 0, 0, 0.0], "planner": [0.0, 0, 0, 0.0]}  # compute, right decisions, cells, regret
    start = time.perf_counter()
    for index in range(args.scenarios):  # each scenario and each arm's evaluation noise from its own seed
        curves = scenario(np.random.default_rng([index, 0]), args.sources)
        rng = np.random.default_rng([index, 1])
        target = BUDGETS[-1] * float(np.median([curve[3] for curve in curves.values()]))
        right = min(curves, key=lambda source: truth(curves[source], target))
        grid = pd.DataFrame([observe(curves, source, budget, 0, args.noise, rng) for source in curves
                             for budget in BUDGETS])
        best, _, _ = decide(grid, target, settings)
        planned, flops, cells = planner_run(curves, target, args.noise, settings, args.stop,
                                            np.random.default_rng([index, 2]))
        for name, (choice, spent, count) in {"grid": (best, grid["total_flops"].sum(), len(grid)),
                                             "planner": (planned, flops, cells)}.items():
            totals[name][0] += spent
            totals[name][1] += choice == right
            totals[name][2] += count
            totals[name][3] += truth(curves[choice], target) - truth(curves[right], target)
    for name, (spent, right, cells, regret) in totals.items():
        print(f"{name:8s}: {spent / args.scenarios:.3e} FLOPs and {cells / args.scenarios:.1f} cells per scenario, "
              f"right source {right} of {args.scenarios}, mean regret {regret / args.scenarios:.4f} "
              "(metric lost against the truly best source)")
    ratio = totals["planner"][0] / totals["grid"][0]
    print(f"ratio planner / full grid compute: {ratio:.3f} ({args.scenarios} scenarios × {args.sources} sources, "
          f"noise {args.noise}, stop at P(best) ≥ {args.stop}; {time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
