"""Loaders for the small public datasets bundled with skmoe (CSV files in ``data/``)."""

import csv
from importlib import resources

import numpy as np
from sklearn.utils import Bunch

from .._docstrings import fill

_ORIGINS = {
    "tonedata.csv": "Cohen (1980), tone perception experiment; R package mixtools (tonedata).",
    "NOdata.csv": "Brinkman (1981), ethanol fuel experiment; R package mixtools (NOdata).",
    "CO2data.csv": "Hurn, Justel & Robert (2003), GNP and CO2 per capita; R package mixtools.",
    "NPreg.csv": "Artificial two-class regression data; R package flexmix (NPreg).",
    "mcycle.csv": "Silverman (1985), simulated motorcycle accident; R package MASS (mcycle).",
}


def _read(filename):
    with resources.files("skmoe.datasets").joinpath("data", filename).open() as handle:
        rows = list(csv.reader(handle))
    return rows[0], rows[1:]


def _load(filename, features, target, return_X_y, as_frame=False, extra=()):
    header, rows = _read(filename)
    columns = {name: [row[i] for row in rows] for i, name in enumerate(header)}
    X = np.column_stack([np.asarray(columns[f], dtype=float) for f in features])
    y = np.asarray(columns[target], dtype=float)
    frame = None
    if as_frame:  # as sklearn's loaders: X a DataFrame, y a Series, both in ``frame``
        import pandas as pd

        X = pd.DataFrame(X, columns=list(features))
        y = pd.Series(y, name=target)
        frame = pd.concat([X, y], axis=1)
    if return_X_y:
        return X, y
    bunch = Bunch(
        data=X,
        target=y,
        frame=frame,
        feature_names=list(features),
        target_name=target,
        DESCR=_ORIGINS[filename],
    )
    for name in extra:
        bunch[name] = np.asarray(columns[name])
    return bunch


@fill
def load_tone(*, return_X_y=False, as_frame=False):
    """Tone perception data (n=150): perceived tone ``tuned`` against ``stretchratio``.

    Cohen (1980); distributed with the R package mixtools as ``tonedata``. The classic
    two-regime example: some listeners track the stretch ratio, others the octave.

    {loader}

    Examples
    --------
    >>> from skmoe.datasets import load_tone
    >>> X, y = load_tone(return_X_y=True)
    >>> X.shape
    (150, 1)
    """
    return _load("tonedata.csv", ["stretchratio"], "tuned", return_X_y, as_frame)


@fill
def load_nodata(*, return_X_y=False, as_frame=False):
    """Ethanol fuel data (n=88): ``Equivalence`` ratio against ``NO`` emission.

    Brinkman (1981); distributed with the R package mixtools as ``NOdata``.

    {loader}

    Examples
    --------
    >>> from skmoe.datasets import load_nodata
    >>> load_nodata().data.shape
    (88, 1)
    """
    return _load("NOdata.csv", ["NO"], "Equivalence", return_X_y, as_frame)


@fill
def load_co2(*, return_X_y=False, as_frame=False):
    """GNP and CO2 per capita of 28 countries: ``CO2`` against ``GNP``.

    Hurn, Justel & Robert (2003); distributed with the R package mixtools as ``CO2data``.
    The Bunch also holds ``country``.

    {loader}

    Examples
    --------
    >>> from skmoe.datasets import load_co2
    >>> load_co2().data.shape
    (28, 1)
    """
    return _load("CO2data.csv", ["GNP"], "CO2", return_X_y, as_frame, extra=("country",))


@fill
def load_npreg(*, target="yn", return_X_y=False, as_frame=False):
    """Artificial two-class regression data of the R package flexmix (``NPreg``, n=200).

    Parameters
    ----------
    target : {"yn", "yp", "yb"}, default="yn"
        Gaussian (``yn``), Poisson count (``yp``) or binary (``yb``) response.
    {loader_flags}

    Returns
    -------
    Bunch or tuple
        A Bunch with ``data`` (200, 1) holding ``x``, ``target``, and ``class`` (the
        true class, not a feature); or ``(X, y)``.

    Examples
    --------
    >>> from skmoe.datasets import load_npreg
    >>> X, y = load_npreg(target="yp", return_X_y=True)
    >>> int(y.min()) >= 0
    True
    """
    if target not in ("yn", "yp", "yb"):
        raise ValueError(f"target must be 'yn', 'yp' or 'yb'; got {target!r}.")
    return _load("NPreg.csv", ["x"], target, return_X_y, as_frame, extra=("class",))


@fill
def load_mcycle(*, return_X_y=False, as_frame=False):
    """Motorcycle crash data (n=133): head acceleration ``accel`` against ``times`` (ms).

    Silverman (1985); distributed with the R package MASS as ``mcycle``.

    {loader}

    Examples
    --------
    >>> from skmoe.datasets import load_mcycle
    >>> load_mcycle().data.shape
    (133, 1)
    """
    return _load("mcycle.csv", ["times"], "accel", return_X_y, as_frame)
