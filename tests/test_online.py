"""Mini-batch EM (``partial_fit``, stepwise online EM; skmoe/_online.py).

The reference stream is 1e6 rows in 100 mini-batches, 3 passes; its batch ``fit`` takes
12-20 s on two cores, so the tests use 2e5 rows (batches of 2,000 rows) and
``benchmarks/bench_partial_fit.py`` runs the 1e6-row stream.
"""

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_iris
from sklearn.linear_model import Ridge

from skmoe import (
    DegenerateFitWarning,
    HierarchicalMixtureOfExpertsClassifier,
    HierarchicalMixtureOfExpertsRegressor,
    MixtureOfExpertsClassifier,
    MixtureOfExpertsRegressor,
)
from skmoe._em import EMData, MixtureOfExpertsModel
from skmoe._families import GaussianExperts
from skmoe._gate import GateTree
from skmoe._online import StepwiseEM, step_size
from skmoe.datasets import make_moe_regression, make_regional_classification

N_STREAM = 200_000
N_BATCHES = 100
N_PASSES = 3


def stream(model, X, y, n_batches, n_passes, **kwargs):
    """Feed ``n_passes`` passes of ``n_batches`` consecutive mini-batches; returns the mean
    training log-likelihood after every pass."""
    batches = np.array_split(np.arange(len(y)), n_batches)
    scores = []
    for _ in range(n_passes):
        for rows in batches:
            batch_kwargs = {
                key: value[rows] if key in ("exposure", "sample_weight") else value
                for key, value in kwargs.items()
            }
            model.partial_fit(X[rows], y[rows], **batch_kwargs)
        score_kwargs = {"exposure": kwargs["exposure"]} if "exposure" in kwargs else {}
        scores.append(model.score_samples(X, y, **score_kwargs).mean())
    return np.array(scores)


@pytest.fixture(scope="module")
def regression_stream():
    """The 2e5-row stream and the mean training log-likelihood of the batch fit on it."""
    X, y = make_moe_regression(N_STREAM, 3, 3, random_state=0)
    batch = MixtureOfExpertsRegressor(3, random_state=0).fit(X, y)
    return X, y, batch.score_samples(X, y).mean()


def online_regressor():
    # n_init=3: three EM starts on the first mini-batch (2,000 rows), where one start can
    # reach a poorer local maximum than batch EM on all rows
    return MixtureOfExpertsRegressor(3, n_init=3, random_state=0)


# ----------------------------------------------------------------- (a) against batch fit
def test_stream_reaches_the_batch_fit(regression_stream):
    X, y, batch_ll = regression_stream
    model = online_regressor()
    scores = stream(model, X, y, N_BATCHES, N_PASSES)
    assert model.n_batches_seen_ == N_BATCHES * N_PASSES
    assert abs(scores[-1] - batch_ll) <= 0.005 * abs(batch_ll), (scores, batch_ll)
    assert model.predict(X[:5]).shape == (5,)
    assert model.expert_variance_.shape == (3,)


# ----------------------------------------------------------- (b) through dask-ml Incremental
def test_dask_ml_incremental(regression_stream):
    da = pytest.importorskip("dask.array")
    Incremental = pytest.importorskip("dask_ml.wrappers").Incremental
    X, y, batch_ll = regression_stream
    chunk = N_STREAM // N_BATCHES
    Xd = da.from_array(X, chunks=(chunk, X.shape[1]))
    yd = da.from_array(y, chunks=chunk)
    assert Xd.numblocks[0] == N_BATCHES
    wrapper = Incremental(online_regressor(), random_state=0)
    for _ in range(N_PASSES):
        wrapper.partial_fit(Xd, yd)  # one pass over the blocks, in shuffled order
    model = wrapper.estimator_
    assert model.n_batches_seen_ == N_BATCHES * N_PASSES
    online_ll = model.score_samples(X, y).mean()
    assert abs(online_ll - batch_ll) <= 0.005 * abs(batch_ll), (online_ll, batch_ll)
    np.testing.assert_allclose(wrapper.predict(Xd[:100]).compute(), model.predict(X[:100]))


