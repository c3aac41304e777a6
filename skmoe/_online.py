"""Mini-batch EM: ``partial_fit`` by stepwise online EM (Cappé & Moulines 2009).

Each call to ``partial_fit`` takes one mini-batch. Its E-step runs at the current
parameters; the batch's M-step statistics, per unit of sample weight, enter running
averages

    s_t = (1 - gamma_t) s_{t-1} + gamma_t s_batch,    gamma_t = (t + t0) ** -decay,

where ``t`` counts the batches already averaged (``gamma_0 = 1``: the first batch replaces
the statistics), and the new parameters are the M-step of the averages. With ``decay`` in
(0.5, 1] the steps satisfy Robbins and Monro's conditions. The defaults ``decay = 0.6``,
``t0 = 1`` take long steps early (0.66, 0.52, 0.44 for the second to fourth batch) and
later average over roughly the last ``t ** 0.6`` batches.

The first batch of a fresh start is fitted by EM with these same M-steps (``n_init`` starts
from ``init_params``, up to ``max_iter`` iterations, ``tol``): a single M-step from random
responsibilities followed by small online steps is slow to leave the symmetric start, and
more often than batch EM ends in a poorer local maximum.

The statistics of each part of the model:

* Gaussian experts have finite sufficient statistics: per expert the weighted Gram
  ``G = X1' W X1`` (intercept column first), ``X1' W y``, ``y' W y`` and the total weight
  ``N``. Their M-step is that of ``GaussianExperts``: a weighted ridge ``b``, and the
  variance ``(y'Wy - 2 b'X1'Wy + b'Gb + alpha ||b||^2) / N`` held at the family's floor.
  This part is exactly stepwise EM.
* The gate, Poisson, Gamma and Bernoulli experts and multinomial experts have none. They
  keep the running average of a quadratic surrogate instead (stochastic
  majorisation-minimisation, Mairal 2013): at the current parameters ``theta_t`` a batch
  gives the gradient ``g`` of its part of the expected complete-data log-likelihood and a
  curvature ``H``; the averages of ``H`` and of ``H theta_t + g`` define a concave
  quadratic whose maximiser, less the ridge penalty, is the new ``theta``.

  - Gate: ``H`` is Böhning's bound ``(1/2)(I - J/C) kron X1' diag(w h_m) X1`` of every
    gate node ``m`` (``w h_m`` its weighted posterior), a true minoriser (see
    ``skmoe._logit.bound_factor``), so each update is a stochastic MM step. With
    ``partial_fit_gate_curvature = "hessian"`` it is the exact negative Hessian instead
    (averaged Newton: faster where the gate is sharp). The coefficients are kept in the
    symmetric sum-to-zero parametrisation.
  - GLM and multinomial experts: ``H`` is the negative Hessian ``X1' diag(W (-d2)) X1``
    (the Fisher information for the canonical Poisson, Bernoulli and multinomial links:
    an averaged IRLS step). Newton-type steps are held in a trust region: the linear
    predictor moves by at most ``MAX_STEP`` in root mean square over the expert's data
    (a Newton step where predictions saturate, e.g. on separable data, is unbounded).
  - Gamma dispersion: the ML equation ``log v - digamma(v) = D / N`` for the shape ``v``,
    from the running averages of the expert's deviance term ``D = sum W (r - log r - 1)``,
    ``r = y / mu`` (at the parameters of each batch's E-step), and of its weight ``N``.

Penalties: the averages are per unit of weight, so the ridge penalties of ``fit`` enter
divided by the total sample weight seen since the start (the penalty is counted once for the
stream, as ``fit`` counts it once for the data; passes over the same data count it again, so
they weaken the penalty by the number of passes).
"""
import copy

import numpy as np
from sklearn.base import is_classifier
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_random_state

from . import _logit
from ._base import DegenerateFitWarning, _degenerate_events
from ._blocks import Block, InMemoryBlocks
from ._em import EMData, MixtureOfExpertsModel, warn
from ._families import (
    GaussianExperts,
    MultinomialExperts,
    _gaussian_stats_block,
    gamma_shape,
    residual_sum_of_squares,
    start_means,
)
from ._linalg import linear_predictor, penalty_diagonal, solve_spd, weighted_grams, weighted_sums
from ._sklearn_compat import _check_sample_weight, _fit_context, validate_data

