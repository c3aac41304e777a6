"""Where EM starts: initial responsibilities, and the multistart search.

Every start is a set of weighted responsibilities ``W`` kept in the blocks; the first
M-step turns it into parameters. The strategies:

- ``"multistart"`` (the default): EM from successive candidate starts until two runs
  agree on the best optimum found (``search_start``);
- ``"kmeans"``: hard k-means clusters of the standardised ``[X, y]`` (greedy k-means++
  seeding from row hashes, then Lloyd's iterations);
- ``"voronoi"``: hard responsibilities of a random Voronoi partition of the standardised
  ``[X, y]``;
- ``"random"``: soft responsibilities drawn from a hash of each row and the seed;
- ``"tree"``: the leaves of a CART tree with as many leaves as experts;
- an array of responsibilities.

The random draws come from a hash of each row's values (``row_uniforms``), never from
the row's position, so starts, and fits, do not depend on the row order or the chunking,
and integer sample weights equal repeated rows.
"""

import operator
from dataclasses import replace

import numpy as np
from scipy import sparse

from ._blocks import WEIGHTS, InMemoryBlocks, concatenate
from ._linalg import row_blocks

#: Most Lloyd iterations of the ``"kmeans"`` start.
KMEANS_ITERATIONS = 20

#: Shape of the Beta(a, 1) draws of the random start.
RANDOM_START_CONCENTRATION = 0.3

