"""Observed information of a fitted flat mixture of experts (Louis 1982), for standard errors.

The parameters are, in this order: the gate coefficients of experts 1..K-1 against expert 0
(intercept first; expert 0 is the reference, as in flexmix), then for each expert its
coefficients (intercept first) and its dispersions as the family reports them
(``dispersion_labels``); the family gives the derivatives (``information_terms``).

With ``c_ik = log g_k(x_i) + log f_k(y_i | x_i)`` and responsibilities ``r_ik``, the
Hessian of the observed log-likelihood ``sum_i w_i log sum_k exp(c_ik)`` is

    sum_i w_i [ sum_k r_ik Hess c_ik + sum_k r_ik s_ik s_ik' - sbar_i sbar_i' ],

``s_ik = grad c_ik`` and ``sbar_i = sum_k r_ik s_ik`` (Louis' identity); the observed
information is its negative plus the Hessian of the penalty.

Parameters the data cannot identify (a column aliased with others, e.g. a one-hot encoding
without ``drop`` next to the intercept) make the information singular. As R's ``lm`` does
with its pivoted QR, they are found in order: scaled to a unit diagonal, a parameter whose
information not explained by the identified parameters before it (its Cholesky pivot) is
below ``ALIASED_TOL`` is aliased; its standard error is NaN and the covariance of the others
is the inverse of their information. A parameter with no information at all (a column of
zeros) is aliased too.
"""

import numpy as np
from scipy import sparse

from ._families import require
from ._linalg import linear_predictor, penalty_diagonal

ROW_BLOCK = 4096

#: Relative pivot under which a parameter counts as aliased: R's ``lm.fit`` tolerance
#: 1e-7 on the pivots of the scaled design, i.e. a relative eigenvalue of about 1e-14 of
#: the scaled information in the direction the parameter adds.
ALIASED_TOL = 1e-7


def covariance_from_information(info, tol=ALIASED_TOL):
    """Covariance of the identified parameters and the mask of the aliased ones.

    Returns ``(covariance, aliased)``: ``covariance`` is the inverse of the information of
    the identified parameters, with NaN in the rows and columns of the aliased ones.
    """
    diag = np.diag(info)
    scale = np.where(diag > 0, 1.0 / np.sqrt(np.where(diag > 0, diag, 1.0)), 0.0)
    scaled = info * scale[:, None] * scale[None, :]
    P = info.shape[0]
    aliased = diag <= 0
    lower = np.zeros((P, P))
    kept = []
    for j in range(P):  # Cholesky in parameter order, skipping aliased parameters
        if aliased[j]:
            continue
        row = scaled[j, kept] if kept else np.empty(0)
        if kept:
            row = np.linalg.solve(lower[np.ix_(kept, kept)], row)
        pivot = scaled[j, j] - row @ row
        if not pivot > tol**2:
            aliased[j] = True
            continue
        lower[j, kept] = row
        lower[j, j] = np.sqrt(pivot)
        kept.append(j)
    covariance = np.full((P, P), np.nan)
    if kept:
        inverse = np.linalg.inv(lower[np.ix_(kept, kept)])
        sub = inverse.T @ inverse
        covariance[np.ix_(kept, kept)] = sub * scale[kept][:, None] * scale[kept][None, :]
    return covariance, aliased


def parameter_names(family, K, gate_names, expert_names):
    """Labels of the parameter vector, as (block, expert, name) triples."""
    names = [("gate", j, name) for j in range(1, K) for name in ["(Intercept)", *gate_names]]
    for k in range(K):
        names += [("expert", k, name) for name in ["(Intercept)", *expert_names]]
        names += [("expert", k, label) for label in family.dispersion_labels]
    return names


