"""flexmix's model structure beyond plain mixtures (issue #17): binomial experts with
trials, shared coefficients and grouped observations, against R's flexmix
(``tests/data/reference_fits_structure.json``), scipy and planted models."""

import json
import os

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.special import logsumexp
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression

from skmoe import (
    HierarchicalMixtureOfExpertsClassifier,
    HierarchicalMixtureOfExpertsRegressor,
    MixtureOfExpertsClassifier,
    MixtureOfExpertsRegressor,
)
from skmoe.datasets import make_moe_regression, make_regional_classification

DATA = os.path.join(os.path.dirname(__file__), "data")


def _reference(fit_id):
    with open(os.path.join(DATA, "reference_fits_structure.json")) as f:
        return next(fit for fit in json.load(f)["fits"] if fit["id"] == fit_id)


def _betablocker():
    d = pd.read_csv(os.path.join(DATA, "betablocker.csv"))
    X = (d["Treatment"] == "Treated").to_numpy(float)[:, None]
    y = np.column_stack([d["Deaths"], d["Total"] - d["Deaths"]]).astype(float)
    return X, y, d["Center"].to_numpy()


def _binomial(n_experts, **kwargs):
    kwargs = {"gate_features": [], "gate_alpha": 0.0, "tol": 1e-10, "max_iter": 3000,
              **kwargs}
    return MixtureOfExpertsRegressor(n_experts, expert="binomial", **kwargs)


def test_binomial_k1_equals_logistic_regression_with_trial_weights():
    # R: glm(cbind(Deaths, Total - Deaths) ~ Treatment, binomial); as sklearn, every row
    # expanded into a success row weighted by s and a failure row weighted by f
    X, y, _ = _betablocker()
    model = _binomial(1).fit(X, y)
    Xe = np.vstack([X, X])
    ye = np.r_[np.ones(len(X)), np.zeros(len(X))]
    lr = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000).fit(
        Xe, ye, sample_weight=np.r_[y[:, 0], y[:, 1]]
    )
    np.testing.assert_allclose(model.expert_intercept_[0], lr.intercept_[0], atol=1e-6)
    np.testing.assert_allclose(model.expert_coef_[0], lr.coef_[0], atol=1e-6)


def test_binomial_score_samples_is_scipy_binom_logpmf():
    # the log-likelihood includes log C(n, s), as R's dbinom
    X, y, _ = _betablocker()
    model = _binomial(1).fit(X, y)
    n = y.sum(axis=1)
    expected = stats.binom.logpmf(y[:, 0], n, model.predict(X))
    np.testing.assert_allclose(model.score_samples(X, y), expected, rtol=1e-12)
    assert model.log_likelihood_ == pytest.approx(expected.sum(), rel=1e-12)


def test_betablocker_k3_reaches_flexmix():
    # R: flexmix(cbind(Deaths, Total - Deaths) ~ Treatment, k = 3, binomial)
    reference = _reference("betablocker_k3")
    X, y, _ = _betablocker()
    model = _binomial(3, init_params="voronoi", n_init=10, random_state=0).fit(X, y)
    assert model.log_likelihood_ >= reference["loglik_mle"] - 1e-3
    assert model.score_samples(X, y).sum() == pytest.approx(model.log_likelihood_, abs=1e-8)
    assert model._n_parameters() == reference["df"]
    coef = np.column_stack([model.expert_intercept_, model.expert_coef_[:, 0]])
    expected = np.array([[c["coef.(Intercept)"], c["coef.TreatmentTreated"]]
                         for c in reference["expert_params"].values()])
    order = np.argsort(coef[:, 0])
    np.testing.assert_allclose(coef[order], expected[np.argsort(expected[:, 0])], atol=1e-3)


def test_binomial_default_fit_runs_with_restarts():
    X, y, _ = _betablocker()
    model = _binomial(3, n_init=3, random_state=0).fit(X, y)  # multistart, squarem
    assert np.isfinite(model.log_likelihood_)
    assert model.log_likelihood_ >= -173.02


