"""The fit of issue #12: the multistart search, SQUAREM acceleration and the stopping rule.

``NEW`` is the default configuration (``init_params="multistart"``,
``acceleration="squarem"``), spelled out where a test is about it."""

import io
import warnings

import numpy as np
import pytest
from conftest import assert_log_likelihood_increasing, assert_monotone
from joblib import parallel_backend
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import StandardScaler
from test_regressor import REFERENCE_PROBLEMS

from skmoe import (
    DegenerateFitWarning,
    HierarchicalMixtureOfExpertsClassifier,
    HierarchicalMixtureOfExpertsRegressor,
    MixtureOfExpertsClassifier,
    MixtureOfExpertsRegressor,
    _init,
    select_n_experts,
)
from skmoe._blocks import WEIGHTS, InMemoryBlocks, one_block
from skmoe._em import ConvergenceMonitor, MixtureOfExpertsModel, ParameterVector
from skmoe._families import GammaExperts, GaussianExperts
from skmoe._init import SEARCH_RUNS, kmeans_start, voronoi_start
from skmoe.datasets import (
    load_nodata,
    load_tone,
    make_moe_regression,
    make_regional_classification,
)

NEW = {"init_params": "multistart", "acceleration": "squarem"}


# ---------------------------------------------------------------- stopping rule
def _monitor(tol=1e-6, weight=1.0):
    return ConvergenceMonitor(tol, 1000, weight, stream=io.StringIO())


def test_a_slowly_climbing_objective_is_not_converged_however_small_its_steps():
    # linear convergence at rate 0.999: steps of 1e-7 still leave 1e-4 to climb
    monitor = _monitor(tol=1e-6)
    for t in range(5):
        monitor.report(-1.0 - 1e-4 * 0.999**t)
    assert abs(monitor.history[-1] - monitor.history[-2]) < 1e-6
    assert monitor.remaining() == pytest.approx(1e-4 * 0.999**4, rel=1e-3)
    assert not monitor.converged


def test_a_fast_contracting_objective_converges_when_the_limit_is_near():
    monitor = _monitor(tol=1e-6)
    for t in range(5):
        monitor.report(-1.0 - 0.1**t)
    assert monitor.remaining() == pytest.approx(0.1**4, rel=1e-6)
    monitor.report(-1.0 - 0.1**5)
    monitor.report(-1.0 - 0.1**6)
    monitor.report(-1.0 - 0.1**7)
    assert monitor.converged


def test_a_creeping_objective_that_aitken_cannot_bound_converges_once_flat():
    # SQUAREM in a basin whose objective still creeps up: gains alternating between 2e-9
    # and 2e-8 never contract, so Aitken's estimate is infinite; ten of them gain 1.1e-7
    monitor = _monitor(tol=1e-6)
    objective = -1.0
    for t in range(40):
        objective += 2e-9 if t % 2 else 2e-8
        monitor.report(objective)
        assert monitor.remaining() == np.inf
        assert monitor.converged == (t >= 10)


def test_a_climb_that_speeds_up_is_not_converged_however_flat():
    # away from a saddle the gains grow (here by half each iteration): not converged while
    # the last ten gain far less than tol
    monitor = _monitor(tol=1e-6)
    objective = -1.0
    for t in range(20):
        objective += 1e-12 * 1.5**t
        monitor.report(objective)
    assert np.sum(np.diff(monitor.history[-11:])) < 1e-7
    assert not monitor.converged


def test_the_distance_is_per_unit_of_weight():
    light, heavy = _monitor(tol=1e-6, weight=1.0), _monitor(tol=1e-6, weight=1e4)
    for t in range(6):
        light.report(-1.0 - 1e-3 * 0.5**t)
        heavy.report(-1.0 - 1e-3 * 0.5**t)
    assert heavy.remaining() == pytest.approx(light.remaining() / 1e4)
    assert heavy.converged and not light.converged