def observed_information(model, data, params):
    """Observed information matrix of the penalised log-likelihood at ``params``."""
    family, gate = model.family, model.gate
    if gate.depth != 1:
        raise NotImplementedError("standard errors are available for flat models only.")
    K = gate.branching
    dg, de = data.X_gate.shape[1] + 1, data.X_expert.shape[1] + 1
    n_disp = len(family.dispersion_labels)
    per_expert = de + n_disp
    n_gate = (K - 1) * dg
    P = n_gate + K * per_expert
    info = np.zeros((P, P))
    n = data.y.shape[0]
    for start in range(0, n, ROW_BLOCK):
        rows = slice(start, start + ROW_BLOCK)
        info -= _block_hessian(model, data, params, rows, K, dg, de, n_disp, P)
    # penalty Hessians. Gate: alpha/2 sum_k ||V_k||^2 in the symmetric coding is, in the
    # reference coding V'_j = V_j - V_0, alpha/2 sum_k ||V'_k - mean(V')||^2.
    centring = np.eye(K - 1) - np.full((K - 1, K - 1), 1.0 / K)
    info[:n_gate, :n_gate] += np.kron(centring, np.diag(penalty_diagonal(dg, gate.alpha)))
    if family.alpha:
        penalty = family.penalty_information(params["experts"], de)
        for k in range(K):
            first = n_gate + k * per_expert
            block = slice(first, first + per_expert)
            info[block, block] += penalty[k]
    return info


def _block_hessian(model, data, params, rows, K, dg, de, n_disp, P):
    """Hessian of the observed log-likelihood summed over a block of rows."""
    family, experts = model.family, params["experts"]
    part = data.take(rows)
    Xg, Xe, y, w, offset = part.X_gate, part.X_expert, part.y, part.sample_weight, part.offset
    n = y.shape[0]
    if sparse.issparse(Xg):  # the information is dense anyway, (K p)^2
        Xg = Xg.toarray()
    if sparse.issparse(Xe):
        Xe = Xe.toarray()
    Xg1 = np.column_stack([np.ones(n), Xg])
    Xe1 = np.column_stack([np.ones(n), Xe])
    g = np.exp(model.gate.log_prob(Xg, params["gate"]))  # (K, n)
    joint = model.family.log_prob(Xe, y, experts, offset) + np.log(g)
    r = np.exp(joint - joint.max(axis=0))
    r /= r.sum(axis=0)
    eta = linear_predictor(Xe, experts["coef"])
    if offset is not None:
        eta += offset
    d_eta, d_eta2, d_t, d_t2, d_eta_t = family.information_terms(y, eta, experts)
    if n_disp == 1 and np.ndim(d_t) == 2:  # one dispersion: (K, n) arrays
        d_t, d_t2, d_eta_t = d_t[None], d_t2[None, None], d_eta_t[None]

    n_gate = (K - 1) * dg
    per_expert = de + n_disp
    # scores s_ik, shape (n, K, P)
    S = np.zeros((n, K, P))
    for k in range(K):
        for j in range(1, K):
            S[:, k, (j - 1) * dg : j * dg] = ((k == j) - g[j])[:, None] * Xg1
        first = n_gate + k * per_expert
        S[:, k, first : first + de] = d_eta[k][:, None] * Xe1
        for a in range(n_disp):
            S[:, k, first + de + a] = d_t[a, k]
    sbar = np.einsum("ki,ikp->ip", r, S)
    H = np.einsum("i,ki,ikp,ikq->pq", w, r, S, S) - np.einsum("i,ip,iq->pq", w, sbar, sbar)
    # gate curvature: the same for every k, and sum_k r_ik = 1
    free = g[1:]  # Hess log g_k in (V'_j, V'_l): -(g_j delta_jl - g_j g_l) x x'
    curv = free[:, None, :] * free[None] - np.eye(K - 1)[:, :, None] * free[:, None, :]
    H[:n_gate, :n_gate] += np.einsum("jli,i,ia,ib->jalb", curv, w, Xg1, Xg1).reshape(
        n_gate, n_gate
    )
    for k in range(K):
        first = n_gate + k * per_expert
        coef = slice(first, first + de)
        rw = w * r[k]
        H[coef, coef] += np.einsum("i,ia,ib->ab", rw * d_eta2[k], Xe1, Xe1)
        for a in range(n_disp):
            t = first + de + a
            cross = np.einsum("i,ia->a", rw * d_eta_t[a, k], Xe1)
            H[coef, t] += cross
            H[t, coef] += cross
            for b in range(n_disp):
                H[t, first + de + b] += np.sum(rw * d_t2[a, b, k])
    return H


