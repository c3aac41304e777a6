"""``MixtureOfExpertsClassifier``: multinomial-logit experts under a softmax gate."""

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.utils import check_random_state
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets

from ._base import BaseMixtureOfExperts, check_n_draws
from ._dask import is_dask_collection
from ._docstrings import fill
from ._families import class_family
from ._linalg import log_sum_exp
from ._online import PartialFitMixin
from ._sklearn_compat import StrOptions, _fit_context


class MixtureOfExpertsClassifier(PartialFitMixin, ClassifierMixin, BaseMixtureOfExperts):
    """Mixture of logistic (multinomial-logit) experts with a softmax gate, fitted by EM.

    ``P(c | x) = sum_k g_k(x) P_k(c | x)``: each expert is a logistic regression (two
    classes) or a symmetric multinomial logit (more classes) and the gate a softmax over
    the experts. EM alternates responsibilities with weighted refits of all experts (Newton
    with step halving) and of the gate; the penalised log-likelihood never decreases.

    Parameters
    ----------
    n_experts : int, default=2
        Number of experts K.
    gate_alpha : float, default=0.01
        L2 penalty on the gate coefficients (not the intercepts).
    expert_alpha : float, default=1.0
        L2 penalty ``alpha / 2 ||B_k||^2`` on each expert's coefficients (not the
        intercepts): with one expert the model is ``LogisticRegression(C=1/alpha)``.
    gate_features, expert_features : array-like or None, default=None
        Columns seen by the gate and the experts (indices, boolean mask or names).
    shared_features : array-like or None, default=None
        Columns whose coefficients (one per class for more than two classes) are the
        same for every expert, fitted jointly with the experts' own and not penalised
        by ``expert_alpha``; ``shared_coef_`` holds them. As in
        :class:`MixtureOfExpertsRegressor`.
    max_iter : int, default=500
        Maximum number of EM iterations per run.
    tol : float, default=1e-6
        Convergence threshold on the change of the per-sample penalised log-likelihood.
    acceleration : {"squarem", "squarem-lbfgs"} or None, default="squarem"
        As in :class:`MixtureOfExpertsRegressor`. "squarem-lbfgs" (10 SQUAREM cycles, then
        L-BFGS on the penalised log-likelihood) is much faster on nearly separable data,
        where EM's rate of convergence is close to 1 (``load_digits``: see
        ``benchmarks/bench_classifier.py``); its end point is more sensitive to rounding.
    n_init : int, default=1
        Number of independent fits; the best is kept.
    init_params : {"multistart", "random", "voronoi", "kmeans", "tree"} or array-like of \
shape (n_samples, n_experts), default="multistart"
        Initial responsibilities, as in :class:`MixtureOfExpertsRegressor`; "voronoi" and
        "kmeans" partition the standardised ``[X, onehot(y)]``, "tree" takes the leaves of
        a CART tree with ``n_experts`` leaves.
    random_state : int, RandomState instance or None, default=None
        Seeds the initialisations, as in :class:`MixtureOfExpertsRegressor`.
    warm_start : bool, default=False
        Continue EM from the previous fit's parameters.
    verbose : int, default=0
        1 prints a line per restart, 2 every iteration.
    n_jobs : int or None, default=None
        Restarts run in parallel through joblib.
    class_weight : dict, "balanced" or None, default=None
        Weights of the classes, multiplying ``sample_weight`` (as in
        ``LogisticRegression``): a dict ``{label: weight}`` (missing labels weigh 1) or
        "balanced", ``n_samples / (n_classes * count(label))`` on the data of ``fit``.
        ``partial_fit`` takes a dict only; dask arrays take ``sample_weight`` instead.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    expert_coef_ : ndarray of shape (n_experts, n_expert_features), or \
(n_experts, n_classes, n_expert_features) for more than two classes
    expert_intercept_ : ndarray of shape (n_experts,) or (n_experts, n_classes)
    shared_coef_ : ndarray of shape (n_shared_features,) or (n_classes, n_shared_features)
        Coefficients of ``shared_features``, common to all experts; set when there are any.
    gate_coef_, gate_intercept_, weights_, events_, expert_features_in_, gate_features_in_, \
converged_, n_iter_, log_likelihood_, objective_, objective_trace_, restarts_, \
n_batches_seen_, batch_log_likelihood_, n_features_in_, feature_names_in_
        As in :class:`MixtureOfExpertsRegressor`.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from skmoe import MixtureOfExpertsClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = MixtureOfExpertsClassifier(n_experts=2, random_state=0).fit(X, y)
    >>> clf.predict_proba(X[:1]).shape
    (1, 3)
    """

    _parameter_constraints = {
        **BaseMixtureOfExperts._parameter_constraints,
        "class_weight": [dict, StrOptions({"balanced"}), None],
        "shared_features": ["array-like", None],
    }

    def __init__(
        self,
        n_experts=2,
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
        super().__init__(
            n_experts=n_experts,
            gate_alpha=gate_alpha,
            expert_alpha=expert_alpha,
            gate_features=gate_features,
            expert_features=expert_features,
            max_iter=max_iter,
            tol=tol,
            acceleration=acceleration,
            n_init=n_init,
            init_params=init_params,
            random_state=random_state,
            warm_start=warm_start,
            verbose=verbose,
            n_jobs=n_jobs,
        )
        self.class_weight = class_weight
        self.shared_features = shared_features

    #: A classifier's posteriors harden as its experts separate the classes, and its gate
    #: then nears separation too: one Newton step per M-step left ``load_breast_cancer``
    #: (3 experts) unconverged after 500 iterations; four converge in about 300.
    _gate_newton_steps = 4

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None, groups=None):
        """Fit the model by EM.

        Parameters
        ----------
        X : array-like or sparse matrix of shape (n_samples, n_features)
            Training samples.
        y : array-like of shape (n_samples,)
            Class labels of any type (strings included).
        sample_weight : array-like of shape (n_samples,), default=None
            Frequency weights.
        groups : array-like of shape (n_samples,), default=None
            Group labels: the rows of a group share one latent expert, as in
            :meth:`MixtureOfExpertsRegressor.fit` (the gate features and the weights,
            ``class_weight`` included, constant within every group).

        Returns
        -------
        self
            The fitted estimator.
        """
        return self._fit(X, y, self._class_weighted(y, sample_weight), groups=groups)

    def _partial_fit(self, X, y, sample_weight, classes, exposure, groups=None):
        sample_weight = self._class_weighted(y, sample_weight, incremental=True)
        return super()._partial_fit(X, y, sample_weight, classes, exposure, groups)

    def _class_weighted(self, y, sample_weight, incremental=False):
        """``sample_weight`` times the weight of each sample's class."""
        if self.class_weight is None:
            return sample_weight
        if is_dask_collection(y):
            raise ValueError("class_weight needs y in memory; pass sample_weight instead.")
        if incremental and isinstance(self.class_weight, str):
            raise ValueError(
                "class_weight='balanced' needs all of y: partial_fit takes a dict of weights."
            )
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            return sample_weight  # validation rejects y
        labels, inverse = np.unique(y, return_inverse=True)
        if isinstance(self.class_weight, str):
            per_class = compute_class_weight("balanced", classes=labels, y=y)
        else:
            per_class = np.array([float(self.class_weight.get(c, 1.0)) for c in labels])
        weights = per_class[inverse]
        if sample_weight is None:
            return weights
        return weights * np.asarray(sample_weight, dtype=float)

    def _validate_targets(self, y, reset, classes=None, stream=False):
        if not reset:
            return self._encode_labels(y)
        check_classification_targets(y)
        if stream:
            self._partial_fit_classes(classes, reset=True)
            return self._encode_labels(y)
        self.classes_, encoded = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(
                "MixtureOfExpertsClassifier needs samples of at least 2 classes; "
                f"got 1 class ({self.classes_[0]!r})."
            )
        return encoded

    def _partial_fit_classes(self, classes, reset):
        """Set ``classes_`` from ``classes`` on a fresh start; later, check it is unchanged."""
        if classes is not None:
            classes = np.unique(np.asarray(classes))
        if reset:
            if classes is None:
                raise ValueError(
                    "classes must be passed on the first call to partial_fit: a mini-batch "
                    "need not hold every class of the stream."
                )
            if len(classes) < 2:
                raise ValueError(
                    f"classes must hold at least 2 labels; got {classes.tolist()!r}."
                )
            self.classes_ = classes
        elif classes is not None and not np.array_equal(classes, self.classes_):
            raise ValueError(
                f"classes={classes.tolist()!r} differs from the classes_ of the first "
                f"call ({self.classes_.tolist()!r})."
            )

    def _encode_labels(self, y):
        """Indices of the labels ``y`` in ``classes_``; labels not among them (of another
        type included) are refused with the labels named."""
        y = np.asarray(y)
        unknown = ~np.isin(y, self.classes_)
        if np.any(unknown):
            raise ValueError(
                f"y contains labels not in classes_ {self.classes_.tolist()!r}: "
                f"{np.unique(y[unknown]).tolist()!r}."
            )
        return np.searchsorted(self.classes_, y)

    def _target_summary(self, y, sample_weight, stream=False):
        # a stream's batch may hold fewer classes: its family depends on classes_ only
        if not stream:
            self._check_weighted_labels(np.unique(y[sample_weight > 0]))
        return {"n_classes": len(self.classes_)}

    @staticmethod
    def _check_weighted_labels(labels):
        if len(labels) < 2:
            raise ValueError(
                "MixtureOfExpertsClassifier needs samples of at least 2 classes with a "
                "positive sample_weight; got 1 class."
            )

    def _make_family(self, targets):
        return class_family(targets["n_classes"], self._n_leaves(), self.expert_alpha)

    def _cart(self, **params):
        from sklearn.tree import DecisionTreeClassifier

        return DecisionTreeClassifier(**params)

    @staticmethod
    def _chunk_target_summary(y, w):
        """Per chunk of a dask fit: its distinct labels, and those with a positive weight."""
        y = np.asarray(y)
        return {"labels": np.unique(y), "weighted_labels": np.unique(y[np.asarray(w) > 0])}

    def _merge_target_summaries(self, parts):
        """``classes_`` from the labels of every chunk; the summary of ``_make_family``."""
        labels = np.unique(np.concatenate([p["labels"] for p in parts]))
        check_classification_targets(labels)
        self.classes_ = labels
        if len(labels) < 2:
            raise ValueError(
                "MixtureOfExpertsClassifier needs samples of at least 2 classes with a "
                "positive sample_weight."
            )
        self._check_weighted_labels(np.unique(np.concatenate(
            [p["weighted_labels"] for p in parts]
        )))
        return {"n_classes": len(labels)}

    def _encode_chunk_targets(self, y):
        return np.searchsorted(self.classes_, y)

    def _init_target(self, y):
        return np.eye(len(self.classes_))[np.asarray(y, dtype=np.intp)]

    def _class_proba(self, means):
        """Expert class probabilities (K, C, n) from the family's means."""
        if means.ndim == 2:  # Bernoulli experts: P(classes_[1])
            return np.stack([1.0 - means, means], axis=1)
        return means

    @fill
    def predict_experts(self, X):
        """Class probabilities of every expert.

        {Parameters X}

        Returns
        -------
        ndarray of shape (n_samples, n_experts, n_classes)
            Every expert's class probabilities.
        """
        data = self._predict_data(X)
        means = self._family.mean(data.X_expert, self._params["experts"])
        return self._class_proba(means).transpose(2, 0, 1)

    @fill
    def predict_log_proba(self, X):
        """Log of ``P(c | x) = sum_k g_k(x) P_k(c | x)``.

        {Parameters X}

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Log-probabilities of the classes ``classes_``.
        """
        data = self._predict_data(X)
        log_gate = self._model.gate.log_prob(data.X_gate, self._params["gate"])
        with np.errstate(divide="ignore"):  # a probability can underflow to 0: log is -inf
            log_experts = np.log(
                self._class_proba(self._family.mean(data.X_expert, self._params["experts"]))
            )
            log_proba = log_sum_exp(log_gate[:, None, :] + log_experts, axis=0)
        # normalised over the classes: rounding must not lift a probability above one
        return (log_proba - log_sum_exp(log_proba, axis=0)).T

    @fill
    def predict_proba(self, X):
        """``P(c | x) = sum_k g_k(x) P_k(c | x)``.

        {Parameters X}

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Probabilities of the classes ``classes_``.
        """
        return np.exp(self.predict_log_proba(X))

    @fill
    def sample_y(self, X, n_samples=1, random_state=None):
        """Draws of class labels from ``P(c | x)``.

        {Parameters X draws}

        Returns
        -------
        ndarray of shape (n_samples_X, n_samples)
            The drawn labels.
        """
        check_n_draws(n_samples)
        proba = self.predict_proba(X)
        rng = np.random.default_rng(check_random_state(random_state).randint(2**31 - 1))
        u = rng.uniform(size=(proba.shape[0], n_samples, 1))
        index = (u > np.cumsum(proba, axis=1)[:, None, :]).sum(axis=2)
        return self.classes_[np.minimum(index, len(self.classes_) - 1)]

    @fill
    def score(self, X, y, sample_weight=None):
        """Mean accuracy of ``predict(X)``; y and ``sample_weight`` are validated as by
        every method that takes y after ``fit`` (labels must be among ``classes_``).

        {Parameters X}
        y : array-like of shape (n_samples,)
            Their labels.
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the samples in the accuracy.

        Returns
        -------
        float
            The (weighted) accuracy.
        """
        self._predict_data(X, y, sample_weight=sample_weight)
        return super().score(X, y, sample_weight=sample_weight)

    @fill
    def decision_function(self, X):
        """Confidence scores: for two classes the log-odds ``log P(classes_[1] | x) -
        log P(classes_[0] | x)``, shape (n_samples,); for more, ``log P(c | x)``, shape
        (n_samples, n_classes). Positive (two classes) or largest (more) for the class
        ``predict`` returns, as sklearn's linear classifiers.

        {Parameters X}

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_classes)
            The scores.
        """
        log_proba = self.predict_log_proba(X)
        if log_proba.shape[1] == 2:
            return log_proba[:, 1] - log_proba[:, 0]
        return log_proba

    @fill
    def predict(self, X):
        """Most probable class of each sample.

        {Parameters X}

        Returns
        -------
        ndarray of shape (n_samples,)
            Labels from ``classes_``.
        """
        log_proba = self.predict_log_proba(X)
        return self.classes_[np.argmax(log_proba, axis=1)]
