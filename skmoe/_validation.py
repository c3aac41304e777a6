"""Checks of the data shared by every fit (in memory, by ``partial_fit``, on dask)."""

from numbers import Integral

import numpy as np
from scipy import sparse

from ._sklearn_compat import _check_sample_weight


def check_weights(sample_weight, X):
    """Non-negative sample weights (ones when None) with a positive sum."""
    weights = _check_sample_weight(sample_weight, X, ensure_non_negative=True)
    check_positive_total(weights.sum())
    return weights


def check_positive_total(total):
    if not total > 0:
        raise ValueError("sample_weight must have a positive sum; all weights are zero.")


def check_n_rows(n_samples, n_leaves):
    if n_samples < n_leaves:
        raise ValueError(
            f"n_samples={n_samples} should be >= the number of experts ({n_leaves})."
        )


def check_n_draws(n_samples):
    """``sample_y``'s number of draws per sample: a positive integer."""
    if isinstance(n_samples, bool) or not isinstance(n_samples, Integral) or n_samples < 1:
        raise ValueError(f"n_samples must be a positive integer; got {n_samples!r}.")


def check_squares_finite(X):
    """Refuse columns whose weighted sums of squares overflow (values near 1e300): every
    M-step solves with such sums, and LAPACK would fail on them with "SVD did not
    converge" after printing errors."""
    with np.errstate(over="ignore"):
        if sparse.issparse(X):
            squares = np.asarray(X.multiply(X).sum(axis=0)).ravel()
        else:
            squares = np.einsum("ij,ij->j", X, X)
    bad = np.flatnonzero(~np.isfinite(squares))
    if bad.size:
        largest = abs(X[:, bad]).max()
        raise ValueError(
            f"X has values too large for the fit (columns {bad.tolist()}, largest "
            f"|x| = {largest:.3g}): their squares overflow; rescale X."
        )

