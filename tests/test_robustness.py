"""Bad input, degenerate fits and invariants under stress, for every estimator."""

import copy
import functools
import warnings

import numpy as np
import pytest
from conftest import assert_monotone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.exceptions import ConvergenceWarning

from skmoe import (
    DegenerateFitWarning,
    HierarchicalMixtureOfExpertsClassifier,
    HierarchicalMixtureOfExpertsRegressor,
    MixtureOfExpertsClassifier,
    MixtureOfExpertsRegressor,
)
from skmoe._em import MixtureOfExpertsModel
from skmoe.datasets import load_tone, make_moe_regression

_DATA_RNG = np.random.default_rng(0)  # the module's fixed data, drawn at import
X_OK = _DATA_RNG.normal(size=(40, 2))
Y_REAL = X_OK @ [1.0, -1.0] + _DATA_RNG.normal(size=40)
Y_COUNT = _DATA_RNG.poisson(2.0, size=40).astype(float)
Y_POS = _DATA_RNG.gamma(2.0, size=40)
del _DATA_RNG  # no test draws from a generator another test has used
Y_BIN = (Y_REAL > 0).astype(float)
Y_LABEL = np.where(Y_REAL > 0, "up", "down")

ESTIMATORS = {
    "gaussian": (MixtureOfExpertsRegressor(2), Y_REAL),
    "poisson": (MixtureOfExpertsRegressor(2, expert="poisson"), Y_COUNT),
    "gamma": (MixtureOfExpertsRegressor(2, expert="gamma"), Y_POS),
    "bernoulli": (MixtureOfExpertsRegressor(2, expert="bernoulli"), Y_BIN),
    "classifier": (MixtureOfExpertsClassifier(2), Y_LABEL),
    "hme": (HierarchicalMixtureOfExpertsRegressor(2, 2), Y_REAL),
    "hme-classifier": (HierarchicalMixtureOfExpertsClassifier(2, 2), Y_LABEL),
}


def _with_nan(a, value=np.nan):
    a = np.array(a, dtype=float)
    a.flat[3] = value
    return a


BAD_INPUTS = [
    ("X NaN", lambda X, y: (_with_nan(X), y, None), "NaN"),
    ("X inf", lambda X, y: (_with_nan(X, np.inf), y, None), "infinity"),
    ("empty", lambda X, y: (X[:0], y[:0], None), "0 sample"),
    ("too few samples", lambda X, y: (X[:1], y[:1], None), "n_samples=1|1 class|2 classes"),
    ("X 1-D", lambda X, y: (X[:, 0], y, None), "2D array"),
    ("y length", lambda X, y: (X, y[:-1], None), "inconsistent numbers of samples"),
    ("weight NaN", lambda X, y: (X, y, _with_nan(np.ones(40))), "NaN"),
    ("weight negative", lambda X, y: (X, y, -np.ones(40)), "[Nn]egative"),
    ("weight all zero", lambda X, y: (X, y, np.zeros(40)), "zero"),
    ("weight shape", lambda X, y: (X, y, np.ones(39)), r"sample_weight.shape|\(39,\)"),
]


