"""flexmix's model structure beyond plain mixtures (issue #17): binomial experts with
trials, shared coefficients and grouped observations, against R's flexmix
(``tests/data/reference_fits_structure.json``), scipy and planted models."""

import json
import os
import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import assert_monotone
from scipy import stats
from scipy.special import logsumexp
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
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
    kwargs = {"expert": "poisson", **kwargs}
    return MixtureOfExpertsRegressor(n_experts, shared_features=shared, **kwargs)


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


def _planted_shared(seed=0, n=1000):
    """Column 0 has one coefficient for both experts, column 1 one per expert, column 2
    drives the gate; a Gaussian, a Bernoulli and a three-class response."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    z = rng.random(n) < 1.0 / (1.0 + np.exp(-2.0 * X[:, 2]))
    eta = np.where(z, 1.0 + 2.0 * X[:, 1], -1.0 - 1.5 * X[:, 1]) + 1.2 * X[:, 0]
    y = eta + 0.3 * rng.normal(size=n)
    binary = (rng.random(n) < 1.0 / (1.0 + np.exp(-eta))).astype(int)
    logits = np.column_stack([eta, -eta, 0.5 * X[:, 1]])
    u = rng.random(n)[:, None]
    p = np.exp(logits - logsumexp(logits, axis=1, keepdims=True))
    classes = (u > np.cumsum(p, axis=1)).sum(axis=1)
    return X, y, binary, classes


def _estimators(**kwargs):
    from skmoe import (
        HierarchicalMixtureOfExpertsClassifier,
        HierarchicalMixtureOfExpertsRegressor,
        MixtureOfExpertsClassifier,
    )

    return [
        ("y", MixtureOfExpertsRegressor(2, **kwargs)),
        ("binary", MixtureOfExpertsClassifier(2, **kwargs)),
        ("classes", MixtureOfExpertsClassifier(2, **kwargs)),
        ("y", HierarchicalMixtureOfExpertsRegressor(depth=2, **kwargs)),
        ("binary", HierarchicalMixtureOfExpertsClassifier(depth=2, **kwargs)),
    ]


@pytest.mark.parametrize("which", range(5))
def test_no_shared_column_leaves_the_fit_unchanged(which):
    X, y, binary, classes = _planted_shared(n=300)
    targets = {"y": y, "binary": binary, "classes": classes}
    target, plain = _estimators(random_state=0)[which]
    plain.fit(X, targets[target])
    for shared in ([], np.zeros(3, dtype=bool)):
        _, model = _estimators(random_state=0, shared_features=shared)[which]
        model.fit(X, targets[target])
        assert model.log_likelihood_ == pytest.approx(plain.log_likelihood_, abs=1e-10)
        np.testing.assert_allclose(model.expert_coef_, plain.expert_coef_, atol=1e-10)
        np.testing.assert_allclose(model.gate_coef_, plain.gate_coef_, atol=1e-10)
        assert not hasattr(model, "shared_coef_")


@pytest.mark.parametrize("expert", ["gaussian", "poisson", "gamma", "negative_binomial",
                                    "student_t", "bernoulli", "multinomial"])
def test_one_expert_with_every_column_shared_is_the_plain_fit(expert):
    # with one expert, shared and own coefficients are the same model: the joint M-step
    # must reach the plain M-step's maximum (expert_alpha=0: shared ones are unpenalised)
    from skmoe import MixtureOfExpertsClassifier

    X, y, binary, classes = _planted_shared(1, n=400)
    kwargs = {"expert_alpha": 0.0, "tol": 1e-12, "max_iter": 2000}
    if expert not in ("bernoulli", "multinomial"):
        # overdispersed counts for the negative binomial: on Poisson-like counts its size
        # runs off to infinity, where the likelihood has no maximum to compare at
        mu = np.exp(y / 3)
        nb = np.random.default_rng(0).negative_binomial(5.0, 5.0 / (5.0 + mu))
        y = {"poisson": np.round(mu), "negative_binomial": nb.astype(float),
             "gamma": mu}.get(expert, y)
        make = lambda **kw: MixtureOfExpertsRegressor(1, expert=expert, **kwargs, **kw)  # noqa: E731
    else:
        y = binary if expert == "bernoulli" else classes
        make = lambda **kw: MixtureOfExpertsClassifier(1, **kwargs, **kw)  # noqa: E731
    plain = make().fit(X, y)
    shared = make(shared_features=[0, 1, 2]).fit(X, y)
    assert shared.expert_coef_.shape[-1] == 0
    assert shared.log_likelihood_ == pytest.approx(plain.log_likelihood_, rel=1e-10)
    coef = plain.expert_coef_[0]
    if expert == "multinomial":  # sum-to-zero coding: compare the class contrasts
        coef, fitted = coef - coef[0], shared.shared_coef_ - shared.shared_coef_[0]
    else:
        fitted = shared.shared_coef_
    np.testing.assert_allclose(fitted, coef, atol=1e-6)
    assert shared._n_parameters() == plain._n_parameters()


@pytest.mark.parametrize("which", range(5))
def test_shared_features_on_every_estimator_recover_the_common_coefficient(which):
    X, y, binary, classes = _planted_shared(2, n=1500)
    targets = {"y": y, "binary": binary, "classes": classes}
    target, model = _estimators(shared_features=[0], expert_features=[1], random_state=0,
                                n_init=1 if which == 3 else 2)[which]
    model.fit(X, targets[target])
    K = model.expert_intercept_.shape[0]
    if target == "classes":
        # class 0 against class 2: 1.2 x0 in the logits of the planted model
        assert model.shared_coef_.shape == (3, 1)
        assert model.shared_coef_[0, 0] - model.shared_coef_[2, 0] == pytest.approx(1.2, abs=0.3)
        n_own = K * 2 * 2  # (C - 1) (1 + 1) per expert
        assert model._n_parameters() - model._model.gate.n_parameters(
            model._params["gate"]) == n_own + 2
    else:
        assert model.shared_coef_.shape == (1,)
        assert model.shared_coef_[0] == pytest.approx(1.2, abs=0.2)
        dispersions = K if target == "y" else 0
        assert model._n_parameters() - model._model.gate.n_parameters(
            model._params["gate"]) == 2 * K + 1 + dispersions
    assert model.expert_coef_.shape[-1] == 1


@pytest.mark.parametrize("shared_variance", [False, True])
def test_all_columns_shared_gaussian_is_a_location_mixture(shared_variance):
    # y = mu_k + x'c + e_k, e_k ~ N(0, s_k^2) (or one s^2), constant weights: every
    # expert has the same slopes, only the intercepts (and variances) differ; against a
    # direct maximisation of that likelihood
    from scipy.optimize import minimize

    rng = np.random.default_rng(1)
    n = 300
    X = rng.normal(size=(n, 2))
    z = rng.random(n) < 0.4
    y = np.where(z, -2.0, 2.0) + X @ [1.5, -0.5] + np.where(z, 0.5, 1.0) * rng.normal(size=n)
    model = MixtureOfExpertsRegressor(2, gate_features=[], gate_alpha=0.0, tol=1e-12,
                                      max_iter=5000, shared_features=[0, 1],
                                      shared_variance=shared_variance,
                                      random_state=0).fit(X, y)
    n_scales = 1 if shared_variance else 2

    def negative_log_lik(theta):
        mu, c, log_s, a = theta[:2], theta[2:4], theta[4:4 + n_scales], theta[-1]
        log_s = np.broadcast_to(log_s, (2,))
        log_pi = np.array([-np.logaddexp(0.0, -a), -np.logaddexp(0.0, a)])
        resid = y - X @ c - mu[:, None]
        dens = (log_pi[:, None] - log_s[:, None] - 0.5 * np.log(2 * np.pi)
                - 0.5 * resid**2 / np.exp(2 * log_s)[:, None])
        return -logsumexp(dens, axis=0).sum()

    weights = model.weights_
    start = np.r_[model.expert_intercept_, model.shared_coef_,
                  0.5 * np.log(model.expert_variance_[:n_scales]),
                  np.log(weights[0] / weights[1])]
    best = minimize(negative_log_lik, start + 0.05, method="BFGS",
                    options={"gtol": 1e-9, "maxiter": 10_000})
    assert model.log_likelihood_ == pytest.approx(-best.fun, abs=1e-6)
    np.testing.assert_allclose(start, best.x, atol=1e-4)
    assert model._n_parameters() == 2 + 2 + n_scales + 1
    assert model.expert_coef_.shape == (2, 0)
    # the planted intercepts and common slopes
    order = np.argsort(model.expert_intercept_)
    np.testing.assert_allclose(model.expert_intercept_[order], [-2.0, 2.0], atol=0.3)
    np.testing.assert_allclose(model.shared_coef_, [1.5, -0.5], atol=0.15)


def test_shared_fit_with_gate_restarts_and_squarem_ascends():
    # the gate on another column, restarts, the default multistart start and SQUAREM,
    # whose extrapolation includes the shared coefficients (and the pooled variance)
    from skmoe._em import ParameterVector

    X, y = _gaussian_shared_data(2)
    kwargs = {"shared_features": [0], "gate_features": [1], "shared_variance": True,
              "n_init": 2, "random_state": 0, "tol": 1e-10, "max_iter": 2000}
    fast = MixtureOfExpertsRegressor(2, **kwargs).fit(X, y)
    plain = MixtureOfExpertsRegressor(2, acceleration=None, **kwargs).fit(X, y)
    assert fast.objective_ == pytest.approx(plain.objective_, abs=1e-6)
    np.testing.assert_allclose(fast.shared_coef_, plain.shared_coef_, atol=1e-4)
    assert fast.n_iter_ < plain.n_iter_
    trace = fast.objective_trace_
    assert_monotone(trace, rtol=1e-9)
    experts = fast._params["experts"]
    vector = ParameterVector(fast._family, fast._params).flatten(fast._params)
    gate_size = sum(v.size for v in fast._params["gate"])
    assert vector.size == gate_size + sum(v.size for v in experts.values())
    # one EM (SQUAREM cycle) at a time from a poor start: the objective never drops
    model = MixtureOfExpertsRegressor(2, **{**kwargs, "n_init": 1, "max_iter": 1,
                                            "tol": 0.0, "init_params": "random"},
                                      warm_start=True)
    objectives = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(30):
            objectives.append(model.fit(X, y).objective_)
    assert_monotone(objectives, rtol=1e-9)
    assert objectives[-1] > objectives[0]


def test_shared_features_and_variance_refused_where_they_make_no_sense():
    d = pd.read_csv(os.path.join(DATA, "fabricfault.csv"))
    X = pd.DataFrame({"log_length": np.log(d["Length"])})
    y = d["Faults"].to_numpy(float)
    with pytest.raises(ValueError, match="shared_features"):
        _poisson_shared(2, [3]).fit(X, y)
    with pytest.raises(ValueError, match="more than once"):
        _poisson_shared(2, ["log_length", "log_length"]).fit(X, y)
    with pytest.raises(ValueError, match="shared_variance=True needs experts with a variance"):
        _poisson_shared(2, None, shared_variance=True).fit(X, y)
    with pytest.raises(NotImplementedError, match="coefficient_statistics"):
        _poisson_shared(2, [0], expert="zero_inflated_poisson").fit(X, y)
    with pytest.raises(NotImplementedError, match="partial_fit"):
        _poisson_shared(2, [0]).partial_fit(X, y)


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
    # the HME classifier's penalised objective is nearly flat along a direction, where
    # the two fits' log-likelihoods (not their objectives) differ by up to 1.5e-9 (one
    # part in 1e11, measured), decided by rounding in the E-step
    assert grouped.log_likelihood_ == pytest.approx(plain.log_likelihood_, rel=1e-10)
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
# ------------------------------------------ shared coefficients: inference, variance, scope
def _params_from_names(model, result, theta):
    """The model's parameters at the vector ``theta``, laid out as ``result.names`` says
    (independently of the library's own layout)."""
    experts = {key: np.array(value, dtype=float)
               for key, value in model._params["experts"].items()}
    K = experts["coef"].shape[0]
    gate = np.zeros((K, len(model.gate_features_in_) + 1))
    gate_columns = ["(Intercept)", *model._feature_labels(model.gate_features_in_)]
    own = ["(Intercept)", *model._feature_labels(model.expert_features_in_)]
    shared = model._feature_labels(model.shared_features_in_)
    for (part, k, name), value in zip(result.names, theta):
        if part == "gate":
            gate[k, gate_columns.index(name)] = value
        elif name == "variance":
            experts["variance"][slice(None) if part == "shared" else k] = value
        elif part == "shared":
            experts["shared"][shared.index(name)] = value
        else:
            experts["coef"][k, own.index(name)] = value
    return {"gate": [gate[None]], "experts": experts}


def _finite_difference_se(model, X, y, result):
    """Standard errors from a central finite-difference Hessian of the log-likelihood."""
    data = model._predict_data(X, y)
    theta = result.estimate

    def log_lik(t):
        params = _params_from_names(model, result, t)
        return float(model._model.e_step(data, params)[0].sum())

    P = theta.size
    h = 1e-3 * result.se  # steps on each parameter's own scale (only the steps)
    hessian = np.zeros((P, P))
    for a in range(P):
        for b in range(a, P):
            def at(sa, sb, a=a, b=b):
                t = theta.copy()
                t[a] += sa * h[a]
                t[b] += sb * h[b]
                return log_lik(t)

            hessian[a, b] = hessian[b, a] = (at(1, 1) - at(1, -1) - at(-1, 1) + at(-1, -1)) / (
                4 * h[a] * h[b])
    return np.sqrt(np.diag(np.linalg.inv(-hessian)))


def _gaussian_shared_data(seed=0, n=400):
    """Column 0 has one slope for both experts, column 1 one per expert and drives the
    gate."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2))
    z = rng.random(n) < 1.0 / (1.0 + np.exp(-1.5 * X[:, 1]))
    y = (np.where(z, 2.0, -1.0) + 0.8 * X[:, 0] + np.where(z, 1.0, -0.5) * X[:, 1]
         + np.where(z, 0.5, 0.7) * rng.normal(size=n))
    return X, y


@pytest.mark.parametrize("case", ["poisson", "gaussian", "gaussian_shared_variance"])
def test_shared_standard_errors_match_a_finite_difference_hessian(case):
    if case == "poisson":
        d = pd.read_csv(os.path.join(DATA, "salmonellaTA98.csv"))
        X = pd.DataFrame({"x": d["x"], "log(x + 10)": np.log(d["x"] + 10.0)})
        y = d["y"].to_numpy(float)
        model = _poisson_shared(2, ["x", "log(x + 10)"], tol=1e-12).fit(X, y)
    else:
        X, y = _gaussian_shared_data()
        model = MixtureOfExpertsRegressor(
            2, gate_alpha=0.0, tol=1e-12, max_iter=5000, random_state=0,
            shared_features=[0], gate_features=[1],
            shared_variance=case == "gaussian_shared_variance").fit(X, y)
    result = model.standard_errors(X, y)
    # every parameter once: the shared ones in their own block, counted once
    assert result.se.size == result.covariance.shape[0] == model._n_parameters()
    shared = [i for i, (part, _, _) in enumerate(result.names) if part == "shared"]
    assert len(shared) == model.shared_coef_.size + (case == "gaussian_shared_variance")
    np.testing.assert_allclose(result.estimate[shared[: model.shared_coef_.size]],
                               model.shared_coef_, rtol=1e-12)
    np.testing.assert_allclose(result.shared_coef, result.se[shared[: model.shared_coef_.size]])
    np.testing.assert_allclose(result.se, _finite_difference_se(model, X, y, result), rtol=1e-4)


def _varfix_data():
    rng = np.random.default_rng(7)
    n = 200
    x = rng.uniform(-2, 2, size=n)
    z = rng.random(n) < 0.4
    y = np.where(z, 1.0 + 2.0 * x, -1.0 - 0.5 * x) + 0.6 * rng.normal(size=n)
    return x[:, None], y


def test_shared_variance_is_the_equal_variance_maximum_likelihood():
    from scipy.optimize import minimize

    X, y = _varfix_data()
    model = MixtureOfExpertsRegressor(2, gate_features=[], gate_alpha=0.0, tol=1e-12,
                                      max_iter=5000, shared_variance=True,
                                      random_state=0).fit(X, y)
    assert model.expert_variance_[0] == model.expert_variance_[1]
    assert model._n_parameters() == 2 * 2 + 1 + 1

    def negative_log_lik(theta):
        coef, log_s, a = theta[:4].reshape(2, 2), theta[4], theta[5]
        log_pi = np.array([-np.logaddexp(0.0, -a), -np.logaddexp(0.0, a)])
        resid = y - coef[:, :1] - coef[:, 1:] * X[:, 0]
        dens = log_pi[:, None] - log_s - 0.5 * np.log(2 * np.pi) - 0.5 * resid**2 * np.exp(
            -2 * log_s)
        return -logsumexp(dens, axis=0).sum()

    fitted = np.r_[np.column_stack([model.expert_intercept_, model.expert_coef_]).ravel(),
                   0.5 * np.log(model.expert_variance_[0]),
                   np.log(model.weights_[0] / model.weights_[1])]
    best = minimize(negative_log_lik, fitted + 0.05, method="BFGS",
                    options={"gtol": 1e-9, "maxiter": 10_000})
    assert model.log_likelihood_ == pytest.approx(-best.fun, abs=1e-6)
    np.testing.assert_allclose(fitted, best.x, atol=1e-4)
    # R (flexmix 2.3-18; the same data written to CSV), best of 20 starts:
    #   flexmix(y ~ x, data = d, k = 2, model = FLXMRglmfix(varFix = TRUE),
    #           control = list(tolerance = 1e-12, iter.max = 5000, minprior = 0))
    # logLik -272.616804606, sigma 0.567122351892, prior 0.580404161287 (Comp.1),
    # Comp.1 (-1.168591769432, -0.565406511925), Comp.2 (0.908650839878, 1.999075595368)
    flexmix = np.array([[-1.168591769432, -0.565406511925], [0.908650839878, 1.999075595368]])
    sigma, prior = 0.567122351892, np.array([0.580404161287, 0.419595838713])
    # flexmix's sigma is not the maximum likelihood one: it divides the pooled weighted
    # RSS by n - 1 (at its fixed point), so the ML fit is a little higher and close
    resid = y - flexmix[:, :1] - flexmix[:, 1:] * X[:, 0]
    log_joint = np.log(prior)[:, None] + stats.norm.logpdf(resid, scale=sigma)
    resp = np.exp(log_joint - logsumexp(log_joint, axis=0))
    assert np.sqrt(np.sum(resp * resid**2) / (len(y) - 1)) == pytest.approx(sigma, rel=1e-9)
    assert logsumexp(log_joint, axis=0).sum() == pytest.approx(-272.616804606, abs=1e-8)
    assert -272.616804606 < model.log_likelihood_ < -272.616804606 + 0.01
    np.testing.assert_allclose(
        np.column_stack([model.expert_intercept_, model.expert_coef_[:, 0]]), flexmix,
        atol=1e-3)
    assert np.sqrt(model.expert_variance_[0] * len(y) / (len(y) - 1)) == pytest.approx(
        sigma, rel=1e-3)
    # summary lists the shared variance once, in the shared block
    text = model.summary(X, y)
    assert text.count("variance") == 1
    assert "Shared by all experts" in text
    frame = model.summary(X, y, as_frame=True)
    assert frame.loc["shared"].index.get_level_values("name").tolist() == ["variance"]
    assert frame.loc["expert"].index.get_level_values("expert").tolist() == [0, 0, 1, 1]


def test_shared_variance_with_shared_slopes_and_partial_fit():
    # the pooled variance is a family statistic: partial_fit and the closed-form M-step
    # pool it too, and the joint M-step of shared slopes does
    X, y = _gaussian_shared_data(1)
    both = MixtureOfExpertsRegressor(2, shared_features=[0], shared_variance=True,
                                     gate_features=[1], random_state=0).fit(X, y)
    assert np.ptp(both.expert_variance_) == 0.0
    assert both._n_parameters() == 2 * 2 + 1 + 1 + 2
    stream = MixtureOfExpertsRegressor(2, shared_variance=True, random_state=0)
    for rows in np.array_split(np.arange(len(y)), 4):
        stream.partial_fit(X[rows], y[rows])
    assert np.ptp(stream.expert_variance_) == 0.0
