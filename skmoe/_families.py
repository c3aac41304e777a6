"""Expert families: every expert-specific piece of mathematics, behind one protocol.

A family is one object for all K experts. Its parameters are a dict of arrays whose first
axis is the expert: ``coef`` of shape (K, d + 1) (intercept first; (K, C, d + 1) for the
multinomial family) and one (K,) array per dispersion parameter (``dispersion_keys``).
Arrays over experts and samples are expert-major, (K, n). Every method is vectorised over
the experts.

**Statistics then solve.** The M-step is written as passes over row blocks
(``skmoe._blocks``): ``statistics(block, params)`` turns one block (its weights
``W = sample weight * responsibility`` in ``block.weights``) into a dict of additive
statistics at ``params`` (Grams, gradients, Hessians, weights, deviances), and
``solve(stats, params, scale, max_step)`` computes new parameters from their sum (closed
form for Gaussian experts, the Newton proposal for GLMs). Batch EM sums the statistics
over all blocks (``m_step_blocks``; GLMs add step halving on the objective), stepwise
online EM (``skmoe._online``) keeps running averages of them, and a dask fit sums them
where the chunks live.

The rest of the protocol (see the "Adding an expert family" page of the docs):

- ``check_y(y)`` refuses responses outside the family's support with a clear message;
- ``log_prob(X, y, params, offset)`` -> (K, n) log densities ``log f_k(y_i | x_i)``;
- ``m_step_blocks(source, params)`` (or, for in-memory fits only, ``m_step(X, y, W, params,
  offset)``) -> params maximising, or not lowering, ``sum_i W[k, i] log f_k - penalty_k``;
- ``start(source)`` -> a first point (from the weights only), ``mean(X, params, offset)``,
  ``penalty(params)``, ``n_parameters(params)``;
- ``distribution(mean, **dispersions)`` -> the frozen ``scipy.stats`` law of y given an
  expert, for predictive quantiles and draws;
- ``information_terms(y, eta, params)`` -> the derivatives the observed information (and
  so ``standard_errors``) needs;
- ``coefficient_statistics(block, params)`` and ``update_dispersion(source, params)`` ->
  what the joint M-step of coefficients shared by all experts (``shared_m_step``) needs.

Capabilities are declared as attributes: ``accepts_offset`` (exposure), ``positive_only``
(the response's sign), ``dispersion_keys`` and their reported ``dispersion_labels``
(``reported_dispersions``), ``init_target`` (what represents y for k-means-like starts),
``response_parts`` (the family as responses: ``JointExperts`` holds one member family per
column of y and slices their parameters from one dict).
The estimators ask the family (``require`` names what a method needs and is missing); no
module outside this one names a family.
"""

import copy
from dataclasses import replace
from typing import NamedTuple

import numpy as np
from scipy import stats
from scipy.special import digamma, expit, gammaln, log_expit, polygamma

from . import _logit, _predictive
from ._blocks import WEIGHTS, block_grams, one_block
from ._linalg import (
    NEGLIGIBLE_GAIN,
    is_wide,
    linear_predictor,
    penalty_diagonal,
    solve_spd,
    step_halving,
    truncated_newton,
    trust_region,
    weighted_square_sums,
    weighted_sums,
)
from ._sklearn_compat import HasMethods, StrOptions

#: Cache key of the GLM curvature weights kept between truncated-Newton passes.
_CURVATURE = "glm_curvature"

#: What each method needs of a family, besides ``log_prob``, ``mean`` and ``check_y``.
CAPABILITIES = {
    "fit": ("m_step_blocks",),
    "a fit on chunks (dask)": ("m_step_blocks",),
    "partial_fit": ("start", "statistics", "solve"),
    "standard_errors": ("information_terms",),
    "predict_quantiles": ("distribution",),
    "sample_y": ("distribution",),
    "predict_modes": ("modes",),
    "shared_features": ("coefficient_statistics",),
}


def require(family, method):
    """Raise ``NotImplementedError`` naming the capabilities ``method`` needs and ``family``
    lacks (when the method starts, not halfway)."""
    missing = family.missing_capabilities(method)
    if missing:
        raise NotImplementedError(
            f"{method} needs an expert family with {', '.join(missing)}; "
            f"{type(family).__name__} has no {' and no '.join(missing)} (see 'Adding an "
            "expert family' in the docs)."
        )


def _empty_experts(totals):
    """Mask of the experts that hold (numerically) no weight."""
    return totals <= 1e-10 * max(totals.sum(), 1e-300)


def _response(block):
    return block.y if block.offset is None else block.y - block.offset


def _gaussian_stats_block(block, params=None):
    X, W, y = block.X_expert, block.weights, _response(block)
    Wy = W * y
    return {
        "gram": block_grams(block, "X_expert", W), "xy": weighted_sums(X, Wy), "yy": Wy @ y,
        "weight": W.sum(axis=1),
    }


def _gaussian_rss_block(block, coef):
    resid = _response(block) - linear_predictor(block.X_expert, coef)
    resid **= 2
    return np.einsum("ki,ki->k", block.weights, resid)


def _pooled(per_expert, pool):
    """Per-expert sums of a statistic, (K,), or with ``pool`` their total for every expert
    (the statistics of a dispersion that all experts share)."""
    if not pool:
        return per_expert
    return np.full(per_expert.shape, per_expert.sum())


def _keep_empty_experts(new, old, empty, shared=()):
    """Experts with no weight keep their previous parameters (their M-step is undefined);
    ``shared`` arrays have no expert axis."""
    if not empty.any():
        return new
    for key, value in new.items():
        if key in shared:
            continue
        if old is not None:
            value[empty] = old[key][empty]
        elif key == "coef":
            value[empty] = 0.0
        else:
            value[empty] = np.mean(value[~empty]) if (~empty).any() else 1.0
    return new


class ResponsePart(NamedTuple):
    """One response of a family (see ``ExpertFamily.response_parts``): its ``label`` (None
    for a family of one response), its ``family``, its expert ``columns`` (positions in
    ``X_expert``; None: all), its ``column`` of y (None: y itself) and its ``params``."""

    label: object
    family: object
    columns: object
    column: object
    params: dict

    def X(self, X):
        """This response's expert columns of ``X``."""
        return X if self.columns is None else X[:, self.columns]

    def y(self, y):
        """This response's column of ``y``."""
        return y if self.column is None else np.ascontiguousarray(y[:, self.column])


class ExpertFamily:
    """Base class: shared parameter counting, prediction, penalty and capabilities.

    Parameters
    ----------
    n_experts : int, default=None
        Number of experts K; the estimators set it (and ``alpha``) on their copy of a
        family given as ``expert=``.
    alpha : float, default=0.0
        L2 penalty ``alpha / 2 ||b_k||^2`` on the coefficients (not the intercepts).
    """

    name = None
    #: Per-expert dispersion parameters (the keys of ``params``) that ``distribution``
    #: takes and BIC counts.
    dispersion_keys = ()
    #: Names under which ``standard_errors``, ``summary`` report the dispersions.
    dispersion_labels = ()
    #: Whether ``log(exposure)`` may enter the linear predictor as an offset.
    accepts_offset = False
    #: Whether y must be non-negative (scikit-learn's ``positive_only`` tag).
    positive_only = False
    #: Columns of the response: 1 (y of shape (n,)), or more (y of shape (n, columns),
    #: e.g. the successes and failures of binomial experts).
    response_columns = 1
    #: What the columns of a response with several are, for error messages.
    response_columns_hint = ""
    #: Responses modelled jointly (``JointExperts``: one per member family).
    n_responses = 1

    #: Newton steps per M-step of the iterative families: enough to converge when the
    #: M-step is called alone; EM sets a few (each step raises the objective, so a
    #: partial M-step is a generalised EM step, and the next iteration warm-starts).
    max_newton_steps = 100
    #: The ``max_newton_steps`` EM sets; None for the engine's default.
    em_newton_steps = None

    #: Iterative families: ``newton_gain(source, params)``, per expert the gain one more
    #: Newton step of the M-step predicts on the weights ``W`` kept in the blocks (zero at
    #: its maximum), by which a fit that stopped far from it, at its start, is found.
    #: None for closed-form M-steps.
    newton_gain = None

    #: Keys of ``params`` whose arrays are shared by all experts (no expert axis, e.g.
    #: coefficients common to every expert): never reordered or indexed by expert.
    shared_keys = ("shared",)

    #: Number of the last columns of ``X_expert`` whose coefficients all experts share
    #: (flexmix's ``FLXMRglmfix(fixed=)``); their coefficients are ``params["shared"]``,
    #: shape (n_shared,), and the M-step fits them jointly with the per-expert ones
    #: (``shared_m_step``). Set by the estimators from ``shared_features``.
    n_shared = 0

    #: Whether the M-step reads the Grams ``X1' diag(W[k]) X1`` of the block's weights
    #: (``block_grams``), which the model may then compute ahead with the gates' Hessian
    reads_weight_grams = False

    #: Dispersion keys that may hold one value for all experts (``pool``), and those that
    #: do in this fit (set by the estimators, e.g. from ``shared_variance``): the M-step
    #: pools their statistics over the experts, the (K,) array holds K equal values and
    #: ``n_parameters`` and the standard errors count them once.
    poolable_keys = ()
    pooled_keys = ()

    # optional capabilities (see CAPABILITIES): None where a family lacks them
    start = statistics = solve = information_terms = distribution = modes = None
    #: ``coefficient_statistics(block, params)``: the gradient (K, m) and the negative
    #: Hessian (or a curvature that minorises the objective), (K, m, m), of one block's
    #: weighted log-likelihood in every expert's coefficients on all the columns of
    #: ``X_expert`` (``full_coef``, flattened), at ``params``: the joint M-step of shared
    #: coefficients (``shared_m_step``) sums them over the blocks.
    coefficient_statistics = None

    def __init__(self, n_experts=None, alpha=0.0):
        self.n_experts = n_experts
        self.alpha = float(alpha)

    @property
    def has_dispersion(self):
        return bool(self.dispersion_keys)

    def configure(self, targets=None, **options):
        """Settings that depend on the training targets (a summary of y); none here."""

    def missing_capabilities(self, method):
        """The capabilities ``method`` (a key of ``CAPABILITIES``) needs and this family
        lacks."""
        missing = [name for name in CAPABILITIES[method] if getattr(self, name, None) is None]
        own = type(self)
        if (method != "fit" and "m_step_blocks" in CAPABILITIES[method]
                and own.m_step_blocks is ExpertFamily.m_step_blocks):
            missing.append("m_step_blocks")
        if (method == "fit" and own.m_step is ExpertFamily.m_step
                and own.m_step_blocks is ExpertFamily.m_step_blocks):
            missing.append("m_step or m_step_blocks")
        return missing

    def check_y(self, y):
        return np.asarray(y, dtype=float)

    def init_target(self, y):
        """The columns that represent y when k-means or Voronoi cells seed the fit."""
        return np.asarray(y, dtype=float)[:, None]

    def m_step_blocks(self, source, params=None):
        """The M-step on a source of row blocks; by default only one in-memory block."""
        if type(self).m_step is ExpertFamily.m_step:
            require(self, "fit")
        blocks = getattr(source, "blocks", None)
        if blocks is None or len(blocks) != 1:
            require(self, "a fit on chunks (dask)")
        block = blocks[0]
        return self.m_step(block.X_expert, block.y, block.weights, params, block.offset)

    def m_step(self, X, y, W, params=None, offset=None):
        """The M-step on in-memory arrays (``m_step_blocks`` on one block)."""
        if type(self).m_step_blocks is ExpertFamily.m_step_blocks:
            require(self, "fit")
        source = one_block(X_expert=X, y=y, offset=offset, cache={WEIGHTS: W})
        return self.m_step_blocks(source, params)

    def pool(self, keys):
        """Share the dispersions ``keys`` by all experts; a clear error for keys this
        family cannot pool."""
        keys = tuple(keys)
        refused = [key for key in keys if key not in self.poolable_keys]
        if refused:
            raise ValueError(
                f"{type(self).__name__} cannot share {', '.join(refused)} across experts "
                f"(it can share: {', '.join(self.poolable_keys) or 'nothing'})."
            )
        self.pooled_keys = keys

    def full_coef(self, params):
        """Every expert's coefficients on all the columns of ``X_expert``: its own ones,
        then the shared ones (``params["shared"]``, the same for every expert)."""
        coef = params["coef"]
        shared = params.get("shared")
        if shared is None:
            return coef
        shared = np.broadcast_to(shared, coef.shape[:1] + shared.shape)
        return np.concatenate([coef, shared], axis=-1)

    def eta(self, X, params, offset=None):
        eta = linear_predictor(X, self.full_coef(params))
        if offset is not None:
            eta += offset
        return eta

    def penalty(self, params):
        return 0.5 * self.alpha * np.sum(params["coef"][:, 1:] ** 2)

    def update_dispersion(self, source, params):
        """The dispersions given the coefficients; none here."""
        return params

    def n_parameters(self, params):
        """Every expert's coefficients and dispersions, the shared ones once."""
        return self.n_coefficients(params) + self.n_dispersions()

    def n_coefficients(self, params):
        """Free coefficients: every expert's own, the shared ones once."""
        shared = params["shared"].size if "shared" in params else 0
        return params["coef"].size + shared

    def n_dispersions(self):
        """Free dispersions: K per dispersion key, one per pooled key."""
        return sum(1 if key in self.pooled_keys else self.n_experts
                   for key in self.dispersion_keys)

    def response_parts(self, params):
        """The family as responses: one ``ResponsePart`` (this family, all expert columns,
        y itself); ``JointExperts`` gives one per response."""
        return [ResponsePart(None, self, None, None, params)]

    def take_experts(self, params, order):
        """The parameters of the experts ``order`` (an index array), in that order: the
        per-expert arrays indexed on their first axis, the ``shared_keys`` ones kept."""
        return {key: value if key in self.shared_keys else value[order]
                for key, value in params.items()}

    def coef_penalty(self, n_coef, alpha=None):
        return np.diag(penalty_diagonal(n_coef, self.alpha if alpha is None else alpha))

    def project(self, params):
        """The nearest admissible parameters (e.g. dispersions held at their bounds), for
        points that did not come from an M-step (EM acceleration)."""
        return params

    def at_bound(self, params):
        """Experts whose dispersion is held at its bound (a degenerate fit), (K,) bool."""
        return np.zeros(self.n_experts, dtype=bool)

    def fixed_experts(self, params):
        """Components without expert parameters (their gate outputs are parameters), (K,)
        bool: standard errors leave their coefficients and dispersions out."""
        return np.zeros(self.n_experts, dtype=bool)

    #: What ``summary`` calls the ``fixed_experts`` components.
    fixed_label = None

    def bound_events(self, params):
        """Sentences for ``events_`` about dispersions held at their bounds."""
        return []

    def reported_dispersions(self, params):
        """The dispersions as ``standard_errors`` reports them (``dispersion_labels``), in
        the parametrisation of ``information_terms``: a list of (K,) arrays."""
        return [params[key] for key in self.dispersion_keys]

    def penalty_information(self, params, n_coef):
        """Hessian of minus the penalty per expert, (K, P, P), in the coefficients and
        the reported dispersions (``P = n_coef + len(dispersion_labels)``)."""
        P = n_coef + len(self.dispersion_labels)
        out = np.zeros((self.n_experts, P, P))
        out[:, :n_coef, :n_coef] = self.alpha * np.diag(penalty_diagonal(n_coef, 1.0))
        return out

    def penalty_scale(self, params):
        """Per-expert factor of ``alpha / 2 ||b_k||^2`` in the penalty, (K,)."""
        return np.ones(self.n_experts)

    def matrix_free_coef(self, source, params, max_iter):
        """Raise the experts' penalised weighted log-likelihood in the coefficients (the
        dispersions held) by truncated Newton: the M-step for wide designs.

        Needs ``derivatives``. Diagonal (Jacobi) preconditioning from the curvature at the
        start; every pass is a sum over row blocks, and no (d + 1) x (d + 1) matrix is
        formed. The summed objective, that of EM, never decreases.
        """
        factor = source.reduce(_glm_curvature_diagonal_block, self, params)
        factor += penalty_diagonal(factor.shape[-1], self.alpha) * self.penalty_scale(params)[
            :, None
        ]
        factor = 1.0 / np.sqrt(factor + 1e-10 * factor.mean(axis=1, keepdims=True) + 1e-300)
        ridge = self.alpha * self.penalty_scale(params)[:, None]

        def evaluate(U):
            coef = U * factor
            value, grad = source.update(_glm_tn_evaluate_block, self, dict(params, coef=coef))
            value -= 0.5 * np.sum(ridge * coef[:, 1:] ** 2)
            grad[:, 1:] -= ridge * coef[:, 1:]
            return value, grad * factor

        def curvature(direction):
            D = direction * factor
            out = source.reduce(_glm_tn_curvature_block, D)
            out[:, 1:] += ridge * D[:, 1:]
            return out * factor

        U, _ = truncated_newton(evaluate, curvature, params["coef"] / factor, max_iter=max_iter)
        return dict(params, coef=U * factor)


