"""Scores of the predictive density, for model selection on estimators and pipelines.

A mixture of experts defines ``p(y | x)``; its held-out log-likelihood is the natural score
for cross-validation. A scikit-learn ``Pipeline`` does not pass ``y`` to its last step's
``score_samples``, so these helpers apply the pipeline's transformers first
(``pipe[:-1].transform(X)``) and ask the final skmoe estimator.
"""

import numpy as np
from sklearn.pipeline import Pipeline

from ._docstrings import fill

__all__ = ["final_estimator", "log_likelihood_scorer", "mean_log_likelihood"]


@fill
def final_estimator(estimator, X):
    """The skmoe estimator at the end of ``estimator`` and ``X`` as it sees it.

    For a fitted ``Pipeline``, the last step and ``pipe[:-1].transform(X)`` (X may be
    None: only the step is wanted); for any other estimator, the estimator and ``X``
    unchanged. This is the recipe for every method a
    pipeline does not expose (``predict_interval``, ``sample_y``, ``bic``, ``summary``,
    ``predict_gate``, ...).

    {Parameters estimator}
    X : array-like or None
        The input of ``estimator``.

    Returns
    -------
    model : estimator
        The skmoe estimator.
    Xt : array-like or None
        ``X`` as ``model`` sees it.

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skmoe import MixtureOfExpertsRegressor
    >>> from skmoe.datasets import load_tone
    >>> from skmoe.metrics import final_estimator
    >>> X, y = load_tone(return_X_y=True)
    >>> pipe = make_pipeline(StandardScaler(), MixtureOfExpertsRegressor(random_state=0))
    >>> model, Xt = final_estimator(pipe.fit(X, y), X)
    >>> model.predict_interval(Xt[:1], coverage=0.9).shape
    (1, 2)
    """
    while isinstance(estimator, Pipeline):
        if X is not None and len(estimator.steps) > 1:
            X = estimator[:-1].transform(X)
        estimator = estimator.steps[-1][1]
    return estimator, X


@fill
def mean_log_likelihood(estimator, X, y, sample_weight=None, exposure=None):
    """Mean held-out log-likelihood ``sum_i w_i log p(y_i | x_i) / sum_i w_i``.

    {Parameters estimator held_out}
    {exposure}

    Returns
    -------
    float
        The mean log-likelihood.
    """
    model, X = final_estimator(estimator, X)
    log_lik = model.score_samples(X, y, exposure)
    return float(np.average(log_lik, weights=sample_weight))


@fill
def log_likelihood_scorer(estimator, X, y, sample_weight=None):
    """Scorer for ``scoring=`` in ``cross_val_score``, ``GridSearchCV``, ...: the mean
    held-out log-likelihood (greater is better) of a skmoe estimator or a Pipeline ending
    in one.

    {Parameters estimator held_out}

    Returns
    -------
    float
        The mean log-likelihood.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.model_selection import cross_val_score
    >>> from skmoe import MixtureOfExpertsRegressor
    >>> from skmoe.datasets import load_tone
    >>> from skmoe.metrics import log_likelihood_scorer
    >>> X, y = load_tone(return_X_y=True)
    >>> scores = cross_val_score(MixtureOfExpertsRegressor(random_state=0), X, y, cv=3,
    ...                          scoring=log_likelihood_scorer)
    >>> bool(np.isfinite(scores).all())
    True
    """
    return mean_log_likelihood(estimator, X, y, sample_weight=sample_weight)