def test_binomial_trials_share_the_row_expert_unlike_expanded_bernoulli_rows():
    # a row's trials share its expert: log sum_k pi_k prod_t f_k(t), not the expanded
    # Bernoulli mixture sum_t log sum_k pi_k f_k(t), in which every trial picks its expert
    X, y, _ = _betablocker()
    model = _binomial(2, init_params="voronoi", random_state=0).fit(X, y)
    p = 1.0 / (1.0 + np.exp(-(model.expert_intercept_[:, None]
                               + model.expert_coef_ @ X.T)))  # (K, n)
    log_w = np.log(model.weights_)[:, None]
    s, f = y[:, 0], y[:, 1]
    log_c = stats.binom.logpmf(s, s + f, 0.5) - (s + f) * np.log(0.5)
    row_mixture = logsumexp(log_w + s * np.log(p) + f * np.log1p(-p), axis=0) + log_c
    np.testing.assert_allclose(model.score_samples(X, y), row_mixture, rtol=1e-10)
    trial_mixture = (s * logsumexp(log_w + np.log(p), axis=0)
                     + f * logsumexp(log_w + np.log1p(-p), axis=0) + log_c)
    # with two distinct experts the per-trial model is another likelihood: a trial's
    # success probability is the mixed one, so the rows' overdispersion is invisible to it
    assert np.max(np.abs(trial_mixture - row_mixture)) > 1.0
    # for one expert the two models coincide
    one = _binomial(1).fit(X, y)
    expanded = MixtureOfExpertsRegressor(
        1, expert="bernoulli", gate_features=[], gate_alpha=0.0, tol=1e-10
    ).fit(np.vstack([X, X]), np.r_[np.ones(len(X)), np.zeros(len(X))],
          sample_weight=np.r_[s, f])
    assert one.log_likelihood_ == pytest.approx(expanded.log_likelihood_ + log_c.sum(),
                                                rel=1e-8)


@pytest.mark.parametrize("y, message", [
    (np.array([[3.0, 1.0], [-1.0, 2.0], [2.0, 2.0]]), "non-negative"),
    (np.array([[3.0, 1.0], [1.0, np.nan], [2.0, 2.0]]), "NaN"),
    (np.array([3.0, 1.0, 2.0]), r"shape \(n_samples, 2\)"),
])
def test_binomial_bad_counts_are_refused(y, message):
    X = np.arange(3.0)[:, None]
    with pytest.raises(ValueError, match=message):
        _binomial(1).fit(X, y)


def test_binomial_successes_above_trials_refused():
    # (successes, trials) mistaken for (successes, failures) is caught by the helper
    from skmoe import binomial_target

    with pytest.raises(ValueError, match="above the trials"):
        binomial_target([3, 5], [2, 6])
    np.testing.assert_array_equal(binomial_target([3, 5], [4, 6]), [[3, 1], [5, 1]])


# ------------------------------------------------------------------ shared coefficients
def _poisson_shared(n_experts, shared, **kwargs):
    kwargs = {"gate_features": [], "gate_alpha": 0.0, "tol": 1e-10, "max_iter": 3000,
              "random_state": 0, "n_init": 3, **kwargs}
    return MixtureOfExpertsRegressor(n_experts, expert="poisson", shared_features=shared,
                                     **kwargs)


def test_fabricfault_shared_log_length_reaches_flexmix():
    # R: flexmix(Faults ~ 1, k = 2, FLXMRglmfix(poisson, fixed = ~ log(Length)))
    reference = _reference("fabricfault_k2_fixed")
    d = pd.read_csv(os.path.join(DATA, "fabricfault.csv"))
    X = np.log(d[["Length"]].to_numpy(float))
    y = d["Faults"].to_numpy(float)
    model = _poisson_shared(2, [0]).fit(X, y)  # default init: multistart, squarem
    assert model.log_likelihood_ >= reference["loglik_mle"] - 1e-3
    assert model._n_parameters() == reference["df"]
    assert model.expert_coef_.shape == (2, 0) and model.shared_coef_.shape == (1,)
    expected = reference["expert_params"]["Comp.1"]["coef.log(Length)"]
    assert model.shared_coef_[0] == pytest.approx(expected, abs=1e-3)
    np.testing.assert_allclose(
        np.sort(model.expert_intercept_),
        np.sort([c["coef.(Intercept)"] for c in reference["expert_params"].values()]),
        atol=1e-3,
    )