class GaussianExperts(ExpertFamily):
    """Linear experts with Gaussian noise and one variance per expert.

    The penalty is ``alpha ||b_k||^2 / (2 s_k^2)`` (a ridge on the residual scale), so the
    M-step is closed-form: the coefficients are sklearn's weighted ``Ridge(alpha)`` fit and
    ``s_k^2 = (RSS_k + alpha ||b_k||^2) / N_k``, held at ``variance_floor`` from below.
    Its statistics are finite: per expert the weighted Gram ``X1' W X1``, ``X1' W y``,
    ``y' W y`` and the total weight.

    Parameters
    ----------
    n_experts : int, default=None
    alpha : float, default=0.0
    variance_floor : float, default=1e-12
    """

    name = "gaussian"
    dispersion_keys = ("variance",)
    dispersion_labels = ("variance",)
    poolable_keys = ("variance",)

    def __init__(self, n_experts=None, alpha=0.0, variance_floor=1e-12):
        super().__init__(n_experts, alpha)
        self.variance_floor = variance_floor

    def configure(self, targets=None, variance_floor=None, **options):
        """The variance floor: ``variance_floor``, or ``1e-6`` times the squared scale
        ``targets["scale2"]`` of y."""
        if variance_floor is None and targets is not None:
            scale2, mean_square = targets["scale2"], targets["mean_square"]
            variance_floor = 1e-6 * scale2 if scale2 > 0 else 1e-10 * (1.0 + mean_square)
        if variance_floor is not None:
            self.variance_floor = variance_floor

    def log_prob(self, X, y, params, offset=None):
        var = params["variance"]
        resid = y - self.eta(X, params, offset)
        resid **= 2
        resid *= (-0.5 / var)[:, None]
        resid -= (0.5 * np.log(2.0 * np.pi * var))[:, None]
        return resid

    def derivatives(self, y, eta, params, order=2):
        """Log density and its first two derivatives in ``eta`` (for wide designs)."""
        var = params["variance"][:, None]
        resid = y - eta
        ll = -0.5 * resid**2 / var - 0.5 * np.log(2.0 * np.pi * var)
        if order == 0:
            return (ll,)
        return ll, resid / var, np.broadcast_to(1.0 / var, eta.shape).copy()

    def information_terms(self, y, eta, params):
        """Per (k, i): d/deta, d2/deta2, and in the variance v: d/dv, d2/dv2, d2/deta dv."""
        v = params["variance"][:, None]
        r = y - eta
        return (
            r / v,
            np.broadcast_to(-1.0 / v, eta.shape),
            -0.5 / v + 0.5 * r**2 / v**2,
            0.5 / v**2 - r**2 / v**3,
            -r / v**2,
        )

    def penalty_information(self, params, n_coef):
        # alpha ||b||^2 / (2 v): its Hessian in (b, v)
        out = np.zeros((self.n_experts, n_coef + 1, n_coef + 1))
        mask = penalty_diagonal(n_coef, 1.0)
        v = params["variance"]
        b = params["coef"] * mask
        out[:, :n_coef, :n_coef] = (self.alpha / v)[:, None, None] * np.diag(mask)
        out[:, :n_coef, n_coef] = -self.alpha * b / (v**2)[:, None]
        out[:, n_coef, :n_coef] = out[:, :n_coef, n_coef]
        out[:, n_coef, n_coef] = self.alpha * np.sum(b * b, axis=1) / v**3
        return out

    def penalty_scale(self, params):
        return 1.0 / params["variance"]

    statistics = staticmethod(_gaussian_stats_block)

    @property
    def reads_weight_grams(self):
        return not self.n_shared

    def start(self, source):
        """Every expert at the weighted mean and variance of y (one pass)."""
        w, wy, wyy = source.reduce(_moments_block)
        mean = wy / w
        coef = np.zeros((self.n_experts, source.n_expert_features + 1))
        coef[:, 0] = mean
        variance = max(wyy / w - mean**2, self.variance_floor)
        return {"coef": coef, "variance": np.full(self.n_experts, variance)}

    def solve(self, stats, params=None, scale=1.0, max_step=None, source=None):
        """The weighted ridge and variances of summed statistics; ``scale`` divides the
        penalty (online averages are per unit weight). With the rows (``source``), RSS
        that cancellation would cost more than 6 of 16 digits takes an exact pass."""
        lam = self.alpha / scale
        gram, xy, yy, totals = stats["gram"], stats["xy"], stats["yy"], stats["weight"]
        coef = solve_spd(gram + self.coef_penalty(gram.shape[-1], lam), xy)
        # RSS_k = y'W_k y - 2 b_k'X'W_k y + b_k'G_k b_k from the same sums
        rss = residual_sum_of_squares(coef, gram, xy, yy)
        if source is not None and np.any(rss <= 1e-6 * yy):
            rss = source.reduce(_gaussian_rss_block, coef)
        rss += lam * np.sum(coef[:, 1:] ** 2, axis=1)
        empty = _empty_experts(totals) | ~np.all(np.isfinite(coef), axis=1)
        new = {"coef": coef, "variance": self._variances(rss, totals, empty)}
        return _keep_empty_experts(new, params, empty, self.shared_keys + self.pooled_keys)

    def _variances(self, rss, totals, empty):
        """``(RSS_k + penalty_k) / N_k`` held at the floor; pooled over the experts with
        weight when the variance is shared (``pooled_keys``)."""
        pool = "variance" in self.pooled_keys
        rss = np.where(empty, 0.0, rss)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.maximum(_pooled(rss, pool) / _pooled(totals, pool),
                              self.variance_floor)

    def coefficient_statistics(self, block, params):
        """Gradient ``X1' W_k r_k / s_k^2`` and negative Hessian ``X1' W_k X1 / s_k^2``
        in every expert's coefficients on all the columns (``full_coef``)."""
        X, W = block.X_expert, block.weights
        scaled = W / params["variance"][:, None]
        resid = _response(block) - linear_predictor(X, self.full_coef(params))
        resid *= scaled
        return weighted_sums(X, resid), block_grams(block, "X_expert", scaled)

    def update_dispersion(self, source, params):
        """The variances given the coefficients (one pass)."""
        rss, totals = source.reduce(_rss_and_weight_block, self, params)
        rss += self.alpha * np.sum(params["coef"][:, 1:] ** 2, axis=1)
        empty = _empty_experts(totals)
        new = {"variance": self._variances(rss, totals, empty)}
        old = {"variance": params["variance"]} if "variance" in params else None
        return dict(params, **_keep_empty_experts(new, old, empty, self.pooled_keys))

    def m_step_blocks(self, source, params=None):
        if self.n_shared:
            return shared_m_step(self, source, params)
        if is_wide(source.n_expert_features):
            return self._m_step_wide(source, params)
        return self.solve(source.reduce(self.statistics), params, source=source)

    def _m_step_wide(self, source, params):
        """Coefficients by truncated Newton at the previous variances, then the exact
        variances: each raises the objective."""
        w_y, totals, _, _, _ = source.reduce(_glm_start_block, True)
        empty = _empty_experts(totals)
        if params is None:
            coef = np.zeros((self.n_experts, source.n_expert_features + 1))
            coef[:, 0] = w_y / np.maximum(totals, 1e-300)
            params = {"coef": coef, "variance": np.ones(self.n_experts)}
        new = self.matrix_free_coef(source, params, self.max_newton_steps)
        rss = source.reduce(_gaussian_rss_block, new["coef"])
        rss += self.alpha * np.sum(new["coef"][:, 1:] ** 2, axis=1)
        new["variance"] = self._variances(rss, totals, empty)
        return _keep_empty_experts(new, params, empty, self.shared_keys + self.pooled_keys)

    def mean(self, X, params, offset=None):
        return self.eta(X, params, offset)

    def project(self, params):
        return dict(params, variance=np.maximum(params["variance"], self.variance_floor))

    def at_bound(self, params):
        return params["variance"] <= self.variance_floor * (1 + 1e-12)

    def bound_events(self, params):
        return [
            f"expert {k}: variance held at its floor {self.variance_floor:.3g}"
            for k in np.flatnonzero(self.at_bound(params))
        ]

    @staticmethod
    def distribution(mean, variance):
        return stats.norm(loc=mean, scale=np.sqrt(variance))

    def modes(self, gate, mean, params):
        """Local maxima of the mixture density and the density there."""
        return _predictive.gaussian_modes(gate, mean, params["variance"])

    def penalty(self, params):
        sq = np.sum(params["coef"][:, 1:] ** 2, axis=1)
        return 0.5 * self.alpha * np.sum(sq / params["variance"])


def _moments_block(block):
    w, y = block.sample_weight, _response(block)
    return float(w.sum()), float(w @ y), float(w @ y**2)


def _converged(old, new, tol):
    """No parameter moved by more than ``tol`` relative to its size."""
    return all(
        np.max(np.abs(new[key] - old[key]), initial=0.0)
        <= tol * (1.0 + np.max(np.abs(new[key]), initial=0.0))
        for key in new
    )


