"""Batched weighted multinomial logit: the gate, and the classifier's experts.

``M`` multinomial logit models over ``C`` categories share one design ``X1 = [1, X]``.
Model ``m`` has coefficients ``V[m]`` of shape (C, d + 1) (intercept first) and the
penalised objective

    Q_m(V) = sum_i sum_c S[m, c, i] log p_c(x_i; V[m]) - alpha / 2 ||V[m, :, 1:]||^2,

where ``S[m, c, i] >= 0`` are soft counts: sample weight times responsibility times target.
The gate is one model (M=1) over the K experts with ``S = w * resp``; the experts of the
classifier are K models over the classes with ``S[k, c] = W[k] * (y == c)``.

The parametrisation is symmetric (no reference category). ``Q`` does not change when the
same vector is added to every category of a model; the gradient is orthogonal to those
directions, so iterates started at zero stay in the sum-to-zero subspace.
"""

import numpy as np

from ._blocks import one_block
from ._linalg import (
    NEGLIGIBLE_GAIN,
    jacobi_scale,
    linear_predictor,
    log_softmax,
    penalty_diagonal,
    row_views,
    solve_spd,
    step_halving,
    truncated_newton,
    trust_region,
    weighted_grams,
    weighted_sums,
)


def log_proba(X, V):
    """Log category probabilities and probabilities, each of shape (M, C, n)."""
    if V.shape[1] == 2:
        return _binary_log_proba(linear_predictor(X, V[:, 1] - V[:, 0]))
    return log_softmax(linear_predictor(X, V), axis=1)


def _binary_log_proba(eta):
    """``log_proba`` of two categories from the logit ``eta = x (v_1 - v_0)``, (M, n): one
    linear predictor instead of two (the binary gates of a tree are most of its nodes).

    ``log p_1 = -log(1 + e^-eta) = -log1p(e^-|eta|) - max(-eta, 0)``, and symmetrically.
    """
    M, n = eta.shape
    soft = np.abs(eta)
    np.negative(soft, out=soft)
    np.exp(soft, out=soft)
    np.log1p(soft, out=soft)
    log_p = np.empty((M, 2, n))
    np.maximum(eta, 0.0, out=log_p[:, 0])
    log_p[:, 1] = log_p[:, 0] - eta  # max(-eta, 0)
    log_p += soft[:, None]
    np.negative(log_p, out=log_p)
    return log_p, np.exp(log_p)


def objective(S, log_p, V, alpha):
    """Penalised objective of every model, shape (M,)."""
    value = np.einsum("mci,mci->m", S, log_p)
    return value - 0.5 * alpha * np.sum(V[..., 1:] ** 2, axis=(1, 2))


def gradient(X, S, p, V, alpha):
    """Gradient of ``Q_m`` with respect to ``V[m]``, shape (M, C, d + 1)."""
    grad = _unpenalised_gradient(X, S, p)
    grad[..., 1:] -= alpha * V[..., 1:]
    return grad


def _unpenalised_gradient(X, S, p):
    M, C, n = S.shape
    resid = p * -S.sum(axis=1, keepdims=True)
    resid += S
    return weighted_sums(X, resid.reshape(M * C, n)).reshape(M, C, -1)


def hessian_blocks(X, S, P):
    """``X1' diag(w_m (p_c delta_cc' - p_c p_c')) X1`` for the category pairs c <= c',
    shape (M, n_pairs, d + 1, d + 1).

    Only the C (C - 1) / 2 off-diagonal blocks are Gram matrices of the data: the rows of
    the Hessian sum to zero (``sum_c' p_c (delta_cc' - p_c') = 0``), so block (c, c) is
    ``sum_{c' != c} X1' diag(w_m p_c p_c') X1``. At C = 8 that is 28 weighted Grams instead
    of 36, at C = 2 one instead of three.
    """
    M, C, n = S.shape
    if C < 2:
        return np.zeros((M, 1, X.shape[1] + 1, X.shape[1] + 1))
    curv = _pair_weights(P, S.sum(axis=1))
    return pair_blocks(weighted_grams(X, curv), M, C)


