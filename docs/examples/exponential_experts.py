"""A new expert family for skmoe: exponential experts with a log link.

This file is the worked example of the "Adding an expert family" page of the documentation
(``docs/extending.rst`` includes it) and is executed by ``tests/test_docs_and_notebooks.py``
and ``tests/test_family_protocol.py`` (through ``fit``, ``partial_fit``, a dask fit,
``predict_quantiles`` and ``standard_errors``).

An exponential expert models a positive response with mean ``mu_k(x) = exp(eta_k)``,
``eta_k = b_k0 + b_k' x``, and density ``f_k(y | x) = exp(-y / mu_k) / mu_k``. It is the
Gamma expert with its shape fixed at one, so it has no dispersion parameter.
"""

import numpy as np
from scipy import stats

from skmoe import MixtureOfExpertsRegressor
from skmoe._families import _NewtonGLMExperts


class ExponentialExperts(_NewtonGLMExperts):
    """K exponential GLM experts with a log link, fitted by Newton's method."""

    name = "exponential"
    # capabilities the estimators ask for
    accepts_offset = True  # exposure= enters eta as log(exposure)
    positive_only = True
    link = staticmethod(np.log)
    inverse_link = staticmethod(np.exp)

    def check_y(self, y):
        y = np.asarray(y, dtype=float)
        if np.any(y <= 0):
            raise ValueError("Exponential experts need a strictly positive response.")
        return y

    def init_target(self, y):
        # what represents y when init_params="kmeans" or "voronoi" partitions the data
        return np.log(y)[:, None]

    def derivatives(self, y, eta, params, order=2):
        """log f, its first derivative in eta and minus its second derivative.

        ``eta`` has shape (K, n); so does every returned array.
        """
        ratio = y * np.exp(-eta)  # y / mu
        log_density = -eta - ratio
        if order == 0:
            return (log_density,)
        return log_density, ratio - 1.0, ratio

    @staticmethod
    def distribution(mean):
        """The distribution of y given one expert, for predictive quantiles and draws."""
        return stats.expon(scale=mean)


def ExponentialMixtureRegressor(**params):
    """A mixture of exponential experts under a softmax gate: the regressor with
    ``expert=ExponentialExperts()`` (any other parameter of MixtureOfExpertsRegressor)."""
    return MixtureOfExpertsRegressor(expert=ExponentialExperts(), **params)


def make_exponential_regimes(n_samples=2000, random_state=0):
    """Two regimes of exponential waiting times: short ones (mean falling with x) for x < 0,
    long ones (mean rising with x) for x > 0, with a smooth switch between them."""
    rng = np.random.default_rng(random_state)
    x = rng.uniform(-3, 3, n_samples)
    second = rng.uniform(size=n_samples) < 1 / (1 + np.exp(-3 * x))
    log_mean = np.where(second, 1.0 + 0.5 * x, -0.5 - 0.3 * x)
    y = rng.exponential(np.exp(log_mean))
    return x[:, None], y


if __name__ == "__main__":
    X, y = make_exponential_regimes()
    model = MixtureOfExpertsRegressor(2, expert=ExponentialExperts(), n_init=5, random_state=0)
    model.fit(X, y)
    print("converged:", model.converged_, "in", model.n_iter_, "iterations")
    print("expert intercepts:", model.expert_intercept_.round(2))  # near 1.0 and -0.5
    print("expert slopes:    ", model.expert_coef_.ravel().round(2))  # near 0.5 and -0.3
    print("gate slopes:      ", model.gate_coef_.ravel().round(2))
    print("standard errors:  ", model.standard_errors(X, y).expert_coef.ravel().round(3))
