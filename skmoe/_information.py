"""Observed information of a fitted flat mixture of experts (Louis 1982), for standard errors.

The parameters are, in this order: the gate coefficients of experts 1..K-1 against expert 0
(intercept first; expert 0 is the reference, as in flexmix), then for each expert its
coefficients (intercept first) and its dispersions as the family reports them
(``dispersion_labels``), then once what all experts share (the coefficients of the shared
columns, a pooled dispersion; see ``parameter_layout``); the family gives the derivatives
(``information_terms``).

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
from ._linalg import penalty_diagonal

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


def parameter_layout(family, K, dg, n_own):
    """Where every expert's own parameters sit in the parameter vector.

    An expert's local parameters are its coefficients on all the columns of ``X_expert``
    (intercept, its own columns, then the ``family.n_shared`` shared ones) and its
    dispersion (as ``dispersion_labels``, if any). The vector holds the gate contrasts,
    then per expert its own coefficients and, unless pooled, its dispersion, then once the
    shared coefficients and a pooled dispersion (``family.pooled_keys``). Returns the
    (K, L) positions of the local parameters, the vector's length and the first position
    of what all experts share.
    """
    has_dispersion = len(family.dispersion_labels) == 1
    pooled = has_dispersion and bool(family.pooled_keys)
    n_shared = family.n_shared
    per_expert = 1 + n_own + (has_dispersion and not pooled)
    start = (K - 1) * dg
    shared = start + K * per_expert + np.arange(n_shared + pooled)
    index = []
    for k in range(K):
        own = start + k * per_expert + np.arange(per_expert)
        local = [own[: 1 + n_own], shared[:n_shared]]
        if has_dispersion:
            local.append(shared[n_shared:] if pooled else own[1 + n_own:])
        index.append(np.concatenate(local))
    first_shared = start + K * per_expert
    return np.array(index, dtype=np.intp).reshape(K, -1), first_shared + shared.size, first_shared


def parameter_names(family, K, gate_names, expert_names, shared_names=()):
    """Labels of the parameter vector, as (block, expert, name) triples; the block
    ``"shared"`` (expert None) holds what all experts share."""
    names = [("gate", j, name) for j in range(1, K) for name in ["(Intercept)", *gate_names]]
    index, P, first_shared = parameter_layout(family, K, len(gate_names) + 1,
                                              len(expert_names))
    names += [None] * (P - len(names))
    local = ["(Intercept)", *expert_names, *shared_names, *family.dispersion_labels]
    for k in range(K):
        for position, name in zip(index[k], local):
            shared = position >= first_shared
            names[position] = ("shared", None, name) if shared else ("expert", k, name)
    return names


def observed_information(model, data, params):
    """Observed information matrix of the penalised log-likelihood at ``params``."""
    family, gate = model.family, model.gate
    if gate.depth != 1:
        raise NotImplementedError("standard errors are available for flat models only.")
    K = gate.branching
    dg = data.X_gate.shape[1] + 1
    de = data.X_expert.shape[1] - family.n_shared + 1
    if len(family.dispersion_labels) > 1:
        raise NotImplementedError("standard errors take one dispersion per expert at most.")
    index, P, _ = parameter_layout(family, K, dg, de - 1)
    n_gate = (K - 1) * dg
    info = np.zeros((P, P))
    n = data.y.shape[0]
    for start in range(0, n, ROW_BLOCK):
        rows = slice(start, start + ROW_BLOCK)
        info -= _block_hessian(model, data, params, rows, dg, index, P)
    # penalty Hessians. Gate: alpha/2 sum_k ||V_k||^2 in the symmetric coding is, in the
    # reference coding V'_j = V_j - V_0, alpha/2 sum_k ||V'_k - mean(V')||^2.
    centring = np.eye(K - 1) - np.full((K - 1, K - 1), 1.0 / K)
    info[:n_gate, :n_gate] += np.kron(centring, np.diag(penalty_diagonal(dg, gate.alpha)))
    if family.alpha:
        # in (own coefficients, dispersion): the shared coefficients are not penalised
        penalty = family.penalty_information(params["experts"], de)
        local = np.r_[0:de, de + family.n_shared:index.shape[1]]
        for k in range(K):
            block = index[k][local]
            info[np.ix_(block, block)] += penalty[k]
    return info


def _block_hessian(model, data, params, rows, dg, index, P):
    """Hessian of the observed log-likelihood summed over a block of rows; ``index`` of
    ``parameter_layout``."""
    family, experts = model.family, params["experts"]
    K = index.shape[0]
    part = data.take(rows)
    Xg, Xe, y, w, offset = part.X_gate, part.X_expert, part.y, part.sample_weight, part.offset
    n = y.shape[0]
    if sparse.issparse(Xg):  # the information is dense anyway, (K p)^2
        Xg = Xg.toarray()
    if sparse.issparse(Xe):
        Xe = Xe.toarray()
    Xg1 = np.column_stack([np.ones(n), Xg])
    Xe1 = np.column_stack([np.ones(n), Xe])
    de = Xe1.shape[1]
    has_dispersion = index.shape[1] > de
    g = np.exp(model.gate.log_prob(Xg, params["gate"]))  # (K, n)
    joint = model.family.log_prob(Xe, y, experts, offset) + np.log(g)
    r = np.exp(joint - joint.max(axis=0))
    r /= r.sum(axis=0)
    eta = family.eta(Xe, experts, offset)
    d_eta, d_eta2, d_t, d_t2, d_eta_t = family.information_terms(y, eta, experts)

    n_gate = (K - 1) * dg
    # scores s_ik, shape (n, K, P): expert k's local scores at its positions
    S = np.zeros((n, K, P))
    for k in range(K):
        for j in range(1, K):
            S[:, k, (j - 1) * dg : j * dg] = ((k == j) - g[j])[:, None] * Xg1
        S[:, k, index[k][:de]] = d_eta[k][:, None] * Xe1
        if has_dispersion:
            S[:, k, index[k][de]] = d_t[k]
    sbar = np.einsum("ki,ikp->ip", r, S)
    H = np.einsum("i,ki,ikp,ikq->pq", w, r, S, S) - np.einsum("i,ip,iq->pq", w, sbar, sbar)
    # gate curvature: the same for every k, and sum_k r_ik = 1
    free = g[1:]  # Hess log g_k in (V'_j, V'_l): -(g_j delta_jl - g_j g_l) x x'
    curv = free[:, None, :] * free[None] - np.eye(K - 1)[:, :, None] * free[:, None, :]
    H[:n_gate, :n_gate] += np.einsum("jli,i,ia,ib->jalb", curv, w, Xg1, Xg1).reshape(
        n_gate, n_gate
    )
    for k in range(K):  # expert k's local Hessian, added at its positions
        rw = w * r[k]
        local = np.zeros((index.shape[1], index.shape[1]))
        local[:de, :de] = np.einsum("i,ia,ib->ab", rw * d_eta2[k], Xe1, Xe1)
        if has_dispersion:
            local[:de, de] = local[de, :de] = rw * d_eta_t[k] @ Xe1
            local[de, de] = np.sum(rw * d_t2[k])
        H[np.ix_(index[k], index[k])] += local
    return H


def standard_errors(estimator, X, y, sample_weight=None, exposure=None):
    """``standard_errors`` of a fitted flat estimator (see its docstring)."""
    from sklearn.utils import Bunch

    from ._em import warn

    data = estimator._predict_data(X, y, exposure, sample_weight)
    model, params = estimator._model, estimator._params
    family = model.family
    require(family, "standard_errors")
    info = observed_information(model, data, params)
    covariance, aliased = covariance_from_information(info)
    se = np.sqrt(np.diag(covariance))
    K = model.gate.n_leaves
    gate = params["gate"][0][0]
    experts = params["experts"]
    dg = len(estimator.gate_features_in_) + 1
    de = len(estimator.expert_features_in_) + 1
    index, P, _ = parameter_layout(family, K, dg, de - 1)
    local = [family.full_coef(experts)] + [
        values[:, None] for values in family.reported_dispersions(experts)]
    estimate = np.empty(P)
    estimate[: (K - 1) * dg] = (gate[1:] - gate[0]).ravel()
    estimate[index] = np.concatenate(local, axis=1)
    names = parameter_names(
        family,
        K,
        estimator._feature_labels(estimator.gate_features_in_),
        estimator._feature_labels(estimator.expert_features_in_),
        estimator._feature_labels(estimator.shared_features_in_),
    )
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
            " ".join(str(part) for part in (block, k, name) if part is not None)
            for (block, k, name), hit in zip(names, aliased)
            if hit
        ]
        warn(
            "The data do not identify these parameters (aliased with the ones before "
            f"them, e.g. collinear columns); their standard errors are NaN: {labels}.",
            UserWarning,
        )
    gate_se = se[: (K - 1) * dg].reshape(K - 1, dg)
    per_expert = se[index]
    n_coef = de + family.n_shared
    return Bunch(
        estimate=estimate,
        se=se,
        names=names,
        covariance=covariance,
        gate_intercept=gate_se[:, 0],
        gate_coef=gate_se[:, 1:],
        expert_intercept=per_expert[:, 0],
        expert_coef=per_expert[:, 1:de],
        shared_coef=per_expert[0, de:n_coef],
        dispersion=per_expert[:, n_coef] if per_expert.shape[1] > n_coef else None,
    )
