"""Many classes: MixtureOfExpertsClassifier(2) against LogisticRegression on load_digits.

    python benchmarks/bench_classifier.py [--repeats 3]

10 classes, 64 features, 1,797 images; both models fitted on the same standardised
training split (75%) in the same run, held-out accuracy on the rest. The experts are
multinomial logits fitted by truncated Newton (matrix-free, as the gate).
"""

import argparse
import warnings

from _timing import seconds
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from skmoe import DegenerateFitWarning, MixtureOfExpertsClassifier


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
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
    ]
    print(f"load_digits: n_train={len(y_train)}, p={X.shape[1]}, C=10; best of {args.repeats}")
    print(f"{'model':<42}{'seconds':>9}{'EM iter':>9}{'accuracy':>10}")
    times = {}
    for name, make in rows:
        times[name] = seconds(lambda: make().fit(X_train, y_train), args.repeats)
        model = make().fit(X_train, y_train)
        n_iter = getattr(model, "n_iter_", "")
        n_iter = n_iter if isinstance(n_iter, int) else ""
        print(f"{name:<42}{times[name]:>9.3f}{n_iter:>9}{model.score(X_test, y_test):>10.4f}",
              flush=True)
    base = times[rows[0][0]]
    print("time ratio MoE / LogisticRegression: "
          + ", ".join(f"{times[name] / base:.2f}" for name, _ in rows[1:]))


if __name__ == "__main__":
    main()
