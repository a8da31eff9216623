"""Batched robust least squares: Levenberg–Marquardt on the Huber loss, many problems at once.

One call fits R independent problems that share a form and compute points (bootstrap replicates, or
several starts of one fit) with numpy array operations, which is what makes a thousand refits of a
curve cost milliseconds instead of a thousand scipy calls. The Huber loss is minimised by
iteratively reweighted least squares inside the Levenberg–Marquardt steps.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

HUBER_DELTA = 1.0
Model = Callable[[np.ndarray, np.ndarray], np.ndarray]


def huber(residuals: np.ndarray, delta: float = HUBER_DELTA) -> np.ndarray:
    """Huber loss summed over the last axis; NaN where any residual is not finite."""
    size = np.abs(residuals)
    loss = np.where(size <= delta, 0.5 * residuals**2, delta * (size - 0.5 * delta)).sum(axis=-1)
    return np.where(np.isfinite(loss), loss, np.nan)


def huber_lm(predict: Model, gradient: Model, theta: np.ndarray, x: np.ndarray, y: np.ndarray, sigma: np.ndarray,
             iterations: int = 60, tolerance: float = 1e-9) -> tuple[np.ndarray, np.ndarray]:
    """Minimise the Huber loss of (y − predict(theta, x)) / sigma for each row of theta (R, p), y and sigma (R, n)
    (or (n,), shared); an infinite sigma leaves a point out.

    `gradient(theta, x)` is d predict / d theta, shape (R, n, p). Returns the fitted parameters (R, p) and their
    losses (R,), NaN where a problem never had a finite loss.
    """
    theta = np.array(theta, dtype=float, copy=True)
    y = np.broadcast_to(y, (len(theta), len(x)))
    sigma = np.broadcast_to(sigma, y.shape)
    with np.errstate(all="ignore"):
        residuals = _scaled(y, predict(theta, x), sigma)
        loss = huber(residuals)
        damping = np.full(len(theta), 1e-3)
        active = np.isfinite(loss)
        for _ in range(iterations):
            if not active.any():
                break
            rows = np.flatnonzero(active)
            step = _step(gradient, theta[rows], x, residuals[rows], sigma[rows], damping[rows])
            trial = theta[rows] + step
            trial_residuals = _scaled(y[rows], predict(trial, x), sigma[rows])
            trial_loss = huber(trial_residuals)
            better = np.isfinite(trial_loss) & (trial_loss <= loss[rows])
            improved = rows[better]
            converged = better & (loss[rows] - trial_loss <= tolerance * (1.0 + loss[rows]))
            theta[improved], residuals[improved], loss[improved] = trial[better], trial_residuals[better], \
                trial_loss[better]
            damping[rows] = np.where(better, damping[rows] / 3.0, damping[rows] * 4.0)
            active[rows[converged | (damping[rows] > 1e10)]] = False
    return theta, loss


def _scaled(y: np.ndarray, predicted: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Residuals in units of sigma; 0 where sigma is infinite (a point left out), whatever the prediction."""
    return np.where(np.isinf(sigma), 0.0, (y - predicted) / sigma)


def _step(gradient: Model, theta: np.ndarray, x: np.ndarray, residuals: np.ndarray, sigma: np.ndarray,
          damping: np.ndarray) -> np.ndarray:
    """One damped Gauss–Newton step per row, with Huber weights from the current residuals."""
    scaled = np.where(np.isinf(sigma)[..., None], 0.0, gradient(theta, x) / sigma[..., None])
    size = np.abs(residuals)
    weights = np.where(size <= HUBER_DELTA, 1.0, HUBER_DELTA / np.maximum(size, 1e-300))
    weighted = scaled * weights[:, :, None]
    normal = np.matmul(weighted.transpose(0, 2, 1), scaled)
    gradient = np.matmul(weighted.transpose(0, 2, 1), residuals[:, :, None])[:, :, 0]
    normal = np.where(np.isfinite(normal), normal, 0.0)
    gradient = np.where(np.isfinite(gradient), gradient, 0.0)
    diagonal = np.einsum("rpp->rp", normal)
    normal = normal + np.einsum("rp,pq->rpq", damping[:, None] * diagonal + 1e-12, np.eye(theta.shape[1]))
    try:
        return np.linalg.solve(normal, gradient[:, :, None])[:, :, 0]
    except np.linalg.LinAlgError:  # a row whose damped normal matrix is still singular (overflowed scales)
        return (np.linalg.pinv(normal) @ gradient[:, :, None])[:, :, 0]