class _NewtonGLMExperts(ExpertFamily):
    """GLM experts fitted by Newton's method with step halving, all experts at once.

    Subclasses give the per-sample log-likelihood and its first two derivatives in the
    linear predictor ``eta`` (``derivatives``), and ``link``. With a concave log-likelihood
    in ``eta`` each Newton step is an ascent direction; step halving makes every step
    non-decreasing. A family with dispersions gives ``dispersion_statistics(block,
    params)`` and ``solve_dispersion(stats, params)`` (their exact update given the means,
    from additive statistics), or overrides ``update_dispersion(source, params)`` (batch
    fits only).
    """

    #: Newton stops when no coefficient or dispersion moves by more than this (relative).
    newton_tol = 1e-10

    dispersion_statistics = solve_dispersion = None

    def missing_capabilities(self, method):
        missing = super().missing_capabilities(method)
        if not self.dispersion_keys:
            return missing
        if method == "partial_fit":
            missing += [
                name for name in ("dispersion_statistics", "solve_dispersion")
                if getattr(self, name) is None
            ]
        if (method == "standard_errors"
                and type(self).information_terms is _NewtonGLMExperts.information_terms):
            missing.append("information_terms")
        return missing

    def log_prob(self, X, y, params, offset=None):
        return self.derivatives(y, self.eta(X, params, offset), params, order=0)[0]

    def information_terms(self, y, eta, params):
        """Per (k, i): d/deta and d2/deta2 of the log density (no dispersion)."""
        _, first, neg_second = self.derivatives(y, eta, params)
        return first, -neg_second, None, None, None

    def start(self, source):
        """Intercept-only starting point at the weighted mean response (one pass)."""
        w_y, totals, sum_y, n, sum_offset = source.reduce(_glm_start_block)
        coef = np.zeros((self.n_experts, source.n_expert_features + 1))
        coef[:, 0] = self.link(start_means(w_y, totals, sum_y / n))
        coef[:, 0] -= sum_offset / n
        return self.update_dispersion(source, {"coef": coef})

    def update_dispersion(self, source, params):
        """The dispersions given the coefficients: ``solve_dispersion`` of one pass."""
        if not self.dispersion_keys:
            return params
        stats = source.reduce(self.dispersion_statistics, params)
        return dict(params, **self.solve_dispersion(stats, params))

    def update_dispersion_value(self, source, params, value):
        """``update_dispersion`` and the expert objective there; ``value`` is the objective
        at ``params`` (a family that knows the new one without a pass overrides this)."""
        params = self.update_dispersion(source, params)
        return params, self.expert_objective(source, params)

    def coefficient_statistics(self, block, params):
        """Gradient and negative Hessian of one block's weighted log-likelihood in the
        coefficients, per expert (the Fisher information for canonical links)."""
        return _glm_system_block(block, self, params)

    def statistics(self, block, params):
        """Additive statistics at ``params``: the Newton system (``gradient``, ``hessian``)
        and its ``linear`` term ``hessian @ coef + gradient`` (additive over blocks taken
        at different points, as online EM averages them), the weighted ``gram`` (for a
        trust region), the ``weight``, and the dispersion statistics."""
        gradient, hessian = self.coefficient_statistics(block, params)
        stats = {
            "gradient": gradient,
            "hessian": hessian,
            "linear": np.einsum("kab,kb->ka", hessian, params["coef"]) + gradient,
            "gram": block_grams(block, "X_expert", block.weights),
            "weight": block.weights.sum(axis=1),
        }
        if self.dispersion_keys:
            stats.update(self.dispersion_statistics(block, params))
        return stats

    def solve(self, stats, params, scale=1.0, max_step=None):
        """Maximiser of the quadratic model ``<linear, b> - b' hessian b / 2`` less the
        penalty (divided by ``scale``): the Newton proposal; held within ``max_step`` of
        the linear predictor's root mean square change (``trust_region``) when given;
        then the dispersions of ``solve_dispersion``."""
        coef = solve_spd(
            stats["hessian"] + self.coef_penalty(stats["hessian"].shape[-1],
                                                 self.alpha / scale),
            stats["linear"],
        )
        empty = _empty_experts(stats["weight"]) | ~np.all(np.isfinite(coef), axis=1)
        if max_step is not None:
            coef = trust_region(coef, params["coef"], stats["gram"], stats["weight"], max_step)
        coef[empty] = params["coef"][empty]
        new = dict(params, coef=coef)
        if self.dispersion_keys:
            new.update(self.solve_dispersion(stats, new))
        return new

    def newton_direction(self, stats, params):
        """The Newton step from ``params`` of the summed ``coefficient_statistics``."""
        grad, hess = stats
        grad[:, 1:] -= self.alpha * params["coef"][:, 1:]
        return grad, solve_spd(hess + self.coef_penalty(grad.shape[1]), grad)

    def expert_objective(self, source, params):
        """Penalised weighted log-likelihood of every expert, (K,): one pass."""
        value = source.reduce(self.weighted_log_likelihood, params)
        return value - 0.5 * self.alpha * np.sum(params["coef"][:, 1:] ** 2, axis=1)

    def weighted_log_likelihood(self, block, params):
        """``sum_i W[k, i] log f_k(y_i | x_i)`` of one block, (K,)."""
        return _glm_value_block(block, self, params)

    def m_step_blocks(self, source, params=None):
        if self.n_shared:
            return shared_m_step(self, source, params)
        totals = source.reduce(_weight_totals_block)
        empty = _empty_experts(totals)
        if params is None:
            params = self.start(source)
        params = {key: value.copy() for key, value in params.items()}
        if is_wide(source.n_expert_features):
            new = self.matrix_free_coef(source, params, self.max_newton_steps)
            new["coef"][empty] = params["coef"][empty]
            return self.update_dispersion(source, new)
        value = self.expert_objective(source, params)

        def evaluate(coef):
            with np.errstate(over="ignore", invalid="ignore"):
                return self.expert_objective(source, dict(params, coef=coef))

        for _ in range(self.max_newton_steps):
            previous = {key: value.copy() for key, value in params.items()}
            grad, direction = self.newton_direction(
                source.reduce(self.coefficient_statistics, params), params
            )
            # a gain under 1e-12 nats per unit weight is taken whole (see NEGLIGIBLE_GAIN);
            # not with a dispersion: a Gamma shape near its bound makes the objective's
            # rounding noise large, and only the line search keeps it from wandering
            negligible = (np.einsum("kd,kd->k", grad, direction)
                          <= NEGLIGIBLE_GAIN * totals) & (not self.has_dispersion)
            params["coef"], value = step_halving(
                evaluate, params["coef"], direction, value, negligible, ~empty
            )
            if self.has_dispersion:
                params, value = self.update_dispersion_value(source, params, value)
            if _converged(previous, params, self.newton_tol):
                break
        return params

    def newton_gain(self, source, params):
        if self.n_shared:
            return _shared_newton(self, source, params)[2]
        grad, direction = self.newton_direction(
            source.reduce(self.coefficient_statistics, params), params
        )
        with np.errstate(invalid="ignore"):
            return 0.5 * np.einsum("kd,kd->k", grad, direction)

    def mean(self, X, params, offset=None):
        return self.inverse_link(self.eta(X, params, offset))


class PoissonExperts(_NewtonGLMExperts):
    """Poisson experts with a log link; ``offset`` is the log of the exposure."""

    name = "poisson"
    accepts_offset = True
    positive_only = True
    link = staticmethod(np.log)
    inverse_link = staticmethod(np.exp)

    def check_y(self, y):
        y = np.asarray(y, dtype=float)
        if np.any(y < 0):
            raise ValueError("Poisson experts need non-negative counts; y has negative values.")
        return y

    def init_target(self, y):
        return np.log1p(y)[:, None]

    @staticmethod
    def distribution(mean):
        return stats.poisson(mu=mean)

    def derivatives(self, y, eta, params, order=2):
        mu = np.exp(eta)
        ll = y * eta - mu - gammaln(y + 1.0)
        if order == 0:
            return (ll,)
        return ll, y - mu, mu


class BernoulliExperts(_NewtonGLMExperts):
    """Logistic experts for a binary response in {0, 1}."""

    name = "bernoulli"

    @staticmethod
    def link(p):
        p = np.clip(p, 1e-6, 1 - 1e-6)
        return np.log(p) - np.log1p(-p)

    inverse_link = staticmethod(expit)

    def check_y(self, y):
        y = np.asarray(y, dtype=float)
        if not np.all((y == 0) | (y == 1)):
            raise ValueError("Bernoulli experts need a binary response with values in {0, 1}.")
        return y

    @staticmethod
    def distribution(mean):
        return stats.bernoulli(p=mean)

    def derivatives(self, y, eta, params, order=2):
        ll = y * eta + log_expit(-eta)
        if order == 0:
            return (ll,)
        p = expit(eta)
        return ll, y - p, p * (1.0 - p)


class BinomialExperts(_NewtonGLMExperts):
    """Logistic experts for binomial counts with trials (flexmix's ``cbind(s, f)``).

    The response is two columns, ``y[:, 0]`` the successes and ``y[:, 1]`` the failures of
    every row (non-negative, not necessarily integers); the row's ``n = s + f`` trials all
    share the row's latent expert, so a row's log density is the whole binomial one,

        ``log f_k(s | x) = log C(n, s) + s log p_k(x) + f log(1 - p_k(x))``,

    ``p_k = expit(x' b_k)``, with the normalising constant ``log C(n, s)`` included (as R's
    ``dbinom``, by ``gammaln``): ``score_samples`` agrees with ``scipy.stats.binom.logpmf``.
    This is not a Bernoulli mixture of the expanded trials, in which every trial would
    choose its own expert. ``mean`` (and so ``predict``) is the success probability.
    """

    name = "binomial"
    #: Columns of the response (successes, failures).
    response_columns = 2
    response_columns_hint = "the successes and failures of every row, as flexmix's cbind(s, f)"

    link = staticmethod(BernoulliExperts.link)  # the logit, as Bernoulli experts
    inverse_link = staticmethod(expit)

    def check_y(self, y):
        y = np.asarray(y, dtype=float)
        if y.ndim != 2 or y.shape[1] != 2:
            raise ValueError(
                "Binomial experts need y of shape (n_samples, 2): the successes and the "
                f"failures of every row (flexmix's cbind(s, f)); got shape {y.shape}."
            )
        if not np.all(np.isfinite(y)):
            raise ValueError("Input y contains NaN or infinity.")
        if np.any(y < 0):
            rows = np.flatnonzero(np.any(y < 0, axis=1))
            raise ValueError(
                "Binomial experts need non-negative successes and failures (successes at "
                f"most the trials); rows {rows[:10].tolist()} have negative counts."
            )
        return y

    def init_target(self, y):
        y = np.asarray(y, dtype=float)
        trials = y.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            p = np.where(trials > 0, y[:, 0] / np.where(trials > 0, trials, 1.0), 0.5)
        return self.link(p)[:, None]

    def start(self, source):
        """Intercept-only start at every expert's weighted proportion of successes."""
        w_s, w_n, s, n = source.reduce(_binomial_start_block)
        overall = s / n if n > 0 else 0.5
        with np.errstate(invalid="ignore", divide="ignore"):
            p = np.where(w_n > 0, w_s / np.where(w_n > 0, w_n, 1.0), overall)
        coef = np.zeros((self.n_experts, source.n_expert_features + 1))
        coef[:, 0] = self.link(p)
        return {"coef": coef}

    def derivatives(self, y, eta, params, order=2):
        s, f = y[:, 0], y[:, 1]
        n = s + f
        ll = s * log_expit(eta) + f * log_expit(-eta)
        ll += gammaln(n + 1.0) - gammaln(s + 1.0) - gammaln(f + 1.0)
        if order == 0:
            return (ll,)
        p = expit(eta)
        return ll, s - n * p, n * p * (1.0 - p)


def binomial_target(successes, trials):
    """The response of ``expert="binomial"``: the columns (successes, failures) from the
    successes and the trials of every row (R's ``cbind(s, n - s)``).

    Parameters
    ----------
    successes : array-like of shape (n_samples,)
        Non-negative numbers of successes.
    trials : array-like of shape (n_samples,)
        Numbers of trials, at least the successes.

    Returns
    -------
    ndarray of shape (n_samples, 2)
        The successes and the failures.

    Examples
    --------
    >>> from skmoe import binomial_target
    >>> binomial_target([3, 0], [10, 4])
    array([[3., 7.],
           [0., 4.]])
    """
    successes = np.asarray(successes, dtype=float)
    trials = np.asarray(trials, dtype=float)
    if successes.ndim != 1 or successes.shape != trials.shape:
        raise ValueError(
            "successes and trials must be one-dimensional of the same length; got shapes "
            f"{successes.shape} and {trials.shape}."
        )
    if np.any(successes < 0):
        raise ValueError("successes must be non-negative.")
    above = np.flatnonzero(successes > trials)
    if above.size:
        raise ValueError(
            f"successes above the trials in rows {above[:10].tolist()}: the trials are the "
            "total count of every row (successes plus failures)."
        )
    return np.column_stack([successes, trials - successes])


def _binomial_start_block(block):
    W, s = block.weights, block.y[:, 0]
    n = block.y.sum(axis=1)
    return W @ s, W @ n, float(block.sample_weight @ s), float(block.sample_weight @ n)


class GammaExperts(_NewtonGLMExperts):
    """Gamma experts with a log link and one ML dispersion (1 / shape) per expert."""

    name = "gamma"
    accepts_offset = True
    positive_only = True
    dispersion_keys = ("dispersion",)
    dispersion_labels = ("shape",)
    link = staticmethod(np.log)
    inverse_link = staticmethod(np.exp)
    #: Upper bound on the shape (lower bound on the dispersion) for exact fits.
    max_shape = 1e10

    def check_y(self, y):
        y = np.asarray(y, dtype=float)
        if np.any(y <= 0):
            raise ValueError("Gamma experts need a strictly positive response; y has values <= 0.")
        return y

    def init_target(self, y):
        return np.log1p(y)[:, None]

    def project(self, params):
        return dict(params, dispersion=np.maximum(params["dispersion"], 1.0 / self.max_shape))

    def at_bound(self, params):
        return params["dispersion"] <= (1 + 1e-12) / self.max_shape

    def reported_dispersions(self, params):
        return [1.0 / params["dispersion"]]

    @staticmethod
    def distribution(mean, dispersion):
        return stats.gamma(a=1.0 / dispersion, scale=mean * dispersion)

    def derivatives(self, y, eta, params, order=2):
        # -v (r - 1 - log r) + v log v - v - gammaln(v) - log y, r = y / mu: the terms
        # v log v and gammaln(v) would cancel to eps v log v per row at large shapes v
        shape = (1.0 / params["dispersion"])[:, None]
        log_y = np.log(y)
        log_ratio = log_y - eta
        ratio = np.exp(log_ratio)
        ll = _gamma_unit_deviance(ratio, log_ratio)
        ll *= -shape
        ll += _gamma_log_norm(shape) - log_y
        if order == 0:
            return (ll,)
        return ll, shape * (ratio - 1.0), shape * ratio

    def information_terms(self, y, eta, params):
        """Per (k, i): d/deta, d2/deta2, and in the shape nu: d/dnu, d2/dnu2, d2/deta dnu."""
        nu = (1.0 / params["dispersion"])[:, None]
        log_ratio = np.log(y) - eta
        ratio = np.exp(log_ratio)
        return (
            nu * (ratio - 1.0),
            -nu * ratio,
            _log_minus_digamma(nu) - _gamma_unit_deviance(ratio, log_ratio),
            np.broadcast_to(_inverse_minus_trigamma(nu), eta.shape),
            ratio - 1.0,
        )

    def dispersion_statistics(self, block, params):
        """The deviance term ``sum W (r - log r - 1)``, ``r = y / mu``, and the weight."""
        W = block.weights
        log_ratio = np.log(block.y) - self.eta(block.X_expert, params, block.offset)
        deviance = _gamma_unit_deviance(np.exp(log_ratio), log_ratio)
        return {"deviance": np.einsum("ki,ki->k", W, deviance),
                "weight": W.sum(axis=1)}

    def solve_dispersion(self, stats, params):
        """Exact ML shape given the means: ``log v - digamma(v) = mean deviance / 2``."""
        empty = _empty_experts(stats["weight"])
        with np.errstate(invalid="ignore", divide="ignore"):
            target = stats["deviance"] / stats["weight"]
        target = np.where(empty, 1.0, target)
        dispersion = 1.0 / gamma_shape(target, self.max_shape)
        if "dispersion" in params:
            dispersion[empty] = params["dispersion"][empty]
        return {"dispersion": dispersion}


