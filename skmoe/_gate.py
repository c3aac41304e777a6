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
    max_steps : int
        Ascent steps per M-step, warm-started from the previous coefficients.
    """

    def __init__(self, n_experts, alpha=0.0, max_steps=10):
        self.n_experts = n_experts
        self.alpha = float(alpha)
        self.max_steps = max_steps

    def initial_coef(self, X):
        return np.zeros((self.n_experts, X.shape[1] + 1))

    def log_prob(self, X, V):
        """Log gate probabilities, shape (n, K)."""
        return _logit.log_proba(X, V[None])[:, 0, :]

    def bound(self, X, sample_weight):
        """Böhning's bound matrix for the gate; it depends on the sample weights only, so it
        is computed once per fit and every M-step is a sequence of cheap minorise-maximise
        steps (each one pass over the data, each one non-decreasing)."""
        gram = weighted_grams(X, sample_weight[:, None])
        return _logit.bound_matrix(gram, self.alpha)

    def m_step(self, X, weighted_resp, V, bound=None):
        """Ascend the gate's part of the EM objective,
        ``sum_i sum_k w_i r_ik log g_k(x_i) - alpha / 2 ||V[:, 1:]||^2``."""
        return _logit.maximise(
            X, weighted_resp[:, None, :], V[None], self.alpha,
            bound=bound, max_steps=self.max_steps, tol=1e-12,
        )[0]

    def penalty(self, V):
        return 0.5 * self.alpha * np.sum(V[:, 1:] ** 2)

    def n_parameters(self, V):
        return (self.n_experts - 1) * V.shape[1]
