"""Shared pieces of the public docstrings, so that each is written once.

``fill`` replaces every line that holds only ``{name ...}`` by the pieces named (one or
more, separated by spaces), indented as that line.
"""

import re

_LOADER_FLAGS = """return_X_y : bool, default=False
    Return ``(X, y)`` instead of a Bunch.
as_frame : bool, default=False
    ``data`` a pandas DataFrame and ``target`` a Series (and ``frame`` both), as
    scikit-learn's loaders."""

PIECES = {
    "Parameters": """Parameters
----------""",
    "X": """X : array-like or sparse matrix of shape (n_samples, n_features)
    The samples.""",
    "y": """y : array-like of shape (n_samples,) or (n_samples, n_columns)
    Their responses (class labels for a classifier; as many columns as ``fit`` had).""",
    "sample_weight": """sample_weight : array-like of shape (n_samples,), default=None
    Frequency weights; None weighs every sample 1.""",
    "exposure": """exposure : array-like of shape (n_samples,), default=None
    Exposure of experts whose family accepts an offset (``log(exposure)`` enters the
    linear predictor); None means exposure 1, and the methods that take y need it when
    ``fit`` had one.""",
    "groups": """groups : array-like of shape (n_samples,), default=None
    Group labels, as in ``fit``: the rows of a group share one latent expert (the gate
    features and ``sample_weight`` constant within every group). Needed when ``fit`` had
    them (``np.arange(n_samples)`` makes every row its own group).""",
    "draws": """n_samples : int, default=1
    Draws per sample.
random_state : int, RandomState instance or None, default=None
    Seeds the draws.""",
    "criterion": """Returns
-------
float
    The criterion (lower is better).""",
    "estimator": """estimator : estimator
    A fitted skmoe estimator, or a Pipeline ending in one.""",
    "held_out": """X : array-like of shape (n_samples, n_features)
    Held-out samples.
y : array-like of shape (n_samples,)
    Their responses.
sample_weight : array-like of shape (n_samples,), default=None
    Weights of the mean.""",
    "loader_flags": _LOADER_FLAGS,
    "loader": f"""Parameters
----------
{_LOADER_FLAGS}

Returns
-------
Bunch or tuple
    A Bunch with ``data`` (n_samples, 1), ``target`` (n_samples,), ``feature_names``,
    ``DESCR`` and the columns named above; or ``(X, y)`` when ``return_X_y``.""",
    "drawn": """ax : matplotlib Axes, default=None
    Where to draw; a new figure when None.

Returns
-------
display
    The drawn display.""",
    "plot": """Parameters
----------
ax : matplotlib Axes or sequence of Axes, default=None
    Where to draw (as the ``ax`` of ``from_estimator``); a new figure when None.

Returns
-------
self
    The display, with its artists set.""",
}

_PLACEHOLDER = re.compile(r"^( *)\{([\w ]+)\}$", re.M)


def fill(obj):
    """Decorator: ``obj.__doc__`` with its placeholders replaced."""
    def piece(match):
        indent, names = match.groups()
        if any(name not in PIECES for name in names.split()):  # the module's own
            return match.group(0)
        text = "\n".join(PIECES[name] for name in names.split())
        return "\n".join(indent + line if line else line for line in text.split("\n"))

    obj.__doc__ = _PLACEHOLDER.sub(piece, obj.__doc__)
    return obj
