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

from ._em import group_blocks
from ._families import require
from ._linalg import penalty_diagonal, row_blocks

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


def _local_layout(parts, n_columns):
    """Per response: its part, the first position of its parameters among an expert's
    local ones, its number of coefficients (intercept, its columns, the shared columns)
    and of all its local parameters (the coefficients, then the dispersions)."""
    layout, first = [], 0
    for part in parts:
        de = 1 + (n_columns if part.columns is None else len(part.columns))
        size = de + len(part.family.dispersion_labels)
        layout.append((part, first, de, size))
        first += size
    return layout, first


def parameter_layout(family, K, dg, n_own, parts):
    """Where every expert's local parameters sit in the parameter vector.

    An expert's local parameters are, per response (``parts``, of
    ``family.response_parts``), its coefficients on all its columns of ``X_expert``
    (intercept, its own columns, then the ``family.n_shared`` shared ones) and its
    dispersion (as ``dispersion_labels``, if any). The vector holds the gate contrasts,
    then per expert its own coefficients and, unless pooled, its dispersion, then once the
    shared coefficients and a pooled dispersion (``family.pooled_keys``; one response
    with one dispersion only). Returns the (K, L) positions of the local parameters, the
    vector's length and the first position of what all experts share.
    """
    start = (K - 1) * dg
    if len(parts) > 1:  # several responses: nothing shared, each expert's block in turn
        _, per_expert = _local_layout(parts, n_own)
        index = start + np.arange(K)[:, None] * per_expert + np.arange(per_expert)
        return index, start + K * per_expert, start + K * per_expert
    n_disp = len(family.dispersion_labels)
    pooled = n_disp == 1 and bool(family.pooled_keys)
    n_shared = family.n_shared
    per_expert = 1 + n_own + (0 if pooled else n_disp)
    shared = start + K * per_expert + np.arange(n_shared + pooled)
    index = []
    for k in range(K):
        own = start + k * per_expert + np.arange(per_expert)
        local = [own[: 1 + n_own], shared[:n_shared]]
        if n_disp:
            local.append(shared[n_shared:] if pooled else own[1 + n_own:])
        index.append(np.concatenate(local))
    first_shared = start + K * per_expert
    return np.array(index, dtype=np.intp).reshape(K, -1), first_shared + shared.size, first_shared


def parameter_names(family, K, gate_names, expert_names, params, shared_names=()):
    """Labels of the parameter vector, as (block, expert, name) triples; the block
    ``"shared"`` (expert None) holds what all experts share; with several responses every
    expert name is prefixed by its response (``"y0: x"``)."""
    names = [("gate", j, name) for j in range(1, K) for name in ["(Intercept)", *gate_names]]
    parts = family.response_parts(params)
    index, P, first_shared = parameter_layout(family, K, len(gate_names) + 1,
                                              len(expert_names), parts)
    names += [None] * (P - len(names))
    local = []
    for part in parts:
        prefix = "" if part.label is None else f"{part.label}: "
        columns = expert_names if part.columns is None else [expert_names[c] for c in part.columns]
        local += [prefix + name for name in ["(Intercept)", *columns, *shared_names,
                                             *part.family.dispersion_labels]]
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
    n_own = data.X_expert.shape[1] - family.n_shared
    parts = family.response_parts(params["experts"])
    layout, _ = _local_layout(parts, data.X_expert.shape[1])
    index, P, _ = parameter_layout(family, K, dg, n_own, parts)
    n_gate = (K - 1) * dg
    info = np.zeros((P, P))
    n = data.y.shape[0]
    # a grouped model's rows are sorted by group: its blocks never split a group
    starts = getattr(model, "starts", None)
    if starts is None:
        blocks = [(rows, None) for rows in row_blocks(n, ROW_BLOCK)]
    else:
        blocks = group_blocks(starts, n, ROW_BLOCK)
    for rows, units in blocks:
        groups = None if units is None else starts[units] - rows.start
        info -= _block_hessian(model, data, params, rows, groups, dg, layout, index, P)
    # penalty Hessians. Gate: alpha/2 sum_k ||V_k||^2 in the symmetric coding is, in the
    # reference coding V'_j = V_j - V_0, alpha/2 sum_k ||V'_k - mean(V')||^2.
    centring = np.eye(K - 1) - np.full((K - 1, K - 1), 1.0 / K)
    info[:n_gate, :n_gate] += np.kron(centring, np.diag(penalty_diagonal(dg, gate.alpha)))
    for part, first, de, size in layout:
        if not part.family.alpha:
            continue
        # in (own coefficients, dispersion): the shared coefficients are not penalised
        n_shared = part.family.n_shared
        penalty = part.family.penalty_information(part.params, de - n_shared)
        local = first + np.r_[0 : de - n_shared, de:size]
        for k in range(K):
            block = index[k][local]
            info[np.ix_(block, block)] += penalty[k]
    return info


