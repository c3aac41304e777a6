"""Softmax gates: a balanced tree of them, of which the flat gate is the depth-1 case.

A tree of ``depth`` levels with ``branching`` children per node has ``branching**depth``
leaves (the experts) and ``branching**l`` gate nodes at level ``l``. Each gate node is a
softmax (multinomial logit) over its children; the prior probability of a leaf is the
product of the gate probabilities along its path (Jordan & Jacobs 1994). The coefficients
of level ``l`` have shape (branching**l, branching, d + 1), intercept first, in the
symmetric sum-to-zero parametrisation; the penalty ``alpha / 2 ||V[..., 1:]||^2`` leaves
the intercepts free. The flat gate over K experts is the tree of depth 1 and branching K.
"""

import numpy as np

from . import _logit
from ._blocks import WEIGHTS, one_block
from ._linalg import is_wide, weighted_grams, weighted_square_sums


class GateTree:
    """Balanced tree of softmax gates.

    Parameters
    ----------
    depth : int
    branching : int
    alpha : float
        L2 penalty on the gate coefficients (not the intercepts).
    max_iter : int
        Newton iterations per M-step, warm-started from the previous coefficients. One
        (a generalised EM step) is the fastest on the benchmarks: EM takes as many
        iterations as with exact gate refits, each about 40% cheaper.
    tol : float
        Relative gain under which the M-step stops early; EM passes a fraction of its own
        tolerance, since a smaller gain cannot change its convergence.
    """

    def __init__(self, depth, branching, alpha=0.0, max_iter=1, tol=1e-12):
        self.depth = depth
        self.branching = branching
        self.alpha = float(alpha)
        self.max_iter = max_iter
        self.tol = tol

    @property
    def n_leaves(self):
        return self.branching**self.depth

    @property
    def n_nodes(self):
        """The number of gate nodes (softmax models) of the tree."""
        return sum(self.branching**level for level in range(self.depth))

    def initial_coef(self, X):
        B, d1 = self.branching, X.shape[1] + 1
        return [np.zeros((B**level, B, d1)) for level in range(self.depth)]

    def log_prob(self, X, V):
        """Log prior probability of every leaf (the product of gates along its path),
        shape (n_leaves, n)."""
        log_path = np.zeros((1, X.shape[0]))
        for coef in V:
            log_gate = _logit.log_proba(X, coef)[0]
            log_path = (log_path[:, None, :] + log_gate).reshape(-1, X.shape[0])
        return log_path

    def log_prob_rows(self, X, V):
        """``log_prob`` and the (log-probabilities, probabilities) of all gate nodes behind
        it, (n_nodes, B, n) each, for ``start_rows``: all nodes from one product."""
        nodes = _logit.log_proba(X, V[0] if len(V) == 1 else np.concatenate(V))
        log_path = np.zeros((1, X.shape[0]))
        start = 0
        for coef in V:
            log_gate = nodes[0][start : start + coef.shape[0]]
            start += coef.shape[0]
            log_path = (log_path[:, None, :] + log_gate).reshape(-1, X.shape[0])
        return log_path, nodes

    def start_state(self, cache, W):
        """The per-row arrays the M-step reads (soft counts and curvature state) for a block
        whose E-step writes ``W``; those in ``cache`` are reused."""
        shape = (self.n_nodes, self.branching, W.shape[1])
        if self.depth == 1:
            counts = W[None]
        else:
            counts = cache.get("gate_counts")
            if counts is None or counts.shape != shape:
                counts = np.empty(shape)
        return {"gate_counts": counts, **_logit.evaluation_state(cache, shape, "X_gate")}

    def start_rows(self, X, W, nodes, state, rows):
        """The M-step's first evaluation at the E-step's coefficients, on the rows ``rows``
        of a block: node masses (n_nodes,), objective and gradient (unpenalised), from the
        rows' weighted posteriors ``W`` (n_leaves, rows) and ``nodes`` (``log_prob_rows``);
        the rows' soft counts and curvature state go into ``state``."""
        counts = self.node_counts(W)
        if self.depth > 1:
            state["gate_counts"][..., rows] = counts
        log_p, p = nodes
        value, grad = _logit.evaluate_rows(X, counts, log_p, p, state, rows, "X_gate")
        return counts.sum(axis=(1, 2)), value, grad

    def hessian_rows(self, X, W, nodes):
        """The node masses (n_nodes,) and the blocks of the unpenalised negative Hessian
        (``_logit.hessian_blocks``) on these rows, so that conjugate gradients need no pass
        over the data (for sources whose passes cost)."""
        counts = self.node_counts(W)
        return counts.sum(axis=(1, 2)), _logit.hessian_blocks(X, counts, nodes[1])

    @property
    def n_pair_weights(self):
        """The number of weighted Grams in the gates' Hessian (``kept_pair_weights``)."""
        return self.n_nodes * self.branching * (self.branching - 1) // 2

    def kept_pair_weights(self, cache, out=None):
        """The weights (``n_pair_weights``, n) of the Grams that ``pair_blocks`` turns into
        the gates' Hessian blocks, at the probabilities the E-step kept in ``cache``
        (written into ``out`` when given)."""
        shape = (self.n_nodes, self.branching, cache[WEIGHTS].shape[1])
        return _logit.kept_pair_weights(cache, shape, "X_gate", out)

    def pair_blocks(self, grams):
        """The Hessian blocks of ``hessian_rows`` from the Grams of ``kept_pair_weights``."""
        return _logit.pair_blocks(grams, self.n_nodes, self.branching)

    def preconditioner(self, source):
        """``R^-1`` of Böhning's bound ``X1' diag(w) X1 / 2 + alpha P`` for the sample weights.

        It is the bound for the root gate. A deeper node ``m`` uses it scaled by its share
        of the weight (``R^-1 / sqrt(c_m)``): a preconditioner, not a bound, which is all
        truncated Newton needs. Computed once per fit (one pass). For a wide design, the
        diagonal of the same matrix (``_logit.diagonal_factor``).
        """
        if is_wide(source.n_gate_features):
            return _logit.diagonal_factor(source.reduce(_weight_square_sums_block), self.alpha)[0]
        gram = source.reduce(_weight_gram_block)
        return _logit.bound_factor(gram, self.alpha)[0]

    def m_step(self, X, weighted_resp, V, inv_factor):
        """``m_step_blocks`` on in-memory arrays."""
        source = one_block(X_gate=X, cache={WEIGHTS: weighted_resp})
        return self.m_step_blocks(source, V, inv_factor)

    def m_step_blocks(self, source, V, inv_factor, start=None):
        """Ascend every gate's part of the EM objective, all gate nodes in one batched fit.

        Each block's cache holds ``"W"``: sample weight times leaf posterior, (n_leaves, n).
        The soft count of child ``c`` of node ``m`` is the weighted posterior of the child's
        subtree, so node ``m`` is fitted on targets ``h_child / h_m`` with weights
        ``w h_m``. Given the posteriors the nodes' objectives are separate, so every level is
        fitted in the same truncated-Newton run (one pass over the data per step for the
        whole tree).

        ``start``: node masses, objective and gradient at ``V``, with the soft counts and the
        curvature state at ``V`` in the blocks, as the E-step leaves them (``start_rows``):
        no pass before the first conjugate-gradient step.
        """
        if start is None:
            node_mass = source.update(_node_counts_block, self)
        else:
            node_mass, *start = start  # value, gradient[, Hessian blocks]
        share = np.maximum(node_mass / node_mass[0], 1e-12)
        factors = inv_factor[None] / np.sqrt(share).reshape((-1,) + (1,) * inv_factor.ndim)
        coef = _logit.maximise_truncated_newton_blocks(
            source, "X_gate", _logit.CachedCounts("gate_counts"), np.concatenate(V),
            self.alpha, factors, max_iter=self.max_iter, tol=self.tol, start=start,
        )
        return self.split_levels(coef)

    def node_counts(self, W):
        """Soft counts of the children of every gate node, (n_nodes, B, n), breadth-first
        (a view of ``W`` for one level): child ``c`` of node ``m`` counts the weighted
        posterior of its subtree; ``W`` is sample weight times leaf posterior, (K, n)."""
        B, n = self.branching, W.shape[1]
        if self.depth == 1:
            return W[None]
        return np.concatenate([
            W.reshape(B ** (level + 1), -1, n).sum(axis=1).reshape(B**level, B, n)
            for level in range(self.depth)
        ])

    def split_levels(self, coef):
        """The coefficients of all nodes, (n_nodes, B, d + 1), as one array per level."""
        starts = np.cumsum([0] + [self.branching**level for level in range(self.depth)])
        return [coef[a:b] for a, b in zip(starts[:-1], starts[1:])]

    def penalty(self, V):
        return 0.5 * self.alpha * sum(np.sum(coef[..., 1:] ** 2) for coef in V)

    def n_parameters(self, V):
        return sum(coef.shape[0] * (coef.shape[1] - 1) * coef.shape[2] for coef in V)

    def canonical_order(self, leaf_mass):
        """Reorder the children of every node by decreasing subtree mass.

        Returns, per level ``l = 0..depth``, the old index of the node now at each
        position of that level.
        """
        B, L = self.branching, self.depth
        order = [np.zeros(1, dtype=np.intp)]
        for level in range(1, L + 1):
            mass = leaf_mass.reshape(B**level, -1).sum(axis=1)
            children = order[-1][:, None] * B + np.arange(B)
            ranks = np.argsort(-mass[children], axis=1, kind="stable")
            order.append(np.take_along_axis(children, ranks, axis=1).ravel())
        return order

    def permute(self, V, order):
        """Gate coefficients in the order given by ``canonical_order``."""
        B = self.branching
        return [
            coef[order[level]][np.arange(B**level)[:, None], order[level + 1].reshape(-1, B) % B]
            for level, coef in enumerate(V)
        ]


def _weight_gram_block(block):
    return weighted_grams(block.X_gate, block.sample_weight[None, :])


def _weight_square_sums_block(block):
    return weighted_square_sums(block.X_gate, block.sample_weight[None, :])


def _node_counts_block(block, gate):
    counts = gate.node_counts(block.weights)
    return {"gate_counts": counts}, counts.sum(axis=(1, 2))
