"""Batched weighted multinomial logit: the gate, and the classifier's experts.

``M`` multinomial logit models over ``C`` categories share one design ``X1 = [1, X]``.
Model ``m`` has coefficients ``V[m]`` of shape (C, d + 1) (intercept first) and the
penalised objective

    Q_m(V) = sum_i sum_c S[i, m, c] log p_c(x_i; V[m]) - alpha / 2 ||V[m, :, 1:]||^2,

where ``S[i, m, c] >= 0`` are soft counts: sample weight times responsibility times target.
The gate is one model (M=1) over the K experts with ``S = w * resp``; the experts of the
classifier are K models over the classes with ``S = W[:, :, None] * onehot(y)``.

The parametrisation is symmetric (no reference category). ``Q`` is invariant to adding the
same vector to every category of a model, so iterates are kept in the sum-to-zero subspace,
where the (penalised) Hessian is definite whenever the data allow it.
"""

import numpy as np
from scipy.special import log_softmax

from ._linalg import linear_predictor, penalty_diagonal, solve_spd, weighted_grams


def log_proba(X, V):
    """Log category probabilities, shape (n, M, C)."""
    return log_softmax(linear_predictor(X, V), axis=-1)


def objective(X, S, V, alpha, log_p=None):
    """Penalised objective ``sum_m Q_m`` per model, shape (M,)."""
    if log_p is None:
        log_p = log_proba(X, V)
    value = np.einsum("imc,imc->m", S, log_p)
    return value - 0.5 * alpha * np.sum(V[..., 1:] ** 2, axis=(1, 2))


def gradient(X, S, V, alpha, log_p=None):
    """Gradient of ``Q_m`` with respect to ``V[m]``, shape (M, C, d + 1)."""
    if log_p is None:
        log_p = log_proba(X, V)
    n, M, C = S.shape
    resid = S - S.sum(axis=2, keepdims=True) * np.exp(log_p)
    flat = resid.reshape(n, M * C)
    grad = np.column_stack([flat.sum(axis=0), flat.T @ X]).reshape(M, C, -1)
    grad[..., 1:] -= alpha * V[..., 1:]
    return grad


def newton_matrix(X, S, V, alpha, log_p=None):
    """Negative Hessian of ``Q_m`` as (M, C (d+1), C (d+1)) matrices, regularised on the
    directions that add one vector to every category (the gradient has no component there).

    Block (c, c') is ``X1' diag(w_m (p_c delta_cc' - p_c p_c')) X1``, computed as
    ``C (C+1) / 2`` weighted Grams per model.
    """
    if log_p is None:
        log_p = log_proba(X, V)
    n, M, C = S.shape
    d1 = X.shape[1] + 1
    P = np.exp(log_p)
    w = S.sum(axis=2)
    iu, ju = np.triu_indices(C)
    curv = -P[:, :, iu] * P[:, :, ju]
    curv[:, :, iu == ju] += P
    curv *= w[:, :, None]
    grams = weighted_grams(X, curv.reshape(n, -1)).reshape(M, len(iu), d1, d1)
    H = np.zeros((M, C, d1, C, d1))
    for pair, (a, b) in enumerate(zip(iu, ju)):
        H[:, a, :, b, :] = grams[:, pair]
        H[:, b, :, a, :] = grams[:, pair]
    H = H.reshape(M, C * d1, C * d1)
    pen = np.tile(penalty_diagonal(d1, alpha), C)
    H += np.diag(pen)
    # add s * (J/C kron I) on the null directions of the unpenalised Hessian
    scale = max(np.trace(H, axis1=1, axis2=2).max() / (C * d1), 1e-12)
    H += scale * np.kron(np.full((C, C), 1.0 / C), np.eye(d1))
    return H


def bound_matrix(gram, alpha):
    """Böhning's bound on the negative Hessian on the sum-to-zero subspace.

    ``-Hess Q_m <= 1/2 (I - J/C) kron G_m + alpha P`` with ``G_m = X1' diag(w_m) X1``
    (Böhning 1992); on sum-to-zero directions it acts as ``G_m / 2 + alpha P`` on each
    category. Returns (M, d + 1, d + 1).
    """
    return 0.5 * gram + np.diag(penalty_diagonal(gram.shape[-1], alpha))


def newton_direction(X, S, V, alpha, log_p=None):
    """Full Newton direction for every model, shape of ``V``."""
    M, C, d1 = V.shape
    grad = gradient(X, S, V, alpha, log_p)
    H = newton_matrix(X, S, V, alpha, log_p)
    return solve_spd(H, grad.reshape(M, C * d1)).reshape(M, C, d1)


def bound_direction(X, S, V, alpha, bound, log_p=None):
    """Minorise-maximise direction ``bound^{-1} grad``, shape of ``V``."""
    grad = gradient(X, S, V, alpha, log_p)
    return solve_spd(bound, np.transpose(grad, (0, 2, 1))).transpose(0, 2, 1)


def maximise(X, S, V, alpha, *, bound=None, max_steps=100, tol=1e-10):
    """Ascend ``Q_m`` for every model from ``V``; return the new ``V``.

    Newton steps with step halving when ``bound`` is None; otherwise minorise-maximise steps
    with the fixed bound matrix (cheap: no Hessian, each step is one pass over the data),
    each of which provably does not lower ``Q``. Steps stop when the largest relative gain
    falls under ``tol``. No model's objective ever decreases.
    """
    V = V.copy()
    log_p = log_proba(X, V)
    value = objective(X, S, V, alpha, log_p)
    for _ in range(max_steps):
        if bound is None:
            direction = newton_direction(X, S, V, alpha, log_p)
        else:
            direction = bound_direction(X, S, V, alpha, bound, log_p)
        step = np.ones(V.shape[0])
        active = np.ones(V.shape[0], dtype=bool)
        new_V, new_value, new_log_p = V.copy(), value.copy(), log_p.copy()
        for _halving in range(30):
            trial = V + step[:, None, None] * direction
            trial_log_p = log_proba(X, trial)
            trial_value = objective(X, S, trial, alpha, trial_log_p)
            accept = active & (trial_value >= value)
            new_V[accept] = trial[accept]
            new_value[accept] = trial_value[accept]
            new_log_p[:, accept] = trial_log_p[:, accept]
            active &= ~accept
            if not active.any():
                break
            step[active] *= 0.5
        gain = new_value - value
        V, value, log_p = new_V, new_value, new_log_p
        if np.all(gain <= tol * (np.abs(value) + 1.0)):
            break
    return V