# ------------------------------------------------------- (c) classifiers, Poisson experts
def test_classifier_needs_classes_on_the_first_call():
    X, y = make_regional_classification(200, random_state=0)
    model = MixtureOfExpertsClassifier(2, random_state=0)
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        model.partial_fit(X, y)
    assert not hasattr(model, "classes_")
    with pytest.raises(ValueError, match="at least 2 labels"):
        model.partial_fit(X, y, classes=[1])


def test_classifier_stream():
    X, y = make_regional_classification(20_000, random_state=0)
    labels = np.array(["left", "right"])[y]
    model = MixtureOfExpertsClassifier(3, random_state=0)
    stream(model, X, labels, 20, 3, classes=["right", "left"])
    assert model.classes_.tolist() == ["left", "right"]
    assert model.score(X, labels) > 0.95
    proba = model.predict_proba(X[:10])
    assert proba.shape == (10, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    # later batches may hold one class only, and need not repeat classes=
    model.partial_fit(X[labels == "left"][:100], labels[labels == "left"][:100])
    assert model.n_batches_seen_ == 61


def test_multinomial_classifier_stream():
    X, y = load_iris(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))
    X, y = X[order], y[order]
    model = MixtureOfExpertsClassifier(2, random_state=0)
    stream(model, X, y, 3, 10, classes=[0, 1, 2])
    assert model.expert_coef_.shape == (2, 3, 4)
    np.testing.assert_allclose(model.expert_coef_.sum(axis=1), 0.0, atol=1e-10)
    assert model.score(X, y) > 0.9


def test_poisson_stream_with_exposure():
    X, eta = make_moe_regression(20_000, 3, 2, random_state=3)
    rng = np.random.default_rng(1)
    exposure = rng.uniform(0.5, 2.0, size=len(eta))
    counts = rng.poisson(exposure * np.exp(np.clip(eta / (3 * eta.std()), -3, 3)))
    counts = counts.astype(float)
    batch = MixtureOfExpertsRegressor(2, expert="poisson", random_state=0)
    batch_ll = batch.fit(X, counts, exposure=exposure).score_samples(X, counts, exposure=exposure)
    model = MixtureOfExpertsRegressor(2, expert="poisson", n_init=3, random_state=0)
    scores = stream(model, X, counts, 50, 3, exposure=exposure)
    assert abs(scores[-1] - batch_ll.mean()) <= 0.005 * abs(batch_ll.mean())
    with pytest.raises(ValueError, match="exposure must be positive"):
        model.partial_fit(X[:10], counts[:10], exposure=-exposure[:10])


def test_gamma_glm_stream_matches_the_batch_glm():
    # one expert: a Gamma GLM, whose fit has no local maxima; online and batch must agree
    rng = np.random.default_rng(2)
    X = rng.normal(size=(40_000, 2))
    mean = np.exp(0.5 + X @ [0.3, -0.2])
    y = rng.gamma(2.0, mean / 2.0)
    batch = MixtureOfExpertsRegressor(1, expert="gamma", gate_features=[]).fit(X, y)
    model = MixtureOfExpertsRegressor(1, expert="gamma", gate_features=[], random_state=0)
    stream(model, X, y, 40, 3)
    np.testing.assert_allclose(model.expert_coef_, batch.expert_coef_, atol=5e-3)
    np.testing.assert_allclose(model.expert_intercept_, batch.expert_intercept_, atol=5e-3)
    np.testing.assert_allclose(model.expert_dispersion_, batch.expert_dispersion_, rtol=1e-2)
    assert abs(model.expert_dispersion_[0] - 0.5) < 0.02


