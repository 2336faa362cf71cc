"""Standard training and the two output regularizers.

* standard: cross-entropy with the labels.
* label smoothing (Szegedy et al., 2016): targets (1 - e)·y + e / C.
* confidence penalty (Pereyra et al., 2017): CE - b · H(softmax(z)).
"""

import keras
from keras_introspect import losses as loss_lib
from keras_introspect.methods import registry
from keras_introspect.methods.base import ClassifierTrainer
from keras_introspect.options import Option


@keras.saving.register_keras_serializable(package="keras_introspect")
class StandardModel(ClassifierTrainer):
    """Cross-entropy training, optionally with label smoothing or a confidence penalty.

    Args:
        backbone: Functional or Sequential classifier (logits or softmax).
        label_smoothing: e, the mass spread uniformly over all classes.
        confidence_penalty: b, the weight of the negative output entropy.

    Example:
    >>> model = ki.StandardModel(ki.architectures.resnet20(10), label_smoothing=0.1)
    >>> model.compile(optimizer="sgd", metrics=["accuracy"])
    """

    TRAIN_TERMS = ("cross_entropy", "output_entropy")
    OPTIONS = {
        "label_smoothing": Option(0.0, float, "mass spread uniformly over all classes", range="unit-open"),
        "confidence_penalty": Option(0.0, float, "weight of the output entropy", range="non-negative"),
    }

    def __init__(self, backbone, label_smoothing=0.0, confidence_penalty=0.0, **kwargs):
        super().__init__(backbone, **kwargs)
        checked = self._check_options(label_smoothing=label_smoothing, confidence_penalty=confidence_penalty)
        self.label_smoothing = checked["label_smoothing"]
        self.confidence_penalty = checked["confidence_penalty"]

    def compute_terms(self, x, targets, labels, tape):
        del labels, tape
        logits = self.logits(x, training=True)
        # The logged cross-entropy is always against the given labels, so
        # that it compares across methods; the smoothed one is what trains.
        ce = loss_lib.cross_entropy(targets, logits)
        loss = ce
        if self.label_smoothing:
            smoothed = targets * (1.0 - self.label_smoothing) + self.label_smoothing / self.num_classes
            loss = loss_lib.cross_entropy(smoothed, logits)
        entropy = loss_lib.entropy_of_logits(logits)
        if self.confidence_penalty:
            loss = loss - self.confidence_penalty * entropy
        return logits, loss, {"cross_entropy": ce, "output_entropy": entropy}

    def get_config(self):
        return {
            **super().get_config(),
            "label_smoothing": self.label_smoothing,
            "confidence_penalty": self.confidence_penalty,
        }


registry.register("standard", StandardModel, "cross-entropy with the labels", only=(), role="baseline")
registry.register("label_smoothing", StandardModel, "cross-entropy with uniformly smoothed labels",
                  only=("label_smoothing",), overrides={"label_smoothing": 0.1})
registry.register("confidence_penalty", StandardModel, "cross-entropy minus a multiple of the output entropy",
                  only=("confidence_penalty",), overrides={"confidence_penalty": 0.1})