def test_salmonella_shared_dose_terms_reach_flexmix():
    # R: flexmix(y ~ 1, k = 2, FLXMRglmfix(poisson, fixed = ~ x + log(x + 10)))
    reference = _reference("salmonellaTA98_k2_fixed")
    d = pd.read_csv(os.path.join(DATA, "salmonellaTA98.csv"))
    X = pd.DataFrame({"x": d["x"], "log(x + 10)": np.log(d["x"] + 10.0)})
    y = d["y"].to_numpy(float)
    model = _poisson_shared(2, ["x", "log(x + 10)"]).fit(X, y)
    assert model.log_likelihood_ >= reference["loglik_mle"] - 1e-3
    assert model._n_parameters() == reference["df"]
    comp = reference["expert_params"]["Comp.1"]
    np.testing.assert_allclose(model.shared_coef_, [comp["coef.x"], comp["coef.log(x + 10)"]],
                               atol=1e-4)


def test_no_shared_column_leaves_the_fit_unchanged():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 2))
    y = np.where(rng.random(200) < 0.5, X @ [1.0, -1.0], 3.0 + X @ [-1.0, 0.5])
    y += 0.1 * rng.normal(size=200)
    plain = MixtureOfExpertsRegressor(2, random_state=0).fit(X, y)
    for shared in ([], np.zeros(2, dtype=bool)):
        model = MixtureOfExpertsRegressor(2, random_state=0, shared_features=shared).fit(X, y)
        assert model.log_likelihood_ == plain.log_likelihood_
        np.testing.assert_array_equal(model.expert_coef_, plain.expert_coef_)
        assert not hasattr(model, "shared_coef_")


def test_all_columns_shared_gaussian_is_a_location_mixture():
    # y = mu_k + x'c + e_k, e_k ~ N(0, s_k^2), constant weights: against a direct
    # maximisation of the same likelihood
    from scipy.optimize import minimize

    rng = np.random.default_rng(1)
    n = 300
    X = rng.normal(size=(n, 2))
    z = rng.random(n) < 0.4
    y = np.where(z, -2.0, 2.0) + X @ [1.5, -0.5] + np.where(z, 0.5, 1.0) * rng.normal(size=n)
    model = MixtureOfExpertsRegressor(2, gate_features=[], gate_alpha=0.0, tol=1e-12,
                                      max_iter=5000, shared_features=[0, 1],
                                      random_state=0).fit(X, y)

    def negative_log_lik(theta):
        mu, c, log_s, a = theta[:2], theta[2:4], theta[4:6], theta[6]
        log_pi = np.array([-np.logaddexp(0.0, -a), -np.logaddexp(0.0, a)])
        resid = y - X @ c - mu[:, None]
        dens = (log_pi[:, None] - log_s[:, None] - 0.5 * np.log(2 * np.pi)
                - 0.5 * resid**2 / np.exp(2 * log_s)[:, None])
        return -logsumexp(dens, axis=0).sum()

    weights = model.weights_
    start = np.r_[model.expert_intercept_, model.shared_coef_,
                  0.5 * np.log(model.expert_variance_), np.log(weights[0] / weights[1])]
    best = minimize(negative_log_lik, start + 0.05, method="BFGS",
                    options={"gtol": 1e-9, "maxiter": 10_000})
    assert model.log_likelihood_ == pytest.approx(-best.fun, abs=1e-6)
    np.testing.assert_allclose(start, best.x, atol=1e-4)
    assert model._n_parameters() == 2 + 2 + 2 + 1


def test_shared_features_refused_where_not_supported_yet():
    X = np.log(pd.read_csv(os.path.join(DATA, "fabricfault.csv"))[["Length"]].to_numpy(float))
    y = pd.read_csv(os.path.join(DATA, "fabricfault.csv"))["Faults"].to_numpy(float)
    model = _poisson_shared(2, [0], n_init=1).fit(X, y)
    with pytest.raises(NotImplementedError, match="shared_features"):
        model.standard_errors(X, y)
    with pytest.raises(ValueError, match="shared_features"):
        _poisson_shared(2, [3]).fit(X, y)


