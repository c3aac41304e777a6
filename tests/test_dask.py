"""Fits on data in chunks: in-memory chunks and dask arrays on a real distributed cluster.

The chunked EM sums per-chunk statistics, so its iterates must equal the in-memory fit's
up to the rounding of those sums: every test runs both from the same random start for the
same number of iterations (``tol=0``) and compares every parameter.
"""

import warnings

import joblib
import numpy as np
import pytest
from sklearn.datasets import make_classification

from skmoe import (
    HierarchicalMixtureOfExpertsRegressor,
    MixtureOfExpertsClassifier,
    MixtureOfExpertsRegressor,
    _init,
)
from skmoe.datasets import make_moe_regression, make_regional_classification

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

N_CHUNKS = 10


def _fitted(model):
    names = ["expert_coef_", "expert_intercept_", "gate_coef_", "gate_intercept_",
             "expert_variance_", "expert_dispersion_", "shared_coef_"]
    out = {name: np.copy(getattr(model, name)) for name in names if hasattr(model, name)}
    out["objective_trace_"] = model.objective_trace_.copy()
    return out


def _assert_same_fit(a, b, atol=1e-8):
    assert a.keys() == b.keys()
    a, b = dict(a), dict(b)
    # with tol=0 EM stops at an exact fixed point, which rounding may reach one iteration
    # apart: the longer trace must then sit at the shorter one's last value
    trace_a, trace_b = sorted([a.pop("objective_trace_"), b.pop("objective_trace_")], key=len)
    assert len(trace_b) - len(trace_a) <= 1
    np.testing.assert_allclose(trace_b[len(trace_a):], trace_a[-1], rtol=1e-12)
    np.testing.assert_allclose(trace_a, trace_b[:len(trace_a)], rtol=1e-10, atol=atol)
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-10, atol=atol, err_msg=name)


