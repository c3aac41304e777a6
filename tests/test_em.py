"""The EM engine: ascent, convergence, restarts, warm start, determinism."""

import io
import pickle
import warnings

import numpy as np
import pytest
from conftest import assert_log_likelihood_increasing, assert_monotone
from joblib import parallel_config
from sklearn.exceptions import ConvergenceWarning

from skmoe import MixtureOfExpertsRegressor
from skmoe._em import ConvergenceMonitor
from skmoe.datasets import load_nodata, load_tone, make_moe_regression


def _datasets():
    X, y = make_moe_regression(600, 3, 5, random_state=1)
    yield "synthetic K=5", X, y, 5
    X, y = load_tone(return_X_y=True)
    yield "tone", X, y, 2
    X, y = load_nodata(return_X_y=True)
    yield "NOdata K=3", X, y, 3


DATASETS = list(_datasets())


@pytest.mark.parametrize("name, X, y, K", DATASETS, ids=[d[0] for d in DATASETS])
@pytest.mark.parametrize("gate_alpha", [0.0, 0.5])
def test_em_ascent_warm_started_single_iterations(name, X, y, K, gate_alpha):
    model = MixtureOfExpertsRegressor(K, gate_alpha=gate_alpha, expert_alpha=0.1, random_state=0)
    values = assert_log_likelihood_increasing(model, X, y, 200)
    assert values[-1] > values[0]


def test_objective_trace_is_non_decreasing_and_matches_fitted_value():
    X, y = make_moe_regression(800, 2, 3, random_state=3)
    model = MixtureOfExpertsRegressor(3, random_state=0, tol=1e-10, max_iter=1000).fit(X, y)
    trace = model.objective_trace_
    assert len(trace) == model.n_iter_ + 1
    assert_monotone(trace, rtol=1e-12)
    assert trace[-1] == pytest.approx(model.objective_)
    assert model.log_likelihood_ == pytest.approx(model.score_samples(X, y).sum(), rel=1e-12)


def test_convergence_warning_when_the_best_run_does_not_converge():
    X, y = load_tone(return_X_y=True)
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        model = MixtureOfExpertsRegressor(2, max_iter=2, tol=1e-12, random_state=0).fit(X, y)
    assert not model.converged_
    assert model.n_iter_ == 2


def test_restarts_keep_the_best_run():
    X, y = make_moe_regression(300, 2, 4, random_state=5)
    model = MixtureOfExpertsRegressor(4, n_init=6, random_state=0).fit(X, y)
    assert len(model.restarts_) == 6
    best = max(r["objective"] for r in model.restarts_)
    assert model.objective_ == best
    for run in model.restarts_:
        assert set(run) >= {"objective", "log_likelihood", "n_iter", "converged", "time"}
        assert len(run["objective_trace"]) == run["n_iter"] + 1


def test_same_random_state_gives_bit_identical_fits_for_any_n_jobs():
    X, y = make_moe_regression(400, 3, 3, random_state=2)
    fits = [
        MixtureOfExpertsRegressor(3, n_init=3, random_state=7, n_jobs=n_jobs).fit(X, y)
        for n_jobs in (1, 1, 2)
    ]
    for other in fits[1:]:
        np.testing.assert_array_equal(fits[0].expert_coef_, other.expert_coef_)
        np.testing.assert_array_equal(fits[0].gate_coef_, other.gate_coef_)
        assert fits[0].log_likelihood_ == other.log_likelihood_


def test_warm_start_continues_from_the_previous_fit():
    X, y = load_tone(return_X_y=True)
    # plain EM: a SQUAREM run restarts its step-length bound at every call
    plain = {"acceleration": None, "init_params": "random"}
    with pytest.warns(ConvergenceWarning):
        full = MixtureOfExpertsRegressor(2, random_state=0, tol=0.0, max_iter=15, **plain).fit(
            X, y
        )
    model = MixtureOfExpertsRegressor(
        2, random_state=0, tol=0.0, max_iter=5, warm_start=True, **plain
    )
    with pytest.warns(ConvergenceWarning):
        for _ in range(3):
            model.fit(X, y)
    # three warm-started runs of 5 iterations = one run of 15
    np.testing.assert_allclose(model.expert_coef_, full.expert_coef_, rtol=1e-10)
    np.testing.assert_allclose(model.gate_coef_, full.gate_coef_, rtol=1e-8, atol=1e-10)


