"""Weighted sufficient statistics and small batched solves.

Every M-step in skmoe consumes sums over rows: weighted Gram matrices ``X1' diag(w_k) X1``
and weighted cross-products ``X1' W``, where ``X1 = [1, X]`` is the design with an intercept
column. They are computed here without forming ``X1`` (no copy of the data) and in row blocks
(no ``n x K x d`` temporary), so the same functions serve in-memory, mini-batch and
distributed fits.
"""

import numpy as np
from scipy.linalg import cho_factor, cho_solve, LinAlgError

#: Rows per block: large enough for BLAS, small enough for the cache.
BLOCK_ROWS = 16384


def linear_predictor(X, coef):
    """``X1 @ coef.T`` for ``coef`` of shape (..., d + 1) whose first entry is the intercept.

    Returns an array of shape (n, ...).
    """
    lead = coef.shape[:-1]
    flat = coef.reshape(-1, coef.shape[-1])
    eta = X @ flat[:, 1:].T
    eta += flat[:, 0]
    return eta.reshape((X.shape[0],) + lead)


def weighted_sums(X, W):
    """``X1' W`` of shape (M, d + 1): weighted sums of the intercept column and of X.

    ``W`` has shape (n, M).
    """
    return np.column_stack([W.sum(axis=0), W.T @ X])


def weighted_grams(X, W):
    """Intercept-augmented weighted Gram matrices ``X1' diag(W[:, m]) X1``, shape (M, d+1, d+1)."""
    n, d = X.shape
    M = W.shape[1]
    gram = np.zeros((M, d + 1, d + 1))
    for start in range(0, n, BLOCK_ROWS):
        Xb = X[start:start + BLOCK_ROWS]
        Wb = W[start:start + BLOCK_ROWS]
        for m in range(M):
            gram[m, 1:, 1:] += (Xb.T * Wb[:, m]) @ Xb
    sums = weighted_sums(X, W)
    gram[:, 0, :] = sums
    gram[:, :, 0] = sums
    return gram


def penalty_diagonal(n_coef, alpha):
    """Diagonal of the L2 penalty on an intercept-first coefficient vector (intercept free)."""
    diag = np.full(n_coef, float(alpha))
    diag[0] = 0.0
    return diag


def solve_spd(A, b):
    """Solve ``A x = b`` for symmetric positive (semi-)definite ``A`` (batched over axis 0).

    Cholesky first; a numerically singular system (collinear columns, an expert with no
    weight) falls back to the minimum-norm least-squares solution.
    """
    out = np.empty_like(b)
    for m in range(A.shape[0]):
        try:
            factor = cho_factor(A[m], check_finite=False)
            pivots = np.abs(np.diag(factor[0]))
            if pivots.min() > 1e-7 * pivots.max():
                out[m] = cho_solve(factor, b[m], check_finite=False)
                continue
        except (LinAlgError, ValueError):
            pass
        out[m] = np.linalg.lstsq(A[m], b[m], rcond=None)[0]
    return out
