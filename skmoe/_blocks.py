"""Where the rows live: in memory, or in chunks on a dask cluster.

The EM engine touches the data only through passes over row blocks. A pass applies a
function to every block and sums what the blocks return (Gram matrices, gradients,
log-likelihood sums): ``reduce`` for a pure pass, ``update`` for a pass that also keeps
per-row results (responsibilities, the gate's probabilities) next to each block for later
passes. The solvers on top only see the sums, so one code path serves an in-memory fit
(one block), a chunked fit and a distributed one (``skmoe._dask.DaskBlocks``), with the
same iterates up to the rounding of the sums.
"""

from dataclasses import dataclass, field, fields, replace
from functools import reduce as _fold

import numpy as np
from scipy import sparse

from ._linalg import row_products, row_products_fit, weighted_grams

#: The cache key of ``W``, sample weight times responsibility (K, n_rows): written by the
#: E-step and the initialisations, read by every M-step (through ``Block.weights``).
WEIGHTS = "W"

#: The cache key of the Grams ``X1' diag(W[k]) X1`` of the expert design for the current
#: ``W``, when the M-step computed them ahead in one product with the gates' Hessian
#: (``block_grams`` reads them; they are dropped when the M-step ends).
WEIGHT_GRAMS = "W_grams"


@dataclass
class Block:
    """The arrays of one block of rows, and the per-row state EM keeps beside them.

    ``cache`` holds per-row results of earlier passes, each under a key owned by the
    module that writes it; ``WEIGHTS`` (``Block.weights``) is the one every module reads.
    ``derived`` holds what depends on the rows alone (``keep_row_products``), kept across
    restarts on the same rows.
    """

    X_expert: np.ndarray = None
    X_gate: np.ndarray = None
    y: np.ndarray = None
    sample_weight: np.ndarray = None
    offset: np.ndarray = None
    cache: dict = field(default_factory=dict)
    derived: dict = field(default_factory=dict)

    @property
    def weights(self):
        """``W``: sample weight times responsibility, (K, n_rows)."""
        return self.cache[WEIGHTS]

    def with_weights(self, W):
        """The same rows with ``W`` as their only per-row state."""
        return replace(self, cache={WEIGHTS: W})

    def take(self, rows):
        """The block of ``rows`` (a slice or an index array) of every per-row array, with
        no per-row state."""
        taken = {}  # by id: a design that is the other stays one array
        for name in ROW_ARRAYS:
            array = getattr(self, name)
            if array is not None and id(array) not in taken:
                taken[id(array)] = array[rows]
        return Block(**{
            name: None if getattr(self, name) is None else taken[id(getattr(self, name))]
            for name in ROW_ARRAYS
        })

    @property
    def total_weight(self):
        return float(self.sample_weight.sum())

    @property
    def n_rows(self):
        for array in (self.X_expert, self.X_gate, self.sample_weight):
            if array is not None:
                return array.shape[0]
        raise ValueError("empty block")


#: The per-row arrays of a ``Block`` (its fields but the state).
ROW_ARRAYS = tuple(f.name for f in fields(Block) if f.name not in ("cache", "derived"))


def keep_row_products(block, design):
    """Keep the ``row_products`` of a block's dense ``design`` in ``block.derived`` when
    they fit in scikit-learn's working memory (the same array serves a design that is the
    other's); return them, or None."""
    X = getattr(block, design)
    if id(X) in block.derived:
        return kept_row_products(block, design)
    products = None
    if isinstance(X, np.ndarray) and X.ndim == 2 and row_products_fit(*X.shape):
        products = row_products(X)
    block.derived[id(X)] = (X, products)
    return products


def kept_row_products(block, design):
    """The ``row_products`` kept for the block's ``design``, or None. They are kept by
    the array's identity: a block made from this one with other columns (``replace``,
    as the joint model's members see it) has none."""
    X = getattr(block, design)
    kept = block.derived.get(id(X))
    return kept[1] if kept is not None and kept[0] is X else None


def block_grams(block, design, W):
    """``weighted_grams`` of ``W`` on a block's ``design``: those the M-step computed ahead
    (``WEIGHT_GRAMS``) when ``W`` is the block's weights, else from the kept row products
    when there are any."""
    if (design == "X_expert" and W is block.cache.get(WEIGHTS) and WEIGHT_GRAMS in block.cache
            and block.cache[WEIGHT_GRAMS][0] is block.X_expert):
        return block.cache[WEIGHT_GRAMS][1]
    return weighted_grams(getattr(block, design), W, products=kept_row_products(block, design))


def concatenate(blocks):
    """One block of the rows of ``blocks`` in turn (per-row arrays only, no state)."""

    def stack(arrays):
        if arrays[0] is None:
            return None
        if sparse.issparse(arrays[0]):
            return sparse.vstack(arrays, format="csr")
        return np.concatenate(arrays)

    out = {name: stack([getattr(b, name) for b in blocks]) for name in ROW_ARRAYS}
    if all(b.X_gate is b.X_expert for b in blocks):
        out["X_gate"] = out["X_expert"]
    return Block(**out)


def combine(parts, op=np.add):
    """Fold the blocks' results with ``op``, element by element through tuples and dicts."""
    return _fold(lambda a, b: _combine_pair(a, b, op), parts)


def _combine_pair(a, b, op):
    if isinstance(a, tuple):
        return tuple(_combine_pair(x, y, op) for x, y in zip(a, b))
    if isinstance(a, dict):
        return {key: _combine_pair(a[key], b[key], op) for key in a}
    if a is None:
        return None
    return op(a, b)


def with_state(func, block, *args):
    """Run an updating block function and return the block with its new state, and the
    function's partial result (for engines whose blocks are immutable)."""
    state, part = func(block, *args)
    return replace(block, cache={**block.cache, **state}), part


class InMemoryBlocks:
    """Blocks held by this process (one block for an ordinary fit).

    Parameters
    ----------
    blocks : list of Block
    """

    def __init__(self, blocks):
        self.blocks = list(blocks)
        self.cache = {}

    def fresh(self):
        """The same rows with no per-row state (for an independent restart)."""
        return type(self)([replace(block, cache={}) for block in self.blocks])

    @property
    def total_weight(self):
        return sum(block.total_weight for block in self.blocks)

    @property
    def n_expert_features(self):
        return self.blocks[0].X_expert.shape[1]

    @property
    def n_gate_features(self):
        return self.blocks[0].X_gate.shape[1]

    def reduce(self, func, *args, op=np.add):
        """``op``-fold over the blocks of ``func(block, *args)``."""
        return combine([func(block, *args) for block in self.blocks], op)

    def update(self, func, *args):
        """Like ``reduce`` for ``func(block, *args) -> (state, partial)``, keeping ``state``
        (a dict of per-row arrays) in each block's cache."""
        parts = []
        for block in self.blocks:
            state, part = func(block, *args)
            block.cache.update(state)
            parts.append(part)
        return combine(parts)


def one_block(**arrays):
    """An in-memory source of one block made of ``arrays`` (fields of ``Block``, plus
    per-row state given as ``cache``)."""
    return InMemoryBlocks([Block(**arrays)])