@pytest.mark.parametrize("settings", [{}, NEW], ids=["plain EM", "multistart SQUAREM"])
def test_an_exact_fixed_point_stops_em_whatever_tol(settings):
    X, y = load_tone(return_X_y=True)
    model = MixtureOfExpertsRegressor(2, tol=0.0, max_iter=10**6, random_state=0, **settings)
    model.fit(X, y)
    assert model.converged_
    assert model.n_iter_ < 1000
    assert model.objective_trace_[-1] == pytest.approx(model.objective_trace_[-2], rel=1e-14)


# ----------------------------------------------------------------- SQUAREM
def test_parameter_vector_round_trips_with_dispersions_on_the_log_scale():
    family = GammaExperts(3)
    params = {
        "gate": [np.arange(6.0).reshape(1, 3, 2)],
        "experts": {"coef": np.ones((3, 2)), "dispersion": np.array([0.5, 1.0, 2.0])},
    }
    coords = ParameterVector(family, params)
    vector = coords.flatten(params)
    np.testing.assert_allclose(vector[-3:], np.log([0.5, 1.0, 2.0]))
    back = coords.unflatten(vector)
    np.testing.assert_allclose(back["experts"]["dispersion"], [0.5, 1.0, 2.0])
    np.testing.assert_array_equal(back["gate"][0], params["gate"][0])


def test_extrapolated_variances_are_held_at_the_floor():
    family = GaussianExperts(2, variance_floor=0.1)
    params = {"gate": [np.zeros((1, 2, 1))],
              "experts": {"coef": np.zeros((2, 1)), "variance": np.array([1.0, 0.2])}}
    coords = ParameterVector(family, params)
    vector = coords.flatten(params)
    vector[-1] = np.log(1e-9)
    assert coords.unflatten(vector)["experts"]["variance"][1] == 0.1


ASCENT_CASES = [
    (MixtureOfExpertsRegressor(3, expert_alpha=0.1), "gaussian"),
    (MixtureOfExpertsRegressor(2, expert="poisson"), "poisson"),
    (MixtureOfExpertsRegressor(2, expert="gamma"), "gamma"),
    (MixtureOfExpertsClassifier(2), "classes"),
    (HierarchicalMixtureOfExpertsRegressor(depth=2), "gaussian"),
    (HierarchicalMixtureOfExpertsClassifier(depth=2), "classes"),
]


def _data_for(kind):
    rng = np.random.default_rng(0)
    X, y = make_moe_regression(400, 2, 3, random_state=1)
    if kind == "poisson":
        return X, rng.poisson(np.exp(0.3 * y.clip(-5, 5) / y.std()))
    if kind == "gamma":
        return X, rng.gamma(2.0, np.exp(0.3 * y / y.std()))
    if kind == "classes":
        return make_regional_classification(400, noise=0.05, random_state=0)
    return X, y


@pytest.mark.parametrize("estimator, kind", ASCENT_CASES,
                         ids=[f"{type(e).__name__}-{k}" for e, k in ASCENT_CASES])
def test_accelerated_em_never_lowers_the_objective(estimator, kind):
    X, y = _data_for(kind)
    model = estimator.set_params(random_state=0, init_params="random", acceleration="squarem")
    assert_log_likelihood_increasing(model, X, y, 40)
    fitted = estimator.set_params(warm_start=False, max_iter=500, tol=1e-8).fit(X, y)
    assert_monotone(fitted.objective_trace_, rtol=1e-12)


def test_acceleration_reaches_the_plain_em_optimum_in_fewer_iterations():
    X, y = load_nodata(return_X_y=True)
    plain = MixtureOfExpertsRegressor(2, gate_alpha=0.0, acceleration=None, tol=1e-10,
                                      init_params="random", random_state=0).fit(X, y)
    fast = MixtureOfExpertsRegressor(2, gate_alpha=0.0, tol=1e-10, init_params="random",
                                     acceleration="squarem", random_state=0).fit(X, y)
    assert fast.objective_ == pytest.approx(plain.objective_, abs=1e-6)
    assert fast.n_iter_ < plain.n_iter_ / 2


