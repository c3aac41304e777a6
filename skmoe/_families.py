"""Expert families: the per-sample log-likelihood and weighted M-step of K experts at once.

A family is one object for all K experts. Its parameters are a dict of arrays whose first
axis is the expert: ``coef`` of shape (K, d + 1) (intercept first; (K, C, d + 1) for the
multinomial family) and, for families with one, a per-expert dispersion. Every method is
vectorised over the experts; the only Python loops run over experts inside small solves.

The protocol (see the "Adding an expert family" page of the docs):

- ``check_y(y)`` refuses responses outside the family's support with a clear message;
- ``log_prob(X, y, params, offset)`` -> (K, n) log densities ``log f_k(y_i | x_i)``;
- ``m_step(X, y, W, params, offset)`` -> params maximising (or, for iterative families,
  not lowering) ``sum_i W[k, i] log f_k(y_i | x_i) - penalty_k``, where ``W`` (K, n) is
  sample weight times responsibility; ``params`` may be None (a fit from scratch);
- optionally ``m_step_blocks(source, params)``, the same M-step written as passes over row
  blocks (``skmoe._blocks``), which chunked and distributed fits need; the built-in
  families implement it and their ``m_step`` calls it on one block;
- ``mean(X, params, offset)`` -> (K, n) expert means ((K, C, n) for the multinomial);

Arrays over experts and samples are expert-major, (K, n), as everywhere in skmoe.
- ``penalty(params)`` -> the penalty subtracted from the log-likelihood;
- ``n_parameters(params)`` -> the free parameters counted by BIC and AIC;
- ``distribution(mean, **dispersions)`` -> the frozen ``scipy.stats`` distribution of y
  given an expert, for predictive quantiles and sampling (``dispersion_keys`` names the
  per-expert dispersion parameters it takes).
"""

import numpy as np
from scipy import stats
from scipy.special import digamma, expit, gammaln, log_expit, polygamma

from . import _logit
from ._blocks import one_block
from ._linalg import (
    NEGLIGIBLE_GAIN,
    NEGLIGIBLE_LOSS,
    is_wide,
    linear_predictor,
    penalty_diagonal,
    solve_spd,
    truncated_newton,
    weighted_grams,
    weighted_square_sums,
    weighted_sums,
)
from ._linalg import ROUNDING as _ROUNDING


def _empty_experts(totals):
    """Mask of the experts that hold (numerically) no weight."""
    return totals <= 1e-10 * max(totals.sum(), 1e-300)


def _response(block):
    return block.y if block.offset is None else block.y - block.offset


def _gaussian_stats_block(block):
    X, W, y = block.X_expert, block.cache["W"], _response(block)
    Wy = W * y
    return weighted_grams(X, W), weighted_sums(X, Wy), Wy @ y, W.sum(axis=1)


def _gaussian_rss_block(block, coef):
    resid = _response(block) - linear_predictor(block.X_expert, coef)
    resid **= 2
    return np.einsum("ki,ki->k", block.cache["W"], resid)


class ExpertFamily:
    """Base class: shared parameter counting, prediction and penalty for GLM experts."""

    name = None
    #: Per-expert dispersion parameter (variance, Gamma dispersion) counted by BIC.
    has_dispersion = False

    #: Newton steps per M-step of the iterative families: enough to converge when the
    #: M-step is called alone; EM sets a few (each step raises the objective, so a
    #: partial M-step is a generalised EM step, and the next iteration warm-starts).
    max_newton_steps = 100

    def __init__(self, n_experts, alpha=0.0):
        self.n_experts = n_experts
        self.alpha = float(alpha)

    def check_y(self, y):
        return np.asarray(y, dtype=float)

    def m_step_blocks(self, source, params=None):
        """The M-step on a source of row blocks; by default only one in-memory block."""
        blocks = getattr(source, "blocks", None)
        if blocks is None or len(blocks) != 1:
            raise NotImplementedError(
                f"{type(self).__name__} has no M-step on chunked data; implement "
                "m_step_blocks (see 'Adding an expert family' in the docs)."
            )
        block = blocks[0]
        return self.m_step(block.X_expert, block.y, block.cache["W"], params, block.offset)

    def m_step(self, X, y, W, params=None, offset=None):
        """The M-step on in-memory arrays (``m_step_blocks`` on one block)."""
        source = one_block(X_expert=X, y=y, offset=offset, cache={"W": W})
        return self.m_step_blocks(source, params)

    def eta(self, X, params, offset=None):
        eta = linear_predictor(X, params["coef"])
        if offset is not None:
            eta += offset
        return eta

    def penalty(self, params):
        return 0.5 * self.alpha * np.sum(params["coef"][:, 1:] ** 2)

    def n_parameters(self, params):
        return params["coef"].size + (self.n_experts if self.has_dispersion else 0)

    def coef_penalty(self, n_coef):
        return np.diag(penalty_diagonal(n_coef, self.alpha))

    def project(self, params):
        """The nearest admissible parameters (e.g. dispersions held at their bounds), for
        points that did not come from an M-step (EM acceleration)."""
        return params

    def at_bound(self, params):
        """Experts whose dispersion is held at its bound (a degenerate fit), (K,) bool."""
        return np.zeros(self.n_experts, dtype=bool)

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

    #: Per-expert parameters, besides the coefficients, that ``distribution`` takes.
    dispersion_keys = ()

    #: Iterative families: ``newton_gain(source, params)``, per expert the gain one more
    #: Newton step of the M-step predicts on the weights ``W`` kept in the blocks (zero at
    #: its maximum), by which a fit that stopped far from it, at its start, is found.
    #: None for closed-form M-steps.
    newton_gain = None


