"""``summary()``: a fitted flat model in the layout of R's ``summary(refit(flexmix))``.

A header (n, log-likelihood, degrees of freedom, AIC, BIC, ICL, iterations, convergence),
the component table flexmix prints (prior, size, post>0, ratio) and one coefficient table
per gate contrast, per expert and, once, for what all experts share (estimate, std. error,
z value, ``Pr(>|z|)``). The same numbers are available as a ``pandas.DataFrame``.
"""

import math

import numpy as np
from scipy import stats

#: Posterior probabilities above this count in ``post>0`` (flexmix's ``eps``).
POSTERIOR_EPS = 1e-4

#: Significant digits of the estimates and standard errors.
DIGITS = 6

#: Smallest p-value printed as a number (R's ``.Machine$double.eps``).
P_FLOOR = 2.2e-16

COLUMNS = ("estimate", "std_error", "z_value", "p_value")
_HEADINGS = ("Estimate", "Std. Error", "z value", "Pr(>|z|)")
_STARS = ((0.001, "***"), (0.01, "**"), (0.05, "*"), (0.1, "."))


def summarize(model, X, y, sample_weight=None, exposure=None, groups=None):
    """Every number of the summary of ``model`` on ``(X, y)``, as plain Python data.

    Returns
    -------
    dict with ``header`` (dict), ``components`` (dict of arrays, one entry per expert),
    ``component_labels`` (per expert None, or the family's name of a component without
    expert parameters, e.g. the point mass at zero), ``dispersion_labels`` (the family's
    names of its dispersions) and
    ``rows``: one dict per parameter with ``part``, ``expert``, ``name`` and the
    ``COLUMNS`` (NaN where a standard error is not available, or z does not apply).
    """
    result = model.standard_errors(X, y, sample_weight, exposure, groups)
    resp = model.predict_responsibilities(X, y, exposure, groups)
    weights = model._predict_data(X, y, exposure, sample_weight).sample_weight
    log_lik = float(weights @ model.score_samples(X, y, exposure, groups))
    header = {
        "n": float(weights.sum()),
        "log_likelihood": log_lik,
        "df": int(model._n_parameters()),
        "AIC": model.aic(X, y, sample_weight, exposure, groups),
        "BIC": model.bic(X, y, sample_weight, exposure, groups),
        "ICL": model.icl(X, y, sample_weight, exposure, groups),
        "n_iter": getattr(model, "n_iter_", None),
        "converged": getattr(model, "converged_", None),
    }
    gate = model.predict_gate(X)
    hard = np.bincount(resp.argmax(axis=1), weights=weights, minlength=resp.shape[1])
    positive = weights @ (resp > POSTERIOR_EPS)
    components = {
        "prior": weights @ gate / weights.sum(),
        "size": hard,
        "post>0": positive,
        "ratio": np.divide(hard, positive, out=np.full(hard.shape, np.nan), where=positive > 0),
    }
    family = model._family
    fixed = getattr(family, "fixed_experts", None)
    fixed = (np.zeros(resp.shape[1], dtype=bool) if fixed is None
             else fixed(model._params["experts"]))
    component_labels = [getattr(family, "fixed_label", None) if hit else None
                        for hit in fixed]
    rows = []
    labels = tuple(family.dispersion_labels)
    for (part, k, name), estimate, se in zip(result.names, result.estimate, result.se):
        dispersion = part != "gate" and name in labels
        z = estimate / se if se > 0 and not dispersion else np.nan
        rows.append(
            {
                "part": part,
                "expert": k,
                "name": name,
                "estimate": float(estimate),
                "std_error": float(se) if np.isfinite(se) else np.nan,
                "z_value": float(z),
                "p_value": float(2 * stats.norm.sf(abs(z))) if np.isfinite(z) else np.nan,
            }
        )
    return {"header": header, "components": components, "rows": rows,
            "dispersion_labels": labels, "component_labels": component_labels}


# ------------------------------------------------------------------------- text
def format_column(values, digits=DIGITS):
    """Strings with one number of decimals for the whole column, enough to give its smallest
    non-zero entry ``digits`` significant digits; scientific notation when that would take
    more than 10 decimals or the numbers reach 1e10. NaN prints ``NA``."""
    values = np.asarray(values, dtype=float)
    finite = np.abs(values[np.isfinite(values)])
    nonzero = finite[finite > 0]
    if nonzero.size == 0:
        decimals, scientific = digits - 1, False
    else:
        decimals = max(0, digits - 1 - math.floor(math.log10(nonzero.min())))
        scientific = decimals > 10 or nonzero.max() >= 1e10
    pattern = f"{{:.{digits - 1}e}}" if scientific else f"{{:.{decimals}f}}"
    return ["NA" if not np.isfinite(v) else pattern.format(v) for v in values]