def _block_hessian(model, data, params, rows, groups, dg, layout, index, P):
    """Hessian of the observed log-likelihood summed over a block of rows; ``layout`` of
    ``_local_layout`` and ``index`` of ``parameter_layout``. With ``groups`` (the first row
    of every group in the block), of the grouped likelihood, whose component scores and
    Hessians are the sums of the rows' expert terms plus one gate term per group (every
    row its own group without)."""
    family, experts = model.family, params["experts"]
    K, L = index.shape
    part = data.take(rows)
    Xg, Xe, y, w, offset = part.X_gate, part.X_expert, part.y, part.sample_weight, part.offset
    n = y.shape[0]
    if sparse.issparse(Xg):  # the information is dense anyway, (K p)^2
        Xg = Xg.toarray()
    if sparse.issparse(Xe):
        Xe = Xe.toarray()
    if groups is None:
        groups = np.arange(n)
    row_group = np.repeat(np.arange(groups.size), np.diff(np.r_[groups, n]))
    Xg1 = np.column_stack([np.ones(groups.size), Xg[groups]])
    wg = w[groups]
    g = np.exp(model.gate.log_prob(Xg[groups], params["gate"]))  # (K, n_groups)
    joint = np.add.reduceat(family.log_prob(Xe, y, experts, offset), groups, axis=1)
    joint += np.log(g)
    r = np.exp(joint - joint.max(axis=0))
    r /= r.sum(axis=0)
    # every response's derivatives in its linear predictor and dispersion (c_ik sums them)
    terms = []
    for response, first, de, size in layout:
        X1 = np.column_stack([np.ones(n), response.X(Xe)])
        eta = response.family.eta(X1[:, 1:], response.params,
                                  offset if response.column is None else None)
        d_eta, d_eta2, d_t, d_t2, d_eta_t = response.family.information_terms(
            response.y(y), eta, response.params)
        if size - de == 1 and np.ndim(d_t) == 2:  # one dispersion: (K, n) arrays
            d_t, d_t2, d_eta_t = d_t[None], d_t2[None, None], d_eta_t[None]
        terms.append((X1, first, de, size - de, (d_eta, d_eta2, d_t, d_t2, d_eta_t)))

    n_gate = (K - 1) * dg
    # the rows' local expert scores, summed over each group's rows; then the groups'
    # scores s_gk, shape (n_groups, K, P): the gate's, and expert k's at its positions
    local_S = np.zeros((n, K, L))
    for k in range(K):
        for X1, first, de, n_disp, (d_eta, _, d_t, _, _) in terms:
            local_S[:, k, first : first + de] = d_eta[k][:, None] * X1
            for a in range(n_disp):
                local_S[:, k, first + de + a] = d_t[a, k]
    local_S = np.add.reduceat(local_S, groups, axis=0)
    S = np.zeros((groups.size, K, P))
    for k in range(K):
        for j in range(1, K):
            S[:, k, (j - 1) * dg : j * dg] = ((k == j) - g[j])[:, None] * Xg1
        S[:, k, index[k]] = local_S[:, k]
    sbar = np.einsum("ki,ikp->ip", r, S)
    H = np.einsum("i,ki,ikp,ikq->pq", wg, r, S, S) - np.einsum("i,ip,iq->pq", wg, sbar, sbar)
    # gate curvature: the same for every k, and sum_k r_ik = 1
    free = g[1:]  # Hess log g_k in (V'_j, V'_l): -(g_j delta_jl - g_j g_l) x x'
    curv = free[:, None, :] * free[None] - np.eye(K - 1)[:, :, None] * free[:, None, :]
    H[:n_gate, :n_gate] += np.einsum("jli,i,ia,ib->jalb", curv, wg, Xg1, Xg1).reshape(
        n_gate, n_gate
    )
    for k in range(K):  # expert k's local Hessian, added at its positions
        rw = w * r[k][row_group]
        local = np.zeros((L, L))
        for X1, first, de, n_disp, (_, d_eta2, _, d_t2, d_eta_t) in terms:
            coef = slice(first, first + de)
            local[coef, coef] = np.einsum("i,ia,ib->ab", rw * d_eta2[k], X1, X1)
            t = slice(first + de, first + de + n_disp)
            if n_disp:
                local[coef, t] = (rw * d_eta_t[:, k] @ X1).T
                local[t, coef] = local[coef, t].T
                local[t, t] = np.einsum("abi,i->ab", d_t2[:, :, k], rw)
        H[np.ix_(index[k], index[k])] += local
    return H