#: ``"multistart"``: the kinds of candidate start in turn, the most runs, and the
#: per-sample difference of objectives under which two runs agree (``search_start``).
SEARCH_SEQUENCE = ("kmeans", "random")
SEARCH_RUNS = 8
SEARCH_AGREEMENT = 1e-5
#: A later search run gets ``SEARCH_PRUNE_FACTOR`` times the iterations of the best run so
#: far (at least ``SEARCH_PRUNE_MIN``); if it is then still below the best objective, it
#: stops there (``search_start``).
SEARCH_PRUNE_FACTOR = 5
SEARCH_PRUNE_MIN = 50
#: After the search, one split-and-merge move from its best (``_split_merge_run``) gets
#: this many iterations (or the best run's, if more) to climb above the best, else stops.
SPLIT_MERGE_BUDGET = 10
#: Above a total sample weight of twice ``SEARCH_SUBSAMPLE_ROWS``, the search runs on a
#: subsample of about that many rows (of unit weight), and one run on all rows continues
#: from its best (``search_start``).
SEARCH_SUBSAMPLE_ROWS = 20_000

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(x):
    """splitmix64's finaliser on an array of uint64 (wrapping arithmetic)."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def row_keys(n_columns, rng):
    """Odd 64-bit multipliers, one per column, for ``row_uniforms``."""
    keys = rng.integers(1, 2**62, size=n_columns, dtype=np.uint64)
    return keys * np.uint64(2) + np.uint64(1)


def row_uniforms(columns, n_draws, keys):
    """Uniform numbers in (0, 1), shape (n_draws, n), that depend only on each row's values
    and on ``keys`` (from ``row_keys``): the same for a row wherever it stands and however
    often it repeats, so an initialisation drawn from them is invariant to row order and
    chunking, and integer sample weights equal repeated rows.

    ``columns`` is a list of arrays of n rows (2-D, or 1-D for one column) whose values,
    side by side, make the rows; a 2-D one may be a sparse matrix (a zero adds nothing
    to the hash, so a sparse row hashes as its dense copy).
    """
    columns = [c if sparse.issparse(c) else c.reshape(c.shape[0], -1) for c in columns]
    row_hash = np.zeros(columns[0].shape[0], dtype=np.uint64)
    with np.errstate(over="ignore"):
        start = 0
        for part in columns:
            width = part.shape[1]
            part_keys = keys[start : start + width]
            start += width
            if sparse.issparse(part):
                row_hash += _sparse_row_hash(part, part_keys)
                continue
            for rows in row_blocks(part.shape[0]):
                bits = np.ascontiguousarray(part[rows] + 0.0, dtype=np.float64)  # -0.0 -> 0.0
                row_hash[rows] += (_mix(bits.view(np.uint64)) * part_keys).sum(
                    axis=1, dtype=np.uint64
                )
        row_hash = _mix(row_hash)
        draws = _mix(
            row_hash[None, :] + (np.arange(1, n_draws + 1, dtype=np.uint64) * _GOLDEN)[:, None]
        )
    return ((draws >> np.uint64(11)).astype(np.float64) + 0.5) / 2.0**53


def _sparse_row_hash(part, keys):
    """``row_uniforms``' per-row sum over the stored values of a sparse matrix (``_mix(0)``
    is 0, so the zeros left out add nothing)."""
    part = sparse.csr_matrix(part, copy=True)
    part.sum_duplicates()
    bits = np.ascontiguousarray(part.data + 0.0, dtype=np.float64)  # -0.0 -> 0.0
    terms = np.append(_mix(bits.view(np.uint64)) * keys[part.indices], np.uint64(0))
    sums = np.add.reduceat(terms, part.indptr[:-1], dtype=np.uint64)
    sums[np.diff(part.indptr) == 0] = 0
    return sums


def _block_columns(block):
    return [block.X_expert, block.X_gate, block.y]


def _n_columns(source):
    return source.n_expert_features + source.n_gate_features + 1


def random_responsibilities(block, keys, n_leaves):
    """The random start: ``u ** (1 / 0.3)`` (Beta(0.3, 1) draws) normalised over experts.

    Uniform draws leave every expert alike and EM can stall at that symmetric point; these
    break the symmetry without hard labels (chosen on the tone, NPreg, mcycle and regional
    problems; a Dirichlet(0.3) draw does as well and costs 20 times more).
    """
    resp = row_uniforms(_block_columns(block), n_leaves, keys)
    resp **= 1.0 / RANDOM_START_CONCENTRATION
    resp /= resp.sum(axis=0)
    return resp


def _random_start_block(block, keys, n_leaves):
    W = random_responsibilities(block, keys, n_leaves)
    W *= block.sample_weight
    return {WEIGHTS: W}, None


# --------------------------------------------------------------- Voronoi partitions
def _standardised_rows(block, target):
    """The rows ``[X_expert, X_gate, target(y)]`` side by side, (n, q)."""
    return np.column_stack([block.X_expert, block.X_gate, target(block.y)])


def _standardised(block, mean, scale, target):
    """``_standardised_rows`` centred by ``mean`` and divided by ``scale`` (``_standardiser``)."""
    return (_standardised_rows(block, target) - mean) / scale


def _moments_block(block, target):
    Z, w = _standardised_rows(block, target), block.sample_weight
    return w.sum(), w @ Z, w @ Z**2


def _smallest_hashes_block(block, keys, target, n_seeds):
    """The distinct rows of positive weight with the ``n_seeds`` smallest hashes, as
    (hash, row) pairs stacked in an (m, 1 + q) array, sorted by hash."""
    u = row_uniforms(_block_columns(block), 1, keys)[0]
    u[block.sample_weight <= 0] = np.inf
    _, first = np.unique(u, return_index=True)  # a repeated row is one candidate
    pick = first[:n_seeds]
    pick = pick[np.isfinite(u[pick])]
    return np.column_stack([u[pick], _standardised_rows(block, target)[pick]])


class _MergeSmallest:
    """Fold of ``_smallest_hashes_block`` results over blocks: the distinct rows with the
    smallest hashes (so repeating a row is the same as weighting it)."""

    def __init__(self, n_seeds):
        self.n_seeds = n_seeds

    def __call__(self, a, b):
        both = np.concatenate([a, b])
        both = both[np.argsort(both[:, 0], kind="stable")]
        distinct = np.concatenate([[True], np.diff(both[:, 0]) > 0])
        return both[distinct][: self.n_seeds]


def _voronoi_block(block, seeds, mean, scale, target):
    """Hard responsibilities: each row to its nearest seed in the standardised space."""
    nearest = _nearest(_standardised_rows(block, target), seeds, mean, scale)
    W = np.zeros((seeds.shape[0], block.n_rows))
    W[nearest, np.arange(block.n_rows)] = block.sample_weight
    return {WEIGHTS: W}, None


def _nearest(rows, points, mean, scale):
    """Index of the nearest of ``points`` (m, q) to each of ``rows`` (n, q), in the units
    standardised by ``mean`` and ``scale``."""
    # with s, z the standardised point and row, |s - z|^2 less the |z|^2 that every point
    # shares is |s|^2 - 2 s'z, and s'z = (s / scale)' row - (s / scale)' mean
    S = (points - mean) / scale
    A = S / scale
    return np.argmin(((S**2).sum(axis=1) + 2.0 * A @ mean)[:, None] - 2.0 * A @ rows.T, axis=0)


def voronoi_start(source, rng, n_leaves, target):
    """Hard responsibilities of a random Voronoi partition of the standardised
    ``[X_expert, X_gate, target(y)]``: its centres are the distinct rows with the smallest
    hashes (a uniform draw of distinct rows that no row order or repetition changes).
    Three passes over the data; fewer distinct rows than experts leave experts empty."""
    if _holds_sparse(source):
        raise ValueError("init_params='voronoi' needs dense X; use 'random' for sparse X.")
    keys = row_keys(_n_columns(source), rng)
    mean, scale = _standardiser(source, target)
    seeds = source.reduce(
        _smallest_hashes_block, keys, target, n_leaves, op=_MergeSmallest(n_leaves)
    )[:, 1:]
    source.update(_voronoi_block, seeds, mean, scale, target)


# ---------------------------------------------------------------------- k-means
def _standardiser(source, target):
    """Mean and scale of the columns of ``[X_expert, X_gate, target(y)]`` (one pass)."""
    total, first, second = source.reduce(_moments_block, target)
    mean = first / total
    scale = np.sqrt(np.maximum(second / total - mean**2, 0.0))
    return mean, np.where(scale > 0, scale, 1.0)


def _squared_distances(block, centres, mean, scale, target):
    """Squared distances (m, n) from each row to each centre, in standardised units."""
    Z = _standardised(block, mean, scale, target)
    S = (centres - mean) / scale
    return np.maximum((S**2).sum(axis=1)[:, None] - 2.0 * S @ Z.T + (Z**2).sum(axis=1), 0.0)


def _seed_candidates_block(block, keys, draws, centres, mean, scale, target):
    """k-means++ draws in one block: for each draw, the row minimising ``E / D^2`` (an
    exponential race, ``E = -log u`` from the row's hash, ``D`` its distance to the nearest
    centre), so that a row wins with probability proportional to ``D^2``. Returns the
    ``(score, row)`` pairs of the draws stacked in an array (len(draws), 1 + q)."""
    u = row_uniforms(_block_columns(block), draws[-1] + 1, keys)[draws]
    nearest = _squared_distances(block, centres, mean, scale, target).min(axis=0)
    usable = (nearest > 0) & (block.sample_weight > 0)
    with np.errstate(divide="ignore"):
        score = np.where(usable, -np.log(u) / np.where(usable, nearest, 1.0), np.inf)
    best = np.argmin(score, axis=1)
    rows = _standardised_rows(block, target)[best]
    return np.column_stack([score[np.arange(len(draws)), best], rows])


def _smaller_score(a, b):
    return np.where((b[:, 0] < a[:, 0])[:, None], b, a)


def _potential_block(block, centres, candidates, mean, scale, target):
    """The k-means potential (weighted sum of squared distances to the nearest centre)
    with each candidate added to ``centres``, shape (len(candidates),)."""
    nearest = _squared_distances(block, centres, mean, scale, target).min(axis=0)
    to_candidate = _squared_distances(block, candidates, mean, scale, target)
    return np.minimum(nearest, to_candidate) @ block.sample_weight


def _lloyd_block(block, centres, mean, scale, target):
    """Weights (m,) and weighted row sums (m, q) of the rows nearest to each centre."""
    rows = _standardised_rows(block, target)
    nearest = _nearest(rows, centres, mean, scale)
    W = np.zeros((centres.shape[0], block.n_rows))
    W[nearest, np.arange(block.n_rows)] = block.sample_weight
    return W.sum(axis=1), W @ rows


def kmeans_start(source, rng, n_leaves, target):
    """Hard responsibilities of k-means on the standardised ``[X_expert, X_gate,
    target(y)]``: greedy k-means++ seeding (Arthur & Vassilvitskii 2007; of
    ``2 + log K`` draws by ``D^2`` the one that lowers the potential most) whose draws are
    row hashes, then Lloyd's iterations to a fixed point (at most ``KMEANS_ITERATIONS``).

    Every step is a sum or a minimum over rows, so the start does not depend on the row
    order or the chunking, and it runs on dask arrays. The seeding draws among distinct
    rows (a repeated row is one candidate, as a weighted one); the centres are weighted
    means, so integer weights equal repeated rows."""
    if _holds_sparse(source):
        raise ValueError("init_params='kmeans' needs dense X; use 'random' for sparse X.")
    keys = row_keys(_n_columns(source), rng)
    mean, scale = _standardiser(source, target)
    centres = source.reduce(_smallest_hashes_block, keys, target, 1,
                            op=_MergeSmallest(1))[:, 1:]
    n_trials = 2 + int(np.log(n_leaves))  # greedy k-means++, as scikit-learn's
    for step in range(1, n_leaves):
        draws = np.arange(step * n_trials, (step + 1) * n_trials)
        found = source.reduce(_seed_candidates_block, keys, draws, centres, mean, scale,
                              target, op=_smaller_score)
        found = found[np.isfinite(found[:, 0]), 1:]
        if found.shape[0] == 0:  # fewer distinct rows than experts
            break
        potential = source.reduce(_potential_block, centres, found, mean, scale, target)
        centres = np.vstack([centres, found[np.argmin(potential)]])
    for _ in range(KMEANS_ITERATIONS):
        weight, total = source.reduce(_lloyd_block, centres, mean, scale, target)
        moved = np.where(weight[:, None] > 0, total / np.maximum(weight, 1e-300)[:, None],
                         centres)
        if np.array_equal(moved, centres):
            break
        centres = moved
    source.update(_voronoi_block, centres, mean, scale, target)


#: The starts that partition the rows, by name: ``f(source, rng, n_leaves, target)``.
_PARTITIONS = {"voronoi": voronoi_start, "kmeans": kmeans_start}


# ------------------------------------------------------------------ one start
def initialise(estimator, source, rng, strategy=None):
    """Keep the initial weighted responsibilities ``W`` of ``strategy`` (by default the
    estimator's ``init_params``; not ``"multistart"``) in every block."""
    strategy = estimator.init_params if strategy is None else strategy
    if isinstance(strategy, str) and strategy == "random":
        source.update(_random_start_block, row_keys(_n_columns(source), rng),
                      estimator._n_leaves())
        return
    if isinstance(strategy, str) and strategy in _PARTITIONS:
        _PARTITIONS[strategy](source, rng, estimator._n_leaves(), estimator._init_target)
        return
    blocks = getattr(source, "blocks", None)
    if blocks is None or len(blocks) != 1:
        raise ValueError(
            "init_params must be 'multistart', 'kmeans', 'voronoi' or 'random' for data in "
            f"chunks (dask arrays); got {strategy!r}."
        )
    resp = initial_responsibilities(estimator, blocks[0], rng, strategy)
    blocks[0].cache[WEIGHTS] = resp * blocks[0].sample_weight


def initial_responsibilities(estimator, data, rng, strategy=None):
    """Initial responsibilities (K, n) of in-memory ``data`` by ``strategy``."""
    strategy = estimator.init_params if strategy is None else strategy
    n, K = data.X_expert.shape[0], estimator._n_leaves()
    if not isinstance(strategy, str):
        resp = np.asarray(strategy, dtype=float)
        if (resp.shape != (n, K) or np.any(resp < 0) or not np.all(np.isfinite(resp))
                or not np.all(resp.sum(axis=1) > 0)):
            raise ValueError(
                f"init_params as an array must be non-negative responsibilities, rows "
                f"with a positive sum, of shape ({n}, {K}); got shape {resp.shape}."
            )
        resp = resp.T / np.maximum(resp.sum(axis=1), 1e-300)
        return np.ascontiguousarray(resp)
    if strategy in ("random", "multistart"):
        keys = row_keys(data.X_expert.shape[1] + data.X_gate.shape[1] + 1, rng)
        return random_responsibilities(data, keys, K)
    if strategy == "tree":
        return _tree_responsibilities(estimator, data, rng)
    source = InMemoryBlocks([replace(data, cache={})])
    _PARTITIONS[strategy](source, rng, K, estimator._init_target)
    return source.blocks[0].weights / np.where(data.sample_weight > 0,
                                                   data.sample_weight, 1.0)


def _tree_responsibilities(estimator, data, rng):
    """Hard responsibilities from a CART tree with as many leaves as experts: the samples
    of each leaf (in depth-first order) seed one expert."""
    K = estimator._n_leaves()
    X = np.column_stack([data.X_expert, data.X_gate])
    cart = estimator._cart(max_leaf_nodes=max(K, 2), random_state=int(rng.integers(2**31 - 1)))
    leaves = cart.fit(X, data.y, sample_weight=data.sample_weight).apply(X)
    _, labels = np.unique(leaves, return_inverse=True)
    resp = np.zeros((K, X.shape[0]))
    resp[labels % K, np.arange(X.shape[0])] = 1.0
    return resp


# ------------------------------------------------------------- the default search
def search_start(estimator, model, source, rng, run, max_iter, subsample=True):
    """The ``"multistart"`` fit: EM runs from successive candidate starts until two of them
    agree on the best objective found, or ``SEARCH_RUNS`` have run.

    The first candidates are one of each kind in ``SEARCH_SEQUENCE``: a k-means partition
    of the standardised ``[X, y]``, and random soft responsibilities; later ones are of the
    kind that found the best run so far (on NPreg, k-means always lands in the same poor
    basin, and alternating would double the cost). The hard ones start EM from local
    regions, the soft ones near the symmetric point; on the benchmark problems
    (``benchmarks/bench_optimum.py``) each kind finds the best basin where the other
    rarely does (k-means reaches the best optimum of mcycle with four experts in 40% of
    runs, random starts in 13%; on the regional classifier 0% against 50%). Sparse X
    takes random starts only. Two runs agree when their objectives differ by at most
    ``SEARCH_AGREEMENT`` per unit of weight. An easy problem, where every start leads to
    the same optimum, costs two runs; a problem with several optima costs
    more, until its best optimum has been reached twice. A run with a degenerate expert
    loses to any regular run (``_better``).

    A start near a saddle can crawl along a plateau for hundreds of iterations before it
    climbs (a random start on 1e5 rows: 366 SQUAREM cycles at 1e-2 per cycle, then to the
    optimum the other runs reached in 10). So after the first run, a run that has taken
    ``SEARCH_PRUNE_FACTOR`` times the best run's iterations (at least ``SEARCH_PRUNE_MIN``)
    and is still below the best objective by more than the agreement stops there, as in
    the short-runs stage of emEM (Biernacki, Celeux & Govaert 2003). One that is level with
    the best stops there too, as a run that agrees with it, unless Aitken's estimate of
    its remaining climb (``ConvergenceMonitor.remaining``) takes it above the best by more
    than the agreement: then it continues to convergence. (On a TF-IDF classifier, a level
    run crawled on for 189 SQUAREM cycles, more than half the fit's time, to end 1.3e-6
    per sample above the best.)

    On a total sample weight above twice ``SEARCH_SUBSAMPLE_ROWS`` (rows of unit weight;
    and ``subsample``), the search runs on the rows whose hash falls below
    ``SEARCH_SUBSAMPLE_ROWS`` over the total weight (``_subsample``), and one run on all
    rows continues from its best (a share of the weight, so that integer weights still
    equal repeated rows). Random soft starts lose their diversity
    as n grows: the first M-step averages the random responsibilities over n rows, so
    every seed starts within O(n^-1/2) of the same point and ends in the same basin (on a
    planted K=3 mixture, 3 of 10 random starts end in a poor basin at n=3e4, all of them
    at 1e6, where that basin then agreed with a k-means run and the search stopped 0.62
    per row below the optimum). A subsample keeps the starts diverse and the search
    cheap.

    The search ends with one split-and-merge move from its best run (``_split_merge_run``,
    three or more experts, dense X), kept if its run ends above the best; its objective is
    ``best["split_merge_objective"]``.

    ``run(source, params, max_iter[, floor, patience])`` runs EM, giving up from iteration
    ``patience`` on when it cannot reach the objective ``floor`` by ``max_iter``
    (``ConvergenceMonitor.out_of_reach``), and returns
    its result (a dict with ``params``, ``objective``, ...). Returns the best result, the
    objective of every run of the search and the number of rows the search ran on.
    """
    searched, weight = source, source.total_weight
    if subsample and weight > 2 * SEARCH_SUBSAMPLE_ROWS:
        searched = _subsample(source, rng, SEARCH_SUBSAMPLE_ROWS / weight) or source
    best, reached = _search(estimator, model, searched, rng,
                            lambda params, n, *give_up: run(searched, params, n, *give_up),
                            max_iter)
    if searched is not source:
        moved = best.get("split_merge_objective")
        best = run(source, best["params"], max_iter)
        if moved is not None:
            best["split_merge_objective"] = moved
    return best, reached, searched.reduce(_block_rows)


def _search(estimator, model, source, rng, run, max_iter):
    """``search_start``'s runs on ``source``: the best result and every run's objective."""
    best, best_kind, reached, regular = None, None, [], []
    agreement = SEARCH_AGREEMENT * source.total_weight
    sequence = ("random",) if _holds_sparse(source) else SEARCH_SEQUENCE
    for index in range(SEARCH_RUNS):
        kind = sequence[index] if index < len(sequence) else best_kind
        initialise(estimator, source, rng, kind)
        result = _pruned_run(run, model.m_step_blocks(source, None), max_iter, best, agreement,
                             source.total_weight)
        reached.append(result["objective"])
        regular.append(not result["degenerate"])
        if best is None or _better(result, best):
            best, best_kind = result, kind
        peers = np.array(reached)[np.array(regular) == (not best["degenerate"])]
        if np.sum(peers >= best["objective"] - agreement) >= 2:
            break
    if estimator._n_leaves() >= 3 and not _holds_sparse(source):
        moved = _split_merge_run(estimator, model, source, run, max_iter, best, agreement)
        best["split_merge_objective"] = moved["objective"]
        if _better(moved, best):
            moved["split_merge_objective"] = moved["objective"]
            best = moved
    return best, np.array(reached)


# ------------------------------------------------------------- split and merge
def _expert_fit_block(block, model, params):
    """Per expert: its weighted log-density of the rows ``sum_i W_ki log f_k(y_i | x_i)``
    (K,) and mass (K,); the overlaps of the weights ``W W'`` (K, K)."""
    W = block.weights
    log_f = model.family.log_prob(block.X_expert, block.y, params["experts"], block.offset)
    fit = np.where(W > 0, W * log_f, 0.0).sum(axis=1)
    return fit, W.sum(axis=1), W @ W.T


def _split_moments_block(block, split, mean, scale, target):
    """Weight, weighted sum and weighted cross-products of the standardised rows under
    expert ``split``'s weights."""
    Z = _standardised(block, mean, scale, target)
    w = block.weights[split]
    return w.sum(), w @ Z, (Z * w[:, None]).T @ Z


def _split_merge_block(block, split, keep, merged, centre, direction, mean, scale, target):
    """The weights after the move: ``merged``'s rows join ``keep``; ``split``'s rows on the
    positive side of the hyperplane through ``centre`` normal to ``direction`` go to
    ``merged``, the others stay."""
    W = block.weights.copy()
    Z = _standardised(block, mean, scale, target)
    positive = (Z - centre) @ direction > 0
    W[keep] += W[merged]
    W[merged] = np.where(positive, W[split], 0.0)
    W[split] = np.where(positive, 0.0, W[split])
    return {WEIGHTS: W}, None


def _split_merge_run(estimator, model, source, run, max_iter, best, agreement):
    """One split-and-merge move from ``best`` (SMEM, Ueda, Nakano, Ghahramani & Hinton
    2000), then EM (``_pruned_run``) from its responsibilities.

    The expert that fits its own rows worst (lowest weighted mean of ``log f_k``) is split
    in two along the first principal axis of its weighted standardised
    ``[X_expert, X_gate, target(y)]``, and the two other experts whose responsibilities
    overlap most (cosine of their weight vectors) are merged. A search can end in a basin
    where one broad expert covers two regimes while two others share one: on a planted
    four-regime problem (``benchmarks/bench_search.py``) 2 of 10 default fits ended there,
    0.47 per row below the optimum, and one move from it reached the optimum in 7 SQUAREM
    cycles. The run stops after ``SPLIT_MERGE_BUDGET`` iterations (or the best run's) if it
    is not above the best by then, or from half that on once its pace cannot take it there
    (``_pruned_run``), so a move from the optimum costs little (five cycles on
    ``benchmarks/bench_flexmix.py``'s data, against ten). Not before: on the depth-2
    hierarchical model of ``benchmarks/bench_optimum.py`` a move's run slows down in its
    third and fourth cycles, then climbs 4300 to the optimum. Every step is a sum over
    rows, so chunked and in-memory data make the same move.
    """
    model.e_pass(source, best["params"])
    fit, mass, overlap = source.reduce(_expert_fit_block, model, best["params"])
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_fit = np.where(mass > 0, fit / mass, np.inf)
        norms = np.sqrt(np.diag(overlap))
        cosine = overlap / np.outer(norms, norms)
    split = int(np.argmin(mean_fit))
    cosine = np.where(np.isfinite(cosine), cosine, -1.0)
    cosine[split, :] = cosine[:, split] = -np.inf
    np.fill_diagonal(cosine, -np.inf)
    keep, merged = sorted(np.unravel_index(np.argmax(cosine), cosine.shape))
    target = estimator._init_target
    mean, scale = _standardiser(source, target)
    weight, first, second = source.reduce(_split_moments_block, split, mean, scale, target)
    centre = first / max(weight, 1e-300)
    covariance = second / max(weight, 1e-300) - np.outer(centre, centre)
    direction = np.linalg.eigh(covariance)[1][:, -1]
    # the axis's sign, so that rounding (chunked against in-memory sums) cannot flip it
    direction *= np.sign(direction[np.argmax(np.abs(direction))])
    source.update(_split_merge_block, split, keep, merged, centre, direction, mean, scale,
                  target)
    return _pruned_run(run, model.m_step_blocks(source, None), max_iter, best, agreement,
                       source.total_weight, max(SPLIT_MERGE_BUDGET, best["n_iter"]),
                       patience=SPLIT_MERGE_BUDGET // 2)


def _block_rows(block):
    return block.n_rows


def _sample_block(block, keys, share):
    """The block's rows whose hash falls below ``share``, and their hashes, as a list of
    one pair."""
    draws = row_uniforms(_block_columns(block), 1, keys)[0]
    keep = np.flatnonzero(draws < share)
    return [(block.take(keep), draws[keep])]


def _subsample(source, rng, share):
    """The rows of ``source`` whose hash (``row_uniforms``) falls below ``share``, as one
    in-memory block in the order of their hashes. Like the random start, the choice and
    the order depend only on each row's values, so the search on the subsample is the same
    for any row order or chunking, and repeated rows are kept or left together (integer
    weights equal repeated rows). None if no row is kept."""
    keys = row_keys(_n_columns(source), rng)
    parts = source.reduce(_sample_block, keys, share, op=operator.add)
    draws = np.concatenate([d for _, d in parts])
    if draws.size == 0:
        return None
    block = concatenate([b for b, _ in parts]).take(np.argsort(draws, kind="stable"))
    return InMemoryBlocks([block])


def _pruned_run(run, params, max_iter, best, agreement, weight, budget=None, patience=None):
    """``run(params, max_iter, floor, patience)``, stopped early if it lags behind ``best``
    after ``budget`` iterations (by default as in ``search_start``), or from iteration
    ``patience`` on (by default the best run's iterations) once its pace cannot bring it
    level with ``best`` within the budget (``ConvergenceMonitor.out_of_reach``); a run
    that continues past its budget is one record.

    A random start near the symmetric point can slow down by it before it climbs away (on
    the regional classifier of ``benchmarks/bench_optimum.py``, three of twenty searches
    lost the optimum when such runs were judged from their third iteration on): judged
    only after as many iterations as the best run took, it has had the same chance.
    """
    if budget is None:
        budget = max_iter if best is None else max(
            SEARCH_PRUNE_MIN, SEARCH_PRUNE_FACTOR * best["n_iter"]
        )
    if budget >= max_iter:
        return run(params, max_iter)
    patience = best["n_iter"] if patience is None else patience
    result = run(params, budget, best["objective"] - agreement, patience)
    lagging = result["objective"] < best["objective"] - agreement
    # level with the best, and Aitken's estimate of its remaining climb does not take it
    # above the best by more than the agreement: the best's optimum, reached again
    rejoined = not lagging and (
        result["objective"] + result["remaining"] * weight <= best["objective"] + agreement
    )
    if result["converged"] or ((lagging or rejoined) and not _better(result, best)):
        result["pruned"] = not result["converged"]
        return result
    rest = run(result["params"], max_iter - budget)
    # the continuation re-evaluates its start: the first trace entry is the budget's last
    rest["objective_trace"] = np.concatenate(
        [result["objective_trace"], rest["objective_trace"][1:]]
    )
    rest["n_iter"] += result["n_iter"]
    return rest


def _holds_sparse(source):
    """Whether the rows are sparse (Voronoi starts measure dense distances: not for them)."""
    blocks = getattr(source, "blocks", None) or []
    return any(sparse.issparse(b.X_expert) or sparse.issparse(b.X_gate) for b in blocks)


def _better(result, best):
    """Runs compare by objective, the earlier winning ties within rounding (so that chunked
    and in-memory fits keep the same run); a run with a degenerate expert (no weight, or a
    dispersion at its bound) loses to any regular one: its higher likelihood comes from an
    expert that interpolates a few points, a spurious maximum of an unbounded likelihood."""
    if result["degenerate"] != best["degenerate"]:
        return best["degenerate"]
    return result["objective"] > best["objective"] + 1e-13 * abs(best["objective"])