def format_p_values(values):
    """R's ``format.pval``: four significant digits, ``< 2.2e-16`` below the floor."""
    return [
        "NA" if not np.isfinite(p) else f"< {P_FLOOR:g}" if p < P_FLOOR else f"{p:.4g}"
        for p in values
    ]


def significance_stars(p):
    """R's significance codes."""
    if not np.isfinite(p):
        return ""
    return next((stars for level, stars in _STARS if p < level), "")


def format_table(row_names, columns, headings, indent="  "):
    """Right-aligned columns separated by two spaces, the row names left-aligned: no two
    entries can touch, whatever their widths."""
    name_width = max([len(str(name)) for name in row_names] + [0])
    widths = [
        max(len(heading), *(len(entry) for entry in column))
        for heading, column in zip(headings, columns)
    ]
    lines = [
        (
            indent + " " * name_width + "".join(f"  {h:>{w}}" for h, w in zip(headings, widths))
        ).rstrip()
    ]
    for i, name in enumerate(row_names):
        cells = "".join(f"  {column[i]:>{w}}" for column, w in zip(columns, widths))
        lines.append(f"{indent}{name!s:<{name_width}}{cells}".rstrip())
    return lines


def _coefficient_lines(rows, dispersion_labels):
    estimate = format_column([r["estimate"] for r in rows])
    se = format_column([r["std_error"] for r in rows])
    z = [
        "" if r["name"] in dispersion_labels and r["part"] != "gate" else text
        for r, text in zip(rows, format_column([r["z_value"] for r in rows], digits=4))
    ]
    p = [
        "" if not z_text else text
        for z_text, text in zip(z, format_p_values([r["p_value"] for r in rows]))
    ]
    stars = [significance_stars(r["p_value"]) for r in rows]
    return format_table([r["name"] for r in rows], [estimate, se, z, p, stars], (*_HEADINGS, ""))


def _number(value):
    return f"{value:.6g}" if isinstance(value, float) and value != int(value) else f"{value:g}"


def render(summary, title):
    """The summary as text."""
    h = summary["header"]
    lines = [
        title,
        "",
        f"  n = {_number(h['n'])}    log-likelihood = {h['log_likelihood']:.4f}    df = {h['df']}",
        f"  AIC = {h['AIC']:.4f}    BIC = {h['BIC']:.4f}    ICL = {h['ICL']:.4f}",
    ]
    if h["n_iter"] is not None:
        lines.append(f"  EM iterations = {h['n_iter']}    converged = {h['converged']}")
    c = summary["components"]
    K = len(c["prior"])
    names = [f"expert {k}" + (f" ({label})" if label else "")
             for k, label in enumerate(summary["component_labels"])]
    lines += [f"  zero share = {c['prior'][k]:.4f} (the prior of expert {k}, the {label})"
              for k, label in enumerate(summary["component_labels"])
              if label == "point mass at zero"]
    lines += ["", "Components"]
    lines += format_table(
        names,
        [
            [f"{v:.3f}" for v in c["prior"]],
            [_number(float(v)) for v in c["size"]],
            [_number(float(v)) for v in c["post>0"]],
            format_column(c["ratio"], digits=3) if K else [],
        ],
        ("prior", "size", "post>0", "ratio"),
    )
    blocks = {}
    for row in summary["rows"]:
        blocks.setdefault((row["part"], row["expert"]), []).append(row)
    for (part, k), rows in blocks.items():
        heading = (f"Gate: {names[k]} against expert 0" if part == "gate"
                   else "Shared by all experts" if part == "shared" else f"Expert {k}")
        lines += ["", heading, *_coefficient_lines(rows, summary["dispersion_labels"])]
    lines += ["", "Signif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1"]
    return "\n".join(lines)


def to_frame(summary):
    """The coefficient rows as a DataFrame indexed by (part, expert, name), the expert
    ``<NA>`` in the part ``"shared"``; the header and the component table in ``attrs``."""
    try:
        import pandas as pd
    except ImportError as error:  # pragma: no cover - pandas is a test dependency
        raise ImportError("summary(..., as_frame=True) needs pandas.") from error
    frame = pd.DataFrame(summary["rows"])
    frame["expert"] = frame["expert"].astype("Int64")  # <NA> for the shared block
    frame = frame.set_index(["part", "expert", "name"])
    frame.attrs["header"] = dict(summary["header"])
    frame.attrs["components"] = pd.DataFrame(summary["components"]).rename_axis("expert")
    return frame
