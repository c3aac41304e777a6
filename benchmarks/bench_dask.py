"""Fits on dask arrays: out-of-core from chunks on disk, and seconds per EM iteration by n
and by the number of workers, next to the in-memory fit in the same run.

    python benchmarks/bench_dask.py out-of-core [--n 1e7] [--p 20] [--k 8] [--dir DIR]
    python benchmarks/bench_dask.py scaling [--sizes 1e4 1e5 1e6 1e7] [--workers 1 2]

``out-of-core`` writes the data chunk by chunk as ``.npy`` files (1e6 rows each; in a
temporary directory unless ``--dir``), builds dask arrays whose chunks the workers
memory-map from those files, fits ``MixtureOfExpertsRegressor(K)`` on a ``LocalCluster`` of
2 worker processes, and reports the client process's peak resident memory (the data never
passes through it) with seconds per EM iteration, next to the in-memory fit at 1e6 rows.

``scaling`` prints seconds per EM iteration for every n: in memory (numpy, this process)
and on dask clusters of 1 and 2 single-threaded worker processes (chunks of 1e6 rows, at
least 2 chunks), from the same generated data.

Seconds per iteration are ``(t(max_iter=b) - t(max_iter=a)) / (b - a)``, so loading,
validation and initialisation cancel. The data is drawn from one planted model
(``make_moe_regression``'s parameters) chunk by chunk, so no process holds all of it.
"""

import argparse
import os
import resource
import shutil
import tempfile
import time
import warnings

import numpy as np
from _timing import PLAIN_EM
from scipy.special import softmax
from sklearn.exceptions import ConvergenceWarning

from skmoe import MixtureOfExpertsRegressor
from skmoe.datasets import make_moe_regression

CHUNK_ROWS = 1_000_000


def planted(p, K, seed=0):
    return make_moe_regression(10, p, K, random_state=seed, return_params=True)[2]