@pytest.mark.parametrize("name", ESTIMATORS)
@pytest.mark.parametrize("case, make, message", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_gets_a_clear_error(name, case, make, message):
    estimator, y = ESTIMATORS[name]
    X_bad, y_bad, weight = make(X_OK, y)
    with pytest.raises(ValueError, match=message):
        copy.deepcopy(estimator).fit(X_bad, y_bad, sample_weight=weight)


@pytest.mark.parametrize("name", ["gaussian", "poisson", "gamma"])
def test_nan_in_y_gets_a_clear_error(name):
    estimator, y = ESTIMATORS[name]
    with pytest.raises(ValueError, match="NaN"):
        copy.deepcopy(estimator).fit(X_OK, _with_nan(y))


@pytest.mark.parametrize(
    "name, y_bad, message",
    [
        ("poisson", -Y_COUNT - 1, "non-negative"),
        ("gamma", -Y_POS, "strictly positive"),
        ("bernoulli", Y_REAL, r"\{0, 1\}"),
        ("classifier", Y_REAL, "Unknown label type"),
        ("hme-classifier", Y_REAL, "Unknown label type"),
    ],
)
def test_response_of_the_wrong_kind(name, y_bad, message):
    with pytest.raises(ValueError, match=message):
        copy.deepcopy(ESTIMATORS[name][0]).fit(X_OK, y_bad)


@pytest.mark.parametrize("name", ESTIMATORS)
@pytest.mark.parametrize(
    "selection, message",
    [
        ([5], "out of range"),
        ([True], "boolean mask"),
        (["nope"], "no column names"),
        ([0.5], "column indices"),
    ],
)
def test_feature_selection_naming_missing_columns(name, selection, message):
    estimator, y = ESTIMATORS[name]
    for key in ("gate_features", "expert_features"):
        with pytest.raises(ValueError, match=f"{key}.*{message}|{message}"):
            copy.deepcopy(estimator).set_params(**{key: selection}).fit(X_OK, y)


def test_unknown_column_name_in_a_dataframe():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(X_OK, columns=["a", "b"])
    with pytest.raises(ValueError, match="gate_features names columns not in X"):
        MixtureOfExpertsRegressor(gate_features=["c"]).fit(frame, Y_REAL)


# ----------------------------------------------------------------- degenerate fits
def test_variance_collapse_is_held_at_the_floor_and_reported():
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, size=200)
    y = 2 * x + rng.normal(size=200)
    x_exact = np.linspace(-1, 1, 6)
    X = np.concatenate([x, x_exact])[:, None]
    y = np.concatenate([y, 30 + x_exact])  # six points exactly on a line, far away
    model = MixtureOfExpertsRegressor(2, n_init=3, random_state=0, init_params="kmeans")
    with pytest.warns(DegenerateFitWarning, match="floor"):
        model.fit(X, y)
    assert any("floor" in event for event in model.events_)
    assert np.all(np.isfinite(model.expert_variance_)) and model.expert_variance_.min() > 0
    assert np.all(np.isfinite(model.predict(X)))


def test_an_expert_with_no_responsibility_is_kept_and_reported():
    X, y = load_tone(return_X_y=True)
    resp = np.zeros((len(y), 3))
    resp[:, 0] = 1.0  # experts 1 and 2 never get a sample
    model = MixtureOfExpertsRegressor(3, init_params=resp)
    with pytest.warns(DegenerateFitWarning, match="collapsed"):
        model.fit(X, y)
    assert sum("collapsed" in event for event in model.events_) == 2
    for value in (model.expert_coef_, model.expert_variance_, model.gate_coef_):
        assert np.all(np.isfinite(value))
    assert np.all(np.isfinite(model.score_samples(X, y)))


def test_a_separating_gate_without_penalty_stays_finite_and_warns():
    rng = np.random.default_rng(2)
    x = rng.uniform(-1, 1, size=300)
    y = np.where(x < 0, 0.0, 10.0) + 0.1 * rng.normal(size=300)
    model = MixtureOfExpertsRegressor(2, gate_alpha=0.0, expert_features=[], random_state=0)
    with pytest.warns(DegenerateFitWarning, match="separates"):
        model.fit(x[:, None], y)
    assert np.all(np.isfinite(model.gate_coef_))
    assert np.all(np.isfinite(model.predict(x[:, None])))
    # with the default penalty the same data fit without a warning
    with warnings.catch_warnings():
        warnings.simplefilter("error", DegenerateFitWarning)
        MixtureOfExpertsRegressor(2, expert_features=[], random_state=0).fit(x[:, None], y)


STRESS = {
    "collinear": lambda X, y: (np.column_stack([X, X[:, :1] * 2.0]), y),
    "constant feature": lambda X, y: (np.column_stack([X, np.ones(len(y))]), y),
    "duplicated rows": lambda X, y: (np.vstack([X, X]), np.concatenate([y, y])),
    "scales 1e-8 to 1e8": lambda X, y: (X * [1e-8, 1e8], y),
    "constant y": lambda X, y: (X, np.full(len(y), 3.0)),
}


