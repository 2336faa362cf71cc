"""Loss terms shared by every training method."""

from keras_introspect.losses.distillation import (
    cross_entropy,
    distillation_kl,
    entropy_of_logits,
    num_replicas,
    reduce_per_example,
)

__all__ = [
    "cross_entropy",
    "distillation_kl",
    "entropy_of_logits",
    "num_replicas",
    "reduce_per_example",
]