def test_verbose_prints_a_line_per_run_or_per_iteration(capsys):
    X, y = load_tone(return_X_y=True)
    model = MixtureOfExpertsRegressor(2, n_init=2, random_state=0, verbose=1,
                                      init_params="multistart").fit(X, y)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    runs = len(model.restarts_[0]["candidate_objectives"])
    assert f"start 0 (best of {runs} runs)" in lines[0] and "converged" in lines[0]
    MixtureOfExpertsRegressor(2, random_state=0, verbose=2, init_params="random").fit(X, y)
    out = capsys.readouterr().out
    assert "iteration    0" in out and "change/n" in out and "tol 1e-06" in out


def test_monitor_warns_on_a_decrease_and_converges_on_the_distance_to_the_limit():
    monitor = ConvergenceMonitor(
        tol=1e-3, max_iter=10, total_weight=100.0, verbose=2, stream=io.StringIO()
    )
    monitor.report(-50.0)
    monitor.report(-49.95)  # per-sample change 5e-4 < 1e-3, but no rate known yet
    assert not monitor.converged
    monitor.report(-49.9499)  # rate 0.002: the limit is 2e-7 away
    assert monitor.converged
    with pytest.warns(RuntimeWarning, match="decreased"):
        monitor.report(-60.0)


def test_pickle_round_trip_predicts_identically():
    X, y = load_tone(return_X_y=True)
    model = MixtureOfExpertsRegressor(2, random_state=0).fit(X, y)
    clone = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(model.predict(X), clone.predict(X))
    np.testing.assert_array_equal(model.score_samples(X, y), clone.score_samples(X, y))


def test_restarts_run_through_joblib_backends():
    X, y = load_tone(return_X_y=True)
    reference = MixtureOfExpertsRegressor(2, n_init=2, random_state=3).fit(X, y)
    with parallel_config(backend="threading"):
        threaded = MixtureOfExpertsRegressor(2, n_init=2, random_state=3, n_jobs=2).fit(X, y)
    np.testing.assert_array_equal(reference.expert_coef_, threaded.expert_coef_)


def test_warnings_point_at_the_callers_fit():
    X, y = make_moe_regression(300, 2, 2, random_state=0)
    with pytest.warns(ConvergenceWarning) as record:
        MixtureOfExpertsRegressor(2, max_iter=1, random_state=0).fit(X, y)
    assert record[0].filename == __file__


@pytest.mark.parametrize("n_weights", [1, 4, 16, 36])
@pytest.mark.parametrize("d", [1, 5, 20])
def test_weighted_grams_equal_the_sum_over_rows_by_either_product(n_weights, d):
    # few weight vectors take the stacked product, many the row-wise products; both are
    # the same symmetric matrices, over more rows than one block of either
    from skmoe._linalg import weighted_grams

    rng = np.random.default_rng(d)
    X, W = rng.normal(size=(3000, d)), rng.random((n_weights, 3000))
    X1 = np.column_stack([np.ones(len(X)), X])
    gram = weighted_grams(X, W)
    np.testing.assert_allclose(gram, np.einsum("mi,ia,ib->mab", W, X1, X1), rtol=1e-12,
                               atol=1e-12 * len(X))
    np.testing.assert_array_equal(gram, gram.transpose(0, 2, 1))


