"""MixtureOfExpertsRegressor: recovery, references, weights, sklearn integration."""

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skmoe import MixtureOfExpertsRegressor
from skmoe._em import EMData, MixtureOfExpertsModel
from skmoe._families import GaussianExperts
from skmoe._gate import GateTree
from skmoe.datasets import load_co2, load_nodata, load_npreg, load_tone, make_moe_regression


def test_recovers_planted_experts_and_gate():
    X, y, truth = make_moe_regression(5000, 4, 3, random_state=0, return_params=True)
    model = MixtureOfExpertsRegressor(3, gate_alpha=0.0, n_init=3, random_state=0).fit(X, y)
    fitted = np.column_stack([model.expert_intercept_, model.expert_coef_])
    planted = np.column_stack([truth["expert_intercept"], truth["expert_coef"]])
    cost = np.abs(fitted[:, None] - planted[None]).max(axis=2)
    rows, cols = linear_sum_assignment(cost)
    assert cost[rows, cols].max() < 0.05
    np.testing.assert_allclose(np.sqrt(model.expert_variance_), truth["noise"], rtol=0.05)
    gate_agreement = np.mean(
        cols[model.predict_gate(X).argmax(axis=1)] == truth["gate"].argmax(axis=1)
    )
    assert gate_agreement >= 0.95


def _fit_best(X, y, n_init=5, **params):
    model = MixtureOfExpertsRegressor(
        2, gate_alpha=0.0, tol=1e-10, max_iter=5000, n_init=n_init, random_state=0, **params
    )
    return model.fit(X, y)


# Reference log-likelihoods: R's flexmix / mixtools, e.g. for tonedata_k2_gate
#   flexmix(tuned ~ stretchratio, k=2, concomitant=FLXPmultinom(~stretchratio))
# with the ML variance (see tests/data/README.md).
def _reference_problems():
    X, y = load_tone(return_X_y=True)
    yield "tonedata_k2_gate", X, y, {}
    yield "tonedata_k2", X, y, {"gate_features": []}
    X, y = load_nodata(return_X_y=True)
    yield "NOdata_k2_gate", X, y, {}
    yield "NOdata_k2", X, y, {"gate_features": []}
    X, y = load_co2(return_X_y=True)
    yield "CO2data_k2", X, y, {"gate_features": []}
    x, yn = load_npreg(return_X_y=True)
    X = np.column_stack([x, x**2])  # yn ~ x + I(x^2), gate on x
    yield "NPreg_yn_k2_gate", X, yn, {"gate_features": [0]}
    yield "NPreg_yn_k2", X, yn, {"gate_features": []}
    x, yp = load_npreg(target="yp", return_X_y=True)
    yield "NPreg_yp_k2_gate", x, yp, {"expert": "poisson"}
    yield "NPreg_yp_k2", x, yp, {"expert": "poisson", "gate_features": []}


REFERENCE_PROBLEMS = list(_reference_problems())


@pytest.mark.parametrize(
    "ref_id, X, y, params", REFERENCE_PROBLEMS, ids=[p[0] for p in REFERENCE_PROBLEMS]
)
def test_reaches_the_flexmix_and_mixtools_maximum(reference_fits, ref_id, X, y, params):
    reference = reference_fits[ref_id]
    model = _fit_best(X, y, **params)
    assert model.log_likelihood_ >= reference["loglik_mle"] - 1e-3
    assert model._n_parameters() == reference["df"]
    assert model.bic(X, y) == pytest.approx(reference["bic"], abs=2e-3)


def test_tone_gated_fit_reaches_mixtools_hme(reference_fits):
    X, y = load_tone(return_X_y=True)
    model = _fit_best(X, y)
    assert model.log_likelihood_ >= 142.847
    expected = reference_fits["tonedata_k2_gate"]["expert_params"]
    slopes = sorted(model.expert_coef_[:, 0])
    assert slopes[0] == pytest.approx(expected["Comp.1"]["coef.stretchratio"], abs=1e-3)
    assert slopes[1] == pytest.approx(expected["Comp.2"]["coef.stretchratio"], abs=1e-3)


def _model_and_data(X, y, w, K=3):
    family = GaussianExperts(K, alpha=0.3, variance_floor=1e-12)
    model = MixtureOfExpertsModel(family, GateTree(1, K, alpha=0.2))
    return model, EMData(X, X, y, w)