def _pair_weights(P, w, out=None):
    """``w_m p_c p_c'`` for the pairs c < c', (M * n_off, n), from P (M, C, n), w (M, n);
    written into ``out`` when given."""
    M, C, n = P.shape
    pairs = np.triu_indices(C, k=1)
    if out is None:
        out = np.empty((M * pairs[0].size, n))
    per_model = out.reshape(M, -1, n)
    for pair, (a, b) in enumerate(zip(*pairs)):
        np.multiply(P[:, a], P[:, b], out=per_model[:, pair])
    per_model *= w[:, None, :]
    return out


def kept_pair_weights(cache, shape, design, out=None):
    """``_pair_weights`` at the probabilities kept by ``evaluate_rows`` (soft counts of
    ``shape`` (M, C, n) on ``design``), into ``out`` when given: the weights of the Grams
    that ``pair_blocks`` assembles into the negative Hessian there."""
    if shape[1] == 2:
        q = cache[_state_key(design, "q")]
        if out is not None:
            out[...] = q
        return q if out is None else out
    return _pair_weights(cache[_state_key(design, "p")], cache[_state_key(design, "w")][:, 0],
                         out)


def pair_blocks(grams, M, C):
    """The blocks of ``hessian_blocks`` (M, n_pairs, d + 1, d + 1) from the Grams of the
    off-diagonal ``_pair_weights`` (M * C (C - 1) / 2, d + 1, d + 1)."""
    d1 = grams.shape[-1]
    iu, ju = np.triu_indices(C)
    off = iu != ju
    grams = grams.reshape(M, int(off.sum()), d1, d1)
    blocks = np.zeros((M, len(iu), d1, d1))
    blocks[:, off] = -grams
    pairs = np.arange(grams.shape[1])
    incidence = np.zeros((C, pairs.size))  # category c belongs to pair k
    incidence[iu[off], pairs] = incidence[ju[off], pairs] = 1.0
    blocks[:, ~off] = np.einsum("ck,mkab->mcab", incidence, grams)
    return blocks


def _assemble_newton_matrix(grams, C, alpha):
    """Negative Hessian (M, C (d+1), C (d+1)) from the pair blocks, made definite on the
    directions that add one vector to every category (the gradient has no component there)."""
    M, _, d1, _ = grams.shape
    iu, ju = np.triu_indices(C)
    H = np.zeros((M, C, d1, C, d1))
    for pair, (a, b) in enumerate(zip(iu, ju)):
        H[:, a, :, b, :] = grams[:, pair]
        H[:, b, :, a, :] = grams[:, pair]
    H = H.reshape(M, C * d1, C * d1)
    H += np.diag(np.tile(penalty_diagonal(d1, alpha), C))
    scale = max(np.trace(H, axis1=1, axis2=2).max() / (C * d1), 1e-12)
    H += scale * np.kron(np.full((C, C), 1.0 / C), np.eye(d1))
    return H


def newton_matrix(X, S, P, alpha):
    """Negative Hessian of ``Q_m``, (M, C (d+1), C (d+1)), made definite on the directions
    that add one vector to every category.

    Block (c, c') is ``X1' diag(w_m (p_c delta_cc' - p_c p_c')) X1``.
    """
    return _assemble_newton_matrix(hessian_blocks(X, S, P), S.shape[1], alpha)


class CachedCounts:
    """A counts function reading the soft counts kept in each block's cache under ``key``
    (a class, not a closure, so that it pickles to dask workers)."""

    def __init__(self, key):
        self.key = key

    def __call__(self, block):
        return block.cache[self.key]


def _newton_value_block(block, design, counts, V):
    S = counts(block)
    return np.einsum("mci,mci->m", S, log_proba(getattr(block, design), V)[0])


def _newton_system_block(block, design, counts, V):
    X, S = getattr(block, design), counts(block)
    p = log_proba(X, V)[1]
    return _unpenalised_gradient(X, S, p), hessian_blocks(X, S, p)


def maximise_newton(X, S, V, alpha, *, max_steps=100, tol=1e-10):
    """Newton's method with step halving on in-memory arrays; see ``maximise_newton_blocks``."""
    source = one_block(X_expert=X, cache={"counts": S})
    return maximise_newton_blocks(
        source, "X_expert", CachedCounts("counts"), V, alpha, max_steps=max_steps, tol=tol
    )


