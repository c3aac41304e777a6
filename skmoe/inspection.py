"""Figures of a fitted mixture of experts, in scikit-learn's ``Display`` convention.

Each display is built by ``Display.from_estimator(estimator, ...)``, which computes what to
draw and calls ``plot``; ``plot(ax=...)`` draws again on other axes. The drawn artists are
kept as attributes (``lines_``, ``ax_``, ``figure_``, ...). matplotlib is imported only
when a display draws (``pip install matplotlib``).

- :class:`ExpertFitDisplay`: the fit along one feature: the data coloured by their
  responsibilities, every expert's mean, the mixture mean with a predictive interval, and
  the gate probabilities in a panel below.
- :class:`GatePartitionDisplay`: how the gate divides a plane of two features.
- :class:`PosteriorRootogramDisplay`: flexmix's ``plot``: per expert, a rootogram of the
  posterior probabilities (those below ``eps`` left out).
- :class:`ObjectiveTraceDisplay`: the objective of every restart along its EM iterations.
"""

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ._docstrings import fill

__all__ = [
    "ExpertFitDisplay",
    "GatePartitionDisplay",
    "ObjectiveTraceDisplay",
    "PosteriorRootogramDisplay",
]


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as error:  # pragma: no cover - matplotlib is a test dependency
        raise ImportError("skmoe.inspection needs matplotlib: pip install matplotlib") from error
    return plt


def _expert_colours(n_experts):
    """One RGB colour per expert (matplotlib's default cycle, then tab20)."""
    from matplotlib import colormaps

    cycle = colormaps["tab10"].colors if n_experts <= 10 else colormaps["tab20"].colors
    return np.array([cycle[k % len(cycle)] for k in range(n_experts)])[:, :3]


def _final(estimator):
    """The skmoe estimator at the end of ``estimator``, and the function that maps rows of
    ``estimator``'s input to that estimator's input (the pipeline's transformers)."""
    from .metrics import final_estimator

    model, _ = final_estimator(estimator, None)
    check_is_fitted(model)
    return model, lambda rows: final_estimator(estimator, rows)[1]


def _column(model, feature):
    """Index of a feature given by index or by name (of a pipeline's input, for one)."""
    if isinstance(feature, str):
        names = getattr(model, "feature_names_in_", None)
        if names is None or feature not in set(names):
            raise ValueError(f"feature {feature!r} is not a column name of the fitted X.")
        return int(np.flatnonzero(names == feature)[0])
    return int(feature)


def _feature_name(model, index):
    names = getattr(model, "feature_names_in_", None)
    return str(names[index]) if names is not None else f"x{index}"


def _as_array(X):
    return np.asarray(X.to_numpy() if hasattr(X, "to_numpy") else X, dtype=float)


def _grid_rows(model, X, columns, values):
    """Rows at the medians of X with ``columns`` set to ``values`` (one row per value), a
    DataFrame when the model was fitted on one."""
    rows = np.tile(np.median(X, axis=0), (values.shape[0], 1))
    rows[:, columns] = values
    names = getattr(model, "feature_names_in_", None)
    if names is None:
        return rows
    import pandas as pd

    return pd.DataFrame(rows, columns=names)


def _figure_and_axes(ax, nrows=1, **kwargs):
    plt = _pyplot()
    if ax is None:
        figure, ax = plt.subplots(nrows, 1, squeeze=False, **kwargs)
        return figure, list(ax[:, 0])
    axes = list(np.atleast_1d(ax))
    return axes[0].figure, axes