# ------------------------------------------------------------------ grouped observations
@pytest.mark.parametrize("fit_id, shared", [
    # R: flexmix(cbind(Deaths, Total - Deaths) ~ Treatment | Center, k = 3, binomial)
    ("betablocker_k3_grouped", None),
    # R: flexmix(cbind(Deaths, Total - Deaths) ~ 1 | Center, k = 3,
    #            FLXMRglmfix(binomial, fixed = ~ Treatment))
    ("betablocker_k3_fixed_grouped", [0]),
])
def test_betablocker_grouped_by_center_reaches_flexmix(fit_id, shared):
    reference = _reference(fit_id)
    X, y, center = _betablocker()
    model = _binomial(3, shared_features=shared, n_init=2, random_state=0)
    model.fit(X, y, groups=center)  # default init: multistart, squarem
    assert model.log_likelihood_ >= reference["loglik_mle"] - 1e-3
    assert model._n_parameters() == reference["df"]


def test_single_row_groups_equal_the_ungrouped_fit():
    X, y, _ = _betablocker()
    kwargs = {"init_params": "voronoi", "random_state": 0, "n_init": 2}
    plain = _binomial(3, **kwargs).fit(X, y)
    grouped = _binomial(3, **kwargs).fit(X, y, groups=np.arange(len(X))[::-1])
    assert grouped.log_likelihood_ == pytest.approx(plain.log_likelihood_, abs=1e-10)
    np.testing.assert_allclose(grouped.expert_intercept_, plain.expert_intercept_, atol=1e-8)
    np.testing.assert_allclose(grouped.weights_, plain.weights_, atol=1e-8)


def _estimator(name, **kwargs):
    return {
        "regressor": lambda: MixtureOfExpertsRegressor(3, **kwargs),
        "classifier": lambda: MixtureOfExpertsClassifier(2, **kwargs),
        "hme_regressor": lambda: HierarchicalMixtureOfExpertsRegressor(depth=2, **kwargs),
        "hme_classifier": lambda: HierarchicalMixtureOfExpertsClassifier(
            depth=2, **{"gate_alpha": 1.0, **kwargs}),
    }[name]()


ESTIMATORS = ["regressor", "classifier", "hme_regressor", "hme_classifier"]


@pytest.mark.parametrize("name", ESTIMATORS)
def test_single_row_groups_equal_the_ungrouped_fit_for_every_estimator(name):
    # the gate on every column (rows one by one: nothing needs to be constant), rows
    # reversed by the sort of the labels; tol=0 runs EM to its fixed point (a change
    # within rounding), where both fits stop
    if name.endswith("regressor"):
        X, y = make_moe_regression(300, 2, 4, random_state=0)
    else:
        X, y = make_regional_classification(300, noise=0.05, random_state=0)
    model = _estimator(name, tol=0.0, max_iter=20_000, random_state=0, init_params="voronoi")
    plain = clone(model).fit(X, y)
    groups = np.arange(len(y))[::-1]
    grouped = clone(model).fit(X, y, groups=groups)
    assert grouped.objective_ == pytest.approx(plain.objective_, abs=1e-10)
    # the HME classifier's objective is nearly flat along a direction, where the
    # log-likelihood moves by ~1e-10 (one part in 1e12)
    assert grouped.log_likelihood_ == pytest.approx(plain.log_likelihood_, rel=1e-11)
    np.testing.assert_allclose(grouped.expert_coef_, plain.expert_coef_, atol=1e-6)
    np.testing.assert_allclose(grouped.gate_coef_, plain.gate_coef_, atol=1e-6)
    np.testing.assert_allclose(grouped.score_samples(X, y, groups=groups),
                               plain.score_samples(X, y), atol=1e-10)


def _planted_panel(seed=0):
    """200 groups of 5 rows, K=3 Gaussian lines, a third of the groups each.

    The noise (sd 0.2) and the lines (intercepts 0.5 apart, slopes 0.6 apart) make one
    row ambiguous (the ungrouped fit tells about 80% of the rows apart) and a group of
    five clear (99% or more). With about 333 rows per expert a coefficient's standard
    error is about 0.2 / sqrt(333) = 0.011, so 0.05 is 4.5 standard errors: over seeds
    0-19 the largest error is 0.030 and the smallest group accuracy 0.99.
    """
    rng = np.random.default_rng(seed)
    n_groups, size = 200, 5
    group_class = rng.permutation(np.arange(n_groups) % 3)
    groups = np.repeat(np.arange(n_groups), size)
    X = rng.normal(size=(n_groups * size, 1))
    intercepts, slopes = np.array([-0.5, 0.0, 0.5]), np.array([0.6, 0.0, -0.6])
    z = group_class[groups]
    y = intercepts[z] + slopes[z] * X[:, 0] + 0.2 * rng.normal(size=len(z))
    return X, y, groups, group_class, intercepts, slopes


