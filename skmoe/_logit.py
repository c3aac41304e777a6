"""Batched weighted multinomial logit: the gate, and the classifier's experts.

``M`` multinomial logit models over ``C`` categories share one design ``X1 = [1, X]``.
Model ``m`` has coefficients ``V[m]`` of shape (C, d + 1) (intercept first) and the
penalised objective

    Q_m(V) = sum_i sum_c S[m, c, i] log p_c(x_i; V[m]) - alpha / 2 ||V[m, :, 1:]||^2,

where ``S[m, c, i] >= 0`` are soft counts: sample weight times responsibility times target.
The gate is one model (M=1) over the K experts with ``S = w * resp``; the experts of the
classifier are K models over the classes with ``S[k, c] = W[k] * (y == c)``.

The parametrisation is symmetric (no reference category). ``Q`` does not change when the
same vector is added to every category of a model; the gradient is orthogonal to those
directions, so iterates started at zero stay in the sum-to-zero subspace.
"""

import numpy as np

from ._linalg import (
    BLOCK_ROWS,
    ROUNDING,
    linear_predictor,
    log_softmax,
    penalty_diagonal,
    solve_spd,
    weighted_grams,
    weighted_sums,
)


def log_proba(X, V):
    """Log category probabilities and probabilities, each of shape (M, C, n)."""
    return log_softmax(linear_predictor(X, V), axis=1)


def objective(S, log_p, V, alpha):
    """Penalised objective of every model, shape (M,)."""
    value = np.einsum("mci,mci->m", S, log_p)
    return value - 0.5 * alpha * np.sum(V[..., 1:] ** 2, axis=(1, 2))


def gradient(X, S, p, V, alpha):
    """Gradient of ``Q_m`` with respect to ``V[m]``, shape (M, C, d + 1)."""
    M, C, n = S.shape
    resid = p * -S.sum(axis=1, keepdims=True)
    resid += S
    grad = weighted_sums(X, resid.reshape(M * C, n)).reshape(M, C, -1)
    grad[..., 1:] -= alpha * V[..., 1:]
    return grad


def newton_matrix(X, S, P, alpha):
    """Negative Hessian of ``Q_m``, (M, C (d+1), C (d+1)), made definite on the directions
    that add one vector to every category (the gradient has no component there).

    Block (c, c') is ``X1' diag(w_m (p_c delta_cc' - p_c p_c')) X1``.
    """
    M, C, n = S.shape
    d1 = X.shape[1] + 1
    w = S.sum(axis=1)
    iu, ju = np.triu_indices(C)
    curv = -P[:, iu] * P[:, ju]
    curv[:, iu == ju] += P
    curv *= w[:, None, :]
    grams = weighted_grams(X, curv.reshape(-1, n)).reshape(M, len(iu), d1, d1)
    H = np.zeros((M, C, d1, C, d1))
    for pair, (a, b) in enumerate(zip(iu, ju)):
        H[:, a, :, b, :] = grams[:, pair]
        H[:, b, :, a, :] = grams[:, pair]
    H = H.reshape(M, C * d1, C * d1)
    H += np.diag(np.tile(penalty_diagonal(d1, alpha), C))
    scale = max(np.trace(H, axis1=1, axis2=2).max() / (C * d1), 1e-12)
    H += scale * np.kron(np.full((C, C), 1.0 / C), np.eye(d1))
    return H


def maximise_newton(X, S, V, alpha, *, max_steps=100, tol=1e-10):
    """Newton's method with step halving for every model at once; returns the new ``V``.

    No model's objective ever decreases. For small ``C (d + 1)``: each step builds the
    exact Hessian from ``C (C + 1) / 2`` weighted Grams per model.
    """
    V = V.copy()
    log_p, p = log_proba(X, V)
    value = objective(S, log_p, V, alpha)
    M, C, d1 = V.shape
    for _ in range(max_steps):
        grad = gradient(X, S, p, V, alpha).reshape(M, C * d1)
        direction = solve_spd(newton_matrix(X, S, p, alpha), grad).reshape(V.shape)
        step = np.ones(M)
        active = np.ones(M, dtype=bool)
        old = V.copy()
        for _halving in range(40):
            trial = V + step[:, None, None] * direction
            trial_log_p, trial_p = log_proba(X, trial)
            trial_value = objective(S, trial_log_p, trial, alpha)
            accept = active & (trial_value >= value - ROUNDING * np.abs(value))
            V[accept] = trial[accept]
            value[accept] = trial_value[accept]
            log_p[accept] = trial_log_p[accept]
            p[accept] = trial_p[accept]
            active &= ~accept
            if not active.any():
                break
            step[active] *= 0.5
        if np.max(np.abs(V - old)) <= tol * (1.0 + np.max(np.abs(V))):
            break
    return V