class ExpertFitDisplay:
    """The fit of a regressor along one feature: data coloured by responsibility, expert
    means, mixture mean with a predictive interval, gate probabilities below.

    The other features are held at their medians on the grid. For a pipeline the grid is
    in the units of its input and goes through its transformers. Build it with
    :meth:`from_estimator`.

    Parameters
    ----------
    grid : ndarray of shape (n_grid,)
        Values of the feature along which the fit is drawn.
    experts : ndarray of shape (n_grid, n_experts)
        Expert means on the grid.
    gate : ndarray of shape (n_grid, n_experts)
        Gate probabilities on the grid.
    mean : ndarray of shape (n_grid,)
        Mixture mean on the grid.
    interval : ndarray of shape (n_grid, 2) or None
        Predictive interval on the grid.
    x, y : ndarray of shape (n_samples,)
        The data drawn.
    resp : ndarray of shape (n_samples, n_experts)
        Their responsibilities (the colours).
    coverage : float or None
        Coverage of ``interval``.
    feature_name : str
        Label of the x axis.
    target_name : str, default="y"
        Label of the y axis.

    Attributes
    ----------
    ax_ : matplotlib Axes
        The fit. ``ax_.lines`` holds one line per expert, then the mixture mean;
        ``ax_.collections`` the scatter of the data, then the interval band.
    gate_ax_ : matplotlib Axes
        The gate probabilities, one line per expert.
    figure_ : matplotlib Figure
    expert_lines_, gate_lines_ : lists of Line2D
    mean_line_ : Line2D
    band_ : PolyCollection or None
    scatter_ : PathCollection

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from skmoe import MixtureOfExpertsRegressor
    >>> from skmoe.datasets import load_tone
    >>> from skmoe.inspection import ExpertFitDisplay
    >>> X, y = load_tone(return_X_y=True)
    >>> model = MixtureOfExpertsRegressor(2, random_state=0).fit(X, y)
    >>> display = ExpertFitDisplay.from_estimator(model, X, y)
    >>> len(display.expert_lines_), len(display.gate_lines_)
    (2, 2)
    """

    def __init__(
        self,
        grid,
        experts,
        gate,
        mean,
        interval,
        x,
        y,
        resp,
        *,
        coverage,
        feature_name,
        target_name="y",
    ):
        self.grid = grid
        self.experts = experts
        self.gate = gate
        self.mean = mean
        self.interval = interval
        self.x = x
        self.y = y
        self.resp = resp
        self.coverage = coverage
        self.feature_name = feature_name
        self.target_name = target_name

    @classmethod
    def from_estimator(
        cls,
        estimator,
        X,
        y,
        *,
        feature=0,
        coverage=0.9,
        grid_resolution=200,
        ax=None,
        target_name="y",
    ):
        """Compute and draw the display.

        Parameters
        ----------
        estimator : estimator
            A fitted skmoe regressor, or a Pipeline ending in one.
        X : array-like of shape (n_samples, n_features)
            The samples to show.
        y : array-like of shape (n_samples,)
            Their responses.
        feature : int or str, default=0
            The column along which to draw (index or name of the estimator's input).
        coverage : float or None, default=0.9
            Coverage of the predictive interval band; None for no band.
        grid_resolution : int, default=200
            Points of the grid.
        ax : pair of matplotlib Axes, default=None
            The axes of the fit and of the gate; a new figure when None.
        target_name : str, default="y"
            Label of the y axis.

        Returns
        -------
        ExpertFitDisplay
            The drawn display.
        """
        model, transform = _final(estimator)
        if not hasattr(model, "predict_interval"):
            raise TypeError("ExpertFitDisplay needs a regressor (predict_interval).")
        values = _as_array(X)
        column = _column(estimator, feature)
        x = values[:, column]
        grid = np.linspace(x.min(), x.max(), grid_resolution)
        rows = transform(_grid_rows(estimator, values, [column], grid[:, None]))
        interval = None if coverage is None else model.predict_interval(rows, coverage=coverage)
        display = cls(
            grid,
            model.predict_experts(rows),
            model.predict_gate(rows),
            model.predict(rows),
            interval,
            x,
            np.asarray(y, dtype=float),
            model.predict_responsibilities(transform(X), y),
            coverage=coverage,
            feature_name=_feature_name(estimator, column),
            target_name=target_name,
        )
        return display.plot(ax=ax)

    @fill
    def plot(self, ax=None):
        """Draw on ``ax`` (a pair of Axes: fit and gate) or on a new figure.

        {plot}
        """
        if ax is None:
            figure, axes = _figure_and_axes(
                None, 2, sharex=True, figsize=(6.4, 5.6), height_ratios=(3, 1)
            )
        else:
            figure, axes = _figure_and_axes(ax)
        ax, gate_ax = axes
        K = self.experts.shape[1]
        colours = _expert_colours(K)
        self.scatter_ = ax.scatter(
            self.x, self.y, c=np.clip(self.resp @ colours, 0, 1), s=12, edgecolors="none"
        )
        self.expert_lines_ = [
            ax.plot(self.grid, self.experts[:, k], color=colours[k], lw=1.5, label=f"expert {k}")[
                0
            ]
            for k in range(K)
        ]
        (self.mean_line_,) = ax.plot(self.grid, self.mean, color="k", lw=2, label="mixture mean")
        self.band_ = None
        if self.interval is not None:
            self.band_ = ax.fill_between(
                self.grid,
                self.interval[:, 0],
                self.interval[:, 1],
                color="0.5",
                alpha=0.2,
                label=f"{self.coverage:.0%} interval",
            )
        # experts extrapolate beyond the data they explain: keep the data's range in view
        margin = 0.1 * np.ptp(self.y)
        ax.set_ylim(self.y.min() - margin, self.y.max() + margin)
        ax.set_ylabel(self.target_name)
        ax.legend(loc="best", fontsize="small")
        self.gate_lines_ = [
            gate_ax.plot(self.grid, self.gate[:, k], color=colours[k])[0] for k in range(K)
        ]
        gate_ax.set_ylim(-0.02, 1.02)
        gate_ax.set_xlabel(self.feature_name)
        gate_ax.set_ylabel("gate")
        self.ax_, self.gate_ax_, self.figure_ = ax, gate_ax, figure
        return self


