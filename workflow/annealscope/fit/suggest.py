"""The next runs worth buying: the cells that most reduce the uncertainty of the decision at a target
compute, per FLOP they cost, scored from the fit's bootstrap.

The decision is which source is best at the target compute, for each fitted (task, metric); its
uncertainty is 1 − P(best), from the fit's own uncertainty model (see `mixture`): forms averaged per
replicate, each curve's scatter, and its calibrated extrapolation error. The planner refits every replicate in
every form (`every_form`), so a hypothetical result can move each form and reweigh them.

A candidate cell adds one observation y of its source at compute c. What it would teach is estimated
before running it (a preposterior analysis) by mirroring what the refit will do, per form:
- a cell beyond the source's largest compute becomes the held-out point, so each form's new weight is
  exp(−½ ((its prediction at c − y) / σ)²): extensions are what settle a disagreement between forms;
- within each form, the replicates (their extrapolation error included, one shock per replicate at the cell
  and the target alike, so an extension also tells about that error) move by a square-root ensemble Kalman
  update: their mean by K·(y − mean prediction at c), K = cov(target, c) / (var(c) + σ²), and their spread
  narrows by what a point at c with evaluation noise σ tells (little, for a repeated seed where the data are dense).
Reweighting the fixed replicates by the likelihood of y, tried first, overstated what a repeated small-
budget seed teaches: the forms differ there by misfit that one more point does not resolve, and few
replicates survived the weights. Candidates per source: a new seed at each budget it has, and 2× and 4×
its largest budget up to the target, each placed at its total compute (acquisition share included) but
costing its training only, since the source is curated already. The score is the expected drop in
1 − P(best), summed over decisions, per 1e18 FLOPs the cell costs; only cells expected to reduce it are
proposed, and only sources the target compute can buy take part. Cells are scored one at a time, so a
batch of k takes the best cell of each source before a second of any.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from annealscope.core.groups import grouped_tasks
from annealscope.core.layout import BASE_SOURCE
from annealscope.fit.curves import CurveFit, FitSettings, fit_table

SUGGESTION_COLUMNS = ["source", "budget_tokens", "seed", "total_flops", "cost_flops", "uncertainty_now",
                      "uncertainty_after", "reduction_per_1e18_flops"]
HYPOTHETICAL_RESULTS = 128
EXTENSIONS = (2, 4)  # candidate budgets: these multiples of a source's largest


def decision_curves(table: pd.DataFrame, settings: FitSettings, items: pd.DataFrame | None = None
                    ) -> dict[tuple[str, str], list[CurveFit]]:
    """Per (task, metric), each source's fitted curve, every replicate refitted in every form."""
    curves: dict[tuple[str, str], list[CurveFit]] = {}
    for curve in fit_table(table, settings, items, every_form=True).curves:
        if curve.usable:
            curves.setdefault((curve.task, curve.metric), []).append(curve)
    return curves


def chosen_panels(decisions: dict[tuple[str, str], list[CurveFit]], panels: list[str], groups: dict[str, dict]
                  ) -> dict[tuple[str, str], list[CurveFit]]:
    """The decisions to inform: the panels named `TASK:METRIC`, else every panel but those of tasks their lm-eval
    group's panel stands for (`core.groups.grouped_tasks`), as the report's summary shows them. A named panel that
    was not fitted is refused, naming those that were."""
    if not panels:
        grouped = grouped_tasks(groups, {task for task, _ in decisions})
        return {key: curves for key, curves in decisions.items() if key[0] not in grouped}
    named = [tuple(panel.rsplit(":", 1)) for panel in panels]
    if unknown := [panel for panel, key in zip(panels, named, strict=True) if key not in decisions]:
        raise ValueError(f"--panel {unknown}: no such fitted panel; the fit has "
                         f"{[f'{task}:{metric}' for task, metric in sorted(decisions)]}")
    return {key: decisions[key] for key in named}


def affordable(curves: list[CurveFit], target_flops: float) -> list[CurveFit]:
    """The sources the target compute can buy (at least their acquisition), as the fit's decisions count them."""
    return [curve for curve in curves if curve.affords(target_flops)]


def target_scores(curves: list[CurveFit], target_flops: float) -> np.ndarray:
    """Replicates × sources: each source's prediction at the target, signed so that larger is better."""
    scores = np.stack([curve.predict_draws(np.array([target_flops]))[:, 0] * curve.better for curve in curves], 1)
    return np.where(np.isfinite(scores), scores, -np.inf)


