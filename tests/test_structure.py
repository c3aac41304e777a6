"""flexmix's model structure beyond plain mixtures (issue #17): binomial experts with
trials, against R's flexmix (``tests/data/reference_fits_structure.json``) and scipy."""

import json
import os

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.special import logsumexp
from sklearn.linear_model import LogisticRegression

from skmoe import MixtureOfExpertsRegressor

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