@pytest.mark.parametrize("curvature", ["bound", "hessian"])
def test_hierarchical_regressor_stream(curvature):
    X, y = make_moe_regression(40_000, 3, 4, random_state=3)
    model = HierarchicalMixtureOfExpertsRegressor(2, 2, n_init=3, random_state=0)
    model.partial_fit_gate_curvature = curvature
    scores = stream(model, X, y, 40, 3)
    assert model.gate_coef_.shape == (3, 2, 3)
    np.testing.assert_allclose(model.gate_coef_.sum(axis=1), 0.0, atol=1e-10)
    single = MixtureOfExpertsRegressor(1).fit(X, y).score_samples(X, y).mean()
    assert scores[-1] > single + 0.5
    assert model.predict_leaf_proba(X[:3]).shape == (3, 4)


def test_hierarchical_classifier_stream():
    X, y = make_regional_classification(10_000, random_state=1)
    model = HierarchicalMixtureOfExpertsClassifier(2, 2, random_state=0)
    stream(model, X, y, 20, 3, classes=[0, 1])
    assert model.score(X, y) > 0.95
    assert model.apply(X[:4]).shape == (4,)


# -------------------------------------------------------------- (d) improves over passes
def test_log_likelihood_improves_over_passes():
    X, y = make_moe_regression(50_000, 3, 3, random_state=4)
    model = MixtureOfExpertsRegressor(3, n_init=3, random_state=0)
    model.partial_fit(X[:500], y[:500])
    first = model.score_samples(X, y).mean()
    prequential = []
    batches = np.array_split(np.arange(len(y)), 50)
    scores = []
    for _ in range(4):
        for rows in batches:
            model.partial_fit(X[rows], y[rows])
            prequential.append(model.batch_log_likelihood_)
        scores.append(model.score_samples(X, y).mean())
    assert scores[0] > first
    assert np.all(np.diff(scores) > -1e-5 * abs(scores[-1])), scores
    # each batch's log-likelihood before its update: out of sample the first time around
    assert np.mean(prequential[-50:]) > np.mean(prequential[:5])


def test_step_sizes():
    assert step_size(0) == 1.0
    np.testing.assert_allclose([step_size(t) for t in (1, 2, 9)], [2**-0.6, 3**-0.6, 10**-0.6])
    assert step_size(3, decay=1.0, offset=0.0) == pytest.approx(1 / 3)


def test_gaussian_statistics_give_the_weighted_ridge():
    # the M-step of one batch's averaged statistics is each expert's weighted Ridge fit
    rng = np.random.default_rng(5)
    X = rng.normal(size=(300, 3))
    y = X @ [1.0, -2.0, 0.5] + rng.normal(size=300)
    w = rng.uniform(0.5, 2.0, size=300)
    resp = rng.dirichlet([1.0, 1.0], size=300).T
    alpha = 3.0
    family = GaussianExperts(2, alpha, variance_floor=1e-12)
    online = StepwiseEM(MixtureOfExpertsModel(family, GateTree(1, 2, 0.1)))
    online.step(EMData(X_expert=X, X_gate=X, y=y, sample_weight=w), resp)
    for k in range(2):
        ridge = Ridge(alpha=alpha).fit(X, y, sample_weight=w * resp[k])
        coef = online.params["experts"]["coef"][k]
        np.testing.assert_allclose(coef[1:], ridge.coef_, rtol=1e-10)
        np.testing.assert_allclose(coef[0], ridge.intercept_, rtol=1e-10)
        rss = np.sum(w * resp[k] * (y - ridge.predict(X)) ** 2) + alpha * np.sum(coef[1:] ** 2)
        np.testing.assert_allclose(
            online.params["experts"]["variance"][k], rss / np.sum(w * resp[k]), rtol=1e-10
        )


