"""The one place that imports scikit-learn's private helpers, so a release change touches
one file."""

from sklearn.base import _fit_context  # noqa: F401
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions  # noqa: F401
from sklearn.utils.validation import _check_sample_weight, validate_data  # noqa: F401