#: Step-size exponent ``decay`` of ``gamma_t = (t + t0) ** -decay``, in (0.5, 1].
DECAY = 0.6

#: Step-size offset ``t0`` (``gamma_1 = (1 + t0) ** -decay`` for the second batch).
OFFSET = 1.0

#: Curvature of the gate's surrogate: Böhning's bound ("bound", a minoriser: each update
#: is a stochastic MM step) or the exact negative Hessian ("hessian", an averaged Newton
#: step: faster where the gate is sharp, with no guarantee).
GATE_CURVATURE = "bound"

#: Trust region of the Newton-type updates (GLM and multinomial experts, the gate with
#: ``"hessian"``): a step changes the linear predictor by at most this much in root mean
#: square over each expert's (gate node's) data. A Newton step from a point where some
#: predictions are saturated, e.g. on separable data, is otherwise unbounded.
MAX_STEP = 2.0

#: Attributes that describe a batch ``fit`` (its restarts, its convergence) and would be
#: stale once ``partial_fit`` has moved the parameters.
_FIT_ONLY_ATTRIBUTES = (
    "converged_",
    "n_iter_",
    "log_likelihood_",
    "objective_",
    "objective_trace_",
    "restarts_",
    "events_",
)


def step_size(t, decay=DECAY, offset=OFFSET):
    """Weight ``gamma_t`` of the ``t``-th batch (counted from 0) in the running averages."""
    if t == 0:
        return 1.0
    return float((t + offset) ** -decay)


def _trust_region(new, old, gram, weight, max_step=MAX_STEP):
    """``old + f (new - old)`` with ``f <= 1`` such that the step changes the linear
    predictor by at most ``max_step`` in root mean square over each part's averaged data.

    ``new``, ``old`` (M, d + 1) or (M, C, d + 1); ``gram`` (M, d + 1, d + 1) the averaged
    ``X1' diag(w_m) X1`` and ``weight`` (M,) the averaged ``sum w_m``.
    """
    delta = (new - old).reshape(new.shape[0], -1, new.shape[-1])
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_square = np.einsum("mca,mab,mcb->m", delta, gram, delta) / (
            delta.shape[1] * weight
        )
        factor = np.minimum(1.0, max_step / np.sqrt(mean_square))
    factor = np.where(np.isfinite(factor), factor, 1.0)
    return old + factor.reshape((-1,) + (1,) * (new.ndim - 1)) * (new - old)


def _empty(weight):
    """Parts (experts, gate nodes) whose averaged weight is (numerically) zero."""
    return weight <= 1e-10 * max(float(weight.max(initial=0.0)), 1e-300)


def _keep(new, old, empty):
    """Parts with no weight keep their previous parameters (their update is undefined)."""
    if empty.any():
        new[empty] = old[empty]
    return new


