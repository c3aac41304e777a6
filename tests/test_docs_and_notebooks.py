"""The documentation and the notebooks.

* the Sphinx documentation builds with warnings as errors, and its API reference lists
  every public name;
* the worked example of the "Adding an expert family" page (docs/examples/) runs and is
  right;
* every notebook in notebooks/ executes from top to bottom, in its reduced mode
  (``SKMOE_NOTEBOOK_QUICK=1``), without an error and without a warning from skmoe.

These are the slowest tests of the suite (a few minutes together on two cores). Deselect
them with ``--deselect tests/test_docs_and_notebooks.py`` or ``-k "not notebook and not
docs"``. They skip, with the reason, when the packages they need (sphinx, numpydoc,
nbformat, nbclient, ipykernel, matplotlib, pandas) are not installed.
"""

import importlib.util
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_monotone

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
EXAMPLE = DOCS / "examples" / "exponential_experts.py"


def _require(*modules):
    for module in modules:
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed (it comes with the 'test' or 'dask' extra)")


# ---------------------------------------------------------------------------- the docs
def test_docs_build_without_warnings(tmp_path):
    _require("sphinx", "numpydoc")
    command = [
        sys.executable,
        "-m",
        "sphinx",
        "-W",
        "--keep-going",
        "-q",
        "-b",
        "html",
        "-d",
        str(tmp_path / "doctrees"),
        str(DOCS),
        str(tmp_path / "html"),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, (
        f"sphinx-build failed (warnings are errors):\n{result.stdout}\n{result.stderr}"
    )
    assert (tmp_path / "html" / "api.html").exists()


def test_api_reference_lists_every_public_name():
    import skmoe
    import skmoe.datasets
    import skmoe.inspection
    import skmoe.metrics

    listed = set(re.findall(r"^\s{3}(\w+)\s*$", (DOCS / "api.rst").read_text(), re.M))
    public = set(skmoe.__all__) | set(skmoe.datasets.__all__)
    public |= set(skmoe.metrics.__all__) | set(skmoe.inspection.__all__)
    missing = sorted(public - listed)
    assert not missing, f"docs/api.rst does not list these public names: {missing}"
    unknown = sorted(listed - public)
    assert not unknown, f"docs/api.rst lists names that are not public: {unknown}"


# -------------------------------------------- the worked example of "Adding a family"
@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("exponential_experts", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_log_prob_matches_scipy(example):
    from scipy import stats

    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 2))
    y = rng.exponential(size=50)
    family = example.ExponentialExperts(3)
    params = {"coef": rng.normal(size=(3, 3))}
    mean = np.exp(params["coef"][:, :1] + params["coef"][:, 1:] @ X.T)
    assert np.allclose(family.log_prob(X, y, params), stats.expon.logpdf(y, scale=mean))
    assert np.allclose(family.mean(X, params), mean)
    assert np.allclose(family.distribution(mean).mean(), mean)


def test_example_derivatives_match_finite_differences(example):
    rng = np.random.default_rng(1)
    y = rng.exponential(size=20)
    eta = rng.normal(size=(2, 20))
    family = example.ExponentialExperts(2)
    _, d1, minus_d2 = family.derivatives(y, eta, {}, order=2)
    h = 1e-5

    def log_density(e):
        return family.derivatives(y, e, {}, order=0)[0]

    assert np.allclose(d1, (log_density(eta + h) - log_density(eta - h)) / (2 * h), atol=1e-6)
    assert np.allclose(
        minus_d2,
        -(log_density(eta + h) - 2 * log_density(eta) + log_density(eta - h)) / h**2,
        rtol=1e-4,
        atol=1e-4,
    )


def test_example_single_expert_equals_gamma_glm(example):
    from sklearn.linear_model import GammaRegressor

    rng = np.random.default_rng(2)
    X = rng.normal(size=(400, 3))
    y = rng.exponential(np.exp(0.3 + X @ np.array([0.5, -0.2, 0.1])))
    coef = example.ExponentialExperts(1).m_step(X, y, np.ones((1, 400)))["coef"][0]
    glm = GammaRegressor(alpha=0.0, solver="newton-cholesky", tol=1e-12, max_iter=1000)
    glm.fit(X, y)
    assert np.allclose(coef[0], glm.intercept_, atol=1e-6)
    assert np.allclose(coef[1:], glm.coef_, atol=1e-6)


