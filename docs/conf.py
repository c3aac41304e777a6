"""Sphinx configuration of the skmoe documentation.

Build with ``sphinx-build -W -b html docs docs/_build/html`` (warnings are errors). Nothing
is executed at build time except the import of skmoe for autodoc; the notebooks are linked,
not run.
"""

import os
import re
import sys

sys.path.insert(0, os.path.abspath(".."))

import skmoe  # noqa: E402

project = "skmoe"
author = "The skmoe developers"
copyright = "The skmoe developers"
version = release = skmoe.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "examples", ".gitignore"]
root_doc = "index"

autosummary_generate = True
autodoc_default_options = {"member-order": "groupwise"}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

html_theme = "alabaster"
html_title = f"skmoe {release}"
html_static_path = []
html_theme_options = {
    "description": "Mixtures of experts fitted by EM, scikit-learn compatible",
    "fixed_sidebar": True,
}


# Methods inherited from scikit-learn (score, get_params, set_fit_request, ...) keep their
# docstrings, whose :ref: and :term: roles point into scikit-learn's own documentation.
# Without intersphinx (no network at build time) those targets do not exist here, so the
# roles are turned into their plain text.
_SKLEARN_ROLE = re.compile(r":(?:ref|term):`([^`<]*?)\s*(?:<([^`>]*)>)?`")


def _plain_sklearn_roles(app, what, name, obj, options, lines):
    module = getattr(obj, "__module__", None) or ""
    if not module.startswith("sklearn"):
        return
    lines[:] = [_SKLEARN_ROLE.sub(lambda m: m.group(1) or m.group(2), line) for line in lines]


def setup(app):
    app.connect("autodoc-process-docstring", _plain_sklearn_roles)
