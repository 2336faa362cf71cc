"""Training methods: each a `keras.Model` wrapping a classifier backbone."""

from keras_introspect.methods.base import ClassifierTrainer, EpochCounter
from keras_introspect.methods.introspective import IntrospectiveModel
from keras_introspect.methods.standard import StandardModel

__all__ = ["ClassifierTrainer", "EpochCounter", "IntrospectiveModel", "StandardModel"]
