"""Joint models of several responses, independent given the expert (issue #18): flexmix's
``model = list(FLXMRglm(...), FLXMRglm(..., family = "poisson"))``.

The NPreg joint model reaches flexmix's maximum; the joint log density is the sum of the
members' ``scipy.stats`` log densities mixed by the gate; standard errors agree with a
finite-difference Hessian; EM ascends, integer weights equal repeated rows, planted
experts are recovered; partial_fit, dask, the summary and export_text work.
"""

import json
import warnings

import numpy as np
import pytest
from conftest import DATA, assert_log_likelihood_increasing, assert_monotone
from scipy import stats
from scipy.optimize import linear_sum_assignment

from skmoe import HierarchicalMixtureOfExpertsRegressor, MixtureOfExpertsRegressor, export_text
from skmoe._families import JointExperts, make_family
from skmoe.datasets import load_npreg

JOINT = ["gaussian", "poisson"]


def _npreg():
    x, yn = load_npreg(return_X_y=True)
    _, yp = load_npreg(target="yp", return_X_y=True)
    x = np.asarray(x, dtype=float).ravel()
    return np.column_stack([x, x**2]), np.column_stack([yn, yp])


@pytest.fixture(scope="module")
def npreg_joint():
    # R: flexmix(. ~ x, data = NPreg, k = 2, model = list(FLXMRglm(yn ~ . + I(x^2)),
    #            FLXMRglm(yp ~ ., family = "poisson")))   (ML variance, see tests/data)
    X, Y = _npreg()
    model = MixtureOfExpertsRegressor(
        2, expert=JOINT, expert_features=[[0, 1], [0]], gate_features=[], gate_alpha=0.0,
        tol=1e-10, max_iter=5000, random_state=0,
    )
    return X, Y, model.fit(X, Y)


def _reference():
    with open(DATA / "reference_fits_structure.json") as handle:
        fits = json.load(handle)["fits"]
    return next(fit for fit in fits if fit["id"] == "NPreg_joint_k2")