class GatePartitionDisplay:
    """How the gate divides the plane of two features: each point of a grid coloured by
    the gate probabilities (a blend of the experts' colours, so soft transitions show), with
    the boundaries of the most probable expert and, optionally, the data.

    The other features are held at their medians; for a pipeline the plane is in the units
    of its input.

    Parameters
    ----------
    xx, yy : ndarray of shape (n_grid, n_grid)
        The grid of the plane.
    gate : ndarray of shape (n_grid * n_grid, n_experts)
        Gate probabilities on the grid.
    X : ndarray of shape (n_samples, 2) or None, default=None
        Data drawn over the gate.
    feature_names : pair of str
        Labels of the axes.

    Attributes
    ----------
    ax_ : matplotlib Axes
        ``ax_.images`` holds the coloured gate; ``ax_.collections`` the boundaries (one
        contour set per expert whose region has an edge in the plane) and the scatter of
        the data.
    image_ : AxesImage
    contours_ : list of ContourSet
    scatter_ : PathCollection or None
    figure_ : matplotlib Figure
    """

    def __init__(self, xx, yy, gate, X=None, *, feature_names):
        self.xx = xx
        self.yy = yy
        self.gate = gate
        self.X = X
        self.feature_names = feature_names

    @classmethod
    @fill
    def from_estimator(
        cls, estimator, X, *, features=(0, 1), grid_resolution=100, show_data=True, ax=None
    ):
        """Compute and draw the display.

        {Parameters estimator}
        X : array-like of shape (n_samples, n_features)
            The data that set the range (and are drawn when ``show_data``).
        features : pair of int or str, default=(0, 1)
            The two columns of the plane.
        grid_resolution : int, default=100
            Points of the grid along each axis.
        show_data : bool, default=True
            Draw the data too.
        {drawn}
        """
        model, transform = _final(estimator)
        X = _as_array(X)
        columns = [_column(estimator, f) for f in features]
        if len(columns) != 2:
            raise ValueError("features must name two columns.")
        first, second = (
            np.linspace(X[:, c].min(), X[:, c].max(), grid_resolution) for c in columns
        )
        xx, yy = np.meshgrid(first, second)
        rows = _grid_rows(estimator, X, columns, np.column_stack([xx.ravel(), yy.ravel()]))
        gate = model.predict_gate(transform(rows)).reshape(*xx.shape, -1)
        display = cls(
            xx,
            yy,
            gate,
            X[:, columns] if show_data else None,
            feature_names=[_feature_name(estimator, c) for c in columns],
        )
        return display.plot(ax=ax)

    @fill
    def plot(self, ax=None):
        """Draw on ``ax`` or on a new figure.

        {plot}
        """
        figure, (ax,) = _figure_and_axes(ax)
        K = self.gate.shape[-1]
        colours = _expert_colours(K)
        extent = (self.xx.min(), self.xx.max(), self.yy.min(), self.yy.max())
        self.image_ = ax.imshow(
            np.clip(self.gate @ colours, 0, 1),
            origin="lower",
            extent=extent,
            aspect="auto",
            alpha=0.6,
            interpolation="bilinear",
        )
        # the edge of expert k's region: where g_k equals the largest other probability
        self.contours_ = []
        for k in range(K):
            margin = self.gate[..., k] - np.delete(self.gate, k, axis=-1).max(axis=-1)
            if margin.min() < 0 < margin.max():
                self.contours_.append(
                    ax.contour(self.xx, self.yy, margin, levels=[0.0], colors="k", linewidths=1)
                )
        self.scatter_ = None
        if self.X is not None:
            self.scatter_ = ax.scatter(self.X[:, 0], self.X[:, 1], s=6, c="k", alpha=0.5)
        handles = [_patch(colours[k], f"expert {k}") for k in range(K)]
        ax.legend(handles=handles, loc="best", fontsize="small")
        ax.set_xlabel(self.feature_names[0])
        ax.set_ylabel(self.feature_names[1])
        self.ax_, self.figure_ = ax, figure
        return self