# --------------------------------------------------------------- multistart
def test_multistart_records_its_runs_and_stops_when_two_agree():
    X, y = load_tone(return_X_y=True)
    model = MixtureOfExpertsRegressor(2, gate_alpha=0.0, random_state=0, **NEW).fit(X, y)
    runs = model.restarts_[0]["candidate_objectives"]
    assert 2 <= len(runs) <= SEARCH_RUNS
    assert np.sum(runs >= runs.max() - 1e-5 * len(y)) >= 2
    assert model.objective_ == runs.max()


def test_multistart_finds_the_optimum_a_single_random_start_often_misses():
    # planted K=5 (seed 24): a random start reaches the best optimum 3 times in 10
    X, y = make_moe_regression(3000, 2, 5, noise=0.3, random_state=24)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # plain EM is slow here
        single = [MixtureOfExpertsRegressor(5, init_params="random", random_state=s).fit(X, y)
                  for s in range(6)]
    default = [MixtureOfExpertsRegressor(5, random_state=s, **NEW).fit(X, y) for s in range(6)]
    best = max(m.objective_ for m in single + default)
    assert sum(m.objective_ > best - 0.05 for m in default) >= 4
    assert sum(m.objective_ > best - 0.05 for m in single) < sum(
        m.objective_ > best - 0.05 for m in default)


def _broad_expert_start(X, y):
    """Responsibilities of a poor basin of planted K=3 (seed 0): the two smallest regimes
    of the optimum's fit in one expert, the largest one shared by the other two."""
    good = MixtureOfExpertsRegressor(3, random_state=0, init_params="kmeans").fit(X, y)
    R = good.predict_responsibilities(X, y)
    small, middle, large = np.argsort(R.sum(axis=0))
    alternate = np.arange(len(y)) % 2
    start = np.column_stack([R[:, small] + R[:, middle], R[:, large] * alternate,
                             R[:, large] * (1 - alternate)])
    return good.objective_, start + 1e-3


def test_the_search_ends_with_a_split_and_merge_move_out_of_a_broad_expert_basin(
        monkeypatch):
    X, y = make_moe_regression(3000, 2, 3, noise=0.3, random_state=0)
    optimum, start = _broad_expert_start(X, y)
    stuck = MixtureOfExpertsRegressor(3, random_state=0, init_params=start).fit(X, y)
    assert stuck.objective_ < optimum - 1000  # -5406.5 against -2085.3

    def poor_start(estimator, source, rng, strategy=None):
        block, = source.blocks
        block.cache[WEIGHTS] = start.T * block.sample_weight

    # every run of the search starts in the poor basin: two agree there at once
    monkeypatch.setattr(_init, "initialise", poor_start)
    model = MixtureOfExpertsRegressor(3, random_state=0).fit(X, y)
    record = model.restarts_[0]
    assert len(record["candidate_objectives"]) == 2
    assert np.all(record["candidate_objectives"] < optimum - 1000)
    assert model.objective_ == pytest.approx(optimum, abs=1e-6 * len(y))
    assert record["split_merge_objective"] == model.objective_
    assert_monotone(record["objective_trace"])


def test_default_fits_do_not_depend_on_row_order_or_n_jobs():
    X, y = make_moe_regression(500, 2, 3, random_state=4)
    order = np.random.default_rng(1).permutation(len(y))
    a = MixtureOfExpertsRegressor(3, n_init=2, random_state=3, **NEW).fit(X, y)
    b = MixtureOfExpertsRegressor(3, n_init=2, random_state=3, n_jobs=2, **NEW).fit(
        X[order], y[order]
    )
    np.testing.assert_allclose(a.expert_coef_, b.expert_coef_, rtol=1e-9, atol=1e-10)
    assert a.log_likelihood_ == pytest.approx(b.log_likelihood_, rel=1e-12)


@pytest.mark.parametrize("estimator", [
    MixtureOfExpertsRegressor, MixtureOfExpertsClassifier,
    HierarchicalMixtureOfExpertsRegressor, HierarchicalMixtureOfExpertsClassifier,
])
def test_the_search_and_squarem_are_the_defaults(estimator):
    params = estimator().get_params()
    assert {key: params[key] for key in NEW} == NEW