def test_reaches_the_flexmix_joint_npreg_maximum(npreg_joint):
    X, Y, model = npreg_joint
    reference = _reference()
    assert model.log_likelihood_ >= reference["loglik_mle"] - 1e-3
    assert model.log_likelihood_ == pytest.approx(reference["loglik_mle"], abs=1e-3)
    assert model._n_parameters() == reference["df"] == 13
    n = len(Y)
    assert model.bic(X, Y) == pytest.approx(-2 * model.log_likelihood_ + 13 * np.log(n),
                                            rel=1e-12)
    # flexmix's components, matched by the Gaussian intercept
    gaussian, poisson = reference["expert_params"]
    order = np.argsort(model.expert_intercept_[:, 0])  # Comp.2 has the smaller intercept
    for ours, theirs in zip(order, ["Comp.2", "Comp.1"]):
        g, p = gaussian[theirs], poisson[theirs]
        np.testing.assert_allclose(
            [model.expert_intercept_[ours, 0], *model.expert_coef_[0][ours]],
            [g["coef.(Intercept)"], g["coef.x"], g["coef.I(x^2)"]], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(
            [model.expert_intercept_[ours, 1], *model.expert_coef_[1][ours]],
            [p["coef.(Intercept)"], p["coef.x"]], rtol=1e-4, atol=1e-4)
        assert np.sqrt(model.expert_variance_0_[ours]) == pytest.approx(g["sigma"], rel=1e-4)


def test_joint_density_is_the_members_scipy_densities_mixed_by_the_gate(npreg_joint):
    X, Y, model = npreg_joint
    gate = model.predict_gate(X)
    means = model.predict_experts(X)  # (n, K, R)
    assert means.shape == (len(Y), 2, 2)
    sd = np.sqrt(model.expert_variance_0_)
    log_f = (stats.norm.logpdf(Y[:, [0]], means[:, :, 0], sd)
             + stats.poisson.logpmf(Y[:, [1]], means[:, :, 1]))
    expected = np.log(np.sum(gate * np.exp(log_f), axis=1))
    np.testing.assert_allclose(model.score_samples(X, Y), expected, rtol=1e-10, atol=1e-10)
    resp = gate * np.exp(log_f)
    resp /= resp.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(model.predict_responsibilities(X, Y), resp, atol=1e-10)
    np.testing.assert_array_equal(model.assign_experts(X, Y), resp.argmax(axis=1))
    # the mean of every response, and the experts' means of the members
    np.testing.assert_allclose(model.predict(X), np.einsum("ik,ikr->ir", gate, means),
                               rtol=1e-12)
    assert model.predict(X).shape == (len(Y), 2)
    np.testing.assert_allclose(means[:, :, 1], np.exp(
        model.expert_intercept_[:, 1] + X[:, [0]] * model.expert_coef_[1][:, 0]), rtol=1e-12)


def test_draws_and_standard_deviation(npreg_joint):
    X, _, model = npreg_joint
    x = X[[5, 150]]
    draws = model.sample_y(x, 200_000, random_state=0)
    assert draws.shape == (2, 200_000, 2)
    assert np.all(draws[:, :, 1] == np.round(draws[:, :, 1]))
    mean, std = model.predict(x, return_std=True)
    np.testing.assert_allclose(draws.mean(axis=1), mean, rtol=0.01)
    np.testing.assert_allclose(draws.std(axis=1), std, rtol=0.01)
    # both responses of a draw come from one expert: they are correlated through it
    gate, means = model.predict_gate(x), model.predict_experts(x)
    cross = np.einsum("ik,ik,ik->i", gate, means[:, :, 0], means[:, :, 1])
    cross -= mean[:, 0] * mean[:, 1]
    observed = np.mean(draws[:, :, 0] * draws[:, :, 1], axis=1)
    observed -= draws[:, :, 0].mean(axis=1) * draws[:, :, 1].mean(axis=1)
    np.testing.assert_allclose(observed, cross, rtol=0.1)
    with pytest.raises(NotImplementedError, match="predict_quantiles takes one response"):
        model.predict_quantiles(x)


def _log_likelihood_at(model, X, Y, theta):
    """Observed log-likelihood at a vector in the order of standard_errors(): the gate
    contrast, then per expert (yn coefficients, variance, yp coefficients)."""
    gate = np.zeros((2, 1))
    gate[1] = theta[:1]
    rest = theta[1:].reshape(2, -1)
    experts = {"coef": np.column_stack([rest[:, :3], rest[:, 4:]]),
               "variance_0": rest[:, 3].copy()}
    params = {"gate": [gate[None]], "experts": experts}
    return float(model._model.e_step(model._predict_data(X, Y), params)[0].sum())


def test_standard_errors_match_a_finite_difference_hessian(npreg_joint):
    X, Y, model = npreg_joint
    result = model.standard_errors(X, Y)
    theta = result.estimate
    assert _log_likelihood_at(model, X, Y, theta) == pytest.approx(model.log_likelihood_,
                                                                   rel=1e-12)
    P = theta.size
    # steps of 1e-3 relative: smaller ones leave the rounding of a 1e3 log-likelihood
    h = 1e-3 * np.maximum(np.abs(theta), 1e-1)
    hessian = np.zeros((P, P))
    for a in range(P):
        for b in range(a, P):

            def shifted(sa, sb, a=a, b=b):
                t = theta.copy()
                t[a] += sa * h[a]
                t[b] += sb * h[b]
                return _log_likelihood_at(model, X, Y, t)

            hessian[a, b] = hessian[b, a] = (
                shifted(1, 1) - shifted(1, -1) - shifted(-1, 1) + shifted(-1, -1)
            ) / (4 * h[a] * h[b])
    np.testing.assert_allclose(result.se, np.sqrt(np.diag(np.linalg.inv(-hessian))), rtol=1e-4)
    assert result.expert_intercept.shape == (2, 2)
    assert [c.shape for c in result.expert_coef] == [(2, 2), (2, 1)]
    assert result.dispersion[1] is None
    assert [name for part, k, name in result.names if part == "expert" and k == 0] == [
        "y0: (Intercept)", "y0: x0", "y0: x1", "y0: variance", "y1: (Intercept)", "y1: x0"]


def test_summary_and_export_text_label_every_response(npreg_joint):
    X, Y, model = npreg_joint
    text = model.summary(X, Y)
    assert "df = 13" in text
    for label in ("y0: (Intercept)", "y0: x1", "y0: variance", "y1: x0"):
        assert label in text
    frame = model.summary(X, Y, as_frame=True)
    assert np.isnan(frame.loc[("expert", 0, "y0: variance"), "z_value"])
    assert np.isfinite(frame.loc[("expert", 0, "y1: x0"), "z_value"])
    view = export_text(model, ["x", "x2"])
    assert view.count("y0: eta = ") == 2 and view.count("y1: eta = ") == 2
    assert "x2" not in [line for line in view.splitlines() if "y1: eta" in line][0]
    # names given to the family label the responses
    named = MixtureOfExpertsRegressor(
        2, expert=JointExperts(JOINT, names=["yn", "yp"]), expert_features=[[0, 1], [0]],
        gate_features=[], random_state=0).fit(X, Y)
    assert "yp: (Intercept)" in named.summary(X, Y)
    assert "yn: eta" in export_text(named)
    assert named.log_likelihood_ == pytest.approx(model.log_likelihood_, abs=1e-3)


def test_y_is_checked_per_response():
    X, Y = _npreg()
    model = MixtureOfExpertsRegressor(2, expert=JOINT)
    with pytest.raises(ValueError, match=r"shape \(n_samples, 2\).*one column per response"):
        model.fit(X, Y[:, 0])
    with pytest.raises(ValueError, match=r"shape \(n_samples, 2\)"):
        model.fit(X, np.column_stack([Y, Y[:, 1]]))
    negative = Y.copy()
    negative[3, 1] = -1.0
    with pytest.raises(ValueError, match=r"column 1 of y \(y1\): Poisson experts need "
                                         "non-negative counts"):
        model.fit(X, negative)
    with pytest.raises(ValueError, match="column 1 of y"):
        model.fit(X, Y).score_samples(X, negative)
    with pytest.raises(ValueError, match="y contains NaN"):
        model.fit(X, np.where(np.arange(200)[:, None] == 4, np.nan, Y))
    with pytest.raises(ValueError, match="Gamma experts need a strictly positive"):
        MixtureOfExpertsRegressor(2, expert=["gaussian", "gamma"]).fit(X, Y - 5.0)
    family = make_family(JOINT, 2)
    with pytest.raises(ValueError, match=r"need y of shape \(n_samples, 2\), one column per "
                                         r"family; got shape \(200,\)"):
        family.check_y(Y[:, 0])


def test_invalid_specifications_say_what_is_wrong():
    X, Y = _npreg()
    with pytest.raises(ValueError, match="'poison' is not an expert family"):
        MixtureOfExpertsRegressor(2, expert=["gaussian", "poison"]).fit(X, Y)
    with pytest.raises(ValueError, match="at least two families"):
        MixtureOfExpertsRegressor(2, expert=["gaussian"]).fit(X, Y[:, 0])
    with pytest.raises(ValueError, match="one response column each"):
        MixtureOfExpertsRegressor(2, expert=["gaussian", "binomial"]).fit(X, Y)
    with pytest.raises(ValueError, match="gives 3 lists of columns, one per response, but "
                                         "the expert family models 2 responses"):
        MixtureOfExpertsRegressor(2, expert=JOINT, expert_features=[[0], [0], [1]]).fit(X, Y)
    with pytest.raises(ValueError, match="models 1 response "):
        MixtureOfExpertsRegressor(2, expert_features=[[0], [1]]).fit(X, Y[:, 0])
    with pytest.raises(NotImplementedError, match="shared_features are not supported"):
        MixtureOfExpertsRegressor(2, expert=JOINT, shared_features=[1]).fit(X, Y)
    with pytest.raises(ValueError, match="exposure needs log-link experts"):
        MixtureOfExpertsRegressor(2, expert=JOINT).fit(X, Y, exposure=np.ones(200))


def test_per_response_columns_by_name_and_warm_start_structure():
    pd = pytest.importorskip("pandas")
    X, Y = _npreg()
    frame = pd.DataFrame(X, columns=["x", "x2"])
    model = MixtureOfExpertsRegressor(2, expert=JOINT, expert_features=[["x", "x2"], ["x"]],
                                      gate_features=[], random_state=0).fit(frame, Y)
    assert [c.tolist() for c in model.response_features_in_] == [[0, 1], [0]]
    assert model.expert_features_in_.tolist() == [0, 1]
    assert "y1: x2" not in model.summary(frame, Y) and "y0: x2" in model.summary(frame, Y)
    model.set_params(warm_start=True, expert_features=[["x"], ["x"]])
    with pytest.warns(UserWarning, match="the columns of expert_features changed"):
        model.fit(frame, Y)
    assert [c.shape for c in model.expert_coef_] == [(2, 1), (2, 1)]


def test_em_ascent_with_the_defaults():
    X, Y = _npreg()
    model = MixtureOfExpertsRegressor(2, expert=JOINT, expert_features=[[0, 1], [0]],
                                      random_state=0)
    values = assert_log_likelihood_increasing(model, X, Y, 40)
    assert np.all(np.isfinite(values))
    fitted = MixtureOfExpertsRegressor(3, expert=JOINT, random_state=0).fit(X, Y)
    trace = fitted.objective_trace_
    assert_monotone(trace, rtol=1e-12)


def test_integer_weights_equal_repeated_rows():
    X, Y = _npreg()
    weights = np.random.default_rng(3).integers(1, 4, size=len(Y)).astype(float)
    reps = weights.astype(int)
    params = dict(expert=JOINT, expert_features=[[0, 1], [0]], random_state=0, tol=1e-10,
                  max_iter=3000)
    a = MixtureOfExpertsRegressor(2, **params).fit(X, Y, sample_weight=weights)
    b = MixtureOfExpertsRegressor(2, **params).fit(np.repeat(X, reps, axis=0),
                                                   np.repeat(Y, reps, axis=0))
    assert a.objective_ == pytest.approx(b.objective_, rel=1e-9)
    np.testing.assert_allclose(a.expert_intercept_, b.expert_intercept_, rtol=1e-5, atol=1e-6)
    for ca, cb in zip(a.expert_coef_, b.expert_coef_):
        np.testing.assert_allclose(ca, cb, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a.expert_variance_0_, b.expert_variance_0_, rtol=1e-5)
    assert a.bic(X, Y, sample_weight=weights) == pytest.approx(
        b.bic(np.repeat(X, reps, axis=0), np.repeat(Y, reps, axis=0)), rel=1e-9)


GAUSSIAN_COEF = np.array([[1.0, 2.0, -1.0], [-2.0, -1.0, 1.0], [4.0, 0.5, 0.5]])
POISSON_COEF = np.array([[1.0, 0.3, -0.2], [2.0, -0.3, 0.2], [3.0, 0.2, 0.3]])


def _planted(n=5000, seed=7):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2))
    gate = np.array([[0.0, 0.0, 0.0], [0.0, 2.5, 0.0], [0.0, 0.0, 2.5]])
    logits = gate[:, 0] + X @ gate[:, 1:].T
    prob = np.exp(logits - logits.max(axis=1, keepdims=True))
    prob /= prob.sum(axis=1, keepdims=True)
    labels = (rng.uniform(size=n)[:, None] > np.cumsum(prob, axis=1)).sum(axis=1)
    X1 = np.column_stack([np.ones(n), X])
    yn = np.einsum("id,id->i", X1, GAUSSIAN_COEF[labels]) + 0.5 * rng.normal(size=n)
    yp = rng.poisson(np.exp(np.einsum("id,id->i", X1, POISSON_COEF[labels]))).astype(float)
    return X, np.column_stack([yn, yp])