def maximise_newton_blocks(source, design, counts, V, alpha, *, max_steps=100, tol=1e-10):
    """Newton's method with step halving for every model at once; returns the new ``V``.

    ``counts(block)`` gives a block's soft counts (M, C, n_rows) and ``design`` names its
    design matrix. No model's objective ever decreases. For small ``C (d + 1)``: each step
    builds the exact Hessian from ``C (C + 1) / 2`` weighted Grams per model, one pass for
    the gradient and Hessian and one per trial step.
    """
    V = V.copy()
    M, C, d1 = V.shape

    def penalised(value, V):
        return value - 0.5 * alpha * np.sum(V[..., 1:] ** 2, axis=(1, 2))

    value = penalised(source.reduce(_newton_value_block, design, counts, V), V)
    for _ in range(max_steps):
        grad, grams = source.reduce(_newton_system_block, design, counts, V)
        grad[..., 1:] -= alpha * V[..., 1:]
        H = _assemble_newton_matrix(grams, C, alpha)
        direction = solve_spd(H, grad.reshape(M, C * d1)).reshape(V.shape)
        negligible = np.einsum("mcd,mcd->m", grad, direction) <= NEGLIGIBLE_GAIN * (
            np.abs(value) + 1.0
        )
        old = V.copy()
        V, value = step_halving(
            lambda trial: penalised(
                source.reduce(_newton_value_block, design, counts, trial), trial
            ),
            V, direction, value, negligible, np.ones(M, dtype=bool),
        )
        if np.max(np.abs(V - old)) <= tol * (1.0 + np.max(np.abs(V))):
            break
    return V


def bound_factor(gram, alpha):
    """Inverse ``R^-1`` of the upper Cholesky factor of Böhning's bound ``G_m / 2 + alpha P``
    (Böhning 1992), shape (M, d + 1, d + 1).

    On the sum-to-zero subspace, ``-Hess Q_m <= (I - J / C) / 2 kron G_m + alpha I kron P``
    with ``G_m = X1' diag(w_m) X1``: in the coordinates ``U = V R'`` the curvature is at
    most one in every direction, the scaling a quasi-Newton method wants.
    """
    B = 0.5 * gram + np.diag(penalty_diagonal(gram.shape[-1], alpha))
    # factor the bound scaled to a unit diagonal (B = D^-1 Bs D^-1, D = jacobi_scale), so
    # the jitter is relative to every column's own scale, not to the largest one
    scale = jacobi_scale(B)
    scaled = B * scale[:, :, None] * scale[:, None, :]
    lower = np.linalg.cholesky(scaled + 1e-10 * np.eye(B.shape[-1]))
    return scale[:, :, None] * np.linalg.inv(lower).transpose(0, 2, 1)


def _weighted_sums_3d(X, A):
    """``A X1`` for A of shape (M, C, n): (M, C, d + 1)."""
    M, C, n = A.shape
    return weighted_sums(X, A.reshape(M * C, n)).reshape(M, C, -1)


def _state_key(design, name):
    """Cache key of the curvature state of the models fitted on ``design``: the gate's and
    the multinomial experts' live side by side in one block."""
    return f"logit_{name}:{design}"


def evaluation_state(cache, shape, design):
    """The per-row arrays that the curvature passes read, for soft counts of ``shape``
    (M, C, n) on ``design``: those already in a block's ``cache`` when they fit, else new
    ones."""
    M, C, n = shape
    names = {"q": (M, n)} if C == 2 else {"p": shape, "w": (M, 1, n)}
    wanted = {_state_key(design, name): key_shape for name, key_shape in names.items()}
    state = {}
    for key, key_shape in wanted.items():
        array = cache.get(key)  # the previous point's values are not needed
        fits = array is not None and array.shape == key_shape
        state[key] = array if fits else np.empty(key_shape)
    return state


