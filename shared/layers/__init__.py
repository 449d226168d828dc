"""Keras layers shared by the dlsuite apps."""

from dlsuite.shared.layers.contrast import GlobalContrastNormalization, LocalContrastNormalization
from dlsuite.shared.layers.mixture_of_experts import MixtureOfExperts
from dlsuite.shared.layers.vocabulary_outputs import (
    OUTPUT_KINDS,
    FullSoftmax,
    HierarchicalSoftmax,
    NoiseContrastiveSoftmax,
    RankingSoftmax,
    SampledSoftmax,
    ShortlistSoftmax,
    VocabularyOutput,
    make_vocabulary_output,
)

__all__ = [
    "OUTPUT_KINDS",
    "FullSoftmax",
    "GlobalContrastNormalization",
    "HierarchicalSoftmax",
    "LocalContrastNormalization",
    "MixtureOfExperts",
    "NoiseContrastiveSoftmax",
    "RankingSoftmax",
    "SampledSoftmax",
    "ShortlistSoftmax",
    "VocabularyOutput",
    "make_vocabulary_output",
]
