"""Fits on dask arrays: the EM passes run where the chunks live (dask.distributed).

Every chunk of rows becomes a ``Block`` held by a worker; each pass of the engine submits
one small task per chunk and sums the returned statistics (Gram matrices, gradients,
log-likelihood sums) in the client. The M-steps then solve small systems on those sums,
so the iterates are the in-memory fit's up to the rounding of the sums, and the data is
never gathered in one place. Needs ``pip install skmoe[dask]`` and a running
``distributed.Client``.
"""

import operator

import numpy as np

from ._blocks import combine, with_state
from ._families import require
from ._validation import check_n_rows, check_positive_total


def is_dask_collection(x):
    """Whether ``x`` is a dask collection, without importing dask when it is not."""
    if type(x).__module__.split(".")[0] != "dask":
        return False
    from dask.base import is_dask_collection as check

    return check(x)


class DaskBlocks:
    """Row blocks held by the workers of a ``distributed.Client``.

    Block state is never changed in place: an updating pass returns new blocks (sharing the
    arrays of the old ones on their worker).

    ``costly_passes``: every pass is a round of tasks on the cluster, so the engine trades
    passes for small statistics (the gates' Hessian, (K (p + 1))^2 numbers, with the
    E-step instead of one pass per conjugate-gradient step).
    """

    costly_passes = True

    def __init__(self, client, blocks, n_expert_features, n_gate_features, total_weight):
        self.client = client
        self.blocks = None  # no block is local: ``futures`` point to them on the workers
        self.futures = self.initial = list(blocks)
        self.n_expert_features = n_expert_features
        self.n_gate_features = n_gate_features
        self.total_weight = total_weight
        self.cache = {}

    def fresh(self):
        """The blocks as validated, without the state of an earlier run."""
        return DaskBlocks(self.client, self.initial, self.n_expert_features,
                          self.n_gate_features, self.total_weight)

    def reduce(self, func, *args, op=np.add):
        parts = [self.client.submit(func, block, *args, pure=False) for block in self.futures]
        return combine(self.client.gather(parts), op)

    def update(self, func, *args):
        submit = self.client.submit
        results = [submit(with_state, func, block, *args, pure=False) for block in self.futures]
        self.futures = [submit(operator.getitem, r, 0, pure=False) for r in results]
        parts = [submit(operator.getitem, r, 1, pure=False) for r in results]
        return combine(self.client.gather(parts))


def _client():
    try:
        from distributed import default_client
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "Fitting on dask arrays needs dask.distributed: pip install 'skmoe[dask]'."
        ) from error
    try:
        return default_client()
    except ValueError as error:
        raise ValueError(
            "Fitting on dask arrays needs a running dask.distributed Client, e.g. "
            "`from distributed import Client; client = Client()` (a LocalCluster) or a "
            "client connected to your cluster."
        ) from error


def _row_chunks(array, name, n_rows, row_chunks):
    """The row chunks of a dask array or a numpy vector, aligned with X's."""
    import dask.array as da

    if array is None:
        return [None] * len(row_chunks)
    if not is_dask_collection(array):
        array = np.asarray(array)
    if array.shape[0] != n_rows:
        raise ValueError(f"{name} has {array.shape[0]} rows; X has {n_rows}.")
    if not is_dask_collection(array):
        array = da.from_array(array, chunks=(row_chunks,) + array.shape[1:])
    if array.ndim > 1:
        array = array.rechunk({0: row_chunks, 1: -1})
    else:
        array = array.rechunk((row_chunks,))
    return list(array.to_delayed().ravel())


def distributed_source(estimator, X, y, sample_weight, exposure):
    """Validate dask inputs chunk by chunk and hold them as blocks on the workers.

    Returns the source and the expert family.
    """
    import dask
    import dask.array as da

    client = _client()
    if not isinstance(X, da.Array) or X.ndim != 2:
        raise ValueError(f"X as a dask collection must be a 2-D dask array; got {type(X)}.")
    if _is_sparse(getattr(X, "_meta", None)):
        raise TypeError(
            "dask arrays of sparse chunks are not supported; fit the sparse matrix in "
            "memory (scipy.sparse CSR or CSC), or pass dense chunks."
        )
    if any(np.isnan(c) for c in X.chunks[0]) or np.isnan(X.shape[0]):
        raise ValueError("X has unknown chunk sizes; call X.compute_chunk_sizes() first.")
    if not is_dask_collection(y):
        y = np.asarray(y)
    n, p = X.shape
    X = X.rechunk({1: -1})
    if X.dtype != np.float64:
        X = X.astype(np.float64)
    chunks = X.chunks[0]
    if len(chunks) == 0 or n == 0:
        raise ValueError("X has 0 samples; at least one is needed.")
    estimator.n_features_in_ = p
    if hasattr(estimator, "feature_names_in_"):
        del estimator.feature_names_in_
    check_n_rows(n, estimator._n_leaves())
    estimator._resolve_features(exposure)
    if sample_weight is None:
        sample_weight = da.ones(n, chunks=(chunks,))
    elif not is_dask_collection(sample_weight):
        sample_weight = np.broadcast_to(np.asarray(sample_weight, dtype=float), (n,))
    y_chunks = _row_chunks(y, "y", n, chunks)
    w_chunks = _row_chunks(sample_weight, "sample_weight", n, chunks)
    e_chunks = _row_chunks(exposure, "exposure", n, chunks)
    summary = [
        dask.delayed(estimator._chunk_target_summary)(yc, wc)
        for yc, wc in zip(y_chunks, w_chunks)
    ]
    family = estimator._make_family(estimator._merge_target_summaries(dask.compute(*summary)))
    require(family, "a fit on chunks (dask)")
    estimator._configure_structure(family)
    make = dask.delayed(_make_block, pure=True)
    parts = [
        make(xc, yc, wc, ec, estimator, family)
        for xc, yc, wc, ec in zip(X.to_delayed().ravel(), y_chunks, w_chunks, e_chunks)
    ]
    futures = client.compute(parts)
    total = float(sum(client.gather([client.submit(_block_weight, f) for f in futures])))
    check_positive_total(total)
    source = DaskBlocks(client, futures,
                        len(estimator.expert_features_in_) + len(estimator.shared_features_in_),
                        len(estimator.gate_features_in_), total)
    return source, family


def _make_block(X, y, w, exposure, estimator, family):
    """Validate one chunk (as ``fit`` validates in-memory data) and make its block."""
    from sklearn.utils import check_array

    if _is_sparse(X):
        raise TypeError("dask chunks of X are sparse; sparse X is supported in memory only.")
    X = check_array(X, dtype=np.float64, order="C")
    w = np.asarray(w, dtype=np.float64)
    if np.any(w < 0) or not np.all(np.isfinite(w)):
        raise ValueError("sample_weight has negative or non-finite values.")
    y = family.check_y(estimator._encode_chunk_targets(np.asarray(y)))
    exposure = None if exposure is None else np.asarray(exposure)
    return estimator._make_data(X, y, w, exposure, family)


def _is_sparse(array):
    """A scipy sparse matrix, or a pydata ``sparse`` array (dask's own sparse chunks)."""
    from scipy import sparse

    return sparse.issparse(array) or type(array).__module__.split(".")[0] == "sparse"


def _block_weight(block):
    return block.sample_weight.sum()