def free_parameters(family, params, K, dg, de):
    """Mask of the parameter vector's entries that are parameters: not those of
    components without expert parameters (``family.fixed_experts``, e.g. the point mass at
    zero of zero-inflated experts, whose gate output stays a parameter)."""
    per_expert = de + len(family.dispersion_labels)
    free = np.ones((K - 1) * dg + K * per_expert, dtype=bool)
    fixed = getattr(family, "fixed_experts", None)
    for k in np.flatnonzero(np.zeros(K, dtype=bool) if fixed is None else fixed(params)):
        first = (K - 1) * dg + k * per_expert
        free[first : first + per_expert] = False
    return free


def standard_errors(estimator, X, y, sample_weight=None, exposure=None):
    """``standard_errors`` of a fitted flat estimator (see its docstring)."""
    from sklearn.utils import Bunch

    from ._em import warn

    data = estimator._predict_data(X, y, exposure, sample_weight)
    model, params = estimator._model, estimator._params
    require(model.family, "standard_errors")
    if getattr(model.family, "n_shared", 0):
        raise NotImplementedError(
            "standard_errors (and summary) do not support shared_features yet."
        )
    info = observed_information(model, data, params)
    K = model.gate.n_leaves
    gate = params["gate"][0][0]
    experts = params["experts"]
    dispersions = model.family.reported_dispersions(experts)
    blocks = [(gate[1:] - gate[0]).ravel()]
    for k in range(K):
        blocks.append(experts["coef"][k])
        blocks += [values[k : k + 1] for values in dispersions]
    estimate = np.concatenate(blocks)
    names = parameter_names(
        model.family,
        K,
        estimator._feature_labels(estimator.gate_features_in_),
        estimator._feature_labels(estimator.expert_features_in_),
    )
    dg, de = len(estimator.gate_features_in_) + 1, len(estimator.expert_features_in_) + 1
    free = free_parameters(model.family, experts, K, dg, de)
    info, estimate = info[np.ix_(free, free)], estimate[free]
    names = [name for name, keep in zip(names, free) if keep]
    covariance, aliased = covariance_from_information(info)
    se = np.sqrt(np.diag(covariance))
    if aliased.any():
        # report the identified parameters as in the model without the aliased ones
        # (R's coefficients): the likelihood is flat along e_a - I_kk^-1 I_ka, so
        # theta_k + I_kk^-1 I_ka theta_a with theta_a = 0 is the same fit
        kept = ~aliased
        transfer = covariance[np.ix_(kept, kept)] @ info[np.ix_(kept, aliased)]
        estimate = estimate.copy()
        estimate[kept] += transfer @ estimate[aliased]
        estimate[aliased] = np.nan
        labels = [
            f"{'gate' if block == 'gate' else 'expert'} {k} {name}"
            for (block, k, name), hit in zip(names, aliased)
            if hit
        ]
        warn(
            "The data do not identify these parameters (aliased with the ones before "
            f"them, e.g. collinear columns); their standard errors are NaN: {labels}.",
            UserWarning,
        )
    se_all = np.full(free.shape, np.nan)  # NaN for what is not a parameter
    se_all[free] = se
    gate_se = se_all[: (K - 1) * dg].reshape(K - 1, dg)
    per_expert = se_all[(K - 1) * dg :].reshape(K, -1)
    return Bunch(
        estimate=estimate,
        se=se,
        names=names,
        covariance=covariance,
        gate_intercept=gate_se[:, 0],
        gate_coef=gate_se[:, 1:],
        expert_intercept=per_expert[:, 0],
        expert_coef=per_expert[:, 1:de],
        dispersion=per_expert[:, de] if per_expert.shape[1] > de else None,
        dispersions=per_expert[:, de:],
    )
