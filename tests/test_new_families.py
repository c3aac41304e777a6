"""The families of issue #18: negative-binomial (NB2) and Student-t experts.

For each: the log density equals scipy.stats' to 1e-12; one expert equals a direct
maximum-likelihood fit (scipy.optimize); with one-hot responsibilities the M-step equals a
direct weighted maximum-likelihood fit per expert to 1e-6; integer weights equal repeated
rows; EM ascends; planted experts (K=3, n=5000) are recovered; partial_fit, dask,
standard errors and the summary work.
"""

import warnings

import numpy as np
import pytest
from conftest import assert_log_likelihood_increasing, assert_monotone
from scipy import optimize, stats
from scipy.special import digamma, gammaln

from skmoe import MixtureOfExpertsRegressor
from skmoe._families import NegativeBinomialExperts, StudentTExperts, make_family

N, D, K = 600, 2, 3


def _design(seed=0, n=N):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, D)), rng


# ------------------------------------------------------------------ negative binomial
NB_COEF = np.array([[1.5, 0.5, -0.3], [2.5, -0.3, 0.2], [3.5, 0.2, 0.4]])
NB_SIZE = np.array([4.0, 8.0, 16.0])


def _nb_draw(rng, eta, size):
    mean = np.exp(eta)
    return rng.negative_binomial(size, size / (size + mean)).astype(float)


def _nb_one_hot(seed=1):
    X, rng = _design(seed)
    labels = np.arange(N) % K
    eta = NB_COEF[labels, 0] + np.einsum("id,id->i", X, NB_COEF[labels, 1:])
    y = _nb_draw(rng, eta, NB_SIZE[labels])
    weights = rng.integers(1, 4, size=N).astype(float)
    W = np.zeros((K, N))
    W[labels, np.arange(N)] = weights
    return X, y, W, labels, weights


def _nb_negative_log_lik(theta, X, y, w, offset):
    """Minus the weighted NB2 log-likelihood in (intercept, coef, log size), and its
    gradient: the direct maximum-likelihood reference."""
    coef, r = theta[:-1], np.exp(theta[-1])
    eta = coef[0] + X @ coef[1:] + offset
    mu = np.exp(eta)
    ll = stats.nbinom.logpmf(y, r, r / (r + mu))
    d_eta = r * (y - mu) / (r + mu)
    d_r = digamma(y + r) - digamma(r) + np.log(r) + 1.0 - np.log(r + mu) - (r + y) / (r + mu)
    grad = np.concatenate([[w @ d_eta], X.T @ (w * d_eta), [r * (w @ d_r)]])
    return -(w @ ll), -grad


def _nb_direct_fit(X, y, w=None, offset=0.0):
    w = np.ones(len(y)) if w is None else w
    start = np.zeros(X.shape[1] + 2)
    start[0] = np.log(np.average(y, weights=w) + 1e-3)
    result = optimize.minimize(_nb_negative_log_lik, start, args=(X, y, w, offset),
                               jac=True, method="BFGS",
                               options={"gtol": 1e-9, "maxiter": 10000})
    # polish with Newton on a finite-difference Hessian of the exact gradient
    theta = result.x
    for _ in range(5):
        grad = _nb_negative_log_lik(theta, X, y, w, offset)[1]
        h = 1e-6
        hess = np.array([
            (_nb_negative_log_lik(theta + h * e, X, y, w, offset)[1]
             - _nb_negative_log_lik(theta - h * e, X, y, w, offset)[1]) / (2 * h)
            for e in np.eye(theta.size)
        ])
        theta = theta - np.linalg.solve(0.5 * (hess + hess.T), grad)
    return theta[:-1], np.exp(theta[-1])


