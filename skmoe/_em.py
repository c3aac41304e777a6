"""The EM engine: a convergence monitor, the flat mixture-of-experts model and the loop.

The loop is generic: a model supplies ``e_step(data, params)`` (per-sample log-likelihood
and posteriors), ``m_step(data, posteriors, params)`` and ``penalty(params)``. The penalised
log-likelihood it monitors never decreases, because every M-step maximises, or does not
lower, its part of the expected complete-data objective (generalised EM).
"""

import os
import sys
import warnings
from dataclasses import replace

import numpy as np

from ._blocks import Block, InMemoryBlocks
from ._linalg import log_sum_exp, row_blocks

#: The arrays of one fit (or of one block of its rows).
EMData = Block


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


class ConvergenceMonitor:
    """Tracks the penalised objective and decides convergence.

    Converged when the change of the per-sample mean objective is below ``tol`` (so ``tol``
    does not scale with n). A decrease larger than rounding is reported by a warning: it
    would mean a broken M-step.
    """

    def __init__(self, tol, max_iter, total_weight, verbose=0, stream=None):
        self.tol = tol
        self.max_iter = max_iter
        self.total_weight = total_weight
        self.verbose = verbose
        self.stream = stream if stream is not None else sys.stdout
        self.history = []

    def report(self, objective):
        if self.history:
            delta = objective - self.history[-1]
            if delta < -1e-9 * max(1.0, abs(objective)):
                warn(
                    f"EM objective decreased by {-delta:.3g} at iteration {len(self.history)}.",
                    RuntimeWarning,
                )
        else:
            delta = np.nan
        if self.verbose:
            print(
                f"  iteration {len(self.history):4d}  objective {objective: .8e}  "
                f"change {delta: .3e}",
                file=self.stream,
            )
        self.history.append(objective)

    @property
    def converged(self):
        if len(self.history) < 2:
            return False
        change = (self.history[-1] - self.history[-2]) / self.total_weight
        return abs(change) < self.tol


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
        log_lik = log_sum_exp(joint, axis=0)
        joint -= log_lik
        np.exp(joint, out=joint)
        return log_lik, joint

    def e_pass(self, source, params):
        """The E-step over every block, keeping ``W`` = sample weight times posterior in each
        block's cache; returns the weighted log-likelihood and the leaves' masses (K,)."""
        return source.update(_e_step_block, self, params)

    def m_step(self, data, resp, params):
        """``m_step_blocks`` on in-memory arrays and posteriors ``resp`` (K, n)."""
        source = InMemoryBlocks([replace(data, cache={"W": resp * data.sample_weight})])
        return self.m_step_blocks(source, params)

    def m_step_blocks(self, source, params):
        """Refit the experts and the gates on the posteriors kept in the blocks' caches."""
        experts = self.family.m_step_blocks(source, None if params is None else params["experts"])
        if "gate_preconditioner" not in source.cache:
            source.cache["gate_preconditioner"] = self.gate.preconditioner(source)
        if params is None:
            V = self.gate.initial_coef(np.empty((0, source.n_gate_features)))
        else:
            V = params["gate"]
        gate = self.gate.m_step_blocks(source, V, source.cache["gate_preconditioner"])
        return {"gate": gate, "experts": experts}

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
            "experts": {key: value[order[-1]] for key, value in params["experts"].items()},
        }, order[-1]


def run_em(model, source, params, monitor):
    """Alternate E- and M-steps from ``params`` until ``monitor`` says converged.

    Returns the final parameters, their weighted log-likelihood, the leaves' masses (from
    the E-step at the final parameters) and the number of M-steps done.
    """
    log_lik, mass = model.e_pass(source, params)
    monitor.report(log_lik - model.penalty(params))
    n_iter = 0
    while n_iter < monitor.max_iter:
        params = model.m_step_blocks(source, params)
        n_iter += 1
        log_lik, mass = model.e_pass(source, params)
        monitor.report(log_lik - model.penalty(params))
        if monitor.converged:
            break
    return params, log_lik, mass, n_iter


def _e_step_block(block, model, params):
    """E-step of one block in cache-sized row blocks, writing ``W`` over the previous one
    (no ``(K, n)`` temporaries beside it)."""
    n = block.n_rows
    W = block.cache.get("W")
    if W is None or W.shape != (model.gate.n_leaves, n):
        W = np.empty((model.gate.n_leaves, n))
    log_lik = 0.0
    for rows in row_blocks(n):
        part = replace(block, X_expert=block.X_expert[rows], X_gate=block.X_gate[rows],
                       y=block.y[rows], sample_weight=block.sample_weight[rows],
                       offset=None if block.offset is None else block.offset[rows], cache={})
        ll, resp = model.e_step(part, params)
        resp *= part.sample_weight
        W[:, rows] = resp
        log_lik += float(part.sample_weight @ ll)
    return {"W": W}, (log_lik, W.sum(axis=1))
