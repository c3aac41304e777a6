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

from ._base import DegenerateFitWarning, _degenerate_events
from ._blocks import InMemoryBlocks
from ._docstrings import fill
from ._em import MixtureOfExpertsModel, warn
from ._families import require
from ._logit import SoftmaxSurrogate
from ._sklearn_compat import _fit_context

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
        Curvature of the gate's surrogate, see ``skmoe._logit.SoftmaxSurrogate``.
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
        require(model.family, "partial_fit")
        self.gate = SoftmaxSurrogate(gate_curvature)
        self.restart_averages()

    def restart_averages(self):
        """Forget the averaged statistics: the next batch gets weight 1."""
        self.stats = None
        self.n_batches = 0
        self.total_weight = 0.0

    def step(self, data, initial_resp=None, model=None):
        """One mini-batch: E-step, running averages, M-step.

        Returns the batch's mean log-likelihood (per unit weight) at the parameters before
        the update; nan on a fresh start, whose E-step is ``initial_resp`` (K, n).
        ``model``: the batch's own model (its groups), by default ``self.model``.
        """
        model = self.model if model is None else model
        total = data.total_weight
        gate, family = model.gate, model.family
        if self.params is None:
            mean_log_lik = np.nan
            W = initial_resp * (data.sample_weight / total)
            params = {
                "gate": gate.initial_coef(data.X_gate),
                "experts": family.start(InMemoryBlocks([data.with_weights(W)])),
            }
        else:
            params = self.params
            log_lik, W = model.e_step(data, params)
            mean_log_lik = float(data.sample_weight @ log_lik) / total
            W *= data.sample_weight / total
        V = np.concatenate(params["gate"])
        X_gate, W_gate = model.gate_rows(data.X_gate, W)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            batch = {
                "experts": family.statistics(data.with_weights(W), params["experts"]),
                "gate": self.gate.statistics(X_gate, gate.node_counts(W_gate), V),
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
            experts = family.solve(
                self.stats["experts"], params["experts"], self.total_weight, MAX_STEP
            )
            V = self.gate.solve(
                self.stats["gate"], V, gate.alpha / self.total_weight, MAX_STEP
            )
        self.params = {"gate": gate.split_levels(V), "experts": experts}
        return mean_log_lik

    def fit_batch(self, data, initial_resp, max_iter, tol, model=None):
        """Batch EM on one batch (the first of a stream): the M-step of ``initial_resp``,
        then up to ``max_iter`` EM iterations, each an online step with weight 1, until the
        mean log-likelihood changes by less than ``tol``. Returns the mean log-likelihood
        at the final parameters; the averages are those of the last iteration, counted as
        one batch."""
        self.step(data, initial_resp, model)
        previous = -np.inf
        for _ in range(max_iter):
            self.restart_averages()
            current = self.step(data, model=model)
            if abs(current - previous) < tol:
                break
            previous = current
        log_lik = (self.model if model is None else model).e_step(data, self.params)[0]
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
    @fill
    def partial_fit(self, X, y, sample_weight=None, *, classes=None, exposure=None,
                    groups=None):
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
        X : array-like or sparse matrix of shape (n_samples, n_features)
            The batch's samples.
        {y}
        sample_weight : array-like of shape (n_samples,), default=None
            Frequency weights; integer weights equal repeated rows.
        classes : array-like of shape (n_classes,), default=None
            Classifiers only: every class label of the stream. Required on the first call
            unless the estimator was fitted; later calls may omit it.
        exposure : array-like of shape (n_samples,), default=None
            Regressors whose family accepts an offset only: ``log(exposure)`` enters the
            linear predictor.
        groups : array-like of shape (n_samples,), default=None
            Group labels of the batch's rows, as in ``fit``: the rows of a group share
            one latent expert. Needed after a grouped ``fit`` (or a first grouped batch).
            A batch is taken to hold whole groups: the rows of a label that come in
            several batches are fitted as that many independent groups (partial_fit
            cannot tell this from a second pass over the same data, which repeats every
            label), so keep each group's rows in one batch.

        Returns
        -------
        self
            The updated estimator.

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
            return self._partial_fit(X, y, sample_weight, classes, exposure, groups)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(state)
            raise

    def _partial_fit(self, X, y, sample_weight, classes, exposure, groups=None):
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
            self._fitted_with_groups = groups is not None
            model = MixtureOfExpertsModel(family, self._make_gate())
        else:
            if groups is None:
                self._check_groups_given()
            model = online.model
        batch = model  # the batch's rows, one by one or in their groups
        if groups is not None:
            data, starts, _ = self._group_rows(data, groups)
            batch = model.grouped(starts, data.n_rows)
        if online is None:
            best = -np.inf
            for child in self._restart_seeds():
                run = self._stepwise_em(model, None)
                resp = self._initial_responsibilities(data, np.random.default_rng(child))
                value = run.fit_batch(data, resp, self.max_iter, self.tol, batch)
                if online is None or value > best:
                    online, best = run, value
            self.batch_log_likelihood_ = np.nan
            self._check_first_batch(data, online)
        else:
            self.batch_log_likelihood_ = online.step(data, model=batch)
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
        """Validate one batch. Without a ``model`` (a fresh start) this is ``fit``'s
        validation, with the classes of ``classes``; later batches are validated as every
        method that takes y after ``fit`` validates its data. Returns the batch as
        ``EMData`` and the family."""
        if not is_classifier(self) and classes is not None:
            raise ValueError(f"classes= is for classifiers; {type(self).__name__} takes none.")
        if model is None:
            return self._validate_fit_data(X, y, sample_weight, exposure, classes, stream=True)
        if is_classifier(self):
            self._partial_fit_classes(classes, reset=False)
        return self._predict_data(X, y, exposure, sample_weight), model.family