def _stirling_tail(x):
    """``S(x) = gammaln(x) - (x - 1/2) log x + x - log(2 pi) / 2`` by its series ``1/(12 x)
    - 1/(360 x^3) + 1/(1260 x^5) - 1/(1680 x^7)``, whose error is below 1e-20 from x = 100."""
    inv2 = 1.0 / (x * x)
    return (1.0 / x) * (1.0 / 12.0 - inv2 * (1.0 / 360.0 - inv2 * (
        1.0 / 1260.0 - inv2 / 1680.0)))


def _large(v, function, series):
    """``function(v)``, and from v = 100 on ``series(v)`` (there the direct form cancels)."""
    v = np.asarray(v, dtype=float)
    large = v >= 100.0
    return np.where(large, series(np.where(large, v, 100.0)),
                    function(np.where(large, 1.0, v)))


def _gamma_log_norm(v):
    """``v log v - v - gammaln(v)``: ``log(v / (2 pi)) / 2 - S(v)`` from v = 100 on."""
    return _large(v, lambda a: a * np.log(a) - a - gammaln(a),
                  lambda a: 0.5 * np.log(a / (2.0 * np.pi)) - _stirling_tail(a))


def _log_minus_digamma(v):
    """``log v - digamma(v)``, by ``1/(2v) + 1/(12 v^2) - 1/(120 v^4) + 1/(252 v^6)
    - 1/(240 v^8)`` from v = 100 on."""
    def series(a):
        inv2 = 1.0 / (a * a)
        return 0.5 / a + inv2 * (1.0 / 12.0 - inv2 * (1.0 / 120.0 - inv2 * (
            1.0 / 252.0 - inv2 / 240.0)))
    return _large(v, lambda a: np.log(a) - digamma(a), series)


def _inverse_minus_trigamma(v):
    """``1 / v - trigamma(v)``, by ``-(1/(2 v^2) + 1/(6 v^3) - 1/(30 v^5) + 1/(42 v^7)
    - 1/(30 v^9))`` from v = 100 on."""
    def series(a):
        inv = 1.0 / a
        inv2 = inv * inv
        return -inv2 * (0.5 + inv * (1.0 / 6.0 - inv2 * (1.0 / 30.0 - inv2 * (
            1.0 / 42.0 - inv2 / 30.0))))
    return _large(v, lambda a: 1.0 / a - polygamma(1, a), series)


def _gamma_unit_deviance(ratio, log_ratio):
    """``r - 1 - log r`` from ``r`` and ``log r``, as ``expm1(log r) - log r`` (near
    r = 1 exact to eps |log r| rather than eps)."""
    out = np.expm1(log_ratio)
    out -= log_ratio
    return out


def trigamma(x):
    """``polygamma(1, x)`` for ``x > 0``, vectorised and many times faster than scipy's
    (which goes through the Hurwitz zeta function): ``psi1(x) = sum_{j < 8} 1 / (x + j)^2
    + psi1(x + 8)`` and the asymptotic series at ``x + 8`` (relative error below 1e-11;
    for Newton curvatures)."""
    x = np.asarray(x, dtype=float)
    out = 1.0 / x**2
    for j in range(1, 8):
        out += 1.0 / (x + j) ** 2
    inv = 1.0 / (x + 8.0)
    inv2 = inv * inv
    out += inv * (1.0 + inv * (0.5 + inv * (1.0 / 6.0 + inv2 * (
        -1.0 / 30.0 + inv2 * (1.0 / 42.0 + inv2 * (-1.0 / 30.0 + inv2 * 5.0 / 66.0))))))
    return out


def _log_r_plus_mu(log_r, eta):
    """``log(r + mu)`` and ``share = log(1 + mu / r)``, (K, n), for ``mu = exp(eta)``.

    ``share`` is the softplus of ``eta - log r``, ``max(d, 0) + log1p(exp(-|d|))``, in
    fewer passes than numpy's ``logaddexp``. The log density needs ``r log(r / (r + mu))
    = -r share``: taken as ``log r - log(r + mu)`` it would lose all digits near the Poisson
    limit (at r = 1e8, 1e-7 per row, which line searches then take for losses)."""
    share = np.subtract(eta, log_r)
    top = np.maximum(share, 0.0)
    np.abs(share, out=share)
    np.negative(share, out=share)
    np.exp(share, out=share)
    np.log1p(share, out=share)
    share += top
    return np.add(share, log_r, out=top), share


def _nb_lgamma(y, r):
    """``gammaln(y + r) - gammaln(r) - gammaln(y + 1)`` for ``y >= 0`` and sizes ``r``
    (K, 1), broadcast. From r = 100 on by Stirling's series, as ``(r - 1/2) log1p(y / r) +
    y log(r + y) - y + S(r + y) - S(r)`` with ``S(x) = 1/(12 x) - 1/(360 x^3) + 1/(1260
    x^5) - 1/(1680 x^7)`` (its error is below 1e-20 from x = 100): the difference of
    gammaln would cancel to about ``eps r log r`` (2e-7 at r = 1e8)."""
    y = np.asarray(y, dtype=float)
    r = np.asarray(r, dtype=float)
    naive = gammaln(y + r) - gammaln(r)
    large = np.broadcast_to(r >= 100.0, naive.shape)
    if large.any():
        rl = np.where(r >= 100.0, r, 100.0)
        stirling = ((rl - 0.5) * np.log1p(y / rl) + y * np.log(rl + y) - y
                    + (_stirling_tail(rl + y) - _stirling_tail(rl)))
        naive = np.where(large, stirling, naive)
    return naive - gammaln(y + 1.0)


def _unique_values(y):
    """``(values, inverse)`` of ``np.unique`` when ``y`` has few distinct values (counts
    usually do), else None: a special function of ``y + r`` is then evaluated on the
    values and gathered, with the same result bit for bit."""
    y = np.asarray(y)
    if y.ndim != 1 or y.size < 64:
        return None
    values, inverse = np.unique(y, return_inverse=True)
    if values.size > y.size // 8:
        return None
    return values, inverse.ravel()


def _of_y_plus_r(function, y, r, unique=None, then=()):
    """``function(y + r)``, (K, n), through the distinct values of ``y`` when given; the
    in-place operations ``then`` (pairs of a ufunc and its second operand, (K, 1) or
    scalar) follow in turn, on the distinct values before the gather when there are any
    (the same numbers bit for bit, in fewer passes over (K, n))."""
    if unique is None:
        out = function(y + r)
    else:
        values, inverse = unique
        out = function(values + r)
    for ufunc, operand in then:
        ufunc(out, operand, out=out)
    # np.take gathers several times faster than out[:, inverse]
    return out if unique is None else np.take(out, inverse, axis=1)


def _nb_size_terms(y, eta, size, exact=True, unique=None, log_r_mu=None):
    """d log f / dr and d2 log f / dr2 of the NB2 log density in its size ``r``, (K, n);
    ``exact=False`` takes the fast ``trigamma`` for the second; ``unique`` is
    ``_unique_values(y)`` (or None)."""
    r = size[:, None]
    if log_r_mu is None:
        log_r_mu = _log_r_plus_mu(np.log(r), eta)[0]
    inv_r_mu = np.exp(-log_r_mu)
    ratio = (r + y) * inv_r_mu  # (r + y) / (r + mu)
    # in place, in the order of digamma(y + r) - digamma(r) + log r + 1 - log(r + mu) - ratio
    first = _of_y_plus_r(digamma, y, r, unique, then=(
        (np.subtract, digamma(r)), (np.add, np.log(r)), (np.add, 1.0)))
    first -= log_r_mu
    first -= ratio
    psi1 = (lambda x: polygamma(1, x)) if exact else trigamma
    # psi1(y + r) - psi1(r) + 1 / r - 2 / (r + mu) + ratio / (r + mu)
    second = _of_y_plus_r(psi1, y, r, unique, then=((np.subtract, psi1(r)), (np.add, 1.0 / r)))
    ratio *= inv_r_mu
    inv_r_mu *= 2.0
    second -= inv_r_mu
    second += ratio
    return first, second


def _held_weights(W, unique):
    """``held[k, v] = sum_{i: y_i = values[v]} W[k, i]``, (K, n_values), for ``unique =
    (values, inverse)`` of ``_unique_values(y)``."""
    values, inverse = unique
    K, m = W.shape[0], values.size
    index = inverse + m * np.arange(K)[:, None]
    return np.bincount(index.ravel(), weights=W.ravel(), minlength=K * m).reshape(K, m)


