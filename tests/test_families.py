"""Expert families: densities against scipy.stats, M-steps against sklearn, derivatives."""

import numpy as np
import pytest
from conftest import assert_log_likelihood_increasing
from scipy import stats
from scipy.special import digamma
from sklearn.linear_model import GammaRegressor, LogisticRegression, PoissonRegressor, Ridge

from skmoe import MixtureOfExpertsRegressor
from skmoe._families import (
    BernoulliExperts,
    GammaExperts,
    GaussianExperts,
    MultinomialExperts,
    PoissonExperts,
    gamma_shape,
)

_DATA_RNG = np.random.default_rng(0)  # the module's fixed data, drawn at import
N, D, K = 240, 3, 3
X = _DATA_RNG.normal(size=(N, D))
LABELS = np.arange(N) % K  # one-hot responsibilities: expert k owns rows with label k
WEIGHTS = _DATA_RNG.integers(1, 4, size=N).astype(float)
COEF = _DATA_RNG.normal(scale=0.5, size=(K, D + 1))
del _DATA_RNG  # no test draws from a generator another test has used


def _responses(name):
    rng = np.random.default_rng(100)
    eta = np.einsum("kd,id->ki", COEF[:, 1:], X)[LABELS, np.arange(N)] + COEF[LABELS, 0]
    if name == "gaussian":
        return eta + rng.normal(size=N)
    if name == "poisson":
        return rng.poisson(np.exp(eta)).astype(float)
    if name == "gamma":
        return rng.gamma(2.0, np.exp(eta) / 2.0)
    return (rng.uniform(size=N) < 1 / (1 + np.exp(-eta))).astype(float)


def _one_hot_weights():
    W = np.zeros((K, N))
    W[LABELS, np.arange(N)] = WEIGHTS
    return W


@pytest.mark.parametrize("name", ["gaussian", "poisson", "gamma", "bernoulli"])
def test_log_prob_matches_scipy_stats(name):
    y = _responses(name)
    params = {
        "coef": COEF,
        "variance": np.array([0.5, 1.0, 2.0]),
        "dispersion": np.array([0.5, 1.0, 0.25]),
    }
    family = {
        "gaussian": GaussianExperts,
        "poisson": PoissonExperts,
        "gamma": GammaExperts,
        "bernoulli": BernoulliExperts,
    }[name](K)
    got = family.log_prob(X, y, params)
    mean = family.mean(X, params)
    if name == "gaussian":
        expected = stats.norm.logpdf(y, mean, np.sqrt(params["variance"])[:, None])
    elif name == "poisson":
        expected = stats.poisson.logpmf(y, mean)
    elif name == "gamma":
        shape = 1 / params["dispersion"][:, None]
        expected = stats.gamma.logpdf(y, a=shape, scale=mean / shape)
    else:
        expected = stats.bernoulli.logpmf(y, mean)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_multinomial_log_prob_matches_scipy_stats():
    rng = np.random.default_rng(103)
    coef = rng.normal(size=(K, 4, D + 1))
    y = rng.integers(0, 4, size=N)
    family = MultinomialExperts(K, 4)
    proba = family.mean(X, {"coef": coef})
    expected = stats.multinomial.logpmf(np.eye(4)[y][None], 1, proba.transpose(0, 2, 1))
    np.testing.assert_allclose(family.log_prob(X, y, {"coef": coef}), expected, rtol=1e-12)


def _subset(k):
    rows = LABELS == k
    return X[rows], WEIGHTS[rows]


@pytest.mark.parametrize("alpha", [0.0, 3.0])
def test_gaussian_m_step_equals_weighted_ridge(alpha):
    y = _responses("gaussian")
    params = GaussianExperts(K, alpha).m_step(X, y, _one_hot_weights())
    for k in range(K):
        Xk, wk = _subset(k)
        ridge = Ridge(alpha=alpha, solver="cholesky").fit(Xk, y[LABELS == k], sample_weight=wk)
        np.testing.assert_allclose(params["coef"][k, 1:], ridge.coef_, rtol=1e-6)
        assert params["coef"][k, 0] == pytest.approx(ridge.intercept_, rel=1e-6, abs=1e-9)
        resid = y[LABELS == k] - ridge.predict(Xk)
        var = (wk @ resid**2 + alpha * ridge.coef_ @ ridge.coef_) / wk.sum()
        assert params["variance"][k] == pytest.approx(var, rel=1e-6)