# -------------------------------------------------------------- (e) partial_fit after fit
def test_partial_fit_after_fit_continues_from_the_fitted_parameters():
    X, y = make_moe_regression(20_000, 3, 3, random_state=6)
    model = MixtureOfExpertsRegressor(3, random_state=0).fit(X, y)
    fitted_ll = model.score_samples(X, y).mean()
    fitted_coef = model.expert_coef_.copy()
    model.partial_fit(X[:5_000], y[:5_000])
    assert model.n_batches_seen_ == 1  # fresh averages: the batch has weight 1
    assert not hasattr(model, "n_iter_") and not hasattr(model, "log_likelihood_")
    np.testing.assert_allclose(model.expert_coef_, fitted_coef, atol=0.1)
    assert model.score_samples(X, y).mean() > fitted_ll - 0.002 * abs(fitted_ll)
    model.partial_fit(X[5_000:10_000], y[5_000:10_000])
    assert model.n_batches_seen_ == 2
    # a new fit replaces the online state: the next batch starts again from its parameters
    model.fit(X, y)
    assert model.n_iter_ > 0
    model.partial_fit(X[:5_000], y[:5_000])
    assert model.n_batches_seen_ == 1


def test_classifier_after_fit_needs_no_classes():
    X, y = make_regional_classification(2_000, random_state=2)
    model = MixtureOfExpertsClassifier(2, random_state=0).fit(X, y)
    model.partial_fit(X[:500], y[:500])
    assert model.n_batches_seen_ == 1
    with pytest.raises(ValueError, match="differs from the classes_"):
        model.partial_fit(X[:500], y[:500], classes=[0, 1, 2])


def test_clone_and_pickle():
    X, y = make_moe_regression(6_000, 2, 2, random_state=7)
    model = MixtureOfExpertsRegressor(2, random_state=0)
    model.partial_fit(X[:2_000], y[:2_000])
    model.partial_fit(X[2_000:4_000], y[2_000:4_000])
    copy = pickle.loads(pickle.dumps(model))
    model.partial_fit(X[4_000:], y[4_000:])
    copy.partial_fit(X[4_000:], y[4_000:])
    assert copy.n_batches_seen_ == model.n_batches_seen_ == 3
    np.testing.assert_array_equal(copy.expert_coef_, model.expert_coef_)
    np.testing.assert_array_equal(copy.gate_coef_, model.gate_coef_)
    assert not hasattr(clone(model), "n_batches_seen_")


# ----------------------------------------------------------------------- (f) sample weights
def test_integer_weights_equal_repeated_rows():
    X, y = make_moe_regression(600, 2, 2, random_state=8)
    weights = np.random.default_rng(8).integers(0, 4, size=len(y))
    weighted = MixtureOfExpertsRegressor(2, max_iter=20, tol=0.0, random_state=0)
    repeated = clone(weighted)
    for rows in (np.arange(300), np.arange(300, 600)):
        weighted.partial_fit(X[rows], y[rows], sample_weight=weights[rows])
        repeated.partial_fit(
            np.repeat(X[rows], weights[rows], axis=0), np.repeat(y[rows], weights[rows])
        )
        for name in ("expert_coef_", "expert_intercept_", "expert_variance_", "gate_coef_"):
            np.testing.assert_allclose(
                getattr(weighted, name), getattr(repeated, name), rtol=1e-7, atol=1e-9
            )


def test_column_selections_and_feature_names():
    pd = pytest.importorskip("pandas")
    X, y = make_moe_regression(4_000, 3, 2, random_state=9)
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    model = MixtureOfExpertsRegressor(2, gate_features=["a"], expert_features=["b", "c"])
    model.partial_fit(frame[:2_000], y[:2_000])
    model.partial_fit(frame[2_000:], y[2_000:])
    assert model.gate_coef_.shape == (2, 1) and model.expert_coef_.shape == (2, 2)
    assert model.feature_names_in_.tolist() == ["a", "b", "c"]
    with pytest.raises(ValueError, match="feature names should match"):
        model.partial_fit(frame[["c", "b", "a"]], y)


