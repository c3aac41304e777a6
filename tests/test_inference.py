"""Predictive distributions, model selection, standard errors, label order."""

import warnings

import numpy as np
import pytest
from scipy import integrate, stats
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV

from skmoe import (
    DegenerateFitWarning,
    HierarchicalMixtureOfExpertsRegressor,
    MixtureOfExpertsClassifier,
    MixtureOfExpertsRegressor,
    select_n_experts,
)
from skmoe.datasets import load_npreg, load_tone, make_moe_regression


@pytest.fixture(scope="module")
def tone_model():
    X, y = load_tone(return_X_y=True)
    return MixtureOfExpertsRegressor(2, gate_alpha=0.0, random_state=0).fit(X, y), X, y


def _density(model, x, grid):
    gate = model.predict_gate(x[None])[0]
    means = model.predict_experts(x[None])[0]
    sd = np.sqrt(model.expert_variance_)
    return (gate * stats.norm.pdf(grid[:, None], means, sd)).sum(axis=1)


def test_moments_and_quantiles_against_numerical_integration(tone_model):
    model, X, _ = tone_model
    x = X[[10, 75, 140]]
    mean, std = model.predict(x, return_std=True)
    levels = [0.01, 0.1, 0.5, 0.9, 0.99]
    q = model.predict_quantiles(x, levels)
    for i in range(3):

        def pdf(t, i=i):
            return _density(model, x[i], np.atleast_1d(t))[0]

        m1 = integrate.quad(lambda t: t * pdf(t), -5, 8, limit=400, epsabs=1e-13)[0]
        m2 = integrate.quad(lambda t: t * t * pdf(t), -5, 8, limit=400, epsabs=1e-13)[0]
        assert mean[i] == pytest.approx(m1, abs=1e-8)
        assert std[i] == pytest.approx(np.sqrt(m2 - m1**2), abs=1e-8)
        for level, value in zip(levels, q[i]):
            mass = integrate.quad(pdf, -5, value, limit=400, epsabs=1e-13)[0]
            assert mass == pytest.approx(level, abs=1e-8)
    interval = model.predict_interval(x, coverage=0.8)
    np.testing.assert_allclose(interval, q[:, [1, 3]], rtol=1e-12)


def test_moments_and_quantiles_against_monte_carlo(tone_model):
    model, X, _ = tone_model
    x = X[[20, 100]]
    draws = model.sample_y(x, n_samples=1_000_000, random_state=0)
    mean, std = model.predict(x, return_std=True)
    standard_error = std / np.sqrt(draws.shape[1])
    assert np.all(np.abs(draws.mean(axis=1) - mean) < 5 * standard_error)
    assert np.all(np.abs(draws.std(axis=1) - std) < 5 * standard_error)
    levels = np.array([0.05, 0.5, 0.95])
    q = model.predict_quantiles(x, levels)
    coverage = (draws[:, :, None] <= q[:, None, :]).mean(axis=1)
    assert np.all(np.abs(coverage - levels) < 5 * np.sqrt(levels * (1 - levels) / 1e6))


def test_discrete_quantiles_and_draws_for_poisson_experts():
    x, y = load_npreg(target="yp", return_X_y=True)
    model = MixtureOfExpertsRegressor(2, expert="poisson", random_state=0).fit(x, y)
    q = model.predict_quantiles(x[:5], [0.1, 0.5, 0.9])
    assert np.all(q == np.round(q))
    gate, means = model.predict_gate(x[:5]), model.predict_experts(x[:5])
    for i in range(5):
        cdf = lambda t, i=i: (gate[i] * stats.poisson.cdf(t, means[i])).sum()  # noqa: E731
        for level, value in zip([0.1, 0.5, 0.9], q[i]):
            assert cdf(value) >= level > cdf(value - 1)
    draws = model.sample_y(x[:5], 200_000, random_state=1)
    np.testing.assert_allclose(draws.mean(axis=1), model.predict(x[:5]), rtol=0.02)


