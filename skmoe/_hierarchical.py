"""Hierarchical mixtures of experts (Jordan & Jacobs 1994): soft decision trees.

The estimators are the flat ones with a deeper gate tree; the EM engine is the same.
"""

from numbers import Integral

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ._base import _gate_tol
from ._classifier import MixtureOfExpertsClassifier
from ._docstrings import fill
from ._gate import GateTree
from ._regressor import MixtureOfExpertsRegressor
from ._sklearn_compat import Interval

_TREE_PARAMS_DOC = """depth : int, default=2
        Levels of gates; the tree has ``branching**depth`` experts at its leaves and
        ``(branching**depth - 1) / (branching - 1)`` gate nodes.
    branching : int, default=2
        Children of every gate node."""


class _TreeMixin:
    """What the hierarchical estimators add to the flat ones."""

    def _make_gate(self):
        return GateTree(self.depth, self.branching, self.gate_alpha,
                        max_iter=self._gate_newton_steps, tol=_gate_tol(self.tol))

    def _n_leaves(self):
        return self.branching**self.depth

    def _set_gate_attributes(self, gate):
        coef = np.concatenate(gate)
        self.gate_coef_ = coef[..., 1:]
        self.gate_intercept_ = coef[..., 0]

    @fill
    def predict_leaf_proba(self, X):
        """Prior probability of every leaf: the product of the gates along its path.

        {Parameters X}

        Returns
        -------
        ndarray of shape (n_samples, n_leaves)
            The leaves' prior probabilities.
        """
        return self.predict_gate(X)

    @fill
    def apply(self, X):
        """Index of the most probable leaf of each sample (as ``DecisionTreeRegressor.apply``).

        {Parameters X}

        Returns
        -------
        ndarray of shape (n_samples,)
            The leaf of each sample.
        """
        return np.argmax(self.predict_gate(X), axis=1)


def _tree_constraints(flat):
    constraints = {key: value for key, value in flat.items() if key != "n_experts"}
    constraints["depth"] = [Interval(Integral, 1, None, closed="left")]
    constraints["branching"] = [Interval(Integral, 2, None, closed="left")]
    return constraints


@fill
class HierarchicalMixtureOfExpertsRegressor(_TreeMixin, MixtureOfExpertsRegressor):
    """Hierarchical mixture of GLM experts: a balanced tree of softmax gates, fitted by EM.

    A soft decision tree: every inner node is a softmax gate over its children, every leaf
    a GLM expert, and the prior of a leaf is the product of the gates on its path. EM
    computes leaf posteriors in log space; every gate node ``j`` is refitted on the targets
    ``h_child / h_j`` with weights ``w h_j`` (all nodes of a level in one batched fit) and
    every leaf with weights ``w h_leaf``. The flat mixture of experts is the tree of depth 1.

    Parameters
    ----------
    {tree}
    expert : {{"gaussian", "poisson", "gamma", "bernoulli"}} or family, default="gaussian"
    gate_alpha, expert_alpha, gate_features, expert_features, shared_features, \
shared_variance, variance_floor, max_iter, tol, acceleration, n_init, init_params, \
random_state, warm_start, verbose, n_jobs
        As in :class:`MixtureOfExpertsRegressor` (``init_params="tree"`` seeds each expert
        with one leaf of a CART tree of the same number of leaves).

    Attributes
    ----------
    gate_coef_ : ndarray of shape (n_gates, branching, n_gate_features)
        Gate nodes in breadth-first order (root first; node ``j`` at level ``l`` has
        children ``branching * j + c`` at level ``l + 1``).
    gate_intercept_ : ndarray of shape (n_gates, branching)
    expert_coef_, expert_intercept_, expert_variance_
        Leaves in left-to-right order.
    Other attributes as in :class:`MixtureOfExpertsRegressor`.

    Examples
    --------
    >>> from skmoe import HierarchicalMixtureOfExpertsRegressor
    >>> from skmoe.datasets import make_moe_regression
    >>> X, y = make_moe_regression(500, 2, 4, random_state=0)
    >>> hme = HierarchicalMixtureOfExpertsRegressor(depth=2, random_state=0).fit(X, y)
    >>> hme.predict_leaf_proba(X).shape, hme.gate_coef_.shape
    ((500, 4), (3, 2, 2))
    """

    _parameter_constraints = _tree_constraints(MixtureOfExpertsRegressor._parameter_constraints)

    def __init__(
        self,
        depth=2,
        branching=2,
        *,
        expert="gaussian",
        gate_alpha=0.01,
        expert_alpha=0.0,
        gate_features=None,
        expert_features=None,
        shared_features=None,
        shared_variance=False,
        variance_floor=None,
        max_iter=500,
        tol=1e-6,
        acceleration="squarem",
        n_init=1,
        init_params="multistart",
        random_state=None,
        warm_start=False,
        verbose=0,
        n_jobs=None,
    ):
        self.depth = depth
        self.branching = branching
        self.expert = expert
        self.shared_features = shared_features
        self.shared_variance = shared_variance
        self.variance_floor = variance_floor
        self.gate_alpha = gate_alpha
        self.expert_alpha = expert_alpha
        self.gate_features = gate_features
        self.expert_features = expert_features
        self.max_iter = max_iter
        self.tol = tol
        self.acceleration = acceleration
        self.n_init = n_init
        self.init_params = init_params
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.n_jobs = n_jobs


