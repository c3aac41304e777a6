"""``MixtureOfExpertsRegressor``: GLM experts under a softmax gate."""

from numbers import Real

import numpy as np
from sklearn.base import RegressorMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from . import _predictive
from ._base import BaseMixtureOfExperts, check_n_draws
from ._docstrings import fill
from ._families import EXPERT_CONSTRAINT, make_family, require
from ._online import PartialFitMixin
from ._sklearn_compat import Interval, _fit_context


class MixtureOfExpertsRegressor(PartialFitMixin, RegressorMixin, BaseMixtureOfExperts):
    """Mixture of generalised linear experts with a softmax gate, fitted by EM.

    The conditional density is ``p(y | x) = sum_k g_k(x) f_k(y | x)`` with the gate
    ``g(x) = softmax(V [1, x])`` and GLM experts ``f_k``. EM alternates responsibilities
    (E-step, in log space) with weighted refits of all experts at once and a warm-started
    weighted multinomial-logit refit of the gate (M-step). The penalised log-likelihood
    never decreases.

    Parameters
    ----------
    n_experts : int, default=2
        Number of experts K.
    expert : {"gaussian", "poisson", "gamma", "bernoulli", "binomial", "negative_binomial", \
"student_t", "zero_inflated_poisson", "zero_inflated_negative_binomial"} or family, \
default="gaussian"
        Expert family: Gaussian (identity link, one variance per expert), Poisson (log
        link), Gamma (log link, one dispersion per expert), Bernoulli (logit link),
        binomial with trials (logit link; y of shape (n_samples, 2), the successes and
        failures of every row as flexmix's ``cbind(s, f)``, see ``binomial_target``; all
        trials of a row share its expert, and the log-likelihood includes
        ``log C(n, s)`` as R's ``dbinom``), negative binomial (NB2, log link, one size
        per expert) or Student t (identity link, one scale and one number of degrees of
        freedom per expert; ``expert=StudentT(df=4)`` holds them at 4, see ``StudentT``);
        "zero_inflated_poisson" and "zero_inflated_negative_binomial" make one of the
        ``n_experts`` components a point mass at zero with its own gate output; a list
        of these names (or families), one per column of y, fits a joint model of several
        responses independent given the expert (flexmix's ``model = list(...)``, see
        "Several responses" in the user guide); or an expert family instance (see
        "Adding an expert family" in the docs), of which the fit uses a copy.
    gate_alpha : float, default=0.01
        L2 penalty ``gate_alpha / 2 ||V||^2`` on the gate coefficients (not the
        intercepts), on the scale of the summed log-likelihood; 0 gives the maximum
        likelihood gate. The small default keeps a gate that separates the data finite
        while leaving sharp transitions possible.
    expert_alpha : float, default=0.0
        L2 penalty on the expert coefficients (not the intercepts). For Gaussian experts it
        is ``alpha ||b_k||^2 / (2 s_k^2)``: each expert is a weighted ``Ridge(alpha)``.
    gate_features, expert_features : array-like or None, default=None
        Columns the gate and the experts see: indices, a boolean mask or, when X is a
        DataFrame, names. None means all columns; an empty list gives constant mixing
        weights (gate) or intercept-only experts. With several responses,
        ``expert_features`` may be one such list per response (e.g. ``[[0, 1], [0]]``):
        each response's experts see their own columns.
    shared_features : array-like or None, default=None
        Columns whose coefficient is one and the same for every expert (flexmix's
        ``FLXMRglmfix(fixed=)``): indices, a boolean mask or names, as
        ``expert_features``. They leave the experts' own columns (``expert_coef_`` has
        the others), their coefficients are ``shared_coef_``, and ``n_parameters``,
        ``standard_errors`` and ``summary`` count them once; the M-step fits them
        jointly with the per-expert coefficients (one Newton / weighted least squares
        system in the stacked design). They are not penalised by ``expert_alpha``. None
        (or empty) shares nothing. Not with ``partial_fit``.
    shared_variance : bool, default=False
        One variance for all Gaussian experts (flexmix's ``varFix=TRUE``): the M-step
        pools the weighted residual sums of squares over the experts, ``expert_variance_``
        holds K equal values, and ``n_parameters``, ``standard_errors`` and ``summary``
        count it once. Gaussian experts only.
    variance_floor : float or None, default=None
        Smallest variance of a Gaussian expert (ignored by the other families): an expert
        that takes a few points on a line would otherwise see its variance, and the
        likelihood, go to infinity (like ``GaussianMixture.reg_covar``). None gives
        ``1e-6`` times the square of a robust scale of y, ``1.4826`` times its weighted
        median absolute deviation (the standard deviation when more than half of y is one
        value), so an outlier does not lift it; on dask arrays, whose median would need a
        second pass, the weighted standard deviation.
    max_iter : int, default=500
        Maximum number of EM iterations per run.
    tol : float, default=1e-6
        Convergence threshold on the estimated distance of the per-sample penalised
        log-likelihood to its limit (Aitken's estimate from the last changes; see the user
        guide). An objective constant to rounding stops EM whatever ``tol`` is.
    acceleration : {"squarem", "squarem-lbfgs"} or None, default="squarem"
        SQUAREM extrapolation of the EM map (Varadhan & Roland 2008) followed by one EM
        step, kept only when it does not lower the objective; then one iteration is one
        SQUAREM cycle (two EM steps, the extrapolation and its EM step). None runs plain EM
        (one iteration is one EM step). "squarem-lbfgs" runs 10
        SQUAREM cycles, then L-BFGS on the penalised log-likelihood itself (one iteration
        is one quasi-Newton step; the gradient by Fisher's identity, from one E-pass), then
        SQUAREM again if the monitor has not converged; it needs multinomial experts
        without shared features, and is "squarem" for every other model.
    n_init : int, default=1
        Number of independent fits (each with its own ``init_params`` search); the best
        is kept.
    init_params : {"multistart", "random", "voronoi", "kmeans", "tree"} or array-like of \
shape (n_samples, n_experts), default="multistart"
        Initial responsibilities. "multistart" runs EM from successive starts (one
        "kmeans", one "random", then of the kind that found the best run) until two runs
        agree on the best objective found, at most 8 runs (a run with a degenerate expert
        loses to any regular one); above 40,000 samples (of unit weight) the search runs
        on a subsample of about 20,000 rows drawn from row hashes, and one run on all
        rows continues from its best.
        "random": random responsibilities (normalised Beta(0.3, 1) draws) drawn from a
        hash of each row and the seed (so the start, and the fit, do not depend on the row
        order, and integer sample weights equal repeated rows); "voronoi": the hard
        partition of the standardised ``[X, y]`` around randomly drawn distinct rows;
        "kmeans": hard k-means clusters of the standardised ``[X, y]`` (greedy k-means++
        seeds drawn from row hashes, so also invariant to row order); "tree": the leaves
        of a CART tree with ``n_experts`` leaves; or the given array (used as is by every
        restart).
    random_state : int, RandomState instance or None, default=None
        Seeds the initialisations (restart ``i`` uses the ``i``-th child of
        ``np.random.SeedSequence``), so results do not depend on ``n_jobs``.
    warm_start : bool, default=False
        Continue EM from the previous fit's parameters (``n_init`` is then ignored).
    verbose : int, default=0
        1 prints a line per restart (runs, iterations, objective, time, convergence); 2
        also the objective, its per-sample change and distance to the limit at every
        iteration.
    n_jobs : int or None, default=None
        Restarts run in parallel through joblib.

    Attributes
    ----------
    expert_coef_ : ndarray of shape (n_experts, n_expert_features)
    expert_intercept_ : ndarray of shape (n_experts,)
    expert_variance_ : ndarray of shape (n_experts,)
        Gaussian experts only. Gamma experts have ``expert_dispersion_`` instead,
        negative-binomial experts ``expert_size_``, Student-t experts ``expert_scale_``
        and (when estimated) ``expert_df_``.
    gate_coef_ : ndarray of shape (n_experts, n_gate_features)
        Symmetric parametrisation: coefficients sum to zero over the experts.
    gate_intercept_ : ndarray of shape (n_experts,)
    expert_features_in_, gate_features_in_ : ndarray of int
        Column indices seen by the experts and by the gate.
    response_features_in_ : list of ndarray of int or None
        With ``expert_features`` given per response: the columns of every response
        (``expert_features_in_`` is their union); None otherwise. With several responses
        ``expert_coef_`` is a list of one (n_experts, n_features_r) array per response,
        ``expert_intercept_`` has shape (n_experts, n_responses), and the dispersions of
        response r are ``expert_<name>_<r>_`` (e.g. ``expert_variance_0_``).
    converged_ : bool
    n_iter_ : int
        EM iterations (M-steps) of the best run.
    log_likelihood_ : float
        Weighted training log-likelihood at the fitted parameters.
    objective_ : float
        Penalised log-likelihood at the fitted parameters.
    objective_trace_ : ndarray
        Penalised log-likelihood at every iteration of the best run (non-decreasing).
    weights_ : ndarray of shape (n_experts,)
        Mixing weights; only when the gate is constant (``gate_features=[]``).
    events_ : list of str
        What the policy for degenerate fits did (collapsed experts, variances at their
        floor, a separating gate), one sentence each; empty when nothing happened.
    restarts_ : list of dict
        Per restart: objective, log_likelihood, n_iter, converged, objective_trace, time,
        degenerate and, for "multistart", candidate_objectives (the objective of every
        run of its search) and search_rows (the rows it ran on).
        ``converged_`` to ``restarts_`` describe a ``fit``; ``partial_fit`` removes them.
    n_batches_seen_ : int
        Mini-batches learnt by ``partial_fit`` since its first call (or since ``fit``).
    batch_log_likelihood_ : float
        After ``partial_fit``: mean log-likelihood of its batch before the update (nan
        for the first batch of a fresh start).
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Defined when X has column names.

    Notes
    -----
    Experts come in a canonical order: decreasing total responsibility on the training
    data. The gate is over-parametrised; ``gate_coef_[k] - gate_coef_[0]`` gives the
    coefficients of expert k against expert 0 (flexmix's convention).

    Examples
    --------
    >>> from skmoe import MixtureOfExpertsRegressor
    >>> from skmoe.datasets import load_tone
    >>> X, y = load_tone(return_X_y=True)
    >>> model = MixtureOfExpertsRegressor(n_experts=2, random_state=0).fit(X, y)
    >>> model.predict_gate(X[:2]).shape
    (2, 2)
    """

    _parameter_constraints = {
        **BaseMixtureOfExperts._parameter_constraints,
        "expert": EXPERT_CONSTRAINT,
        "variance_floor": [Interval(Real, 0, None, closed="neither"), None],
        "shared_features": ["array-like", None],
        "shared_variance": ["boolean"],
    }

    def __init__(
        self,
        n_experts=2,
        *,
        expert="gaussian",
        gate_alpha=0.01,
        expert_alpha=0.0,
        gate_features=None,
        expert_features=None,
        shared_features=None,
        shared_variance=False,
        variance_floor=None,
        max_iter=500,
        tol=1e-6,
        acceleration="squarem",
        n_init=1,
        init_params="multistart",
        random_state=None,
        warm_start=False,
        verbose=0,
        n_jobs=None,
    ):
        super().__init__(
            n_experts=n_experts,
            gate_alpha=gate_alpha,
            expert_alpha=expert_alpha,
            gate_features=gate_features,
            expert_features=expert_features,
            max_iter=max_iter,
            tol=tol,
            acceleration=acceleration,
            n_init=n_init,
            init_params=init_params,
            random_state=random_state,
            warm_start=warm_start,
            verbose=verbose,
            n_jobs=n_jobs,
        )
        self.expert = expert
        self.shared_features = shared_features
        self.shared_variance = shared_variance
        self.variance_floor = variance_floor

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None, exposure=None, groups=None):
        """Fit the model by EM.

        Parameters
        ----------
        X : array-like or sparse matrix of shape (n_samples, n_features)
            Training samples.
        y : array-like of shape (n_samples,) or (n_samples, n_columns)
            Responses, in the support of the expert family: one column per family for
            several responses (``expert=[...]``), two for binomial experts.
        sample_weight : array-like of shape (n_samples,), default=None
            Frequency weights (fractional weights allowed).
        exposure : array-like of shape (n_samples,), default=None
            Positive exposure for log-link experts (Poisson, Gamma): ``log(exposure)``
            enters the linear predictor as an offset.
        groups : array-like of shape (n_samples,), default=None
            Group labels (flexmix's ``y ~ x | g``): the rows of a group share one latent
            expert, their component log-densities summed before mixing, so the E-step's
            posterior is per group and ``log_likelihood_`` sums the groups' mixture
            log-likelihoods. The gate features and ``sample_weight`` must be constant
            within a group. The methods that take y after ``fit`` (``score_samples``,
            ``predict_responsibilities``, ``bic``, ``standard_errors``, ``partial_fit``,
            ...) then need the groups of their data too. Data in memory (not dask
            collections).

        Returns
        -------
        self
            The fitted estimator.
        """
        return self._fit(X, y, sample_weight, exposure, groups)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        try:
            tags.target_tags.positive_only = self._family_prototype().positive_only
        except (KeyError, TypeError, AttributeError, ValueError):  # refused by fit
            tags.target_tags.positive_only = False
        return tags

    def _family_prototype(self):
        """The family of ``expert`` before any data (its declared capabilities)."""
        return make_family(self.expert, self._n_leaves(), self.expert_alpha)

    def _prototype_attribute(self, name):
        try:
            return getattr(self._family_prototype(), name, 1)
        except (KeyError, TypeError, AttributeError):  # an invalid expert=, refused by fit
            return 1

    def _response_columns(self):
        return self._prototype_attribute("response_columns")

    def _n_responses(self):
        return self._prototype_attribute("n_responses")

    def _validate_targets(self, y, reset, classes=None, stream=False):
        y = np.asarray(y, dtype=float)
        columns = self._response_columns()
        if columns > 1:
            if y.ndim != 2 or y.shape[1] != columns:
                hint = self._family_prototype().response_columns_hint
                raise ValueError(
                    f"y must have shape (n_samples, {columns}) for expert={self.expert!r} "
                    f"({hint}); got shape {y.shape}."
                )
        elif y.ndim != 1:
            raise ValueError(f"y must be one-dimensional; got shape {y.shape}.")
        if not np.all(np.isfinite(y)):
            raise ValueError("Input y contains NaN or infinity.")
        return y

    def _target_summary(self, y, sample_weight, stream=False):
        if y.ndim > 1 and self._n_responses() > 1:  # one summary per response
            return {"columns": [self._target_summary(column, sample_weight)
                                for column in y.T]}
        if y.ndim > 1:  # several response columns: the family's scalar target stands for y
            y = self._family_prototype().init_target(y)[:, 0]
        return {"scale2": robust_variance(y, sample_weight), "mean_square": np.mean(y**2)}

    def _make_family(self, targets):
        """The experts; Gaussian ones with the variance floor ``variance_floor``, by default
        ``1e-6`` times the squared scale of y (``targets``)."""
        return make_family(self.expert, self._n_leaves(), self.expert_alpha, targets,
                           variance_floor=self.variance_floor,
                           response_features=self._response_positions())

    @staticmethod
    def _chunk_target_summary(y, w):
        """Per chunk of a dask fit: the weighted moments of y."""
        y = np.asarray(y, dtype=float)
        w = np.asarray(w, dtype=float)
        return {"w": w.sum(), "wy": w @ y, "wyy": w @ y**2, "n": float(y.shape[0]),
                "yy": np.einsum("i...,i...->...", y, y), "finite": bool(np.all(np.isfinite(y)))}

    def _merge_target_summaries(self, parts):
        """The summary of y of a fit on chunks (its weighted variance as the scale)."""
        if not all(p["finite"] for p in parts):
            raise ValueError("Input y contains NaN or infinity.")
        total = {key: sum(p[key] for p in parts) for key in ("w", "wy", "wyy", "n", "yy")}
        mean = total["wy"] / total["w"]
        scale2 = np.maximum(total["wyy"] / total["w"] - mean**2, 0.0)
        mean_square = total["yy"] / total["n"]
        if np.ndim(mean) and self._n_responses() > 1:  # one summary per response
            return {"columns": [{"scale2": a, "mean_square": b}
                                for a, b in zip(scale2, mean_square)]}
        return {"scale2": scale2, "mean_square": mean_square}

    def _encode_chunk_targets(self, y):
        return self._validate_targets(y, reset=False)

    def _cart(self, **params):
        from sklearn.tree import DecisionTreeRegressor

        return DecisionTreeRegressor(**params)

    def _init_target(self, y):
        return self._family_prototype().init_target(y)

    def _offset(self, exposure, n_samples, family):
        if exposure is None:
            return None
        if not family.accepts_offset:
            raise ValueError(
                f"exposure needs log-link experts (a family that accepts an offset); "
                f"{type(family).__name__} does not."
            )
        exposure = np.asarray(exposure, dtype=float)
        if exposure.shape != (n_samples,):
            raise ValueError(f"exposure must have shape ({n_samples},); got {exposure.shape}.")
        if not np.all(np.isfinite(exposure) & (exposure > 0)):
            raise ValueError("exposure must be positive and finite.")
        return np.log(exposure)

    def _set_expert_attributes(self, experts):
        super()._set_expert_attributes(experts)
        for key in self._family.dispersion_keys:
            setattr(self, f"expert_{key}_", experts[key])

    @fill
    def score(self, X, y, sample_weight=None, exposure=None):
        """Coefficient of determination R² of ``predict(X, exposure=exposure)``.

        y, ``sample_weight`` and ``exposure`` are validated as by every method that takes
        y after ``fit`` (a model fitted with an exposure needs one here).

        {Parameters X}
        y : array-like of shape (n_samples,) or (n_samples, n_responses)
            Their responses (R² averaged over several responses).
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the samples in R².
        {exposure}

        Returns
        -------
        float
            R² of the mixture mean.
        """
        from sklearn.metrics import r2_score

        data = self._predict_data(X, y, exposure, sample_weight)
        return r2_score(data.y, self.predict(X, exposure=exposure), sample_weight=sample_weight)

    @fill
    def predict_experts(self, X, exposure=None):
        """Mean of every expert.

        {Parameters X exposure}

        Returns
        -------
        ndarray of shape (n_samples, n_experts), or (n_samples, n_experts, n_responses)
            Every expert's mean response (of every response).
        """
        data = self._predict_data(X, exposure=exposure)
        means = self._family.mean(data.X_expert, self._params["experts"], data.offset)
        return np.moveaxis(means, 0, 1)

    def _gate_and_means(self, X, exposure):
        data = self._predict_data(X, exposure=exposure)
        gate = np.exp(self._model.gate.log_prob(data.X_gate, self._params["gate"]))
        means = self._family.mean(data.X_expert, self._params["experts"], data.offset)
        return gate, means

    @fill
    def predict(self, X, exposure=None, return_std=False):
        """Mixture mean ``E[y | x] = sum_k g_k(x) mu_k(x)``.

        {Parameters X}
        exposure : array-like of shape (n_samples,), default=None
            Exposure of log-link experts; None means exposure 1 (also for a model fitted
            with one). The methods that take y need it when ``fit`` had one.
        return_std : bool, default=False
            Also return the standard deviation of the predictive distribution,
            ``sqrt(sum_k g_k (v_k + mu_k^2) - mean^2)`` with ``v_k`` the expert variance.

        Returns
        -------
        mean : ndarray of shape (n_samples,), or (n_samples, n_responses)
        std : ndarray of the same shape, only when ``return_std``
        """
        gate, means = self._gate_and_means(X, exposure)
        if not return_std:
            return _predictive.mixture_mean(gate, means)
        return _predictive.mean_and_std(self._family, self._params["experts"], gate, means)

    @fill
    def predict_quantiles(self, X, quantiles=(0.05, 0.5, 0.95), exposure=None):
        """Quantiles of the predictive distribution ``p(y | x)``, from the mixture CDF.

        Computed by bisection to machine precision; for count and binary experts the
        smallest integer whose CDF reaches the level.

        {Parameters X}
        quantiles : float or array-like of floats, default=(0.05, 0.5, 0.95)
            Levels strictly between 0 and 1.
        {exposure}

        Returns
        -------
        ndarray of shape (n_samples, len(quantiles))
            The quantiles of every sample.
        """
        check_is_fitted(self)
        if self._family.n_responses > 1:
            raise NotImplementedError(
                "predict_quantiles takes one response; this model has "
                f"{self._family.n_responses} (several responses have no joint quantiles): "
                "use sample_y for their joint predictive distribution."
            )
        require(self._family, "predict_quantiles")
        quantiles = np.asarray(quantiles, dtype=float)
        if quantiles.ndim > 1 or quantiles.size == 0:
            raise ValueError(
                "quantiles must be one level or a 1-D list of levels; got an array of "
                f"shape {quantiles.shape}."
            )
        quantiles = np.atleast_1d(quantiles)
        if not np.all((quantiles > 0) & (quantiles < 1)):  # NaN included
            raise ValueError(
                f"quantiles must lie strictly between 0 and 1; got {quantiles.tolist()}."
            )
        gate, means = self._gate_and_means(X, exposure)
        return _predictive.quantiles(self._family, self._params["experts"], gate, means, quantiles)

    @fill
    def predict_interval(self, X, coverage=0.9, exposure=None):
        """Central predictive interval: the quantiles at levels ``(1 - coverage) / 2`` and
        ``(1 + coverage) / 2``.

        {Parameters X}
        coverage : float, default=0.9
            Probability of the interval, strictly between 0 and 1.
        {exposure}

        Returns
        -------
        ndarray of shape (n_samples, 2)
            Lower and upper ends.
        """
        if not 0 < coverage < 1:
            raise ValueError(f"coverage must lie strictly between 0 and 1; got {coverage}.")
        return self.predict_quantiles(X, [(1 - coverage) / 2, (1 + coverage) / 2], exposure)

    @fill
    def sample_y(self, X, n_samples=1, random_state=None, exposure=None):
        """Draws from ``p(y | x)``: an expert from the gate, then y from that expert.

        {Parameters X draws exposure}

        Returns
        -------
        ndarray of shape (n_samples_X, n_samples), or (n_samples_X, n_samples, n_responses)
            The draws (of every response, from the same expert).
        """
        check_n_draws(n_samples)
        check_is_fitted(self)
        require(self._family, "sample_y")
        gate, means = self._gate_and_means(X, exposure)
        rng = np.random.default_rng(check_random_state(random_state).randint(2**31 - 1))
        return _predictive.sample(
            self._family, self._params["experts"], gate, means, n_samples, rng
        )

    @fill
    def predict_modes(self, X):
        """Local maxima of the predictive density ``p(y | x)`` (Gaussian experts).

        {Parameters X}

        Returns
        -------
        modes : ndarray of shape (n_samples, n_experts)
            Sorted by decreasing density; NaN where a sample has fewer modes than experts.
        density : ndarray of shape (n_samples, n_experts)
            The predictive density at each mode.
        """
        check_is_fitted(self)
        if self._family.modes is None:
            raise ValueError(
                f"predict_modes needs Gaussian experts (a family with modes); "
                f"{type(self._family).__name__} has none: use predict_quantiles."
            )
        gate, means = self._gate_and_means(X, None)
        return self._family.modes(gate, means, self._params["experts"])


def weighted_median(values, weights):
    """The smallest value whose cumulative weight reaches half the total."""
    order = np.argsort(values, kind="stable")
    cumulative = np.cumsum(weights[order])
    return values[order][np.searchsorted(cumulative, 0.5 * cumulative[-1])]


def robust_variance(y, sample_weight):
    """Square of a robust scale of y: ``1.4826`` times the weighted median absolute
    deviation (a normal's standard deviation), or the weighted variance when that is zero
    (more than half of the weight on one value)."""
    deviation = np.abs(y - weighted_median(y, sample_weight))
    mad = 1.4826 * weighted_median(deviation, sample_weight)
    if mad > 0:
        return mad**2
    mean = np.average(y, weights=sample_weight)
    return np.average((y - mean) ** 2, weights=sample_weight)