@pytest.mark.filterwarnings("ignore::skmoe.DegenerateFitWarning")
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("name", ["gaussian", "poisson", "hme", "classifier"])
@pytest.mark.parametrize("case", STRESS)
def test_awkward_data_fits_with_finite_predictions(name, case):
    estimator, y = ESTIMATORS[name]
    if case == "constant y" and name == "classifier":
        pytest.skip("a constant label is one class, refused with a clear error above")
    if case == "constant y" and name == "poisson":
        X, y = X_OK, np.full(40, 3.0)
    else:
        X, y = STRESS[case](X_OK, y)
    model = copy.deepcopy(estimator).set_params(random_state=0).fit(X, y)
    assert np.isfinite(model.log_likelihood_)
    output = model.predict_proba(X) if hasattr(model, "predict_proba") else model.predict(X)
    assert np.all(np.isfinite(output))


# ------------------------------------------------------------- atomic refits
def _fitted_state(model):
    return {key: copy.deepcopy(value) for key, value in vars(model).items()}


def _assert_same_state(a, b):
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], np.ndarray):
            np.testing.assert_array_equal(a[key], b[key])


def test_a_failed_refit_leaves_the_model_unchanged():
    X, y = load_tone(return_X_y=True)
    model = MixtureOfExpertsRegressor(2, random_state=0).fit(X, y)
    before, predictions = _fitted_state(model), model.predict(X)
    with pytest.raises(ValueError):
        model.fit(np.column_stack([X, X]), _with_nan(y))
    _assert_same_state(before, _fitted_state(model))
    np.testing.assert_array_equal(model.predict(X), predictions)


def test_an_interrupted_refit_leaves_the_model_unchanged(monkeypatch):
    X, y = load_tone(return_X_y=True)
    model = MixtureOfExpertsRegressor(2, random_state=0).fit(X, y)
    before, predictions = _fitted_state(model), model.predict(X)
    calls = {"n": 0}
    original = MixtureOfExpertsModel.m_step_blocks

    def interrupt(self, source, params):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(self, source, params)

    monkeypatch.setattr(MixtureOfExpertsModel, "m_step_blocks", interrupt)
    with pytest.raises(KeyboardInterrupt):
        model.set_params(random_state=1).fit(X[::-1] * 2, y[::-1])
    _assert_same_state(before, {**_fitted_state(model), "random_state": 0})
    np.testing.assert_array_equal(model.predict(X), predictions)


# ---------------------------------------------------------------- invariants
@pytest.mark.parametrize("name", ["gaussian", "poisson", "classifier", "hme"])
def test_refit_and_shuffled_rows_give_the_same_fit(name):
    estimator, _ = ESTIMATORS[name]
    X, y = make_moe_regression(300, 2, 2, random_state=3)
    if name == "poisson":
        y = np.round(np.exp(y / y.std()))
    elif name == "classifier":
        y = (y > np.median(y)).astype(int)
    order = np.random.default_rng(0).permutation(300)
    params = {"random_state": 0, "tol": 1e-10, "max_iter": 2000}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateFitWarning)
        a = copy.deepcopy(estimator).set_params(**params).fit(X, y)
        b = copy.deepcopy(estimator).set_params(**params).fit(X, y)
        c = copy.deepcopy(estimator).set_params(**params).fit(X[order], y[order])
    assert a.log_likelihood_ == b.log_likelihood_
    assert c.log_likelihood_ == pytest.approx(a.log_likelihood_, rel=1e-8, abs=1e-8)


def _data(draw, kind):
    n = draw(st.integers(8, 40))
    p = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p)) * draw(st.sampled_from([1e-3, 1.0, 1e3]))
    signal = X.sum(axis=1) / X.std()
    if kind == "gaussian":
        y = signal + rng.normal(size=n)
    elif kind == "poisson":
        y = rng.poisson(np.exp(np.clip(signal, -3, 3))).astype(float)
    elif kind == "gamma":
        y = rng.gamma(2.0, np.exp(np.clip(signal, -3, 3)))
    else:
        y = (signal + rng.normal(size=n) > 0).astype(float)
        y[:2] = [0.0, 1.0]
    weights = rng.uniform(0.1, 3.0, size=n) if draw(st.booleans()) else None
    return X, y, weights


