"""Weighted sufficient statistics, log-sum-exp and small batched solves.

Arrays indexed by expert (or category) and sample are stored expert-major, shape (K, n):
reductions over the experts are then element-wise operations on long contiguous rows,
several times faster than reductions over a short last axis.

Every M-step consumes sums over rows: weighted Gram matrices ``X1' diag(w_k) X1`` and
weighted sums ``W X1``, where ``X1 = [1, X]`` is the design with an intercept column. They
are computed without forming ``X1`` (no copy of the data) and in row blocks (no
``n x K x d`` temporary), so the same functions serve in-memory, mini-batch and distributed
fits.

``X`` may also be a scipy sparse matrix (CSR, as the estimators store it): the products
below then go through sparse matrix products, and X is never densified.
"""

import numpy as np
from scipy import sparse
from scipy.linalg import LinAlgError, cho_factor, cho_solve
from sklearn import get_config

#: Rows per block: large enough for BLAS, small enough for the cache.
BLOCK_ROWS = 16384

#: Relative slack of line searches: at the optimum, objective values differ only by
#: rounding, and a step that is rejected for that reason would stop Newton's method early.
ROUNDING = 8 * np.finfo(float).eps

#: A Newton step whose predicted gain is below this (per unit of weight, or relative to the
#: objective) is taken whole unless it lowers the objective by more than ``NEGLIGIBLE_LOSS``
#: (relative): comparing values that differ by rounding would decide by noise, and chunked
#: sums, rounded differently, would decide otherwise. A larger loss means the quadratic
#: model failed (e.g. saturated probabilities), and the step is halved as usual.
NEGLIGIBLE_GAIN = 1e-12
NEGLIGIBLE_LOSS = 1e-10

#: Designs with more columns than this (one-hot, text) are fitted matrix-free (truncated
#: Newton, one pass over the data per Hessian-vector product) with a diagonal
#: preconditioner, instead of forming and factoring a (d + 1) x (d + 1) matrix per model.
WIDE_DESIGN = 500


def is_wide(n_features):
    """Whether a design of ``n_features`` columns is fitted matrix-free."""
    return n_features + 1 > WIDE_DESIGN


def row_blocks(n, size=BLOCK_ROWS):
    """Slices of ``size`` rows covering ``range(n)``."""
    return [slice(start, start + size) for start in range(0, n, size)]


def row_views(X, size=BLOCK_ROWS):
    """``(rows, X[rows])`` for the ``row_blocks`` of X, lazily; X itself when one block
    holds every row (slicing a sparse matrix copies it, on every pass)."""
    n = X.shape[0]
    if n <= size:
        yield slice(0, n), X
        return
    for rows in row_blocks(n, size):
        yield rows, X[rows]


def linear_predictor(X, coef):
    """``coef @ X1.T`` for ``coef`` of shape (..., d + 1), intercept first; shape (..., n).

    One 2-D product for all leading axes (a stacked matmul of small matrices is about
    twice as slow).
    """
    flat = coef.reshape(-1, coef.shape[-1])
    eta = products(flat[:, 1:], X)
    eta += flat[:, :1]
    return eta.reshape(coef.shape[:-1] + (X.shape[0],))


def products(A, X):
    """``A @ X.T`` of shape (M, n) for ``A`` (M, d), X dense or sparse."""
    if sparse.issparse(X):
        return np.ascontiguousarray((X @ A.T).T)
    return A @ X.T


def log_sum_exp(a, axis=0):
    """``log(sum(exp(a), axis))``, stable.

    ``scipy.special.logsumexp`` gives the same numbers but, on (K, n) arrays with small K,
    takes about 7x longer (array-API dispatch and generic broadcasting); this is the E-step's
    hottest line, so it is written out.
    """
    top = np.max(a, axis=axis, keepdims=True)
    top[~np.isfinite(top)] = 0.0
    out = np.exp(a - top)
    out = np.log(np.sum(out, axis=axis, keepdims=True))
    out += top
    return np.squeeze(out, axis=axis)