@pytest.mark.parametrize("alpha", [0.0, 2.0])
@pytest.mark.parametrize("name", ["poisson", "gamma", "bernoulli"])
def test_glm_m_step_equals_sklearn(name, alpha):
    y = _responses(name)
    family = {"poisson": PoissonExperts, "gamma": GammaExperts, "bernoulli": BernoulliExperts}[
        name
    ](K, alpha)
    params = family.m_step(X, y, _one_hot_weights())
    for k in range(K):
        Xk, wk = _subset(k)
        yk = y[LABELS == k]
        if name == "bernoulli":
            ref = LogisticRegression(
                C=1 / alpha if alpha else np.inf, tol=1e-12, max_iter=10_000
            ).fit(Xk, yk, sample_weight=wk)
            coef, intercept = ref.coef_[0], ref.intercept_[0]
        else:
            # sklearn: (1 / (2 sum w)) sum w deviance + alpha_sk / 2 ||b||^2; for Gamma our
            # log-likelihood carries the shape v, so alpha_sk = alpha / (v sum w)
            scale = wk.sum() / (params["dispersion"][k] if name == "gamma" else 1.0)
            cls = PoissonRegressor if name == "poisson" else GammaRegressor
            ref = cls(alpha=alpha / scale, tol=1e-12, max_iter=10_000, solver="newton-cholesky")
            ref.fit(Xk, yk, sample_weight=wk)
            coef, intercept = ref.coef_, ref.intercept_
        np.testing.assert_allclose(params["coef"][k, 1:], coef, rtol=1e-6, atol=1e-8)
        assert params["coef"][k, 0] == pytest.approx(intercept, rel=1e-6, abs=1e-8)


def test_gamma_dispersion_is_the_ml_estimate():
    y = _responses("gamma")
    family = GammaExperts(K)
    params = family.m_step(X, y, _one_hot_weights())
    mean = family.mean(X, params)
    for k in range(K):
        rows = LABELS == k

        def negative(shape, k=k, rows=rows):
            ll = stats.gamma.logpdf(y[rows], a=shape, scale=mean[k, rows] / shape)
            return -WEIGHTS[rows] @ ll

        from scipy.optimize import minimize_scalar

        best = minimize_scalar(
            negative, bounds=(0.01, 100), method="bounded", options={"xatol": 1e-10}
        )
        assert 1 / params["dispersion"][k] == pytest.approx(best.x, rel=1e-5)


def test_gamma_log_density_keeps_its_digits_at_huge_shapes():
    # at y = mu the density is log(v / 2 pi) / 2 - log mu - 1 / (12 v) + O(v^-3) (Stirling);
    # the direct v log v - gammaln(v) loses eps v log v (4e-8 at v = 2e7)
    family = GammaExperts(3)
    shape = np.array([150.0, 2e7, 1e10])
    params = {"coef": np.zeros((3, 1)), "dispersion": 1.0 / shape}
    y = np.exp(np.array([-2.0, 0.0, 1.0, 3.0]))
    eta = np.log(y)
    ll = family.derivatives(y, np.tile(eta, (3, 1)), params, order=0)[0]
    expected = 0.5 * np.log(shape[:, None] / (2 * np.pi)) - eta - 1.0 / (12 * shape[:, None])
    np.testing.assert_allclose(ll[1:], expected[1:], rtol=0, atol=1e-12)
    # and it is scipy's density where that is accurate; the shape's ML equation agrees too
    y = np.exp(np.linspace(-1.0, 1.0, 7))
    ll = family.derivatives(y, np.zeros((3, 7)), params, order=0)[0]
    np.testing.assert_allclose(ll[0], stats.gamma.logpdf(y, a=150.0, scale=1.0 / 150.0),
                               rtol=1e-12)
    for v in [0.3, 50.0, 150.0, 3e3]:
        target = np.log(v) - digamma(v)
        assert gamma_shape(np.array([target]), 1e10)[0] == pytest.approx(v, rel=1e-9)


