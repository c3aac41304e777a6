"""The EM engine: a convergence monitor, the flat mixture-of-experts model and the loop.

The loop is generic: a model supplies ``e_step(data, params)`` (per-sample log-likelihood
and posteriors), ``m_step(data, posteriors, params)`` and ``penalty(params)``. The penalised
log-likelihood it monitors never decreases, because every M-step maximises, or does not
lower, its part of the expected complete-data objective (generalised EM).
"""

import os
import sys
import warnings

import numpy as np

from . import _direct
from ._blocks import (
    WEIGHT_GRAMS,
    WEIGHTS,
    Block,
    InMemoryBlocks,
    keep_row_products,
    kept_row_products,
)
from ._linalg import (
    BLOCK_ROWS,
    is_wide,
    log_sum_exp,
    normalise_log,
    row_blocks,
    weighted_grams,
)

#: The arrays of one fit (or of one block of its rows).
EMData = Block

#: Key of the gate's preconditioner in a source's cache (owned by this module).
_GATE_PRECONDITIONER = "gate_preconditioner"
#: The gates' M-step start computed by the E-step, with the gate parameters it is at.
_GATE_START = "gate_start"
#: The groups' rows of the gates' M-step of a grouped model.
_GROUP_ROWS = "group_rows"


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def _internal(filename):
    """skmoe's own frames and scikit-learn's ``fit`` wrapper (``sklearn/base.py``)."""
    path = os.path.abspath(filename)
    return path.startswith(_PACKAGE_DIR + os.sep) or path.endswith(
        os.path.join("sklearn", "base.py")
    )


def warn(message, category):
    """``warnings.warn`` attributed to the first caller outside skmoe (the user's ``fit``)."""
    frame, level = sys._getframe(1), 1
    while frame is not None and _internal(frame.f_code.co_filename):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level + 1 if frame is not None else 2)


#: Relative size of objective changes that rounding alone can produce.
_NOISE = 16 * np.finfo(float).eps

#: Contraction ratios of successive objective changes that Aitken's rate bounds. An
#: accelerated sequence climbs unevenly (a SQUAREM cycle whose extrapolation is taken
#: gains ten times its neighbours), so two ratios can both be small while the climb goes
#: on: on sklearn's sample-weight check the hierarchical classifier stopped 50 times its
#: tolerance below its limit.
_AITKEN_RATIOS = 3

#: Iterations over which a sequence that Aitken's rate cannot bound (``remaining`` is
#: infinite) must gain at most ``tol`` per unit of weight to count as converged.
_FLAT_WINDOW = 10