@pytest.fixture(scope="module")
def planted():
    X, Y = _planted()
    return X, Y, MixtureOfExpertsRegressor(3, expert=JOINT, random_state=0).fit(X, Y)


def test_recovers_planted_joint_experts(planted):
    _, _, model = planted
    gaussian = np.column_stack([model.expert_intercept_[:, 0], model.expert_coef_[0]])
    poisson = np.column_stack([model.expert_intercept_[:, 1], model.expert_coef_[1]])
    _, order = linear_sum_assignment(
        ((GAUSSIAN_COEF[:, None] - gaussian[None]) ** 2).sum(axis=2))
    assert np.max(np.abs(gaussian[order] - GAUSSIAN_COEF)) < 0.05
    assert np.max(np.abs(poisson[order] - POISSON_COEF)) < 0.05
    np.testing.assert_allclose(np.sqrt(model.expert_variance_0_), 0.5, rtol=0.05)
    assert model.converged_


def test_partial_fit_approaches_the_fit(planted):
    X, Y, model = planted
    online = MixtureOfExpertsRegressor(3, expert=JOINT, random_state=0)
    for _ in range(3):
        for rows in np.array_split(np.arange(len(Y)), 10):
            online.partial_fit(X[rows], Y[rows])
    gap = model.score_samples(X, Y).mean() - online.score_samples(X, Y).mean()
    assert gap < 0.02, gap
    assert online.predict(X[:4]).shape == (4, 2)