class NegativeBinomialExperts(_NewtonGLMExperts):
    """Negative-binomial (NB2) experts with a log link and one size ``r_k`` per expert.

    The density of expert k is ``Gamma(y + r) / (Gamma(r) y!) (r / (r + mu))^r
    (mu / (r + mu))^y`` with mean ``mu = exp(eta)`` and variance ``mu + mu^2 / r``
    (``scipy.stats.nbinom(n=r, p=r / (r + mu))``); ``offset`` is the log of the exposure,
    as for Poisson experts. The coefficients take Newton steps (Fisher scoring in
    ``eta``) with step halving, the sizes a safeguarded Newton step in ``log r`` from
    additive statistics, alternately, so batch, online and dask fits share one M-step.
    Sizes are held within ``[min_size, max_size]``: data without overdispersion push
    ``r`` to ``max_size`` (the Poisson limit).

    Parameters
    ----------
    n_experts : int, default=None
    alpha : float, default=0.0
    """

    name = "negative_binomial"
    dispersion_keys = ("size",)
    dispersion_labels = ("size",)
    accepts_offset = True
    positive_only = True
    link = staticmethod(np.log)
    inverse_link = staticmethod(np.exp)
    #: Bounds on the sizes.
    min_size, max_size = 1e-6, 1e8

    def check_y(self, y):
        y = np.asarray(y, dtype=float)
        if np.any(y < 0):
            raise ValueError(
                "Negative-binomial experts need non-negative counts; y has negative values."
            )
        return y

    def init_target(self, y):
        return np.log1p(y)[:, None]

    #: How many (response, sizes) pairs keep their ``gammaln`` terms (one per data block
    #: and per row block of the E-step).
    _lgamma_cache_size = 32

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_lgamma_cache", None)
        state.pop("_predictor_cache", None)
        state.pop("_weights_cache", None)
        return state

    def _lgamma_terms(self, y, size):
        """``gammaln(y + r) - gammaln(r) - gammaln(y + 1)``, (K, n): the part of the log
        density that does not depend on the coefficients, kept for the last sizes of each
        response array (the line searches and the E-step evaluate the density again and
        again at unchanged sizes); a hit needs equal sizes and an equal response."""
        entry = self._response_entry(y)
        if entry["size"] is not None and np.array_equal(entry["size"], size):
            return entry["terms"]
        r = size[:, None]
        unique = entry["unique"]
        if unique is None:
            terms = _nb_lgamma(y, r)
        else:
            terms = np.take(_nb_lgamma(unique[0], r), unique[1], axis=1)
        entry.update(size=size.copy(), terms=terms)
        return terms

    def _response_entry(self, y):
        """What is kept of the response array ``y``: a copy (a hit needs an equal
        response), its distinct values (``_unique_values``), and the ``gammaln`` terms at
        the last sizes."""
        cache = self.__dict__.setdefault("_lgamma_cache", {})
        # keyed on the memory, not the object: the E-step's row slices are new views of
        # the same rows at every iteration
        key = (y.__array_interface__["data"][0], y.shape, y.strides)
        entry = cache.get(key)
        if entry is not None and np.array_equal(entry["y"], y):
            return entry
        if entry is None and len(cache) >= self._lgamma_cache_size:
            cache.pop(next(iter(cache)))
        entry = {"y": np.array(y, copy=True), "unique": _unique_values(y), "size": None,
                 "terms": None}
        cache[key] = entry
        return entry

    def m_step_blocks(self, source, params=None):
        """As for GLM experts; during the M-step the last linear predictors and
        ``log(r + mu)`` are kept (``_predictors``): the line searches, the size statistics
        and the next Newton system often ask for them at the same parameters (not with
        shared coefficients, which the cache does not key on)."""
        self._predictor_cache = None if self.n_shared else []
        self._weights_cache = {}
        try:
            return super().m_step_blocks(source, params)
        finally:
            self._predictor_cache = self._weights_cache = None

    def _weight_sums(self, block):
        """``(unique, held, W y)`` of a block: the distinct values of y
        (``_unique_values``), the weight each holds (``_held_weights``, None without
        ``unique``) and ``W * y``; kept during an M-step, whose weights do not change
        (``weighted_log_likelihood``)."""
        W = block.weights
        cache = self.__dict__.get("_weights_cache")
        entry = None if cache is None else cache.get(id(W))
        if entry is None or entry[0] is not W:
            unique = self._response_entry(block.y)["unique"]
            held = None if unique is None else _held_weights(W, unique)
            entry = (W, unique, held, W * block.y)
            if cache is not None:
                cache[id(W)] = entry
        return entry[1:]

    def weighted_log_likelihood(self, block, params):
        """``sum_i W log f`` from the weight each distinct y holds: ``sum_v held[k, v]
        lgamma terms(v, r_k) + sum_i W (r log(r / (r + mu)) + y log(mu / (r + mu)))``."""
        unique, held, Wy = self._weight_sums(block)
        W = block.weights
        eta, log_r_mu, share = self._predictors(block.X_expert, params, block.offset)
        r = params["size"]
        if unique is None:  # the same sum row by row (blocks of either kind agree)
            lgamma = np.einsum("ki,ki->k", W, self._lgamma_terms(block.y, r))
        else:
            lgamma = np.einsum("kv,kv->k", held, _nb_lgamma(unique[0], r[:, None]))
        # the differences row by row before the sums: summed apart, their terms cancel
        # to few digits (no digits at large r); log(r / (r + mu)) is -share
        log_rest = np.subtract(eta, log_r_mu)  # log(mu / (r + mu))
        return (lgamma - r * np.einsum("ki,ki->k", W, share)
                + np.einsum("ki,ki->k", Wy, log_rest))

    def _predictors(self, X, params, offset):
        """``eta``, ``log(r + mu)`` and ``log(1 + mu / r)`` (``_log_r_plus_mu``), (K, n):
        kept during an M-step for the last two (X, offset, coefficients, sizes); the
        arrays are not to be written to."""
        cache = self.__dict__.get("_predictor_cache")
        coef = self.full_coef(params)
        eta = None
        if cache is not None:
            for entry in cache:
                if entry[0] is X and entry[1] is offset and np.array_equal(entry[2], coef):
                    if np.array_equal(entry[3], params["size"]):
                        return entry[4], entry[5], entry[6]
                    eta = entry[4]  # a trial of new sizes: the same linear predictors
        if eta is None:
            eta = self.eta(X, params, offset)
        log_r_mu, share = _log_r_plus_mu(np.log(params["size"])[:, None], eta)
        if cache is not None:
            cache.insert(0, (X, offset, coef.copy(), params["size"].copy(), eta, log_r_mu,
                             share))
            del cache[2:]
        return eta, log_r_mu, share

    def log_prob(self, X, y, params, offset=None):
        eta, log_r_mu, share = self._predictors(X, params, offset)
        return self._log_density(y, eta, log_r_mu, share, params)

    def _log_density(self, y, eta, log_r_mu, share, params):
        r = params["size"][:, None]
        # gammaln terms - r log(1 + mu / r) + y (eta - log(r + mu)), in place
        ll = np.multiply(share, -r)
        ll += self._lgamma_terms(y, params["size"])
        term = np.subtract(eta, log_r_mu)
        term *= y
        ll += term
        return ll

    def derivatives(self, y, eta, params, order=2):
        r = params["size"][:, None]
        log_r_mu, share = _log_r_plus_mu(np.log(r), eta)
        ll = self._log_density(y, eta, log_r_mu, share, params)
        if order == 0:
            return (ll,)
        p = np.exp(eta - log_r_mu)  # mu / (r + mu)
        # d/deta and minus d2/deta2, (r + y) p (1 - p) >= 0: concave in eta
        return ll, (y - np.exp(eta)) * (1.0 - p), (r + y) * p * (1.0 - p)

    def coefficient_statistics(self, block, params):
        """The Newton system in the coefficients (as ``derivatives``, without the log
        density, whose ``gammaln`` the system does not need)."""
        X, W = block.X_expert, block.weights
        eta, log_r_mu, _ = self._predictors(X, params, block.offset)
        r = params["size"][:, None]
        p = np.subtract(eta, log_r_mu)
        np.exp(p, out=p)  # mu / (r + mu)
        one_minus_p = 1.0 - p
        d1 = np.exp(eta)
        np.subtract(block.y, d1, out=d1)
        d1 *= one_minus_p  # (y - mu) (1 - p)
        neg_d2 = r + block.y
        neg_d2 *= p
        neg_d2 *= one_minus_p  # (r + y) p (1 - p)
        d1 *= W
        neg_d2 *= W
        return weighted_sums(X, d1), block_grams(block, "X_expert", neg_d2)

    @staticmethod
    def distribution(mean, size):
        return stats.nbinom(n=size, p=size / (size + mean))

    def project(self, params):
        return dict(params, size=np.clip(params["size"], self.min_size, self.max_size))

    def at_bound(self, params):
        return params["size"] <= self.min_size * (1 + 1e-12)

    def bound_events(self, params):
        return [f"expert {k}: size held at its lower bound {self.min_size:.3g}"
                for k in np.flatnonzero(self.at_bound(params))]

    def dispersion_statistics(self, block, params):
        """Gradient and curvature of the weighted log-likelihood in ``s = log r``, in the
        linear form ``c s + g`` that stays additive across blocks (and online batches)."""
        size = params.get("size", np.ones(self.n_experts))
        W = block.weights
        if "size" in params:
            eta, log_r_mu, _ = self._predictors(block.X_expert, params, block.offset)
        else:
            eta, log_r_mu = self.eta(block.X_expert, params, block.offset), None
        # row by row, then summed: the terms cancel to O(1 / r^2) near the Poisson limit,
        # and weights and repeated rows must give the same sums to the last digits
        first, second = _nb_size_terms(
            block.y, eta, size, exact=False,
            unique=self._response_entry(block.y)["unique"], log_r_mu=log_r_mu,
        )
        grad = np.einsum("ki,ki->k", W, first) * size
        curv = -(np.einsum("ki,ki->k", W, second) * size**2 + grad)
        curv = np.maximum(curv, 1e-3 * np.abs(grad) + 1e-8 * W.sum(axis=1))
        return {"size_linear": curv * np.log(size) + grad, "size_curvature": curv,
                "weight": W.sum(axis=1)}

    def solve_dispersion(self, stats, params):
        """The Newton proposal in ``log r``, within a factor ``e`` of the current size."""
        log_size = np.log(params.get("size", np.ones(self.n_experts)))
        with np.errstate(invalid="ignore", divide="ignore"):
            proposal = stats["size_linear"] / stats["size_curvature"]
        proposal = np.where(np.isfinite(proposal), proposal, log_size)
        proposal = np.clip(proposal, log_size - 1.0, log_size + 1.0)
        return {"size": np.clip(np.exp(proposal), self.min_size, self.max_size)}

    def update_dispersion(self, source, params):
        """One Newton step in ``log r``, halved until no expert's objective drops (so
        batch EM stays monotone)."""
        params = dict(params, size=params.get("size", np.ones(self.n_experts)))
        return self.update_dispersion_value(
            source, params, self.expert_objective(source, params))[0]

    def update_dispersion_value(self, source, params, value):
        """``update_dispersion`` from the objective ``value`` at ``params``; returns the
        new parameters and the objective there (known from the line search)."""
        proposal = super().update_dispersion(source, params)["size"]
        step = np.ones(self.n_experts)
        size = proposal
        for _ in range(30):
            size = params["size"] * (proposal / params["size"]) ** step
            trial = self.expert_objective(source, dict(params, size=size))
            bad = ~(trial >= value - 1e-12 * np.abs(value))
            if not bad.any():
                break
            step[bad] *= 0.5
        accept = trial >= value - 1e-12 * np.abs(value)
        return dict(params, size=np.where(accept, size, params["size"])), np.where(
            accept, trial, value)

    def information_terms(self, y, eta, params):
        """Per (k, i): d/deta, d2/deta2, and in the size r: d/dr, d2/dr2, d2/deta dr."""
        r = params["size"][:, None]
        mu = np.exp(eta)
        first, second = _nb_size_terms(y, eta, params["size"])
        return (
            r * (y - mu) / (r + mu),
            -(r + y) * r * mu / (r + mu) ** 2,
            first,
            second,
            (y - mu) * mu / (r + mu) ** 2,
        )


def ecm_df_root(constant, start, low, high, max_iter=100):
    """Per expert the root in ``nu`` of ``1 + log(nu / 2) - digamma(nu / 2) + c = 0`` (the
    ECM equation of t experts; its left side decreases in ``nu``), held in ``[low,
    high]``: Newton in ``log nu`` from ``start`` (the previous degrees of freedom, so a few
    steps), safeguarded by bisection inside a bracket kept for every expert at once."""

    def equation(log_nu, c):
        half = 0.5 * np.exp(log_nu)
        return 1.0 + np.log(half) - digamma(half) + c, 1.0 - half * trigamma(half)

    lo = np.full(constant.shape, np.log(low))
    hi = np.full(constant.shape, np.log(high))
    at_low, at_high = equation(lo, constant)[0] <= 0, equation(hi, constant)[0] >= 0
    x = np.clip(np.log(start), lo, hi)
    todo = ~(at_low | at_high)
    for _ in range(max_iter):
        if not todo.any():
            break
        value, slope = equation(x[todo], constant[todo])
        xt, lt, ht = x[todo], lo[todo], hi[todo]
        lt = np.where(value > 0, xt, lt)  # the root lies above a positive value
        ht = np.where(value > 0, ht, xt)
        with np.errstate(divide="ignore", invalid="ignore"):
            step = xt - value / slope
        # a step of 1e-12 in log nu is at the rounding of the cancelling value
        done = (np.abs(step - xt) <= 1e-12) | (value == 0)
        inside = (step > lt) & (step < ht)
        new = np.where(inside | done, step, 0.5 * (lt + ht))
        lo[todo], hi[todo], x[todo] = lt, ht, new
        todo[np.flatnonzero(todo)[done]] = False
    nu = np.exp(x)
    nu[at_low] = low
    nu[at_high] = high
    return nu


def _t_weights_block(block, family, params):
    """Per (k, i) the E-step scale weights ``u = (nu + 1) / (nu + r^2 / s^2)`` of Student-t
    experts (r the residuals), (K, n)."""
    u = linear_predictor(block.X_expert, family.full_coef(params))
    np.subtract(_response(block), u, out=u)
    nu = family.degrees_of_freedom(params)[:, None]
    # (nu + 1) / (nu + r^2 / s^2), in place
    np.square(u, out=u)
    u *= 1.0 / params["scale"][:, None] ** 2
    u += nu
    np.divide(nu + 1.0, u, out=u)
    return u


def _t_start_block(block):
    W, y = block.weights, _response(block)
    return W.sum(axis=1), W @ y, W @ (y * y)


