"""Text: a TfidfVectorizer pipeline ending in MixtureOfExpertsClassifier or LogisticRegression.

    python benchmarks/bench_sparse.py [--docs 2000] [--features 20000]

A synthetic corpus: documents of 60-140 words drawn from a Zipf-distributed vocabulary
of 60,000 words plus topic words; four topics, two of which share their words with
another (so one linear boundary is not enough). ``TfidfVectorizer(max_features=20000)``
gives a sparse matrix; both pipelines are fitted on it in the same run, timed (best of
``--repeats``, on ``--docs`` documents; accuracy on 1,000 more) and traced by
``tracemalloc`` (peak of the fit, the vectoriser's included). The
dense design would take ``docs x features x 8`` bytes; the mixture of experts never
forms it (its experts and gate are fitted matrix-free).
"""

import argparse
import tracemalloc
import warnings

import numpy as np
from _timing import seconds
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline

from skmoe import DegenerateFitWarning, MixtureOfExpertsClassifier


def corpus(n_docs, n_vocab=60_000, seed=0):
    rng = np.random.default_rng(seed)
    ranks = np.arange(1, n_vocab + 1)
    common = ranks**-0.9 / np.sum(ranks**-0.9)
    topic_words = rng.choice(n_vocab, size=(4, 300), replace=False)
    labels = rng.integers(4, size=n_docs)
    marker = rng.random(n_docs) < 0.5  # two sub-styles per topic
    docs = []
    for label, style in zip(labels, marker):
        length = rng.integers(60, 141)
        words = rng.choice(n_vocab, size=length, p=common)
        n_topic = rng.binomial(length, 0.15)
        # topics 2 and 3 use each other's words in one style: a regional boundary
        source = label if not (style and label >= 2) else 5 - label
        words[:n_topic] = rng.choice(topic_words[source], size=n_topic)
        if style:
            words[n_topic : n_topic + 5] = topic_words[(label + 1) % 4, :5]
        docs.append(" ".join(f"w{w}" for w in words))
    return docs, labels


def traced_fit(make, X, y, repeats):
    best = seconds(lambda: make().fit(X, y), repeats)
    tracemalloc.start()
    model = make().fit(X, y)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return best, peak, model


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--features", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    warnings.simplefilter("ignore", ConvergenceWarning)
    warnings.simplefilter("ignore", DegenerateFitWarning)
    docs, labels = corpus(args.docs + 1000)  # 1,000 more documents to test on
    d_train, d_test, y_train, y_test = train_test_split(
        docs, labels, train_size=args.docs, random_state=0
    )
    X = TfidfVectorizer(max_features=args.features).fit_transform(d_train)
    dense_mib = X.shape[0] * X.shape[1] * 8 / 2**20
    print(f"{args.docs} documents ({len(d_train)} to train), X {X.shape[0]} x {X.shape[1]}, "
          f"nnz {X.nnz:,} ({X.data.nbytes / 2**20:.1f} MiB); dense X would be "
          f"{dense_mib:.0f} MiB; best of {args.repeats}")
    rows = [
        ("TfidfVectorizer + LogisticRegression",
         lambda: make_pipeline(TfidfVectorizer(max_features=args.features),
                               LogisticRegression(max_iter=1000))),
        ("TfidfVectorizer + MixtureOfExpertsClassifier(2)",
         lambda: make_pipeline(TfidfVectorizer(max_features=args.features),
                               MixtureOfExpertsClassifier(2, random_state=0))),
        ("... MixtureOfExpertsClassifier(2, tol=1e-4)",
         lambda: make_pipeline(TfidfVectorizer(max_features=args.features),
                               MixtureOfExpertsClassifier(2, tol=1e-4, random_state=0))),
        ('... (2, acceleration="squarem-lbfgs")',
         lambda: make_pipeline(TfidfVectorizer(max_features=args.features),
                               MixtureOfExpertsClassifier(2, acceleration="squarem-lbfgs",
                                                          random_state=0))),
    ]
    print(f"{'pipeline':<50}{'seconds':>9}{'peak MiB':>10}{'EM iter':>9}{'accuracy':>10}")
    times = []
    for name, make in rows:
        secs, peak, model = traced_fit(make, d_train, y_train, args.repeats)
        times.append(secs)
        n_iter = getattr(model[-1], "n_iter_", "")
        n_iter = n_iter if isinstance(n_iter, int) else ""
        print(f"{name:<50}{secs:>9.3f}{peak / 2**20:>10.1f}{n_iter:>9}"
              f"{model.score(d_test, y_test):>10.4f}", flush=True)
    print("time ratio MoE / LogisticRegression: "
          + ", ".join(f"{t / times[0]:.2f}" for t in times[1:]))


if __name__ == "__main__":
    main()
