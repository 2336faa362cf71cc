"""Soft labels built from the similarity of a model's class explanations."""

from keras_introspect.soft_targets import similarity
from keras_introspect.soft_targets.targets import (
    FORMS,
    ExplanationSoftTargets,
    entropy,
    scatter_to_classes,
)

__all__ = ["FORMS", "ExplanationSoftTargets", "entropy", "scatter_to_classes", "similarity"]
