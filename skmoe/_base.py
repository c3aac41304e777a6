"""The public estimators' shared base: validation, restarts, warm start, fitted attributes."""

import time
import warnings
from abc import ABCMeta, abstractmethod
from numbers import Integral, Real

import numpy as np
from joblib import Parallel, delayed
from scipy import sparse
from sklearn.base import BaseEstimator
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted, check_random_state

from . import _dask
from ._blocks import InMemoryBlocks
from ._em import ConvergenceMonitor, EMData, MixtureOfExpertsModel, run_em, warn
from ._gate import GateTree
from ._linalg import products, row_blocks
from ._sklearn_compat import Interval, StrOptions, _check_sample_weight, validate_data

#: Newton steps of an iterative family's M-step inside EM (a generalised EM step).
EM_NEWTON_STEPS = 3

#: Shape of the Beta(a, 1) draws of the random start.
RANDOM_START_CONCENTRATION = 0.3


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
    floor = getattr(model.family, "variance_floor", None)
    if floor is not None:
        for k in np.flatnonzero(params["experts"]["variance"] <= floor * (1 + 1e-12)):
            events.append(f"expert {k}: variance held at its floor {floor:.3g}")
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


def _gate_score_range_block(block, gate):
    """Per gate level, the largest and minus the smallest score of every child."""
    ranges = []
    for coef in gate:
        scores = products(coef[..., 1:].reshape(-1, coef.shape[-1] - 1), block.X_gate)
        scores = scores.reshape(coef.shape[:-1] + (-1,))
        ranges.append((scores.max(axis=-1), -scores.min(axis=-1)))
    return tuple(ranges)


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
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "init_params": [StrOptions({"kmeans", "random", "tree"}), "array-like"],
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
        n_init=1,
        init_params="random",
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
    def _validate_targets(self, y, reset):
        """Encode y for the family (the classifier maps labels to 0..C-1)."""

    @abstractmethod
    def _make_family(self, y, sample_weight):
        """The expert family of this fit."""

    def _make_gate(self):
        """The gates: one softmax over the experts (a tree of depth 1)."""
        return GateTree(1, self.n_experts, self.gate_alpha, tol=_gate_tol(self.tol))

    def _n_leaves(self):
        """Number of experts."""
        return self.n_experts

    def _init_target(self, y):
        """The columns that represent y when k-means seeds the responsibilities."""
        return y[:, None]

    def _offset(self, exposure, n_samples):
        if exposure is None:
            return None
        raise ValueError(f"exposure is not supported by {type(self).__name__}.")

    # ------------------------------------------------------------- validation
    def _validate_fit_data(self, X, y, sample_weight, exposure):
        X, y = validate_data(self, X, y, accept_sparse="csr", dtype=np.float64, y_numeric=False)
        y = self._validate_targets(y, reset=True)
        if X.shape[0] < self._n_leaves():
            raise ValueError(
                f"n_samples={X.shape[0]} should be >= the number of experts ({self._n_leaves()})."
            )
        sample_weight = _check_sample_weight(sample_weight, X, ensure_non_negative=True)
        if not sample_weight.sum() > 0:
            raise ValueError("sample_weight must have a positive sum; all weights are zero.")
        self._resolve_features()
        family = self._make_family(y, sample_weight)
        y = family.check_y(y)
        data = EMData(
            X_expert=self._select(X, self.expert_features_in_),
            X_gate=self._select(X, self.gate_features_in_),
            y=y,
            sample_weight=sample_weight,
            offset=self._offset(exposure, X.shape[0]),
        )
        return data, family

    def _resolve_features(self):
        self.expert_features_in_ = self._feature_index(self.expert_features, "expert_features")
        self.gate_features_in_ = self._feature_index(self.gate_features, "gate_features")

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
                raise ValueError(f"{name} names columns, but X has no column names.")
            missing = [s for s in selection if s not in set(names)]
            if missing:
                raise ValueError(f"{name} names columns not in X: {missing}.")
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
        check_is_fitted(self)
        X = validate_data(self, X, accept_sparse="csr", dtype=np.float64, reset=False)
        if y is not None:
            y = self._family.check_y(self._validate_targets(np.asarray(y), reset=False))
        return EMData(
            X_expert=self._select(X, self.expert_features_in_),
            X_gate=self._select(X, self.gate_features_in_),
            y=y,
            sample_weight=_check_sample_weight(sample_weight, X, ensure_non_negative=True),
            offset=self._offset(exposure, X.shape[0]),
        )

    # -------------------------------------------------------------------- fit
    def _fit(self, X, y, sample_weight=None, exposure=None):
        """Fit; on any failure (bad input, KeyboardInterrupt) the estimator is left exactly
        as it was, since validation also sets attributes (``n_features_in_``, ...)."""
        state = dict(self.__dict__)
        try:
            return self._fit_unguarded(X, y, sample_weight, exposure)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(state)
            raise

    def _fit_unguarded(self, X, y, sample_weight, exposure):
        distributed = _dask.is_dask_collection(X)
        if distributed:
            source, family = _dask.distributed_source(self, X, y, sample_weight, exposure)
        else:
            data, family = self._validate_fit_data(X, y, sample_weight, exposure)
            source = InMemoryBlocks([data])
        family.max_newton_steps = EM_NEWTON_STEPS
        model = MixtureOfExpertsModel(family, self._make_gate())
        if self.warm_start and hasattr(self, "_params"):
            starts = [("warm", self._params)]
        else:
            seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
            children = np.random.SeedSequence(seed).spawn(self.n_init)
            starts = [("init", child) for child in children]
        if distributed:  # the cluster parallelises each pass; restarts run in turn
            results = [self._fit_one(model, source.fresh(), *start) for start in starts]
        else:
            results = Parallel(n_jobs=self.n_jobs)(
                delayed(self._fit_one)(model, source.fresh(), kind, start)
                for kind, start in starts
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
            warn("; ".join(self.events_) + ".", DegenerateFitWarning)
        return self

    def _fit_one(self, model, source, kind, start):
        tic = time.perf_counter()
        if kind == "warm":
            params = start
        else:
            self._initialise(source, np.random.default_rng(start))
            params = model.m_step_blocks(source, None)
        monitor = ConvergenceMonitor(self.tol, self.max_iter, source.total_weight, self.verbose)
        params, log_lik, mass, n_iter = run_em(model, source, params, monitor)
        return {
            "params": params,
            "objective": monitor.history[-1],
            "log_likelihood": log_lik,
            "n_iter": n_iter,
            "converged": monitor.converged,
            "objective_trace": np.array(monitor.history),
            "time": time.perf_counter() - tic,
            "mass": mass,
        }

    def _initialise(self, source, rng):
        """Keep the initial weighted responsibilities ``W`` in every block."""
        if isinstance(self.init_params, str) and self.init_params == "random":
            n_columns = source.n_expert_features + source.n_gate_features + 1
            source.update(_random_start_block, row_keys(n_columns, rng), self._n_leaves())
            return
        blocks = getattr(source, "blocks", None)
        if blocks is None or len(blocks) != 1:
            raise ValueError(
                "init_params must be 'random' for data in chunks (dask arrays); "
                f"got {self.init_params!r}."
            )
        resp = self._initial_responsibilities(blocks[0], rng)
        blocks[0].cache["W"] = resp * blocks[0].sample_weight

    def _initial_responsibilities(self, data, rng):
        n, K = data.X_expert.shape[0], self._n_leaves()
        if not isinstance(self.init_params, str):
            resp = np.asarray(self.init_params, dtype=float)
            if resp.shape != (n, K) or np.any(resp < 0) or not np.all(np.isfinite(resp)):
                raise ValueError(
                    f"init_params as an array must be non-negative responsibilities of shape "
                    f"({n}, {K}); got shape {resp.shape}."
                )
            resp = resp.T / np.maximum(resp.sum(axis=1), 1e-300)
            return np.ascontiguousarray(resp)
        if self.init_params == "random":
            keys = row_keys(data.X_expert.shape[1] + data.X_gate.shape[1] + 1, rng)
            return random_responsibilities(data, keys, K)
        if self.init_params == "tree":
            return self._tree_responsibilities(data, rng)
        Z = np.column_stack([data.X_expert, data.X_gate, self._init_target(data.y)])
        scale = Z.std(axis=0)
        Z = (Z - Z.mean(axis=0)) / np.where(scale > 0, scale, 1.0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            labels = KMeans(K, n_init=1, random_state=int(rng.integers(2**31 - 1))).fit_predict(
                Z, sample_weight=data.sample_weight
            )
        resp = np.zeros((K, n))
        resp[labels, np.arange(n)] = 1.0
        return resp

    def _tree_responsibilities(self, data, rng):
        """Hard responsibilities from a CART tree with as many leaves as experts: the samples
        of each leaf (in depth-first order) seed one expert."""
        K = self._n_leaves()
        X = np.column_stack([data.X_expert, data.X_gate])
        cart = self._cart(max_leaf_nodes=max(K, 2), random_state=int(rng.integers(2**31 - 1)))
        leaves = cart.fit(X, data.y, sample_weight=data.sample_weight).apply(X)
        _, labels = np.unique(leaves, return_inverse=True)
        resp = np.zeros((K, X.shape[0]))
        resp[labels % K, np.arange(X.shape[0])] = 1.0
        return resp

    def _set_fitted(self, model, source, result, results):
        """Canonical order (the children of every gate by decreasing total responsibility),
        then every attribute at once."""
        params, order = model.canonical(result["params"], result["mass"])
        self.events_ = _degenerate_events(
            model, source, params, result["mass"][order], self.gate_alpha
        )
        self._model = model
        self._family = model.family
        self._params = params
        self.converged_ = result["converged"]
        self.n_iter_ = result["n_iter"]
        self.log_likelihood_ = result["log_likelihood"]
        self.objective_ = result["objective"]
        self.objective_trace_ = result["objective_trace"]
        self.restarts_ = [
            {
                key: r[key]
                for key in (
                    "objective",
                    "log_likelihood",
                    "n_iter",
                    "converged",
                    "objective_trace",
                    "time",
                )
            }
            for r in results
        ]
        self._set_gate_attributes(params["gate"])
        self._set_expert_attributes(params["experts"])

    def _set_gate_attributes(self, gate):
        self.gate_coef_ = gate[0][0, :, 1:]
        self.gate_intercept_ = gate[0][0, :, 0]

    def _set_expert_attributes(self, experts):
        self.expert_coef_ = experts["coef"][..., 1:]
        self.expert_intercept_ = experts["coef"][..., 0]

    # ---------------------------------------------------------- predictions
    def predict_gate(self, X):
        """Gate probabilities ``g_k(x)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_experts)
        """
        data = self._predict_data(X)
        return np.exp(self._model.gate.log_prob(data.X_gate, self._params["gate"])).T

    def predict_responsibilities(self, X, y, **kwargs):
        """Posterior probabilities ``p(k | x, y)`` of the experts.

        Returns
        -------
        ndarray of shape (n_samples, n_experts)
        """
        data = self._predict_data(X, y, **kwargs)
        return self._model.e_step(data, self._params)[1].T

    def score_samples(self, X, y, **kwargs):
        """Log-likelihood ``log p(y | x)`` of each sample.

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        data = self._predict_data(X, y, **kwargs)
        return self._model.e_step(data, self._params)[0]

    def icl(self, X, y, sample_weight=None, **kwargs):
        """Integrated completed likelihood ``BIC + 2 sum_i w_i sum_k -r_ik log r_ik`` (lower
        is better): BIC plus twice the entropy of the responsibilities (Biernacki et al.
        2000), which favours well separated experts."""
        resp = self.predict_responsibilities(X, y, **kwargs)
        entropy = -np.sum(resp * np.log(np.where(resp > 0, resp, 1.0)), axis=1)
        weights = self._criterion_weights(sample_weight, resp.shape[0])
        return self.bic(X, y, sample_weight, **kwargs) + 2.0 * float(weights @ entropy)

    def standard_errors(self, X, y, sample_weight=None, **kwargs):
        """Standard errors from the observed information at the fitted parameters.

        The information is the exact Hessian of the (penalised) log-likelihood on the data
        given, computed analytically with Louis' identity (see the user guide). The gate is
        reported against expert 0 (flexmix's convention: its coefficients are 0), so
        ``gate_coef`` has K - 1 rows. Flat models with Gaussian, Poisson, Gamma or
        Bernoulli experts.

        Parameters
        ----------
        X, y : the training data
        sample_weight : array-like of shape (n_samples,), default=None
        **kwargs : ``exposure`` for Poisson and Gamma experts

        Returns
        -------
        Bunch
            ``estimate`` and ``se`` (vectors), ``names`` (block, expert, name) per entry,
            ``covariance``, and the blocks ``gate_coef``, ``gate_intercept``,
            ``expert_coef``, ``expert_intercept`` and ``dispersion`` of standard errors.
        """
        from sklearn.utils import Bunch

        from ._information import observed_information, parameter_names

        data = self._predict_data(X, y, sample_weight=sample_weight, **kwargs)
        info = observed_information(self._model, data, self._params)
        covariance = np.linalg.pinv(info, hermitian=True)
        se = np.sqrt(np.clip(np.diag(covariance), 0.0, None))
        K = self._n_leaves()
        gate = self._params["gate"][0][0]
        experts = self._params["experts"]
        blocks = [(gate[1:] - gate[0]).ravel()]
        for k in range(K):
            blocks.append(experts["coef"][k])
            if "variance" in experts:
                blocks.append(experts["variance"][k : k + 1])
            if "dispersion" in experts:
                blocks.append(1.0 / experts["dispersion"][k : k + 1])
        estimate = np.concatenate(blocks)
        names = parameter_names(
            self._family,
            K,
            self._feature_labels(self.gate_features_in_),
            self._feature_labels(self.expert_features_in_),
        )
        dg = len(self.gate_features_in_) + 1
        gate_se = se[: (K - 1) * dg].reshape(K - 1, dg)
        per_expert = se[(K - 1) * dg :].reshape(K, -1)
        de = len(self.expert_features_in_) + 1
        return Bunch(
            estimate=estimate,
            se=se,
            names=names,
            covariance=covariance,
            gate_intercept=gate_se[:, 0],
            gate_coef=gate_se[:, 1:],
            expert_intercept=per_expert[:, 0],
            expert_coef=per_expert[:, 1:de],
            dispersion=per_expert[:, de] if per_expert.shape[1] > de else None,
        )

    def summary(self, X, y, sample_weight=None, **kwargs):
        """Table of estimates, standard errors and z values per expert and per gate, like
        flexmix's ``summary(refit(model))``.

        Returns
        -------
        str
        """
        result = self.standard_errors(X, y, sample_weight=sample_weight, **kwargs)
        lines = []
        current = None
        for (block, k, name), value, se in zip(result.names, result.estimate, result.se):
            title = f"Gate: expert {k} against expert 0" if block == "gate" else f"Expert {k}"
            if title != current:
                lines += ["", title, f"  {'':<16}{'estimate':>12}{'std. error':>12}{'z':>9}"]
                current = title
            z = value / se if se > 0 else np.nan
            lines.append(f"  {name:<16}{value:>12.5g}{se:>12.5g}{z:>9.3f}")
        return "\n".join(lines[1:])

    def _feature_labels(self, index):
        names = getattr(self, "feature_names_in_", None)
        if names is None:
            return [f"x{i}" for i in index]
        return [str(names[i]) for i in index]

    def align_experts(self, reference):
        """Reorder this model's experts to match ``reference`` (a fitted model of the same
        kind with the same number of experts), by Hungarian matching of the experts'
        coefficients. Flat models only.

        Returns
        -------
        self
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
            "experts": {key: value[order] for key, value in self._params["experts"].items()},
        }
        self._set_gate_attributes(self._params["gate"])
        self._set_expert_attributes(self._params["experts"])
        return self

    def _n_parameters(self):
        """Free parameters: gate (K-1)(p_g+1), expert coefficients, dispersions."""
        return self._model.n_parameters(self._params)

    def bic(self, X, y, sample_weight=None, **kwargs):
        """Bayesian information criterion ``-2 log L + n_parameters log n`` (lower is better).

        With ``sample_weight`` (frequency weights) ``log L`` is the weighted log-likelihood
        and ``n`` the total weight, as for the repeated rows.
        """
        log_lik = self.score_samples(X, y, **kwargs)
        weights = self._criterion_weights(sample_weight, log_lik.shape[0])
        return -2.0 * float(weights @ log_lik) + self._n_parameters() * np.log(weights.sum())

    def aic(self, X, y, sample_weight=None, **kwargs):
        """Akaike information criterion ``-2 log L + 2 n_parameters`` (lower is better);
        ``log L`` weighted by ``sample_weight``."""
        log_lik = self.score_samples(X, y, **kwargs)
        weights = self._criterion_weights(sample_weight, log_lik.shape[0])
        return -2.0 * float(weights @ log_lik) + 2.0 * self._n_parameters()

    @staticmethod
    def _criterion_weights(sample_weight, n):
        if sample_weight is None:
            return np.ones(n)
        weights = _check_sample_weight(sample_weight, np.empty((n, 0)), ensure_non_negative=True)
        if not weights.sum() > 0:
            raise ValueError("sample_weight must have a positive sum; all weights are zero.")
        return weights


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(x):
    """splitmix64's finaliser on an array of uint64 (wrapping arithmetic)."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def row_keys(n_columns, rng):
    """Odd 64-bit multipliers, one per column, for ``row_uniforms``."""
    keys = rng.integers(1, 2**62, size=n_columns, dtype=np.uint64)
    return keys * np.uint64(2) + np.uint64(1)


def row_uniforms(columns, n_draws, keys):
    """Uniform numbers in (0, 1), shape (n_draws, n), that depend only on each row's values
    and on ``keys`` (from ``row_keys``): the same for a row wherever it stands and however
    often it repeats, so an initialisation drawn from them is invariant to row order and
    chunking, and integer sample weights equal repeated rows.

    ``columns`` is a list of arrays of n rows (2-D, or 1-D for one column) whose values,
    side by side, make the rows; a 2-D one may be a sparse matrix (a zero adds nothing
    to the hash, so a sparse row hashes as its dense copy).
    """
    columns = [c if sparse.issparse(c) else c.reshape(c.shape[0], -1) for c in columns]
    row_hash = np.zeros(columns[0].shape[0], dtype=np.uint64)
    with np.errstate(over="ignore"):
        start = 0
        for part in columns:
            width = part.shape[1]
            part_keys = keys[start : start + width]
            start += width
            if sparse.issparse(part):
                row_hash += _sparse_row_hash(part, part_keys)
                continue
            for rows in row_blocks(part.shape[0]):
                bits = np.ascontiguousarray(part[rows] + 0.0, dtype=np.float64)  # -0.0 -> 0.0
                row_hash[rows] += (_mix(bits.view(np.uint64)) * part_keys).sum(
                    axis=1, dtype=np.uint64
                )
        row_hash = _mix(row_hash)
        draws = _mix(
            row_hash[None, :] + (np.arange(1, n_draws + 1, dtype=np.uint64) * _GOLDEN)[:, None]
        )
    return ((draws >> np.uint64(11)).astype(np.float64) + 0.5) / 2.0**53


def _sparse_row_hash(part, keys):
    """``row_uniforms``' per-row sum over the stored values of a sparse matrix (``_mix(0)``
    is 0, so the zeros left out add nothing)."""
    part = sparse.csr_matrix(part, copy=True)
    part.sum_duplicates()
    bits = np.ascontiguousarray(part.data + 0.0, dtype=np.float64)  # -0.0 -> 0.0
    terms = np.append(_mix(bits.view(np.uint64)) * keys[part.indices], np.uint64(0))
    sums = np.add.reduceat(terms, part.indptr[:-1], dtype=np.uint64)
    sums[np.diff(part.indptr) == 0] = 0
    return sums


def random_responsibilities(block, keys, n_leaves):
    """The random start: ``u ** (1 / 0.3)`` (Beta(0.3, 1) draws) normalised over experts.

    Uniform draws leave every expert alike and EM can stall at that symmetric point; these
    break the symmetry without hard labels (chosen on the tone, NPreg, mcycle and regional
    problems; a Dirichlet(0.3) draw does as well and costs 20 times more).
    """
    resp = row_uniforms([block.X_expert, block.X_gate, block.y], n_leaves, keys)
    resp **= 1.0 / RANDOM_START_CONCENTRATION
    resp /= resp.sum(axis=0)
    return resp


def _random_start_block(block, keys, n_leaves):
    W = random_responsibilities(block, keys, n_leaves)
    W *= block.sample_weight
    return {"W": W}, None