def _chunked(array, n_rows):
    return da.from_array(array, chunks=(-(-n_rows // N_CHUNKS),) + array.shape[1:])


def _regression(expert="gaussian", n=3000):
    X, y = make_moe_regression(n, 3, 3, random_state=1)[:2]
    exposure = None
    if expert == "poisson":
        y = np.random.default_rng(0).poisson(np.exp(0.3 * y / y.std()))
        exposure = np.random.default_rng(1).uniform(0.5, 2.0, size=n)
    return X, y.astype(float), exposure


# The Gaussian case is the default fit (the search from k-means and random starts, then
# SQUAREM); the others start from one random start, which keeps the suite's time down:
# every pass over a dask array costs a scheduler round trip.
RANDOM = {"init_params": "random"}
CASES = {
    "gaussian": lambda: (MixtureOfExpertsRegressor(3, max_iter=12), *_regression()),
    "poisson": lambda: (MixtureOfExpertsRegressor(2, expert="poisson", max_iter=8, **RANDOM),
                        *_regression("poisson")),
    "hme": lambda: (HierarchicalMixtureOfExpertsRegressor(2, max_iter=8, **RANDOM),
                    *_regression()),
    "shared": lambda: (MixtureOfExpertsRegressor(2, shared_features=[0], shared_variance=True,
                                                 max_iter=8, **RANDOM), *_regression()),
    "classifier": lambda: (
        MixtureOfExpertsClassifier(2, max_iter=8, **RANDOM),
        *make_regional_classification(2000, random_state=0)[:2], None,
    ),
    "multinomial": lambda: (
        MixtureOfExpertsClassifier(2, max_iter=6, **RANDOM),
        *make_classification(1500, n_features=4, n_informative=3, n_redundant=0, n_classes=3,
                             random_state=0), None,
    ),
}


def _fit(model, X, y, exposure, sample_weight):
    kwargs = {} if exposure is None else {"exposure": exposure}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: a fixed number of iterations
        return _fitted(model.fit(X, y, sample_weight=sample_weight, **kwargs))


def test_dask_fit_without_a_client_says_what_to_do():
    if distributed.client._get_global_client() is not None:
        pytest.skip("a client is running in this process")
    X, y, _ = _regression(n=200)
    with pytest.raises(ValueError, match="needs a running dask.distributed Client"):
        MixtureOfExpertsRegressor(2).fit(_chunked(X, 200), _chunked(y, 200))


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
        silence_logs=40,
    )
    with cluster, distributed.Client(cluster) as client:
        yield client


@pytest.mark.parametrize("case", sorted(CASES))
def test_dask_fit_equals_in_memory_fit(client, case):
    model, X, y, exposure = CASES[case]()
    model.set_params(tol=0.0, random_state=0)
    w = np.random.default_rng(2).uniform(0.0, 2.0, size=X.shape[0])
    expected = _fit(model, X, y, exposure, w)
    n = X.shape[0]
    got = _fit(
        model, _chunked(X, n), _chunked(y, n),
        None if exposure is None else _chunked(exposure, n), _chunked(w, n),
    )
    _assert_same_fit(expected, got)
    assert model.n_features_in_ == X.shape[1]
    # the fitted model predicts on in-memory data as usual
    assert np.all(np.isfinite(model.predict(X[:5])))


def test_dask_search_on_a_subsample_equals_the_in_memory_one(client, monkeypatch):
    # the subsample is chosen by row hashes on the workers and gathered in hash order
    monkeypatch.setattr(_init, "SEARCH_SUBSAMPLE_ROWS", 600)
    model, X, y, _ = CASES["gaussian"]()
    model.set_params(random_state=0, max_iter=30)
    expected = _fit(model, X, y, None, None)
    searched = model.restarts_[0]
    n = X.shape[0]
    got = _fit(model, _chunked(X, n), _chunked(y, n), None, None)
    record = model.restarts_[0]
    assert record["search_rows"] == searched["search_rows"] < 1000
    np.testing.assert_array_equal(record["candidate_objectives"],
                                  searched["candidate_objectives"])
    _assert_same_fit(expected, got)


@pytest.mark.parametrize("case", ["gaussian", "hme"])
def test_dask_fit_makes_at_most_three_passes_per_iteration(client, monkeypatch, case):
    """Counted through the block source: E-step (with the gates' start and Hessian),
    the experts' statistics, the gates' trial step; no pass per conjugate-gradient step."""
    from skmoe._dask import DaskBlocks

    passes = []

    def counting(method):
        def counted(self, func, *args, **kwargs):
            passes.append(func.__name__)
            return method(self, func, *args, **kwargs)

        return counted

    for name in ("reduce", "update"):
        monkeypatch.setattr(DaskBlocks, name, counting(getattr(DaskBlocks, name)))
    model, X, y, _ = CASES[case]()
    n = X.shape[0]
    counts = []
    for max_iter in (2, 7):
        passes.clear()
        # passes per EM step: one random start, plain EM (a SQUAREM cycle is 2-3 steps)
        _fit(model.set_params(max_iter=max_iter, tol=0.0, random_state=0,
                              init_params="random", acceleration=None),
             _chunked(X, n), _chunked(y, n), None, None)
        counts.append(len(passes))
    assert (counts[1] - counts[0]) / 5 <= 3, passes


def test_dask_fit_takes_numpy_targets_and_weights_and_feature_subsets(client):
    X, y, _ = _regression(n=1000)
    model = MixtureOfExpertsRegressor(
        2, gate_features=[0], expert_features=[1, 2], tol=0.0, max_iter=5, random_state=3
    )
    expected = _fit(model, X, y, None, None)
    got = _fit(model, _chunked(X, 1000), y, None, None)
    _assert_same_fit(expected, got)


def test_chunked_in_memory_blocks_equal_one_block():
    """The same engine on 7 in-memory chunks (no cluster): the sums only regroup."""
    X, y, _ = _regression(n=2000)
    model = MixtureOfExpertsRegressor(3, tol=0.0, max_iter=10, random_state=0)
    expected = _fit(model, X, y, None, None)

    from skmoe import _base

    original = _base.InMemoryBlocks

    def split(blocks):
        (block,) = blocks
        parts = np.array_split(np.arange(block.n_rows), 7)
        return original([
            type(block)(X_expert=block.X_expert[i], X_gate=block.X_gate[i], y=block.y[i],
                        sample_weight=block.sample_weight[i])
            for i in parts
        ])

    _base.InMemoryBlocks = split
    try:
        got = _fit(model, X, y, None, None)
    finally:
        _base.InMemoryBlocks = original
    _assert_same_fit(expected, got)


def test_costly_passes_with_a_sampled_hessian_reach_the_in_memory_optimum(monkeypatch):
    """A costly source (dask) takes the gates' Hessian from a sample of each chunk's row
    blocks (here one of four): the path differs from the in-memory fit's, the optimum not."""
    from skmoe import _base, _em
    from skmoe._blocks import InMemoryBlocks

    class Costly(InMemoryBlocks):
        costly_passes = True

    X, y = make_moe_regression(4 * 2 * 16384, 3, 3, random_state=4)[:2]
    model = MixtureOfExpertsRegressor(3, tol=1e-13, max_iter=2000, random_state=0)
    expected = _fit(model, X, y, None, None)

    def split(blocks):
        (block,) = blocks
        return Costly([
            type(block)(X_expert=block.X_expert[i], X_gate=block.X_gate[i], y=block.y[i],
                        sample_weight=block.sample_weight[i])
            for i in np.array_split(np.arange(block.n_rows), 2)
        ])

    sampled = []
    hessian_rows = _base.GateTree.hessian_rows
    monkeypatch.setattr(_base.GateTree, "hessian_rows",
                        lambda self, X, *args: sampled.append(X.shape[0])
                        or hessian_rows(self, X, *args))
    monkeypatch.setattr(_em, "HESSIAN_ROW_BLOCKS", 1)
    monkeypatch.setattr(_base, "InMemoryBlocks", split)
    got = _fit(model, X, y, None, None)
    assert set(sampled) == {16384} and len(sampled) % 2 == 0  # a quarter of the rows
    assert np.all(np.diff(got.pop("objective_trace_")) >= -1e-12 * X.shape[0])
    expected.pop("objective_trace_")
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-8, atol=1e-8,
                                   err_msg=name)


def test_predictions_map_over_the_chunks_of_a_dask_array(client):
    X, y, _ = _regression(n=1000)
    model = MixtureOfExpertsRegressor(2, max_iter=20, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(_chunked(X, 1000), _chunked(y, 1000))
    mapped = _chunked(X, 1000).map_blocks(model.predict, drop_axis=1, dtype=float)
    np.testing.assert_allclose(mapped.compute(), model.predict(X), rtol=1e-12)


def test_dask_classifier_refuses_continuous_labels(client):
    X, y, _ = _regression(n=500)
    with pytest.raises(ValueError, match="Unknown label type"):
        MixtureOfExpertsClassifier(2).fit(_chunked(X, 500), _chunked(y, 500))


def test_restarts_run_on_the_dask_joblib_backend(client):
    X, y, _ = _regression(n=800)
    model = MixtureOfExpertsRegressor(2, n_init=3, n_jobs=2, max_iter=20, random_state=0)
    expected = _fit(model, X, y, None, None)
    with joblib.parallel_config(backend="dask"):
        got = _fit(model, X, y, None, None)
    _assert_same_fit(expected, got, atol=0.0)


def test_dask_fit_errors_are_clear(client):
    X, y, _ = _regression(n=500)
    dX, dy = _chunked(X, 500), _chunked(y, 500)
    with pytest.raises(ValueError, match="init_params must be 'multistart', 'kmeans', 'vor"):
        MixtureOfExpertsRegressor(2, init_params="tree").fit(dX, dy)
    bad = X.copy()
    bad[7, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        MixtureOfExpertsRegressor(2).fit(_chunked(bad, 500), dy)
    with pytest.raises(ValueError, match="y has 400 rows; X has 500"):
        MixtureOfExpertsRegressor(2).fit(dX, y[:400])
    with pytest.raises(ValueError, match="non-negative counts"):
        MixtureOfExpertsRegressor(2, expert="poisson").fit(dX, dy - 100)


def test_dask_fit_refuses_sparse_chunks(client):
    import scipy.sparse as sp

    X, y = make_moe_regression(200, 3, 2, random_state=0)
    chunks = da.from_array(sp.csr_matrix(X), chunks=(100, 3), asarray=False)
    with pytest.raises(TypeError, match="sparse"):
        MixtureOfExpertsRegressor(2, random_state=0).fit(chunks, y)