def normalise_log(a):
    """Turn the log-weights ``a`` (K, n) into probabilities over axis 0 in place; return
    ``log(sum(exp(a), axis=0))`` (n,).

    One exponential serves both: the probabilities are ``exp(a - top) / total`` of the
    same ``exp(a - top)`` whose sum gives the log-normaliser (the E-step's two
    exponentials were a tenth of its time).
    """
    top = np.max(a, axis=0)
    top[~np.isfinite(top)] = 0.0
    a -= top
    np.exp(a, out=a)
    total = np.sum(a, axis=0)
    a /= total
    log_total = np.log(total)
    log_total += top
    return log_total


def log_softmax(a, axis=0):
    """``(log p, p)`` for ``p = softmax(a, axis)``, from one exponential."""
    top = np.max(a, axis=axis, keepdims=True)
    top[~np.isfinite(top)] = 0.0
    log_p = a - top
    p = np.exp(log_p)
    total = np.sum(p, axis=axis, keepdims=True)
    p /= total
    log_p -= np.log(total)
    return log_p, p


def weighted_sums(X, W):
    """``W X1`` of shape (M, d + 1): weighted sums of the intercept column and of X.

    ``W`` has shape (M, n).
    """
    out = np.empty((W.shape[0], X.shape[1] + 1))
    out[:, 0] = W.sum(axis=1)
    out[:, 1:] = (X.T @ W.T).T if sparse.issparse(X) else long_product(W, X)
    return out


#: Rows per chunk of ``long_product``: OpenBLAS multiplies ``(M, n) @ (n, d)`` for small
#: M and d at half speed or less when n is long (measured on one thread: 24.8 ms against
#: 11.6 ms at n = 1e6, d = 20, M = 8 in chunks of 4096 rows; the kept row products,
#: d = 55, 7.1 ms against 3.5 ms at n = 1e5 in chunks of 1024).
LONG_CHUNK = 4096


def long_product(W, X, chunk=LONG_CHUNK):
    """``W @ X`` for W (M, n) and dense X (n, d) with n long: a sum of products over
    chunks of rows."""
    n = X.shape[0]
    if n <= 2 * chunk:
        return W @ X
    out = W[:, :chunk] @ X[:chunk]
    for start in range(chunk, n, chunk):
        out += W[:, start : start + chunk] @ X[start : start + chunk]
    return out


def weighted_square_sums(X, W):
    """``W (X1 * X1)`` of shape (M, d + 1): the diagonals of the weighted Gram matrices
    (a preconditioner for wide designs), in row blocks."""
    if sparse.issparse(X):
        return weighted_sums(X.multiply(X).tocsr(), W)
    out = np.zeros((W.shape[0], X.shape[1] + 1))
    for rows, Xb in row_views(X):
        out += weighted_sums(Xb**2, W[:, rows])
    return out


#: Doubles of the weighted copies of one row block in ``weighted_grams`` (2 MiB: they
#: stay in cache between the multiply that makes them and the product that reads them).
GRAM_BUFFER = 1 << 18


def _use_row_products(n_weights, d):
    """Whether ``_grams_from_row_products`` is the faster way (measured at n = 1e5 on one
    BLAS thread: from 8 weight vectors on at d <= 10, from 16 at d = 20, 20 at d = 40)."""
    return n_weights >= 8 + d / 4


def kept_products_pay(n_weights, d):
    """Whether one product with kept ``row_products`` beats ``weighted_grams``' stack
    (measured at n = 1e5 on one BLAS thread: level at 2 weight vectors for d = 10, 4 for
    d = 20; 2.8x faster at 8 for d = 10, 1.4x at 8 for d = 40)."""
    return 5 * n_weights >= d


def row_products_fit(n, d):
    """Whether the ``row_products`` of an n x d design fit in scikit-learn's
    ``working_memory`` (``sklearn.set_config``; 1 GiB by default)."""
    return 0 < d and 8 * n * d * (d + 1) // 2 <= get_config()["working_memory"] * 2**20


