"""The end of EM by quasi-Newton steps on the penalised observed log-likelihood.

Near a maximum EM converges linearly, at the rate of the fraction of missing information,
and on nearly separable classification problems that rate is close to 1: thousands of
E-steps, each with a truncated-Newton M-step. L-BFGS on the observed log-likelihood
itself converges superlinearly there. Its gradient costs one E-pass: by Fisher's identity
the gradient of ``log p(y | x; theta)`` is the gradient of EM's objective
``Q(theta' | theta) = sum_ik r_ik log(g_k f_k)`` in ``theta'`` at ``theta' = theta``, so the
gates' part is the gradient the E-step already leaves for the gates' M-step, and the
experts' part is a responsibility-weighted score (sums over row blocks, as the M-step's).

EM's first iterations find the basin (a direct optimiser from a crude start often lands
in a poorer one), so ``run_em`` switches after ``SWITCH_AFTER`` iterations.
"""

import numpy as np
from scipy.optimize import minimize

#: EM iterations (SQUAREM cycles) before ``run_em`` switches to L-BFGS.
SWITCH_AFTER = 10

#: L-BFGS memory (pairs of steps kept).
MEMORY = 20


def supports(model):
    """Whether the observed gradient of ``model`` is implemented: experts whose family
    gives ``score_block`` (the multinomial's), without shared coefficients, ungrouped."""
    family = model.family
    return (hasattr(family, "score_block") and not family.n_shared
            and not hasattr(model, "starts"))


def objective_and_gradient(model, source, params):
    """The penalised observed log-likelihood at ``params`` and its gradient in the order of
    ``ParameterVector.flatten`` (the gate levels, then the experts' ``coef``); the blocks
    then hold the E-step at ``params``."""
    from ._em import _GATE_START

    log_lik, _ = model.e_pass(source, params)
    gate = np.array(source.cache[_GATE_START][1][2], dtype=float)  # mass, value, gradient
    gate[..., 1:] -= model.gate.alpha * np.concatenate(params["gate"])[..., 1:]
    family = model.family
    score = source.reduce(family.score_block, params["experts"])
    score[..., 1:] -= family.alpha * params["experts"]["coef"][..., 1:]
    return log_lik - model.penalty(params), np.concatenate([gate.ravel(), score.ravel()])


def lbfgs_run(model, source, params, monitor, max_iter):
    """L-BFGS from ``params`` for at most ``max_iter`` iterations, each reported to
    ``monitor``; stops when the objective's change per iteration is within the monitor's
    ``tol`` per unit of weight. Returns ``(params, log_lik, mass, n_iter)``."""
    from ._em import ParameterVector

    vector = ParameterVector(model.family, params)

    def negative(theta):
        value, gradient = objective_and_gradient(model, source, vector.unflatten(theta))
        return -value, -gradient

    n_iter = 0

    def report(intermediate_result):
        nonlocal n_iter
        n_iter += 1
        monitor.report(-intermediate_result.fun)
        if monitor.converged:
            raise StopIteration

    # the monitor stops it (L-BFGS's own tests end it only where it cannot progress; then
    # run_em goes on with EM)
    result = minimize(negative, vector.flatten(params), jac=True, method="L-BFGS-B",
                      callback=report, options={"maxiter": max_iter, "maxfun": 2 * max_iter + 20,
                                                "maxcor": MEMORY, "ftol": 1e-15, "gtol": 0.0})
    final = vector.unflatten(result.x) if n_iter else params
    # the blocks' W must be the E-step at the returned parameters
    log_lik, mass = model.e_pass(source, final)
    return final, log_lik, mass, n_iter