def _patch(colour, label):
    from matplotlib.patches import Patch

    return Patch(color=colour, alpha=0.6, label=label)


class PosteriorRootogramDisplay:
    """flexmix's ``plot``: for every expert, a rootogram (bar heights the square root of the
    counts) of the posterior probabilities ``p(k | x, y)`` above ``eps``.

    Well separated experts pile their posteriors near 0 (left out) and 1.

    Parameters
    ----------
    resp : ndarray of shape (n_samples, n_experts)
        Posterior probabilities.
    bins : int, default=20
        Bars per expert.
    eps : float, default=1e-4
        Posteriors at or below ``eps`` are left out.
    root : bool, default=True
        Square-root scale of the counts.

    Attributes
    ----------
    axes_ : ndarray of matplotlib Axes, one per expert
    bars_ : list of BarContainer, one per expert (``bins`` bars each)
    figure_ : matplotlib Figure
    """

    def __init__(self, resp, *, bins=20, eps=1e-4, root=True):
        self.resp = resp
        self.bins = bins
        self.eps = eps
        self.root = root

    @classmethod
    @fill
    def from_estimator(cls, estimator, X, y, *, bins=20, eps=1e-4, root=True, ax=None,
                       exposure=None):
        """Compute and draw the display.

        {Parameters estimator}
        X : array-like of shape (n_samples, n_features)
            The samples.
        y : array-like of shape (n_samples,)
            Their responses.
        bins : int, default=20
            Bars per expert.
        eps : float, default=1e-4
            Posteriors at or below ``eps`` are left out (flexmix's default).
        root : bool, default=True
            Square-root scale of the counts (a rootogram); counts when False.
        ax : sequence of matplotlib Axes, one per expert, default=None
            Where to draw; a new figure when None.
        {exposure}

        Returns
        -------
        PosteriorRootogramDisplay
            The drawn display.
        """
        model, transform = _final(estimator)
        resp = model.predict_responsibilities(transform(X), y, exposure)
        return cls(resp, bins=bins, eps=eps, root=root).plot(ax=ax)

    @fill
    def plot(self, ax=None):
        """Draw on ``ax`` (one Axes per expert) or on a new figure.

        {plot}
        """
        plt = _pyplot()
        K = self.resp.shape[1]
        if ax is None:
            figure, axes = plt.subplots(
                1, K, sharey=True, squeeze=False, figsize=(2.4 * K + 1, 2.8)
            )
            axes = axes[0]
        else:
            axes = np.atleast_1d(ax)
            figure = axes[0].figure
        colours = _expert_colours(K)
        edges = np.linspace(0, 1, self.bins + 1)
        self.bars_ = []
        for k, axis in enumerate(axes):
            values = self.resp[:, k]
            counts, _ = np.histogram(values[values > self.eps], bins=edges)
            heights = np.sqrt(counts) if self.root else counts
            self.bars_.append(
                axis.bar(
                    edges[:-1],
                    heights,
                    width=np.diff(edges),
                    align="edge",
                    color=colours[k],
                    edgecolor="k",
                    linewidth=0.5,
                )
            )
            axis.set_title(f"expert {k}")
            axis.set_xlabel("posterior probability")
            axis.set_xlim(0, 1)
        axes[0].set_ylabel("sqrt(count)" if self.root else "count")
        self.axes_, self.figure_ = np.asarray(axes), figure
        return self