def evaluate_rows(Xb, Sb, log_pb, pb, state, rows, design):
    """Unpenalised objective and gradient (in V) of the rows ``rows`` of a block, from their
    soft counts ``Sb`` and log-probabilities and probabilities (``log_proba``; ``pb`` is
    overwritten); keeps the rows' curvature state in ``state`` (``evaluation_state``).

    For two categories, with ``w = S_0 + S_1`` the gradient rows are ``+-X1'(S_1 - w p_1)``
    and the curvature weight is ``w p_0 p_1`` (kept as ``q``), so each pass costs one
    product with X per node, not two.
    """
    M, C, _ = Sb.shape
    value = np.einsum("mci,mci->", Sb, log_pb)
    if C == 2:
        weight = Sb.sum(axis=1)
        resid = Sb[:, 1] - weight * pb[:, 1]
        q = state[_state_key(design, "q")][:, rows]
        np.multiply(pb[:, 0], pb[:, 1], out=q)
        q *= weight
        grad = np.empty((M, 2, Xb.shape[1] + 1))
        grad[:, 1] = weighted_sums(Xb, resid)
        grad[:, 0] = -grad[:, 1]
        return value, grad
    weights = Sb.sum(axis=1, keepdims=True)
    state[_state_key(design, "w")][..., rows] = weights
    state[_state_key(design, "p")][..., rows] = pb
    pb *= -weights
    pb += Sb
    return value, _weighted_sums_3d(Xb, pb)


def _tn_evaluate_block(block, design, counts, V):
    """Unpenalised objective and gradient (in V) of one block; keeps the curvature state."""
    X, S = getattr(block, design), counts(block)
    state = evaluation_state(block.cache, S.shape, design)
    value, grad = 0.0, np.zeros(V.shape)
    for rows, Xb in row_views(X):
        log_pb, pb = log_proba(Xb, V)
        part_value, part_grad = evaluate_rows(Xb, S[..., rows], log_pb, pb, state, rows, design)
        value += part_value
        grad += part_grad
    return state, (value, grad)


def _tn_value_block(block, design, counts, V):
    """Unpenalised objective of one block (no gradient, no state)."""
    X, S = getattr(block, design), counts(block)
    value = 0.0
    for rows, Xb in row_views(X):
        value += np.einsum("mci,mci->", S[..., rows], log_proba(Xb, V)[0])
    return value


def _tn_curvature_block(block, design, counts, D):
    """Unpenalised ``-Hess Q`` times ``D`` (in V) on one block, at the kept probabilities."""
    X, S = getattr(block, design), counts(block)
    if S.shape[1] == 2:
        return _tn_curvature_binary(X, block.cache[_state_key(design, "q")], D)
    p, weights = block.cache[_state_key(design, "p")], block.cache[_state_key(design, "w")]
    out = np.zeros(D.shape)
    for rows, Xb in row_views(X):
        pb = p[..., rows]
        A = linear_predictor(Xb, D)
        A -= np.sum(pb * A, axis=1, keepdims=True)
        A *= pb
        A *= weights[..., rows]
        out += _weighted_sums_3d(Xb, A)
    return out


def _tn_curvature_binary(X, q, D):
    """``_tn_curvature_block`` for two categories: rows ``+-X1' diag(q) X1 (d_1 - d_0)``."""
    out = np.zeros(D.shape)
    delta = D[:, 1] - D[:, 0]
    for rows, Xb in row_views(X):
        A = linear_predictor(Xb, delta)
        A *= q[:, rows]
        out[:, 1] += weighted_sums(Xb, A)
    out[:, 0] = -out[:, 1]
    return out


def maximise_truncated_newton(X, S, V, alpha, inv_factor, *, max_iter=3, max_cg=10, tol=1e-12):
    """Truncated Newton on in-memory arrays; see ``maximise_truncated_newton_blocks``."""
    source = one_block(X_gate=X, cache={"counts": S})
    return maximise_truncated_newton_blocks(
        source, "X_gate", CachedCounts("counts"), V, alpha, inv_factor,
        max_iter=max_iter, max_cg=max_cg, tol=tol,
    )


