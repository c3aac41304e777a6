"""The public estimators' shared base: validation, restarts, warm start, fitted attributes."""

import time
from abc import ABCMeta, abstractmethod
from numbers import Integral, Real

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.parallel import Parallel, delayed
from sklearn.utils.validation import check_consistent_length, check_is_fitted, check_random_state

from . import _dask
from ._blocks import InMemoryBlocks
from ._docstrings import fill
from ._em import ConvergenceMonitor, EMData, MixtureOfExpertsModel, run_em, warn
from ._families import family_key, require
from ._gate import GateTree
from ._init import initial_responsibilities, initialise, search_start
from ._linalg import products
from ._sklearn_compat import Interval, StrOptions, validate_data
from ._threads import em_threads, fit_settings, keep_heap_slack
from ._validation import check_n_draws, check_n_rows, check_squares_finite, check_weights  # noqa: F401

#: Newton steps of an iterative family's M-step inside EM (a generalised EM step).
EM_NEWTON_STEPS = 3


def _gate_tol(tol):
    """The gate's M-step stops at a relative gain far below what EM's ``tol`` can see."""
    return min(1e-3 * tol, 1e-9)


class DegenerateFitWarning(UserWarning):
    """The fit ended with a degenerate part: an expert with (almost) no responsibility, a
    variance held at its floor, or a gate that separates the data without a penalty.

    The fitted model stays usable and finite; ``events_`` lists what happened.

    Examples
    --------
    >>> import warnings
    >>> import numpy as np
    >>> from skmoe import DegenerateFitWarning, MixtureOfExpertsRegressor
    >>> X = np.linspace(-1, 1, 100)[:, None]
    >>> y = np.where(X[:, 0] < 0, 0.0, 5.0) + 0.01 * np.sin(40 * X[:, 0])
    >>> model = MixtureOfExpertsRegressor(2, gate_alpha=0.0, expert_features=[],
    ...                                   random_state=0)
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     _ = model.fit(X, y)
    >>> any(issubclass(w.category, DegenerateFitWarning) for w in caught)
    True
    >>> print(model.events_[0][:31])
    the gate separates the training
    """


def _degenerate_events(model, source, params, mass, gate_alpha):
    """Describe what the policy for degenerate fits did; an empty list when nothing.

    ``mass`` is the total weighted responsibility of every expert.
    """
    events = []
    for k in np.flatnonzero(mass < 1.0):
        events.append(
            f"expert {k} collapsed: its total responsibility {mass[k]:.3g} is less than one "
            "sample (kept with its last fit)"
        )
    events += model.family.bound_events(params["experts"])
    if gate_alpha == 0 and source.n_gate_features:
        # largest difference of two children's scores: 50 means odds of e^50 to 1
        highest = source.reduce(_gate_score_range_block, params["gate"], op=np.maximum)
        spread = max((top + bottom).max() for top, bottom in highest)
        if spread > 50:
            events.append(
                "the gate separates the training data: with gate_alpha=0 its coefficients "
                "grow without bound and were stopped at convergence (set gate_alpha > 0)"
            )
    return events


def _degenerate_message(events):
    """One short sentence for the warning; ``events_`` keeps every detail. Groups the
    events by the phrases ``_degenerate_events`` writes; any other event is counted."""
    collapsed = [e.split()[1] for e in events if e.endswith("(kept with its last fit)")]
    floored = [e.split()[1].rstrip(":") for e in events if "variance held at its floor" in e]
    parts = []
    for experts, what in ((collapsed, "collapsed"), (floored, "variance at its floor")):
        if experts:
            shown = ", ".join(experts[:8]) + (", ..." if len(experts) > 8 else "")
            parts.append(f"expert{'s' * (len(experts) > 1)} {shown}: {what}")
    separates = any(e.startswith("the gate separates") for e in events)
    if separates:
        parts.append("the gate separates the training data (set gate_alpha > 0)")
    others = len(events) - len(collapsed) - len(floored) - separates
    if others:
        parts.append(f"{others} other event{'s' * (others > 1)}")
    return f"Degenerate fit: {'; '.join(parts)}. The model is usable; see events_ for details."


def _gate_score_range_block(block, gate):
    """Per gate level, the largest and minus the smallest score of every child."""
    ranges = []
    for coef in gate:
        scores = products(coef[..., 1:].reshape(-1, coef.shape[-1] - 1), block.X_gate)
        scores = scores.reshape(coef.shape[:-1] + (-1,))
        ranges.append((scores.max(axis=-1), -scores.min(axis=-1)))
    return tuple(ranges)


_DASK_GROUPS = (
    "groups are not supported on dask collections: a group's rows must be fitted "
    "together, and dask's chunks need not hold whole groups; fit the data in memory "
    "(X.compute(), y.compute())."
)

#: Fitted attributes that a fit's validation sets (before the fit, from its data).
_VALIDATION_ATTRIBUTES = (
    "n_features_in_",
    "feature_names_in_",
    "classes_",
    "expert_features_in_",
    "gate_features_in_",
    "shared_features_in_",
    "response_features_in_",
)