def test_modes_of_a_bimodal_predictive_density(tone_model):
    model, X, _ = tone_model
    x = X[[0, 149]]
    modes, density = model.predict_modes(x)
    for i in range(2):
        grid = np.linspace(0.5, 3.0, 200_001)
        pdf = _density(model, x[i], grid)
        peaks = grid[1:-1][(pdf[1:-1] > pdf[:-2]) & (pdf[1:-1] > pdf[2:])]
        found = np.sort(modes[i][np.isfinite(modes[i])])
        np.testing.assert_allclose(found, np.sort(peaks), atol=2e-5)
        np.testing.assert_allclose(
            density[i][np.isfinite(density[i])],
            _density(model, x[i], modes[i][np.isfinite(modes[i])]),
            rtol=1e-10,
        )


def test_classifier_draws_follow_predict_proba():
    X, y = load_tone(return_X_y=True)
    labels = np.where(y > 1.5, "high", "low")
    model = MixtureOfExpertsClassifier(2, random_state=0).fit(X, labels)
    draws = model.sample_y(X[:3], 100_000, random_state=0)
    proba = model.predict_proba(X[:3])
    np.testing.assert_allclose((draws == model.classes_[1]).mean(axis=1), proba[:, 1], atol=0.01)


def _log_likelihood_at(model, X, y, theta):
    """Observed log-likelihood at a parameter vector in the standard_errors() order."""
    K = model.n_experts
    dg = len(model.gate_features_in_) + 1
    gate = np.zeros((K, dg))
    gate[1:] = theta[: (K - 1) * dg].reshape(K - 1, dg)
    rest = theta[(K - 1) * dg :].reshape(K, -1)
    de = len(model.expert_features_in_) + 1
    experts = {"coef": rest[:, :de].copy()}
    if model.expert == "gaussian":
        experts["variance"] = rest[:, de].copy()
    params = {"gate": [gate[None]], "experts": experts}
    data = model._predict_data(X, y)
    return float(model._model.e_step(data, params)[0].sum())


@pytest.mark.parametrize("expert", ["gaussian", "poisson"])
def test_observed_information_matches_a_finite_difference_hessian(expert):
    if expert == "gaussian":
        X, y = load_tone(return_X_y=True)
    else:
        X, y = load_npreg(target="yp", return_X_y=True)
    model = MixtureOfExpertsRegressor(
        2, expert=expert, gate_alpha=0.0, tol=1e-12, max_iter=5000, random_state=0
    ).fit(X, y)
    result = model.standard_errors(X, y)
    theta = result.estimate
    P = theta.size
    h = 1e-4 * np.maximum(np.abs(theta), 1e-2)
    hessian = np.zeros((P, P))
    for a in range(P):
        for b in range(P):

            def shifted(sa, sb, a=a, b=b):
                t = theta.copy()
                t[a] += sa * h[a]
                t[b] += sb * h[b]
                return _log_likelihood_at(model, X, y, t)

            hessian[a, b] = (shifted(1, 1) - shifted(1, -1) - shifted(-1, 1) + shifted(-1, -1)) / (
                4 * h[a] * h[b]
            )
    se_numeric = np.sqrt(np.diag(np.linalg.inv(-hessian)))
    np.testing.assert_allclose(result.se, se_numeric, rtol=1e-4)