def test_example_mixture_recovers_planted_regimes(example):
    X, y = example.make_exponential_regimes(3000, random_state=0)
    model = example.ExponentialMixtureRegressor(n_experts=2, n_init=3, random_state=0)
    model.fit(X, y)
    assert model.converged_
    order = np.argsort(model.expert_intercept_)
    assert np.allclose(model.expert_intercept_[order], [-0.5, 1.0], atol=0.25)
    assert np.allclose(model.expert_coef_[order, 0], [-0.3, 0.5], atol=0.2)
    trace = model.objective_trace_
    assert_monotone(trace, rtol=1e-9)
    assert model.predict(X[:5]).shape == (5,)


# ----------------------------------------------------------------------- the notebooks
def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebook found in notebooks/"


#: A warning as Python prints it: ``path:line: Category: message``.
_WARNING_LINE = re.compile(r"^(?P<path>.+?):\d+: (?P<category>\w*Warning): ", re.M)


def skmoe_warnings(stderr):
    """The warning lines of a notebook's stderr that come from skmoe: skmoe attributes its
    warnings to the first caller outside the package (the notebook's cell, an ipykernel
    file), and a warning raised inside skmoe names a skmoe file."""
    return [
        match.group(0)
        for match in _WARNING_LINE.finditer(stderr)
        if re.search(r"skmoe\S*\.py$|ipykernel|<ipython-input", match.group("path"))
    ]


def _execute(notebook, directory, monkeypatch):
    """Run ``notebook`` in a kernel in its quick mode; return what its cells printed to
    stderr."""
    from nbclient import NotebookClient

    # the kernel is a child process: it inherits this environment
    monkeypatch.setenv("SKMOE_NOTEBOOK_QUICK", "1")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    monkeypatch.setenv(
        "PYTHONPATH",
        os.pathsep.join(
            [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        ),
    )
    client = NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(directory)}},
    )
    # Warnings of the Jupyter machinery in this process (deprecations of zmq, asyncio,
    # jupyter_core...) are not the notebook's; its own come back as stderr output.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        client.execute()
    return "".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("name") == "stderr"
    )


def test_the_notebook_guard_catches_a_skmoe_warning(tmp_path, monkeypatch):
    _require("nbformat", "nbclient", "ipykernel", "matplotlib", "pandas")
    import nbformat

    notebook = nbformat.v4.new_notebook()
    notebook.cells.append(nbformat.v4.new_code_cell(
        "import numpy as np\n"
        "from skmoe import MixtureOfExpertsRegressor\n"
        "X = np.linspace(-1, 1, 100)[:, None]\n"
        "y = np.where(X[:, 0] < 0, 0.0, 5.0) + 0.01 * np.sin(40 * X[:, 0])\n"
        "MixtureOfExpertsRegressor(2, gate_alpha=0.0, expert_features=[],\n"
        "                          random_state=0).fit(X, y)"
    ))
    stderr = _execute(notebook, tmp_path, monkeypatch)
    caught = skmoe_warnings(stderr)
    assert len(caught) == 1 and "DegenerateFitWarning" in caught[0], stderr
    assert not skmoe_warnings("/site-packages/zmq/x.py:3: DeprecationWarning: zmq\n")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, monkeypatch):
    _require("nbformat", "nbclient", "ipykernel", "matplotlib", "pandas")
    if "large_data" in path.stem:
        _require("dask", "distributed", "dask_ml")  # the 'dask' extra
    import nbformat

    stderr = _execute(nbformat.read(path, as_version=4), NOTEBOOK_DIR, monkeypatch)
    found = skmoe_warnings(stderr)
    assert not found, f"{path.name} printed warnings from skmoe:\n{stderr}"