def free_parameters(family, params, K, dg, de):
    """Mask of the parameter vector's entries that are parameters (``de``: one plus the
    experts' own columns): not the local ones of components without expert parameters
    (``family.fixed_experts``, e.g. the point mass at zero of zero-inflated experts, whose
    gate output stays a parameter)."""
    index, P, first_shared = parameter_layout(family, K, dg, de - 1,
                                              family.response_parts(params))
    free = np.ones(P, dtype=bool)
    fixed = getattr(family, "fixed_experts", None)
    if fixed is not None:
        for k in np.flatnonzero(fixed(params)):
            free[index[k][index[k] < first_shared]] = False
    return free


def standard_errors(estimator, X, y, sample_weight=None, exposure=None, groups=None):
    """``standard_errors`` of a fitted flat estimator (see its docstring)."""
    from sklearn.utils import Bunch

    from ._em import warn

    data, model, _ = estimator._posterior_data(X, y, exposure, sample_weight, groups)
    params = estimator._params
    family = model.family
    require(family, "standard_errors")
    info = observed_information(model, data, params)
    K = model.gate.n_leaves
    gate = params["gate"][0][0]
    experts = params["experts"]
    dg = len(estimator.gate_features_in_) + 1
    parts = family.response_parts(experts)
    n_columns = len(estimator.expert_features_in_) + family.n_shared
    layout, _ = _local_layout(parts, n_columns)
    index, P, _ = parameter_layout(family, K, dg, n_columns - family.n_shared, parts)
    local = []
    for part in parts:
        local.append(part.family.full_coef(part.params))
        local += [values[:, None] for values in part.family.reported_dispersions(part.params)]
    estimate = np.empty(P)
    estimate[: (K - 1) * dg] = (gate[1:] - gate[0]).ravel()
    estimate[index] = np.concatenate(local, axis=1)
    names = parameter_names(
        family,
        K,
        estimator._feature_labels(estimator.gate_features_in_),
        estimator._feature_labels(estimator.expert_features_in_),
        experts,
        estimator._feature_labels(estimator.shared_features_in_),
    )
    free = free_parameters(family, experts, K, dg, n_columns - family.n_shared + 1)
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
            " ".join(str(part) for part in (block, k, name) if part is not None)
            for (block, k, name), hit in zip(names, aliased)
            if hit
        ]
        warn(
            "The data do not identify these parameters (aliased with the ones before "
            f"them, e.g. collinear columns); their standard errors are NaN: {labels}.",
            UserWarning,
        )
    se_all = np.full(P, np.nan)  # NaN for what is not a parameter
    se_all[free] = se
    gate_se = se_all[: (K - 1) * dg].reshape(K - 1, dg)
    per_expert = se_all[index]
    n_shared = family.n_shared
    intercept, coef, dispersion, dispersions = [], [], [], []
    for _, first, de, size in layout:
        own = per_expert[:, first : first + size]
        intercept.append(own[:, 0])
        coef.append(own[:, 1 : de - n_shared])
        dispersion.append(own[:, de] if size > de else None)
        dispersions.append(own[:, de:])
    _, first, de, _ = layout[0]
    shared_coef = per_expert[0, first + de - n_shared : first + de]
    if len(layout) == 1:
        intercept, coef, dispersion, dispersions = (intercept[0], coef[0], dispersion[0],
                                                    dispersions[0])
    else:  # several responses: intercepts (K, R), a list of the rest per response
        intercept = np.column_stack(intercept)
    return Bunch(
        estimate=estimate,
        se=se,
        names=names,
        covariance=covariance,
        gate_intercept=gate_se[:, 0],
        gate_coef=gate_se[:, 1:],
        expert_intercept=intercept,
        expert_coef=coef,
        shared_coef=shared_coef,
        dispersion=dispersion,
        dispersions=dispersions,
    )