# Found by hypothesis in test_property_fits_end_finite_and_monotone[gamma]: one Gamma expert
# nearly interpolates its 5 rows (shape 2.2e6); v log v and gammaln(v) in its log density
# then cancelled to 5.8e-8 of 35.5, and the M-step seemed to lower the objective.
def test_gamma_fit_with_a_huge_shape_is_monotone():
    rng = np.random.default_rng(350)
    X = rng.normal(size=(11, 2)) * 1000.0
    signal = X.sum(axis=1) / X.std()
    y = rng.gamma(2.0, np.exp(np.clip(signal, -3, 3)))
    weights = rng.uniform(0.1, 3.0, size=11)
    model = MixtureOfExpertsRegressor(2, expert="gamma", gate_alpha=0.0, expert_alpha=0.1,
                                      gate_features=[0], random_state=0, max_iter=100)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", DegenerateFitWarning)
        warnings.simplefilter("error", RuntimeWarning)
        model.fit(X, y, sample_weight=weights)
    assert_monotone(model.objective_trace_, rtol=1e-9)


@pytest.mark.parametrize(
    "kind", ["gaussian", "poisson", "gamma", "bernoulli", "classifier", "hme"]
)
# derandomize: the same examples on every run, so that CI does not fail on a new draw; the
# one draw that failed (a Gamma fit) is kept as its own test above
@settings(max_examples=15, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_property_fits_end_finite_and_monotone(kind, data):
    family = {"classifier": "bernoulli", "hme": "gaussian"}.get(kind, kind)
    X, y, weights = _data(data.draw, family)
    K = data.draw(st.integers(1, 3))
    params = {
        "gate_alpha": data.draw(st.sampled_from([0.0, 0.01, 1.0])),
        "expert_alpha": data.draw(st.sampled_from([0.0, 0.1, 1.0])),
        "gate_features": data.draw(st.sampled_from([None, [], [0]])),
        "random_state": 0,
        "max_iter": 100,
    }
    if kind == "classifier":
        model = MixtureOfExpertsClassifier(K, **params)
    elif kind == "hme":
        model = HierarchicalMixtureOfExpertsRegressor(1 + (K > 1), 2, **params)
    else:
        model = MixtureOfExpertsRegressor(K, expert=family, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", DegenerateFitWarning)
        model.fit(X, y, sample_weight=weights)
    trace = model.objective_trace_
    assert_monotone(trace, rtol=1e-9)
    assert np.isfinite(model.log_likelihood_)
    for value in (model.expert_coef_, model.expert_intercept_, model.gate_coef_):
        assert np.all(np.isfinite(value))
    assert np.all(np.isfinite(model.score_samples(X, y)))
    output = model.predict_proba(X) if kind == "classifier" else model.predict(X)
    assert np.all(np.isfinite(output))


@pytest.mark.parametrize(
    "expert, n, p, seed, scale, expert_alpha, gate_features",
    [("poisson", 8, 1, 0, 1.0, 0.0, None), ("poisson", 8, 1, 0, 1e-3, 0.0, None),
     ("gamma", 27, 3, 237, 1e-3, 0.1, [0])],
)
def test_squarem_overflow_rejects_the_extrapolation_and_predict_stays_finite(
    expert, n, p, seed, scale, expert_alpha, gate_features
):
    """Cases hypothesis found: a SQUAREM extrapolation far out (a log-dispersion or a
    linear predictor whose exp overflows) must be rejected without a warning (warnings are
    errors here), and a log-link expert with a huge mean where its gate is near 0 must not
    overflow predict's moments."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p)) * scale
    signal = X.sum(axis=1) / X.std()
    mean = np.exp(np.clip(signal, -3, 3))
    y = rng.poisson(mean).astype(float) if expert == "poisson" else rng.gamma(2.0, mean)
    model = MixtureOfExpertsRegressor(
        2, expert=expert, gate_alpha=0.0, expert_alpha=expert_alpha,
        gate_features=gate_features, random_state=0, max_iter=100,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", DegenerateFitWarning)
        model.fit(X, y)
    trace = model.objective_trace_
    assert_monotone(trace, rtol=1e-9)
    center, std = model.predict(X, return_std=True)
    assert np.all(np.isfinite(center)) and np.all(np.isfinite(std))
    np.testing.assert_array_equal(model.predict(X), center)


# ------------------------------------------------------- y given after fit
@functools.cache
def _fitted(name):
    estimator, y = ESTIMATORS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", DegenerateFitWarning)
        return copy.deepcopy(estimator).set_params(random_state=0, max_iter=20).fit(X_OK, y)


#: Every public method that takes y after fit, called on (model, X, y).
Y_METHODS = {
    "score_samples": lambda m, X, y: m.score_samples(X, y),
    "predict_responsibilities": lambda m, X, y: m.predict_responsibilities(X, y),
    "bic": lambda m, X, y: m.bic(X, y),
    "aic": lambda m, X, y: m.aic(X, y),
    "icl": lambda m, X, y: m.icl(X, y),
    "standard_errors": lambda m, X, y: m.standard_errors(X, y),
    "summary": lambda m, X, y: m.summary(X, y),
    "score": lambda m, X, y: m.score(X, y),
    "partial_fit": lambda m, X, y: copy.deepcopy(m).partial_fit(X, y),
}

#: y outside each estimator's support (unknown labels for classifiers).
WRONG_LABELS = {
    "gaussian": np.nan,
    "poisson": -1.0,
    "gamma": 0.0,
    "bernoulli": 0.5,
    "classifier": "sideways",
    "hme": np.inf,
    "hme-classifier": 7,
}


def _wrong_y(draw, name, kind):
    y = ESTIMATORS[name][1]
    if kind == "length":
        n = draw(st.sampled_from([0, 1, len(y) - 1, len(y) + 1, 2 * len(y)]))
        return np.resize(y, n), "inconsistent numbers of samples"
    if kind == "shape":
        shaped = draw(st.sampled_from([y[:, None], np.column_stack([y, y]), y[None, :]]))
        return shaped, "1d array|inconsistent numbers of samples"
    bad = np.array(y, dtype=object if name.endswith("classifier") else float)
    bad[draw(st.integers(0, len(y) - 1))] = WRONG_LABELS[name]
    return bad, None


@pytest.mark.parametrize("kind", ["length", "shape", "labels"])
@pytest.mark.parametrize("method", sorted(Y_METHODS))
@pytest.mark.parametrize("name", sorted(ESTIMATORS))
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_property_methods_refuse_y_that_does_not_fit_x(name, method, kind, data):
    y_bad, message = _wrong_y(data.draw, name, kind)
    with pytest.raises(ValueError, match=message):
        Y_METHODS[method](_fitted(name), X_OK, y_bad)


def test_a_target_of_the_wrong_shape_is_refused_before_any_large_array():
    # (n, 1) labels used to build an (n_classes, n, n) array (160 GB at n = 1e5) first
    model = _fitted("classifier")
    with pytest.raises(ValueError, match=r"1d array, got an array of shape \(40, 1\)"):
        model.score_samples(X_OK, Y_LABEL[:, None])
    with pytest.raises(ValueError, match="inconsistent numbers of samples: \\[40, 1\\]"):
        _fitted("gaussian").predict_responsibilities(X_OK, Y_REAL[:1])


@pytest.mark.parametrize("method", sorted(Y_METHODS))
def test_a_model_fitted_with_exposure_needs_it_wherever_y_is_given(method):
    rng = np.random.default_rng(121)
    exposure = np.exp(rng.normal(size=40))
    model = MixtureOfExpertsRegressor(2, expert="poisson", random_state=0)
    model.fit(X_OK, Y_COUNT, exposure=exposure)
    with pytest.raises(ValueError, match="fitted with exposure=; pass the exposure"):
        Y_METHODS[method](model, X_OK, Y_COUNT)
    # with it every method works; predict takes the documented default (exposure 1)
    assert np.isfinite(model.bic(X_OK, Y_COUNT, exposure=exposure))
    np.testing.assert_allclose(model.predict(X_OK), model.predict(X_OK, exposure=np.ones(40)))


# ------------------------------------------------------------ variance floor
def test_one_outlier_does_not_lift_the_variance_floor():
    X, y = make_moe_regression(500, 1, 2, random_state=0)
    y = y.copy()
    y[0] = 1e7  # the old floor, 1e-6 var(y), was 2e5: every expert was held there
    assert 1e-6 * np.var(y) > 1e5
    model = MixtureOfExpertsRegressor(3, n_init=3, random_state=0)
    with pytest.warns(DegenerateFitWarning, match="variance at its floor"):
        model.fit(X, y)
    assert any("expert 2: variance held at its floor" in e for e in model.events_)
    assert model._family.variance_floor < 1e-4
    assert np.all(model.expert_variance_[:2] < 1.0)  # the clean experts fit their noise
    width = np.diff(model.predict_interval(X[1:], coverage=0.9), axis=1)
    assert np.median(width) < 10.0
    # settable, like GaussianMixture.reg_covar
    floored = MixtureOfExpertsRegressor(3, n_init=3, random_state=0, variance_floor=2.0)
    with pytest.warns(DegenerateFitWarning, match="floor"):
        floored.fit(X, y)
    assert any("floor 2" in e for e in floored.events_)
    assert np.all(floored.expert_variance_ >= 2.0)
    hme = HierarchicalMixtureOfExpertsRegressor(1, 3, variance_floor=2.0, random_state=0)
    with pytest.warns(DegenerateFitWarning, match="floor"):
        assert np.all(hme.fit(X, y).expert_variance_ >= 2.0)
    assert any("floor 2" in e for e in hme.events_)


# ------------------------------------------------- refits that change structure
X_REG, Y_REG = make_moe_regression(300, 2, 2, random_state=0)

STRUCTURE_CHANGES = [
    ("n_experts", MixtureOfExpertsRegressor(2), {"n_experts": 3}, X_REG, Y_REG,
     "number of experts changed from 2 to 3"),
    ("features", MixtureOfExpertsRegressor(2), {}, X_REG[:, :1], Y_REG,
     "number of features changed from 2 to 1"),
    ("gate_features", MixtureOfExpertsRegressor(2), {"gate_features": [1]}, X_REG, Y_REG,
     r"columns of gate_features changed from \(0, 1\) to \(1,\)"),
    ("depth", HierarchicalMixtureOfExpertsRegressor(2), {"depth": 3}, X_REG, Y_REG,
     "depth of the tree changed from 2 to 3"),
    ("classes", MixtureOfExpertsClassifier(2), {}, X_REG, np.digitize(Y_REG, [-1, 1]),
     r"classes changed from \(False, True\) to \(0, 1, 2\)"),
    ("family", MixtureOfExpertsRegressor(2), {"expert": "poisson"}, X_REG,
     np.round(np.exp(Y_REG / 4)), "expert family changed from 'gaussian' to 'poisson'"),
]


@pytest.mark.filterwarnings("ignore::skmoe.DegenerateFitWarning")
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # tiny data
@pytest.mark.parametrize(
    "estimator, change, X, y, message",
    [case[1:] for case in STRUCTURE_CHANGES],
    ids=[case[0] for case in STRUCTURE_CHANGES],
)
def test_warm_start_after_a_structural_change_starts_fresh_and_says_why(
    estimator, change, X, y, message
):
    first_y = Y_REG > 0 if "classes" in message else Y_REG
    model = copy.deepcopy(estimator).set_params(warm_start=True, random_state=0)
    model.fit(X_REG, first_y).set_params(**change)
    with pytest.warns(UserWarning, match=f"warm_start=True, but .*{message}.*fresh start"):
        model.fit(X, y)
    fresh = copy.deepcopy(estimator).set_params(**change, random_state=0).fit(X, y)
    assert model.log_likelihood_ == fresh.log_likelihood_
    # partial_fit does not silently continue the old structure either
    model = copy.deepcopy(estimator).set_params(random_state=0).fit(X_REG, first_y)
    model.set_params(**change)
    if "features" not in message and "classes" not in message:  # refused by validation
        with pytest.raises(ValueError, match=f"structure changed .*{message}"):
            model.partial_fit(X, y)


@pytest.mark.filterwarnings("ignore::skmoe.DegenerateFitWarning")
def test_attributes_of_a_previous_model_do_not_survive_a_refit():
    model = MixtureOfExpertsRegressor(2, random_state=0).fit(X_REG, Y_REG)
    assert hasattr(model, "expert_variance_")
    model.set_params(expert="poisson").fit(X_REG, np.round(np.exp(Y_REG / 4)))
    assert not hasattr(model, "expert_variance_")
    model.set_params(expert="gamma").fit(X_REG, np.exp(Y_REG / 4))
    assert hasattr(model, "expert_dispersion_")
    model.set_params(expert="gaussian").fit(X_REG, Y_REG)
    assert not hasattr(model, "expert_dispersion_")
    model.partial_fit(X_REG, Y_REG)
    assert model.n_batches_seen_ == 1
    model.fit(X_REG, Y_REG)
    assert not hasattr(model, "n_batches_seen_") and not hasattr(model, "batch_log_likelihood_")
    assert model.partial_fit(X_REG, Y_REG).n_batches_seen_ == 1


# ---------------------------------------------------------------------- scale
def _lstsq_em(X, y, resp, n_iter=2000):
    """EM for a mixture of linear regressions with constant weights, each M-step by
    ``numpy.linalg.lstsq`` on the sqrt-weighted rows: the direct reference fit."""
    X1 = np.column_stack([np.ones(len(y)), X])
    for _ in range(n_iter):
        weights = resp.sum(axis=0) / len(y)
        coef = np.array([
            np.linalg.lstsq(X1 * np.sqrt(r)[:, None], y * np.sqrt(r), rcond=None)[0]
            for r in resp.T
        ])
        resid = y[:, None] - X1 @ coef.T
        variance = (resp * resid**2).sum(axis=0) / resp.sum(axis=0)
        log_joint = (np.log(weights) - 0.5 * np.log(2 * np.pi * variance)
                     - 0.5 * resid**2 / variance)
        log_lik = np.logaddexp.reduce(log_joint, axis=1)
        resp = np.exp(log_joint - log_lik[:, None])
    return log_lik.sum()


def test_columns_in_very_different_units_fit_as_lstsq_does():
    # a column times 1e4 next to one times 1e-4 used to drop the log-likelihood from
    # -243.6 to -631.3, reported as converged
    X, y = make_moe_regression(300, 2, 2, random_state=0)
    resp = np.random.default_rng(0).dirichlet([1.0, 1.0], size=300)
    settings = {"gate_features": [], "init_params": resp, "tol": 1e-12, "max_iter": 5000}
    plain = MixtureOfExpertsRegressor(2, **settings).fit(X, y)
    scaled = MixtureOfExpertsRegressor(2, **settings).fit(X * [1e4, 1e-4], y)
    reference = _lstsq_em(X * [1e4, 1e-4], y, resp)
    assert scaled.log_likelihood_ == pytest.approx(reference, rel=1e-8)
    assert plain.log_likelihood_ == pytest.approx(reference, rel=1e-8)
    np.testing.assert_allclose(scaled.expert_coef_ * [1e4, 1e-4], plain.expert_coef_, rtol=1e-5)
    # and with the gate on both columns (gate_alpha=0, the model is affine invariant)
    gated = {"gate_alpha": 0.0, "init_params": resp, "tol": 1e-12, "max_iter": 5000}
    a = MixtureOfExpertsRegressor(2, **gated).fit(X, y)
    b = MixtureOfExpertsRegressor(2, **gated).fit(X * [1e4, 1e-4], y)
    assert b.log_likelihood_ == pytest.approx(a.log_likelihood_, rel=1e-8)


@pytest.mark.parametrize("expert, K", [("gamma", 2), ("gamma", 1), ("poisson", 1)])
@pytest.mark.parametrize("scale", [1e-30, 1e30])
def test_log_link_fits_are_equivariant_to_the_scale_of_y(expert, K, scale):
    # Gamma experts on y near 1e-30 used to predict 1e-12 whatever the data, converged
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 1))
    mean = np.exp(np.where(X[:, 0] > 0, X[:, 0], -0.5))
    y = rng.gamma(2.0, mean / 2.0) if expert == "gamma" else rng.poisson(mean).astype(float)
    init = rng.dirichlet(np.ones(K), size=200)
    settings = {"expert": expert, "init_params": init, "tol": 1e-10, "max_iter": 5000}
    base = MixtureOfExpertsRegressor(K, **settings).fit(X, y)
    model = MixtureOfExpertsRegressor(K, **settings).fit(X, scale * y)
    assert model.converged_ and not model.events_
    # two Gamma experts converge slowly, and the stopping rule's rounding floor grows with
    # the magnitude of the objective (n log(scale) larger): the fits stop a few 1e-6 apart
    rtol = 1e-8 if K == 1 else 1e-5
    np.testing.assert_allclose(model.predict(X), scale * base.predict(X), rtol=rtol)


def test_a_fit_that_never_leaves_its_start_is_reported(monkeypatch):
    import skmoe._families

    # the old absolute floor of the start (a mean of 1e-12 for y near 1e-30)
    monkeypatch.setattr(skmoe._families, "start_means", lambda w, t, m: np.full(t.shape, 1e-12))
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(200, 1)), 1e-30 * rng.gamma(2.0, size=200)
    model = MixtureOfExpertsRegressor(2, expert="gamma", random_state=0)
    with pytest.warns(DegenerateFitWarning):
        model.fit(X, y)
    assert not model.converged_
    assert sum("did not leave its start" in event for event in model.events_) == 2


@pytest.mark.parametrize("case", ["values near 1e300", "all-zero init_params"])
def test_no_linalg_error_and_no_lapack_message(case, capfd):
    # both used to print "On entry to DLASCL parameter number 4 had an illegal value" on
    # stdout and raise LinAlgError("SVD did not converge")
    X, y = make_moe_regression(300, 2, 2, random_state=0)
    if case == "values near 1e300":
        X = np.column_stack([X, 1e300 * np.random.default_rng(0).uniform(1, 2, 300)])
        model, message = MixtureOfExpertsRegressor(2, random_state=0), "too large.*rescale X"
    else:
        model = MixtureOfExpertsRegressor(2, init_params=np.zeros((300, 2)))
        message = "init_params .* rows with a positive sum"
    with pytest.raises(ValueError, match=message):
        model.fit(X, y)
    out, err = capfd.readouterr()
    assert "DLASCL" not in out + err and out == ""


def test_a_singular_system_solves_quietly(capfd):
    from skmoe._linalg import solve_spd

    A = np.array([[[1.0, 1.0], [1.0, 1.0]], [[np.inf, 0.0], [0.0, 1.0]], [[1e8, 0], [0, 1e-8]]])
    b = np.array([[2.0, 2.0], [1.0, 1.0], [1e8, 1e-8]])
    x = solve_spd(A, b)
    np.testing.assert_allclose(x[0], [1.0, 1.0])
    assert np.all(np.isnan(x[1]))  # a non-finite system is not passed to LAPACK
    np.testing.assert_allclose(x[2], [1.0, 1.0], rtol=1e-12)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


# ------------------------------------------------------------- smaller checks
def test_arguments_of_predictions_and_helpers_are_checked():
    from sklearn.exceptions import NotFittedError

    from skmoe import export_text, select_n_experts

    model = _fitted("gaussian")
    for levels, message in [
        ([np.nan], "strictly between 0 and 1; got \\[nan\\]"),
        ([[0.1, 0.5]], "1-D list of levels; got an array of shape \\(1, 2\\)"),
        ([], "shape \\(0,\\)"),
    ]:
        with pytest.raises(ValueError, match=message):
            model.predict_quantiles(X_OK, levels)
    with pytest.raises(ValueError, match="coverage"):
        model.predict_interval(X_OK, coverage=np.nan)
    for n in (-1, 0, 1.5):
        with pytest.raises(ValueError, match="n_samples must be a positive integer"):
            model.sample_y(X_OK, n_samples=n)
        with pytest.raises(ValueError, match="n_samples must be a positive integer"):
            _fitted("classifier").sample_y(X_OK, n_samples=n)
    with pytest.raises(ValueError, match="at least one value of 'n_experts'"):
        select_n_experts(MixtureOfExpertsRegressor(), X_OK, Y_REAL, [])
    for names in (["a"], ["a", "b", "c"]):
        with pytest.raises(ValueError, match="must name the 2 input columns; got"):
            export_text(model, names)
    with pytest.raises(NotFittedError):
        export_text(MixtureOfExpertsRegressor())