def _assert_information_terms(ll, eta, theta, terms):
    """``information_terms`` (d/deta, d2/deta2, d/dtheta, d2/dtheta2, d2/deta dtheta of the
    log density ``ll(eta, theta)``) against central finite differences."""
    d_eta, d_eta2, d_t, d_t2, d_eta_t = terms
    h = 1e-5
    np.testing.assert_allclose(d_eta, (ll(eta + h, theta) - ll(eta - h, theta)) / (2 * h),
                               rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(d_t, (ll(eta, theta + h) - ll(eta, theta - h)) / (2 * h),
                               rtol=1e-5, atol=1e-7)
    h = 1e-3
    np.testing.assert_allclose(
        d_eta2, (ll(eta + h, theta) - 2 * ll(eta, theta) + ll(eta - h, theta)) / h**2,
        rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(
        d_t2, (ll(eta, theta + h) - 2 * ll(eta, theta) + ll(eta, theta - h)) / h**2,
        rtol=1e-3, atol=1e-4)
    cross = (ll(eta + h, theta + h) - ll(eta + h, theta - h) - ll(eta - h, theta + h)
             + ll(eta - h, theta - h)) / (4 * h**2)
    np.testing.assert_allclose(d_eta_t, cross, rtol=1e-3, atol=1e-4)


def _assert_dask_fit_equals_in_memory_fit(expert, X, y, names):
    """Ten plain EM iterations from one random start, on a dask cluster and in memory."""
    pytest.importorskip("distributed")
    da = pytest.importorskip("dask.array")
    from distributed import Client, LocalCluster

    params = dict(max_iter=10, tol=0.0, n_init=1, acceleration=None, random_state=0,
                  init_params="random")
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                      dashboard_address=":0", silence_logs=40) as cluster, Client(cluster):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            memory = MixtureOfExpertsRegressor(2, expert=expert, **params).fit(X, y)
            chunked = MixtureOfExpertsRegressor(2, expert=expert, **params)
            chunked.fit(da.from_array(X, chunks=(150, X.shape[1])), da.from_array(y, chunks=150))
    for name in names:
        np.testing.assert_allclose(getattr(chunked, name), getattr(memory, name),
                                   rtol=1e-8, atol=1e-10)


def test_nb_is_registered_by_name():
    family = make_family("negative_binomial", 2)
    assert isinstance(family, NegativeBinomialExperts)
    assert family.accepts_offset and family.positive_only
    assert family.dispersion_labels == ("size",)


def test_nb_log_prob_matches_scipy_stats():
    X, y, _, _, _ = _nb_one_hot()
    family = NegativeBinomialExperts(K)
    params = {"coef": NB_COEF, "size": NB_SIZE}
    offset = np.linspace(-0.5, 0.5, N)
    got = family.log_prob(X, y, params, offset)
    mean = family.mean(X, params, offset)
    r = NB_SIZE[:, None]
    expected = stats.nbinom.logpmf(y[None], r, r / (r + mean))
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    dist = family.distribution(mean, r)
    np.testing.assert_allclose(dist.logpmf(y[None]), expected, rtol=1e-12)
    np.testing.assert_allclose(dist.var(), mean + mean**2 / r, rtol=1e-12)


def test_nb_refuses_negative_counts():
    X, y, _, _, _ = _nb_one_hot()
    y[0] = -1.0
    with pytest.raises(ValueError, match="Negative-binomial experts need non-negative"):
        MixtureOfExpertsRegressor(2, expert="negative_binomial").fit(X, y)


def test_nb_one_expert_equals_direct_maximum_likelihood_with_exposure():
    X, rng = _design(2, 2000)
    exposure = rng.uniform(0.5, 3.0, size=len(X))
    y = _nb_draw(rng, 0.7 + X @ [0.5, -0.3] + np.log(exposure), 2.5)
    model = MixtureOfExpertsRegressor(1, expert="negative_binomial", tol=1e-12,
                                      max_iter=2000, acceleration=None)
    model.fit(X, y, exposure=exposure)
    coef, size = _nb_direct_fit(X, y, offset=np.log(exposure))
    np.testing.assert_allclose(model.expert_intercept_[0], coef[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.expert_coef_[0], coef[1:], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.expert_size_[0], size, rtol=1e-5)
    np.testing.assert_allclose(
        model.predict(X, exposure=exposure), np.exp(coef[0] + X @ coef[1:]) * exposure,
        rtol=1e-5)


def test_nb_one_hot_m_step_equals_weighted_maximum_likelihood():
    X, y, W, labels, weights = _nb_one_hot()
    new = NegativeBinomialExperts(K).m_step(X, y, W)
    for k in range(K):
        rows = labels == k
        coef, size = _nb_direct_fit(X[rows], y[rows], weights[rows])
        np.testing.assert_allclose(new["coef"][k], coef, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(new["size"][k], size, rtol=1e-6)


def test_nb_integer_weights_equal_repeated_rows_in_the_m_step():
    X, y, _, _, weights = _nb_one_hot()
    rng = np.random.default_rng(5)
    W = rng.dirichlet(np.ones(K), size=N).T * weights
    reps = weights.astype(int)
    a = NegativeBinomialExperts(K, alpha=0.5).m_step(X, y, W)
    b = NegativeBinomialExperts(K, alpha=0.5).m_step(
        np.repeat(X, reps, axis=0), np.repeat(y, reps), np.repeat(W / weights, reps, axis=1))
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-8, atol=1e-10)


def test_nb_integer_weights_equal_repeated_rows_in_the_fit():
    X, y, _, _, weights = _nb_one_hot()
    reps = weights.astype(int)
    params = dict(random_state=0, init_params="kmeans", n_init=1, tol=1e-10, max_iter=3000)
    a = MixtureOfExpertsRegressor(2, expert="negative_binomial", **params)
    a.fit(X, y, sample_weight=weights)
    b = MixtureOfExpertsRegressor(2, expert="negative_binomial", **params)
    b.fit(np.repeat(X, reps, axis=0), np.repeat(y, reps))
    np.testing.assert_allclose(a.objective_, b.objective_, rtol=1e-8)
    # the likelihood is flat in the size: EM stops where rounding has moved it a little
    np.testing.assert_allclose(a.expert_size_, b.expert_size_, rtol=1e-3)


def test_nb_em_ascent():
    X, y, _, _, _ = _nb_one_hot()
    model = MixtureOfExpertsRegressor(3, expert="negative_binomial", gate_alpha=0.1,
                                      expert_alpha=0.1, random_state=0)
    values = assert_log_likelihood_increasing(model, X, y, 40)
    assert np.all(np.isfinite(values))


def _planted_nb(n=5000, seed=7):
    X, rng = _design(seed, n)
    gate = np.array([[0.0, 0.0, 0.0], [0.0, 2.5, 0.0], [0.0, 0.0, 2.5]])
    logits = gate[:, 0] + X @ gate[:, 1:].T
    prob = np.exp(logits - logits.max(axis=1, keepdims=True))
    prob /= prob.sum(axis=1, keepdims=True)
    labels = (rng.uniform(size=n)[:, None] > np.cumsum(prob, axis=1)).sum(axis=1)
    eta = NB_COEF[labels, 0] + np.einsum("id,id->i", X, NB_COEF[labels, 1:])
    return X, _nb_draw(rng, eta, NB_SIZE[labels])


@pytest.fixture(scope="module")
def planted_nb():
    X, y = _planted_nb()
    model = MixtureOfExpertsRegressor(3, expert="negative_binomial", random_state=0)
    return X, y, model.fit(X, y)


def test_nb_recovers_planted_experts(planted_nb):
    _, _, model = planted_nb
    order = np.argsort(model.expert_intercept_)
    coef = np.column_stack([model.expert_intercept_, model.expert_coef_])[order]
    assert np.max(np.abs(coef - NB_COEF)) < 0.05, coef - NB_COEF
    relative = np.abs(model.expert_size_[order] / NB_SIZE - 1.0)
    assert np.max(relative) < 0.2, relative
    trace = model.objective_trace_
    assert_monotone(trace, rtol=1e-12)


def test_nb_beats_poisson_by_bic_on_overdispersed_counts(planted_nb):
    X, y, model = planted_nb
    poisson = MixtureOfExpertsRegressor(3, expert="poisson", random_state=0).fit(X, y)
    assert model.bic(X, y) < poisson.bic(X, y) - 100


def test_nb_standard_errors_summary_and_export(planted_nb):
    X, y, model = planted_nb
    se = model.standard_errors(X, y)
    assert np.all(np.isfinite(se.se)) and np.all(se.se > 0)
    assert ("expert", 0, "size") in se.names
    text = model.summary(X, y)
    assert "size" in text and "Expert 2" in text
    from skmoe import export_text

    assert "size" in export_text(model)
    # the standard errors are of the right size: the planted truth within 4 of them
    order = np.argsort(model.expert_intercept_)
    names = se.names
    for rank, k in enumerate(order):
        i = names.index(("expert", k, "(Intercept)"))
        assert abs(se.estimate[i] - NB_COEF[rank, 0]) < 4 * se.se[i]


def test_nb_quantiles_and_draws_are_negative_binomial(planted_nb):
    X, _, model = planted_nb
    quantiles = model.predict_quantiles(X[:20], [0.1, 0.5, 0.9])
    assert np.all(quantiles == np.round(quantiles)) and np.all(np.diff(quantiles, axis=1) >= 0)
    draws = model.sample_y(X[:20], 5, random_state=0)
    assert draws.shape == (20, 5) and np.all(draws == np.round(draws)) and np.all(draws >= 0)


def test_nb_information_terms_match_finite_differences():
    rng = np.random.default_rng(3)
    family = NegativeBinomialExperts(2)
    y = rng.poisson(3.0, size=30).astype(float)
    eta = rng.normal(1.0, 0.3, size=(2, 30))
    size = np.array([2.0, 7.0])
    d_eta, d_eta2, d_r, d_r2, d_eta_r = family.information_terms(y, eta, {"size": size})

    def ll(e, r):
        return family.derivatives(y, e, {"size": r}, order=0)[0]

    _assert_information_terms(ll, eta, size, (d_eta, d_eta2, d_r, d_r2, d_eta_r))


def test_nb_partial_fit_approaches_the_fit(planted_nb):
    X, y, model = planted_nb
    online = MixtureOfExpertsRegressor(3, expert="negative_binomial", random_state=0)
    for _ in range(3):
        for rows in np.array_split(np.arange(len(y)), 10):
            online.partial_fit(X[rows], y[rows])
    gap = model.score_samples(X, y).mean() - online.score_samples(X, y).mean()
    assert gap < 0.02, gap


def test_nb_dask_fit_equals_in_memory_fit():
    X, y, _, _, _ = _nb_one_hot()
    _assert_dask_fit_equals_in_memory_fit(
        "negative_binomial", X, y,
        ("expert_coef_", "expert_intercept_", "expert_size_", "gate_coef_"))


def test_nb_log_density_reference_by_hand():
    # one value by hand: r=2, mu=3, y=4
    family = NegativeBinomialExperts(1)
    value = family.derivatives(np.array([4.0]), np.log([[3.0]]), {"size": np.array([2.0])},
                               order=0)[0][0, 0]
    expected = (gammaln(6) - gammaln(2) - gammaln(5) + 2 * np.log(2 / 5) + 4 * np.log(3 / 5))
    np.testing.assert_allclose(value, expected, rtol=1e-14)


# ------------------------------------------------------------------------- Student t
T_COEF = np.array([[-2.0, 1.0, -0.5], [0.0, -1.0, 0.5], [2.0, 0.5, 1.0]])
T_SCALE = np.array([0.3, 0.5, 0.4])
T_DF = np.array([2.5, 4.0, 3.0])


def _t_one_hot(seed=11):
    X, rng = _design(seed)
    labels = np.arange(N) % K
    y = (T_COEF[labels, 0] + np.einsum("id,id->i", X, T_COEF[labels, 1:])
         + T_SCALE[labels] * rng.standard_t(T_DF[labels]))
    weights = rng.integers(1, 4, size=N).astype(float)
    W = np.zeros((K, N))
    W[labels, np.arange(N)] = weights
    return X, y, W, labels, weights


def _t_negative_log_lik(theta, X, y, w):
    """Minus the weighted t log-likelihood in (intercept, coef, log s, log nu) and its
    gradient (written from the density, not from skmoe)."""
    coef, s, nu = theta[:-2], np.exp(theta[-2]), np.exp(theta[-1])
    r = y - coef[0] - X @ coef[1:]
    ll = stats.t.logpdf(r, nu, scale=s)
    z = r**2 / (nu * s**2)
    d_eta = (nu + 1.0) * r / (nu * s**2 + r**2)
    d_log_s = -1.0 + (nu + 1.0) * z / (1.0 + z)
    d_nu = (0.5 * digamma(0.5 * (nu + 1)) - 0.5 * digamma(0.5 * nu) - 0.5 / nu
            - 0.5 * np.log1p(z) + 0.5 * (nu + 1) * z / (nu * (1 + z)))
    grad = np.concatenate([[w @ d_eta], X.T @ (w * d_eta), [w @ d_log_s], [nu * (w @ d_nu)]])
    return -(w @ ll), -grad


def _t_direct_fit(X, y, w=None):
    w = np.ones(len(y)) if w is None else w
    start = np.zeros(X.shape[1] + 3)
    start[0] = np.median(y)
    start[-2] = np.log(np.std(y))
    start[-1] = np.log(5.0)
    result = optimize.minimize(_t_negative_log_lik, start, args=(X, y, w), jac=True,
                               method="BFGS", options={"gtol": 1e-9, "maxiter": 10000})
    theta = result.x
    for _ in range(5):  # Newton polish on a finite-difference Hessian of the gradient
        grad = _t_negative_log_lik(theta, X, y, w)[1]
        h = 1e-6
        hess = np.array([(_t_negative_log_lik(theta + h * e, X, y, w)[1]
                          - _t_negative_log_lik(theta - h * e, X, y, w)[1]) / (2 * h)
                         for e in np.eye(theta.size)])
        theta = theta - np.linalg.solve(0.5 * (hess + hess.T), grad)
    return theta[:-2], np.exp(theta[-2]), np.exp(theta[-1])


def test_t_is_registered_by_name():
    family = make_family("student_t", 2)
    assert isinstance(family, StudentTExperts)
    assert family.dispersion_keys == ("scale", "df")
    assert StudentTExperts(df=4.0).dispersion_keys == ("scale",)


def test_t_log_prob_matches_scipy_stats():
    X, y, _, _, _ = _t_one_hot()
    params = {"coef": T_COEF, "scale": T_SCALE, "df": T_DF}
    got = StudentTExperts(K).log_prob(X, y, params)
    mean = StudentTExperts(K).mean(X, params)
    expected = stats.t.logpdf(y[None], T_DF[:, None], loc=mean, scale=T_SCALE[:, None])
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    fixed = StudentTExperts(K, df=3.0).log_prob(X, y, {"coef": T_COEF, "scale": T_SCALE})
    np.testing.assert_allclose(
        fixed, stats.t.logpdf(y[None], 3.0, loc=mean, scale=T_SCALE[:, None]), rtol=1e-12)


def test_t_one_expert_equals_direct_maximum_likelihood():
    X, rng = _design(12, 2000)
    y = 1.0 + X @ [0.5, -1.0] + 0.7 * rng.standard_t(4.0, size=len(X))
    model = MixtureOfExpertsRegressor(1, expert="student_t", tol=1e-13, max_iter=5000,
                                      acceleration=None).fit(X, y)
    coef, scale, df = _t_direct_fit(X, y)
    np.testing.assert_allclose(model.expert_intercept_[0], coef[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.expert_coef_[0], coef[1:], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.expert_scale_[0], scale, rtol=1e-5)
    np.testing.assert_allclose(model.expert_df_[0], df, rtol=1e-5)


def test_t_one_hot_m_step_equals_weighted_maximum_likelihood():
    X, y, W, labels, weights = _t_one_hot()
    new = StudentTExperts(K).m_step(X, y, W)
    for k in range(K):
        rows = labels == k
        coef, scale, df = _t_direct_fit(X[rows], y[rows], weights[rows])
        np.testing.assert_allclose(new["coef"][k], coef, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(new["scale"][k], scale, rtol=1e-6)
        np.testing.assert_allclose(new["df"][k], df, rtol=1e-6)


def test_t_integer_weights_equal_repeated_rows_in_the_m_step():
    X, y, _, _, weights = _t_one_hot()
    rng = np.random.default_rng(15)
    W = rng.dirichlet(np.ones(K), size=N).T * weights
    reps = weights.astype(int)
    for df in (None, 3.0):
        a = StudentTExperts(K, alpha=0.5, df=df).m_step(X, y, W)
        b = StudentTExperts(K, alpha=0.5, df=df).m_step(
            np.repeat(X, reps, axis=0), np.repeat(y, reps),
            np.repeat(W / weights, reps, axis=1))
        for key in a:
            np.testing.assert_allclose(a[key], b[key], rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("df", [None, 3.0])
def test_t_em_ascent(df):
    X, y, _, _, _ = _t_one_hot()
    model = MixtureOfExpertsRegressor(3, expert=StudentTExperts(df=df), gate_alpha=0.1,
                                      expert_alpha=0.1, random_state=0)
    values = assert_log_likelihood_increasing(model, X, y, 40)
    assert np.all(np.isfinite(values))


def _planted_t(n=5000, seed=17):
    X, rng = _design(seed, n)
    gate = np.array([[0.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 3.0]])
    logits = gate[:, 0] + X @ gate[:, 1:].T
    prob = np.exp(logits - logits.max(axis=1, keepdims=True))
    prob /= prob.sum(axis=1, keepdims=True)
    labels = (rng.uniform(size=n)[:, None] > np.cumsum(prob, axis=1)).sum(axis=1)
    y = (T_COEF[labels, 0] + np.einsum("id,id->i", X, T_COEF[labels, 1:])
         + T_SCALE[labels] * rng.standard_t(T_DF[labels]))
    return X, y


@pytest.fixture(scope="module")
def planted_t():
    X, y = _planted_t()
    model = MixtureOfExpertsRegressor(3, expert="student_t", random_state=0)
    return X, y, model.fit(X, y)


def test_t_recovers_planted_experts(planted_t):
    _, _, model = planted_t
    order = np.argsort(model.expert_intercept_)
    coef = np.column_stack([model.expert_intercept_, model.expert_coef_])[order]
    assert np.max(np.abs(coef - T_COEF)) < 0.05, coef - T_COEF
    relative = np.abs(model.expert_df_[order] / T_DF - 1.0)
    assert np.max(relative) < 0.2, relative
    np.testing.assert_allclose(model.expert_scale_[order], T_SCALE, rtol=0.1)
    trace = model.objective_trace_
    assert_monotone(trace, rtol=1e-12)


def _regimes_with_outliers(n=2000, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2, 2, n)
    second = rng.uniform(size=n) < 1 / (1 + np.exp(-3 * x))
    y = np.where(second, 1 + 2 * x, -1 - x) + 0.3 * rng.normal(size=n)
    outlier = rng.uniform(size=n) < 0.05
    y[outlier] = rng.uniform(15, 30, outlier.sum())
    return x[:, None], y, np.array([[-1.0, -1.0], [1.0, 2.0]])


def test_t_experts_resist_gross_outliers_where_gaussian_ones_do_not():
    X, y, truth = _regimes_with_outliers()
    errors = {}
    for expert in ("gaussian", "student_t"):
        model = MixtureOfExpertsRegressor(2, expert=expert, random_state=0).fit(X, y)
        order = np.argsort(model.expert_coef_[:, 0])
        coef = np.column_stack([model.expert_intercept_, model.expert_coef_])[order]
        errors[expert] = np.max(np.abs(coef - truth))
    assert errors["student_t"] < 0.1, errors
    assert errors["gaussian"] > 0.5, errors


def test_t_predictive_methods_use_the_t_distribution(planted_t):
    X, y, model = planted_t
    gate = model.predict_gate(X[:30]).T
    mean = model.predict_experts(X[:30]).T
    density = np.einsum("ki,ki->i", gate, stats.t.pdf(
        y[None, :30], model.expert_df_[:, None], loc=mean,
        scale=model.expert_scale_[:, None]))
    np.testing.assert_allclose(model.score_samples(X[:30], y[:30]), np.log(density),
                               rtol=1e-10)
    quantiles = model.predict_quantiles(X[:30], [0.1, 0.5, 0.9])
    cdf = np.einsum("ki,kiq->iq", gate, stats.t.cdf(
        quantiles[None], model.expert_df_[:, None, None], loc=mean[:, :, None],
        scale=model.expert_scale_[:, None, None]))
    np.testing.assert_allclose(cdf, np.broadcast_to([0.1, 0.5, 0.9], cdf.shape), atol=1e-9)
    draws = model.sample_y(X[:30], 4, random_state=0)
    assert draws.shape == (30, 4) and np.all(np.isfinite(draws))


def test_t_quantiles_with_heavy_tails_and_no_variance():
    X, y, _, _, _ = _t_one_hot()
    model = MixtureOfExpertsRegressor(2, expert=StudentTExperts(df=1.5),
                                      random_state=0).fit(X, y)
    assert not hasattr(model, "expert_df_")
    quantiles = model.predict_quantiles(X[:10], [0.05, 0.5, 0.95])
    assert np.all(np.isfinite(quantiles)) and np.all(np.diff(quantiles, axis=1) > 0)


def test_t_standard_errors_and_summary(planted_t):
    X, y, model = planted_t
    se = model.standard_errors(X, y)
    assert np.all(np.isfinite(se.se)) and np.all(se.se > 0)
    assert ("expert", 0, "scale") in se.names
    assert "scale" in model.summary(X, y)
    from skmoe import export_text

    text = export_text(model)
    assert "scale" in text and "df" in text


def test_t_information_terms_match_finite_differences():
    rng = np.random.default_rng(4)
    family = StudentTExperts(2)
    y = rng.normal(size=30) * 2
    eta = rng.normal(size=(2, 30))
    scale, df = np.array([0.7, 1.5]), np.array([3.0, 8.0])
    d_eta, d_eta2, d_t, d_t2, d_eta_t = family.information_terms(
        y, eta, {"scale": scale, "df": df})
    # the scale's terms (those of df: the finite-difference Hessian test below)
    d_s, d_s2, d_eta_s = d_t[0], d_t2[0, 0], d_eta_t[0]

    def ll(e, s):
        return stats.t.logpdf(y, df[:, None], loc=e, scale=s[:, None])

    _assert_information_terms(ll, eta, scale, (d_eta, d_eta2, d_s, d_s2, d_eta_s))


def test_t_partial_fit_approaches_the_fit(planted_t):
    X, y, model = planted_t
    online = MixtureOfExpertsRegressor(3, expert="student_t", random_state=0)
    for _ in range(3):
        for rows in np.array_split(np.arange(len(y)), 10):
            online.partial_fit(X[rows], y[rows])
    gap = model.score_samples(X, y).mean() - online.score_samples(X, y).mean()
    assert gap < 0.02, gap


def test_t_dask_fit_equals_in_memory_fit():
    X, y, _, _, _ = _t_one_hot()
    _assert_dask_fit_equals_in_memory_fit(
        "student_t", X, y, ("expert_coef_", "expert_intercept_", "expert_scale_", "expert_df_"))


# ---------------------------------------------------------------------- zero inflation
def _zero_inflated_counts(n=5000, share=0.3, seed=21, size=None):
    X, rng = _design(seed, n)
    mean = np.exp(1.0 + X @ [0.5, -0.3])
    if size is None:
        y = rng.poisson(mean).astype(float)
    else:
        y = rng.negative_binomial(size, size / (size + mean)).astype(float)
    y[rng.uniform(size=n) < share] = 0.0
    return X, y


@pytest.mark.parametrize("base, size", [("poisson", None), ("negative_binomial", 3.0)])
def test_zero_inflation_is_preferred_by_bic_and_finds_the_zero_share(base, size):
    X, y = _zero_inflated_counts(size=size)
    zi = MixtureOfExpertsRegressor(2, expert=f"zero_inflated_{base}", gate_features=[],
                                   random_state=0).fit(X, y)
    plain = MixtureOfExpertsRegressor(1, expert=base, random_state=0).fit(X, y)
    assert zi.bic(X, y) < plain.bic(X, y)
    zero = zi._params["experts"]["zero"] > 0.5
    assert zero.sum() == 1
    assert abs(zi.weights_[zero][0] - 0.3) < 0.03, zi.weights_
    np.testing.assert_allclose(zi.expert_intercept_[~zero], 1.0, atol=0.1)
    np.testing.assert_allclose(zi.expert_coef_[~zero][0], [0.5, -0.3], atol=0.1)
    # predict: the mixture mean, the zero component's mean being 0
    mean = np.exp(zi.expert_intercept_[~zero] + X[:5] @ zi.expert_coef_[~zero][0])
    np.testing.assert_allclose(zi.predict(X[:5]), zi.weights_[~zero] * mean, rtol=1e-10)
    # a nonzero count has no mass under the point mass; zeros all of it
    log_prob = zi._family.log_prob(X[:50], y[:50], zi._params["experts"])
    assert np.all(log_prob[zero][0][y[:50] > 0] < -1e299)
    assert np.all(log_prob[zero][0][y[:50] == 0] == 0.0)
    # the mixture density at 0 is share + (1 - share) f(0)
    f0 = np.exp(zi._family.log_prob(X[:5], np.zeros(5), zi._params["experts"])[~zero][0])
    np.testing.assert_allclose(
        np.exp(zi.score_samples(X[:5], np.zeros(5))),
        zi.weights_[zero][0] + zi.weights_[~zero][0] * f0, rtol=1e-10)
    assert zi.bic(X, y) == pytest.approx(
        -2 * zi.log_likelihood_ + (1 + 3 + (size is not None)) * np.log(len(y)), rel=1e-12)


def test_zero_inflation_partial_fit_and_ascent():
    X, y = _zero_inflated_counts(3000, seed=22)
    online = MixtureOfExpertsRegressor(2, expert="zero_inflated_poisson", gate_features=[],
                                       random_state=0)
    for _ in range(2):
        for rows in np.array_split(np.arange(len(y)), 6):
            online.partial_fit(X[rows], y[rows])
    zero = online._params["experts"]["zero"] > 0.5
    assert abs(online.weights_[zero][0] - 0.3) < 0.05
    model = MixtureOfExpertsRegressor(3, expert="zero_inflated_poisson", random_state=0)
    assert_log_likelihood_increasing(model, X, y, 30)
    quantiles = model.predict_quantiles(X[:10], [0.2, 0.5, 0.9])
    assert np.all(np.diff(quantiles, axis=1) >= 0)


def test_t_fixed_df_is_public_and_survives_clone_and_grid_search():
    from sklearn.base import clone
    from sklearn.model_selection import GridSearchCV

    from skmoe import StudentT

    X, y, _, _, _ = _t_one_hot()
    model = MixtureOfExpertsRegressor(3, expert=StudentT(df=4), random_state=0)
    assert model.get_params()["expert__df"] == 4
    copy = clone(model)
    assert isinstance(copy.expert, StudentT) and copy.expert.df == 4
    assert copy.expert is not model.expert
    copy.set_params(expert__df=6)
    assert model.expert.df == 4 and copy.expert.df == 6
    fitted = clone(model).fit(X, y)
    assert not hasattr(fitted, "expert_df_")
    assert "df" not in fitted._params["experts"]
    np.testing.assert_array_equal(fitted._family.degrees_of_freedom(fitted._params["experts"]),
                                  4.0)
    free = MixtureOfExpertsRegressor(3, expert="student_t", random_state=0).fit(X, y)
    assert (free._model.n_parameters(free._params)
            == fitted._model.n_parameters(fitted._params) + 3)
    np.testing.assert_allclose(
        free.bic(X, y) - fitted.bic(X, y),
        -2 * (free.log_likelihood_ - fitted.log_likelihood_) + 3 * np.log(len(y)),
        rtol=1e-10)
    search = GridSearchCV(MixtureOfExpertsRegressor(3, expert=StudentT(), random_state=0,
                                                    max_iter=50),
                          {"expert__df": [2.0, 30.0]}, cv=2).fit(X, y)
    assert search.best_params_["expert__df"] in (2.0, 30.0)
    assert search.best_estimator_.expert.df == search.best_params_["expert__df"]
    with pytest.raises(ValueError, match="df of Student-t experts must be positive"):
        MixtureOfExpertsRegressor(2, expert=StudentT(df=-1)).fit(X, y)
    with pytest.raises(ValueError, match="Invalid parameter"):
        StudentT().set_params(nu=3)


# ------------------------------------------------------------ standard errors, checked
def _finite_difference_information(model, X, y, h=1e-3):
    """Minus the central finite-difference Hessian of the log-likelihood in the parameter
    vector of ``standard_errors`` (gate against expert 0, then per expert its coefficients
    and reported dispersions, none for a point mass), written from ``log_joint``."""
    from skmoe._information import free_parameters

    family, params = model._model.family, model._params
    K = model._model.gate.n_leaves
    dg, de = len(model.gate_features_in_) + 1, len(model.expert_features_in_) + 1
    keys = family.dispersion_labels
    free = free_parameters(family, params["experts"], K, dg, de)
    data = model._predict_data(X, y)
    full = np.concatenate(
        [(params["gate"][0][0][1:] - params["gate"][0][0][0]).ravel()]
        + [np.concatenate([params["experts"]["coef"][k]]
                          + [params["experts"][key][k:k + 1] for key in keys])
           for k in range(K)])

    def log_lik(theta):
        vector = full.copy()
        vector[free] = theta
        gate = np.zeros((K, dg))
        gate[1:] = vector[: (K - 1) * dg].reshape(K - 1, dg)
        experts = {key: np.array(value, dtype=float) for key, value in
                   params["experts"].items()}
        per_expert = vector[(K - 1) * dg:].reshape(K, de + len(keys))
        experts["coef"] = per_expert[:, :de].copy()
        for j, key in enumerate(keys):
            experts[key] = per_expert[:, de + j].copy()
        joint = model._model.log_joint(data, {"gate": [gate[None]], "experts": experts})
        top = joint.max(axis=0)
        return float(np.sum(top + np.log(np.exp(joint - top).sum(axis=0))))

    theta = full[free]
    P = theta.size
    hessian = np.empty((P, P))
    for a in range(P):
        for b in range(a, P):
            ea, eb = np.eye(P)[a] * h, np.eye(P)[b] * h
            hessian[a, b] = hessian[b, a] = (
                log_lik(theta + ea + eb) - log_lik(theta + ea - eb)
                - log_lik(theta - ea + eb) + log_lik(theta - ea - eb)) / (4 * h * h)
    return -hessian, theta


def _assert_information_matches(model, X, y):
    from skmoe._information import free_parameters, observed_information

    info_fd, theta = _finite_difference_information(model, X, y)
    K = model._model.gate.n_leaves
    dg, de = len(model.gate_features_in_) + 1, len(model.expert_features_in_) + 1
    free = free_parameters(model._model.family, model._params["experts"], K, dg, de)
    info = observed_information(model._model, model._predict_data(X, y), model._params)
    info = info[np.ix_(free, free)]
    se = model.standard_errors(X, y)
    np.testing.assert_allclose(se.estimate, theta, rtol=1e-12)
    scale = np.sqrt(np.outer(np.diag(info), np.diag(info)))
    assert np.max(np.abs(info - info_fd) / scale) < 1e-4, np.max(np.abs(info - info_fd) / scale)
    np.testing.assert_allclose(se.se, np.sqrt(np.diag(np.linalg.inv(info_fd))), rtol=1e-4)
    return se


@pytest.mark.parametrize("expert", ["student_t", "fixed"])
def test_t_standard_errors_with_df_match_a_finite_difference_hessian(expert):
    from skmoe import StudentT

    X, rng = _design(31, 800)
    X = X[:, :1]
    first = rng.uniform(size=800) < 1.0 / (1.0 + np.exp(2.0 * X[:, 0]))
    y = np.where(first, 1.0 + X[:, 0], -1.0 - 0.5 * X[:, 0]) + np.where(
        first, 0.3 * rng.standard_t(3.0, 800), 0.5 * rng.standard_t(6.0, 800))
    model = MixtureOfExpertsRegressor(
        2, expert=StudentT(df=4.0) if expert == "fixed" else "student_t", gate_alpha=0.0,
        random_state=0).fit(X, y)
    se = _assert_information_matches(model, X, y)
    labels = [name for part, k, name in se.names if part == "expert" and k == 0]
    assert labels == (["(Intercept)", "x0", "scale"] + (["df"] if expert != "fixed" else []))
    assert se.dispersions.shape == (2, 1 if expert == "fixed" else 2)
    rows = [line.split()[0] for line in model.summary(X, y).splitlines() if line.strip()]
    assert ("df" in rows) == (expert != "fixed") and "scale" in rows


@pytest.mark.parametrize("base, size", [("poisson", None), ("negative_binomial", 3.0)])
def test_zero_inflated_standard_errors_match_a_finite_difference_hessian(base, size):
    X, y = _zero_inflated_counts(1500, seed=23, size=size)
    model = MixtureOfExpertsRegressor(2, expert=f"zero_inflated_{base}", gate_features=[0],
                                      gate_alpha=0.0, random_state=0).fit(X, y)
    se = _assert_information_matches(model, X, y)
    zero = int(np.flatnonzero(model._params["experts"]["zero"] > 0.5)[0])
    # the point mass has no expert parameters; its gate output (the zero share) has two
    assert not any(part == "expert" and k == zero for part, k, _ in se.names)
    assert np.isnan(se.expert_intercept[zero]) and np.all(np.isfinite(se.gate_coef))
    assert [name for part, _, name in se.names if part == "gate"] == ["(Intercept)", "x0"]
    if size is not None:
        assert ("expert", 1 - zero, "size") in se.names
    text = model.summary(X, y)
    assert f"expert {zero} (point mass at zero)" in text and "zero share = " in text
    assert any(line.split()[:1] == ["size"] for line in text.splitlines()) == (size is not None)


@pytest.mark.parametrize("base", ["poisson", "negative_binomial"])
def test_zero_inflated_one_hot_m_step_equals_weighted_maximum_likelihood(base):
    from skmoe._families import ZeroInflatedExperts

    X, y = _zero_inflated_counts(1500, seed=24, size=None if base == "poisson" else 3.0)
    rng = np.random.default_rng(25)
    weights = rng.integers(1, 4, size=len(y)).astype(float)
    # one-hot: the point mass (component 1) takes some of the zeros, the counts the rest
    to_zero = (y == 0) & (rng.uniform(size=len(y)) < 0.5)
    W = np.zeros((2, len(y)))
    W[1, to_zero] = weights[to_zero]
    W[0, ~to_zero] = weights[~to_zero]
    family = ZeroInflatedExperts(base, 2)
    start = {"coef": np.zeros((2, 3)), "zero": np.array([0.0, 1.0])}
    if base != "poisson":
        start["size"] = np.ones(2)
    new = family.m_step(X, y, W, start)
    rows = ~to_zero
    if base == "poisson":
        from sklearn.linear_model import PoissonRegressor

        ref = PoissonRegressor(alpha=0.0, solver="newton-cholesky", tol=1e-12, max_iter=1000)
        ref.fit(X[rows], y[rows], sample_weight=weights[rows])
        coef = np.concatenate([[ref.intercept_], ref.coef_])
    else:
        coef, size = _nb_direct_fit(X[rows], y[rows], weights[rows])
        np.testing.assert_allclose(new["size"][0], size, rtol=1e-6)
        assert new["size"][1] == 1.0
    np.testing.assert_allclose(new["coef"][0], coef, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(new["coef"][1], 0.0)
    np.testing.assert_array_equal(new["zero"], [0.0, 1.0])