def test_planted_grouped_mixture_is_recovered():
    X, y, groups, group_class, intercepts, slopes = _planted_panel()
    model = MixtureOfExpertsRegressor(3, gate_features=[], random_state=0)
    model.fit(X, y, groups=groups)
    order = np.argsort(-model.expert_coef_[:, 0])  # the experts in the order of the truth
    np.testing.assert_allclose(model.expert_intercept_[order], intercepts, atol=0.05)
    np.testing.assert_allclose(model.expert_coef_[order, 0], slopes, atol=0.05)
    resp = model.predict_responsibilities(X, y, groups=groups)
    # every row of a group gets the group's posterior
    np.testing.assert_array_equal(resp, np.repeat(resp[::5], 5, axis=0))
    predicted = np.argsort(order)[resp[::5].argmax(axis=1)]
    grouped_accuracy = np.mean(predicted == group_class)
    assert grouped_accuracy >= 0.98
    # rows one by one do not find the classes
    plain = MixtureOfExpertsRegressor(3, gate_features=[], random_state=0).fit(X, y)
    rows = np.argsort(np.argsort(-plain.expert_coef_[:, 0]))[plain.assign_experts(X, y)]
    row_accuracy = np.mean(rows == group_class[groups])
    assert row_accuracy < 0.88 <= grouped_accuracy - 0.1


def test_grouped_methods_after_fit_honour_groups():
    X, y, groups, *_ = _planted_panel()
    model = MixtureOfExpertsRegressor(3, gate_features=[], random_state=0)
    model.fit(X, y, groups=groups)
    shuffle = np.random.default_rng(1).permutation(len(y))
    Xs, ys, gs = X[shuffle], y[shuffle], groups[shuffle]
    # per row, in the order given; the rows of a group sum to its log-likelihood
    scores = model.score_samples(Xs, ys, groups=gs)
    assert scores.sum() == pytest.approx(model.log_likelihood_, rel=1e-12)
    _, per_group = model.score_groups(Xs, ys, gs)
    np.testing.assert_allclose(np.bincount(gs, weights=scores), per_group, rtol=1e-10)
    # the first row of a group gets the plain mixture density
    first = np.unique(gs, return_index=True)[1]
    alone = model.score_samples(Xs, ys, groups=np.arange(len(ys)))
    np.testing.assert_allclose(scores[first], alone[first], atol=1e-10)
    resp = model.predict_responsibilities(Xs, ys, groups=gs)
    np.testing.assert_allclose(resp[np.argsort(shuffle)],
                               model.predict_responsibilities(X, y, groups=groups), atol=1e-12)
    np.testing.assert_array_equal(model.assign_experts(Xs, ys, groups=gs), resp.argmax(axis=1))
    # BIC counts rows, as flexmix; n_obs="groups" counts the groups
    p = model._n_parameters()
    assert model.bic(Xs, ys, groups=gs) == pytest.approx(
        -2 * model.log_likelihood_ + p * np.log(len(y)), rel=1e-12)
    assert model.bic(X, y, groups=groups, n_obs="groups") == pytest.approx(
        -2 * model.log_likelihood_ + p * np.log(200), rel=1e-12)
    assert model.aic(X, y, groups=groups) == pytest.approx(
        -2 * model.log_likelihood_ + 2 * p, rel=1e-12)
    post = resp[first]
    entropy = -np.sum(post * np.log(post))
    assert model.icl(Xs, ys, groups=gs) == pytest.approx(
        model.bic(Xs, ys, groups=gs) + 2 * entropy, rel=1e-12)
    # without groups, the methods that take y refuse the data of a grouped model
    for method in (model.score_samples, model.predict_responsibilities, model.bic,
                   model.standard_errors, model.partial_fit):
        with pytest.raises(ValueError, match="fitted with groups="):
            method(X, y)