def test_standard_errors_match_flexmix_refit(reference_fits):
    # flexmix: refit(flexmix(yp ~ x, k=2, model=FLXMRglm(family="poisson"),
    #                        concomitant=FLXPmultinom(~x)), method="optim")
    reference = reference_fits["standard_errors"][0]
    x, y = load_npreg(target="yp", return_X_y=True)
    model = MixtureOfExpertsRegressor(
        2, expert="poisson", gate_alpha=0.0, tol=1e-12, max_iter=5000, n_init=5, random_state=0
    ).fit(x, y)
    result = model.standard_errors(x, y)
    # match our experts to flexmix's A and B by their slopes
    order = np.argsort(model.expert_coef_[:, 0])  # A has the negative slope
    for ours, theirs in zip(order, ["A", "B"]):
        se = reference["experts"][theirs]["se"]
        assert result.expert_intercept[ours] == pytest.approx(se["(Intercept)"], rel=0.02)
        assert result.expert_coef[ours, 0] == pytest.approx(se["x"], rel=0.02)
    gate_se = reference["gate_B_vs_A"]["se"]
    assert result.gate_intercept[0] == pytest.approx(gate_se["(Intercept)"], rel=0.02)
    assert result.gate_coef[0, 0] == pytest.approx(gate_se["x"], rel=0.02)
    text = model.summary(x, y)
    assert "Gate: expert 1 against expert 0" in text and "Std. Error" in text

    # an aliased column (2 x + 1): its standard errors are NaN, with a warning naming
    # them, and every other standard error and estimate is that of the model without it
    X_aliased = np.column_stack([x, 2.0 * x[:, 0] + 1.0])
    aliased = MixtureOfExpertsRegressor(
        2, expert="poisson", gate_alpha=0.0, tol=1e-12, max_iter=5000, n_init=5, random_state=0
    ).fit(X_aliased, y)
    assert aliased.log_likelihood_ == pytest.approx(model.log_likelihood_, rel=1e-10)
    with pytest.warns(UserWarning, match=r"standard errors are NaN: \['gate 1 x1', "
                      r"'expert 0 x1', 'expert 1 x1'\]"):
        wide = aliased.standard_errors(X_aliased, y)
    is_x1 = np.array([name == "x1" for _, _, name in wide.names])
    assert np.all(np.isnan(wide.se[is_x1])) and np.all(np.isnan(wide.estimate[is_x1]))
    # both fits stop at tol=1e-12 along different SQUAREM paths: an objective 1e-10 below
    # the maximum leaves the estimates about its square root, 1e-5, apart
    np.testing.assert_allclose(wide.se[~is_x1], result.se, rtol=1e-5)
    np.testing.assert_allclose(wide.estimate[~is_x1], result.estimate, rtol=1e-5, atol=2e-5)
    with pytest.warns(UserWarning, match="standard errors are NaN"):
        text = aliased.summary(X_aliased, y)
    assert text.count("NA") == 4 * 3  # estimate, std. error, z and p of x1, three times


def _one_hot_data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, size=400)
    dummies = np.eye(2)[rng.integers(0, 2, size=400)]  # OneHotEncoder() without drop
    upper = rng.uniform(size=400) < 1 / (1 + np.exp(-3 * x))
    y = np.where(upper, 2.0 + x, -1.0 - x) + dummies @ [0.5, -0.5] + 0.3 * rng.normal(size=400)
    return np.column_stack([x, dummies]), y


def test_standard_errors_of_aliased_columns_are_nan_with_a_warning():
    # the intercept and both dummies used to get z = 35.5, 17.9 and 12.4 from pinv
    X, y = _one_hot_data()
    settings = {"gate_alpha": 0.0, "gate_features": [0], "tol": 1e-10, "max_iter": 5000,
                "n_init": 3, "random_state": 0}
    model = MixtureOfExpertsRegressor(2, **settings).fit(X, y)
    with pytest.warns(UserWarning, match=r"NaN: \['expert 0 x2', 'expert 1 x2'\]"):
        result = model.standard_errors(X, y)
    assert np.isnan(result.expert_coef[:, 2]).all()
    assert np.all(np.isfinite(result.expert_coef[:, :2]))
    # the identified ones are those of the model without the aliased column
    reduced = MixtureOfExpertsRegressor(2, **settings).fit(X[:, :2], y)
    assert reduced.log_likelihood_ == pytest.approx(model.log_likelihood_, rel=1e-8)
    np.testing.assert_allclose(
        result.se[np.isfinite(result.se)], reduced.standard_errors(X[:, :2], y).se, rtol=1e-4
    )
    # duplicated columns: the second copy is NaN
    X_dup = X[:, [0, 1, 1]]
    dup = MixtureOfExpertsRegressor(2, **settings).fit(X_dup, y)
    with pytest.warns(UserWarning, match="standard errors are NaN"):
        assert np.isnan(dup.standard_errors(X_dup, y).expert_coef[:, 2]).all()


