"""Whole fit of MixtureOfExpertsRegressor against R's flexmix, side by side on the same data.

Usage
-----
::

    python benchmarks/bench_flexmix.py --n 100000 --d 10 --k 4 [--seed 0]
        [--shared ../shared/bench] [--make-synth PATH] [--flexmix-script PATH]
        [--n-init 1 3] [--tol 1e-8] [--repeats 1] [--blas-threads T]
        [--out results.json]

Steps
-----
1. ``make_synth.py N D K data.csv --seed SEED`` writes a synthetic gated mixture of linear
   regressions (and ``data.csv.truth.json``) into a temporary directory, deleted at exit.
2. ``Rscript flexmix_timing.R data.csv k=K which=flexmix`` fits flexmix (Gaussian experts on
   x1..xD, multinomial-logit gate over x1..xD, its default controls) and prints JSON.
3. The same CSV is read with numpy (response ``y``, features ``x1..xD``, ``z`` ignored) and
   ``MixtureOfExpertsRegressor(K, gate_alpha=0, tol=TOL, n_init=R)`` (the maximum-likelihood
   gate, as flexmix's) is fitted once for every ``R`` in ``--n-init``.

Run with ``PYTHONPATH=.`` (or after ``pip install -e .``) from the repository root.
Both programs are timed around the fit only (reading the CSV excluded); flexmix runs once,
each skmoe fit ``--repeats`` times and its best wall time is reported (all are printed).
The table gives wall seconds, EM iterations, log-likelihood (full Gaussian density, as
flexmix's ``logLik``), the difference to flexmix's, and the speed-up
``flexmix_time / skmoe_time``; the log-likelihood of the true parameters comes from the
truth JSON. flexmix runs on R's BLAS, skmoe on numpy's (``--blas-threads`` caps its
threads; the count used is printed). The helper scripts default to ``../shared/bench/``
relative to the repository root. Timings are sensitive to other jobs on the machine: the
1-minute load average at start and end is printed.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from skmoe import MixtureOfExpertsRegressor

REPO = Path(__file__).resolve().parents[1]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--d", type=int, default=10)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0, help="data seed (make_synth.py)")
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "bench",
                        help="folder holding make_synth.py and flexmix_timing.R")
    parser.add_argument("--make-synth", type=Path, help="default: SHARED/make_synth.py")
    parser.add_argument("--flexmix-script", type=Path,
                        help="default: SHARED/flexmix_timing.R")
    parser.add_argument("--n-init", type=int, nargs="+", default=[1, 3],
                        help="skmoe restarts; one fit per value")
    parser.add_argument("--tol", type=float, default=1e-8,
                        help="skmoe tol (1e-6 can stop ~1e-4 short of flexmix's optimum)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="time each skmoe fit this many times, report the best")
    parser.add_argument("--blas-threads", type=int, default=None,
                        help="cap numpy's BLAS threads (default: numpy's own setting)")
    parser.add_argument("--out", type=Path, help="write all numbers to this JSON file")
    args = parser.parse_args()
    args.make_synth = args.make_synth or args.shared / "make_synth.py"
    args.flexmix_script = args.flexmix_script or args.shared / "flexmix_timing.R"
    missing = [str(p) for p in (args.make_synth, args.flexmix_script) if not p.is_file()]
    if missing:
        sys.exit(f"error: helper script(s) not found: {', '.join(missing)}\n"
                 "Pass --shared DIR, or --make-synth PATH and --flexmix-script PATH.")
    if shutil.which("Rscript") is None:
        sys.exit("error: Rscript not found on PATH (install R with the flexmix, jsonlite and "
                 "data.table packages).")
    return args


def run(cmd):
    """Run a command, return its stdout; exit with its stderr if it fails."""
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"error: {' '.join(map(str, cmd))} failed:\n{proc.stderr}")
    return proc.stdout


def read_csv(path, d):
    with open(path) as f:
        names = f.readline().strip().split(",")
    data = np.loadtxt(path, delimiter=",", skiprows=1)
    X = np.ascontiguousarray(data[:, [names.index(f"x{j + 1}") for j in range(d)]])
    return X, data[:, names.index("y")].copy()


def fit_skmoe(X, y, k, n_init, tol, seed, repeats):
    """Fit ``repeats`` times (same seed, same result); keep the best wall time."""
    walls, cpus = [], []
    for _ in range(repeats):
        model = MixtureOfExpertsRegressor(k, gate_alpha=0.0, tol=tol, n_init=n_init,
                                          random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tic, cpu = time.perf_counter(), time.process_time()
            model.fit(X, y)
            walls.append(time.perf_counter() - tic)
            cpus.append(time.process_time() - cpu)
    restarts = [{key: r[key] for key in ("log_likelihood", "n_iter", "converged", "time")}
                for r in model.restarts_]
    best = int(np.argmin(walls))
    return {"program": f"skmoe n_init={n_init}", "wall_s": walls[best], "cpu_s": cpus[best],
            "wall_s_all": walls, "iter": model.n_iter_,
            "iter_all_restarts": sum(r["n_iter"] for r in restarts),
            "converged": bool(model.converged_), "loglik": model.log_likelihood_,
            "n_init": n_init, "tol": tol, "restarts": restarts}


def main():
    args = parse_args()
    n, d, k = args.n, args.d, args.k
    result = {"n": n, "d": d, "k": k, "seed": args.seed, "load_avg_start": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="bench_flexmix_") as tmp:
        csv = Path(tmp) / "data.csv"
        run([sys.executable, args.make_synth, n, d, k, csv, "--seed", args.seed])
        truth = json.loads(Path(f"{csv}.truth.json").read_text())
        print(f"data: n={n} D={d} K={k} seed={args.seed}, expert counts "
              f"{truth['expert_counts']}", flush=True)

        r_out = json.loads(run(["Rscript", args.flexmix_script, csv, f"k={k}",
                                "which=flexmix"]))
        flexmix = r_out["flexmix"]
        if "error" in flexmix:
            sys.exit(f"error: flexmix failed: {flexmix['error']}")
        flexmix["program"] = f"flexmix {r_out['flexmix_version']}"
        print(f"{flexmix['program']} done in {flexmix['wall_s']:.2f} s", flush=True)

        X, y = read_csv(csv, d)
    with threadpool_limits(limits=args.blas_threads, user_api="blas"):
        threads = max(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")
        skmoe = [fit_skmoe(X, y, k, r, args.tol, args.seed, args.repeats) for r in args.n_init]
    result["load_avg_end"] = os.getloadavg()

    defaults = MixtureOfExpertsRegressor().get_params()
    print(f"\nskmoe: gate_alpha=0, tol={args.tol:g}, init_params={defaults['init_params']!r}, "
          f"acceleration={defaults['acceleration']!r}, "
          f"random_state={args.seed}, numpy BLAS threads={threads}, "
          f"best wall of {args.repeats}; "
          f"flexmix: {r_out['R']}, control {flexmix['control']}")
    print(f"{'program':<17} {'wall s':>8} {'iter':>5} {'s/iter':>7} {'log-likelihood':>15} "
          f"{'- flexmix':>10} {'flexmix/skmoe':>14}")
    for row in [flexmix, *skmoe]:
        row["s_per_iter"] = row["wall_s"] / max(row.get("iter_all_restarts", row["iter"]), 1)
        row["speedup"] = flexmix["wall_s"] / row["wall_s"]
        iters = (f"{row['iter_all_restarts']}" if row.get("n_init", 1) > 1 else f"{row['iter']}")
        print(f"{row['program']:<17} {row['wall_s']:>8.3f} {iters:>5} {row['s_per_iter']:>7.4f} "
              f"{row['loglik']:>15.4f} {row['loglik'] - flexmix['loglik']:>+10.4f} "
              f"{row['speedup']:>13.1f}x")
    print(f"{'true parameters':<17} {'':>8} {'':>5} {'':>7} {truth['loglik_true_params']:>15.4f} "
          f"{truth['loglik_true_params'] - flexmix['loglik']:>+10.4f}")
    for row in skmoe:
        if row["n_init"] > 1:
            print(f"{row['program']}: iter is summed over restarts; per restart "
                  + ", ".join(f"{r['n_iter']} it / {r['time']:.2f} s / {r['log_likelihood']:.4f}"
                              for r in row["restarts"]))
    for row in skmoe:
        print(f"{row['program']}: wall s of each repeat "
              + ", ".join(f"{w:.3f}" for w in row["wall_s_all"])
              + f"; CPU s (all threads) of the best {row['cpu_s']:.2f}")
    print(f"load average (1 min) at start {result['load_avg_start'][0]:.2f}, "
          f"at end {result['load_avg_end'][0]:.2f}")

    if args.out:
        result.update(flexmix=flexmix, skmoe=skmoe, blas_threads=threads, R=r_out["R"],
                      loglik_true_params=truth["loglik_true_params"])
        args.out.write_text(json.dumps(result, indent=1, default=lambda v: v.item()))


if __name__ == "__main__":
    main()
