"""The predictive distribution of a mixture of experts: moments, quantiles, draws, modes.

Every function works on the gate probabilities ``gate`` (K, n) and expert means ``mean``
(K, n) of a fitted model, vectorised over samples (no Python loop over them).
"""

import numpy as np
from scipy import stats


def _expert_distribution(family, experts, mean, index=None):
    """Frozen distribution of y given each expert, broadcast like ``mean``; ``index``
    selects each draw's expert when ``mean`` holds one value per draw."""
    shape = (-1,) + (1,) * (mean.ndim - 1)
    dispersions = {
        key: experts[key][index] if index is not None else experts[key].reshape(shape)
        for key in family.dispersion_keys
    }
    return family.distribution(mean, **dispersions)


def mixture_mean(gate, mean):
    """Mixture mean ``m = sum_k g_k mu_k``; ``mean`` (K, n) or, for several responses,
    (K, n, R)."""
    return np.einsum("ki,ki...->i...", gate, mean)


def _per_response(family, experts, mean, function):
    """``function(part family, part params, part mean)`` of every response of ``family``,
    stacked on a last axis when there are several (``mean`` then has one)."""
    parts = family.response_parts(experts)
    if len(parts) == 1:
        return function(family, experts, mean)
    return np.stack([function(p.family, p.params, mean[..., j]) for j, p in enumerate(parts)],
                    axis=-1)


def mean_and_std(family, experts, gate, mean):
    """Mixture mean and standard deviation, ``Var = sum_k g_k (v_k + (mu_k - m)^2)``
    (per response).

    Centred, as ``sum_k (sqrt(g_k) (mu_k - m))^2``: no cancellation, and an expert whose
    mean is huge where its gate is near 0 (a log-link expert of a separated region)
    squares no huge number."""
    variance = _per_response(
        family, experts, mean, lambda f, p, m: _expert_distribution(f, p, m).var())
    center = mixture_mean(gate, mean)
    spread = np.sqrt(gate).reshape(gate.shape + (1,) * (mean.ndim - 2)) * (mean - center)
    second = (np.einsum("ki,ki...->i...", gate, variance)
              + np.einsum("ki...,ki...->i...", spread, spread))
    return center, np.sqrt(np.maximum(second, 0.0))


def cdf(family, experts, gate, mean, y):
    """Mixture CDF at ``y`` of shape (Q, n): ``sum_k g_k F_k(y)``."""
    expert_cdf = _expert_distribution(family, experts, mean[:, None, :]).cdf(y[None])
    return np.einsum("ki,kqi->qi", gate, expert_cdf)


def quantiles(family, experts, gate, mean, levels):
    """Mixture quantiles, shape (n, Q), by bisection on the CDF (to machine precision).

    For discrete families the quantile is the smallest integer with ``F(y) >= q``.
    """
    levels = np.asarray(levels, dtype=float)
    q = np.broadcast_to(levels[:, None], (levels.size, mean.shape[1]))
    dist = _expert_distribution(family, experts, mean)
    spread = 40.0 * np.sqrt(dist.var()) + 1.0
    lo = np.broadcast_to((mean - spread).min(axis=0), q.shape).copy()
    hi = np.broadcast_to((mean + spread).max(axis=0), q.shape).copy()
    if not np.all(np.isfinite(spread)):
        # heavy tails (no variance): the mixture's q-quantile lies between the experts'
        expert_q = _expert_distribution(family, experts, mean[:, None, :]).ppf(q[None])
        lo = expert_q.min(axis=0) - 1.0
        hi = expert_q.max(axis=0) + 1.0
    discrete = isinstance(dist.dist, stats.rv_discrete)
    if discrete:
        lo, hi = np.floor(np.minimum(lo, -1.0)), np.ceil(hi)
    for _ in range(200):
        if discrete:
            if np.all(hi - lo <= 1):
                break
            mid = np.floor((lo + hi) / 2)
        else:
            mid = 0.5 * (lo + hi)
            if np.all((mid == lo) | (mid == hi)):
                break
        above = cdf(family, experts, gate, mean, mid) >= q
        hi = np.where(above, mid, hi)
        lo = np.where(above, lo, mid)
    return hi.T


def sample(family, experts, gate, mean, n_samples, rng):
    """Draws of y, shape (n, n_samples) (or (n, n_samples, R) for several responses): an
    expert from the gate, then y from the expert."""
    cumulative = np.cumsum(gate, axis=0)
    u = rng.uniform(size=(n_samples, gate.shape[1]))
    expert = np.minimum((u[None] > cumulative[:, None, :]).sum(axis=0), gate.shape[0] - 1)

    def draw(f, params, m):  # every response from the same expert
        picked = np.take_along_axis(m, expert, axis=0)
        draws = _expert_distribution(f, params, picked, index=expert).rvs(random_state=rng)
        return np.asarray(draws, dtype=float).reshape(n_samples, -1).T  # rvs drops unit axes

    return _per_response(family, experts, mean, draw)


def gaussian_modes(gate, mean, variance, tol=1e-10, max_iter=1000):
    """Local maxima of a Gaussian mixture density in y, for every sample.

    The fixed-point iteration ``y <- sum_k w_k(y) mu_k / s_k^2 / sum_k w_k(y) / s_k^2``
    with ``w_k(y) = g_k N(y; mu_k, s_k^2)`` climbs the density monotonically to a mode
    (Carreira-Perpinan 2000); started at every expert mean it finds all the modes.

    Returns modes and their densities, each (n, K), sorted by decreasing density and padded
    with NaN where a sample has fewer than K modes.
    """
    precision = (1.0 / variance)[:, None, None]  # (K, 1, 1)
    log_norm = np.log(gate) - 0.5 * np.log(2 * np.pi * variance)[:, None]  # (K, n)
    y = mean.copy()  # (start, n)
    scale = np.sqrt(variance).min()
    for _ in range(max_iter):
        log_w = log_norm[:, None, :] - 0.5 * precision * (y[None] - mean[:, None, :]) ** 2
        w = np.exp(log_w - log_w.max(axis=0, keepdims=True)) * precision
        new = np.einsum("ksi,ki->si", w, mean) / w.sum(axis=0)
        done = np.max(np.abs(new - y)) <= tol * scale
        y = new
        if done:
            break
    density = np.exp(
        log_norm[:, None, :] - 0.5 * precision * (y[None] - mean[:, None, :]) ** 2
    ).sum(axis=0)
    # merge starts that reached the same mode
    order = np.argsort(y, axis=0)
    y, density = np.take_along_axis(y, order, 0), np.take_along_axis(density, order, 0)
    duplicate = np.zeros_like(y, dtype=bool)
    duplicate[1:] = np.diff(y, axis=0) <= 1e-6 * scale
    y[duplicate], density[duplicate] = np.nan, -np.inf
    order = np.argsort(-density, axis=0, kind="stable")
    y, density = np.take_along_axis(y, order, 0), np.take_along_axis(density, order, 0)
    density[~np.isfinite(density)] = np.nan
    return y.T, density.T