def _per_response(selection):
    """The lists of ``expert_features`` given as one list of columns per response (a list
    whose items are all lists or arrays), else None."""
    if (isinstance(selection, (list, tuple)) and len(selection)
            and all(isinstance(s, (list, tuple, range, np.ndarray)) for s in selection)):
        return list(selection)
    return None


def _missing_columns_message(name, missing, available):
    """The columns not found, the columns there are, and the names that only differ by a
    prefix such as ``ColumnTransformer``'s ``num__``."""
    available = [str(a) for a in available]
    shown = ", ".join(available[:20])
    if len(available) > 20:
        shown += f", ... ({len(available)} in all)"
    message = f"{name} names columns not in X: {', '.join(missing)}. X has the columns {shown}."
    hints = [f"{m} -> {a}" for m in missing for a in available if a.endswith(f"__{m}")]
    if hints:
        message += (
            " A ColumnTransformer prefixes its output names with the transformer's name "
            f"(verbose_feature_names_out): did you mean {', '.join(hints)}?"
        )
    return message


class BaseMixtureOfExperts(BaseEstimator, metaclass=ABCMeta):
    """Base class of the flat mixture-of-experts estimators (not for direct use)."""

    _parameter_constraints = {
        "n_experts": [Interval(Integral, 1, None, closed="left")],
        "gate_alpha": [Interval(Real, 0, None, closed="left")],
        "expert_alpha": [Interval(Real, 0, None, closed="left")],
        "gate_features": ["array-like", None],
        "expert_features": ["array-like", None],
        "max_iter": [Interval(Integral, 0, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "acceleration": [StrOptions({"squarem", "squarem-lbfgs"}), None],
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "init_params": [
            StrOptions({"multistart", "kmeans", "random", "voronoi", "tree"}),
            "array-like",
        ],
        "random_state": ["random_state"],
        "warm_start": ["boolean"],
        "verbose": ["verbose"],
        "n_jobs": [Integral, None],
    }

    @abstractmethod
    def __init__(
        self,
        n_experts=2,
        *,
        gate_alpha=0.01,
        expert_alpha=0.0,
        gate_features=None,
        expert_features=None,
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
        self.n_experts = n_experts
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

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True  # CSR and CSC X, never densified
        return tags

    # ------------------------------------------------------------------ hooks
    @abstractmethod
    def _validate_targets(self, y, reset, classes=None, stream=False):
        """Encode y for the family (the classifier maps labels to 0..C-1); ``stream``: the
        first batch of ``partial_fit``, whose labels are ``classes``."""

    @abstractmethod
    def _target_summary(self, y, sample_weight, stream=False):
        """What the family's settings need of the encoded training y (``_make_family``)."""

    @abstractmethod
    def _make_family(self, targets):
        """The expert family of this fit, from the summary ``targets`` of y (in memory,
        or merged over the chunks of a dask fit)."""

    #: Newton steps of the gate per M-step. One (a generalised EM step) is the fastest for
    #: regression and keeps the search's hit rate (``benchmarks/bench_optimum.py``).
    _gate_newton_steps = 1

    def _make_gate(self):
        """The gates: one softmax over the experts (a tree of depth 1)."""
        return GateTree(1, self.n_experts, self.gate_alpha, max_iter=self._gate_newton_steps,
                        tol=_gate_tol(self.tol))

    def _n_leaves(self):
        """Number of experts."""
        return self.n_experts

    def _response_columns(self):
        """Columns of y the expert family takes (2 for binomial successes and failures)."""
        return 1

    def _n_responses(self):
        """Responses the expert family models jointly (one per column for joint experts)."""
        return 1

    def _init_target(self, y):
        """The columns that represent y when k-means seeds the responsibilities."""
        return y[:, None]

    def _offset(self, exposure, n_samples, family):
        if exposure is None:
            return None
        raise ValueError(f"exposure is not supported by {type(self).__name__}.")

    # ------------------------------------------------------------- validation
    def _validate_fit_data(self, X, y, sample_weight, exposure, classes=None, stream=False):
        """The one validation of training data, for ``fit`` and the first batch of
        ``partial_fit`` (``stream``); sets what a fit's validation sets and makes the
        family. Returns the data as ``EMData`` and the family."""
        X, y = validate_data(self, X, y, accept_sparse="csr", dtype=np.float64, y_numeric=False,
                             multi_output=self._response_columns() > 1)
        check_squares_finite(X)
        y = self._validate_targets(y, reset=True, classes=classes, stream=stream)
        if not stream:
            check_n_rows(X.shape[0], self._n_leaves())
        sample_weight = check_weights(sample_weight, X)
        self._resolve_features(exposure)
        family = self._make_family(self._target_summary(y, sample_weight, stream))
        self._configure_structure(family, stream)
        return self._make_data(X, family.check_y(y), sample_weight, exposure, family), family

    def _configure_structure(self, family, stream=False):
        """Tell the family what the experts share: the last ``n_shared`` columns of
        ``X_expert`` (``shared_features``) and the pooled dispersions
        (``shared_variance``); clear errors for what it cannot share."""
        family.n_shared = len(self.shared_features_in_)
        if family.n_shared:
            if stream:
                raise NotImplementedError("partial_fit does not support shared_features yet.")
            require(family, "shared_features")
        if getattr(self, "shared_variance", False):
            try:
                family.pool(("variance",))
            except ValueError as error:
                raise ValueError(
                    f"shared_variance=True needs experts with a variance (Gaussian): {error}"
                ) from None

    def _make_data(self, X, y, sample_weight, exposure, family):
        """The arrays of EM from validated ones: the feature selections and the offset."""
        return EMData(
            X_expert=self._select(X, np.r_[self.expert_features_in_,
                                           self.shared_features_in_].astype(np.intp)),
            X_gate=self._select(X, self.gate_features_in_),
            y=y,
            sample_weight=sample_weight,
            offset=self._offset(exposure, X.shape[0], family),
        )

    def _resolve_features(self, exposure):
        """Set the fit's column selections, and remember whether it has an exposure (the
        methods that take y then need one)."""
        self._fitted_with_exposure = exposure is not None
        self._resolve_expert_features()
        self.gate_features_in_ = self._feature_index(self.gate_features, "gate_features")
        shared = getattr(self, "shared_features", None)
        self.shared_features_in_ = (
            np.arange(0) if shared is None
            else self._feature_index(shared, "shared_features")
        )
        # the shared columns leave the experts' own ones (one coefficient for all)
        if len(self.shared_features_in_):
            if np.unique(self.shared_features_in_).size != self.shared_features_in_.size:
                raise ValueError("shared_features names a column more than once.")
            own = ~np.isin(self.expert_features_in_, self.shared_features_in_)
            self.expert_features_in_ = self.expert_features_in_[own]

    def _resolve_expert_features(self):
        """``expert_features_in_``; for ``expert_features`` given as one list per response,
        their union, and every response's columns in ``response_features_in_``."""
        lists = _per_response(self.expert_features)
        if lists is None:
            self.response_features_in_ = None
            self.expert_features_in_ = self._feature_index(self.expert_features,
                                                           "expert_features")
            return
        n = self._n_responses()
        if len(lists) != n:
            raise ValueError(
                f"expert_features gives {len(lists)} lists of columns, one per response, "
                f"but the expert family models {n} response{'s' * (n > 1)} (several "
                "responses need expert=[family, ...], one per column of y)."
            )
        self.response_features_in_ = [
            self._feature_index(columns, f"expert_features[{r}]")
            for r, columns in enumerate(lists)
        ]
        self.expert_features_in_ = np.unique(
            np.concatenate([np.arange(0), *self.response_features_in_])).astype(np.intp)

    def _response_positions(self):
        """Every response's expert columns as positions in ``X_expert`` (None: all)."""
        if getattr(self, "response_features_in_", None) is None:
            return None
        return [np.searchsorted(self.expert_features_in_, columns)
                for columns in self.response_features_in_]

    def _feature_index(self, selection, name):
        n = self.n_features_in_
        if selection is None:
            return np.arange(n)
        selection = np.asarray(selection)
        if selection.size == 0:
            return np.arange(0)
        if selection.dtype == bool:
            if selection.shape != (n,):
                raise ValueError(f"{name} as a boolean mask must have length {n}.")
            return np.flatnonzero(selection)
        if selection.dtype.kind in "OUS":
            names = getattr(self, "feature_names_in_", None)
            if names is None:
                raise ValueError(
                    f"{name} names columns, but X has no column names (in a pipeline, "
                    'call set_output(transform="pandas") on it to pass them on).'
                )
            missing = [str(s) for s in selection if s not in set(names)]
            if missing:
                raise ValueError(_missing_columns_message(name, missing, names))
            return np.array([np.flatnonzero(names == s)[0] for s in selection])
        if selection.dtype.kind not in "iu":
            raise ValueError(f"{name} must hold column indices, a boolean mask or names.")
        if np.any((selection < -n) | (selection >= n)):
            raise ValueError(f"{name} has column indices out of range for {n} features.")
        return np.unique(np.where(selection < 0, selection + n, selection))

    @staticmethod
    def _select(X, index):
        if len(index) == X.shape[1] and np.array_equal(index, np.arange(X.shape[1])):
            return X
        if sparse.issparse(X):  # CSR, as validation leaves it
            return X[:, index].tocsr()
        return np.ascontiguousarray(X[:, index])

    def _predict_data(self, X, y=None, exposure=None, sample_weight=None):
        """Validate data given after ``fit``, as ``fit`` validates its own: X against the
        fitted features, and, for the methods that take y (scores, criteria, standard
        errors, ``partial_fit``), y of the same length as X, one-dimensional and in the
        family's support (known class labels), the sample weights, and the exposure of a
        model fitted with one (without it these methods would silently take exposure 1).
        """
        check_is_fitted(self)
        X = validate_data(self, X, accept_sparse="csr", dtype=np.float64, reset=False)
        if y is not None:
            check_consistent_length(X, y)
            y = np.asarray(y)
            if y.ndim != 1 and self._response_columns() == 1:
                raise ValueError(
                    f"y should be a 1d array, got an array of shape {y.shape} instead."
                )
            y = self._family.check_y(self._validate_targets(y, reset=False))
            if exposure is None and getattr(self, "_fitted_with_exposure", False):
                raise ValueError(
                    f"This {type(self).__name__} was fitted with exposure=; pass the "
                    "exposure of these samples (exposure=np.ones(n_samples) for exposure 1)."
                )
        return self._make_data(X, y, check_weights(sample_weight, X), exposure, self._family)

    # -------------------------------------------------------------------- fit
    def _fit(self, X, y, sample_weight=None, exposure=None, groups=None):
        """Fit; on any failure (bad input, KeyboardInterrupt) the estimator is left exactly
        as it was, since validation also sets attributes (``n_features_in_``, ...)."""
        state = dict(self.__dict__)
        try:
            # BLAS held to the cores n_jobs gives each run (one by default), and the
            # heap's slack kept: see _threads
            with fit_settings(em_threads(self.n_jobs, self.n_init)):
                return self._fit_unguarded(X, y, sample_weight, exposure, groups)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(state)
            raise

    def _fit_unguarded(self, X, y, sample_weight, exposure, groups=None):
        distributed = _dask.is_dask_collection(X)
        if distributed and groups is not None:
            raise NotImplementedError(_DASK_GROUPS)
        if distributed:
            source, family = _dask.distributed_source(self, X, y, sample_weight, exposure)
        else:
            data, family = self._validate_fit_data(X, y, sample_weight, exposure)
            if groups is not None:
                data, group_starts, _ = self._group_rows(data, groups)
            source = InMemoryBlocks([data])
        self._fitted_with_groups = groups is not None
        family.max_newton_steps = getattr(family, "em_newton_steps", None) or EM_NEWTON_STEPS
        model = MixtureOfExpertsModel(family, self._make_gate())
        if groups is not None:
            model = model.grouped(group_starts, data.n_rows)
        if self.warm_start and hasattr(self, "_params") and self._warm_start_possible():
            starts = [("warm", self._params)]
        else:
            starts = [("init", child) for child in self._restart_seeds()]
        if distributed:  # the cluster parallelises each pass; restarts run in turn
            results = [
                self._fit_one(model, source.fresh(), *start, label=i)
                for i, start in enumerate(starts)
            ]
        else:
            results = Parallel(n_jobs=self.n_jobs)(
                delayed(self._fit_one)(model, source.fresh(), kind, start, label=i)
                for i, (kind, start) in enumerate(starts)
            )
        best = max(range(len(results)), key=lambda i: results[i]["objective"])
        result = results[best]
        if not result["converged"] and self.max_iter > 0:
            warn(
                f"The best of {len(results)} EM runs did not converge in {self.max_iter} "
                "iterations; increase max_iter or tol, or check the data.",
                ConvergenceWarning,
            )
        self._set_fitted(model, source, result, results)
        if self.events_:
            warn(_degenerate_message(self.events_), DegenerateFitWarning)
        return self

    def _group_rows(self, data, groups):
        """The rows sorted by group (stably), the first row of every group and the order
        that sorted them; checks the labels (one per row, none missing), and that the gate
        features and the sample weights are constant within every group (a group's gate
        is evaluated once, on its first row)."""
        groups = np.asarray(groups)
        n = data.n_rows
        if groups.ndim != 1 or groups.shape[0] != n:
            raise ValueError(
                f"groups must be one-dimensional with one label per sample ({n}); got "
                f"shape {groups.shape}."
            )
        if groups.dtype.kind in "fc" and not np.all(np.isfinite(groups)):
            raise ValueError("groups contains NaN or infinity.")
        if groups.dtype.kind == "O" and any(g is None or g != g for g in groups):
            raise ValueError("groups contains missing labels (None or NaN).")
        try:
            _, codes = np.unique(groups, return_inverse=True)
        except TypeError as error:
            raise ValueError(
                "groups must hold labels of one type that sort (numbers or strings)."
            ) from error
        order = np.argsort(codes, kind="stable")
        data = data.take(order)
        codes = codes[order]
        starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
        first = np.repeat(starts, np.diff(np.r_[starts, n]))
        X_gate = data.X_gate.toarray() if sparse.issparse(data.X_gate) else data.X_gate
        varying = np.any(X_gate != X_gate[first], axis=1)
        if varying.any():
            bad = np.unique(groups[order][varying])
            raise ValueError(
                "The gate features must be constant within every group (the rows of a "
                f"group share one expert and one gate); groups {bad[:10].tolist()} have "
                "varying gate features. Use gate_features=[] or group-level columns."
            )
        if np.any(data.sample_weight != data.sample_weight[first]):
            raise ValueError(
                "sample_weight (with a classifier's class_weight) must be constant within "
                "every group: a group is one draw of its latent expert."
            )
        return data, starts, order

    def _fit_one(self, model, source, kind, start, label=0):
        """One restart: from the previous fit (``kind="warm"``) or from ``init_params``
        drawn with the seed ``start``."""
        with keep_heap_slack():  # already kept by ``fit``, but not in joblib's workers
            return self._fit_one_kept(model, source, kind, start, label)

    def _fit_one_kept(self, model, source, kind, start, label):
        tic = time.perf_counter()
        if kind == "warm":
            result = self._run_em(model, source, start, self.max_iter)
        elif isinstance(self.init_params, str) and self.init_params == "multistart":
            result, candidates, rows = search_start(
                self, model, source, np.random.default_rng(start),
                lambda rows, params, max_iter, *give_up: self._run_em(
                    model, rows, params, max_iter, *give_up),
                self.max_iter, subsample=not self._fitted_with_groups,
            )
            result["candidate_objectives"] = candidates
            result["search_rows"] = rows
        else:
            initialise(self, source, np.random.default_rng(start))
            result = self._run_em(model, source, model.m_step_blocks(source, None),
                                  self.max_iter)
        result["time"] = time.perf_counter() - tic
        if self.verbose:
            runs = result.get("candidate_objectives")
            searched = "" if runs is None else f" (best of {len(runs)} runs)"
            print(
                f"  {type(self).__name__} start {label}{searched}: {result['n_iter']} "
                f"iterations, objective {result['objective']:.8g}, {result['time']:.3f} s, "
                + ("converged" if result["converged"] else "not converged"),
                flush=True,
            )
        return result

    def _restart_seeds(self):
        """One ``SeedSequence`` per restart, from ``random_state`` (so results do not depend
        on ``n_jobs``)."""
        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        return np.random.SeedSequence(seed).spawn(self.n_init)

    def _run_em(self, model, source, params, max_iter, floor=-np.inf, patience=3):
        """EM from ``params``, with the estimator's monitor and acceleration; from iteration
        ``patience`` on it gives up when it can no longer reach the objective ``floor``
        (``ConvergenceMonitor.out_of_reach``)."""
        monitor = ConvergenceMonitor(self.tol, max_iter, source.total_weight, self.verbose,
                                     floor=floor, patience=patience)
        params, log_lik, mass, n_iter = run_em(model, source, params, monitor, self.acceleration)
        return {
            "params": params,
            "objective": monitor.history[-1],
            "log_likelihood": log_lik,
            "n_iter": n_iter,
            "converged": monitor.converged,
            "remaining": monitor.remaining(),
            "objective_trace": np.array(monitor.history),
            "mass": mass,
            "degenerate": bool(
                np.any(mass < 1.0) or np.any(model.family.at_bound(params["experts"]))
            ),
        }

    def _initial_responsibilities(self, data, rng):
        """Initial responsibilities (K, n) of in-memory ``data`` by ``init_params``."""
        return initial_responsibilities(self, data, rng)

    # ------------------------------------------------------- refits and structure
    def _structure(self):
        """What the fitted parameters' shapes depend on, by name: a warm start or
        ``partial_fit`` can only continue a model of the same structure."""
        gate = self._make_gate()
        n = getattr(self, "n_features_in_", None)
        structure = {
            "the number of experts": self._n_leaves(),
            "the depth of the tree": gate.depth,
            "the expert family": family_key(getattr(self, "expert", None)),
            "the number of features": n,
            "the classes": tuple(np.asarray(getattr(self, "classes_", ())).tolist()),
        }
        if n is not None:
            for name in ("expert_features", "gate_features", "shared_features"):
                if getattr(self, name, None) is None and name == "shared_features":
                    continue
                selection = getattr(self, name)
                lists = _per_response(selection) if name == "expert_features" else None
                if lists is None:
                    value = tuple(self._feature_index(selection, name).tolist())
                else:
                    value = tuple(tuple(self._feature_index(columns, name).tolist())
                                  for columns in lists)
                structure[f"the columns of {name}"] = value
        return structure

    def _structure_changes(self):
        """What changed since the last fit, as phrases; empty when nothing did."""
        fitted = self.__dict__.get("_fitted_structure", {})
        now = self._structure()
        return [
            f"{key} changed from {fitted[key]!r} to {now[key]!r}"
            for key in now
            if key in fitted and now[key] != fitted[key]
        ]

    def _warm_start_possible(self):
        """False, with a warning that says what changed, when the structure changed since
        the last fit: the previous parameters cannot start this one."""
        changes = self._structure_changes()
        if changes:
            warn(
                f"warm_start=True, but {'; '.join(changes)} since the last fit; fitting "
                "from a fresh start instead.",
                UserWarning,
            )
        return not changes

    def _forget_fitted(self):
        """Drop every attribute of the previous model (``expert_variance_`` of a Gaussian
        model refitted as Poisson, ``n_batches_seen_`` of a stream), but not those that this
        fit's validation has just set."""
        for name in [key for key in vars(self) if key.endswith("_") and not key.startswith("__")]:
            if name not in _VALIDATION_ATTRIBUTES:
                del self.__dict__[name]
        self.__dict__.pop("_online", None)

    def _set_fitted(self, model, source, result, results):
        """Canonical order (the children of every gate by decreasing total responsibility),
        then every attribute at once."""
        self._forget_fitted()
        self._fitted_structure = self._structure()
        stuck = self._stuck_experts(model, source, result)
        params, order = model.canonical(result["params"], result["mass"])
        self.events_ = _degenerate_events(
            model, source, params, result["mass"][order], self.gate_alpha
        )
        for k in np.flatnonzero(stuck[order]):
            self.events_.append(
                f"expert {k} stopped where its M-step can still gain "
                f"{stuck[order][k]:.3g} per unit weight: the fit did not leave its start "
                "(not converged)"
            )
        self._model = MixtureOfExpertsModel(model.family, model.gate)  # not the fit's groups
        self._family = model.family
        self._params = params
        self.converged_ = result["converged"] and not stuck.any()
        self.n_iter_ = result["n_iter"]
        self.log_likelihood_ = result["log_likelihood"]
        self.objective_ = result["objective"]
        self.objective_trace_ = result["objective_trace"]
        self.restarts_ = [
            {key: value for key, value in r.items() if key not in ("params", "mass")}
            for r in results
        ]
        self._set_gate_attributes(params["gate"])
        self._set_expert_attributes(params["experts"])

    def _stuck_experts(self, model, source, result):
        """Per expert, the Newton gain per unit weight still open at a fit that EM called
        converged, where it exceeds ``max(1e-3, 100 tol)`` times ``max(1, |objective|)``
        per unit weight (zero elsewhere): such a fit stopped at its start (e.g. a start far
        off the scale of y), not at a maximum."""
        if not result["converged"] or model.family.newton_gain is None:
            return np.zeros(self._n_leaves())
        params = result["params"]
        model.e_pass(source, params)  # the weights W at the fitted parameters
        gain = model.family.newton_gain(source, params["experts"]) / source.total_weight
        scale = max(1.0, abs(result["objective"]) / source.total_weight)
        return np.where(gain > max(1e-3, 100 * self.tol) * scale, gain, 0.0)

    def _set_gate_attributes(self, gate):
        self.gate_coef_ = gate[0][0, :, 1:]
        self.gate_intercept_ = gate[0][0, :, 0]

    def _set_expert_attributes(self, experts):
        parts = self._family.response_parts(experts)
        if len(parts) == 1:
            self.expert_coef_ = experts["coef"][..., 1:]
            self.expert_intercept_ = experts["coef"][..., 0]
        else:  # one coefficient array per response, its intercepts a column
            self.expert_coef_ = [part.params["coef"][:, 1:] for part in parts]
            self.expert_intercept_ = np.column_stack([part.params["coef"][:, 0]
                                                      for part in parts])
        if "shared" in experts:
            self.shared_coef_ = experts["shared"]

    # ---------------------------------------------------------- predictions
    @fill
    def predict_gate(self, X):
        """Gate probabilities ``g_k(x)``.

        {Parameters X}

        Returns
        -------
        ndarray of shape (n_samples, n_experts)
            The gate's probability of every expert.
        """
        data = self._predict_data(X)
        return np.exp(self._model.gate.log_prob(data.X_gate, self._params["gate"])).T

    @property
    def weights_(self):
        """Mixing weights, shape (n_experts,): defined when the gate is constant
        (``gate_features=[]``), as ``GaussianMixture.weights_``."""
        gate = getattr(self, "_params", {}).get("gate")
        if gate is None or len(self.gate_features_in_):
            raise AttributeError(
                "weights_ is defined for a fitted model with a constant gate "
                "(gate_features=[]); use predict_gate(X) otherwise."
            )
        return np.exp(self._model.gate.log_prob(np.empty((1, 0)), gate))[:, 0]

    def _posterior_data(self, X, y, exposure=None, sample_weight=None, groups=None):
        """Data given after ``fit`` (validated as ``_predict_data`` does), the model of its
        likelihood and the order of its rows: the rows one by one (order None), or sorted
        by group under the grouped model (``groups`` validated as ``fit`` does)."""
        data = self._predict_data(X, y, exposure, sample_weight)
        if groups is None:
            self._check_groups_given()
            return data, self._model, None
        data, starts, order = self._group_rows(data, groups)
        return data, self._model.grouped(starts, data.n_rows), order

    def _check_groups_given(self):
        """Refuse data without groups for a model fitted with them: its rows one by one
        would silently be another model."""
        if getattr(self, "_fitted_with_groups", False):
            raise ValueError(
                f"This {type(self).__name__} was fitted with groups=; pass the groups of "
                "these samples (groups=np.arange(n_samples) makes every row its own group)."
            )

    @staticmethod
    def _in_given_order(values, order):
        """Per-row ``values`` (last axis) of rows sorted by ``order``, back in the order
        given."""
        if order is None:
            return values
        out = np.empty_like(values)
        out[..., order] = values
        return out

    @fill
    def assign_experts(self, X, y, exposure=None, groups=None):
        """Hard assignment of each sample to its most probable expert given x and y, the
        argmax of ``predict_responsibilities`` (flexmix's ``clusters()``).

        {Parameters X y exposure groups}

        Returns
        -------
        ndarray of int of shape (n_samples,)
            The index of each sample's expert (its group's, with ``groups``).
        """
        return np.argmax(self.predict_responsibilities(X, y, exposure, groups), axis=1)

    @fill
    def predict_responsibilities(self, X, y, exposure=None, groups=None):
        """Posterior probabilities ``p(k | x, y)`` of the experts; with ``groups``, every
        row gets its group's posterior ``p(k | the group's rows)``.

        {Parameters X y exposure groups}

        Returns
        -------
        ndarray of shape (n_samples, n_experts)
            Every sample's posterior over the experts.
        """
        data, model, order = self._posterior_data(X, y, exposure, groups=groups)
        return self._in_given_order(model.e_step(data, self._params)[1], order).T

    @fill
    def score_samples(self, X, y, exposure=None, groups=None):
        """Log-likelihood ``log p(y | x)`` of each sample.

        With ``groups``, a row's value is its log-likelihood given the rows of its group
        before it (in the order given), ``log p(y_i | x_i, y_j, x_j for j < i in g)``: the
        rows of a group sum to the group's log-likelihood (``score_groups``), and all rows
        to ``log_likelihood_`` on the training data of a grouped fit. The first row of a
        group gets the plain mixture density.

        {Parameters X y exposure groups}

        Returns
        -------
        ndarray of shape (n_samples,)
            The conditional log-density of every sample.
        """
        data, model, order = self._posterior_data(X, y, exposure, groups=groups)
        return self._in_given_order(model.e_step(data, self._params)[0], order)

    def score_groups(self, X, y, groups, exposure=None):
        """Log-likelihood of every group of rows that share one latent expert (the model
        ``fit(X, y, groups=...)`` fits): ``log sum_k g_k(x_g) prod_(i in g) f_k(y_i | x_i)``,
        the gate on the group's (constant) gate features.

        Parameters
        ----------
        X : array-like or sparse matrix of shape (n_samples, n_features)
            Samples.
        y : array-like of shape (n_samples,) or (n_samples, 2)
            Responses, as in ``fit``.
        groups : array-like of shape (n_samples,)
            Group labels.
        exposure : array-like of shape (n_samples,), default=None
            Exposure of log-link experts, as in ``fit``.

        Returns
        -------
        labels : ndarray of shape (n_groups,)
            The groups, sorted.
        log_likelihood : ndarray of shape (n_groups,)
            Every group's log-likelihood; their sum is ``log_likelihood_`` on the training
            data of a grouped fit.
        """
        if groups is None:
            raise ValueError("score_groups needs groups.")
        data, model, _ = self._posterior_data(X, y, exposure, groups=groups)
        return np.unique(np.asarray(groups)), model.group_e_step(data, self._params)[0]

    @fill
    def icl(self, X, y, sample_weight=None, exposure=None, groups=None, n_obs="samples"):
        """Integrated completed likelihood ``BIC + 2 sum_i w_i sum_k -r_ik log r_ik`` (lower
        is better): BIC plus twice the entropy of the responsibilities (Biernacki et al.
        2000), which favours well separated experts. With ``groups`` the entropy is that
        of the groups' posteriors, one term per group.

        {Parameters X y sample_weight exposure groups}
        n_obs : {"samples", "groups"}, default="samples"
            The ``n`` of BIC's penalty, as in ``bic``.

        {criterion}
        """
        data, model, _ = self._posterior_data(X, y, exposure, sample_weight, groups)
        weights, log_lik, resp = model.unit_e_step(data, self._params)
        entropy = -np.sum(resp * np.log(np.where(resp > 0, resp, 1.0)), axis=0)
        return (self._bic(data, weights, log_lik, n_obs)
                + 2.0 * float(weights @ entropy))

    @fill
    def standard_errors(self, X, y, sample_weight=None, exposure=None, groups=None):
        """Standard errors from the observed information at the fitted parameters.

        The information is the exact Hessian of the (penalised) log-likelihood on the data
        given, computed analytically with Louis' identity (see the user guide). The gate is
        reported against expert 0 (flexmix's convention: its coefficients are 0), so
        ``gate_coef`` has K - 1 rows. Flat models with Gaussian, Poisson, Gamma or
        Bernoulli experts, or any family with ``information_terms``. With several
        responses the names carry the response (``"y0: x"``), ``expert_intercept`` has
        shape (K, R) and ``expert_coef`` and ``dispersion`` are lists per response.
        Student-t experts report the scale and, when estimated, the degrees of freedom
        (``df``, not its logarithm); zero-inflated experts report no parameters for the
        point mass (it has none; its gate output, the zero share, is in the gate's).

        Parameters the data cannot identify (collinear or aliased columns, e.g. a one-hot
        encoding without ``drop`` next to the intercept) get a NaN standard error, with a
        warning that names them, as R prints NA: in parameter order, a parameter whose
        scaled information not explained by the identified ones before it is below
        ``1e-14`` (a pivot of ``1e-7``, R's ``lm`` tolerance) is aliased, and the others'
        covariance is the inverse of their information.

        With ``groups`` the information is that of the grouped likelihood (the sum of
        ``score_groups``): Louis' identity over the groups, whose scores sum their rows'.

        {Parameters X y sample_weight exposure groups}

        Returns
        -------
        Bunch
            ``estimate`` and ``se`` (vectors), ``names`` (block, expert, name) per entry,
            ``covariance``, and the blocks ``gate_coef``, ``gate_intercept``,
            ``expert_coef``, ``expert_intercept``, ``shared_coef``, ``dispersion`` (the
            first dispersion) and ``dispersions`` (all, (K, m)) of standard errors (NaN for
            a component without expert parameters). What all experts share
            (``shared_features``, ``shared_variance``) is one entry of the vector, named
            (``"shared"``, None, name); ``dispersion`` repeats a shared one for every expert.
        """
        from ._information import standard_errors

        return standard_errors(self, X, y, sample_weight, exposure=exposure, groups=groups)

    @fill
    def summary(self, X, y, sample_weight=None, as_frame=False, exposure=None, groups=None):
        """The fit in the layout of flexmix's ``summary(refit(model))``: a header (n,
        log-likelihood, df, AIC, BIC, ICL, EM iterations, convergence), the components
        (prior, size, post>0, ratio, as flexmix's ``summary``) and, per gate contrast, per
        expert and once for what all experts share (``shared_features``,
        ``shared_variance``), estimates, standard errors, z values and ``Pr(>|z|)`` (``NA``
        where a standard error is not available). Flat models whose ``standard_errors``
        exist.

        {Parameters X y sample_weight}
        as_frame : bool, default=False
            Return a ``pandas.DataFrame`` of the coefficients (index part, expert, name)
            with the header and the component table in its ``attrs``.
        {exposure groups}

        Returns
        -------
        str or pandas.DataFrame
            The summary as text, or its coefficients as a frame.
        """
        from . import _summary

        result = _summary.summarize(self, X, y, sample_weight, exposure=exposure,
                                    groups=groups)
        if as_frame:
            return _summary.to_frame(result)
        return _summary.render(result, f"{type(self).__name__} with {self._n_leaves()} experts")

    def _feature_labels(self, index):
        names = getattr(self, "feature_names_in_", None)
        if names is None:
            return [f"x{i}" for i in index]
        return [str(names[i]) for i in index]

    def align_experts(self, reference):
        """Reorder this model's experts to match ``reference`` (a fitted model of the same
        kind with the same number of experts), by Hungarian matching of the experts'
        coefficients. Flat models only.

        Parameters
        ----------
        reference : fitted estimator
            The model whose expert order to take.

        Returns
        -------
        self
            This model, its experts reordered.
        """
        from scipy.optimize import linear_sum_assignment

        check_is_fitted(self)
        check_is_fitted(reference)
        if self._model.gate.depth != 1 or reference._model.gate.depth != 1:
            raise ValueError("align_experts needs flat models.")
        mine = self._params["experts"]["coef"].reshape(self._n_leaves(), -1)
        theirs = reference._params["experts"]["coef"].reshape(reference._n_leaves(), -1)
        if mine.shape != theirs.shape:
            raise ValueError("align_experts needs models with the same experts and features.")
        cost = ((theirs[:, None, :] - mine[None, :, :]) ** 2).sum(axis=2)
        _, order = linear_sum_assignment(cost)
        gate = self._params["gate"]
        self._params = {
            "gate": [gate[0][:, order]],
            "experts": self._family.take_experts(self._params["experts"], order),
        }
        self._set_gate_attributes(self._params["gate"])
        self._set_expert_attributes(self._params["experts"])
        return self

    def _n_parameters(self):
        """Free parameters: gate (K-1)(p_g+1), expert coefficients, dispersions."""
        return self._model.n_parameters(self._params)

    @fill
    def bic(self, X, y, sample_weight=None, exposure=None, groups=None, n_obs="samples"):
        """Bayesian information criterion ``-2 log L + n_parameters log n`` (lower is better).

        With ``sample_weight`` (frequency weights) ``log L`` is the weighted log-likelihood
        and ``n`` the total weight, as for the repeated rows. With ``groups``, ``log L`` is
        the grouped log-likelihood (the sum of ``score_groups``) and ``n`` counts rows, as
        flexmix's ``BIC`` does for ``y ~ x | g`` (its ``nobs`` is the number of rows);
        ``n_obs="groups"`` counts the groups instead (the independent units).

        {Parameters X y sample_weight exposure groups}
        n_obs : {"samples", "groups"}, default="samples"
            What ``n`` counts: the (weighted) samples, or the (weighted) groups.

        {criterion}
        """
        data, model, _ = self._posterior_data(X, y, exposure, sample_weight, groups)
        return self._bic(data, *model.unit_e_step(data, self._params)[:2], n_obs)

    def _bic(self, data, weights, log_lik, n_obs):
        if n_obs not in ("samples", "groups"):
            raise ValueError(f"n_obs must be 'samples' or 'groups'; got {n_obs!r}.")
        n = (data.sample_weight if n_obs == "samples" else weights).sum()
        return -2.0 * float(weights @ log_lik) + self._n_parameters() * np.log(n)

    @fill
    def aic(self, X, y, sample_weight=None, exposure=None, groups=None):
        """Akaike information criterion ``-2 log L + 2 n_parameters`` (lower is better);
        ``log L`` weighted by ``sample_weight``, grouped with ``groups``.

        {Parameters X y sample_weight exposure groups}

        {criterion}
        """
        data, model, _ = self._posterior_data(X, y, exposure, sample_weight, groups)
        weights, log_lik, _ = model.unit_e_step(data, self._params)
        return -2.0 * float(weights @ log_lik) + 2.0 * self._n_parameters()
