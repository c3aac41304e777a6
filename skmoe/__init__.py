"""skmoe: scikit-learn-compatible mixtures of experts fitted by EM."""

from ._base import DegenerateFitWarning
from ._classifier import MixtureOfExpertsClassifier
from ._families import StudentT, binomial_target
from ._hierarchical import (
    HierarchicalMixtureOfExpertsClassifier,
    HierarchicalMixtureOfExpertsRegressor,
    export_text,
)
from ._regressor import MixtureOfExpertsRegressor
from ._selection import select_n_experts

__all__ = [
    "binomial_target",
    "DegenerateFitWarning",
    "HierarchicalMixtureOfExpertsClassifier",
    "HierarchicalMixtureOfExpertsRegressor",
    "MixtureOfExpertsClassifier",
    "MixtureOfExpertsRegressor",
    "export_text",
    "select_n_experts",
    "StudentT",
]
__version__ = "0.1.0"