class ObjectiveTraceDisplay:
    """The penalised log-likelihood of every restart (``restarts_[i]["objective_trace"]``)
    along its EM iterations; the kept run drawn bold.

    Parameters
    ----------
    traces : list of ndarray
        The objective of every restart at every iteration.
    best : int
        Index of the kept restart.
    per_sample : float or None, default=None
        Divisor of the objectives.

    Attributes
    ----------
    ax_ : matplotlib Axes
    lines_ : list of Line2D, one per restart
    figure_ : matplotlib Figure
    """

    def __init__(self, traces, best, *, per_sample=None):
        self.traces = traces
        self.best = best
        self.per_sample = per_sample

    @classmethod
    @fill
    def from_estimator(cls, estimator, *, per_sample=None, ax=None):
        """Compute and draw the display.

        Parameters
        ----------
        estimator : skmoe estimator fitted by ``fit`` (not ``partial_fit``), or a Pipeline
            ending in one
        per_sample : float or None, default=None
            Divide the objective by this number (e.g. the number of samples), to compare
            with ``tol``.
        {drawn}
        """
        model, _ = _final(estimator)
        restarts = getattr(model, "restarts_", None)
        if restarts is None:
            raise ValueError("ObjectiveTraceDisplay needs an estimator fitted by fit.")
        traces = [np.asarray(r["objective_trace"], dtype=float) for r in restarts]
        best = int(np.argmax([r["objective"] for r in restarts]))
        return cls(traces, best, per_sample=per_sample).plot(ax=ax)

    @fill
    def plot(self, ax=None):
        """Draw on ``ax`` or on a new figure.

        {plot}
        """
        figure, (ax,) = _figure_and_axes(ax)
        scale = 1.0 if self.per_sample is None else float(self.per_sample)
        self.lines_ = []
        for i, trace in enumerate(self.traces):
            best = i == self.best
            (line,) = ax.plot(
                np.arange(len(trace)),
                trace / scale,
                color="C3" if best else "0.5",
                lw=2 if best else 1,
                alpha=1 if best else 0.6,
                zorder=3 if best else 2,
                label="kept run" if best else None,
            )
            self.lines_.append(line)
        ax.set_xlabel("EM iteration")
        ax.set_ylabel("penalised log-likelihood" + (" per sample" if self.per_sample else ""))
        ax.set_title(f"{len(self.traces)} restart{'s' * (len(self.traces) != 1)}")
        ax.legend(loc="lower right", fontsize="small")
        self.ax_, self.figure_ = ax, figure
        return self