def test_integer_sample_weight_equals_repeated_rows_at_the_m_step():
    rng = np.random.default_rng(0)
    X, y = make_moe_regression(200, 3, 3, random_state=0)
    w = rng.integers(0, 4, size=200).astype(float)
    resp = rng.dirichlet(np.ones(3), size=200).T
    model, weighted = _model_and_data(X, y, w)
    _, repeated = _model_and_data(
        np.repeat(X, w.astype(int), axis=0), np.repeat(y, w.astype(int)), np.ones(int(w.sum()))
    )
    a = model.m_step(weighted, resp, None)
    b = model.m_step(repeated, np.repeat(resp, w.astype(int), axis=1), None)
    np.testing.assert_allclose(a["experts"]["coef"], b["experts"]["coef"], rtol=1e-10)
    np.testing.assert_allclose(a["experts"]["variance"], b["experts"]["variance"], rtol=1e-10)
    np.testing.assert_allclose(a["gate"][0], b["gate"][0], rtol=1e-7, atol=1e-9)


def test_integer_sample_weight_equals_repeated_rows_for_the_whole_fit():
    rng = np.random.default_rng(1)
    X, y = make_moe_regression(300, 2, 3, random_state=4)
    w = rng.integers(1, 4, size=300)
    resp = rng.dirichlet(np.ones(3), size=300)
    params = {"tol": 1e-12, "max_iter": 2000, "gate_alpha": 0.1}
    weighted = MixtureOfExpertsRegressor(3, init_params=resp, **params).fit(X, y, sample_weight=w)
    repeated = MixtureOfExpertsRegressor(3, init_params=np.repeat(resp, w, axis=0), **params)
    repeated.fit(np.repeat(X, w, axis=0), np.repeat(y, w))
    np.testing.assert_allclose(weighted.expert_coef_, repeated.expert_coef_, rtol=1e-7)
    np.testing.assert_allclose(weighted.gate_coef_, repeated.gate_coef_, rtol=1e-6, atol=1e-8)
    assert weighted.log_likelihood_ == pytest.approx(repeated.log_likelihood_, rel=1e-10)


@pytest.mark.filterwarnings("ignore::skmoe.DegenerateFitWarning")
def test_zero_weights_equal_dropped_rows():
    rng = np.random.default_rng(2)
    X, y = make_moe_regression(300, 2, 2, random_state=6)
    keep = rng.uniform(size=300) < 0.7
    resp = rng.dirichlet(np.ones(2), size=300)
    params = {"tol": 1e-12, "max_iter": 2000}
    zeroed = MixtureOfExpertsRegressor(2, init_params=resp, **params)
    zeroed.fit(X, y, sample_weight=keep.astype(float))
    dropped = MixtureOfExpertsRegressor(2, init_params=resp[keep], **params).fit(X[keep], y[keep])
    np.testing.assert_allclose(zeroed.expert_coef_, dropped.expert_coef_, rtol=1e-7)
    assert zeroed.log_likelihood_ == pytest.approx(dropped.log_likelihood_, rel=1e-10)


def test_fractional_weights_scale_like_frequencies():
    X, y = load_tone(return_X_y=True)
    resp = np.random.default_rng(0).dirichlet(np.ones(2), size=len(y))
    a = MixtureOfExpertsRegressor(2, init_params=resp, tol=1e-12, gate_alpha=0.0).fit(X, y)
    b = MixtureOfExpertsRegressor(2, init_params=resp, tol=1e-12, gate_alpha=0.0)
    b.fit(X, y, sample_weight=np.full(len(y), 0.5))
    np.testing.assert_allclose(a.expert_coef_, b.expert_coef_, rtol=1e-7)
    assert b.log_likelihood_ == pytest.approx(0.5 * a.log_likelihood_, rel=1e-9)


def test_pipeline_and_grid_search():
    X, y = make_moe_regression(600, 2, 3, random_state=8)
    pipe = make_pipeline(StandardScaler(), MixtureOfExpertsRegressor(random_state=0))
    search = GridSearchCV(
        pipe,
        {
            "mixtureofexpertsregressor__n_experts": [1, 3],
            "mixtureofexpertsregressor__gate_alpha": [0.01, 1.0],
        },
        cv=3,
    ).fit(X, y)
    assert search.best_params_["mixtureofexpertsregressor__n_experts"] == 3
    assert search.score(X, y) > 0.8


