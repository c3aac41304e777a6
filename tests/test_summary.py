"""summary(): R's layout, every number of flexmix's summary(refit(m)), aligned, as a frame."""

import re

import numpy as np
import pytest
from scipy import stats

from skmoe import MixtureOfExpertsRegressor
from skmoe._summary import format_column, format_table
from skmoe.datasets import load_npreg, load_tone

NUMBER = r"-?\d+\.\d+(?:e[-+]\d+)?"


@pytest.fixture(scope="module")
def npreg_poisson():
    x, y = load_npreg(target="yp", return_X_y=True)
    model = MixtureOfExpertsRegressor(
        2, expert="poisson", gate_alpha=0.0, tol=1e-12, max_iter=5000, n_init=5, random_state=0
    ).fit(x, y)
    return model, x, y


def _tables(text):
    """{heading: {row name: [cells]}} of every coefficient table, with its lines."""
    tables, heading = {}, None
    for line in text.splitlines():
        if line.startswith(("Gate:", "Expert")):
            heading = line
            tables[heading] = {"lines": []}
        elif heading and line.startswith("  "):
            tables[heading]["lines"].append(line)
            if "Estimate" not in line:
                name, *cells = line.split()
                tables[heading][name] = cells
        else:
            heading = None
    return tables


def test_summary_shows_every_number_of_flexmix_refit(npreg_poisson, reference_fits):
    # R: m <- flexmix(yp ~ x, data = NPreg, k = 2, model = FLXMRglm(family = "poisson"),
    #                 concomitant = FLXPmultinom(~ x)); summary(refit(m, method = "optim"))
    # (the numbers are in tests/data/reference_fits.json, "standard_errors")
    reference = reference_fits["standard_errors"][0]
    model, x, y = npreg_poisson
    text = model.summary(x, y)
    tables = _tables(text)
    # flexmix's A has the negative slope, B the positive one; our expert 0 has more mass
    names = {"A": f"Expert {int(np.argmin(model.expert_coef_[:, 0]))}"}
    names["B"] = f"Expert {1 - int(names['A'][-1])}"
    for component, heading in names.items():
        expected = reference["experts"][component]
        for row, printed in (("(Intercept)", "(Intercept)"), ("x", "x0")):
            cells = tables[heading][printed]
            estimate, se, z = (float(v) for v in cells[:3])
            assert estimate == pytest.approx(expected["coef"][row], abs=2e-4)
            assert se == pytest.approx(expected["se"][row], rel=1e-3)
            z_expected = expected["coef"][row] / expected["se"][row]
            assert z == pytest.approx(z_expected, rel=1e-3)
            # printed to the reference's precision: six decimals at least
            assert all(len(v.split(".")[1]) >= 6 for v in cells[:2])
            p_expected = 2 * stats.norm.sf(abs(z_expected))
            if p_expected < 2.2e-16:
                assert cells[3:5] == ["<", "2.2e-16"]
            else:
                assert float(cells[3]) == pytest.approx(p_expected, rel=1e-2)
    # the gate of B against A; ours is expert 1 against expert 0, so A against B if B is 0
    sign = 1.0 if names["B"] == "Expert 1" else -1.0
    gate = tables["Gate: expert 1 against expert 0"]
    for row, printed in (("(Intercept)", "(Intercept)"), ("x", "x0")):
        estimate, se, z, p = (float(v) for v in gate[printed][:4])
        assert p == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-3)
        assert sign * estimate == pytest.approx(reference["gate_B_vs_A"]["coef"][row], abs=1e-3)
        assert se == pytest.approx(reference["gate_B_vs_A"]["se"][row], rel=1e-3)
    # header: flexmix's logLik, df, AIC and BIC
    loglik = reference["loglik"]
    header = {key: float(value) for key, value in re.findall(r"(\S+) = (" + NUMBER + ")", text)}
    assert f"log-likelihood = {loglik:.4f}" in text and "df = 6" in text
    assert header["AIC"] == pytest.approx(-2 * loglik + 2 * 6, abs=1e-3)
    assert header["BIC"] == pytest.approx(-2 * loglik + 6 * np.log(200), abs=1e-3)
    assert header["ICL"] > header["BIC"] and "converged = True" in text
    # the component table: prior, size, post>0 and ratio, sizes summing to n
    components = text.split("Components\n")[1].split("\n\n")[0].splitlines()
    assert components[0].split() == ["prior", "size", "post>0", "ratio"]
    sizes = [float(line.split()[3]) for line in components[1:]]
    assert sum(sizes) == 200
    priors = [float(line.split()[2]) for line in components[1:]]
    assert sum(priors) == pytest.approx(1.0, abs=2e-3)


def test_summary_columns_are_aligned(npreg_poisson):
    model, x, y = npreg_poisson
    for table in _tables(model.summary(x, y)).values():
        header, *rows = table["lines"]
        # every heading's right edge is the right edge of its column's entries
        for heading in ("Estimate", "Std. Error", "z value", "Pr(>|z|)"):
            end = header.index(heading) + len(heading)
            for row in rows:
                assert row[end - 1] != " " and (end == len(row) or row[end] == " "), (row, heading)


def test_columns_never_collide_and_nan_prints_na():
    column = format_column([4.0805e-10, -96546800066.993, np.nan])
    assert column[2] == "NA"
    lines = format_table(["a", "b", "c"], [column, ["1", "2", "3"]], ("Estimate", "z"))
    for line in lines[1:]:
        assert len(line.split()) == 3  # name and two cells, always separated
    assert format_column([1.5, 0.025]) == ["1.5000000", "0.0250000"]  # 6 digits for 0.025


def test_missing_standard_errors_print_na(npreg_poisson, monkeypatch):
    model, x, y = npreg_poisson
    original = type(model).standard_errors

    def with_nan(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        result.se = result.se.copy()
        result.se[1] = np.nan
        return result

    monkeypatch.setattr(type(model), "standard_errors", with_nan)
    row = _tables(model.summary(x, y))["Gate: expert 1 against expert 0"]["x0"]
    assert row[1:4] == ["NA", "NA", "NA"]


def test_summary_as_frame():
    pd = pytest.importorskip("pandas")
    X, y = load_tone(return_X_y=True)
    model = MixtureOfExpertsRegressor(2, random_state=0).fit(X, y)
    frame = model.summary(X, y, as_frame=True)
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == ["estimate", "std_error", "z_value", "p_value"]
    assert frame.index.names == ["part", "expert", "name"]
    se = model.standard_errors(X, y)
    np.testing.assert_allclose(frame["std_error"].to_numpy(), se.se)
    assert np.isnan(frame.loc[("expert", 0, "variance"), "z_value"])
    assert frame.attrs["header"]["df"] == 8
    components = frame.attrs["components"]
    assert list(components.columns) == ["prior", "size", "post>0", "ratio"]
    assert components["size"].sum() == len(y)