def decision(curves: list[CurveFit], target_flops: float) -> tuple[str, float]:
    """The most probable best source at the target compute and its probability, among those it can buy."""
    curves = affordable(curves, target_flops)
    counts = np.bincount(np.argmax(target_scores(curves, target_flops), axis=1), minlength=len(curves))
    return curves[int(np.argmax(counts))].source, float(counts.max() / counts.sum())


def uncertainty(scores: np.ndarray) -> np.ndarray:
    """1 − P(best) of each ensemble in `scores` (… × replicates × sources)."""
    winners = np.argmax(scores, axis=-1)
    counts = np.stack([(winners == index).sum(axis=-1) for index in range(scores.shape[-1])], axis=-1)
    return 1.0 - counts.max(axis=-1) / scores.shape[-2]


def expected_reduction(curves: list[CurveFit], observed: CurveFit, flops: float, target_flops: float,
                       rng: np.random.Generator) -> float:
    """Expected drop of 1 − P(best) at the target from one more observation of `observed` at `flops`,
    against the same replicates with nothing learnt (common random numbers, so noise does not pose as
    information)."""
    column = next(index for index, curve in enumerate(curves) if curve is observed)
    scores = target_scores(curves, target_flops)
    at_cell, at_target = (observed.form_draws(np.array([c]))[:, :, 0]
                          + observed.extrapolation_error(np.array([c]))[:, 0]  # one shock per replicate at both
                          for c in (flops, target_flops))  # forms × draws
    central = observed.form_predictions(np.array([flops]))[:, 0]
    noise = observed.noise if np.isfinite(observed.noise) and observed.noise > 0 else 1e-3
    gain, spread = _kalman_gains(at_cell, at_target, noise)
    shrink = 1.0 / (1.0 + noise / spread)  # the square-root filter's: replicates narrow without added noise
    with np.errstate(all="ignore"):
        mean_cell = np.nanmean(at_cell, axis=1)
    extends = flops > observed.highest
    uniform = rng.random(at_cell.shape[1])  # common numbers: which form each replicate follows
    truth_form = rng.choice(len(central), HYPOTHETICAL_RESULTS, p=observed.weights)
    truth_draw = rng.integers(0, at_cell.shape[1], HYPOTHETICAL_RESULTS)
    results = at_cell[truth_form, truth_draw] + rng.normal(0, noise, HYPOTHETICAL_RESULTS)
    surprises = rng.standard_normal(HYPOTHETICAL_RESULTS)

    def with_column(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
        choice = np.minimum(np.searchsorted(np.cumsum(weights), uniform), len(weights) - 1)
        updated = scores.copy()
        updated[:, column] = np.nan_to_num(values[choice, np.arange(len(choice))] * observed.better, nan=-np.inf)
        return updated

    expected = []
    for result, surprise in zip(results, surprises, strict=True):
        weights = observed.weights
        if extends:  # the new point is held out: it reweights the forms, and each moves toward it
            log_weights = -0.5 * ((central - result) / noise) ** 2
            weights = np.exp(log_weights - np.nanmax(log_weights))
            weights = np.nan_to_num(weights) / np.nansum(weights)
            innovation = result - mean_cell
        else:  # within the data, each form's own predictive: one more point cannot undo a form's misfit
            innovation = surprise * spread
        moved = at_target + (gain * innovation)[:, None] - (shrink * gain)[:, None] * (at_cell - mean_cell[:, None])
        expected.append(float(uncertainty(with_column(moved, weights))))
    now = float(uncertainty(with_column(at_target, observed.weights)))
    return now - float(np.mean(expected))  # unclipped: a clip at zero would favour cheap cells that teach nothing


def _kalman_gains(at_cell: np.ndarray, at_target: np.ndarray, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """Per form: K = cov(target, cell) / (var(cell) + σ²), and the predictive spread of a new point at the
    cell, sqrt(var(cell) + σ²), from its replicates (forms × draws)."""
    gain, spread = np.zeros(len(at_cell)), np.full(len(at_cell), noise)
    for form, (cell, target) in enumerate(zip(at_cell, at_target, strict=True)):
        finite = np.isfinite(cell) & np.isfinite(target)
        if finite.sum() > 2:
            covariance = np.cov(target[finite], cell[finite])
            gain[form] = covariance[0, 1] / (covariance[1, 1] + noise**2)
            spread[form] = np.sqrt(covariance[1, 1] + noise**2)
    return gain, spread


def candidate_cells(table: pd.DataFrame, curves: list[CurveFit], target_flops: float
                    ) -> list[tuple[str, int, int, float, float]]:
    """(source, budget, seed, total FLOPs, cost in FLOPs) of every candidate: a new seed at each budget a source
    has, and the source at 2× and 4× its largest budget while that stays within the target compute.

    A cell sits on the compute axis at its total (training plus its share of the acquisition), but running it
    costs only its training: the source is already curated. A new seed sits where its budget's cells do; an
    extension's acquisition share grows with the unique tokens it reads, up to all the source has."""
    candidates = {}
    for curve in curves:
        rows = table[(table["source"] == curve.source) & (table["budget_tokens"] > 0)]
        budgets = sorted(set(rows["budget_tokens"].astype(int)))
        training, acquisition = _cost_model(rows)
        for budget in budgets:
            cells = rows[rows["budget_tokens"] == budget]
            seed = int(cells["seed"].max()) + 1
            spent = cells["train_flops"] if "train_flops" in cells else cells["total_flops"]
            candidates[curve.source, budget, seed] = (float(cells["total_flops"].mean()), float(spent.mean()))
        for factor in EXTENSIONS:
            budget = factor * budgets[-1]
            total = budget * training + acquisition(budget)
            if factor == EXTENSIONS[0] or total <= target_flops:
                candidates[curve.source, budget, 0] = (total, budget * training)
    return [(*cell, total, cost) for cell, (total, cost) in candidates.items()]


def _cost_model(rows: pd.DataFrame):
    """A source's training FLOPs per budget token, and its acquisition share as a function of the budget:
    FLOPs per unique token times the unique tokens a budget reads (all it has at most). A table without the
    split (only `total_flops`) charges everything as training, per token."""
    if not {"train_flops", "acquisition_flops", "unique_tokens"} <= set(rows):
        return float(np.median(rows["total_flops"] / rows["budget_tokens"])), lambda budget: 0.0
    available = float(rows["available_tokens"].max()) if "available_tokens" in rows else np.nan
    available = available if np.isfinite(available) and available > 0 else np.inf
    unique = np.minimum(rows["unique_tokens"].to_numpy(float), available)
    shares = rows["acquisition_flops"].to_numpy(float)[unique > 0] / unique[unique > 0]
    per_unique = float(np.median(shares)) if len(shares) else 0.0
    training = float(np.median(rows["train_flops"] / rows["budget_tokens"]))
    return training, lambda budget: per_unique * min(budget, available)


def suggest(decisions: dict[tuple[str, str], list[CurveFit]], table: pd.DataFrame, target_flops: float,
            count: int = 3, seed: int = 0) -> pd.DataFrame:
    """Up to `count` candidate cells with the largest expected drop in decision uncertainty per FLOP, summed
    over every (task, metric) with two or more sources the target can buy; only cells expected to reduce it."""
    rng = np.random.default_rng(seed)
    decisions = {key: affordable(curves, target_flops) for key, curves in decisions.items()}
    decisions = {key: curves for key, curves in decisions.items() if len(curves) > 1}
    if not decisions:
        raise ValueError(f"no (task, metric) has two or more fitted sources that {target_flops:.3g} FLOPs can buy: "
                         "there is no decision to inform")
    annealed = table[table["source"] != BASE_SOURCE]
    now = sum(float(uncertainty(target_scores(curves, target_flops))) for curves in decisions.values())
    contenders = {curve.source: curve for curves in decisions.values() for curve in curves}
    rows = []
    for source, budget, cell_seed, flops, cost in candidate_cells(annealed, list(contenders.values()), target_flops):
        reduction = 0.0
        for curves in decisions.values():
            observed = next((curve for curve in curves if curve.source == source), None)
            if observed is not None:
                reduction += expected_reduction(curves, observed, flops, target_flops, rng)
        after = now - reduction
        rows.append({"source": source, "budget_tokens": budget, "seed": cell_seed, "total_flops": flops,
                     "cost_flops": cost, "uncertainty_now": now, "uncertainty_after": after,
                     "reduction_per_1e18_flops": reduction / cost * 1e18})
    order = pd.DataFrame(rows, columns=SUGGESTION_COLUMNS).sort_values(
        ["reduction_per_1e18_flops", "cost_flops"], ascending=[False, True])
    order = order[order["reduction_per_1e18_flops"] > 0]  # a cell expected to teach nothing is not worth its cost
    first = order.drop_duplicates("source")  # each is scored alone: spread a batch over sources first
    return pd.concat([first, order.drop(first.index)]).head(count).reset_index(drop=True)


def grid_snippet(suggestions: pd.DataFrame) -> str:
    """The config lines that add the suggested cells to the grid."""
    lines = ["grid:", "  extra_cells:"]
    lines += [f"    - {{source: {row.source}, budget: {row.budget_tokens}, seed: {row.seed}}}"
              for row in suggestions.itertuples()]
    return "\n".join(lines)
