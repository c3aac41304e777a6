"""Datasets: planted gated mixtures (of rows, of panels) and small public reference data."""

from ._base import load_co2, load_mcycle, load_nodata, load_npreg, load_tone
from ._samples_generator import (
    make_moe_regression,
    make_panel_regression,
    make_regional_classification,
)

__all__ = [
    "load_co2",
    "load_mcycle",
    "load_nodata",
    "load_npreg",
    "load_tone",
    "make_moe_regression",
    "make_panel_regression",
    "make_regional_classification",
]
