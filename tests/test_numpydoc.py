"""numpydoc validation of the public API (``skmoe``, ``skmoe.datasets``, ``skmoe.metrics``,
``skmoe.inspection``, with the public methods of their classes): every parameter
documented and described, in the signature's order, and every return value described."""

import inspect

import pytest

import skmoe
import skmoe.datasets
import skmoe.inspection
import skmoe.metrics
from skmoe._families import ExpertFamily

MODULES = (skmoe, skmoe.datasets, skmoe.metrics, skmoe.inspection)

validate = pytest.importorskip("numpydoc.validate").validate

#: Checks that must pass: parameters missing (PR01), unknown (PR02), out of order
#: (PR03), without a description (PR07) or with a malformed one (PR10), returns without a
#: section (RT01), no docstring at all (GL08).
CHECKS = {"PR01", "PR02", "PR03", "PR07", "PR10", "RT01", "GL08"}


def _public_callables():
    for module in MODULES:
        yield from _callables_of(module)


def _callables_of(module):
    for name in module.__all__:
        obj = getattr(module, name)
        yield f"{module.__name__}.{name}"
        # an expert family's methods are the family protocol, which the estimators call
        # and docs/extending.rst specifies; what a user calls is its constructor
        if inspect.isclass(obj) and not issubclass(obj, (Warning, ExpertFamily)):
            for method in sorted(dir(obj)):
                owner = next((c for c in obj.__mro__ if method in vars(c)), None)
                if (method.startswith("_") or owner is None
                        or not owner.__module__.startswith("skmoe")
                        or not inspect.isfunction(vars(owner)[method])):
                    continue
                yield f"{module.__name__}.{name}.{method}"


@pytest.mark.parametrize("name", sorted(set(_public_callables())))
def test_numpydoc_validation(name):
    errors = [f"{code}: {message}" for code, message in validate(name)["errors"]
              if code in CHECKS]
    assert not errors, "\n".join(errors)