def test_joint_of_members_with_dispersions_and_empty_expert_columns():
    X, Y = _planted(n=1500, seed=2)
    Y = np.column_stack([Y, np.exp(0.3 * Y[:, 0] / 4) * np.random.default_rng(0).gamma(
        5.0, 0.2, size=len(Y))])
    model = MixtureOfExpertsRegressor(
        3, expert=["gaussian", "poisson", "gamma"], expert_features=[[0, 1], [], [0]],
        random_state=0).fit(X, Y)
    assert [c.shape for c in model.expert_coef_] == [(3, 2), (3, 0), (3, 1)]
    assert model._n_parameters() == 2 * 3 + 3 * (4 + 1 + 3)
    result = model.standard_errors(X, Y)
    assert np.all(np.isfinite(result.se))
    assert "y2: shape" in model.summary(X, Y)
    assert model.sample_y(X[:3], 2, random_state=0).shape == (3, 2, 3)


def test_dask_fit_equals_in_memory_fit():
    pytest.importorskip("distributed")
    da = pytest.importorskip("dask.array")
    from distributed import Client, LocalCluster

    X, Y = _planted(n=600, seed=4)
    params = dict(expert=JOINT, expert_features=[[0, 1], [0]], max_iter=10, tol=0.0,
                  acceleration=None, random_state=0, init_params="random")
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                      dashboard_address=":0", silence_logs=40) as cluster, Client(cluster):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            memory = MixtureOfExpertsRegressor(2, **params).fit(X, Y)
            chunked = MixtureOfExpertsRegressor(2, **params).fit(
                da.from_array(X, chunks=(150, 2)), da.from_array(Y, chunks=(150, 2)))
    np.testing.assert_allclose(chunked.expert_intercept_, memory.expert_intercept_, rtol=1e-8)
    for a, b in zip(chunked.expert_coef_, memory.expert_coef_):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(chunked.expert_variance_0_, memory.expert_variance_0_, rtol=1e-8)


def test_hierarchical_and_grouped_fits_take_joint_experts():
    X, Y = _npreg()
    tree = HierarchicalMixtureOfExpertsRegressor(expert=JOINT, random_state=0).fit(X, Y)
    assert tree.predict(X[:3]).shape == (3, 2)
    assert export_text(tree).count("y1: eta = ") == tree._n_leaves()
    groups = np.repeat(np.arange(50), 4)
    grouped = MixtureOfExpertsRegressor(2, expert=JOINT, gate_features=[], random_state=0)
    grouped.fit(X, Y, groups=groups)
    labels, log_lik = grouped.score_groups(X, Y, groups)
    assert labels.size == 50
    assert log_lik.sum() == pytest.approx(grouped.log_likelihood_, rel=1e-10)
    # a warm start notices a change of the member families
    model = MixtureOfExpertsRegressor(2, expert=JOINT, random_state=0).fit(X, Y)
    model.set_params(warm_start=True, expert=["gaussian", "negative_binomial"])
    with pytest.warns(UserWarning, match="the expert family changed"):
        model.fit(X, Y)