@pytest.mark.parametrize("n_weights", [1, 4, 16])
@pytest.mark.parametrize("d", [1, 5, 20])
def test_weighted_grams_from_kept_row_products_equal_the_sum_over_rows(n_weights, d):
    from skmoe._linalg import long_product, row_products, weighted_grams

    rng = np.random.default_rng(d)
    X, W = rng.normal(size=(5000, d)), rng.random((n_weights, 5000))  # several chunks
    X1 = np.column_stack([np.ones(len(X)), X])
    gram = weighted_grams(X, W, products=row_products(X))
    np.testing.assert_allclose(gram, np.einsum("mi,ia,ib->mab", W, X1, X1), rtol=1e-12,
                               atol=1e-12 * len(X))
    np.testing.assert_array_equal(gram, gram.transpose(0, 2, 1))
    np.testing.assert_allclose(long_product(W, X, chunk=700), W @ X, rtol=1e-12,
                               atol=1e-12 * len(X))


def test_row_products_are_kept_within_the_working_memory_and_shared_by_equal_designs():
    from sklearn import config_context

    from skmoe._blocks import Block, keep_row_products

    rng = np.random.default_rng(0)
    X = rng.normal(size=(1000, 6))
    block = Block(X_expert=X, X_gate=X, sample_weight=np.ones(1000))
    taken = block.take(slice(0, 500))
    assert taken.X_gate is taken.X_expert  # one design stays one array in a subsample
    with config_context(working_memory=0.1):  # 0.1 MiB < 1000 x 21 doubles
        assert keep_row_products(Block(X_expert=X, X_gate=X), "X_gate") is None
    products = keep_row_products(block, "X_gate")
    assert products.shape == (1000, 21) and keep_row_products(block, "X_expert") is products
    np.testing.assert_array_equal(products[:, 1], X[:, 0] * X[:, 1])
    assert block.with_weights(np.ones((2, 1000))).derived is block.derived  # kept in restarts


def _fit_with_and_without_row_products(make, X, y, **fit_params):
    from sklearn import config_context

    kept = make().fit(X, y, **fit_params)
    with config_context(working_memory=0):
        passes = make().fit(X, y, **fit_params)
    return kept, passes


@pytest.mark.parametrize("case", ["gaussian", "gate features", "poisson", "tree"])
def test_the_gate_hessian_from_row_products_takes_the_same_steps_as_passes(case):
    # in memory, the gate's conjugate-gradient steps are products with its Hessian from the
    # kept row products (with the Gaussian experts' Grams in the same product); without
    # them (no working memory) they are passes over the data: the same fit up to rounding
    from skmoe import HierarchicalMixtureOfExpertsRegressor

    X, y = make_moe_regression(3000, 4, 3, random_state=2)
    options = {"random_state": 0, "init_params": "random", "acceleration": None,
               "max_iter": 30, "tol": 0.0}
    if case == "gate features":
        options["gate_features"] = [0, 1]
    if case == "poisson":
        y = np.random.default_rng(0).poisson(np.exp(0.3 * y - 0.2 * y.mean()))
        options["expert"] = "poisson"
    if case == "tree":
        options.update(depth=2, branching=2)
    else:
        options.update(depth=1, branching=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        kept, passes = _fit_with_and_without_row_products(
            lambda: HierarchicalMixtureOfExpertsRegressor(**options), X, y)
    assert kept.n_iter_ == passes.n_iter_ >= 10
    np.testing.assert_allclose(kept.objective_trace_, passes.objective_trace_, rtol=1e-10)
    np.testing.assert_allclose(kept.expert_coef_, passes.expert_coef_, rtol=1e-6, atol=1e-8)


def test_normalise_log_equals_logsumexp_and_softmax():
    from scipy.special import logsumexp, softmax

    from skmoe._linalg import normalise_log

    rng = np.random.default_rng(7)
    a = rng.normal(scale=300.0, size=(4, 50))
    a[1, 1] = -np.inf  # an expert that cannot explain a row gets no weight on it
    expected_log, expected_p = logsumexp(a, axis=0), softmax(a, axis=0)
    log_total = normalise_log(a)
    np.testing.assert_allclose(log_total, expected_log, rtol=1e-13)
    np.testing.assert_allclose(a, expected_p, rtol=1e-12, atol=1e-300)
    assert a[1, 1] == 0.0