def draw(params, n, seed):
    """``n`` rows from the planted model (independent of how the rows are chunked)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, params["gate_coef"].shape[1]))
    gate = softmax(X @ params["gate_coef"].T + params["gate_intercept"], axis=1)
    labels = np.minimum((rng.uniform(size=(n, 1)) > np.cumsum(gate, axis=1)).sum(axis=1),
                        gate.shape[1] - 1)
    means = X @ params["expert_coef"].T + params["expert_intercept"]
    y = means[np.arange(n), labels] + params["noise"] * rng.normal(size=n)
    return X, y


def write_chunks(directory, n, p, K):
    """The data as ``X_i.npy``, ``y_i.npy`` files of ``CHUNK_ROWS`` rows; returns the sizes."""
    params = planted(p, K)
    sizes = [min(CHUNK_ROWS, n - start) for start in range(0, n, CHUNK_ROWS)]
    for i, size in enumerate(sizes):
        X, y = draw(params, size, seed=1000 + i)
        np.save(os.path.join(directory, f"X_{i}.npy"), X)
        np.save(os.path.join(directory, f"y_{i}.npy"), y)
    return sizes


def _load(path):
    return np.load(path, mmap_mode="r")


def dask_arrays(directory, sizes, p):
    """Dask arrays whose chunks are memory-mapped from the files when a worker needs them."""
    import dask
    import dask.array as da

    load = dask.delayed(_load, pure=True)
    X = da.concatenate([
        da.from_delayed(load(os.path.join(directory, f"X_{i}.npy")), (size, p), np.float64)
        for i, size in enumerate(sizes)
    ])
    y = da.concatenate([
        da.from_delayed(load(os.path.join(directory, f"y_{i}.npy")), (size,), np.float64)
        for i, size in enumerate(sizes)
    ])
    return X, y


def seconds_per_iteration(K, X, y, a=1, b=4):
    times = {}
    for max_iter in (a, b):
        model = MixtureOfExpertsRegressor(K, max_iter=max_iter, tol=0.0, random_state=0,
                                          **PLAIN_EM)
        tic = time.perf_counter()
        model.fit(X, y)
        times[max_iter] = time.perf_counter() - tic
    return (times[b] - times[a]) / (b - a)


def cluster(n_workers):
    from distributed import Client, LocalCluster

    local = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                         dashboard_address=None, silence_logs=40)
    return local, Client(local)


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def out_of_core(args):
    n, p, K = int(args.n), args.p, args.k
    directory = args.dir or tempfile.mkdtemp(prefix="skmoe-ooc-")
    try:
        tic = time.perf_counter()
        sizes = write_chunks(directory, n, p, K)
        print(f"wrote n={n:,} rows, p={p} in {len(sizes)} chunks to {directory} "
              f"({(time.perf_counter() - tic):.0f} s; {n * (p + 1) * 8 / 2**30:.2f} GiB)")
        print(f"client peak RSS after writing: {peak_rss_mib():.0f} MiB")
        local, client = cluster(2)
        with local, client:
            X, y = dask_arrays(directory, sizes, p)
            dask_seconds = seconds_per_iteration(K, X, y)
            model = MixtureOfExpertsRegressor(K, max_iter=2, tol=0.0, random_state=0,
                                              **PLAIN_EM)
            model.fit(X, y)
        client_peak = peak_rss_mib()
        X1, y1 = draw(planted(p, K), CHUNK_ROWS, seed=1000)
        memory_seconds = seconds_per_iteration(K, X1, y1)
        print(f"\n{'fit':44} {'n':>12} {'s / EM iteration':>17}")
        print(f"{'dask, 2 workers, chunks memory-mapped':44} {n:>12,} {dask_seconds:>17.2f}")
        print(f"{'numpy, in memory':44} {CHUNK_ROWS:>12,} {memory_seconds:>17.2f}")
        print(f"\nclient process peak RSS during the dask fits: {client_peak:.0f} MiB "
              f"(limit 2048 MiB; the data is {n * (p + 1) * 8 / 2**20:.0f} MiB)")
        print(f"training log-likelihood per row after 2 iterations: "
              f"{model.log_likelihood_ / n:.4f}")
    finally:
        if not args.dir:
            shutil.rmtree(directory, ignore_errors=True)


def _draw_X(params, n, seed):
    return draw(params, n, seed)[0]


def _draw_y(params, n, seed):
    return draw(params, n, seed)[1]


def generated(params, sizes, p):
    """Dask arrays whose chunks are drawn on the workers (the same rows as ``draw``)."""
    import dask
    import dask.array as da

    X = da.concatenate([
        da.from_delayed(dask.delayed(_draw_X)(params, size, 1000 + i), (size, p), np.float64)
        for i, size in enumerate(sizes)
    ])
    y = da.concatenate([
        da.from_delayed(dask.delayed(_draw_y)(params, size, 1000 + i), (size,), np.float64)
        for i, size in enumerate(sizes)
    ])
    return X, y


def scaling(args):
    p, K = args.p, args.k
    params = planted(p, K)
    header = f"{'n':>12} {'numpy s/it':>11}" + "".join(
        f" {f'dask {w} worker' + ('s' if w > 1 else '') + ' s/it':>18}" for w in args.workers
    )
    print(f"p={p}, K={K}; dask chunks of at most {CHUNK_ROWS:,} rows (at least 2 per fit); "
          f"seconds per iteration from max_iter={args.a} and {args.b}, best of {args.repeats}")
    print(header)
    clusters = {w: cluster(w) for w in args.workers}

    def best(X, y):
        return min(seconds_per_iteration(K, X, y, args.a, args.b) for _ in range(args.repeats))

    try:
        for size in args.sizes:
            n = int(float(size))
            chunk = min(CHUNK_ROWS, -(-n // 2))
            sizes = [min(chunk, n - start) for start in range(0, n, chunk)]
            parts = [draw(params, s, seed=1000 + i) for i, s in enumerate(sizes)]
            X = np.concatenate([part[0] for part in parts])
            y = np.concatenate([part[1] for part in parts])
            del parts
            row = f"{n:>12,} {best(X, y):>11.4f}"
            del X, y
            for w in args.workers:
                local, client = clusters[w]
                with client.as_current():
                    dX, dy = client.persist(list(generated(params, sizes, p)))
                    row += f" {best(dX, dy):>18.4f}"
                    del dX, dy
            print(row, flush=True)
    finally:
        for local, client in clusters.values():
            client.close()
            local.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    ooc = sub.add_parser("out-of-core")
    ooc.add_argument("--n", type=float, default=1e7)
    ooc.add_argument("--dir", default=None)
    scale = sub.add_parser("scaling")
    scale.add_argument("--sizes", nargs="+", default=["1e4", "1e5", "1e6", "1e7"])
    scale.add_argument("--workers", nargs="+", type=int, default=[1, 2])
    scale.add_argument("--a", type=int, default=1)
    scale.add_argument("--b", type=int, default=6)
    scale.add_argument("--repeats", type=int, default=2)
    for part in (ooc, scale):
        part.add_argument("--p", type=int, default=20)
        part.add_argument("--k", type=int, default=8)
    args = parser.parse_args()
    warnings.simplefilter("ignore", ConvergenceWarning)
    (out_of_core if args.mode == "out-of-core" else scaling)(args)


if __name__ == "__main__":
    main()
