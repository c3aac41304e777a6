"""A negative-binomial (NB2) expert family written outside skmoe, on its public protocol.

Used by tests/test_family_protocol.py: it must work through fit, partial_fit, a dask fit,
predict_quantiles and standard_errors with no change to skmoe. Its dispersion parameter is
called ``size`` (the ``r`` of ``Var y = mu + mu^2 / r``), estimated per expert.
"""

import numpy as np
from scipy import stats
from scipy.special import digamma, gammaln, polygamma

from skmoe._families import _NewtonGLMExperts


def _size_terms(y, eta, size):
    """d log f / dr and d2 log f / dr2 per (k, i)."""
    r = size[:, None]
    mu = np.exp(eta)
    first = digamma(y + r) - digamma(r) + np.log(r) + 1.0 - np.log(r + mu) - (r + y) / (r + mu)
    second = (polygamma(1, y + r) - polygamma(1, r) + 1.0 / r - 2.0 / (r + mu)
              + (r + y) / (r + mu) ** 2)
    return first, second


class NegativeBinomialExperts(_NewtonGLMExperts):
    """NB2 experts with a log link and one ``size`` per expert."""

    name = "negative binomial"
    dispersion_keys = ("size",)
    dispersion_labels = ("size",)
    accepts_offset = True
    positive_only = True
    link = staticmethod(np.log)
    inverse_link = staticmethod(np.exp)

    def check_y(self, y):
        y = np.asarray(y, dtype=float)
        if np.any(y < 0) or np.any(y != np.round(y)):
            raise ValueError("Negative-binomial experts need non-negative integer counts.")
        return y

    def init_target(self, y):
        return np.log1p(y)[:, None]

    def derivatives(self, y, eta, params, order=2):
        r = params["size"][:, None]
        log_r_mu = np.logaddexp(np.log(r), eta)  # log(r + mu)
        ll = (gammaln(y + r) - gammaln(r) - gammaln(y + 1.0) + r * np.log(r) + y * eta
              - (r + y) * log_r_mu)
        if order == 0:
            return (ll,)
        p = np.exp(eta - log_r_mu)  # mu / (r + mu)
        return ll, (y - np.exp(eta)) * (1.0 - p), (r + y) * p * (1.0 - p)

    @staticmethod
    def distribution(mean, size):
        return stats.nbinom(n=size, p=size / (size + mean))

    def project(self, params):
        return dict(params, size=np.clip(params["size"], 1e-6, 1e8))

    # -- the size from additive statistics (batch, online and dask alike)
    def dispersion_statistics(self, block, params):
        """Gradient and curvature of the weighted log-likelihood in ``s = log size``, in
        the "linear" form ``c s + g`` that stays additive across points."""
        size = params.get("size", np.ones(self.n_experts))
        W = block.weights
        first, second = _size_terms(block.y, self.eta(block.X_expert, params, block.offset),
                                    size)
        grad = np.einsum("ki,ki->k", W, first) * size
        curv = -(np.einsum("ki,ki->k", W, second) * size**2 + grad)
        curv = np.maximum(curv, 1e-3 * np.abs(grad) + 1e-8 * W.sum(axis=1))
        return {"size_linear": curv * np.log(size) + grad, "size_curvature": curv,
                "weight": W.sum(axis=1)}

    def solve_dispersion(self, stats, params):
        log_size = np.log(params.get("size", np.ones(self.n_experts)))
        with np.errstate(invalid="ignore", divide="ignore"):
            proposal = stats["size_linear"] / stats["size_curvature"]
        proposal = np.where(np.isfinite(proposal), proposal, log_size)
        return {"size": np.exp(np.clip(proposal, log_size - 1.0, log_size + 1.0).clip(-12, 18))}

    def update_dispersion(self, source, params):
        """One safeguarded Newton step in ``log size``: halved until no expert's objective
        drops (so batch EM stays monotone)."""
        params = dict(params, size=params.get("size", np.ones(self.n_experts)))
        value = self.expert_objective(source, params)
        proposal = super().update_dispersion(source, params)["size"]
        step = np.ones(self.n_experts)
        for _ in range(30):
            size = params["size"] * (proposal / params["size"]) ** step
            trial = self.expert_objective(source, dict(params, size=size))
            bad = trial < value - 1e-12 * np.abs(value)
            if not bad.any():
                break
            step[bad] *= 0.5
        size = np.where(trial >= value - 1e-12 * np.abs(value), size, params["size"])
        return dict(params, size=size)

    # -- standard errors: derivatives in (eta, size)
    def information_terms(self, y, eta, params):
        r = params["size"][:, None]
        mu = np.exp(eta)
        first, second = _size_terms(y, eta, params["size"])
        return (
            r * (y - mu) / (r + mu),
            -(r + y) * r * mu / (r + mu) ** 2,
            first,
            second,
            (y - mu) * mu / (r + mu) ** 2,
        )


def make_nb_regimes(n_samples=3000, random_state=0):
    """Two regimes of over-dispersed counts, switching smoothly at x = 0."""
    rng = np.random.default_rng(random_state)
    x = rng.uniform(-2, 2, n_samples)
    second = rng.uniform(size=n_samples) < 1 / (1 + np.exp(-4 * x))
    log_mean = np.where(second, 2.0 + 0.5 * x, 0.5 - 0.4 * x)
    size = np.where(second, 5.0, 2.0)
    mean = np.exp(log_mean)
    y = rng.negative_binomial(size, size / (size + mean)).astype(float)
    return x[:, None], y
