"""The softmax gate and the batched multinomial logit behind it."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from skmoe import _logit
from skmoe._blocks import one_block
from skmoe._gate import GateTree
from skmoe._linalg import weighted_grams

_DATA_RNG = np.random.default_rng(1)  # the module's fixed data, drawn at import
N, D, K = 300, 3, 4
X = _DATA_RNG.normal(size=(N, D))
del _DATA_RNG  # no test draws from a generator another test has used


def _soft_counts(M=2, C=K):
    rng = np.random.default_rng(100)
    weights = rng.uniform(0.5, 2.0, size=N)
    targets = rng.dirichlet(np.ones(C), size=(M, N)).transpose(0, 2, 1)
    return targets * weights


def test_gradient_matches_finite_differences():
    rng = np.random.default_rng(101)
    S = _soft_counts()
    V = rng.normal(size=(2, K, D + 1))
    alpha = 0.7
    log_p, p = _logit.log_proba(X, V)
    grad = _logit.gradient(X, S, p, V, alpha)
    h = 1e-6
    numeric = np.zeros_like(V)
    for index in np.ndindex(V.shape):
        up, down = V.copy(), V.copy()
        up[index] += h
        down[index] -= h
        m = index[0]
        numeric[index] = (
            _logit.objective(S, _logit.log_proba(X, up)[0], up, alpha)[m]
            - _logit.objective(S, _logit.log_proba(X, down)[0], down, alpha)[m]
        ) / (2 * h)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-6)


def test_newton_matrix_is_the_negative_hessian_on_sum_to_zero_directions():
    rng = np.random.default_rng(102)
    S = _soft_counts(M=1)
    V = rng.normal(size=(1, K, D + 1))
    alpha = 0.3
    _, p = _logit.log_proba(X, V)
    H = _logit.newton_matrix(X, S, p, alpha)[0]
    direction = rng.normal(size=(K, D + 1))
    direction -= direction.mean(axis=0)  # sum-to-zero over categories
    h = 1e-6
    grad_up = _logit.gradient(
        X, S, _logit.log_proba(X, V + h * direction)[1], V + h * direction, alpha
    )
    grad_down = _logit.gradient(
        X, S, _logit.log_proba(X, V - h * direction)[1], V - h * direction, alpha
    )
    numeric = -(grad_up - grad_down)[0].ravel() / (2 * h)
    np.testing.assert_allclose(H @ direction.ravel(), numeric, rtol=1e-6, atol=1e-6)


def test_bound_dominates_the_hessian():
    """Böhning: on sum-to-zero directions the bound minus the Hessian is PSD."""
    rng = np.random.default_rng(103)
    S = _soft_counts(M=1)
    V = rng.normal(size=(1, K, D + 1))
    _, p = _logit.log_proba(X, V)
    H = _logit.newton_matrix(X, S, p, 0.0)[0]
    inv_factor = _logit.bound_factor(weighted_grams(X, S.sum(axis=1)), 0.0)[0]
    bound = np.linalg.inv(inv_factor @ inv_factor.T)
    for _ in range(20):
        direction = rng.normal(size=(K, D + 1))
        direction -= direction.mean(axis=0)
        quad_bound = np.einsum("cd,de,ce->", direction, bound, direction)
        assert quad_bound >= direction.ravel() @ H @ direction.ravel() - 1e-9


@pytest.mark.parametrize("alpha", [0.5, 2.0])
def test_hard_targets_equal_multinomial_logistic_regression(alpha):
    rng = np.random.default_rng(104)
    labels = rng.integers(0, K, size=N)
    weights = rng.uniform(0.5, 2.0, size=N)
    gate = GateTree(1, K, alpha=alpha, max_iter=200)
    W = np.eye(K)[labels].T * weights
    factor = gate.preconditioner(one_block(X_gate=X, sample_weight=weights))
    V = gate.m_step(X, W, gate.initial_coef(X), factor)[0][0]
    ref = LogisticRegression(C=1 / alpha, tol=1e-12, max_iter=10_000).fit(
        X, labels, sample_weight=weights
    )
    np.testing.assert_allclose(V[:, 1:], ref.coef_, rtol=1e-5, atol=1e-7)
    # intercepts are identified up to a common shift
    np.testing.assert_allclose(
        V[:, 0] - V[:, 0].mean(), ref.intercept_ - ref.intercept_.mean(), rtol=1e-5, atol=1e-7
    )


def test_newton_and_newton_cg_reach_the_same_maximum():
    S = _soft_counts(M=1)
    V0 = np.zeros((1, K, D + 1))
    alpha = 0.1
    newton = _logit.maximise_newton(X, S, V0, alpha)
    factor = _logit.bound_factor(weighted_grams(X, S.sum(axis=1)), alpha)
    cg = _logit.maximise_truncated_newton(X, S, V0, alpha, factor, max_iter=100, tol=1e-15)
    np.testing.assert_allclose(cg, newton, rtol=1e-6, atol=1e-8)


def test_gate_step_never_lowers_its_objective():
    S = _soft_counts(M=1)
    gate = GateTree(1, K, alpha=0.0, max_iter=1)
    V = gate.initial_coef(X)
    factor = gate.preconditioner(one_block(X_gate=X, sample_weight=S.sum(axis=1)[0]))
    previous = -np.inf
    for _ in range(30):
        V = gate.m_step(X, S[0], V, factor)
        value = _logit.objective(S, _logit.log_proba(X, V[0])[0], V[0], 0.0)[0]
        assert value >= previous - 1e-12 * abs(value)
        previous = value


@pytest.mark.parametrize("C", [1, 2, 3, 5])
def test_hessian_blocks_equal_the_sum_over_rows(C):
    """The diagonal blocks come from the off-diagonal ones (Hessian rows sum to zero)."""
    rng = np.random.default_rng(104)
    S = _soft_counts(M=2, C=C)
    V = rng.normal(size=(2, C, D + 1))
    _, p = _logit.log_proba(X, V)
    X1 = np.column_stack([np.ones(N), X])
    w = S.sum(axis=1)
    iu, ju = np.triu_indices(C)
    blocks = _logit.hessian_blocks(X, S, p)
    assert blocks.shape == (2, len(iu), D + 1, D + 1)
    for m in range(2):
        for k, (a, b) in enumerate(zip(iu, ju)):
            curvature = w[m] * p[m, a] * ((a == b) - p[m, b])
            np.testing.assert_allclose(
                blocks[m, k], (X1 * curvature[:, None]).T @ X1, rtol=1e-10, atol=1e-12
            )