@fill
class HierarchicalMixtureOfExpertsClassifier(_TreeMixin, MixtureOfExpertsClassifier):
    """Hierarchical mixture of logistic experts: a balanced tree of softmax gates.

    Parameters
    ----------
    {tree}
    gate_alpha, expert_alpha, gate_features, expert_features, shared_features, max_iter, \
tol, acceleration, n_init, init_params, random_state, warm_start, verbose, n_jobs, \
class_weight
        As in :class:`MixtureOfExpertsClassifier`.

    Attributes
    ----------
    gate_coef_ : ndarray of shape (n_gates, branching, n_gate_features)
        Gate nodes in breadth-first order.
    gate_intercept_ : ndarray of shape (n_gates, branching)
    Other attributes as in :class:`MixtureOfExpertsClassifier`.

    Examples
    --------
    >>> from skmoe import HierarchicalMixtureOfExpertsClassifier
    >>> from skmoe.datasets import make_regional_classification
    >>> X, y = make_regional_classification(400, noise=0.05, random_state=0)
    >>> clf = HierarchicalMixtureOfExpertsClassifier(depth=2, random_state=0).fit(X, y)
    >>> clf.apply(X[:3]).shape
    (3,)
    """

    _parameter_constraints = _tree_constraints(MixtureOfExpertsClassifier._parameter_constraints)

    #: A tree of nearly separating gates: five Newton steps per M-step. Where the objective
    #: is flat (sklearn's sample-weight check: 15 rows, 30 features), which stop EM reaches
    #: depends on the path, and four steps leave weighted and repeated fits 1e-6 apart.
    _gate_newton_steps = 5

    def __init__(
        self,
        depth=2,
        branching=2,
        *,
        gate_alpha=0.01,
        expert_alpha=1.0,
        gate_features=None,
        expert_features=None,
        shared_features=None,
        max_iter=500,
        tol=1e-6,
        acceleration="squarem",
        n_init=1,
        init_params="multistart",
        random_state=None,
        warm_start=False,
        verbose=0,
        n_jobs=None,
        class_weight=None,
    ):
        self.depth = depth
        self.branching = branching
        self.gate_alpha = gate_alpha
        self.expert_alpha = expert_alpha
        self.gate_features = gate_features
        self.expert_features = expert_features
        self.max_iter = max_iter
        self.tol = tol
        self.acceleration = acceleration
        self.n_init = n_init
        self.init_params = init_params
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.n_jobs = n_jobs
        self.class_weight = class_weight
        self.shared_features = shared_features


for _cls in (HierarchicalMixtureOfExpertsRegressor, HierarchicalMixtureOfExpertsClassifier):
    _cls.__doc__ = (
        _cls.__doc__.replace("{tree}", _TREE_PARAMS_DOC).replace("{{", "{").replace("}}", "}")
    )


def _linear_terms(intercept, coef, names, decimals):
    terms = [f"{intercept:.{decimals}f}"]
    for value, name in zip(coef, names):
        terms.append(f"{'-' if value < 0 else '+'} {abs(value):.{decimals}f}*{name}")
    return terms


def _linear_text(intercept, coef, names, decimals):
    return " ".join(_linear_terms(intercept, coef, names, decimals))


def _wrapped(head, terms, tail, indent, width):
    """``head`` followed by the terms (never split inside one) and ``tail``, continued on
    lines that start with ``indent`` when longer than ``width``."""
    terms = [*terms[:-1], terms[-1] + tail]
    lines, line = [], head
    for i, term in enumerate(terms):
        if i and len(line) + 1 + len(term) > width:
            lines.append(line)
            line = indent + term
        else:
            line = f"{line} {term}" if i else line + term
    lines.append(line)
    return lines


