"""Keras layers shared by the dlsuite apps."""

from dlsuite.shared.layers.contrast import GlobalContrastNormalization, LocalContrastNormalization

__all__ = ["GlobalContrastNormalization", "LocalContrastNormalization"]