@pytest.mark.parametrize("expert", ["gaussian", "poisson", "gamma"])
def test_default_fits_with_integer_weights_equal_fits_on_repeated_rows(expert):
    # the whole default fit: the search's starts, SQUAREM and the stopping rule
    X, y = make_moe_regression(400, 2, 3, noise=0.3, random_state=2)[:2]
    if expert != "gaussian":
        y = np.random.default_rng(0).poisson(np.exp(0.4 * y / y.std())) + 1.0
    w = np.random.default_rng(1).integers(0, 4, size=len(y))
    weighted = MixtureOfExpertsRegressor(3, expert=expert, random_state=0, tol=1e-10)
    repeated = MixtureOfExpertsRegressor(3, expert=expert, random_state=0, tol=1e-10)
    weighted.fit(X, y, sample_weight=w)
    repeated.fit(np.repeat(X, w, axis=0), np.repeat(y, w))
    assert weighted.log_likelihood_ == pytest.approx(repeated.log_likelihood_, rel=1e-9)
    np.testing.assert_allclose(weighted.predict(X), repeated.predict(X), rtol=1e-5)


# ---------------------------------------------------- the search on a subsample
@pytest.fixture
def small_subsample(monkeypatch):
    """The search runs on a subsample of about 300 rows (above 600 rows)."""
    monkeypatch.setattr(_init, "SEARCH_SUBSAMPLE_ROWS", 300)


def test_on_many_rows_the_search_runs_on_a_subsample_and_ends_on_all_rows(small_subsample):
    X, y = make_moe_regression(4000, 2, 3, noise=0.3, random_state=0)
    model = MixtureOfExpertsRegressor(3, random_state=0).fit(X, y)
    record = model.restarts_[0]
    assert 250 <= record["search_rows"] <= 350  # binomial(4000, 0.075): sd 17
    assert model.converged_
    _init.SEARCH_SUBSAMPLE_ROWS = 10**9  # the search on all rows
    full = MixtureOfExpertsRegressor(3, random_state=0).fit(X, y)
    assert full.restarts_[0]["search_rows"] == len(y)
    assert model.objective_ == pytest.approx(full.objective_, abs=1e-5 * len(y))
    # the last run is on all rows: its trace ends at the fitted objective
    assert model.objective_trace_[-1] == model.objective_
    assert model.log_likelihood_ == pytest.approx(model.score_samples(X, y).sum(), rel=1e-12)


def test_the_subsample_depends_only_on_the_rows_values():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(500, 2)), rng.normal(size=500)
    repeats = rng.integers(0, 3, size=500)

    def chosen(X, y, w, n_blocks=1):
        blocks = [one_block(X_expert=X[i], X_gate=X[i], y=y[i], sample_weight=w[i]).blocks[0]
                  for i in np.array_split(np.arange(len(y)), n_blocks)]
        (sample,) = _init._subsample(InMemoryBlocks(blocks), np.random.default_rng(3),
                                     0.2).blocks
        return sample.y, sample.sample_weight

    picked, _ = chosen(X, y, np.ones(500))
    assert 60 <= len(picked) <= 140
    # the same rows in the same order, whatever the order and the chunks of the data
    order = rng.permutation(500)
    np.testing.assert_array_equal(chosen(X[order], y[order], np.ones(500), n_blocks=4)[0],
                                  picked)
    # a row of weight w is kept exactly when its w repeats are
    rows = np.repeat(np.arange(500), repeats)
    repeated, _ = chosen(X[rows], y[rows], np.ones(len(rows)))
    weighted, w = chosen(X, y, repeats.astype(float))
    assert sorted(repeated) == sorted(np.repeat(weighted, w.astype(int)))


