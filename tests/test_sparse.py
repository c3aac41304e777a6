"""Sparse X (scipy CSR and CSC): equal to the dense fit, never densified; wide designs
fitted matrix-free; one-hot features in a pipeline."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import assert_log_likelihood_increasing
from sklearn.base import clone
from sklearn.compose import make_column_transformer
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from skmoe import (
    DegenerateFitWarning,
    HierarchicalMixtureOfExpertsClassifier,
    HierarchicalMixtureOfExpertsRegressor,
    MixtureOfExpertsClassifier,
    MixtureOfExpertsRegressor,
    _init,
    _linalg,
)

FORMATS = [sp.csr_matrix, sp.csc_array]


def _design(n=300, p=5, seed=0):
    """Features that are zero 60% of the time (one of them a 0/1 indicator)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p)) * (rng.random((n, p)) < 0.4)
    X[:, 0] = rng.random(n) < 0.5
    return X, rng


def _data(kind, n=300, p=5, seed=0):
    X, rng = _design(n, p, seed)
    regime = X[:, 0] > 0
    eta = np.where(regime, 0.5 + X[:, 1], -0.5 - X[:, 2])
    if kind == "gaussian":
        y = eta + 0.3 * rng.normal(size=n)
    elif kind == "poisson":
        y = rng.poisson(np.exp(0.5 * eta)).astype(float)
    elif kind == "gamma":
        y = rng.gamma(2.0, np.exp(0.5 * eta) / 2.0)
    elif kind == "bernoulli":
        y = (rng.random(n) < 1 / (1 + np.exp(-2 * eta))).astype(float)
    else:  # classes
        y = np.digitize(eta + 0.3 * rng.normal(size=n), [-0.5, 0.5])
    return X, y


#: Sparse X takes random starts only (the default search skips its k-means start, which
#: measures dense distances), so the dense fit it is compared with starts the same way.
START = {"init_params": "random", "random_state": 0}
CASES = [
    ("gaussian", MixtureOfExpertsRegressor(2, **START)),
    ("poisson", MixtureOfExpertsRegressor(2, expert="poisson", **START)),
    ("gamma", MixtureOfExpertsRegressor(2, expert="gamma", **START)),
    ("bernoulli", MixtureOfExpertsRegressor(2, expert="bernoulli", expert_alpha=1.0,
                                            **START)),
    ("bernoulli", MixtureOfExpertsClassifier(2, **START)),
    ("classes", MixtureOfExpertsClassifier(2, **START)),
    # plain EM: on these two SQUAREM's step length, |r| / |v| of steps near the rounding
    # level, amplifies the sparse and dense products' rounding (1e-6 apart after 50
    # iterations, 1e-12 with plain EM)
    ("gaussian", HierarchicalMixtureOfExpertsRegressor(depth=2, acceleration=None, **START)),
    ("classes", HierarchicalMixtureOfExpertsClassifier(depth=2, acceleration=None, **START)),
    ("bernoulli", HierarchicalMixtureOfExpertsClassifier(depth=2, **START)),
]
#: The hierarchical classifiers creep on these separable data and run to max_iter (the
#: stopping rule asks for the distance to the limit); rounding differences of sparse and
#: dense products, and truncated-Newton stopping decisions that flip on rounding, then
#: leave them up to 1e-5 apart, while the other models agree to 1e-12.
SEEDS = {7: 1}
ATOL = {7: 1e-4, 8: 1e-4}
IDS = [f"{type(est).__name__}-{kind}" for kind, est in CASES]


def _fit(est, X, y, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateFitWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)  # the same iterations either way
        return est.fit(X, y, **kwargs)


def _outputs(est, X, y):
    out = {
        "expert_coef": est.expert_coef_,
        "gate_coef": est.gate_coef_,
        "log_likelihood": est.log_likelihood_,
        "n_iter": est.n_iter_,
        "predict_gate": est.predict_gate(X),
        "score_samples": est.score_samples(X, y),
        "responsibilities": est.predict_responsibilities(X, y),
    }
    if hasattr(est, "predict_proba"):
        out["proba"] = est.predict_proba(X)
    else:
        out["predict"] = est.predict(X)
    return out


