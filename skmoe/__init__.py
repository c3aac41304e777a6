"""skmoe: scikit-learn-compatible mixtures of experts fitted by EM."""

from ._regressor import MixtureOfExpertsRegressor

__all__ = ["MixtureOfExpertsRegressor"]
__version__ = "0.1.0"