def bound_factor(gram, alpha):
    """Inverse ``R^-1`` of the upper Cholesky factor of Böhning's bound ``G_m / 2 + alpha P``
    (Böhning 1992), shape (M, d + 1, d + 1).

    On the sum-to-zero subspace, ``-Hess Q_m <= (I - J / C) / 2 kron G_m + alpha I kron P``
    with ``G_m = X1' diag(w_m) X1``: in the coordinates ``U = V R'`` the curvature is at
    most one in every direction, the scaling a quasi-Newton method wants.
    """
    B = 0.5 * gram + np.diag(penalty_diagonal(gram.shape[-1], alpha))
    jitter = 1e-10 * np.trace(B, axis1=1, axis2=2)[:, None, None] + 1e-300
    lower = np.linalg.cholesky(B + jitter * np.eye(B.shape[-1]))
    return np.linalg.inv(lower).transpose(0, 2, 1)


def _blocks(n):
    """Row blocks small enough that a block of X, read once from memory, stays in cache for
    the second product (these solvers are bound by memory traffic, not arithmetic)."""
    return [slice(start, start + BLOCK_ROWS) for start in range(0, n, BLOCK_ROWS)]


def _weighted_sums_3d(X, A):
    """``A X1`` for A of shape (M, C, n): (M, C, d + 1)."""
    M, C, n = A.shape
    return weighted_sums(X, A.reshape(M * C, n)).reshape(M, C, -1)


def maximise_truncated_newton(X, S, V, alpha, inv_factor, *, max_iter=3, max_cg=10, tol=1e-12):
    """Truncated Newton on ``sum_m Q_m`` in the coordinates ``U = V R'``; returns the new ``V``.

    ``inv_factor`` is ``R^-1`` from ``bound_factor``: in these coordinates Böhning's bound
    is the identity, so conjugate gradients need few Hessian-vector products, each two
    passes over the data (no Hessian is formed). Each Newton step is accepted only when it
    raises the objective by a fraction of the predicted gain (Armijo), so the objective
    never decreases; a step that cannot raise it ends the search.

    Written out rather than calling ``scipy.optimize.minimize(method="Newton-CG")``, which
    reaches the same point but spends about twice the passes over the data on its line
    search, in the hottest loop of every EM iteration.
    """
    shape = V.shape
    weights = S.sum(axis=1, keepdims=True)

    def to_V(U):  # V_c' = R^-1 U_c'
        return U @ inv_factor.transpose(0, 2, 1)

    def evaluate(U):
        """Objective, gradient in U coordinates, and probabilities: one pass over X."""
        W = to_V(U)
        value = -0.5 * alpha * np.sum(W[..., 1:] ** 2)
        grad = np.zeros(W.shape)
        p = np.empty(S.shape)
        for rows in _blocks(X.shape[0]):
            Xb = X[rows]
            log_pb, pb = log_proba(Xb, W)
            value += np.einsum("mci,mci->", S[..., rows], log_pb)
            p[..., rows] = pb
            pb *= -weights[..., rows]
            pb += S[..., rows]
            grad += _weighted_sums_3d(Xb, pb)
        grad[..., 1:] -= alpha * W[..., 1:]
        return value, grad @ inv_factor, p  # dQ/dU = dQ/dV R^-1

    def curvature(p, direction):
        """``-Hess Q`` times ``direction``, in U coordinates: one pass over X."""
        D = to_V(direction)
        out = np.zeros(shape)
        for rows in _blocks(X.shape[0]):
            Xb, pb = X[rows], p[..., rows]
            A = linear_predictor(Xb, D)
            A -= np.sum(pb * A, axis=1, keepdims=True)
            A *= pb
            A *= weights[..., rows]
            out += _weighted_sums_3d(Xb, A)
        out[..., 1:] += alpha * D[..., 1:]
        return out @ inv_factor

    U = np.linalg.solve(inv_factor[:, None], V[..., None])[..., 0]
    value, grad, p = evaluate(U)
    for _ in range(max_iter):
        grad_norm = np.sqrt(np.sum(grad**2))
        if grad_norm == 0.0:
            break
        # conjugate gradients for (-Hess) step = grad, to a relative residual
        # min(0.5, sqrt(|grad|)) (Eisenstat & Walker's forcing term)
        step = np.zeros(shape)
        resid, direction = grad.copy(), grad.copy()
        rr = grad_norm**2
        forcing = min(0.5, np.sqrt(grad_norm)) * grad_norm
        for _cg in range(max_cg):
            H_dir = curvature(p, direction)
            dHd = np.sum(direction * H_dir)
            if dHd <= 1e-16 * np.sum(direction**2):
                break
            a = rr / dHd
            step += a * direction
            resid -= a * H_dir
            rr_new = np.sum(resid**2)
            if np.sqrt(rr_new) <= forcing:
                break
            direction = resid + (rr_new / rr) * direction
            rr = rr_new
        if not np.any(step):
            step = grad
        slope = np.sum(grad * step)
        t = 1.0
        for _halving in range(30):
            new_value, new_grad, new_p = evaluate(U + t * step)
            if new_value >= value + 1e-4 * t * slope - ROUNDING * abs(value):
                break
            t *= 0.5
        else:
            break
        gain = new_value - value
        U, value, grad, p = U + t * step, new_value, new_grad, new_p
        if gain <= tol * (abs(value) + 1.0):
            break
    return to_V(U)