def export_text(model, feature_names=None, decimals=3, max_width=88):
    """Text view of a fitted (hierarchical) mixture of experts, like ``sklearn.tree.export_text``.

    Gate nodes show the linear score of each child (the softmax of the scores gives the
    branch probabilities); a binary gate shows one score, the log-odds of its branch 1
    against its branch 0 (``P(branch 1) = 1 / (1 + exp(-score))``). Leaves show the
    expert's linear predictor and its dispersion. Lines longer than ``max_width`` continue
    on the next line, between two terms.

    Parameters
    ----------
    model : fitted MixtureOfExperts* or HierarchicalMixtureOfExperts* estimator
        The model to show.
    feature_names : list of str, default=None
        Names of the input columns; ``feature_names_in_`` or ``x0, x1, ...`` otherwise.
    decimals : int, default=3
        Decimals of the coefficients.
    max_width : int, default=88
        Longest line before a line break between two terms.

    Returns
    -------
    str
        The text view.

    Examples
    --------
    >>> from skmoe import MixtureOfExpertsRegressor, export_text
    >>> from skmoe.datasets import load_tone
    >>> X, y = load_tone(return_X_y=True)
    >>> model = MixtureOfExpertsRegressor(2, random_state=0).fit(X, y)
    >>> print(export_text(model, ["ratio"], decimals=1))  # doctest: +ELLIPSIS
    |--- gate 0: score = ... (branch 1 against branch 0)
    |   |--- branch 0 (score < 0)
    |   |   |--- expert 0: eta = ...
    |   |--- branch 1 (score > 0)
    |   |   |--- expert 1: eta = ...
    """
    check_is_fitted(model)
    if feature_names is None:
        feature_names = getattr(model, "feature_names_in_", None)
    if feature_names is None:
        feature_names = [f"x{i}" for i in range(model.n_features_in_)]
    feature_names = np.asarray(feature_names, dtype=object)
    if feature_names.shape != (model.n_features_in_,):
        raise ValueError(
            f"feature_names must name the {model.n_features_in_} input columns; got "
            f"{feature_names.size} names."
        )
    gate_names = feature_names[model.gate_features_in_]
    # the shared columns close every expert's linear predictor
    expert_names = feature_names[np.r_[model.expert_features_in_,
                                       model.shared_features_in_].astype(np.intp)]
    gate = model._params["gate"]
    experts = model._params["experts"]
    depth, branching = len(gate), gate[0].shape[1]
    lines = []

    def add(head, terms, tail, indent):
        lines.extend(_wrapped(head, terms, tail, indent + "|       ", max_width))

    def leaf(index, indent):
        parts = model._family.response_parts(experts)
        if len(parts) > 1:  # several responses: a line each, labelled
            lines.append(f"{indent}|--- expert {index}")
            for part in parts:
                names = expert_names if part.columns is None else expert_names[part.columns]
                coef = part.params["coef"][index]
                extra = ", ".join(f"{key} {part.params[key][index]:.{decimals}g}"
                                  for key in part.family.dispersion_keys)
                add(f"{indent}|       {part.label}: eta = ",
                    _linear_terms(coef[0], coef[1:], names, decimals),
                    f" ({extra})" if extra else "", indent)
            return
        coef = model._family.full_coef(experts)[index]
        rows = [coef] if coef.ndim == 1 else coef
        labels = [None] if coef.ndim == 1 else model.classes_
        extra = ", ".join(f"{key} {experts[key][index]:.{decimals}g}"
                          for key in model._family.dispersion_keys)
        extra = f" ({extra})" if extra else ""
        for j, (label, row) in enumerate(zip(labels, rows)):
            terms = _linear_terms(row[0], row[1:], expert_names, decimals)
            head = f"{indent}|--- expert {index}: eta = " if j == 0 else f"{indent}|       "
            if label is not None:
                head += f"class {label}: "
            add(head, terms, extra if j == len(rows) - 1 else ";", indent)

    def node(level, index, indent):
        number = (branching**level - 1) // (branching - 1) + index
        coef = gate[level][index]
        if branching == 2:
            difference = coef[1] - coef[0]
            terms = _linear_terms(difference[0], difference[1:], gate_names, decimals)
            add(
                f"{indent}|--- gate {number}: score = ",
                terms,
                " (branch 1 against branch 0)",
                indent,
            )
        else:
            lines.append(f"{indent}|--- gate {number}")
        for child in range(branching):
            if branching == 2:
                lines.append(f"{indent}|   |--- branch {child} (score {'<>'[child]} 0)")
            else:
                terms = _linear_terms(coef[child][0], coef[child][1:], gate_names, decimals)
                add(f"{indent}|   |--- branch {child}: score = ", terms, "", indent + "|   ")
            if level + 1 == depth:
                leaf(index * branching + child, indent + "|   |   ")
            else:
                node(level + 1, index * branching + child, indent + "|   |   ")

    node(0, 0, "")
    return "\n".join(lines)