# ---------------------------------------------------------------------------- (g) errors
def test_errors_leave_the_estimator_unchanged():
    X, y = make_moe_regression(1_000, 3, 2, random_state=10)
    model = MixtureOfExpertsRegressor(2, random_state=0).partial_fit(X[:500], y[:500])
    params, coef = model._params, model.expert_coef_.copy()
    with pytest.raises(ValueError, match="X has 2 features, but MixtureOfExpertsRegressor is "
                       "expecting 3 features"):
        model.partial_fit(X[:, :2], y)
    with pytest.raises(ValueError, match="classes= is for classifiers"):
        model.partial_fit(X, y, classes=[0, 1])
    with pytest.raises(ValueError, match="non-zero"):
        model.partial_fit(X, y, sample_weight=np.zeros(len(y)))
    with pytest.raises(ValueError, match="exposure needs log-link experts"):
        model.partial_fit(X, y, exposure=np.ones(len(y)))
    with pytest.raises(ValueError, match="Input y contains NaN"):
        model.partial_fit(X, np.full(len(y), np.nan))
    model.set_params(n_experts=3)
    with pytest.raises(ValueError, match="structure .* changed"):
        model.partial_fit(X, y)
    assert model._params is params and model.n_batches_seen_ == 1
    np.testing.assert_array_equal(model.expert_coef_, coef)


def test_unknown_classes_are_refused():
    X, y = make_regional_classification(400, random_state=3)
    model = MixtureOfExpertsClassifier(2, random_state=0).partial_fit(X, y, classes=[0, 1])
    with pytest.raises(ValueError, match=r"y contains labels not in classes_ \[0, 1\]: \[2\]"):
        model.partial_fit(X[:10], np.full(10, 2))
    with pytest.raises(ValueError, match="X has 3 features"):
        model.partial_fit(np.column_stack([X, X[:, 0]]), y)
    assert model.n_batches_seen_ == 1


def test_bad_step_settings():
    X, y = make_moe_regression(200, 2, 2, random_state=11)
    model = MixtureOfExpertsRegressor(2)
    model.partial_fit_decay = 0.5
    with pytest.raises(ValueError, match=r"partial_fit_decay must lie in \(0.5, 1\]"):
        model.partial_fit(X, y)
    assert not hasattr(model, "n_features_in_")
    model = MixtureOfExpertsRegressor(2)
    model.partial_fit_gate_curvature = "exact"
    with pytest.raises(ValueError, match="partial_fit_gate_curvature must be"):
        model.partial_fit(X, y)


def test_a_first_batch_too_small_for_the_model_is_refused():
    # 5 rows for 3 experts of 6 coefficients used to send every variance to the floor
    # with no warning, and the stream never recovered
    X, y = make_moe_regression(2_000, 5, 3, random_state=0)
    model = MixtureOfExpertsRegressor(3, random_state=0)
    for n in (5, 6):  # 6 coefficients and a variance per expert
        with pytest.raises(
            ValueError, match=f"batch has {n} rows .* fewer than the 7 parameters of one "
            r"expert; .* \(the model has 33 free parameters\)"
        ):
            model.partial_fit(X[:n], y[:n])
        assert not hasattr(model, "n_batches_seen_")
    # a batch that fits some experts exactly is reported
    with pytest.warns(DegenerateFitWarning, match="variance held at its floor"):
        model.partial_fit(X[:18], y[:18])
    assert model.events_
    clone(model).partial_fit(X[:200], y[:200])  # enough rows: accepted, without a warning


def test_partial_fit_reports_degenerate_experts_as_fit_does():
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, size=200)
    x_exact = np.linspace(-1, 1, 6)
    X = np.concatenate([x, x_exact])[:, None]
    y = np.concatenate([2 * x + rng.normal(size=200), 30 + x_exact])  # six points on a line
    model = MixtureOfExpertsRegressor(2, random_state=0, init_params="kmeans")
    with pytest.warns(DegenerateFitWarning, match="variance held at its floor"):
        model.partial_fit(X, y)
    assert any("floor" in event for event in model.events_)
    with pytest.warns(DegenerateFitWarning, match="floor"):
        model.partial_fit(X, y)
