"""Draws from a planted gated mixture of linear regressions."""

import numpy as np
from scipy.special import softmax
from sklearn.utils import check_random_state


def make_moe_regression(
    n_samples=1000,
    n_features=4,
    n_experts=3,
    *,
    noise=0.5,
    gate_scale=2.0,
    coef_scale=3.0,
    random_state=None,
    return_params=False,
):
    """Sample from a mixture of Gaussian linear experts under a softmax gate.

    ``x ~ N(0, I)``, expert ``z ~ softmax(x V' + c)``, ``y = x b_z + a_z + noise * e``.
    Gate and expert coefficients (intercepts included) are drawn from
    ``N(0, gate_scale^2)`` and ``N(0, coef_scale^2)``.

    Parameters
    ----------
    n_samples : int, default=1000
        Number of samples.
    n_features : int, default=4
        Number of features.
    n_experts : int, default=3
        Number of experts.
    noise : float, default=0.5
        Standard deviation of every expert's Gaussian noise.
    gate_scale, coef_scale : float
        Scales of the drawn gate and expert coefficients.
    random_state : int, RandomState instance or None, default=None
        Seeds the draws.
    return_params : bool, default=False
        Also return the true parameters.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
        The samples.
    y : ndarray of shape (n_samples,)
        Their responses.
    params : dict, only when ``return_params``
        ``gate_coef`` (K, p), ``gate_intercept`` (K,), ``expert_coef`` (K, p),
        ``expert_intercept`` (K,), ``noise``, ``labels`` (the drawn expert of each sample)
        and ``gate`` (the true gate probabilities, (n, K)).

    Examples
    --------
    >>> from skmoe.datasets import make_moe_regression
    >>> X, y, truth = make_moe_regression(200, 3, 2, random_state=0, return_params=True)
    >>> X.shape, truth["expert_coef"].shape
    ((200, 3), (2, 3))
    """
    rng = check_random_state(random_state)
    gate_coef = rng.normal(0.0, gate_scale, size=(n_experts, n_features))
    gate_intercept = rng.normal(0.0, gate_scale, size=n_experts)
    expert_coef = rng.normal(0.0, coef_scale, size=(n_experts, n_features))
    expert_intercept = rng.normal(0.0, coef_scale, size=n_experts)
    X = rng.normal(size=(n_samples, n_features))
    gate = softmax(X @ gate_coef.T + gate_intercept, axis=1)
    labels = (rng.uniform(size=(n_samples, 1)) > np.cumsum(gate, axis=1)).sum(axis=1)
    labels = np.minimum(labels, n_experts - 1)
    means = X @ expert_coef.T + expert_intercept
    y = means[np.arange(n_samples), labels] + noise * rng.normal(size=n_samples)
    if not return_params:
        return X, y
    params = {
        "gate_coef": gate_coef,
        "gate_intercept": gate_intercept,
        "expert_coef": expert_coef,
        "expert_intercept": expert_intercept,
        "noise": noise,
        "labels": labels,
        "gate": gate,
    }
    return X, y, params


def make_regional_classification(n_samples=3000, *, noise=0.0, random_state=None):
    """Two-class problem whose boundary is linear inside each of 3 regions but not globally.

    ``X`` is uniform on ``[-3, 3]^2``. The regions are ``x1 < -1``, ``-1 <= x1 < 1`` and
    ``x1 >= 1`` (split by two parallel hyperplanes, so a softmax gate can find them); the
    boundaries inside them are ``x2 = 0``, ``x2 = x1`` flipped, and ``x1 + x2 = 2``.
    A fraction ``noise`` of labels is flipped.

    Parameters
    ----------
    n_samples : int, default=3000
        Number of samples.
    noise : float, default=0.0
        Fraction of flipped labels.
    random_state : int, RandomState instance or None, default=None
        Seeds the draws.

    Returns
    -------
    X : ndarray of shape (n_samples, 2)
        The samples.
    y : ndarray of shape (n_samples,)
        Their labels in {0, 1}.

    Examples
    --------
    >>> from skmoe.datasets import make_regional_classification
    >>> X, y = make_regional_classification(100, random_state=0)
    >>> X.shape, sorted(set(y.tolist()))
    ((100, 2), [0, 1])
    """
    rng = check_random_state(random_state)
    X = rng.uniform(-3.0, 3.0, size=(n_samples, 2))
    x1, x2 = X[:, 0], X[:, 1]
    y = np.where(x1 < -1.0, x2 > 0.0, np.where(x1 < 1.0, x2 < x1, x1 + x2 > 2.0))
    flip = rng.uniform(size=n_samples) < noise
    return X, np.where(flip, ~y, y).astype(int)