class StudentTExperts(ExpertFamily):
    """Linear experts with Student-t noise: location ``x b_k``, scale ``s_k`` and degrees
    of freedom ``nu_k`` per expert, robust to outliers.

    Fitted by ECM on the scale-mixture representation ``y | u ~ N(x b, s^2 / u)``,
    ``u ~ Gamma(nu / 2, nu / 2)`` (Peel & McLachlan 2000; meteorits' t experts,
    Chamroukhi 2016): every pass over the rows computes the latent weights
    ``u = (nu + 1) / (nu + r^2 / s^2)`` and sums the weighted statistics ``X1' W u X1``,
    ``X1' W u y``, ``y' W u y``, ``sum W`` and ``sum W (log u - u)``; from them the
    coefficients are a weighted ridge, ``s^2 = (sum W u r^2 + alpha ||b||^2) / sum W``,
    and ``nu`` the root (``ecm_df_root``, all experts at once) of the ECM equation
    ``1 + log(nu / 2) - digamma(nu / 2) + sum W (log u - u) / sum W
    + digamma((nu' + 1) / 2) - log((nu' + 1) / 2) = 0`` (``nu'`` the previous value). Each
    pass is one EM step of the weighted t likelihood, so it never decreases; batch, online
    and dask fits share it. Inside EM an M-step is one pass (``em_newton_steps``): the
    E-step's responsibilities and the pass's weights ``u`` at the same parameters make
    each EM iteration the ECM iteration of Peel & McLachlan. The penalty is
    ``alpha ||b_k||^2 / (2 s_k^2)``, as for Gaussian experts.

    Parameters
    ----------
    n_experts : int, default=None
    alpha : float, default=0.0
    df : float or None, default=None
        Degrees of freedom held fixed for every expert; None estimates one per expert
        (``expert_df_``), within ``[min_df, max_df]``.
    variance_floor : float, default=1e-12
        Smallest ``s_k^2``; the estimators set it as for Gaussian experts.
    min_df, max_df : float, default=0.5, 200.0
        Bounds on the estimated degrees of freedom (``max_df`` is all but Gaussian).
    """

    name = "student_t"
    #: Degrees of freedom a fit starts from when they are estimated.
    start_df = 10.0
    #: ECM passes stop when no parameter moves by more than this (relative); EM sets
    #: one pass per M-step (``em_newton_steps``), an M-step alone runs to convergence.
    newton_tol = 1e-12
    max_newton_steps = 5000
    em_newton_steps = 1

    def __init__(self, n_experts=None, alpha=0.0, df=None, variance_floor=1e-12,
                 min_df=0.5, max_df=200.0):
        super().__init__(n_experts, alpha)
        self.df = df
        self.variance_floor = variance_floor
        self.min_df = min_df
        self.max_df = max_df

    @property
    def dispersion_keys(self):
        return ("scale",) if self.df is not None else ("scale", "df")

    @property
    def dispersion_labels(self):
        return self.dispersion_keys

    def configure(self, targets=None, variance_floor=None, **options):
        """The floor of ``s_k^2``, as Gaussian experts' variance floor; checks ``df``."""
        if self.df is not None and not (np.isscalar(self.df) and self.df > 0):
            raise ValueError(f"df of Student-t experts must be positive or None; got "
                             f"{self.df!r}.")
        GaussianExperts.configure(self, targets, variance_floor=variance_floor)

    def degrees_of_freedom(self, params):
        """The (K,) degrees of freedom: estimated, or the fixed ``df``."""
        if self.df is not None:
            return np.full(len(params["scale"]), float(self.df))
        return params["df"]

    def log_prob(self, X, y, params, offset=None):
        nu = self.degrees_of_freedom(params)[:, None]
        s = params["scale"][:, None]
        out = self.eta(X, params, offset)
        np.subtract(y, out, out=out)
        # -(nu + 1) / 2 log(1 + r^2 / (nu s^2)) + log normalising constant, in place
        np.square(out, out=out)
        out *= 1.0 / (nu * s * s)
        np.log1p(out, out=out)
        out *= -0.5 * (nu + 1.0)
        out += gammaln(0.5 * (nu + 1.0)) - gammaln(0.5 * nu) - 0.5 * np.log(nu * np.pi)
        out -= np.log(s)
        return out

    def mean(self, X, params, offset=None):
        """The location ``x b_k`` (the mean when ``nu_k > 1``)."""
        return self.eta(X, params, offset)

    def distribution(self, mean, scale, df=None):
        if df is None:
            df = self.df
        return stats.t(df, loc=mean, scale=scale)

    def start(self, source):
        """Every expert at its weighted mean and standard deviation of y (one pass)."""
        w, wy, wyy = source.reduce(_t_start_block)
        overall = wy.sum() / w.sum()
        empty = _empty_experts(w)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(empty, overall, wy / w)
            variance = np.where(empty, wyy.sum() / w.sum() - overall**2, wyy / w - mean**2)
        coef = np.zeros((self.n_experts, source.n_expert_features + 1))
        coef[:, 0] = mean
        scale = np.sqrt(np.maximum(variance, self.variance_floor))
        params = {"coef": coef, "scale": scale}
        if self.df is None:
            params["df"] = np.full(self.n_experts, self.start_df)
        return params

    def statistics(self, block, params):
        """The ECM statistics at ``params`` (see the class docstring)."""
        u = _t_weights_block(block, self, params)
        W = block.weights
        log_u_minus_u = np.log(u)
        log_u_minus_u -= u
        log_u_minus_u = np.einsum("ki,ki->k", W, log_u_minus_u)
        u *= W  # W u from here on
        y = _response(block)
        Wuy = u * y
        return {
            "gram": block_grams(block, "X_expert", u), "xy": weighted_sums(block.X_expert, Wuy),
            "yy": Wuy @ y, "weight": W.sum(axis=1), "log_u_minus_u": log_u_minus_u,
        }

    def solve(self, stats, params, scale=1.0, max_step=None):
        """The ECM update from summed statistics; ``scale`` divides the penalty (online
        averages are per unit weight)."""
        lam = self.alpha / scale
        gram, xy = stats["gram"], stats["xy"]
        coef = solve_spd(gram + self.coef_penalty(gram.shape[-1], lam), xy)
        empty = _empty_experts(stats["weight"]) | ~np.all(np.isfinite(coef), axis=1)
        new = dict(params, coef=coef)
        new.update(self._solve_dispersions(stats, new, lam, empty))
        return _keep_empty_experts(new, params, empty, self.shared_keys)

    def _solve_dispersions(self, stats, params, lam, empty):
        """The ECM scales and degrees of freedom at the coefficients of ``params``."""
        rss = residual_sum_of_squares(self.full_coef(params), stats["gram"], stats["xy"],
                                      stats["yy"])
        rss += lam * np.sum(params["coef"][:, 1:] ** 2, axis=1)
        totals = stats["weight"]
        with np.errstate(invalid="ignore", divide="ignore"):
            new = {"scale": np.sqrt(np.maximum(rss / totals, self.variance_floor))}
            if self.df is None:
                mean_log_u = stats["log_u_minus_u"] / totals
                new["df"] = self._solve_df(mean_log_u, params["df"], empty)
        return new

    def coefficient_statistics(self, block, params):
        """The ECM step's system in every expert's coefficients on all the columns
        (``full_coef``): gradient ``X1' W u r / s^2`` and curvature ``X1' W u X1 / s^2``
        (``u`` the scale weights at ``params``), whose maximiser raises the likelihood."""
        u = _t_weights_block(block, self, params)
        resid = _response(block) - linear_predictor(block.X_expert, self.full_coef(params))
        u *= block.weights
        u /= params["scale"][:, None] ** 2
        return weighted_sums(block.X_expert, u * resid), block_grams(block, "X_expert", u)

    def update_dispersion(self, source, params):
        """One ECM update of the scales and degrees of freedom at fixed coefficients."""
        stats = source.reduce(self.statistics, params)
        empty = _empty_experts(stats["weight"])
        new = self._solve_dispersions(stats, params, self.alpha, empty)
        # experts with no weight keep their dispersions
        return dict(params, **{key: np.where(empty, params[key], value)
                               for key, value in new.items()})

    def _solve_df(self, mean_log_u_minus_u, previous, empty):
        """Root of the ECM equation in ``nu`` per expert, held in ``[min_df, max_df]``."""
        constant = (mean_log_u_minus_u + digamma(0.5 * (previous + 1.0))
                    - np.log(0.5 * (previous + 1.0)))
        active = ~empty & np.isfinite(constant)
        df = previous.copy()
        df[active] = ecm_df_root(constant[active], previous[active], self.min_df,
                                 self.max_df)
        return df

    def m_step_blocks(self, source, params=None):
        """ECM passes (``max_newton_steps`` at most), each one reduction over the blocks."""
        if self.n_shared:
            return shared_m_step(self, source, params)
        if params is None:
            params = self.start(source)
        params = {key: value.copy() for key, value in params.items()}
        for _ in range(self.max_newton_steps):
            new = self.solve(source.reduce(self.statistics, params), params)
            done = _converged(params, new, self.newton_tol)
            params = new
            if done:
                break
        return params

    def penalty(self, params):
        sq = np.sum(params["coef"][:, 1:] ** 2, axis=1)
        return 0.5 * self.alpha * np.sum(sq / params["scale"] ** 2)

    def penalty_scale(self, params):
        return 1.0 / params["scale"] ** 2

    def penalty_information(self, params, n_coef):
        # alpha ||b||^2 / (2 s^2): its Hessian in (b, s) (none in df)
        P = n_coef + len(self.dispersion_labels)
        out = np.zeros((self.n_experts, P, P))
        mask = penalty_diagonal(n_coef, 1.0)
        s = params["scale"]
        b = params["coef"] * mask
        out[:, :n_coef, :n_coef] = (self.alpha / s**2)[:, None, None] * np.diag(mask)
        out[:, :n_coef, n_coef] = -2.0 * self.alpha * b / (s**3)[:, None]
        out[:, n_coef, :n_coef] = out[:, :n_coef, n_coef]
        out[:, n_coef, n_coef] = 3.0 * self.alpha * np.sum(b * b, axis=1) / s**4
        return out

    def information_terms(self, y, eta, params):
        """Per (k, i): d/deta, d2/deta2, and in the dispersions ``theta = (s, nu)`` (``s``
        alone when ``df`` is fixed): d/dtheta (m, K, n), d2/dtheta2 (m, m, K, n) and
        d2/deta dtheta (m, K, n). The degrees of freedom are reported as they are (not
        their logarithm)."""
        nu = self.degrees_of_freedom(params)[:, None]
        s = params["scale"][:, None]
        r = y - eta
        r2 = r * r
        s2 = s * s
        denom = nu * s2 + r2  # nu s^2 + r^2
        d_eta = (nu + 1.0) * r / denom
        d_eta2 = -(nu + 1.0) * (nu * s2 - r2) / denom**2
        d_s = -1.0 / s + (nu + 1.0) * r2 / (s * denom)
        d_s2 = 1.0 / s2 - (nu + 1.0) * r2 * (denom + 2.0 * nu * s2) / (s2 * denom**2)
        d_eta_s = -2.0 * (nu + 1.0) * nu * s * r / denom**2
        if self.df is not None:
            return d_eta, d_eta2, d_s[None], d_s2[None, None], d_eta_s[None]
        # log f = lgamma((nu+1)/2) - lgamma(nu/2) - log(nu pi)/2 - log s
        #         - (nu+1)/2 log(denom / (nu s^2))
        d_nu = (0.5 * (digamma(0.5 * (nu + 1.0)) - digamma(0.5 * nu)) - 0.5 / nu
                - 0.5 * np.log(denom / (nu * s2)) + 0.5 * (nu + 1.0) * r2 / (nu * denom))
        d_nu2 = (0.25 * (polygamma(1, 0.5 * (nu + 1.0)) - polygamma(1, 0.5 * nu))
                 + 0.5 / nu**2 + r2 / (nu * denom)
                 - 0.5 * (nu + 1.0) * r2 * (2.0 * nu * s2 + r2) / (nu * denom) ** 2)
        d_s_nu = r2 * (r2 - s2) / (s * denom**2)
        d_eta_nu = r * (r2 - s2) / denom**2
        return (d_eta, d_eta2, np.stack([d_s, d_nu]),
                np.stack([np.stack([d_s2, d_s_nu]), np.stack([d_s_nu, d_nu2])]),
                np.stack([d_eta_s, d_eta_nu]))

    def project(self, params):
        new = dict(params, scale=np.maximum(params["scale"], np.sqrt(self.variance_floor)))
        if "df" in params:
            new["df"] = np.clip(params["df"], self.min_df, self.max_df)
        return new

    def at_bound(self, params):
        return params["scale"] ** 2 <= self.variance_floor * (1 + 1e-12)

    def bound_events(self, params):
        return [
            f"expert {k}: scale held at its floor {np.sqrt(self.variance_floor):.3g}"
            for k in np.flatnonzero(self.at_bound(params))
        ]


class StudentT(StudentTExperts):
    """Student-t experts for ``expert=``, with the degrees of freedom estimated or fixed.

    ``expert="student_t"`` estimates one number of degrees of freedom per expert;
    ``expert=StudentT(df=4)`` holds every expert's at 4 (``expert_df_`` is then not set,
    and BIC counts K parameters fewer). Its parameters are seen by ``get_params`` of the
    estimator as ``expert__df``, so ``clone`` and ``GridSearchCV`` work with them.

    Parameters
    ----------
    df : float or None, default=None
        Degrees of freedom of every expert (positive), or None to estimate them.

    Examples
    --------
    >>> from skmoe import MixtureOfExpertsRegressor, StudentT
    >>> model = MixtureOfExpertsRegressor(2, expert=StudentT(df=4))
    >>> model.get_params()["expert__df"]
    4
    """

    def __init__(self, df=None):
        super().__init__(df=df)

    def get_params(self, deep=True):
        return {"df": self.df}

    def set_params(self, **params):
        for key, value in params.items():
            if key != "df":
                raise ValueError(f"Invalid parameter {key!r} for StudentT; it has 'df'.")
            self.df = value
        return self

    def __repr__(self):
        return f"StudentT(df={self.df!r})"


#: Log density of a nonzero response under the point mass at zero (finite, so that a
#: zero weight times it is zero).
_NO_MASS = -1e300


def _delegated(name, convert=None):
    """A property read from and written to the wrapped base family (``self._base``)."""

    def set_value(self, value):
        setattr(self._base, name, value if convert is None else convert(value))

    return property(lambda self: getattr(self._base, name), set_value)


class ZeroInflatedExperts(ExpertFamily):
    """Count experts plus a point mass at zero as one more component with its own gate
    output (flexmix's ``FLXMRziglm`` construction).

    Of the ``n_experts`` components, one is the point mass at zero (marked by the one-hot
    parameter ``zero``, which follows the experts when they are reordered) and the others
    are experts of the count family ``base``. The mixture ``p(y | x) = g_0(x) [y = 0] +
    sum_k g_k(x) f_k(y | x)`` is a zero-inflated model whose structural-zero share is the
    gate's output for the zero component (constant with ``gate_features=[]``); ``predict``
    gives the mixture mean, the zero component's mean being 0. The M-step is the base
    family's, run for every component, after which the zero component's parameters are
    reset (they play no part), so ``partial_fit`` and dask fits work as for the base
    family. Standard errors are the base family's, without parameters for the point mass
    (``fixed_experts``); its gate output is a parameter of the gate.

    Parameters
    ----------
    base : {"poisson", "negative_binomial"} or family, default="poisson"
        The count family of the other components.
    n_experts : int, default=None
        Number of components, the point mass included.
    alpha : float, default=0.0
    """

    name = "zero_inflated"
    accepts_offset = True
    positive_only = True

    def __init__(self, base="poisson", n_experts=None, alpha=0.0):
        self.base = base
        self._base = FAMILIES[base]() if isinstance(base, str) else copy.deepcopy(base)
        super().__init__(n_experts, alpha)

    n_experts = _delegated("n_experts")
    alpha = _delegated("alpha", float)
    max_newton_steps = _delegated("max_newton_steps")

    @property
    def dispersion_keys(self):
        return self._base.dispersion_keys

    @property
    def dispersion_labels(self):
        return self._base.dispersion_labels

    def configure(self, targets=None, **options):
        self._base.configure(targets, **options)

    def check_y(self, y):
        return self._base.check_y(y)

    def init_target(self, y):
        return self._base.init_target(y)

    @staticmethod
    def _is_zero(params):
        return params["zero"] > 0.5

    def _reset(self, new, previous):
        """The base family's parameters with the zero component's reset (coefficients 0,
        dispersions as before or 1) and the marker carried over."""
        zero = self._is_zero(previous)
        new = dict(new, zero=previous["zero"].copy())
        new["coef"] = new["coef"].copy()
        new["coef"][zero] = 0.0
        for key in self.dispersion_keys:
            new[key] = new[key].copy()
            new[key][zero] = 1.0
        return new

    def _base_params(self, params):
        return {key: value for key, value in params.items() if key != "zero"}

    def log_prob(self, X, y, params, offset=None):
        out = self._base.log_prob(X, y, self._base_params(params), offset)
        zero = self._is_zero(params)
        out[zero] = np.where(y == 0, 0.0, _NO_MASS)
        return out

    def mean(self, X, params, offset=None):
        out = self._base.mean(X, self._base_params(params), offset)
        out[self._is_zero(params)] = 0.0
        return out

    def distribution(self, mean, **dispersions):
        """The base family's law: at mean 0 (the zero component) a point mass at zero."""
        return self._base.distribution(mean, **dispersions)

    def start(self, source):
        params = self._base.start(source)
        zero = np.zeros(self.n_experts)
        zero[-1] = 1.0
        return self._reset(params, {"zero": zero})

    def statistics(self, block, params):
        return self._base.statistics(block, self._base_params(params))

    def solve(self, stats, params, scale=1.0, max_step=None):
        new = self._base.solve(stats, self._base_params(params), scale, max_step)
        return self._reset(new, params)

    def m_step_blocks(self, source, params=None):
        if params is None:
            params = self.start(source)
        new = self._base.m_step_blocks(source, self._base_params(params))
        return self._reset(new, params)

    def newton_gain(self, source, params):
        gain = self._base.newton_gain(source, self._base_params(params))
        gain[self._is_zero(params)] = 0.0
        return gain

    def penalty(self, params):
        return self._base.penalty(self._base_params(params))

    def fixed_experts(self, params):
        return self._is_zero(params)

    fixed_label = "point mass at zero"

    def information_terms(self, y, eta, params):
        """The base family's, zero for the point mass (its density has no parameters)."""
        terms = self._base.information_terms(y, eta, self._base_params(params))
        zero = self._is_zero(params)
        out = []
        for term in terms:
            if term is not None:
                term = np.array(term, dtype=float)  # a writable copy
                term[..., zero, :] = 0.0
            out.append(term)
        return tuple(out)

    def penalty_information(self, params, n_coef):
        return self._base.penalty_information(self._base_params(params), n_coef)

    def n_parameters(self, params):
        d1 = params["coef"].shape[1]
        return self._base.n_parameters(params) - d1 - len(self.dispersion_keys)

    def project(self, params):
        return dict(self._base.project(self._base_params(params)), zero=params["zero"])

    def at_bound(self, params):
        return self._base.at_bound(self._base_params(params)) & ~self._is_zero(params)

    def bound_events(self, params):
        return self._base.bound_events(
            dict(self._base_params(params), **{key: np.where(
                self._is_zero(params), 1.0, params[key]) for key in self.dispersion_keys}))


