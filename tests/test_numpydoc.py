"""numpydoc validation of the public API of ``skmoe`` (the estimators and their methods,
``export_text``, ``select_n_experts``): every parameter documented and described, in the
signature's order, and every return value described."""

import inspect

import pytest

import skmoe

validate = pytest.importorskip("numpydoc.validate").validate

#: Checks that must pass: parameters missing (PR01), unknown (PR02), out of order
#: (PR03), without a description (PR07) or with a malformed one (PR10), returns without a
#: section (RT01), no docstring at all (GL08).
CHECKS = {"PR01", "PR02", "PR03", "PR07", "PR10", "RT01", "GL08"}


def _public_callables():
    for name in skmoe.__all__:
        obj = getattr(skmoe, name)
        yield f"skmoe.{name}"
        if inspect.isclass(obj) and not issubclass(obj, Warning):
            for method in sorted(dir(obj)):
                owner = next((c for c in obj.__mro__ if method in vars(c)), None)
                if (method.startswith("_") or owner is None
                        or not owner.__module__.startswith("skmoe")
                        or not inspect.isfunction(vars(owner)[method])):
                    continue
                yield f"skmoe.{name}.{method}"


@pytest.mark.parametrize("name", sorted(set(_public_callables())))
def test_numpydoc_validation(name):
    errors = [f"{code}: {message}" for code, message in validate(name)["errors"]
              if code in CHECKS]
    assert not errors, "\n".join(errors)