def test_subsampled_default_fits_keep_the_invariances(small_subsample):
    X, y = make_moe_regression(1000, 2, 3, noise=0.3, random_state=2)[:2]
    order = np.random.default_rng(1).permutation(len(y))
    a = MixtureOfExpertsRegressor(3, n_init=2, random_state=3).fit(X, y)
    with parallel_backend("threading"):  # loky's workers would not see the monkeypatch
        b = MixtureOfExpertsRegressor(3, n_init=2, random_state=3, n_jobs=2).fit(
            X[order], y[order])
    # the searches are bit-identical (the subsample is in the order of its hashes); the
    # runs on all rows sum in another order, and SQUAREM's extrapolation 3 cycles from
    # the start magnifies that rounding to about 1e-8 in the coefficients
    for ra, rb in zip(a.restarts_, b.restarts_):
        assert ra["search_rows"] == rb["search_rows"] < 600
        np.testing.assert_array_equal(ra["candidate_objectives"], rb["candidate_objectives"])
    np.testing.assert_allclose(a.expert_coef_, b.expert_coef_, rtol=1e-7, atol=1e-8)
    assert a.log_likelihood_ == pytest.approx(b.log_likelihood_, rel=1e-12)
    w = np.random.default_rng(1).integers(0, 4, size=len(y))
    weighted = MixtureOfExpertsRegressor(3, random_state=0, tol=1e-10).fit(X, y, sample_weight=w)
    repeated = MixtureOfExpertsRegressor(3, random_state=0, tol=1e-10).fit(
        np.repeat(X, w, axis=0), np.repeat(y, w))
    assert weighted.restarts_[0]["search_rows"] < repeated.restarts_[0]["search_rows"]
    assert weighted.log_likelihood_ == pytest.approx(repeated.log_likelihood_, rel=1e-9)
    np.testing.assert_allclose(weighted.predict(X), repeated.predict(X), rtol=1e-5)


def test_grouped_fits_search_on_all_rows(small_subsample):
    X, y = make_moe_regression(1000, 2, 2, noise=0.3, random_state=0)[:2]
    model = MixtureOfExpertsRegressor(2, gate_features=[], random_state=0)
    model.fit(X, y, groups=np.arange(len(y)) // 2)
    assert model.restarts_[0]["search_rows"] == len(y)


@pytest.mark.parametrize("partition", [voronoi_start, kmeans_start])
def test_partition_starts_are_invariant_to_row_order_and_repetition(partition):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(60, 2)), rng.normal(size=60)
    repeats = rng.integers(0, 3, size=60)

    class Target:
        def __call__(self, y):
            return y[:, None]

    def start(X, y, w):
        source = one_block(X_expert=X, X_gate=X, y=y, sample_weight=w)
        partition(source, np.random.default_rng(5), 3, Target())
        return source.blocks[0].cache["W"]

    weighted = start(X, y, repeats.astype(float))
    rows = np.repeat(np.arange(60), repeats)
    repeated = start(X[rows], y[rows], np.ones(len(rows)))
    np.testing.assert_array_equal(weighted[:, rows] / repeats[rows], repeated)
    assert set(np.unique(repeated)) <= {0.0, 1.0}
    order = rng.permutation(len(rows))
    shuffled = start(X[rows][order], y[rows][order], np.ones(len(rows)))
    np.testing.assert_array_equal(shuffled, repeated[:, order])


def test_kmeans_start_finds_well_separated_clusters():
    rng = np.random.default_rng(1)
    centres = np.array([[-6.0, 0.0], [0.0, 6.0], [6.0, 0.0], [0.0, -6.0]])
    labels = rng.integers(0, 4, size=400)
    X = centres[labels] + rng.normal(size=(400, 2))
    source = one_block(X_expert=X, X_gate=X, y=np.zeros(400), sample_weight=np.ones(400))
    kmeans_start(source, np.random.default_rng(0), 4, lambda y: y[:, None])
    found = np.argmax(source.blocks[0].cache["W"], axis=0)
    # the clusters are recovered up to their order
    assert len({(a, b) for a, b in zip(labels, found)}) == 4


def test_the_old_strategies_stay_available_by_name():
    X, y = load_tone(return_X_y=True)
    for init in ("random", "kmeans", "tree", "voronoi"):
        model = MixtureOfExpertsRegressor(2, init_params=init, random_state=0).fit(X, y)
        assert "candidate_objectives" not in model.restarts_[0]
        assert model.converged_