def row_products(X, size=512):
    """The products ``x_ij x_ik`` (j <= k) of every row of dense X, (n, d (d + 1) / 2),
    upper triangle row-major: ``W @ row_products(X)`` are the upper triangles of all the
    Grams ``X' diag(W[m]) X`` in one product (``weighted_grams(..., products=)``)."""
    n, d = X.shape
    Z = np.empty((n, d * (d + 1) // 2))
    for start in range(0, n, size):
        _fill_row_products(X[start : start + size], Z[start : start + size])
    return Z


def _fill_row_products(Xb, out):
    d = Xb.shape[1]
    ends = np.cumsum(np.arange(d, 0, -1))
    for j in range(d):
        np.multiply(Xb[:, j : j + 1], Xb[:, j:], out=out[:, ends[j] - (d - j) : ends[j]])


def weighted_grams(X, W, products=None):
    """Weighted Gram matrices ``X1' diag(W[m]) X1`` of shape (M, d + 1, d + 1).

    Dense X: per block of rows, the M weighted copies ``W[m] * Xb'`` are written into one
    reused buffer, and all M Grams come from one product of that stack with ``Xb`` (no
    loop over the models, no temporary per model; about twice as fast as a product per
    model, the BLAS floor of the M-step). For many weight vectors (the category pairs of
    a gate's Hessian), ``_grams_from_row_products``. With X's ``row_products`` given
    (kept between iterations), one product ``W @ products`` when that is faster.
    """
    n, d = X.shape
    M = W.shape[0]
    gram = np.zeros((M, d + 1, d + 1))
    if M == 0:
        return gram
    kept = products is not None and kept_products_pay(M, d)
    if sparse.issparse(X):
        for m in range(M):
            gram[m, 1:, 1:] = (X.T @ X.multiply(W[m][:, None]).tocsc()).toarray()
    elif n > 0 and d > 0 and (kept or _use_row_products(M, d)):
        upper = np.triu_indices(d)
        gram[:, upper[0] + 1, upper[1] + 1] = (
            long_product(W, products, 1024) if kept else _grams_from_row_products(X, W)
        )
        gram[:, upper[1] + 1, upper[0] + 1] = gram[:, upper[0] + 1, upper[1] + 1]
    elif n > 0 and d > 0:
        size = int(min(2048, max(64, GRAM_BUFFER // (M * d))))
        stack = np.empty((M, d, min(size, n)))
        lower = np.zeros((M * d, d))
        for start in range(0, n, size):
            Xb = X[start : start + size]
            part = stack[:, :, : Xb.shape[0]]
            np.multiply(Xb.T[None], W[:, None, start : start + size], out=part)
            lower += part.reshape(M * d, -1) @ Xb
        lower = lower.reshape(M, d, d)
        gram[:, 1:, 1:] = lower
        gram[:, 1:, 1:] += lower.transpose(0, 2, 1)
        gram[:, 1:, 1:] *= 0.5  # exactly symmetric, whichever triangle a solver reads
    sums = weighted_sums(X, W)
    gram[:, 0, :] = sums
    gram[:, :, 0] = sums
    return gram


def _grams_from_row_products(X, W, size=512):
    """The upper triangles (M, d (d + 1) / 2) of ``X' diag(W[m]) X``, row-major: per block
    of rows, ``W Z`` with ``Z`` the products ``x_ij x_ik`` (j <= k) of every row, in one
    reused buffer. Half the multiplications of the Grams, and one product for all M:
    2.3x faster than ``weighted_grams``' stack at M = 36, d = 20 (the Hessian of a gate
    over 8 experts), 2x at the 16 leaves of a depth-4 tree, d = 5; slower for few weight
    vectors, where building ``Z`` costs more than the product saves."""
    n, d = X.shape
    upper = np.zeros((W.shape[0], d * (d + 1) // 2))
    Z = np.empty((min(size, n), upper.shape[1]))
    for start in range(0, n, size):
        Xb = X[start : start + size]
        Zb = Z[: Xb.shape[0]]
        _fill_row_products(Xb, Zb)
        upper += W[:, start : start + size] @ Zb
    return upper


def penalty_diagonal(n_coef, alpha):
    """Diagonal of the L2 penalty on an intercept-first coefficient vector (intercept free)."""
    diag = np.full(n_coef, float(alpha))
    diag[0] = 0.0
    return diag


def jacobi_scale(A):
    """``1 / sqrt(diag A[m])`` (1 where the diagonal is not positive), shape (M, d): the
    column scaling that gives every variable of ``A[m] x = b[m]`` a unit diagonal.

    For a weighted Gram matrix this is the scaling of every column of X to unit weighted
    norm, so a solve in the scaled variables does not depend on the columns' units.
    """
    diag = np.diagonal(A, axis1=-2, axis2=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(diag > 0, 1.0 / np.sqrt(diag), 1.0)


def solve_spd(A, b):
    """Solve ``A[m] x = b[m]`` for symmetric positive (semi-)definite ``A[m]``.

    The system is first scaled to a unit diagonal (``jacobi_scale``), so that columns in
    very different units (1e4 next to 1e-4) solve as accurately as standardised ones, and
    the result is returned on the original scale. Cholesky first; a numerically singular
    scaled system (collinear columns, an expert with no weight) falls back to the
    minimum-norm least-squares solution. A system with a non-finite entry is not passed
    to LAPACK (which would print errors and fail): its solution is NaN.
    """
    out = np.full(np.shape(b), np.nan)
    scales = jacobi_scale(A)
    for m in range(A.shape[0]):
        if not (np.all(np.isfinite(A[m])) and np.all(np.isfinite(b[m]))):
            continue
        s = scales[m]
        column = s.reshape((-1,) + (1,) * (np.ndim(b[m]) - 1))
        As = A[m] * s[:, None] * s[None, :]
        bs = b[m] * column
        try:
            factor = cho_factor(As, check_finite=False)
            pivots = np.abs(np.diag(factor[0]))
            if pivots.min() > 1e-7 * pivots.max():
                out[m] = column * cho_solve(factor, bs, check_finite=False)
                continue
        except (LinAlgError, ValueError):
            pass
        out[m] = column * np.linalg.lstsq(As, bs, rcond=None)[0]
    return out


def truncated_newton(evaluate, curvature, x, *, max_iter=3, max_cg=10, tol=1e-12, start=None,
                     objective=None):
    """Maximise a concave objective by truncated Newton; returns ``(x, value)``.

    ``evaluate(x) -> (value, grad)`` (one pass over the data, which may keep per-row state
    for ``curvature``) and ``curvature(d) -> -Hess(x) d`` at the last evaluated point;
    ``x`` is best given in coordinates where the curvature is about the identity (the
    caller's preconditioning). Conjugate gradients solve the Newton system to Eisenstat
    and Walker's forcing term, each iteration one Hessian-vector product (no Hessian is
    formed); a Newton step is accepted only when it raises the objective by a fraction of
    the predicted gain (Armijo), so the objective never decreases, and a step that cannot
    raise it ends the search.

    ``start``, the ``(value, grad)`` of ``evaluate(x)`` with its state kept, saves the first
    evaluation; ``objective(x)``, the value alone, is then used by the line search of the
    last iteration, whose gradient and state nothing reads.

    Written out rather than calling ``scipy.optimize.minimize(method="Newton-CG")``, which
    reaches the same point but spends about twice the passes over the data on its line
    search, in the hottest loop of every EM iteration.
    """
    value, grad = evaluate(x) if start is None else start
    for iteration in range(max_iter):
        last = objective is not None and iteration == max_iter - 1
        grad_norm = np.sqrt(_dot(grad, grad))
        if grad_norm == 0.0:
            break
        # conjugate gradients for (-Hess) step = grad, to a relative residual
        # min(0.5, sqrt(|grad|))
        step = np.zeros_like(x)
        resid, direction = grad.copy(), grad.copy()
        rr = grad_norm**2
        forcing = min(0.5, np.sqrt(grad_norm)) * grad_norm
        for _cg in range(max_cg):
            H_dir = curvature(direction)
            dHd = _dot(direction, H_dir)
            if dHd <= 1e-16 * _dot(direction, direction):
                break
            a = rr / dHd
            step += a * direction
            H_dir *= a
            resid -= H_dir
            rr_new = _dot(resid, resid)
            if np.sqrt(rr_new) <= forcing:
                break
            direction *= rr_new / rr
            direction += resid
            rr = rr_new
        if not np.any(step):
            step = grad
        slope = _dot(grad, step)
        t = 1.0
        # the kept state is that of the last evaluation: the loop ends either on an
        # accepted step or by leaving the search, so curvature always sees the iterate
        negligible = slope <= NEGLIGIBLE_GAIN * (abs(value) + 1.0)
        for _halving in range(30):
            with np.errstate(over="ignore", invalid="ignore"):
                if last:
                    new_value, new_grad = objective(x + t * step), None
                else:
                    new_value, new_grad = evaluate(x + t * step)
            if new_value >= value + 1e-4 * t * slope - ROUNDING * abs(value) or (
                negligible and t == 1.0
                and new_value >= value - NEGLIGIBLE_LOSS * (abs(value) + 1.0)
            ):
                break
            t *= 0.5
        else:
            break
        gain = new_value - value
        x, value, grad = x + t * step, new_value, new_grad
        if gain <= tol * (abs(value) + 1.0):
            break
    return x, value


def _dot(a, b):
    """``sum(a * b)`` by pairwise summation (``np.vdot`` rounds differently, and the
    fits that equal each other to rounding, weighted and repeated rows, part ways)."""
    return float(np.sum(a * b))


def step_halving(evaluate, x, direction, value, negligible, active, max_halvings=40):
    """Per model ``m`` (first axis), the longest step ``x[m] + 2^-j direction[m]`` that does
    not lower ``value[m]`` beyond rounding; ``evaluate(x)`` gives every model's objective.

    A step whose gain is ``negligible[m]`` is taken whole unless it loses more than
    ``NEGLIGIBLE_LOSS``. Models not ``active`` keep their ``x``. Returns the new ``x`` and
    values (``x`` is updated in place).
    """
    expand = (slice(None),) + (None,) * (x.ndim - 1)
    step = np.ones(x.shape[0])
    active = active.copy()
    for _halving in range(max_halvings):
        trial = x + step[expand] * direction
        trial_value = evaluate(trial)
        accept = active & (
            (trial_value >= value - ROUNDING * np.abs(value))
            | (negligible & (step == 1.0)
               & (trial_value >= value - NEGLIGIBLE_LOSS * (np.abs(value) + 1.0)))
        )
        x[accept] = trial[accept]
        value = np.where(accept, trial_value, value)
        active &= ~accept
        if not active.any():
            break
        step[active] *= 0.5
    return x, value


def trust_region(new, old, gram, weight, max_step):
    """``old + f (new - old)`` with ``f <= 1`` such that the step changes the linear
    predictor by at most ``max_step`` in root mean square over each model's data.

    ``new``, ``old`` (M, d + 1) or (M, C, d + 1); ``gram`` (M, d + 1, d + 1) the weighted
    ``X1' diag(w_m) X1`` and ``weight`` (M,) the total weight ``sum w_m``.
    """
    delta = (new - old).reshape(new.shape[0], -1, new.shape[-1])
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_square = np.einsum("mca,mab,mcb->m", delta, gram, delta) / (
            delta.shape[1] * weight
        )
        factor = np.minimum(1.0, max_step / np.sqrt(mean_square))
    factor = np.where(np.isfinite(factor), factor, 1.0)
    return old + factor.reshape((-1,) + (1,) * (new.ndim - 1)) * (new - old)