def maximise_truncated_newton_blocks(
    source, design, counts, V, alpha, inv_factor, *, max_iter=3, max_cg=10, tol=1e-12,
    start=None,
):
    """Truncated Newton on ``sum_m Q_m`` in the coordinates ``U = V R'``; returns the new ``V``.

    ``counts(block)`` gives a block's soft counts and ``design`` names its design matrix.
    ``inv_factor`` is ``R^-1`` from ``bound_factor``: in these coordinates Böhning's bound
    is the identity, so conjugate gradients (``skmoe._linalg.truncated_newton``) need few
    Hessian-vector products, each one pass over the data. For wide designs it is the
    diagonal (M, d + 1) of ``diagonal_factor`` instead. No model's Hessian is formed, and
    the objective never decreases.

    ``start``, the unpenalised objective and gradient at ``V`` with the curvature state at
    ``V`` in the blocks (as ``evaluate_rows`` leaves them; the E-step computes both), saves
    the first pass. It may hold a third item, the Hessian blocks at ``V``
    (``hessian_blocks``): the conjugate-gradient steps at ``V`` are then products with
    that small matrix instead of passes over the data (the same steps up to rounding). The
    last Newton step's line search evaluates the objective only.
    """
    at_start = [start is not None and len(start) > 2]
    hessian = start[2] if at_start[0] else None

    def evaluate(U):
        """Objective and gradient in U coordinates: one pass, keeping the probabilities."""
        W = _from_preconditioned(U, inv_factor)
        at_start[0] = False
        value, grad = source.update(_tn_evaluate_block, design, counts, W)
        value -= 0.5 * alpha * np.sum(W[..., 1:] ** 2)
        grad[..., 1:] -= alpha * W[..., 1:]
        return value, _gradient_to_preconditioned(grad, inv_factor)

    def curvature(direction):
        """``-Hess Q`` times ``direction``, in U coordinates, at the last accepted point."""
        D = _from_preconditioned(direction, inv_factor)
        if at_start[0]:
            out = _hessian_product(hessian, D)
        else:
            out = source.reduce(_tn_curvature_block, design, counts, D)
        out[..., 1:] += alpha * D[..., 1:]
        return _gradient_to_preconditioned(out, inv_factor)

    def objective(U):
        """The objective alone: one pass, no state kept."""
        W = _from_preconditioned(U, inv_factor)
        value = source.reduce(_tn_value_block, design, counts, W)
        return value - 0.5 * alpha * np.sum(W[..., 1:] ** 2)

    if start is not None:
        value, grad = start[:2]
        grad = grad.copy()
        grad[..., 1:] -= alpha * V[..., 1:]
        start = (value - 0.5 * alpha * np.sum(V[..., 1:] ** 2),
                 _gradient_to_preconditioned(grad, inv_factor))
    U = _to_preconditioned(V, inv_factor)
    U, _ = truncated_newton(evaluate, curvature, U, max_iter=max_iter, max_cg=max_cg, tol=tol,
                            start=start, objective=objective)
    V = _from_preconditioned(U, inv_factor)
    # back onto the sum-to-zero subspace: the probabilities are the same and the penalty
    # does not grow, while rounding along the flat direction (the same intercept added to
    # every category) would otherwise build up from one M-step to the next
    V -= V.mean(axis=1, keepdims=True)
    return V


def _hessian_product(blocks, D):
    """Unpenalised ``-Hess Q`` times ``D`` (M, C, d + 1) from the pair blocks of
    ``hessian_blocks`` (M, n_pairs, d + 1, d + 1)."""
    C = D.shape[1]
    out = np.zeros(D.shape)
    for pair, (a, b) in enumerate(zip(*np.triu_indices(C))):
        out[:, a] += np.einsum("mij,mj->mi", blocks[:, pair], D[:, b])
        if a != b:
            out[:, b] += np.einsum("mij,mj->mi", blocks[:, pair], D[:, a])
    return out


def diagonal_factor(square_sums, alpha):
    """The diagonal counterpart of ``bound_factor`` for wide designs, shape (M, d + 1):
    ``1 / sqrt`` of the diagonal of ``G_m / 2 + alpha P`` (Jacobi preconditioning), from
    ``square_sums`` = ``weighted_square_sums`` (no (d + 1) x (d + 1) matrix)."""
    B = 0.5 * square_sums + penalty_diagonal(square_sums.shape[-1], alpha)
    jitter = 1e-10 * B.mean(axis=-1, keepdims=True) + 1e-300
    return 1.0 / np.sqrt(B + jitter)


def _to_preconditioned(V, factor):
    """``U = V R'`` for a factor ``R^-1`` (M, d1, d1), or ``U = V / f`` for a diagonal one."""
    if factor.ndim == 2:
        return V / factor[:, None, :]
    return np.linalg.solve(factor[:, None], V[..., None])[..., 0]


def _from_preconditioned(U, factor):
    """``V_c' = R^-1 U_c'``."""
    if factor.ndim == 2:
        return U * factor[:, None, :]
    return U @ factor.transpose(0, 2, 1)