class ConvergenceMonitor:
    """Tracks the penalised objective and decides convergence.

    ``tol`` bounds the estimated distance to the limit, per unit of sample weight (so it
    does not scale with n). The distance is Aitken's estimate from the last changes
    ``d_t`` of the objective: with the contraction rate ``a = d_t / d_{t-1}`` (the largest
    of the last three ratios), the remaining climb is ``d_t a / (1 - a)`` (Böhning et al.
    1994; McNicholas et al. 2010). A sequence that does not contract (``a >= 1``, or a
    change that is not positive) is converged only once it has gained at most ``tol`` over
    its last ``_FLAT_WINDOW`` iterations, the later half no more than twice the earlier
    (not a climb that speeds up, as away from a saddle): a SQUAREM run in a basin whose
    objective still creeps up (a gate coefficient drifting out, gains that alternate
    between 2e-9 and 2e-8 per sample for a hundred cycles) would otherwise run on with no
    gain that ``tol`` can see. An objective constant to rounding (two changes
    below 16 machine epsilons of its value) is a fixed point and stops EM whatever ``tol`` is. A
    decrease larger than rounding is reported by a warning: it would mean a broken M-step.

    ``verbose=2`` prints every iteration (the objective, its per-sample change and the
    estimated per-sample distance to the limit, against ``tol``).

    ``floor``, an objective the run must reach by ``max_iter`` to be of use (a search run
    against the best run so far), makes ``out_of_reach`` true once it cannot, judged from
    iteration ``patience`` on.
    """

    def __init__(self, tol, max_iter, total_weight, verbose=0, stream=None, floor=-np.inf,
                 patience=3):
        self.tol = tol
        self.max_iter = max_iter
        self.total_weight = total_weight
        self.verbose = verbose
        self.stream = stream if stream is not None else sys.stdout
        self.floor = floor
        self.patience = max(patience, 3)
        self.history = []

    def report(self, objective):
        if self.history:
            delta = objective - self.history[-1]
            if delta < -1e-9 * max(1.0, abs(objective)):
                warn(
                    f"EM objective decreased by {-delta:.3g} at iteration {len(self.history)}.",
                    RuntimeWarning,
                )
        self.history.append(objective)
        if self.verbose >= 2:
            changes = np.diff(self.history[-2:]) / self.total_weight
            change = changes[-1] if changes.size else np.nan
            print(
                f"    iteration {len(self.history) - 1:4d}  objective {objective: .10e}  "
                f"change/n {change: .2e}  distance/n {self.remaining():.2e}  "
                f"(tol {self.tol:.0e})",
                file=self.stream,
            )

    def remaining(self):
        """Aitken's estimate of the objective's remaining climb, per unit of weight."""
        changes = np.diff(self.history[-(_AITKEN_RATIOS + 2):])
        if changes.size < 2:
            return np.inf
        # changes within rounding of the objective cannot be told apart from 0
        noise = _NOISE * max(abs(self.history[-1]), 1.0)
        if abs(changes[-1]) <= noise and abs(changes[-2]) <= noise:
            return 0.0
        with np.errstate(divide="ignore", invalid="ignore"):
            rates = changes[1:] / changes[:-1]
        rate = np.max(rates)
        if not (np.all(changes[:-1] > 0) and 0.0 <= rate < 1.0):
            return np.inf
        return changes[-1] * rate / (1.0 - rate) / self.total_weight

    @property
    def converged(self):
        if len(self.history) < 3:
            return False
        last = abs(self.history[-1] - self.history[-2])
        noise = _NOISE * max(abs(self.history[-1]), 1.0)
        if last > max(self.tol * self.total_weight, noise):
            return False
        remaining = self.remaining()
        return remaining <= self.tol or (remaining == np.inf and self._flat())

    def _flat(self):
        """Whether the last ``_FLAT_WINDOW`` iterations gained at most ``tol`` per unit of
        weight in all, at a pace that does not grow (the later half's gain at most twice
        the earlier half's)."""
        if len(self.history) <= _FLAT_WINDOW:
            return False
        changes = np.diff(self.history[-(_FLAT_WINDOW + 1):])
        earlier, later = changes[:_FLAT_WINDOW // 2].sum(), changes[_FLAT_WINDOW // 2:].sum()
        return earlier + later <= self.tol * self.total_weight and later <= 2 * max(earlier, 0.0)

    @property
    def out_of_reach(self):
        """Whether the objective stays below ``floor`` at ``max_iter`` if it keeps climbing
        at the largest of its last three changes, once these shrink. Near a fixed point
        EM's changes shrink, so this stops early a run that would end below the floor
        anyway; a run leaving a saddle (changes that grow, as from a random start near the
        symmetric point) goes on, and so does one whose climb would reach the floor after a
        lull shorter than three changes."""
        if len(self.history) <= self.patience or self.floor == -np.inf:
            return False
        changes = np.diff(self.history[-4:])
        if not np.all(changes[1:] <= changes[:-1]):
            return False
        left = self.max_iter - (len(self.history) - 1)
        return self.history[-1] + left * max(changes[0], 0.0) < self.floor


class MixtureOfExpertsModel:
    """Experts of one family at the leaves of a tree of softmax gates.

    The flat mixture of experts is the tree of depth 1; the hierarchical one is deeper.
    """

    def __init__(self, family, gate):
        self.family = family
        self.gate = gate

    def log_joint(self, data, params):
        """``log prior_k(x) + log f_k(y | x)`` for every expert k, shape (K, n)."""
        joint = self.family.log_prob(data.X_expert, data.y, params["experts"], data.offset)
        joint += self.gate.log_prob(data.X_gate, params["gate"])
        return joint

    def e_step(self, data, params):
        """Per-sample log-likelihood (n,) and expert (leaf) posteriors (K, n).

        The posterior of an inner node is the sum of its leaves' posteriors, so the
        gates' M-step needs no other E-step quantity.
        """
        joint = self.log_joint(data, params)
        return normalise_log(joint), joint

    def unit_e_step(self, data, params):
        """The E-step per independent unit of ``data`` (here a row): their weights, their
        log-likelihoods and their posteriors (K, n_units)."""
        return (data.sample_weight, *self.e_step(data, params))

    def e_pass(self, source, params):
        """The E-step over every block, keeping ``W`` = sample weight times posterior in each
        block's cache; returns the weighted log-likelihood and the leaves' masses (K,).

        The same pass computes the gates' M-step start at ``params`` (its first evaluation:
        the E-step's gate probabilities are those at the coefficients the M-step starts
        from), kept in ``source.cache[_GATE_START]`` for ``m_step_blocks`` of the same
        ``params``.
        """
        hessian = getattr(source, "costly_passes", False)
        log_lik, mass, *gate_start = source.update(_e_step_block, self, params, hessian)
        source.cache[_GATE_START] = (params["gate"], gate_start)
        return log_lik, mass

    def m_step(self, data, resp, params):
        """``m_step_blocks`` on in-memory arrays and posteriors ``resp`` (K, n)."""
        source = InMemoryBlocks([data.with_weights(resp * data.sample_weight)])
        return self.m_step_blocks(source, params)

    def m_step_blocks(self, source, params):
        """Refit the experts and the gates on the posteriors kept in the blocks' caches."""
        products = self._row_products(source)
        start = _gate_start(source, params)
        if products is not None and start is not None and len(start) == 3:
            start = self._with_gate_hessian(source, start, products)
        try:
            experts = self.family.m_step_blocks(
                source, None if params is None else params["experts"])
        finally:
            for block in getattr(source, "blocks", None) or ():
                block.cache.pop(WEIGHT_GRAMS, None)
        return {"gate": self._gate_m_step(source, params, start), "experts": experts}

    def _fuses_weight_grams(self, source):
        """Whether the experts read the Grams of ``W`` on the gates' design."""
        return self.family.reads_weight_grams and not is_wide(source.n_expert_features)

    def _row_products(self, source):
        """The kept ``row_products`` of the gates' design, one per in-memory block, when
        they fit and the gates' Hessian from them pays (else None). Kept from the first
        M-step on a source, before any product reads them, so that every restart on the
        same rows takes the same products, in any order and in any process."""
        blocks = getattr(source, "blocks", None)
        if not blocks or getattr(source, "costly_passes", False):
            return None
        if not _gate_hessian_pays(self.gate.n_pair_weights, self.gate.n_leaves,
                                  source.n_gate_features):
            return None
        products = [keep_row_products(block, "X_gate") for block in blocks]
        return None if any(p is None for p in products) else products

    def _with_gate_hessian(self, source, start, products):
        """The gates' M-step start with their Hessian blocks at the E-step's coefficients,
        from the kept ``row_products`` of in-memory rows.

        The conjugate-gradient steps are then products with that small matrix, not passes
        over the data (the same steps up to rounding). When the experts read the Grams
        of ``W`` on the same design (Gaussian experts), these come from the same product
        (``WEIGHT_GRAMS``): one pass over the row products for both.
        """
        fused = self._fuses_weight_grams(source)
        grams = 0.0
        for block, kept in zip(source.blocks, products):
            if fused and kept_row_products(block, "X_expert") is kept:
                W = block.weights
                stacked = np.empty((W.shape[0] + self.gate.n_pair_weights, W.shape[1]))
                stacked[: W.shape[0]] = W
                self.gate.kept_pair_weights(block.cache, out=stacked[W.shape[0]:])
                part = weighted_grams(block.X_gate, stacked, kept)
                block.cache[WEIGHT_GRAMS] = (block.X_expert, part[: W.shape[0]])
                part = part[W.shape[0]:]
            else:
                part = weighted_grams(block.X_gate, self.gate.kept_pair_weights(block.cache),
                                      kept)
            grams = grams + part
        return (*start, self.gate.pair_blocks(grams))

    def _gate_m_step(self, source, params, start=None):
        """The gates' M-step on the rows of ``source`` and the weights in its blocks."""
        # the gate's preconditioner, from the weights of the source's first M-step: any
        # positive definite one keeps the M-step exact, a close one makes it fast
        if _GATE_PRECONDITIONER not in source.cache:
            source.cache[_GATE_PRECONDITIONER] = self.gate.preconditioner(source)
        if params is None:
            V = self.gate.initial_coef(np.empty((0, source.n_gate_features)))
        else:
            V = params["gate"]
        return self.gate.m_step_blocks(source, V, source.cache[_GATE_PRECONDITIONER], start)

    def gate_rows(self, X_gate, W):
        """The rows of the gates' M-step and their weights: here every row, with ``W``."""
        return X_gate, W

    def grouped(self, starts, n_rows):
        """The same model on rows sorted by group, ``starts`` the first row of each."""
        return GroupedMixtureOfExpertsModel(self.family, self.gate, starts, n_rows)

    def penalty(self, params):
        return self.gate.penalty(params["gate"]) + self.family.penalty(params["experts"])

    def n_parameters(self, params):
        return self.gate.n_parameters(params["gate"]) + self.family.n_parameters(params["experts"])

    def canonical(self, params, leaf_mass):
        """The same model with the children of every gate ordered by decreasing mass, and
        the new position of every expert (old index of the expert now at each position)."""
        order = self.gate.canonical_order(leaf_mass)
        return {
            "gate": self.gate.permute(params["gate"], order),
            "experts": self.family.take_experts(params["experts"], order[-1]),
        }, order[-1]


class GroupedMixtureOfExpertsModel(MixtureOfExpertsModel):
    """A mixture of experts whose rows come in groups that share one latent expert
    (flexmix's ``y ~ x | g``): a group's component log-densities are summed before
    mixing, so the posterior and the E-step are per group.

    The rows of the one in-memory block are sorted by group; ``starts`` are the first
    row of every group. The sums over a group's rows are one ``np.add.reduceat`` (no
    loop over groups). The gate is evaluated on each group's first row (its gate
    features are constant within the group), and its M-step runs on one row per group
    weighted by the group's mean ``W``, so that it counts every group once.
    """

    def __init__(self, family, gate, starts, n_rows):
        super().__init__(family, gate)
        self.starts = np.asarray(starts, dtype=np.intp)
        self.sizes = np.diff(np.r_[self.starts, n_rows])
        self.row_group = np.repeat(np.arange(self.starts.size), self.sizes)
        self.blocks = group_blocks(self.starts, n_rows)

    def _terms(self, data, params):
        """Row log-densities (K, n) and the groups' log gate (K, n_groups)."""
        rows = self.family.log_prob(data.X_expert, data.y, params["experts"], data.offset)
        return rows, self.gate.log_prob(data.X_gate[self.starts], params["gate"])

    @staticmethod
    def _normalise(joint):
        return normalise_log(joint), joint

    def group_e_step(self, data, params):
        """Per-group log-likelihood (n_groups,) and posteriors (K, n_groups)."""
        rows, log_gate = self._terms(data, params)
        return self._normalise(np.add.reduceat(rows, self.starts, axis=1) + log_gate)

    def e_step(self, data, params):
        """Per row: ``log p(y_i | x_i, the earlier rows of its group)`` (n,), which sum
        over a group to its log-likelihood, and the group's posterior (K, n)."""
        rows, log_gate = self._terms(data, params)
        log_lik, post = self._normalise(np.add.reduceat(rows, self.starts, axis=1) + log_gate)
        # the log-likelihood of every prefix of a group: cumulative sums within groups
        prefix = np.cumsum(rows, axis=1)
        before = np.zeros_like(log_gate)
        before[:, 1:] = prefix[:, self.starts[1:] - 1]
        prefix += (log_gate - before)[:, self.row_group]
        prefix = log_sum_exp(prefix, axis=0)
        prefix[np.r_[self.starts[1:], prefix.size] - 1] = log_lik  # whole groups, summed exactly
        row_log_lik = np.diff(prefix, prepend=0.0)
        row_log_lik[self.starts] = prefix[self.starts]
        return row_log_lik, np.take(post, self.row_group, axis=1)

    def unit_e_step(self, data, params):
        """The E-step per group: the groups' weights, log-likelihoods and posteriors."""
        return (data.sample_weight[self.starts], *self.group_e_step(data, params))

    def _groups(self, source):
        """The gates' rows, one per group, as a source kept in ``source``'s cache (with
        the gates' state beside them)."""
        groups = source.cache.get(_GROUP_ROWS)
        if groups is None:
            (block,) = source.blocks
            groups = source.cache[_GROUP_ROWS] = InMemoryBlocks([Block(
                X_gate=block.X_gate[self.starts], sample_weight=block.sample_weight[self.starts]
            )])
        return groups

    def e_pass(self, source, params):
        """The grouped E-step in blocks of whole groups (as ``_e_step_block``, so that its
        temporaries stay in cache): ``W`` of the rows (their group's posterior times their
        weight) and of the groups for the gates, with the gates' M-step start."""
        (block,) = source.blocks
        (groups,) = self._groups(source).blocks
        W = _reused(block.cache, (self.gate.n_leaves, block.n_rows))
        W_groups = _reused(groups.cache, (self.gate.n_leaves, self.starts.size))
        state = self.gate.start_state(groups.cache, W_groups)
        log_lik, gate_start = 0.0, 0.0
        for rows, units in self.blocks:
            part = block.take(rows)
            joint = self.family.log_prob(part.X_expert, part.y, params["experts"], part.offset)
            joint = np.add.reduceat(joint, self.starts[units] - rows.start, axis=1)
            X_gate, weight = groups.X_gate[units], groups.sample_weight[units]
            log_gate, nodes = self.gate.log_prob_rows(X_gate, params["gate"])
            joint += log_gate
            ll = normalise_log(joint)
            joint *= weight
            W_groups[:, units] = joint
            W[:, rows] = joint[:, self.row_group[rows] - units.start]  # weights are the group's
            log_lik += float(weight @ ll)
            gate_start = _add(gate_start, self.gate.start_rows(
                X_gate, W_groups[:, units], nodes, state, units))
        block.cache[WEIGHTS] = W
        groups.cache.update({WEIGHTS: W_groups, **state})
        source.cache[_GATE_START] = (params["gate"], gate_start)
        return log_lik, W_groups.sum(axis=1)

    def gate_rows(self, X_gate, W):
        """One row per group, weighted by the mean of ``W`` over the group's rows (the
        group's weight times its posterior, after an E-step)."""
        return X_gate[self.starts], np.add.reduceat(W, self.starts, axis=1) / self.sizes

    def m_step_blocks(self, source, params):
        experts = self.family.m_step_blocks(source, None if params is None else params["experts"])
        groups = self._groups(source)
        start = _gate_start(source, params)
        if start is None:  # W of the rows from elsewhere (an initialisation)
            (block,) = source.blocks
            groups.blocks[0].cache[WEIGHTS] = self.gate_rows(block.X_gate, block.weights)[1]
        return {"gate": self._gate_m_step(groups, params, start), "experts": experts}


def _gate_hessian_pays(n_pairs, n_leaves, d):
    """Whether the gates' Hessian from kept row products (``n_pairs`` weighted Grams of
    ``d (d + 1) / 2`` products, with the experts' ``n_leaves``) beats their conjugate-gradient
    passes (about four, of ``2 n_leaves d`` products each), and its pair weights stay within
    ``2 n_leaves`` rows. Measured per iteration at n = 1e5 (1e5 and 2e4 at d = 10, K = 4):
    10-15% faster for K = 2 to 5 at d = 10 and the depth-4 binary tree (a third faster);
    level at d = 3 and 15; slower for K = 6 and 8 at d = 10 (8%, 22%), K = 8 at d = 5,
    K = 4 at d = 20 (12%), and twice as slow for K = 16."""
    if is_wide(d) or n_pairs == 0:  # one expert: no gate to fit
        return False
    return n_pairs <= 2 * n_leaves and (n_pairs + n_leaves) * (d + 1) <= 34 * n_leaves


def group_blocks(starts, n_rows, size=BLOCK_ROWS):
    """Blocks of about ``size`` rows that never split a group (a longer group is a block
    of its own), as (rows, groups) slices, for rows sorted by group and ``starts`` the
    first row of every group."""
    first = np.searchsorted(starts, np.arange(0, n_rows, size), side="right") - 1
    first = np.unique(first)  # the groups that hold the rows 0, size, 2 size, ...
    ends = np.r_[first[1:], starts.size]
    return [(slice(starts[a], starts[b] if b < starts.size else n_rows), slice(a, b))
            for a, b in zip(first, ends)]


def _reused(cache, shape):
    """The ``W`` of ``cache`` when it has ``shape`` (to be overwritten), else a new one."""
    W = cache.get(WEIGHTS)
    return W if W is not None and W.shape == shape else np.empty(shape)


def _gate_start(source, params):
    """The gates' M-step start that the E-step at ``params`` left in ``source``, or None
    (no E-step at these parameters since)."""
    at, start = source.cache.pop(_GATE_START, (None, None))
    return start if params is not None and at is params["gate"] else None


#: EM accelerations ``run_em`` knows (None is plain EM).
ACCELERATIONS = ("squarem", "squarem-lbfgs", None)

#: The initial bound on SQUAREM's step length (``-a`` of ``_squarem_cycle``).
SQUAREM_STEP_MAX = 1.0


def run_em(model, source, params, monitor, acceleration="squarem"):
    """Iterate the EM map from ``params`` until ``monitor`` says converged (or its floor is
    out of reach).

    With ``acceleration="squarem"`` one iteration is one SQUAREM cycle (Varadhan & Roland
    2008): two EM steps, then an extrapolation along them that is kept only when its
    penalised objective is at least that of the second EM step (else the EM step is kept).
    With ``None`` one iteration is one EM step. With ``"squarem-lbfgs"``, for the models
    ``_direct.supports``, SQUAREM hands over to L-BFGS on the penalised objective after
    ``_direct.SWITCH_AFTER`` cycles (one iteration is then one quasi-Newton step), and
    SQUAREM resumes if L-BFGS stops before the monitor's convergence. Every way the
    monitored objective never decreases.

    Returns the final parameters, their weighted log-likelihood, the leaves' masses (from
    the E-step at the final parameters) and the number of iterations done.
    """
    if acceleration not in ACCELERATIONS:
        raise ValueError(f"acceleration must be one of {ACCELERATIONS}; got {acceleration!r}.")
    log_lik, mass = model.e_pass(source, params)
    monitor.report(log_lik - model.penalty(params))
    step_max = SQUAREM_STEP_MAX
    n_iter = 0
    switch = acceleration == "squarem-lbfgs" and _direct.supports(model)
    while n_iter < monitor.max_iter:
        if switch and n_iter == _direct.SWITCH_AFTER:
            switch = False
            params, log_lik, mass, done = _direct.lbfgs_run(
                model, source, params, monitor, monitor.max_iter - n_iter)
            n_iter += done
            if monitor.converged or n_iter >= monitor.max_iter:
                break
        n_iter += 1
        if acceleration is None:
            params = model.m_step_blocks(source, params)
            log_lik, mass = model.e_pass(source, params)
        else:
            params, log_lik, mass, step_max = _squarem_cycle(
                model, source, params, monitor.history[-1], step_max
            )
        monitor.report(log_lik - model.penalty(params))
        if monitor.converged or monitor.out_of_reach:
            break
    return params, log_lik, mass, n_iter


def _squarem_cycle(model, source, start, start_objective, step_max):
    """One SQUAREM cycle (scheme S3) from ``start``, whose E-step is in ``source``.

    With ``r = F(t) - t`` and ``v = F(F(t)) - 2 F(t) + t`` in unconstrained coordinates
    (``ParameterVector``), the extrapolation is ``t' = t - 2 a r + a^2 v``, ``a = -|r| / |v|``
    held in ``[-step_max, -1]`` (``a = -1`` gives the second EM step), and the cycle ends
    with one EM step from ``t'`` (Varadhan & Roland's stabilisation). That point is kept
    when its penalised objective is at least the start's; otherwise the second EM step is.
    ``step_max`` grows fourfold whenever the bound holds ``a`` back and shrinks fourfold
    after a rejected extrapolation (Varadhan & Roland's adaptive bound).
    """
    first = model.m_step_blocks(source, start)
    model.e_pass(source, first)
    second = model.m_step_blocks(source, first)
    coords = ParameterVector(model.family, start)
    t0, t1, t2 = coords.flatten(start), coords.flatten(first), coords.flatten(second)
    r, v = t1 - t0, t2 - 2.0 * t1 + t0
    rr, vv = float(r @ r), float(v @ v)
    alpha = -np.sqrt(rr / vv) if rr > 0 and vv > 0 and np.isfinite(rr + vv) else -1.0
    if alpha <= -step_max:  # held at the bound: allow longer steps next time
        alpha, step_max = -step_max, 4.0 * step_max
    if alpha < -1.0:
        # The extrapolated point is a proposal and may lie far out (a log-dispersion or a
        # linear predictor whose exp overflows, in the trial or in the EM step from it):
        # whatever overflows along it only rejects it. That includes an overflow at rows
        # the other experts cover (a finite mixture log-likelihood): plain EM never goes
        # there, and the next cycle's arithmetic would start from infinities.
        objective = -np.inf
        try:
            with np.errstate(over="raise", invalid="raise", divide="ignore", under="ignore"):
                trial = coords.unflatten(t0 - 2.0 * alpha * r + alpha**2 * v)
                trial_log_lik, _ = model.e_pass(source, trial)
                if np.isfinite(trial_log_lik):
                    stabilised = model.m_step_blocks(source, trial)
                    log_lik, mass = model.e_pass(source, stabilised)
                    if np.all(np.isfinite(coords.flatten(stabilised))):
                        objective = log_lik - model.penalty(stabilised)
        except FloatingPointError:
            objective = -np.inf
        # a point within rounding of the start is taken: deciding by rounding noise
        # would make chunked and in-memory fits, whose sums round differently, part ways
        if np.isfinite(objective) and objective >= start_objective - _NOISE * abs(start_objective):
            return stabilised, log_lik, mass, step_max
        step_max = max(1.0, step_max / 4.0)
    log_lik, mass = model.e_pass(source, second)
    return second, log_lik, mass, step_max


class ParameterVector:
    """The parameters of a model as one vector in unconstrained coordinates (the gate and
    expert coefficients as they are, the family's positive dispersions on the log scale),
    for extrapolation; ``unflatten`` maps back through the family's ``project``."""

    def __init__(self, family, params):
        self.family = family
        self.gate_shapes = [coef.shape for coef in params["gate"]]
        self.expert_shapes = {key: value.shape for key, value in params["experts"].items()}
        self.positive = set(family.dispersion_keys)

    def flatten(self, params):
        parts = [coef.ravel() for coef in params["gate"]]
        for key, value in params["experts"].items():
            parts.append(np.log(value).ravel() if key in self.positive else value.ravel())
        return np.concatenate(parts)

    def unflatten(self, vector):
        position = 0

        def take(shape):
            nonlocal position
            size = int(np.prod(shape))
            position += size
            return vector[position - size : position].reshape(shape)

        gate = [take(shape).copy() for shape in self.gate_shapes]
        experts = {}
        for key, shape in self.expert_shapes.items():
            value = take(shape)
            experts[key] = np.exp(value) if key in self.positive else value.copy()
        return {"gate": gate, "experts": self.family.project(experts)}


#: Row blocks of a chunk whose gates' Hessian a costly source's E-step computes, at most
#: about: the Hessian only shapes the conjugate-gradient steps (their gradient and line
#: search use every row, so the M-step's fixed point is the same), and from every row it
#: would cost twice the experts' statistics (28 weighted Grams at K = 8).
HESSIAN_ROW_BLOCKS = 8


def _e_step_block(block, model, params, hessian=False):
    """E-step of one block in cache-sized row blocks, writing ``W`` over the previous one
    (no ``(K, n)`` temporaries beside it), and the gates' M-step start at ``params``
    (``GateTree.start_rows``) from the same rows.

    With ``hessian``, the start also holds the gates' Hessian blocks, from every row block
    of a block of at most ``2 HESSIAN_ROW_BLOCKS - 1`` and otherwise from evenly spaced
    row blocks, scaled by the nodes' masses (all rows over the sampled ones)."""
    n = block.n_rows
    W = block.cache.get(WEIGHTS)
    if W is None or W.shape != (model.gate.n_leaves, n):
        W = np.empty((model.gate.n_leaves, n))
    gate = model.gate
    state = gate.start_state(block.cache, W)
    log_lik, gate_start, sampled = 0.0, 0.0, 0.0
    slices = row_blocks(n)
    stride = max(1, len(slices) // HESSIAN_ROW_BLOCKS)
    for index, rows in enumerate(slices):
        part = block if n <= BLOCK_ROWS else block.take(rows)  # a sparse take copies
        joint = model.family.log_prob(part.X_expert, part.y, params["experts"], part.offset)
        log_prior, nodes = gate.log_prob_rows(part.X_gate, params["gate"])
        joint += log_prior
        ll = normalise_log(joint)
        joint *= part.sample_weight
        W[:, rows] = joint
        log_lik += float(part.sample_weight @ ll)
        if hessian and index % stride == 0:  # before start_rows, which overwrites nodes
            sampled = _add(sampled, gate.hessian_rows(part.X_gate, W[:, rows], nodes))
        gate_start = _add(gate_start, gate.start_rows(part.X_gate, W[:, rows], nodes, state,
                                                      rows))
    if hessian:
        mass, blocks = sampled
        scale = gate_start[0] / np.where(mass > 0, mass, 1.0)
        gate_start = (*gate_start, blocks * scale[:, None, None, None])
    return {WEIGHTS: W, **state}, (log_lik, W.sum(axis=1), *gate_start)


def _add(total, part):
    """``total + part`` element by element through a tuple (0.0 is the empty sum)."""
    return part if isinstance(total, float) else tuple(a + b for a, b in zip(total, part))