def test_grouped_bic_is_flexmix_bic():
    # R: BIC(flexmix(cbind(Deaths, Total - Deaths) ~ Treatment | Center, k = 3, binomial))
    # is -2 logLik + df log(nobs) with nobs = 44 rows (of 22 centers)
    reference = _reference("betablocker_k3_grouped")
    X, y, center = _betablocker()
    model = _binomial(3, n_init=2, random_state=0).fit(X, y, groups=center)
    expected = -2 * reference["loglik_mle"] + reference["df"] * np.log(
        reference["nobs_used_in_bic"])
    assert model.bic(X, y, groups=center) == pytest.approx(expected, abs=2e-3)
    assert model.bic(X, y, groups=center, n_obs="groups") == pytest.approx(
        model.bic(X, y, groups=center) - reference["df"] * np.log(44 / 22), rel=1e-12)
    with pytest.raises(ValueError, match="n_obs"):
        model.bic(X, y, groups=center, n_obs="rows")


def test_grouped_standard_errors_match_a_finite_difference_hessian():
    # Gaussian experts, the gate on a group-level column
    rng = np.random.default_rng(2)
    n_groups, size = 60, 4
    groups = np.repeat(np.arange(n_groups), size)
    u = rng.normal(size=n_groups)
    z = (rng.random(n_groups) < 1.0 / (1.0 + np.exp(-1.5 * u))).astype(int)
    X = np.column_stack([rng.normal(size=n_groups * size), u[groups]])
    y = np.array([-1.0, 1.0])[z[groups]] + np.array([0.5, -0.5])[z[groups]] * X[:, 0]
    y += 0.6 * rng.normal(size=len(y))
    model = MixtureOfExpertsRegressor(2, gate_features=[1], expert_features=[0],
                                      gate_alpha=0.0, tol=1e-12, max_iter=5000,
                                      random_state=0).fit(X, y, groups=groups)
    result = model.standard_errors(X, y, groups=groups)
    data, grouped, _ = model._posterior_data(X, y, groups=groups)

    def log_lik(theta):
        gate = np.zeros((2, 2))
        gate[1] = theta[:2]
        rest = theta[2:].reshape(2, 3)
        params = {"gate": [gate[None]],
                  "experts": {"coef": rest[:, :2].copy(), "variance": rest[:, 2].copy()}}
        return float(grouped.group_e_step(data, params)[0].sum())

    theta = result.estimate
    P = theta.size
    h = 1e-4 * np.maximum(np.abs(theta), 1e-2)
    hessian = np.zeros((P, P))
    for a in range(P):
        for b in range(P):
            da, db = np.eye(P)[a] * h[a], np.eye(P)[b] * h[b]
            hessian[a, b] = (log_lik(theta + da + db) - log_lik(theta + da - db)
                             - log_lik(theta - da + db) + log_lik(theta - da - db))
            hessian[a, b] /= 4 * h[a] * h[b]
    np.testing.assert_allclose(result.se, np.sqrt(np.diag(np.linalg.inv(-hessian))), rtol=1e-4)
    # the rows one by one are another likelihood, with other standard errors
    rows = model.standard_errors(X, y, groups=np.arange(len(y)))
    assert not np.allclose(rows.se, result.se, rtol=1e-2)


def test_partial_fit_with_groups():
    X, y, groups, group_class, intercepts, slopes = _planted_panel()
    model = MixtureOfExpertsRegressor(3, gate_features=[], random_state=0)
    for batch in np.array_split(np.arange(200), 4):  # whole groups in every batch
        rows = np.isin(groups, batch)
        model.partial_fit(X[rows], y[rows], groups=groups[rows])
    order = np.argsort(-model.expert_coef_[:, 0])
    np.testing.assert_allclose(model.expert_intercept_[order], intercepts, atol=0.1)
    np.testing.assert_allclose(model.expert_coef_[order, 0], slopes, atol=0.1)
    resp = model.predict_responsibilities(X, y, groups=groups)
    assert np.mean(np.argsort(order)[resp[::5].argmax(axis=1)] == group_class) >= 0.97
    with pytest.raises(ValueError, match="fitted with groups="):
        model.partial_fit(X, y)
    with pytest.raises(ValueError, match="one label per sample"):
        model.partial_fit(X, y, groups=groups[1:])