def _assert_same(a, b, atol=1e-8):
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=max(atol, 1e-8), atol=atol, err_msg=key)


@pytest.mark.parametrize("case", range(len(CASES)), ids=IDS)
def test_sparse_fit_equals_dense_fit(case):
    kind, est = CASES[case]
    X, y = _data(kind, seed=SEEDS.get(case, 0))
    model = _fit(est, X, y)
    dense = _outputs(model, X, y)
    for fmt in FORMATS:
        Xs = fmt(X)
        # a model fitted on dense data predicts on sparse data
        _assert_same(dense, _outputs(model, Xs, y), atol=1e-12)
        _assert_same(dense, _outputs(_fit(clone(est), Xs, y), Xs, y), ATOL.get(case, 1e-8))


@pytest.mark.parametrize("kind, est", [CASES[0], CASES[5]], ids=[IDS[0], IDS[5]])
def test_sparse_feature_subsets_weights_and_partial_fit(kind, est):
    X, y = _data(kind, n=400)
    w = np.random.default_rng(1).uniform(0.5, 2.0, size=len(y))
    est = est.set_params(gate_features=[0, 3], expert_features=[1, 2, 4])
    _assert_same(_outputs(_fit(est, X, y, sample_weight=w), X, y),
                 _outputs(_fit(est, sp.csr_matrix(X), y, sample_weight=w), X, y))
    extra = {"classes": np.unique(y)} if kind == "classes" else {}
    online = [est.__class__(**est.get_params()) for _ in range(2)]
    for rows in np.array_split(np.arange(len(y)), 4):
        online[0].partial_fit(X[rows], y[rows], **extra)
        online[1].partial_fit(sp.csc_matrix(X[rows]), y[rows], **extra)
    for a, b in [(online[0].expert_coef_, online[1].expert_coef_),
                 (online[0].gate_coef_, online[1].gate_coef_)]:
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)


def test_row_hash_of_a_sparse_row_equals_its_dense_copy():
    X, _ = _design(50, 6)
    X[3] = 0.0  # an empty row
    X[-1] = 0.0  # an empty last row
    X[5, 2] = -0.0
    keys = _init.row_keys(6 + 1, np.random.default_rng(0))
    y = np.arange(50.0)
    dense = _init.row_uniforms([X, y], 3, keys)
    S = sp.csr_matrix(X)
    S.data[:2] = [0.0, -0.0]  # explicit zeros, one of them negative
    X = S.toarray()
    dense = _init.row_uniforms([X, y], 3, keys)
    for part in (S, sp.csc_matrix(X), sp.csr_array(X)):
        np.testing.assert_array_equal(_init.row_uniforms([part, y], 3, keys), dense)
    # duplicate entries add up as in the dense matrix
    coo = sp.coo_matrix(X)
    doubled = sp.csr_matrix(
        (np.r_[coo.data / 2, coo.data / 2], (np.r_[coo.row, coo.row], np.r_[coo.col, coo.col])),
        shape=X.shape,
    )
    doubled.has_canonical_format = False
    expected = _init.row_uniforms([doubled.toarray(), y], 3, keys)
    np.testing.assert_array_equal(_init.row_uniforms([doubled, y], 3, keys), expected)


@pytest.fixture
def wide(monkeypatch):
    """Every design counts as wide: the matrix-free M-steps on small problems."""
    monkeypatch.setattr(_linalg, "WIDE_DESIGN", 1)


WIDE_CASES = [CASES[i] for i in (0, 1, 2, 5, 6)]
WIDE_IDS = [IDS[i] for i in (0, 1, 2, 5, 6)]


