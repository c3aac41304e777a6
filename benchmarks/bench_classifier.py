"""Many classes: MixtureOfExpertsClassifier(2) against LogisticRegression on load_digits.

    python benchmarks/bench_classifier.py [--repeats 3]

10 classes, 64 features, 1,797 images; both models fitted on the same standardised
training split (75%) in the same run, held-out accuracy on the rest. The experts are
multinomial logits fitted by truncated Newton (matrix-free, as the gate).

The last lines measure how far the default fit is from the best optimum known: the same
penalised log-likelihood maximised directly by L-BFGS (its gradient by Fisher's identity:
the responsibility-weighted scores), once from the default fit's parameters (does EM stop
at a maximum?) and from ``--direct-starts`` random parameter vectors (other basins).
"""

import argparse
import time
import warnings

import numpy as np
from _timing import seconds
from scipy.optimize import minimize
from scipy.special import logsumexp
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from skmoe import DegenerateFitWarning, MixtureOfExpertsClassifier


def negative_objective(theta, X1, y, n_experts, n_classes, expert_alpha, gate_alpha):
    """Minus the classifier's penalised log-likelihood and its gradient, in the free
    parametrisation: every expert's ``(C, d + 1)`` class coefficients, then the gate's
    ``(K, d + 1)``. The penalties leave the intercepts free, so the optimum is the
    sum-to-zero one of ``MixtureOfExpertsClassifier``."""
    n, d1 = X1.shape
    split = n_experts * n_classes * d1
    B = theta[:split].reshape(n_experts * n_classes, d1)
    V = theta[split:].reshape(n_experts, d1)
    rows = np.arange(n)
    eta = (X1 @ B.T).reshape(n, n_experts, n_classes)
    eta_norm = logsumexp(eta, axis=2)
    gate_eta = X1 @ V.T
    log_gate = gate_eta - logsumexp(gate_eta, axis=1, keepdims=True)
    joint = log_gate + eta[rows, :, y] - eta_norm
    log_lik = logsumexp(joint, axis=1)
    resp = np.exp(joint - log_lik[:, None])
    value = (log_lik.sum() - 0.5 * expert_alpha * np.sum(B[:, 1:] ** 2)
             - 0.5 * gate_alpha * np.sum(V[:, 1:] ** 2))
    score = -np.exp(eta - eta_norm[:, :, None]) * resp[:, :, None]
    score[rows, :, y] += resp
    grad_B = score.reshape(n, -1).T @ X1
    grad_B[:, 1:] -= expert_alpha * B[:, 1:]
    grad_V = (resp - np.exp(log_gate)).T @ X1
    grad_V[:, 1:] -= gate_alpha * V[:, 1:]
    return -value, -np.concatenate([grad_B.ravel(), grad_V.ravel()])


def parameters_of(model):
    B = np.concatenate([model.expert_intercept_[..., None], model.expert_coef_], axis=-1)
    V = np.column_stack([model.gate_intercept_, model.gate_coef_])
    return np.concatenate([B.ravel(), V.ravel()])


def direct_fit(theta, args):
    """L-BFGS on the penalised log-likelihood from ``theta``: (objective, seconds, iterations)."""
    tic = time.perf_counter()
    result = minimize(negative_objective, theta, args=args, jac=True, method="L-BFGS-B",
                      options={"maxiter": 20_000, "maxfun": 40_000, "gtol": 1e-5,
                               "ftol": 1e-15, "maxcor": 30})
    return -result.fun, time.perf_counter() - tic, result.nit


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--direct-starts", type=int, default=4)
    args = parser.parse_args()
    warnings.simplefilter("ignore", ConvergenceWarning)
    warnings.simplefilter("ignore", DegenerateFitWarning)
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0, stratify=y)
    scaler = StandardScaler().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    rows = [
        ("LogisticRegression()", lambda: LogisticRegression(max_iter=1000)),
        ("MixtureOfExpertsClassifier(2)", lambda: MixtureOfExpertsClassifier(2, random_state=0)),
        ("MixtureOfExpertsClassifier(2, tol=1e-4)",
         lambda: MixtureOfExpertsClassifier(2, tol=1e-4, random_state=0)),
        ('... (2, acceleration="squarem-lbfgs")',
         lambda: MixtureOfExpertsClassifier(2, acceleration="squarem-lbfgs", random_state=0)),
    ]
    print(f"load_digits: n_train={len(y_train)}, p={X.shape[1]}, C=10; best of {args.repeats}")
    print(f"{'model':<42}{'seconds':>9}{'EM iter':>9}{'accuracy':>10}")
    times, objectives = {}, {}
    for name, make in rows:
        times[name] = seconds(lambda: make().fit(X_train, y_train), args.repeats)
        model = make().fit(X_train, y_train)
        objectives[name] = getattr(model, "objective_", None)
        if name == rows[1][0]:
            default = model
        n_iter = getattr(model, "n_iter_", "")
        n_iter = n_iter if isinstance(n_iter, int) else ""
        print(f"{name:<42}{times[name]:>9.3f}{n_iter:>9}{model.score(X_test, y_test):>10.4f}",
              flush=True)
    base = times[rows[0][0]]
    print("time ratio MoE / LogisticRegression: "
          + ", ".join(f"{times[name] / base:.2f}" for name, _ in rows[1:]))
    print("penalised log-likelihood: "
          + ", ".join(f"{name} {objectives[name]:.4f}" for name, _ in rows[1:]))
    X1 = np.column_stack([np.ones(len(y_train)), X_train])
    objective_args = (X1, y_train, 2, 10, default.expert_alpha, default.gate_alpha)
    start = parameters_of(default)
    check = -negative_objective(start, *objective_args)[0]
    assert abs(check - default.objective_) <= 1e-8 * abs(check), (check, default.objective_)
    value, wall, n_iter = direct_fit(start, objective_args)
    print(f"L-BFGS from the default fit: {value:.4f} ({value - default.objective_:+.4f}) "
          f"in {n_iter} iterations, {wall:.2f} s")
    rng = np.random.default_rng(0)
    for index in range(args.direct_starts):
        value, wall, n_iter = direct_fit(0.1 * rng.standard_normal(start.size), objective_args)
        print(f"L-BFGS from random start {index}: {value:.4f} "
              f"({value - default.objective_:+.4f}) in {n_iter} iterations, {wall:.2f} s")


if __name__ == "__main__":
    main()