@pytest.mark.parametrize("name", ESTIMATORS)
def test_bad_groups_are_refused_by_every_estimator_and_method(name):
    X, y, groups, *_ = _planted_panel()
    X = np.column_stack([X, np.repeat(np.arange(200.0) % 7, 5)])  # a group-level column
    if "classifier" in name:
        y = (y > 0).astype(int)
    model = _estimator(name, gate_features=[1], max_iter=20, random_state=0)
    with pytest.raises(ValueError, match="one label per sample"):
        clone(model).fit(X, y, groups=groups[:-1])
    with pytest.raises(ValueError, match="NaN"):
        clone(model).fit(X, y, groups=np.where(groups == 3, np.nan, groups))
    with pytest.raises(ValueError, match="missing labels"):
        clone(model).fit(X, y, groups=np.where(groups == 3, None, groups).astype(object))
    varying = X.copy()
    varying[1, 1] += 1.0  # group 0's gate feature varies
    with pytest.raises(ValueError, match=r"constant within every group.*\[0\]"):
        clone(model).fit(varying, y, groups=groups)
    fitted = clone(model).fit(X, y, groups=groups)
    for method in (fitted.score_samples, fitted.predict_responsibilities, fitted.bic,
                   fitted.aic, fitted.icl):
        with pytest.raises(ValueError, match="one label per sample"):
            method(X, y, groups=groups[:-1])
        with pytest.raises(ValueError, match="constant within every group"):
            method(varying, y, groups=groups)


def test_groups_on_dask_collections_are_refused():
    da = pytest.importorskip("dask.array")
    X, y, groups, *_ = _planted_panel()
    model = MixtureOfExpertsRegressor(3, gate_features=[])
    with pytest.raises(NotImplementedError, match="dask"):
        model.fit(da.from_array(X, chunks=250), da.from_array(y, chunks=250), groups=groups)
    assert not hasattr(model, "n_features_in_")


def test_bad_groups_are_refused():
    X, y, center = _betablocker()
    with pytest.raises(ValueError, match="one label per sample"):
        _binomial(2).fit(X, y, groups=center[:-1])
    with pytest.raises(ValueError, match="NaN"):
        _binomial(2).fit(X, y, groups=np.where(center == 3, np.nan, center))
    with pytest.raises(ValueError, match="constant within every group"):
        MixtureOfExpertsRegressor(2, expert="binomial").fit(X, y, groups=center)
    before = MixtureOfExpertsRegressor(2, expert="binomial")
    with pytest.raises(ValueError):
        before.fit(X, y, groups=center)
    assert not hasattr(before, "n_features_in_")


def test_score_groups_sums_to_the_grouped_log_likelihood():
    X, y, center = _betablocker()
    model = _binomial(3, n_init=1, random_state=0).fit(X, y, groups=center)
    labels, log_lik = model.score_groups(X, y, center)
    np.testing.assert_array_equal(labels, np.unique(center))
    assert log_lik.sum() == pytest.approx(model.log_likelihood_, rel=1e-12)
    # a group's likelihood is the mixture of the products over its rows
    p = 1.0 / (1.0 + np.exp(-(model.expert_intercept_[:, None] + model.expert_coef_ @ X.T)))
    rows = stats.binom.logpmf(y[:, 0], y.sum(axis=1), p)  # (K, n)
    first = center == labels[0]
    expected = logsumexp(np.log(model.weights_) + rows[:, first].sum(axis=1))
    assert log_lik[0] == pytest.approx(expected, rel=1e-10)


def test_shared_and_groups_with_a_gate_on_another_column():
    # experts share the slope of column 0; the gate sees column 1, constant in a group
    rng = np.random.default_rng(3)
    n_groups, size = 150, 4
    groups = np.repeat(np.arange(n_groups), size)
    u = rng.normal(size=n_groups)
    z = (rng.random(n_groups) < 1.0 / (1.0 + np.exp(-2.0 * u))).astype(int)
    X = np.column_stack([rng.normal(size=n_groups * size), u[groups]])
    eta = np.array([0.5, 2.0])[z[groups]] + 0.7 * X[:, 0]
    y = rng.poisson(np.exp(eta)).astype(float)
    model = MixtureOfExpertsRegressor(2, expert="poisson", shared_features=[0],
                                      gate_features=[1], expert_features=[0],
                                      n_init=2, random_state=0)
    model.fit(X, y, groups=groups)
    assert model.expert_coef_.shape == (2, 0)
    assert model.shared_coef_[0] == pytest.approx(0.7, abs=0.05)
    np.testing.assert_allclose(np.sort(model.expert_intercept_), [0.5, 2.0], atol=0.1)
    assert model._n_parameters() == 2 + 1 + 2  # intercepts, shared slope, gate contrast
    _, log_lik = model.score_groups(X, y, groups)
    assert log_lik.sum() == pytest.approx(model.log_likelihood_, rel=1e-10)


