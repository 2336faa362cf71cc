"""Training on several devices and machines."""

from keras_introspect.distribute.loop import fit_distributed, is_chief
from keras_introspect.distribute.strategies import STRATEGIES, get_strategy, synchronize_batchnorm

__all__ = ["STRATEGIES", "fit_distributed", "is_chief", "get_strategy", "synchronize_batchnorm"]
