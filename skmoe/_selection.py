"""Choosing the number of experts."""

import numpy as np
from sklearn.base import clone
from sklearn.pipeline import Pipeline

from .metrics import final_estimator


def select_n_experts(
    estimator, X, y, n_experts=(1, 2, 3, 4, 5), *, criterion="bic", param=None, **fit_params
):
    """Fit ``estimator`` for every number of experts (or tree depth) and keep the best by an
    information criterion on the training data.

    For held-out log-likelihood instead, use ``GridSearchCV`` over ``n_experts`` with
    ``scoring=skmoe.metrics.log_likelihood_scorer``, the right way to cross-validate a
    density model (see the user guide).

    Parameters
    ----------
    estimator : skmoe estimator, or a Pipeline ending in one
        Unfitted template; every candidate is a clone with ``param`` set. For a pipeline
        the criterion is computed by its last step on the transformed X.
    X : array-like of shape (n_samples, n_features)
        Training samples.
    y : array-like of shape (n_samples,)
        Their responses.
    n_experts : iterable of int
        The values of ``param`` to try.
    criterion : {"bic", "aic", "icl"}, default="bic"
        The criterion to minimise.
    param : str or None, default=None
        The parameter to vary: ``"n_experts"`` for flat models and ``"depth"`` for
        hierarchical ones when None (``"<last step>__n_experts"`` for a pipeline); any
        integer hyper-parameter (e.g. ``"branching"``), in sklearn's ``step__name`` form
        for a pipeline (``"mixtureofexpertsregressor__n_experts"``).
    **fit_params : dict
        Passed to ``fit`` (``sample_weight``, ``exposure``, ``groups``; for a pipeline
        ``<last step>__sample_weight``), and to the criterion.

    Returns
    -------
    best : estimator
        The fitted candidate with the lowest criterion.
    scores : dict
        Maps each value of ``param`` to its criterion value.

    Examples
    --------
    >>> from skmoe import MixtureOfExpertsRegressor, select_n_experts
    >>> from skmoe.datasets import make_moe_regression
    >>> X, y = make_moe_regression(1000, 2, 3, random_state=0)
    >>> best, scores = select_n_experts(
    ...     MixtureOfExpertsRegressor(n_init=3, random_state=0), X, y, [1, 2, 3, 4])
    >>> best.n_experts
    3
    """
    if criterion not in ("bic", "aic", "icl"):
        raise ValueError(f"criterion must be 'bic', 'aic' or 'icl'; got {criterion!r}.")
    names = estimator.get_params(deep=isinstance(estimator, Pipeline))
    if param is None:
        prefix = f"{estimator.steps[-1][0]}__" if isinstance(estimator, Pipeline) else ""
        param = prefix + ("n_experts" if prefix + "n_experts" in names else "depth")
    if param not in names:
        raise ValueError(
            f"param={param!r} is not a parameter of {type(estimator).__name__}; "
            f"choose among {', '.join(sorted(names))}."
        )
    n_experts = list(n_experts)
    if not n_experts:
        raise ValueError(f"n_experts must hold at least one value of {param!r} to try; got [].")
    scoring_params = {
        key.rsplit("__", 1)[-1]: value
        for key, value in fit_params.items()
        if key.rsplit("__", 1)[-1] in ("exposure", "sample_weight", "groups")
    }
    best, best_score, scores = None, np.inf, {}
    for k in n_experts:
        model = clone(estimator).set_params(**{param: k}).fit(X, y, **fit_params)
        final, Xt = final_estimator(model, X)
        scores[k] = float(getattr(final, criterion)(Xt, y, **scoring_params))
        if scores[k] < best_score:
            best, best_score = model, scores[k]
    return best, scores