class ZeroInflatedPoissonExperts(ZeroInflatedExperts):
    """Zero-inflated Poisson: Poisson experts and a point mass at zero (see
    ``ZeroInflatedExperts``)."""

    name = "zero_inflated_poisson"

    def __init__(self, n_experts=None, alpha=0.0):
        super().__init__("poisson", n_experts, alpha)


class ZeroInflatedNegativeBinomialExperts(ZeroInflatedExperts):
    """Zero-inflated negative binomial: NB2 experts and a point mass at zero (see
    ``ZeroInflatedExperts``)."""

    name = "zero_inflated_negative_binomial"

    def __init__(self, n_experts=None, alpha=0.0):
        super().__init__("negative_binomial", n_experts, alpha)
# ----------------------------------------------------------- several responses
def _response_block(block, columns, column):
    """One response's view of a block: its expert columns, its column of y, no offset; the
    weights and the cache are the block's (shared by the responses)."""
    X = block.X_expert if columns is None else block.X_expert[:, columns]
    return replace(block, X_expert=X, y=np.ascontiguousarray(block.y[:, column]), offset=None)


def _on_response(block, columns, column, func, *args):
    return func(_response_block(block, columns, column), *args)


class _ResponseSource:
    """The rows of one response of ``JointExperts`` as a source of blocks: every pass is a
    pass of the whole source whose blocks are cut to the response (so in-memory and dask
    fits share it)."""

    def __init__(self, source, columns, column, n_expert_features):
        self.source, self.columns, self.column = source, columns, column
        self.n_expert_features = n_expert_features
        self.n_gate_features = source.n_gate_features
        self.total_weight = source.total_weight
        self.cache = {}

    @property
    def blocks(self):
        blocks = getattr(self.source, "blocks", None)
        if blocks is None:
            return None
        return [_response_block(block, self.columns, self.column) for block in blocks]

    def reduce(self, func, *args, op=np.add):
        return self.source.reduce(_on_response, self.columns, self.column, func, *args, op=op)

    def update(self, func, *args):
        return self.source.update(_on_response, self.columns, self.column, func, *args)


def _member(spec):
    if isinstance(spec, str):
        if spec not in FAMILIES:
            raise ValueError(
                f"{spec!r} is not an expert family; the names are {sorted(FAMILIES)}."
            )
        return FAMILIES[spec]()
    if not all(hasattr(spec, name) for name in ("log_prob", "mean", "check_y")):
        raise ValueError(f"{spec!r} is neither the name of an expert family nor a family.")
    return copy.deepcopy(spec)