def test_prediction_shapes_and_mixture_mean():
    X, y = make_moe_regression(300, 3, 3, random_state=9)
    model = MixtureOfExpertsRegressor(3, random_state=0).fit(X, y)
    gate, experts = model.predict_gate(X), model.predict_experts(X)
    assert gate.shape == experts.shape == (300, 3)
    np.testing.assert_allclose(gate.sum(axis=1), 1.0)
    np.testing.assert_allclose(model.predict(X), (gate * experts).sum(axis=1))
    resp = model.predict_responsibilities(X, y)
    np.testing.assert_allclose(resp.sum(axis=1), 1.0)
    # posterior = gate * density / mixture density
    dens = np.exp(-0.5 * (y[:, None] - experts) ** 2 / model.expert_variance_) / np.sqrt(
        2 * np.pi * model.expert_variance_
    )
    np.testing.assert_allclose(resp, gate * dens / (gate * dens).sum(1, keepdims=True), rtol=1e-10)
    np.testing.assert_allclose(model.score_samples(X, y), np.log((gate * dens).sum(1)), rtol=1e-10)


def test_score_samples_rowwise():
    X, y = load_tone(return_X_y=True)
    model = MixtureOfExpertsRegressor(2, random_state=0).fit(X, y)
    order = np.random.default_rng(0).permutation(len(y))
    full = model.score_samples(X, y)
    np.testing.assert_allclose(model.score_samples(X[order], y[order]), full[order])
    np.testing.assert_allclose(model.score_samples(X[:7], y[:7]), full[:7])


def test_information_criteria():
    X, y = load_tone(return_X_y=True)
    model = MixtureOfExpertsRegressor(2, random_state=0).fit(X, y)
    # gate (K-1)(p+1) = 2, experts K(p+1) = 4, variances K = 2
    assert model._n_parameters() == 8
    log_lik = model.score_samples(X, y).sum()
    assert model.aic(X, y) == pytest.approx(-2 * log_lik + 16)
    assert model.bic(X, y) == pytest.approx(-2 * log_lik + 8 * np.log(150))


def test_dataframe_columns_select_gate_and_expert_features():
    pd = pytest.importorskip("pandas")
    x, y = load_npreg(return_X_y=True)
    frame = pd.DataFrame({"x": x[:, 0], "x2": x[:, 0] ** 2})
    model = MixtureOfExpertsRegressor(2, gate_features=["x"], random_state=0).fit(frame, y)
    np.testing.assert_array_equal(model.feature_names_in_, ["x", "x2"])
    np.testing.assert_array_equal(model.gate_features_in_, [0])
    np.testing.assert_array_equal(model.expert_features_in_, [0, 1])
    assert model.gate_coef_.shape == (2, 1) and model.expert_coef_.shape == (2, 2)
    by_index = MixtureOfExpertsRegressor(2, gate_features=[0], random_state=0)
    by_index.fit(frame.to_numpy(), y)
    np.testing.assert_allclose(model.expert_coef_, by_index.expert_coef_)
    mask = MixtureOfExpertsRegressor(2, gate_features=[True, False], random_state=0)
    np.testing.assert_allclose(mask.fit(frame.to_numpy(), y).expert_coef_, model.expert_coef_)


def test_intercept_only_experts_and_constant_gate():
    X, y = load_tone(return_X_y=True)
    model = MixtureOfExpertsRegressor(2, expert_features=[], gate_features=[], random_state=0).fit(
        X, y
    )
    assert model.expert_coef_.shape == (2, 0) and model.gate_coef_.shape == (2, 0)
    # a mixture of two Gaussians: the mean prediction is constant
    assert np.ptp(model.predict(X)) < 1e-12


def test_expert_alpha_is_a_ridge_on_each_expert():
    from sklearn.linear_model import Ridge

    X, y = make_moe_regression(300, 3, 1, random_state=0)
    model = MixtureOfExpertsRegressor(1, expert_alpha=5.0).fit(X, y)
    ridge = Ridge(alpha=5.0).fit(X, y)
    np.testing.assert_allclose(model.expert_coef_[0], ridge.coef_, rtol=1e-8)
    assert model.expert_intercept_[0] == pytest.approx(ridge.intercept_)