def _gradient_to_preconditioned(grad, factor):
    """``dQ/dU = dQ/dV R^-1``."""
    if factor.ndim == 2:
        return grad * factor[:, None, :]
    return grad @ factor


class SoftmaxSurrogate:
    """Quadratic surrogate of ``M`` softmax models over ``C`` categories, soft counts ``S``:
    the statistics and the solve of stepwise online EM for the gate and multinomial experts.

    Model ``m`` has coefficients ``V[m]`` (C, d + 1) in the symmetric sum-to-zero
    parametrisation and the objective ``sum_i sum_c S[m, c, i] log p_c(x_i)``. A block gives
    the gradient ``g`` at ``V`` and a curvature ``H``: with ``curvature="hessian"`` the exact
    negative Hessian, block (c, c') ``X1' diag(w_m (p_c delta_cc' - p_c p_c')) X1`` (an
    averaged IRLS step); with ``curvature="bound"`` Böhning's bound
    ``(1/2)(I - J/C) kron X1' diag(w_m) X1``, which minorises the objective everywhere (a
    stochastic MM step), ``w_m = sum_c S[m, c]``. ``solve`` maximises
    ``<H V + g, V> - V' H V / 2 - lam / 2 ||V[..., 1:]||^2`` over the sum-to-zero subspace;
    every statistic is additive over blocks (and may be averaged over mini-batches).
    """

    def __init__(self, curvature):
        if curvature not in ("hessian", "bound"):
            raise ValueError(
                f"partial_fit_gate_curvature must be 'bound' or 'hessian'; got {curvature!r}."
            )
        self.curvature = curvature

    def statistics(self, X, S, V):
        M, C, n = S.shape
        d1 = X.shape[1] + 1
        weight = S.sum(axis=1)
        p = log_proba(X, V)[1]
        gram = weighted_grams(X, weight)
        if self.curvature == "bound":
            # on the subspace (I - J/C) is the identity: H V is gram V / 2 per category
            curvature, HV = gram, 0.5 * (V @ gram)
        else:
            iu, ju = np.triu_indices(C)
            grams = hessian_blocks(X, S, p)
            H = np.zeros((M, C, d1, C, d1))
            H[:, iu, :, ju, :] = grams.transpose(1, 0, 2, 3)
            H[:, ju, :, iu, :] = grams.transpose(1, 0, 2, 3)
            curvature = H.reshape(M, C * d1, C * d1)
            HV = (curvature @ V.reshape(M, C * d1, 1)).reshape(M, C, d1)
        p *= -weight[:, None, :]
        p += S
        grad = weighted_sums(X, p.reshape(M * C, n)).reshape(M, C, d1)
        stats = {"curvature": curvature, "linear": HV + grad, "weight": weight.sum(axis=1)}
        if self.curvature == "hessian":
            stats["gram"] = gram
        return stats

    def solve(self, stats, V, lam, max_step):
        """The surrogate's maximiser; Hessian steps held in the trust region ``max_step``
        (``skmoe._linalg.trust_region``). Models with no weight keep ``V``."""
        M, C, d1 = V.shape
        penalty = penalty_diagonal(d1, lam)
        if self.curvature == "bound":
            A = 0.5 * stats["curvature"] + np.diag(penalty)
            new = solve_spd(A, stats["linear"].transpose(0, 2, 1)).transpose(0, 2, 1)
        else:
            # definite along the directions that add one vector to every category, where
            # the linear term has no component (as in newton_matrix)
            A = stats["curvature"] + np.diag(np.tile(penalty, C))
            scale = max(np.trace(A, axis1=1, axis2=2).max() / (C * d1), 1e-12)
            A += scale * np.kron(np.full((C, C), 1.0 / C), np.eye(d1))
            new = solve_spd(A, stats["linear"].reshape(M, C * d1)).reshape(M, C, d1)
        new -= new.mean(axis=1, keepdims=True)
        weight = stats["weight"]
        empty = (weight <= 1e-10 * max(float(weight.max(initial=0.0)), 1e-300)) | ~np.all(
            np.isfinite(new), axis=(1, 2)
        )
        new[empty] = V[empty]
        if self.curvature == "hessian":
            new = trust_region(new, V, stats["gram"], weight, max_step)
        return new