class JointExperts(ExpertFamily):
    """Several responses, independent given the expert: one member family per column of y
    (flexmix's ``model = list(FLXMRglm(...), ...)``).

    The experts share the gate and the posterior; the log density of a row under expert
    k is the sum over the responses r of ``log f_rk(y_ir | x_i)``, and the M-step is every
    member's M-step on its own column (and its own expert columns) with the shared
    weights ``W``. The parameters are one dict: ``coef`` holds the members' coefficients
    side by side, shape (K, sum_r (d_r + 1)), and member r's dispersion ``key`` is
    ``f"{key}_{r}"``. Each response sees all expert columns, or its own
    (``response_features``, set by the estimators from ``expert_features`` given as one
    list per response). Members have one response column each; no offset (exposure) and
    no shared coefficients.

    Parameters
    ----------
    families : list of str or family
        One family per response (column of y), by name or as a family.
    n_experts : int, default=None
    alpha : float, default=0.0
        The penalty of every member.
    names : list of str, default=None
        Labels of the responses in ``standard_errors``, ``summary`` and ``export_text``;
        ``y0, y1, ...`` by default.
    """

    name = "joint"
    accepts_offset = False

    def __init__(self, families, n_experts=None, alpha=0.0, names=None):
        families = list(families)
        if len(families) < 2:
            raise ValueError(
                "Joint experts need a list of at least two families, one per response; "
                f"got {families!r} (give a single family as expert=family)."
            )
        self.families = families
        self._members = [_member(spec) for spec in families]
        for r, member in enumerate(self._members):
            if member.response_columns != 1 or member.n_responses != 1:
                raise ValueError(
                    f"Joint experts take families of one response column each; family {r} "
                    f"({type(member).__name__}) has {member.response_columns}."
                )
        self.names = [f"y{r}" for r in range(len(families))] if names is None else list(names)
        if len(self.names) != len(families):
            raise ValueError(f"names must give one label per family ({len(families)}).")
        self.response_features = None
        super().__init__(n_experts, alpha)

    def _broadcast(name):
        def set_value(self, value):
            self.__dict__[name] = value
            for member in self.__dict__.get("_members", ()):
                setattr(member, name, value)

        return property(lambda self: self.__dict__.get(name), set_value)

    n_experts = _broadcast("n_experts")
    alpha = _broadcast("alpha")
    max_newton_steps = _broadcast("max_newton_steps")
    del _broadcast

    @property
    def n_shared(self):
        return 0

    @n_shared.setter
    def n_shared(self, value):
        if value:
            raise NotImplementedError(
                "shared_features are not supported with several responses (joint experts)."
            )

    @property
    def n_responses(self):
        return len(self._members)

    @property
    def response_columns(self):
        return len(self._members)

    @property
    def response_columns_hint(self):
        return f"one column per response, for the families {self.families!r}"

    @property
    def positive_only(self):
        return any(member.positive_only for member in self._members)

    @property
    def dispersion_keys(self):
        return tuple(f"{key}_{r}" for r, member in enumerate(self._members)
                     for key in member.dispersion_keys)

    @property
    def dispersion_labels(self):
        return tuple(f"{label}: {name}" for label, member in zip(self.names, self._members)
                     for name in member.dispersion_labels)

    def configure(self, targets=None, response_features=None, **options):
        """Every member's settings from its column's summary (``targets["columns"]``), and
        the expert columns of every response (positions in ``X_expert``; None: all)."""
        columns = (targets or {}).get("columns", [None] * self.n_responses)
        for member, target in zip(self._members, columns):
            member.configure(target, **options)
        if response_features is not None:
            if len(response_features) != self.n_responses:
                raise ValueError(
                    f"expert_features gives {len(response_features)} lists of columns for "
                    f"{self.n_responses} responses ({self.families!r}): give one per response."
                )
            response_features = [np.asarray(c, dtype=np.intp) for c in response_features]
        self.response_features = response_features

    # ------------------------------------------------------------ slicing
    def _widths(self, n_coef):
        """Every response's number of coefficients (intercept included), from the total."""
        if self.response_features is None:
            return [n_coef // self.n_responses] * self.n_responses
        return [len(c) + 1 for c in self.response_features]

    def _columns(self, r):
        return None if self.response_features is None else self.response_features[r]

    def response_parts(self, params):
        """One ``ResponsePart`` per response, its parameters sliced from ``params``."""
        widths = self._widths(params["coef"].shape[-1])
        stops = np.cumsum(widths)
        parts = []
        for r, member in enumerate(self._members):
            own = {"coef": params["coef"][:, stops[r] - widths[r]:stops[r]]}
            own.update({key: params[f"{key}_{r}"] for key in member.dispersion_keys})
            parts.append(ResponsePart(self.names[r], member, self._columns(r), r, own))
        return parts

    def _join(self, member_params):
        """The members' parameters as one dict (``coef`` side by side)."""
        out = {"coef": np.concatenate([p["coef"] for p in member_params], axis=1)}
        for r, (member, p) in enumerate(zip(self._members, member_params)):
            out.update({f"{key}_{r}": p[key] for key in member.dispersion_keys})
        return out

    def _sources(self, source):
        D = source.n_expert_features
        return [
            _ResponseSource(source, self._columns(r), r,
                            D if self._columns(r) is None else len(self._columns(r)))
            for r in range(self.n_responses)
        ]

    def _each(self, method, params, *args):
        """``[member.method(part params, *args)]`` over the responses."""
        return [getattr(p.family, method)(p.params, *args) for p in self.response_parts(params)]

    # ------------------------------------------------------------ protocol
    def missing_capabilities(self, method):
        return list(dict.fromkeys(
            name for member in self._members for name in member.missing_capabilities(method)
        ))

    def check_y(self, y):
        y = np.asarray(y, dtype=float)
        if y.ndim != 2 or y.shape[1] != self.n_responses:
            raise ValueError(
                f"Joint experts of the families {self.families!r} need y of shape "
                f"(n_samples, {self.n_responses}), one column per family; got shape "
                f"{y.shape}."
            )
        for r, member in enumerate(self._members):
            try:
                member.check_y(y[:, r])
            except ValueError as error:
                raise ValueError(f"column {r} of y ({self.names[r]}): {error}") from None
        return y

    def init_target(self, y):
        y = np.asarray(y, dtype=float)
        return np.column_stack([m.init_target(y[:, r]) for r, m in enumerate(self._members)])

    def log_prob(self, X, y, params, offset=None):
        parts = self.response_parts(params)
        out = parts[0].family.log_prob(parts[0].X(X), parts[0].y(y), parts[0].params)
        for p in parts[1:]:
            out += p.family.log_prob(p.X(X), p.y(y), p.params)
        return out

    def mean(self, X, params, offset=None):
        """The experts' means of every response, (K, n, R)."""
        return np.stack([p.family.mean(p.X(X), p.params) for p in self.response_parts(params)],
                        axis=-1)

    def start(self, source):
        return self._join([m.start(s) for m, s in zip(self._members, self._sources(source))])

    def m_step_blocks(self, source, params=None):
        sources = self._sources(source)
        if params is None:
            return self._join([m.m_step_blocks(s, None) for m, s in zip(self._members, sources)])
        return self._join([p.family.m_step_blocks(s, p.params)
                           for p, s in zip(self.response_parts(params), sources)])

    @property
    def newton_gain(self):
        if all(member.newton_gain is None for member in self._members):
            return None

        def gain(source, params):
            total = np.zeros(self.n_experts)
            for p, s in zip(self.response_parts(params), self._sources(source)):
                if p.family.newton_gain is not None:
                    total += p.family.newton_gain(s, p.params)
            return total

        return gain

    def statistics(self, block, params):
        """The members' statistics, each key prefixed by its response (``"r:key"``), and
        the total ``weight``."""
        stats = {"weight": block.weights.sum(axis=1)}
        for p in self.response_parts(params):
            own = p.family.statistics(_response_block(block, p.columns, p.column), p.params)
            stats.update({f"{p.column}:{key}": value for key, value in own.items()})
        return stats

    def solve(self, stats, params, scale=1.0, max_step=None):
        new = []
        for p in self.response_parts(params):
            prefix = f"{p.column}:"
            own = {key[len(prefix):]: value for key, value in stats.items()
                   if key.startswith(prefix)}
            new.append(p.family.solve(own, p.params, scale, max_step))
        return self._join(new)

    def penalty(self, params):
        return sum(self._each("penalty", params))

    def n_parameters(self, params):
        return sum(self._each("n_parameters", params))

    def project(self, params):
        return self._join(self._each("project", params))

    def at_bound(self, params):
        return np.any(self._each("at_bound", params), axis=0)

    def bound_events(self, params):
        return [f"{label}: {event}" for label, events in zip(self.names,
                                                             self._each("bound_events", params))
                for event in events]

    def reported_dispersions(self, params):
        return [value for values in self._each("reported_dispersions", params)
                for value in values]


# ----------------------------------------------------------- shared coefficients
def _shared_layout(coef_shape, n_shared):
    """Positions, in an expert's flattened coefficients on all the columns (``full_coef``,
    class-major for the multinomial), of its own coefficients (intercept first) and of
    the shared ones; and the mask of its own penalised (non-intercept) coefficients."""
    width = coef_shape[-1] + n_shared
    column = np.broadcast_to(np.arange(width), coef_shape[1:-1] + (width,)).ravel()
    own = np.flatnonzero(column < coef_shape[-1])
    return own, np.flatnonzero(column >= coef_shape[-1]), column[own] > 0


def _shared_objective(family, source, params):
    """The penalised weighted log-likelihood summed over experts (the shared coefficients
    couple them); the penalty is on the per-expert slopes only."""
    value = float(np.sum(source.reduce(_glm_value_block, family, params)))
    return value - family.penalty(params)


def _shared_newton(family, source, params):
    """The Newton step in the stacked coefficients ``(b_1, ..., b_K, c)`` from the
    family's ``coefficient_statistics`` summed over the blocks: per expert ``g_k`` and
    ``H_k`` on all its columns, so the joint gradient is ``(g_k[own], sum_k g_k[shared])``
    and the joint matrix has the blocks ``H_k[own, own]``, ``H_k[own, shared]`` and
    ``sum_k H_k[shared, shared]``. Returns the directions of ``coef`` and ``shared`` and
    every expert's share of the predicted gain."""
    grad, hess = source.reduce(family.coefficient_statistics, params)
    coef = params["coef"]
    K = coef.shape[0]
    own, common, penalised = _shared_layout(coef.shape, family.n_shared)
    ridge = (family.alpha * family.penalty_scale(params))[:, None] * penalised
    g = grad[:, own] - ridge * coef.reshape(K, -1)
    p, q = own.size, common.size
    full = np.zeros((K * p + q, K * p + q))
    for k in range(K):  # K small blocks of the (K p + q) system
        full[k * p:(k + 1) * p, k * p:(k + 1) * p] = hess[k][np.ix_(own, own)] + np.diag(ridge[k])
    full[: K * p, K * p:] = hess[:, own][:, :, common].reshape(K * p, q)
    full[K * p:, : K * p] = full[: K * p, K * p:].T
    full[K * p:, K * p:] = hess[:, common][:, :, common].sum(axis=0)
    gradient = np.concatenate([g.ravel(), grad[:, common].sum(axis=0)])
    scale = np.sqrt(np.maximum(np.diag(full), 1e-300))
    step = np.linalg.lstsq(full / scale[:, None] / scale, gradient / scale, rcond=1e-12)[0]
    step /= scale
    gain = 0.5 * step * gradient
    per_expert = gain[: K * p].reshape(K, p).sum(axis=1) + gain[K * p:].sum() / K
    return (step[: K * p].reshape(coef.shape), step[K * p:].reshape(params["shared"].shape),
            per_expert)


def shared_m_step(family, source, params=None):
    """The M-step with coefficients shared by all experts (``family.n_shared`` of them):
    Newton steps with step halving on the joint system of the per-expert and the shared
    coefficients, one ``(K (d + 1) + n_shared)`` weighted least squares / Newton system
    from sums over the row blocks (for Gaussian experts exact given the variances), each
    followed by the dispersions given the means (``update_dispersion``). Every step
    raises the objective (generalised EM); any family with ``coefficient_statistics``."""
    require(family, "shared_features")
    if params is None:
        params = family.start(source)
        n_own = source.n_expert_features - family.n_shared
        coef = params["coef"]
        params["coef"] = coef[..., : n_own + 1].copy()
        params["shared"] = np.zeros(coef.shape[1:-1] + (family.n_shared,))
    params = {key: np.array(value, dtype=float) for key, value in params.items()}
    value = _shared_objective(family, source, params)
    for _ in range(family.max_newton_steps):
        previous = {key: v.copy() for key, v in params.items()}
        d_coef, d_shared, _ = _shared_newton(family, source, params)
        if not np.all(np.isfinite(d_coef)) or not np.all(np.isfinite(d_shared)):
            break
        t = 1.0
        for _ in range(40):
            trial = dict(params, coef=params["coef"] + t * d_coef,
                         shared=params["shared"] + t * d_shared)
            with np.errstate(over="ignore", invalid="ignore"):
                trial_value = _shared_objective(family, source, trial)
            if np.isfinite(trial_value) and trial_value >= value - _NOISE_OBJECTIVE * abs(value):
                params, value = trial, trial_value
                break
            t *= 0.5
        else:
            break
        params = family.update_dispersion(source, params)
        value = _shared_objective(family, source, params)
        if _converged(previous, params, getattr(family, "newton_tol", 1e-10)):
            break
    return params


#: Relative change of an objective within rounding.
_NOISE_OBJECTIVE = 16 * np.finfo(float).eps


def _rss_and_weight_block(block, family, params):
    resid = _response(block) - family.eta(block.X_expert, params)
    resid **= 2
    return np.einsum("ki,ki->k", block.weights, resid), block.weights.sum(axis=1)


def gamma_shape(target, max_shape):
    """Solve ``log v - digamma(v) = target`` (half the mean Gamma deviance) for the shape
    ``v``, vectorised; non-finite targets give 1."""
    target = np.where(np.isfinite(target), np.maximum(target, 1e-300), 1.0)
    # Minka's closed-form start, then Newton with its steps kept within a factor of 10
    shape = (3.0 - target + np.sqrt((target - 3.0) ** 2 + 24.0 * target)) / (12.0 * target)
    shape = np.minimum(shape, max_shape)
    for _ in range(20):
        f = _log_minus_digamma(shape) - target
        fprime = _inverse_minus_trigamma(shape)
        shape = np.clip(shape - f / fprime, shape / 10.0, max_shape)
    return shape


def residual_sum_of_squares(coef, gram, xy, yy):
    """``y'W y - 2 b'X1'W y + b'G b`` per expert, from the sufficient statistics."""
    return yy - 2.0 * np.einsum("kd,kd->k", coef, xy) + np.einsum("kd,kde,ke->k", coef, gram, coef)


class MultinomialExperts(ExpertFamily):
    """Multinomial-logit experts over C classes (y holds class indices 0..C-1).

    Each expert is a symmetric multinomial logit with the penalty ``alpha / 2 ||B_k||^2``
    on all class coefficients, so one expert equals ``LogisticRegression(C=1/alpha)``.
    Batch fits use a matrix-free truncated Newton M-step; ``statistics`` and ``solve`` are
    the quadratic surrogate of ``skmoe._logit.SoftmaxSurrogate`` (exact Hessian).

    Parameters
    ----------
    n_experts : int, default=None
    n_classes : int, default=None
    alpha : float, default=0.0
    """

    name = "multinomial"

    #: Conjugate-gradient iterations per truncated-Newton step (as the gate's; 3 take
    #: half the time on load_digits, but stop EM short of the M-step's optimum when the
    #: objective's change per iteration is the stopping rule).
    max_cg = 10

    _surrogate = _logit.SoftmaxSurrogate("hessian")

    def __init__(self, n_experts=None, n_classes=None, alpha=0.0):
        super().__init__(n_experts, alpha)
        self.n_classes = n_classes

    def check_y(self, y):
        return np.asarray(y, dtype=np.intp)

    def log_prob(self, X, y, params, offset=None):
        log_p = _logit.log_proba(X, self.full_coef(params))[0]
        return log_p[:, y, np.arange(X.shape[0])]

    def coefficient_statistics(self, block, params):
        """Gradient and exact negative Hessian in every expert's class coefficients on all
        the columns (``full_coef``), flattened class-major."""
        coef = self.full_coef(params)
        stats = self._surrogate.statistics(
            block.X_expert, _ClassCounts(self.n_classes)(block), coef
        )
        K = coef.shape[0]
        hessian = stats["curvature"]
        gradient = stats["linear"].reshape(K, -1) - np.einsum(
            "kab,kb->ka", hessian, coef.reshape(K, -1))
        return gradient, hessian

    def start(self, source):
        return {"coef": np.zeros((self.n_experts, self.n_classes,
                                  source.n_expert_features + 1))}

    def score_block(self, block, params):
        """The weighted score ``sum_i W_ki (e_{y_i} - p_k(x_i)) x1_i'`` of one block, per
        expert (K, C, d + 1): the experts' part of the observed gradient (``_direct``)."""
        _, p = _logit.log_proba(block.X_expert, self.full_coef(params))
        p *= -block.weights[:, None, :]
        p += _ClassCounts(self.n_classes)(block)
        return _logit._weighted_sums_3d(block.X_expert, p)

    def statistics(self, block, params):
        return self._surrogate.statistics(
            block.X_expert, _ClassCounts(self.n_classes)(block), params["coef"]
        )

    def solve(self, stats, params, scale=1.0, max_step=None):
        coef = self._surrogate.solve(stats, params["coef"], self.alpha / scale, max_step)
        return {"coef": coef}

    def m_step_blocks(self, source, params=None):
        """Truncated Newton, matrix-free as the gate's, preconditioned by Böhning's bound
        from each expert's weighted Gram matrix (its diagonal for wide designs): no
        ``C (d + 1)`` square Hessian per expert, so many classes scale."""
        if self.n_shared:
            return shared_m_step(self, source, params)
        if is_wide(source.n_expert_features):
            square_sums = source.reduce(_weighted_square_sums_block)
            totals = square_sums[:, 0]
            factor = _logit.diagonal_factor(square_sums, self.alpha)
        else:
            gram = source.reduce(_weighted_gram_block)
            totals = gram[:, 0, 0]
            factor = _logit.bound_factor(gram, self.alpha)
        empty = _empty_experts(totals)
        coef = self.start(source)["coef"] if params is None else params["coef"]
        coef = _logit.maximise_truncated_newton_blocks(
            source, "X_expert", _ClassCounts(self.n_classes), coef, self.alpha, factor,
            max_iter=self.max_newton_steps, max_cg=self.max_cg,
        )
        return _keep_empty_experts({"coef": coef}, params, empty, self.shared_keys)

    def mean(self, X, params, offset=None):
        return _logit.log_proba(X, self.full_coef(params))[1]

    def penalty(self, params):
        return 0.5 * self.alpha * np.sum(params["coef"][..., 1:] ** 2)

    def n_parameters(self, params):
        # one class of every coefficient is redundant (sum-to-zero coding)
        C = params["coef"].shape[1]
        return self.n_coefficients(params) * (C - 1) // C


def start_means(weighted_sum, totals, overall_mean):
    """Every expert's starting mean response: its weighted mean, held from below at 1e-3
    times the overall mean. The floor is relative, so the start (and a log-link fit)
    scales with y whatever its units; an all-zero response (Poisson) starts at 1e-12."""
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = weighted_sum / totals
    floor = 1e-3 * overall_mean if overall_mean > 0 else 1e-12
    return np.where(np.isfinite(mean) & (mean > floor), mean, floor)


def _weight_totals_block(block):
    return block.weights.sum(axis=1)


def _weighted_gram_block(block):
    return block_grams(block, "X_expert", block.weights)


def _weighted_square_sums_block(block):
    return weighted_square_sums(block.X_expert, block.weights)


def _glm_curvature_diagonal_block(block, family, params):
    """Diagonal of every expert's ``X1' diag(W_k * -d2 ll) X1``, (K, d + 1)."""
    eta = family.eta(block.X_expert, params, block.offset)
    neg_d2 = family.derivatives(block.y, eta, params, order=2)[2]
    neg_d2 *= block.weights
    return weighted_square_sums(block.X_expert, neg_d2)


def _glm_tn_evaluate_block(block, family, params):
    """Penalty-free objective summed over experts and its gradient in the coefficients;
    keeps the curvature weights ``W * -d2 ll`` for ``_glm_tn_curvature_block``."""
    X, W = block.X_expert, block.weights
    ll, d1, neg_d2 = family.derivatives(block.y, family.eta(X, params, block.offset), params)
    d1 *= W
    neg_d2 *= W
    return {_CURVATURE: neg_d2}, (float(np.einsum("ki,ki->", W, ll)), weighted_sums(X, d1))


def _glm_tn_curvature_block(block, D):
    A = linear_predictor(block.X_expert, D)
    A *= block.cache[_CURVATURE]
    return weighted_sums(block.X_expert, A)


def _glm_start_block(block, response=False):
    W = block.weights
    y = _response(block) if response else block.y
    offset = 0.0 if block.offset is None else block.offset.sum()
    return W @ y, W.sum(axis=1), y.sum(), float(y.shape[0]), offset


def _glm_value_block(block, family, params):
    log_lik = family.log_prob(block.X_expert, block.y, params, block.offset)
    return np.einsum("ki,ki->k", block.weights, log_lik)


def _glm_system_block(block, family, params):
    """Gradient and negative Hessian (Fisher information for canonical links) of the
    weighted log-likelihood in the coefficients, per expert."""
    X, W = block.X_expert, block.weights
    eta = family.eta(X, params, block.offset)
    _, d1, neg_d2 = family.derivatives(block.y, eta, params, order=2)
    d1 *= W
    neg_d2 *= W
    return weighted_sums(X, d1), block_grams(block, "X_expert", neg_d2)


class _ClassCounts:
    """Soft counts of the multinomial experts: ``S[k, c, i] = W[k, i] [y_i = c]``."""

    def __init__(self, n_classes):
        self.n_classes = n_classes

    def __call__(self, block):
        W, y = block.weights, block.y
        counts = np.zeros((W.shape[0], self.n_classes, W.shape[1]))
        counts[:, y, np.arange(W.shape[1])] = W
        return counts


FAMILIES = {
    "gaussian": GaussianExperts,
    "poisson": PoissonExperts,
    "gamma": GammaExperts,
    "bernoulli": BernoulliExperts,
    "negative_binomial": NegativeBinomialExperts,
    "student_t": StudentTExperts,
    "zero_inflated_poisson": ZeroInflatedPoissonExperts,
    "zero_inflated_negative_binomial": ZeroInflatedNegativeBinomialExperts,
    "binomial": BinomialExperts,
}

#: The values ``expert=`` takes: a name of ``FAMILIES``, a list of them (one per response),
#: or a family instance.
EXPERT_CONSTRAINT = [StrOptions(set(FAMILIES)), HasMethods(["log_prob", "mean", "check_y"]),
                     list, tuple]


def is_family_list(spec):
    """Whether ``expert=spec`` lists one family per response (joint experts)."""
    return isinstance(spec, (list, tuple, np.ndarray))


def make_family(spec, n_experts=None, alpha=0.0, targets=None, **options):
    """The one family factory: the family named ``spec`` (a key of ``FAMILIES``), joint
    experts of the list ``spec`` (one family per response), or a copy of the family
    instance ``spec``, for ``n_experts`` experts with the penalty ``alpha`` and the settings
    that depend on y (``targets``, a summary of y, see ``configure``)."""
    if isinstance(spec, str):
        family = FAMILIES[spec]()
    elif is_family_list(spec):
        family = JointExperts(list(spec))
    else:
        family = copy.deepcopy(spec)
    family.n_experts = n_experts
    family.alpha = float(alpha)
    family.configure(targets, **options)
    return family


def class_family(n_classes, n_experts, alpha=0.0):
    """The family of a classifier over ``n_classes`` labels (encoded 0..C-1): logistic
    experts for two, multinomial-logit experts for more."""
    if n_classes == 2:
        return make_family("bernoulli", n_experts, alpha)
    return MultinomialExperts(n_experts, n_classes, alpha)


def family_key(spec):
    """What identifies the family ``spec`` for warm starts and ``partial_fit``."""
    if is_family_list(spec):
        return tuple(family_key(s) for s in spec)
    if getattr(spec, "families", None) is not None:  # a composite family: its members
        return (type(spec).__qualname__, family_key(list(spec.families)))
    return spec if spec is None or isinstance(spec, str) else type(spec).__qualname__