@pytest.mark.parametrize("K", [2, 3, 4])
def test_bic_picks_the_true_number_of_experts(K):
    for seed in range(3):
        X, y = make_moe_regression(3000, 2, K, random_state=100 * K + seed)
        with warnings.catch_warnings():  # surplus experts fit slowly and may collapse
            warnings.simplefilter("ignore", DegenerateFitWarning)
            warnings.simplefilter("ignore", ConvergenceWarning)
            best, scores = select_n_experts(
                MixtureOfExpertsRegressor(random_state=0), X, y, range(1, K + 3)
            )
        assert best.n_experts == K, scores


def test_held_out_log_likelihood_in_grid_search():
    X, y = make_moe_regression(900, 2, 3, random_state=8)
    search = GridSearchCV(
        MixtureOfExpertsRegressor(n_init=2, random_state=0),
        {"n_experts": [1, 2, 3]},
        cv=3,
        scoring=lambda est, X, y: est.score_samples(X, y).mean(),
    )
    assert search.fit(X, y).best_params_["n_experts"] == 3


def test_icl_adds_twice_the_entropy_to_bic(tone_model):
    model, X, y = tone_model
    resp = model.predict_responsibilities(X, y)
    entropy = -np.sum(resp * np.log(resp))
    assert model.icl(X, y) == pytest.approx(model.bic(X, y) + 2 * entropy)


def test_canonical_order_does_not_depend_on_the_start():
    X, y = make_moe_regression(2000, 2, 3, random_state=11)
    fits = [
        MixtureOfExpertsRegressor(3, n_init=2, random_state=seed).fit(X, y) for seed in range(4)
    ]
    best = max(f.log_likelihood_ for f in fits)
    same = [f for f in fits if f.log_likelihood_ > best - 1e-4]
    assert len(same) >= 2
    for other in same[1:]:
        np.testing.assert_allclose(other.expert_coef_, same[0].expert_coef_, atol=1e-3)


def test_align_experts_reorders_to_a_reference():
    X, y = make_moe_regression(1500, 2, 3, random_state=12)
    reference = MixtureOfExpertsRegressor(3, random_state=0).fit(X, y)
    model = MixtureOfExpertsRegressor(3, random_state=0).fit(X, y)
    perm = [2, 0, 1]
    model._params = {
        "gate": [model._params["gate"][0][:, perm]],
        "experts": {k: v[perm] for k, v in model._params["experts"].items()},
    }
    before = model.predict(X)
    model.align_experts(reference)
    np.testing.assert_allclose(model.expert_coef_, reference.expert_coef_)
    np.testing.assert_allclose(model.gate_coef_, reference.gate_coef_)
    np.testing.assert_allclose(model.predict(X), before)


def test_bic_picks_the_depth_of_a_hierarchical_model():
    """Four regimes split by two hyperplanes: a binary tree of depth 2."""
    rng = np.random.default_rng(0)
    X = rng.uniform(-2, 2, size=(3000, 2))
    regime = 2 * (X[:, 0] > 0.2) + (X[:, 1] > -0.3)
    A = np.array([[0.0, 1.0, -1.0], [3.0, -1.0, 0.5], [-2.0, 0.5, 2.0], [1.0, -2.0, -1.5]])
    y = A[regime, 0] + np.einsum("ij,ij->i", A[regime, 1:], X) + 0.3 * rng.normal(size=3000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateFitWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        best, scores = select_n_experts(
            HierarchicalMixtureOfExpertsRegressor(gate_alpha=0.0, random_state=0),
            X, y, [1, 2, 3],
        )
    assert best.depth == 2, scores
    with pytest.raises(ValueError, match="param='n_experts' is not a parameter"):
        select_n_experts(HierarchicalMixtureOfExpertsRegressor(), X, y, [1], param="n_experts")


@pytest.mark.parametrize("criterion", ["bic", "aic", "icl"])
def test_criteria_with_integer_weights_equal_repeated_rows(tone_model, criterion):
    model, X, y = tone_model
    w = np.arange(len(y)) % 3
    weighted = getattr(model, criterion)(X, y, sample_weight=w)
    repeated = getattr(model, criterion)(np.repeat(X, w, axis=0), np.repeat(y, w))
    assert weighted == pytest.approx(repeated, rel=1e-12)
    with pytest.raises(ValueError, match="non-zero|positive sum"):
        getattr(model, criterion)(X, y, sample_weight=np.zeros(len(y)))
