"""keras-introspect: classifiers that learn from their own explanations.

Example:
>>> import keras, keras_introspect as ki
>>> model = ki.IntrospectiveModel(ki.architectures.resnet20(num_classes=10))
>>> model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), metrics=["accuracy"])
>>> model.fit(train_ds, validation_data=test_ds, epochs=30)
"""

from keras_introspect import (
    architectures,
    benchmark,
    data,
    distribute,
    explainers,
    export,
    faithfulness,
    losses,
    methods,
    metrics,
    options,
    plots,
    recipes,
    soft_targets,
    transfer,
)
# Every method's model class at the top level (`ki.IntrospectiveModel`): a new method needs no edit here.
from keras_introspect.methods import *  # noqa: F401,F403
from keras_introspect.soft_targets import ExplanationSoftTargets
from keras_introspect.version import __version__

__all__ = [
    *methods.__all__,
    "ExplanationSoftTargets",
    "__version__",
    "architectures",
    "benchmark",
    "data",
    "distribute",
    "explainers",
    "export",
    "faithfulness",
    "losses",
    "methods",
    "metrics",
    "options",
    "plots",
    "recipes",
    "soft_targets",
    "transfer",
]