def test_make_panel_regression_is_a_grouped_mixture():
    from skmoe.datasets import make_panel_regression

    X, y, groups, truth = make_panel_regression(40, 6, 3, random_state=0, return_params=True)
    assert X.shape == (240, 3) and y.shape == groups.shape == (240,)
    np.testing.assert_array_equal(groups, np.repeat(np.arange(40), 6))
    np.testing.assert_array_equal(X[:, 0], np.tile(np.arange(6.0), 40))
    # the gate's column is constant within every unit: a grouped fit accepts it
    np.testing.assert_array_equal(X[:, 2], np.repeat(X[::6, 2], 6))
    z = truth["labels"][groups]
    mean = truth["expert_intercept"][z] + np.einsum("ij,ij->i", X[:, :2], truth["expert_coef"][z])
    assert np.std(y - mean) == pytest.approx(truth["noise"], rel=0.15)
    model = MixtureOfExpertsRegressor(3, gate_features=[2], expert_features=[0, 1],
                                      max_iter=30, random_state=0)
    model.fit(X, y, groups=groups)
    assert model.predict_responsibilities(X, y, groups=groups).shape == (240, 3)


def test_grouped_passes_in_blocks_equal_one_pass(monkeypatch):
    # groups of 7 rows: the E-step's blocks of whole groups do not fall on BLOCK_ROWS
    from skmoe import _information
    from skmoe._blocks import InMemoryBlocks
    from skmoe.datasets import make_panel_regression

    X, y, groups = make_panel_regression(4000, 7, 2, random_state=0)
    model = MixtureOfExpertsRegressor(2, gate_features=[2], expert_features=[0, 1],
                                      init_params="kmeans", random_state=0)
    model.fit(X, y, groups=groups)
    data, grouped, _ = model._posterior_data(X, y, groups=groups)
    assert len(grouped.blocks) == 2
    source = InMemoryBlocks([data])
    log_lik, mass = grouped.e_pass(source, model._params)
    weights, group_log_lik, post = grouped.unit_e_step(data, model._params)
    assert log_lik == pytest.approx(weights @ group_log_lik, rel=1e-12)
    np.testing.assert_allclose(source.blocks[0].weights,
                               post[:, grouped.row_group] * data.sample_weight, rtol=1e-12)
    np.testing.assert_allclose(mass, post @ weights, rtol=1e-12)
    # the information in blocks of whole groups, whatever their size
    rows = np.arange(700)
    one = model.standard_errors(X[rows], y[rows], groups=groups[rows]).se
    monkeypatch.setattr(_information, "ROW_BLOCK", 10)
    np.testing.assert_allclose(
        model.standard_errors(X[rows], y[rows], groups=groups[rows]).se, one, rtol=1e-10)


def test_select_n_experts_passes_groups_to_fit_and_criterion():
    from skmoe import select_n_experts

    X, y, groups, *_ = _planted_panel()
    best, scores = select_n_experts(
        MixtureOfExpertsRegressor(gate_features=[], random_state=0), X, y, [1, 3],
        groups=groups,
    )
    assert best.n_experts == 3
    assert scores[3] == pytest.approx(best.bic(X, y, groups=groups), rel=1e-12)


def test_weights_must_be_constant_within_groups():
    X, y, groups, *_ = _planted_panel()
    weights = np.ones(len(y))
    weights[1] = 2.0
    with pytest.raises(ValueError, match="sample_weight .* constant within every group"):
        MixtureOfExpertsRegressor(3, gate_features=[]).fit(X, y, weights, groups=groups)
    labels = (y > 0).astype(int)
    with pytest.raises(ValueError, match="class_weight"):
        MixtureOfExpertsClassifier(2, gate_features=[], class_weight="balanced").fit(
            X, labels, groups=groups)