@pytest.mark.parametrize("kind, est", WIDE_CASES, ids=WIDE_IDS)
def test_matrix_free_fit_reaches_the_direct_fit_and_never_descends(kind, est, monkeypatch):
    X, y = _data(kind, n=400)
    est = est.set_params(tol=1e-10, max_iter=3000, expert_alpha=0.1)
    direct = _fit(est, X, y)
    monkeypatch.setattr(_linalg, "WIDE_DESIGN", 1)
    free = _fit(est, sp.csr_matrix(X), y)
    assert free.objective_ == pytest.approx(direct.objective_, rel=1e-7)
    np.testing.assert_allclose(free.predict_gate(X), direct.predict_gate(X), atol=1e-4)
    # sparse and dense designs take the same matrix-free steps
    _assert_same(_outputs(_fit(est, X, y), X, y), _outputs(free, X, y), atol=1e-7)
    assert_log_likelihood_increasing(est.set_params(tol=1e-6), sp.csr_matrix(X), y, 20)


def _categorical_frame(n=2000, seed=0):
    import pandas as pd

    rng = np.random.default_rng(seed)
    city = rng.integers(50, size=n)
    shop = rng.integers(20, size=n)
    x = rng.normal(size=n)
    effect = rng.normal(size=50)[city] + 0.5 * rng.normal(size=20)[shop]
    regime = x > 0
    y = np.where(regime, effect + 2 * x, -effect) + 0.2 * rng.normal(size=n)
    frame = pd.DataFrame({"city": [f"c{c}" for c in city], "shop": [f"s{s}" for s in shop],
                          "x": x})
    return frame, y


def test_one_hot_columns_in_a_pipeline_stay_sparse():
    frame, y = _categorical_frame()
    encode = make_column_transformer(
        (OneHotEncoder(), ["city", "shop"]), (StandardScaler(), ["x"])
    )
    Xt = encode.fit_transform(frame)
    assert sp.issparse(Xt) and Xt.shape == (2000, 71)
    # a sparse matrix carries no column names: the gate's column by its output index
    names = encode.get_feature_names_out()
    gate = np.flatnonzero(names == "standardscaler__x")
    model = MixtureOfExpertsRegressor(2, expert_alpha=1e-3, random_state=0, gate_features=gate)
    pipe = make_pipeline(encode, model).fit(frame, y)
    assert pipe[-1].converged_
    linear = make_pipeline(encode, Ridge(1e-3)).fit(frame, y)
    assert pipe.score(frame, y) > linear.score(frame, y) + 0.2
    assert pipe[-1].gate_coef_.shape == (2, 1)
    # the same fit as on the dense one-hot matrix
    dense = MixtureOfExpertsRegressor(2, expert_alpha=1e-3, random_state=0,
                                      gate_features=[70]).fit(Xt.toarray(), y)
    np.testing.assert_allclose(pipe[-1].expert_coef_, dense.expert_coef_, rtol=1e-8,
                               atol=1e-8)
    np.testing.assert_allclose(pipe.predict(frame), dense.predict(Xt.toarray()), atol=1e-8)


def test_wide_sparse_classifier_never_forms_a_square_matrix(monkeypatch):
    """p = 3000 columns: the experts and the gate are fitted without any (p+1)^2 array."""
    rng = np.random.default_rng(0)
    n, p = 600, 3000
    X = sp.random(n, p, density=0.005, format="csr", random_state=0)
    y = np.digitize(X[:, :30].sum(axis=1).A1 + 0.1 * rng.normal(size=n), [0.05, 0.15])

    def refuse(X, W):
        raise AssertionError("a weighted Gram matrix of a wide design")

    for module in ("_linalg", "_families", "_gate", "_logit"):
        monkeypatch.setattr(f"skmoe.{module}.weighted_grams", refuse, raising=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = _fit(MixtureOfExpertsClassifier(2, random_state=0, max_iter=30), X, y)
    assert model.score(X, y) > 0.8