# ------------------------------------------------------------------------ expert parts
class _GaussianPart:
    """Sufficient statistics and closed-form M-step of Gaussian experts."""

    def __init__(self, family):
        self.family = family

    def start(self, X, y, W, offset):
        """Every expert at the weighted mean and variance of the batch (the parameters that
        an expert with no weight keeps)."""
        K = self.family.n_experts
        w = W.sum(axis=0)
        yo = y if offset is None else y - offset
        coef = np.zeros((K, X.shape[1] + 1))
        coef[:, 0] = np.average(yo, weights=w)
        variance = np.average((yo - coef[0, 0]) ** 2, weights=w)
        return {"coef": coef, "variance": np.full(K, max(variance, self.family.variance_floor))}

    def statistics(self, X, y, W, params, offset):
        block = Block(X_expert=X, y=y, offset=offset, cache={"W": W})
        return dict(zip(("gram", "xy", "yy", "weight"), _gaussian_stats_block(block)))

    def update(self, stats, params, scale):
        """M-step of the averaged statistics; ``scale`` divides the ridge penalty."""
        lam = self.family.alpha / scale
        d1 = stats["gram"].shape[-1]
        coef = solve_spd(stats["gram"] + np.diag(penalty_diagonal(d1, lam)), stats["xy"])
        rss = residual_sum_of_squares(coef, stats["gram"], stats["xy"], stats["yy"])
        rss += lam * np.sum(coef[:, 1:] ** 2, axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            variance = np.maximum(rss / stats["weight"], self.family.variance_floor)
        empty = _empty(stats["weight"]) | ~np.all(np.isfinite(coef), axis=1)
        return {
            "coef": _keep(coef, params["coef"], empty),
            "variance": _keep(variance, params["variance"], empty),
        }


class _NewtonPart:
    """Averaged Newton (IRLS) surrogate of GLM experts with ``derivatives``."""

    def __init__(self, family):
        self.family = family
        self.has_dispersion = "dispersion" in family.dispersion_keys

    def start(self, X, y, W, offset):
        """Intercept-only experts at each expert's weighted mean response."""
        coef = np.zeros((self.family.n_experts, X.shape[1] + 1))
        coef[:, 0] = self.family.link(start_means(W @ y, W.sum(axis=1), np.mean(y)))
        if offset is not None:
            coef[:, 0] -= np.average(offset)
        params = {"coef": coef}
        if self.has_dispersion:
            params["dispersion"] = np.ones(self.family.n_experts)
        return params

    def statistics(self, X, y, W, params, offset):
        coef = params["coef"]
        eta = linear_predictor(X, coef)
        if offset is not None:
            eta += offset
        _, d1, neg_d2 = self.family.derivatives(y, eta, params, order=2)
        hessian = weighted_grams(X, W * neg_d2)
        stats = {
            "gram": weighted_grams(X, W),
            "hessian": hessian,
            "linear": np.einsum("kab,kb->ka", hessian, coef) + weighted_sums(X, W * d1),
            "weight": W.sum(axis=1),
        }
        if self.has_dispersion:
            ratio = y * np.exp(-eta)
            stats["deviance"] = np.einsum("ki,ki->k", W, ratio - np.log(ratio) - 1.0)
        return stats

    def update(self, stats, params, scale):
        d1 = stats["hessian"].shape[-1]
        penalty = np.diag(penalty_diagonal(d1, self.family.alpha / scale))
        coef = solve_spd(stats["hessian"] + penalty, stats["linear"])
        empty = _empty(stats["weight"]) | ~np.all(np.isfinite(coef), axis=1)
        coef = _trust_region(coef, params["coef"], stats["gram"], stats["weight"])
        new = {"coef": _keep(coef, params["coef"], empty)}
        if self.has_dispersion:
            with np.errstate(invalid="ignore", divide="ignore"):
                target = stats["deviance"] / stats["weight"]
            new["dispersion"] = _keep(
                1.0 / gamma_shape(target, self.family.max_shape), params["dispersion"], empty
            )
        return new


class _Softmax:
    """Quadratic surrogate of ``M`` softmax models over ``C`` categories, soft counts ``S``.

    Model ``m`` has coefficients ``V[m]`` (C, d + 1) in the symmetric sum-to-zero
    parametrisation and the per-unit objective ``sum_i sum_c S[m, c, i] log p_c(x_i)``
    (``S`` sums to the batch's share of weight). The batch gives the gradient ``g`` at
    ``V`` and a curvature ``H``: with ``curvature="hessian"`` the exact negative Hessian,
    block (c, c') ``X1' diag(w_m (p_c delta_cc' - p_c p_c')) X1`` (the Fisher information of
    the canonical link: an averaged IRLS step); with ``curvature="bound"`` Böhning's bound
    ``(1/2)(I - J/C) kron X1' diag(w_m) X1``, which minorises the objective everywhere (a
    stochastic MM step), ``w_m = sum_c S[m, c]``. The update maximises
    ``<avg(H V + g), V> - V' avg(H) V / 2 - lam / 2 ||V[..., 1:]||^2`` over the
    sum-to-zero subspace.
    """

    def __init__(self, curvature):
        if curvature not in ("hessian", "bound"):
            raise ValueError(
                f"partial_fit_gate_curvature must be 'bound' or 'hessian'; got {curvature!r}."
            )
        self.curvature = curvature

    def statistics(self, X, S, V):
        M, C, n = S.shape
        d1 = X.shape[1] + 1
        weight = S.sum(axis=1)
        p = _logit.log_proba(X, V)[1]
        gram = weighted_grams(X, weight)
        if self.curvature == "bound":
            # on the subspace (I - J/C) is the identity: H V is gram V / 2 per category
            curvature, HV = gram, 0.5 * (V @ gram)
        else:
            iu, ju = np.triu_indices(C)
            curv = -p[:, iu] * p[:, ju]
            curv[:, iu == ju] += p
            curv *= weight[:, None, :]
            grams = weighted_grams(X, curv.reshape(-1, n)).reshape(M, len(iu), d1, d1)
            H = np.zeros((M, C, d1, C, d1))
            H[:, iu, :, ju, :] = grams.transpose(1, 0, 2, 3)
            H[:, ju, :, iu, :] = grams.transpose(1, 0, 2, 3)
            curvature = H.reshape(M, C * d1, C * d1)
            HV = (curvature @ V.reshape(M, C * d1, 1)).reshape(M, C, d1)
        p *= -weight[:, None, :]
        p += S
        grad = weighted_sums(X, p.reshape(M * C, n)).reshape(M, C, d1)
        stats = {"curvature": curvature, "linear": HV + grad, "weight": weight.sum(axis=1)}
        if self.curvature == "hessian":
            stats["gram"] = gram
        return stats

    def update(self, stats, V, lam):
        M, C, d1 = V.shape
        penalty = penalty_diagonal(d1, lam)
        if self.curvature == "bound":
            A = 0.5 * stats["curvature"] + np.diag(penalty)
            new = solve_spd(A, stats["linear"].transpose(0, 2, 1)).transpose(0, 2, 1)
        else:
            # definite along the directions that add one vector to every category, where
            # the linear term has no component (as in _logit.newton_matrix)
            A = stats["curvature"] + np.diag(np.tile(penalty, C))
            scale = max(np.trace(A, axis1=1, axis2=2).max() / (C * d1), 1e-12)
            A += scale * np.kron(np.full((C, C), 1.0 / C), np.eye(d1))
            new = solve_spd(A, stats["linear"].reshape(M, C * d1)).reshape(M, C, d1)
        new -= new.mean(axis=1, keepdims=True)
        empty = _empty(stats["weight"]) | ~np.all(np.isfinite(new), axis=(1, 2))
        new = _keep(new, V, empty)
        if self.curvature == "hessian":
            new = _trust_region(new, V, stats["gram"], stats["weight"])
        return new


class _MultinomialPart:
    """Multinomial-logit experts: one softmax model per expert over the classes."""

    def __init__(self, family):
        self.family = family
        self.softmax = _Softmax("hessian")

    def start(self, X, y, W, offset):
        K, C = self.family.n_experts, self.family.n_classes
        return {"coef": np.zeros((K, C, X.shape[1] + 1))}

    def statistics(self, X, y, W, params, offset):
        K, C = self.family.n_experts, self.family.n_classes
        S = np.zeros((K, C, X.shape[0]))
        S[:, y, np.arange(X.shape[0])] = W
        return self.softmax.statistics(X, S, params["coef"])

    def update(self, stats, params, scale):
        lam = self.family.alpha / scale
        return {"coef": self.softmax.update(stats, params["coef"], lam)}


def _expert_part(family):
    if isinstance(family, GaussianExperts):
        return _GaussianPart(family)
    if isinstance(family, MultinomialExperts):
        return _MultinomialPart(family)
    if hasattr(family, "derivatives"):
        return _NewtonPart(family)
    raise TypeError(f"partial_fit does not support {type(family).__name__} experts.")


# -------------------------------------------------------------------------- the gate
# ----------------------------------------------------------------------- the algorithm
class StepwiseEM:
    """State of stepwise online EM for one model: parameters and averaged statistics.

    Parameters
    ----------
    model : MixtureOfExpertsModel
    params : dict or None
        Parameters to continue from (a fitted model); None starts from the initial
        responsibilities given to the first ``step``.
    decay, offset : float
        Step sizes ``gamma_t = (t + offset) ** -decay``.
    gate_curvature : {"bound", "hessian"}
        Curvature of the gate's surrogate, see ``_Softmax``.
    """

    def __init__(
        self, model, params=None, decay=DECAY, offset=OFFSET, gate_curvature=GATE_CURVATURE
    ):
        if not 0.5 < decay <= 1.0:
            raise ValueError(f"partial_fit_decay must lie in (0.5, 1]; got {decay}.")
        if not offset >= 0:
            raise ValueError(f"partial_fit_offset must be non-negative; got {offset}.")
        self.model = model
        self.params = params
        self.decay = decay
        self.offset = offset
        self.experts = _expert_part(model.family)
        self.gate = _Softmax(gate_curvature)
        self.restart_averages()

    def restart_averages(self):
        """Forget the averaged statistics: the next batch gets weight 1."""
        self.stats = None
        self.n_batches = 0
        self.total_weight = 0.0

    def step(self, data, initial_resp=None):
        """One mini-batch: E-step, running averages, M-step.

        Returns the batch's mean log-likelihood (per unit weight) at the parameters before
        the update; nan on a fresh start, whose E-step is ``initial_resp`` (K, n).
        """
        total = data.total_weight
        gate = self.model.gate
        if self.params is None:
            mean_log_lik = np.nan
            W = initial_resp * (data.sample_weight / total)
            params = {
                "gate": gate.initial_coef(data.X_gate),
                "experts": self.experts.start(data.X_expert, data.y, W, data.offset),
            }
        else:
            params = self.params
            log_lik, W = self.model.e_step(data, params)
            mean_log_lik = float(data.sample_weight @ log_lik) / total
            W *= data.sample_weight / total
        V = np.concatenate(params["gate"])
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            batch = {
                "experts": self.experts.statistics(
                    data.X_expert, data.y, W, params["experts"], data.offset
                ),
                "gate": self.gate.statistics(data.X_gate, gate.node_counts(W), V),
            }
        if self.stats is None:
            self.stats = batch
        else:
            gamma = step_size(self.n_batches, self.decay, self.offset)
            self.stats = {
                part: {
                    key: (1.0 - gamma) * value + gamma * batch[part][key]
                    for key, value in self.stats[part].items()
                }
                for part in self.stats
            }
        self.n_batches += 1
        self.total_weight += total
        with np.errstate(over="ignore", invalid="ignore"):
            experts = self.experts.update(
                self.stats["experts"], params["experts"], self.total_weight
            )
            V = self.gate.update(self.stats["gate"], V, gate.alpha / self.total_weight)
        self.params = {"gate": gate.split_levels(V), "experts": experts}
        return mean_log_lik

    def fit_batch(self, data, initial_resp, max_iter, tol):
        """Batch EM on one batch (the first of a stream): the M-step of ``initial_resp``,
        then up to ``max_iter`` EM iterations, each an online step with weight 1, until the
        mean log-likelihood changes by less than ``tol``. Returns the mean log-likelihood
        at the final parameters; the averages are those of the last iteration, counted as
        one batch."""
        self.step(data, initial_resp)
        previous = -np.inf
        for _ in range(max_iter):
            self.restart_averages()
            current = self.step(data)
            if abs(current - previous) < tol:
                break
            previous = current
        log_lik = self.model.e_step(data, self.params)[0]
        return float(data.sample_weight @ log_lik) / data.total_weight


# ------------------------------------------------------------------------ the mixin
class PartialFitMixin:
    """``partial_fit`` for the mixture-of-experts estimators: stepwise online EM.

    The step sizes and the gate's curvature are class attributes (see
    :mod:`skmoe._online`); set them on an instance to change them for it.
    """

    #: Exponent of the step sizes ``gamma_t = (t + t0) ** -decay``, in (0.5, 1].
    partial_fit_decay = DECAY
    #: Offset ``t0`` of the step sizes.
    partial_fit_offset = OFFSET
    #: Curvature of the gate's surrogate: "bound" (Böhning) or "hessian".
    partial_fit_gate_curvature = GATE_CURVATURE

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None, *, classes=None, exposure=None):
        """Update the model with one mini-batch (stepwise online EM).

        The E-step runs on the batch at the current parameters; the batch's M-step
        statistics (per unit weight) enter running averages with the weight
        ``gamma_t = (t + 1) ** -0.6`` (``t`` batches seen before) and the parameters
        become the M-step of the averages: Gaussian experts average their sufficient
        statistics; GLM experts, multinomial experts and the gate average a quadratic
        surrogate (a Newton step at the parameters of each batch's E-step). See
        :mod:`skmoe._online` for the details.

        The first call on an unfitted estimator validates X and y as ``fit`` does (column
        selections, feature names) and fits its batch by EM: ``n_init`` starts from
        ``init_params`` seeded by ``random_state`` (the starts of ``fit``), each up to
        ``max_iter`` iterations or a change of the mean log-likelihood below ``tol``; the
        best start on the batch is kept. A first batch with fewer rows than the model has
        free parameters is refused. After ``fit`` (or ``align_experts``) the first call
        continues from the fitted parameters with fresh averages (its batch gets weight
        1). Experts keep their order from call to call (no canonical reordering). A
        change of the
        model's structure since (``n_experts``, the columns, the family) raises an error
        that says what changed; ``events_`` and a ``DegenerateFitWarning`` report
        degenerate experts after every call, as after ``fit``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,), default=None
            Frequency weights; integer weights equal repeated rows.
        classes : array-like of shape (n_classes,), default=None
            Classifiers only: every class label of the stream. Required on the first call
            unless the estimator was fitted; later calls may omit it.
        exposure : array-like of shape (n_samples,), default=None
            Regressors with Poisson or Gamma experts only: ``log(exposure)`` enters the
            linear predictor as an offset.

        Returns
        -------
        self

        Examples
        --------
        >>> import numpy as np
        >>> from skmoe import MixtureOfExpertsRegressor
        >>> from skmoe.datasets import make_moe_regression
        >>> X, y = make_moe_regression(20_000, 2, 2, random_state=0)
        >>> model = MixtureOfExpertsRegressor(2, random_state=0)
        >>> for rows in np.array_split(np.arange(20_000), 10):
        ...     model = model.partial_fit(X[rows], y[rows])
        >>> model.n_batches_seen_, model.predict(X[:3]).shape
        (10, (3,))
        """
        state = dict(self.__dict__)
        try:
            return self._partial_fit(X, y, sample_weight, classes, exposure)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(state)
            raise

    def _partial_fit(self, X, y, sample_weight, classes, exposure):
        online = self.__dict__.get("_online")
        fitted = self.__dict__.get("_params")
        changes = [] if fitted is None else self._structure_changes()
        if changes:
            raise ValueError(
                "partial_fit continues the fitted model, but its structure changed since "
                f"it was fitted: {'; '.join(changes)}; call fit, or start again from "
                "clone(estimator)."
            )
        if fitted is None:
            online = None  # a fresh start
        elif online is None or online.params is not fitted:
            # fit (or align_experts) replaced the parameters since: continue from them
            online = self._stepwise_em(self._model, fitted)
        else:
            # step a copy: on an error the estimator keeps the state it had (the step
            # rebinds, never mutates, the arrays it shares with the original)
            online = copy.copy(online)
        data, family = self._partial_fit_data(
            X, y, sample_weight, classes, exposure, None if online is None else online.model
        )
        if online is None:
            model = MixtureOfExpertsModel(family, self._make_gate())
            seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
            best = -np.inf
            for child in np.random.SeedSequence(seed).spawn(self.n_init):
                run = self._stepwise_em(model, None)
                resp = self._initial_responsibilities(data, np.random.default_rng(child))
                value = run.fit_batch(data, resp, self.max_iter, self.tol)
                if online is None or value > best:
                    online, best = run, value
            self.batch_log_likelihood_ = np.nan
            self._check_first_batch(data, online)
        else:
            self.batch_log_likelihood_ = online.step(data)
        if self.verbose:
            print(
                f"  batch {online.n_batches:6d}  mean log-likelihood before the update "
                f"{self.batch_log_likelihood_: .8e}"
            )
        self._online = online
        self._fitted_structure = self._structure()
        self._model = online.model
        self._family = online.model.family
        self._params = online.params
        self.n_batches_seen_ = online.n_batches
        for name in _FIT_ONLY_ATTRIBUTES:
            self.__dict__.pop(name, None)
        self._set_gate_attributes(online.params["gate"])
        self._set_expert_attributes(online.params["experts"])
        # the degenerate-fit policy's report, as after fit: an expert's mass is its share
        # of the averaged weight times this batch's weight
        share = online.stats["experts"]["weight"] / online.stats["experts"]["weight"].sum()
        self.events_ = _degenerate_events(
            online.model, InMemoryBlocks([data]), online.params, share * data.total_weight,
            self.gate_alpha,
        )
        if self.events_:
            warn("; ".join(self.events_) + ".", DegenerateFitWarning)
        return self

    def _check_first_batch(self, data, online):
        """Refuse a first batch (of a fresh start) that cannot determine even one expert:
        EM would fit every expert exactly (variances at the floor) and the stream would
        not recover from that start. A batch between that and the model's number of free
        parameters is fitted; what degenerates is reported by ``events_``."""
        experts = online.params["experts"]
        per_expert = experts["coef"][0].size + len(online.model.family.dispersion_keys)
        n_rows = int(np.count_nonzero(data.sample_weight))
        if n_rows < per_expert:
            raise ValueError(
                f"The first partial_fit batch has {n_rows} rows with a positive weight, "
                f"fewer than the {per_expert} parameters of one expert; pass a larger first "
                f"batch (the model has {online.model.n_parameters(online.params)} free "
                "parameters), or fit on one."
            )

    def _stepwise_em(self, model, params):
        online = StepwiseEM(
            model, params, self.partial_fit_decay, self.partial_fit_offset,
            self.partial_fit_gate_curvature,
        )
        return online

    def _partial_fit_data(self, X, y, sample_weight, classes, exposure, model):
        """Validate one batch. Without a ``model`` (a fresh start) this sets what ``fit``'s
        validation sets (``n_features_in_``, the feature selections, ``classes_``) and
        makes the expert family; later batches are validated as every method that takes y
        after ``fit`` validates its data. Returns the batch as ``EMData`` and the family."""
        if not is_classifier(self) and classes is not None:
            raise ValueError(f"classes= is for classifiers; {type(self).__name__} takes none.")
        if model is not None:
            if is_classifier(self):
                self._partial_fit_classes(classes, reset=False)
            return self._predict_data(X, y, exposure, sample_weight), model.family
        X, y = validate_data(self, X, y, accept_sparse="csr", dtype=np.float64, y_numeric=False)
        if is_classifier(self):
            check_classification_targets(y)
            self._partial_fit_classes(classes, reset=True)
            y = self._encode_labels(y)
        else:
            y = self._validate_targets(y, reset=True)
        sample_weight = _check_sample_weight(sample_weight, X, ensure_non_negative=True)
        if not sample_weight.sum() > 0:
            raise ValueError("sample_weight must have a positive sum; all weights are zero.")
        self._resolve_features(exposure)
        if is_classifier(self):
            # the family depends on the classes only; a batch may hold fewer of them
            C = len(self.classes_)
            family = self._make_family(np.arange(C), np.ones(C))
        else:
            family = self._make_family(y, sample_weight)
        data = EMData(
            X_expert=self._select(X, self.expert_features_in_),
            X_gate=self._select(X, self.gate_features_in_),
            y=family.check_y(y),
            sample_weight=sample_weight,
            offset=self._offset(exposure, X.shape[0]),
        )
        return data, family

    def _partial_fit_classes(self, classes, reset):
        """Set ``classes_`` from ``classes`` on a fresh start; later, check it is unchanged."""
        if classes is not None:
            classes = np.unique(np.asarray(classes))
        if reset:
            if classes is None:
                raise ValueError(
                    "classes must be passed on the first call to partial_fit: a mini-batch "
                    "need not hold every class of the stream."
                )
            if len(classes) < 2:
                raise ValueError(
                    f"classes must hold at least 2 labels; got {classes.tolist()!r}."
                )
            self.classes_ = classes
        elif classes is not None and not np.array_equal(classes, self.classes_):
            raise ValueError(
                f"classes={classes.tolist()!r} differs from the classes_ of the first "
                f"call ({self.classes_.tolist()!r})."
            )