def make_panel_regression(
    n_groups=200,
    n_periods=5,
    n_experts=3,
    *,
    noise=1.0,
    gate_scale=1.0,
    coef_scale=1.5,
    random_state=None,
    return_params=False,
):
    """Sample panel data from a planted grouped mixture: latent-class growth curves.

    Every unit (group) ``g`` has a covariate ``u_g ~ N(0, 1)`` and one latent class
    ``z_g ~ softmax(u_g v + c)``; it is observed at the periods ``t = 0, ..., n_periods - 1``
    with a row covariate ``x ~ N(0, 1)``, and ``y = a_z + b_z t + d_z x + noise * e``. This
    is the model of ``fit(X, y, groups=groups)`` with the gate on ``u`` and the experts on
    ``t`` and ``x``. Gate and expert coefficients are drawn from ``N(0, gate_scale^2)`` and
    ``N(0, coef_scale^2)`` (the slopes in ``t`` divided by ``n_periods``, so the classes'
    trajectories spread as much as their intercepts).

    Parameters
    ----------
    n_groups : int, default=200
        Number of units.
    n_periods : int, default=5
        Rows (observations) per unit.
    n_experts : int, default=3
        Number of latent classes.
    noise : float, default=1.0
        Standard deviation of the rows' Gaussian noise.
    gate_scale : float, default=1.0
        Scale of the drawn gate coefficients.
    coef_scale : float, default=1.5
        Scale of the drawn expert coefficients.
    random_state : int, RandomState instance or None, default=None
        Seeds the draws.
    return_params : bool, default=False
        Also return the true parameters.

    Returns
    -------
    X : ndarray of shape (n_groups * n_periods, 3)
        The columns ``t``, ``x`` and ``u``, unit by unit.
    y : ndarray of shape (n_groups * n_periods,)
        The responses.
    groups : ndarray of int of shape (n_groups * n_periods,)
        The unit of every row.
    params : dict, only when ``return_params``
        ``gate_coef`` (K,), ``gate_intercept`` (K,), ``expert_coef`` (K, 2) (on ``t`` and
        ``x``), ``expert_intercept`` (K,), ``noise`` and ``labels`` (every unit's class).

    Examples
    --------
    >>> from skmoe.datasets import make_panel_regression
    >>> X, y, groups = make_panel_regression(50, 4, 2, random_state=0)
    >>> X.shape, groups[:6].tolist()
    ((200, 3), [0, 0, 0, 0, 1, 1])
    """
    rng = check_random_state(random_state)
    gate_coef = rng.normal(0.0, gate_scale, size=n_experts)
    gate_intercept = rng.normal(0.0, gate_scale, size=n_experts)
    expert_coef = rng.normal(0.0, coef_scale, size=(n_experts, 2))
    expert_coef[:, 0] /= n_periods
    expert_intercept = rng.normal(0.0, coef_scale, size=n_experts)
    u = rng.normal(size=n_groups)
    gate = softmax(u[:, None] * gate_coef + gate_intercept, axis=1)
    labels = (rng.uniform(size=(n_groups, 1)) > np.cumsum(gate, axis=1)).sum(axis=1)
    labels = np.minimum(labels, n_experts - 1)
    groups = np.repeat(np.arange(n_groups), n_periods)
    t = np.tile(np.arange(n_periods, dtype=float), n_groups)
    X = np.column_stack([t, rng.normal(size=t.size), u[groups]])
    z = labels[groups]
    y = expert_intercept[z] + np.einsum("ij,ij->i", X[:, :2], expert_coef[z])
    y += noise * rng.normal(size=t.size)
    if not return_params:
        return X, y, groups
    params = {
        "gate_coef": gate_coef,
        "gate_intercept": gate_intercept,
        "expert_coef": expert_coef,
        "expert_intercept": expert_intercept,
        "noise": noise,
        "labels": labels,
    }
    return X, y, groups, params
