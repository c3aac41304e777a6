"""The softmax gate ``g(x) = softmax(V x1)``: a weighted soft-target multinomial logit.

Coefficients ``V`` have shape (K, d + 1), intercept first, in the symmetric sum-to-zero
parametrisation. The penalty ``alpha / 2 ||V[:, 1:]||^2`` leaves the intercepts free.
"""

import numpy as np

from . import _logit
from ._linalg import weighted_grams


class SoftmaxGate:
    """Softmax gate over ``n_experts`` experts.

    Parameters
    ----------
    n_experts : int
    alpha : float
        L2 penalty on the gate coefficients (not the intercepts).
    max_iter : int
        Newton iterations per M-step, warm-started from the previous coefficients.
    """

    def __init__(self, n_experts, alpha=0.0, max_iter=3):
        self.n_experts = n_experts
        self.alpha = float(alpha)
        self.max_iter = max_iter

    def initial_coef(self, X):
        return np.zeros((self.n_experts, X.shape[1] + 1))

    def log_prob(self, X, V):
        """Log gate probabilities, shape (K, n)."""
        return _logit.log_proba(X, V[None])[0][0]

    def preconditioner(self, X, sample_weight):
        """Cholesky factor of Böhning's bound for the gate. It depends on the sample weights
        only, so it is computed once per fit."""
        gram = weighted_grams(X, sample_weight[None, :])
        return _logit.bound_factor(gram, self.alpha)

    def m_step(self, X, weighted_resp, V, factor):
        """Ascend the gate's part of the EM objective,
        ``sum_i sum_k w_i r_ki log g_k(x_i) - alpha / 2 ||V[:, 1:]||^2``."""
        return _logit.maximise_newton_cg(
            X, weighted_resp[None], V[None], self.alpha, factor, max_iter=self.max_iter
        )[0]

    def penalty(self, V):
        return 0.5 * self.alpha * np.sum(V[:, 1:] ** 2)

    def n_parameters(self, V):
        return (self.n_experts - 1) * V.shape[1]
