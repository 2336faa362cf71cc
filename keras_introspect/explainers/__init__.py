"""Gradient-based explainers: every class in one call, in-graph and batched.

| class | source | passes | training step |
|---|---|---|---|
| `CAM` | last spatial layer (GAP → Dense head) | 0 backward | yes (cheapest) |
| `GradCAM` | any spatial layer | 1 backward per class through the head | yes |
| `VanillaGradients` | input | 1 backward per class through the network | yes |
| `GradientInput` | input | as above | yes |
| `SmoothGrad` | input | `num_samples` forwards | offline |
| `IntegratedGradients` | input | `steps` forwards | offline |
"""

import keras

from keras_introspect.explainers.base import Explainer, normalize_classes, spatial_reduce
from keras_introspect.explainers.cam import CAM
from keras_introspect.explainers.grad_cam import GradCAM
from keras_introspect.explainers.gradient_input import GradientInput
from keras_introspect.explainers.integrated_gradients import IntegratedGradients
from keras_introspect.explainers.smoothgrad import SmoothGrad
from keras_introspect.explainers.vanilla_gradients import VanillaGradients
from keras_introspect.errors import InputError

NAMES = {
    "cam": CAM,
    "grad_cam": GradCAM,
    "vanilla_gradients": VanillaGradients,
    "gradient_input": GradientInput,
    "smoothgrad": SmoothGrad,
    "integrated_gradients": IntegratedGradients,
}
ALIASES = {**NAMES, "gradcam": GradCAM, "gradients": VanillaGradients, "saliency": VanillaGradients}
# The explainers cheap enough for a training step (one forward pass): what `IntrospectiveModel` accepts.
TRAINING_NAMES = tuple(name for name, cls in NAMES.items() if not cls.offline_only)


def get(identifier):
    """An explainer from a name (`"cam"`, `"grad_cam"`, ...), config or instance."""
    if isinstance(identifier, Explainer):
        return identifier
    if isinstance(identifier, str):
        key = identifier.lower().replace("-", "_")
        if key not in ALIASES:
            raise InputError(
                f"Unknown explainer {identifier!r}; choose one of {sorted(set(ALIASES))}."
            )
        return ALIASES[key]()
    if isinstance(identifier, dict):
        return keras.saving.deserialize_keras_object(identifier)
    raise InputError(f"Cannot interpret {identifier!r} as an explainer.")


__all__ = [
    "CAM",
    "Explainer",
    "GradCAM",
    "GradientInput",
    "IntegratedGradients",
    "NAMES",
    "SmoothGrad",
    "TRAINING_NAMES",
    "VanillaGradients",
    "get",
    "normalize_classes",
    "spatial_reduce",
]