@pytest.mark.parametrize("family_cls", [PoissonExperts, GammaExperts, BernoulliExperts])
def test_glm_derivatives_match_finite_differences(family_cls):
    name = family_cls.name
    y = _responses(name)
    family = family_cls(K)
    params = {"coef": COEF, "dispersion": np.array([0.5, 1.0, 0.25])}
    eta = family.eta(X, params)
    _, first, neg_second = family.derivatives(y, eta, params)
    h = 1e-6
    up = family.derivatives(y, eta + h, params, order=0)[0]
    down = family.derivatives(y, eta - h, params, order=0)[0]
    np.testing.assert_allclose(first, (up - down) / (2 * h), rtol=1e-6, atol=1e-6)
    d_up = family.derivatives(y, eta + h, params)[1]
    d_down = family.derivatives(y, eta - h, params)[1]
    np.testing.assert_allclose(neg_second, -(d_up - d_down) / (2 * h), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "family_cls", [GaussianExperts, PoissonExperts, GammaExperts, BernoulliExperts]
)
def test_integer_weights_equal_repeated_rows_in_the_m_step(family_cls):
    rng = np.random.default_rng(109)
    y = _responses(family_cls.name)
    W = rng.dirichlet(np.ones(K), size=N).T * WEIGHTS
    reps = WEIGHTS.astype(int)
    a = family_cls(K, alpha=0.5).m_step(X, y, W)
    b = family_cls(K, alpha=0.5).m_step(
        np.repeat(X, reps, axis=0), np.repeat(y, reps), np.repeat(W / WEIGHTS, reps, axis=1)
    )
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("expert", ["gaussian", "poisson", "gamma", "bernoulli"])
def test_em_ascent_for_every_family(expert):
    y = _responses(expert)
    model = MixtureOfExpertsRegressor(
        3, expert=expert, gate_alpha=0.1, expert_alpha=0.1, random_state=0
    )
    values = assert_log_likelihood_increasing(model, X, y, 60)
    assert np.all(np.isfinite(values))


@pytest.mark.parametrize(
    "expert, bad, message",
    [
        ("poisson", [-1.0], "non-negative"),
        ("gamma", [0.0], "strictly positive"),
        ("bernoulli", [0.5], r"\{0, 1\}"),
    ],
)
def test_invalid_responses_are_refused(expert, bad, message):
    y = np.abs(_responses("poisson")) + 1.0
    if expert == "bernoulli":
        y = (y > 1).astype(float)
    y[:1] = bad
    with pytest.raises(ValueError, match=message):
        MixtureOfExpertsRegressor(2, expert=expert).fit(X, y)


def test_poisson_exposure_is_a_log_offset():
    rng = np.random.default_rng(3)
    exposure = rng.uniform(0.5, 5.0, size=N)
    rate = np.exp(0.3 + 0.5 * X[:, 0])
    y = rng.poisson(rate * exposure).astype(float)
    model = MixtureOfExpertsRegressor(1, expert="poisson").fit(X, y, exposure=exposure)
    ref = PoissonRegressor(alpha=0, tol=1e-12, solver="newton-cholesky")
    ref.fit(X, y / exposure, sample_weight=exposure)
    np.testing.assert_allclose(model.expert_coef_[0], ref.coef_, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(
        model.predict(X, exposure=exposure), ref.predict(X) * exposure, rtol=1e-6
    )
    with pytest.raises(ValueError, match="exposure"):
        MixtureOfExpertsRegressor(1).fit(X, y, exposure=exposure)
