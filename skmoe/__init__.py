"""skmoe: scikit-learn-compatible mixtures of experts fitted by EM."""

from ._classifier import MixtureOfExpertsClassifier
from ._regressor import MixtureOfExpertsRegressor

__all__ = ["MixtureOfExpertsClassifier", "MixtureOfExpertsRegressor"]
__version__ = "0.1.0"