# ------------------------------------------------ what the defaults must do
@pytest.mark.parametrize("load", [load_wine, load_breast_cancer])
def test_the_classifier_converges_by_default_on_sklearn_datasets(load):
    X, y = load(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        warnings.simplefilter("ignore", DegenerateFitWarning)
        model = MixtureOfExpertsClassifier(3, random_state=0, **NEW).fit(X, y)
    assert model.converged_ and model.n_iter_ < model.max_iter


REFERENCES = REFERENCE_PROBLEMS  # the R references of tests/test_regressor.py


@pytest.mark.parametrize("ref, X, y, params", REFERENCES, ids=[r[0] for r in REFERENCES])
def test_default_fits_reach_the_references_to_1e4(ref, X, y, params, reference_fits):
    model = MixtureOfExpertsRegressor(2, gate_alpha=0.0, random_state=0, **params, **NEW)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateFitWarning)
        model.fit(X, y)
    assert model.n_init == 1 and model.tol == 1e-6
    assert model.log_likelihood_ >= reference_fits[ref]["loglik_mle"] - 1e-4


def test_bic_picks_the_planted_number_of_experts():
    cases = [(1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (4, 5), (4, 14), (5, 24), (5, 39), (6, 14)]
    right = 0
    for K, seed in cases:
        X, y = make_moe_regression(3000, 2, K, noise=0.3, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DegenerateFitWarning)
            best, _ = select_n_experts(MixtureOfExpertsRegressor(random_state=0, **NEW), X, y,
                                       range(max(1, K - 1), K + 2))
        right += best.n_experts == K
    assert right >= 9


def _fake_run(finish, plateau, remaining=0.0):
    """EM runs on a made-up objective: ``plateau`` until iteration ``finish``, then 0;
    ``remaining`` is the climb the monitor would estimate before the finish."""
    calls = []

    def run(params, max_iter, floor=-np.inf, patience=3):
        start = params["iteration"]
        stop = min(start + max_iter, finish)
        trace = [plateau if i < finish else 0.0 for i in range(start, stop + 1)]
        calls.append(max_iter)
        return {"params": {"iteration": stop}, "objective": trace[-1],
                "objective_trace": np.array(trace), "n_iter": stop - start,
                "converged": stop == finish, "degenerate": False,
                "remaining": 0.0 if stop == finish else remaining}

    return run, calls


def test_a_search_run_that_lags_behind_the_best_is_stopped_at_its_budget():
    from skmoe._init import SEARCH_PRUNE_FACTOR, SEARCH_PRUNE_MIN, _pruned_run

    best = {"objective": 0.0, "n_iter": 10, "degenerate": False}
    budget = max(SEARCH_PRUNE_MIN, SEARCH_PRUNE_FACTOR * best["n_iter"])
    run, calls = _fake_run(finish=400, plateau=-100.0)
    result = _pruned_run(run, {"iteration": 0}, 500, best, agreement=1e-3, weight=10.0)
    assert calls == [budget] and result["pruned"] and result["n_iter"] == budget
    # the first run goes on to convergence as one record
    run, calls = _fake_run(finish=400, plateau=-100.0)
    assert _pruned_run(run, {"iteration": 0}, 500, None, 1e-3, 10.0)["n_iter"] == 400


def test_a_search_run_level_with_the_best_stops_unless_it_is_heading_above_it():
    from skmoe._init import SEARCH_PRUNE_FACTOR, SEARCH_PRUNE_MIN, _pruned_run

    best = {"objective": 0.0, "n_iter": 10, "degenerate": False}
    budget = max(SEARCH_PRUNE_MIN, SEARCH_PRUNE_FACTOR * best["n_iter"])
    # level, and its estimated remaining climb (per unit of weight, times 10 units) keeps
    # it within the agreement of the best: the best's optimum again, stopped
    run, calls = _fake_run(finish=400, plateau=-5e-4, remaining=1e-4)
    result = _pruned_run(run, {"iteration": 0}, 500, best, agreement=1e-3, weight=10.0)
    assert calls == [budget] and result["pruned"]
    # level but still climbing (or not contracting: an infinite estimate): it goes on to
    # convergence as one record
    for remaining in (1e-3, np.inf):
        run, calls = _fake_run(finish=400, plateau=-5e-4, remaining=remaining)
        result = _pruned_run(run, {"iteration": 0}, 500, best, agreement=1e-3, weight=10.0)
        assert calls == [budget, 500 - budget] and result["converged"]
        assert result["n_iter"] == 400 and len(result["objective_trace"]) == 401


def test_a_run_gives_up_once_its_pace_cannot_reach_the_floor():
    def monitor(trace, floor, max_iter=20, patience=3):
        m = ConvergenceMonitor(1e-6, max_iter, 1.0, stream=io.StringIO(), floor=floor,
                               patience=patience)
        for value in trace:
            m.report(value)
        return m

    # changes 4, 2, 1 shrinking; 17 iterations left at 4 each reach -90 + 68 = -22
    shrinking = [-97.0, -93.0, -91.0, -90.0]
    assert monitor(shrinking, floor=-21.0).out_of_reach
    assert not monitor(shrinking, floor=-23.0).out_of_reach
    assert not monitor(shrinking, floor=-np.inf).out_of_reach
    # leaving a saddle: growing changes go on, however far the floor
    assert not monitor([-97.0, -96.9, -96.5, -95.0], floor=0.0).out_of_reach
    # three reports (two changes) are too few to tell, and none before the patience
    assert not monitor(shrinking[1:], floor=0.0).out_of_reach
    assert not monitor(shrinking, floor=-21.0, patience=4).out_of_reach


def test_a_search_run_that_cannot_catch_up_stops_before_its_budget():
    X, y = make_moe_regression(3000, 2, 3, noise=0.3, random_state=0)
    optimum, start = _broad_expert_start(X, y)
    estimator = MixtureOfExpertsRegressor(3, random_state=0)
    data, family = estimator._validate_fit_data(X, y, None, None)
    model = MixtureOfExpertsModel(family, estimator._make_gate())
    source = InMemoryBlocks([data.with_weights(start.T * data.sample_weight)])
    params = model.m_step_blocks(source, None)

    def from_the_poor_basin(floor, patience=3, budget=50):
        return estimator._run_em(model, source.fresh(), params, budget, floor, patience)

    free = from_the_poor_basin(-np.inf)
    assert free["objective"] < optimum - 1000 and free["n_iter"] > 15
    # held to the optimum, it gives up after a few iterations, on its own trajectory
    hopeless = from_the_poor_basin(optimum)
    assert not hopeless["converged"] and 3 <= hopeless["n_iter"] < free["n_iter"] / 2
    np.testing.assert_allclose(hopeless["objective_trace"],
                               free["objective_trace"][:hopeless["n_iter"] + 1])
    # not judged before its patience runs out
    patient = from_the_poor_basin(optimum, patience=hopeless["n_iter"] + 4)
    assert patient["n_iter"] >= hopeless["n_iter"] + 4
    # a floor it reaches: the same run as without one
    reachable = from_the_poor_basin(free["objective"] - 1.0)
    assert reachable["n_iter"] == free["n_iter"]


def test_a_split_and_merge_run_that_slows_down_before_it_climbs_is_kept():
    # random_state=16: both search runs agree on a basin 80.8 below the optimum; the move's
    # run slows down in its third and fourth cycles (changes 45, 13), then climbs 4300 to
    # the optimum (bench_optimum's depth-2 problem; judged from its third cycle, it was
    # given up there)
    X, y = make_moe_regression(3000, 2, 4, noise=0.3, random_state=10)
    model = HierarchicalMixtureOfExpertsRegressor(depth=2, random_state=16).fit(X, y)
    record = model.restarts_[0]
    assert np.all(record["candidate_objectives"] < -3000.0)
    assert record["split_merge_objective"] == model.objective_
    assert model.objective_ == pytest.approx(-2924.996, abs=1e-2)