class GaussianExperts(ExpertFamily):
    """Linear experts with Gaussian noise and one variance per expert.

    The penalty is ``alpha ||b_k||^2 / (2 s_k^2)`` (a ridge on the residual scale), so the
    M-step is closed-form: the coefficients are sklearn's weighted ``Ridge(alpha)`` fit and
    ``s_k^2 = (RSS_k + alpha ||b_k||^2) / N_k``, held at ``variance_floor`` from below.
    """

    name = "gaussian"
    has_dispersion = True

    def __init__(self, n_experts, alpha=0.0, variance_floor=1e-12):
        super().__init__(n_experts, alpha)
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

    def penalty_scale(self, params):
        return 1.0 / params["variance"]

    def m_step_blocks(self, source, params=None):
        if is_wide(source.n_expert_features):
            return self._m_step_wide(source, params)
        gram, xy, yy, totals = source.reduce(_gaussian_stats_block)
        empty = _empty_experts(totals)
        coef = solve_spd(gram + self.coef_penalty(gram.shape[-1]), xy)
        # RSS_k = y'W_k y - 2 b_k'X'W_k y + b_k'G_k b_k from the same sums (no pass over
        # the data), unless cancellation would cost more than 6 of the 16 digits
        rss = residual_sum_of_squares(coef, gram, xy, yy)
        if np.any(rss <= 1e-6 * yy):
            rss = source.reduce(_gaussian_rss_block, coef)
        rss += self.alpha * np.sum(coef[:, 1:] ** 2, axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            variance = np.maximum(rss / totals, self.variance_floor)
        new = {"coef": coef, "variance": variance}
        return _keep_empty_experts(new, params, empty)

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
        with np.errstate(invalid="ignore", divide="ignore"):
            new["variance"] = np.maximum(rss / totals, self.variance_floor)
        return _keep_empty_experts(new, params, empty)

    def mean(self, X, params, offset=None):
        return self.eta(X, params, offset)

    def project(self, params):
        return dict(params, variance=np.maximum(params["variance"], self.variance_floor))

    def at_bound(self, params):
        return params["variance"] <= self.variance_floor * (1 + 1e-12)

    dispersion_keys = ("variance",)

    @staticmethod
    def distribution(mean, variance):
        return stats.norm(loc=mean, scale=np.sqrt(variance))

    def penalty(self, params):
        sq = np.sum(params["coef"][:, 1:] ** 2, axis=1)
        return 0.5 * self.alpha * np.sum(sq / params["variance"])


def _converged(old, new, tol):
    """No parameter moved by more than ``tol`` relative to its size."""
    return all(
        np.max(np.abs(new[key] - old[key]), initial=0.0)
        <= tol * (1.0 + np.max(np.abs(new[key]), initial=0.0))
        for key in new
    )


def _keep_empty_experts(new, old, empty):
    """Experts with no weight keep their previous parameters (their M-step is undefined)."""
    if not empty.any():
        return new
    for key, value in new.items():
        if old is not None:
            value[empty] = old[key][empty]
        elif key == "coef":
            value[empty] = 0.0
        else:
            value[empty] = np.mean(value[~empty]) if (~empty).any() else 1.0
    return new


class _NewtonGLMExperts(ExpertFamily):
    """GLM experts fitted by Newton's method with step halving, all experts at once.

    Subclasses give the per-sample log-likelihood and its first two derivatives in the
    linear predictor ``eta`` (``derivatives``). With a concave log-likelihood in ``eta``
    each Newton step is an ascent direction; step halving makes every step non-decreasing.
    """

    #: Newton stops when no coefficient or dispersion moves by more than this (relative).
    newton_tol = 1e-10

    def log_prob(self, X, y, params, offset=None):
        return self.derivatives(y, self.eta(X, params, offset), params, order=0)[0]

    def start(self, source):
        """Intercept-only starting point at the weighted mean response (one pass)."""
        w_y, totals, sum_y, n, sum_offset = source.reduce(_glm_start_block)
        coef = np.zeros((self.n_experts, source.n_expert_features + 1))
        coef[:, 0] = self.link(start_means(w_y, totals, sum_y / n))
        coef[:, 0] -= sum_offset / n
        return self.update_dispersion(source, {"coef": coef})

    def update_dispersion(self, source, params):
        return params

    def expert_objective(self, source, params):
        """Penalised weighted log-likelihood of every expert, (K,): one pass."""
        value = source.reduce(_glm_value_block, self, params)
        return value - 0.5 * self.alpha * np.sum(params["coef"][:, 1:] ** 2, axis=1)

    def m_step_blocks(self, source, params=None):
        totals = source.reduce(_weight_totals_block)
        empty = _empty_experts(totals)
        if params is None:
            params = self.start(source)
        params = {key: value.copy() for key, value in params.items()}
        if is_wide(source.n_expert_features):
            new = self.matrix_free_coef(source, params, self.max_newton_steps)
            new["coef"][empty] = params["coef"][empty]
            return self.update_dispersion(source, new) if self.has_dispersion else new
        value = self.expert_objective(source, params)
        for _ in range(self.max_newton_steps):
            previous = {key: value.copy() for key, value in params.items()}
            coef = params["coef"]
            grad, hess = source.reduce(_glm_system_block, self, params)
            grad[:, 1:] -= self.alpha * coef[:, 1:]
            direction = solve_spd(hess + self.coef_penalty(coef.shape[1]), grad)
            # a gain under 1e-12 nats per unit weight is taken whole (see NEGLIGIBLE_GAIN);
            # not with a dispersion: a Gamma shape near its bound makes the objective's
            # rounding noise large, and only the line search keeps it from wandering
            negligible = (np.einsum("kd,kd->k", grad, direction)
                          <= NEGLIGIBLE_GAIN * totals) & (not self.has_dispersion)
            step = np.ones(self.n_experts)
            active = ~empty
            for _halving in range(40):
                trial = dict(params, coef=coef + step[:, None] * direction)
                with np.errstate(over="ignore", invalid="ignore"):
                    trial_value = self.expert_objective(source, trial)
                accept = active & (
                    (trial_value >= value - _ROUNDING * np.abs(value))
                    | (negligible & (step == 1.0)
                       & (trial_value >= value - NEGLIGIBLE_LOSS * (np.abs(value) + 1.0)))
                )
                coef[accept] = trial["coef"][accept]
                value = np.where(accept, trial_value, value)
                active &= ~accept
                if not active.any():
                    break
                step[active] *= 0.5
            if self.has_dispersion:
                params = self.update_dispersion(source, params)
                value = self.expert_objective(source, params)
            if _converged(previous, params, self.newton_tol):
                break
        return params

    def newton_gain(self, source, params):
        grad, hess = source.reduce(_glm_system_block, self, params)
        grad[:, 1:] -= self.alpha * params["coef"][:, 1:]
        direction = solve_spd(hess + self.coef_penalty(grad.shape[1]), grad)
        with np.errstate(invalid="ignore"):
            return 0.5 * np.einsum("kd,kd->k", grad, direction)

    def mean(self, X, params, offset=None):
        return self.inverse_link(self.eta(X, params, offset))


class PoissonExperts(_NewtonGLMExperts):
    """Poisson experts with a log link; ``offset`` is the log of the exposure."""

    name = "poisson"
    link = staticmethod(np.log)
    inverse_link = staticmethod(np.exp)

    def check_y(self, y):
        y = np.asarray(y, dtype=float)
        if np.any(y < 0):
            raise ValueError("Poisson experts need non-negative counts; y has negative values.")
        return y

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


class GammaExperts(_NewtonGLMExperts):
    """Gamma experts with a log link and one ML dispersion (1 / shape) per expert."""

    name = "gamma"
    has_dispersion = True
    link = staticmethod(np.log)
    inverse_link = staticmethod(np.exp)
    #: Upper bound on the shape (lower bound on the dispersion) for exact fits.
    max_shape = 1e10

    def check_y(self, y):
        y = np.asarray(y, dtype=float)
        if np.any(y <= 0):
            raise ValueError("Gamma experts need a strictly positive response; y has values <= 0.")
        return y

    dispersion_keys = ("dispersion",)

    def project(self, params):
        return dict(params, dispersion=np.maximum(params["dispersion"], 1.0 / self.max_shape))

    def at_bound(self, params):
        return params["dispersion"] <= (1 + 1e-12) / self.max_shape

    @staticmethod
    def distribution(mean, dispersion):
        return stats.gamma(a=1.0 / dispersion, scale=mean * dispersion)

    def derivatives(self, y, eta, params, order=2):
        shape = (1.0 / params["dispersion"])[:, None]
        ratio = y * np.exp(-eta)
        ll = shape * (np.log(shape) - eta - ratio) + (shape - 1.0) * np.log(y) - gammaln(shape)
        if order == 0:
            return (ll,)
        return ll, shape * (ratio - 1.0), shape * ratio

    def update_dispersion(self, source, params):
        """Exact ML shape given the means: solve ``log v - digamma(v) = mean deviance / 2``
        (one pass)."""
        deviance, totals = source.reduce(_gamma_deviance_block, self, params)
        empty = _empty_experts(totals)
        with np.errstate(invalid="ignore", divide="ignore"):
            target = deviance / totals
        target = np.where(empty, 1.0, target)
        dispersion = 1.0 / gamma_shape(target, self.max_shape)
        if "dispersion" in params:
            dispersion[empty] = params["dispersion"][empty]
        return dict(params, dispersion=dispersion)


def gamma_shape(target, max_shape):
    """Solve ``log v - digamma(v) = target`` (half the mean Gamma deviance) for the shape
    ``v``, vectorised; non-finite targets give 1."""
    target = np.where(np.isfinite(target), np.maximum(target, 1e-300), 1.0)
    # Minka's closed-form start, then Newton with its steps kept within a factor of 10
    shape = (3.0 - target + np.sqrt((target - 3.0) ** 2 + 24.0 * target)) / (12.0 * target)
    shape = np.minimum(shape, max_shape)
    for _ in range(20):
        f = np.log(shape) - digamma(shape) - target
        fprime = 1.0 / shape - polygamma(1, shape)
        shape = np.clip(shape - f / fprime, shape / 10.0, max_shape)
    return shape


def residual_sum_of_squares(coef, gram, xy, yy):
    """``y'W y - 2 b'X1'W y + b'G b`` per expert, from the sufficient statistics."""
    return yy - 2.0 * np.einsum("kd,kd->k", coef, xy) + np.einsum("kd,kde,ke->k", coef, gram, coef)


class MultinomialExperts(ExpertFamily):
    """Multinomial-logit experts over C classes (y holds class indices 0..C-1).

    Each expert is a symmetric multinomial logit with the penalty ``alpha / 2 ||B_k||^2``
    on all class coefficients, so one expert equals ``LogisticRegression(C=1/alpha)``.
    """

    name = "multinomial"

    #: Conjugate-gradient iterations per truncated-Newton step (as the gate's; 3 take
    #: half the time on load_digits, but stop EM short of the M-step's optimum when the
    #: objective's change per iteration is the stopping rule).
    max_cg = 10

    def __init__(self, n_experts, n_classes, alpha=0.0):
        super().__init__(n_experts, alpha)
        self.n_classes = n_classes

    def check_y(self, y):
        return np.asarray(y, dtype=np.intp)

    def log_prob(self, X, y, params, offset=None):
        log_p = _logit.log_proba(X, params["coef"])[0]
        return log_p[:, y, np.arange(X.shape[0])]

    def m_step_blocks(self, source, params=None):
        """Truncated Newton, matrix-free as the gate's, preconditioned by Böhning's bound
        from each expert's weighted Gram matrix (its diagonal for wide designs): no
        ``C (d + 1)`` square Hessian per expert, so many classes scale."""
        if is_wide(source.n_expert_features):
            square_sums = source.reduce(_weighted_square_sums_block)
            totals = square_sums[:, 0]
            factor = _logit.diagonal_factor(square_sums, self.alpha)
        else:
            gram = source.reduce(_weighted_gram_block)
            totals = gram[:, 0, 0]
            factor = _logit.bound_factor(gram, self.alpha)
        empty = _empty_experts(totals)
        if params is None:
            coef = np.zeros((self.n_experts, self.n_classes, source.n_expert_features + 1))
        else:
            coef = params["coef"]
        coef = _logit.maximise_truncated_newton_blocks(
            source, "X_expert", _ClassCounts(self.n_classes), coef, self.alpha, factor,
            max_iter=self.max_newton_steps, max_cg=self.max_cg,
        )
        return _keep_empty_experts({"coef": coef}, params, empty)

    def mean(self, X, params, offset=None):
        return _logit.log_proba(X, params["coef"])[1]

    def penalty(self, params):
        return 0.5 * self.alpha * np.sum(params["coef"][..., 1:] ** 2)

    def n_parameters(self, params):
        K, C, d1 = params["coef"].shape
        return K * (C - 1) * d1


def start_means(weighted_sum, totals, overall_mean):
    """Every expert's starting mean response: its weighted mean, held from below at 1e-3
    times the overall mean. The floor is relative, so the start (and a log-link fit)
    scales with y whatever its units; an all-zero response (Poisson) starts at 1e-12."""
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = weighted_sum / totals
    floor = 1e-3 * overall_mean if overall_mean > 0 else 1e-12
    return np.where(np.isfinite(mean) & (mean > floor), mean, floor)


def _weight_totals_block(block):
    return block.cache["W"].sum(axis=1)


def _weighted_gram_block(block):
    return weighted_grams(block.X_expert, block.cache["W"])


def _weighted_square_sums_block(block):
    return weighted_square_sums(block.X_expert, block.cache["W"])


def _glm_curvature_diagonal_block(block, family, params):
    """Diagonal of every expert's ``X1' diag(W_k * -d2 ll) X1``, (K, d + 1)."""
    eta = family.eta(block.X_expert, params, block.offset)
    neg_d2 = family.derivatives(block.y, eta, params, order=2)[2]
    neg_d2 *= block.cache["W"]
    return weighted_square_sums(block.X_expert, neg_d2)


def _glm_tn_evaluate_block(block, family, params):
    """Penalty-free objective summed over experts and its gradient in the coefficients;
    keeps the curvature weights ``W * -d2 ll`` for ``_glm_tn_curvature_block``."""
    X, W = block.X_expert, block.cache["W"]
    ll, d1, neg_d2 = family.derivatives(block.y, family.eta(X, params, block.offset), params)
    d1 *= W
    neg_d2 *= W
    return {"glm_curvature": neg_d2}, (float(np.einsum("ki,ki->", W, ll)), weighted_sums(X, d1))


def _glm_tn_curvature_block(block, D):
    A = linear_predictor(block.X_expert, D)
    A *= block.cache["glm_curvature"]
    return weighted_sums(block.X_expert, A)


def _glm_start_block(block, response=False):
    W = block.cache["W"]
    y = _response(block) if response else block.y
    offset = 0.0 if block.offset is None else block.offset.sum()
    return W @ y, W.sum(axis=1), y.sum(), float(y.shape[0]), offset


def _glm_value_block(block, family, params):
    log_lik = family.log_prob(block.X_expert, block.y, params, block.offset)
    return np.einsum("ki,ki->k", block.cache["W"], log_lik)


def _glm_system_block(block, family, params):
    """Gradient and negative Hessian (Fisher information for canonical links) of the
    weighted log-likelihood in the coefficients, per expert."""
    X, W = block.X_expert, block.cache["W"]
    eta = family.eta(X, params, block.offset)
    _, d1, neg_d2 = family.derivatives(block.y, eta, params, order=2)
    d1 *= W
    neg_d2 *= W
    return weighted_sums(X, d1), weighted_grams(X, neg_d2)


def _gamma_deviance_block(block, family, params):
    W = block.cache["W"]
    ratio = block.y * np.exp(-family.eta(block.X_expert, params, block.offset))
    return np.einsum("ki,ki->k", W, ratio - np.log(ratio) - 1.0), W.sum(axis=1)


class _ClassCounts:
    """Soft counts of the multinomial experts: ``S[k, c, i] = W[k, i] [y_i = c]``."""

    def __init__(self, n_classes):
        self.n_classes = n_classes

    def __call__(self, block):
        W, y = block.cache["W"], block.y
        counts = np.zeros((W.shape[0], self.n_classes, W.shape[1]))
        counts[:, y, np.arange(W.shape[1])] = W
        return counts


FAMILIES = {
    "gaussian": GaussianExperts,
    "poisson": PoissonExperts,
    "gamma": GammaExperts,
    "bernoulli": BernoulliExperts,
}
