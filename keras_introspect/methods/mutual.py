"""Deep mutual learning (Zhang et al., CVPR 2018): peers teach each other.

Each peer k minimizes CE(y, p_k) + mean_{l != k} KL(p_l ‖ p_k), with the
other peers' outputs held constant in its term; all peers train in one
step on the same batch. The first peer is the model (`call`, `predict`,
export); `ensemble_predict` averages all peers' probabilities.
"""

import keras
import tensorflow as tf

from keras_introspect import backbones
from keras_introspect import losses as loss_lib
from keras_introspect import options
from keras_introspect.errors import InputError
from keras_introspect.methods import registry
from keras_introspect.methods.base import ClassifierTrainer


@keras.saving.register_keras_serializable(package="keras_introspect")
class MutualLearningModel(ClassifierTrainer):
    """Train `num_peers` classifiers together, each distilling the others.

    Args:
        backbone: peer 1, the model that is evaluated and exported.
        peers: the other peers (classifiers with the same classes); default:
            `num_peers - 1` fresh clones of `backbone` (new initialization).
        num_peers: used when `peers` is not given.
        temperature: T of the mutual KL (1 in the paper).

    Example:
    >>> model = ki.MutualLearningModel(ki.architectures.resnet20())
    """

    TRAIN_TERMS = ("cross_entropy", "distillation", "peer_cross_entropy")
    NESTED_OBJECTS = ("backbone", "peers")
    OPTIONS = {
        "num_peers": options.Option(2, int, "number of peers trained together", minimum=2),
        "temperature": options.distillation_temperature(1.0),
    }

    def __init__(self, backbone, peers=None, num_peers=2, temperature=1.0, **kwargs):
        super().__init__(backbone, **kwargs)
        checked = self._check_options(num_peers=num_peers, temperature=temperature)
        if peers is None:
            peers = [keras.models.clone_model(backbone) for _ in range(checked["num_peers"] - 1)]
        for peer in peers:
            if backbones.check_classifier(peer) != self.num_classes:
                raise InputError("Every peer must have as many classes as the backbone.")
        self.peers = list(peers)
        self._peer_views = backbones.Untracked([backbones.tap_model(peer) for peer in self.peers])
        self.temperature = checked["temperature"]

    def compute_terms(self, x, targets, labels, tape):
        del labels, tape
        views = [self.view()] + self._peer_views.value
        all_logits = [backbones.float32_logits(backbones.call_taps(v, x, True)[-1]) for v in views]
        probs = [tf.stop_gradient(tf.nn.softmax(z / self.temperature)) for z in all_logits]
        total, terms = 0.0, {}
        for k, logits in enumerate(all_logits):
            ce = loss_lib.cross_entropy(targets, logits)
            kl = tf.add_n([
                loss_lib.distillation_kl(probs[l], logits, self.temperature)
                for l in range(len(all_logits)) if l != k
            ]) / float(len(all_logits) - 1)
            total = total + ce + kl
            if k == 0:
                terms.update(cross_entropy=ce, distillation=kl)
            elif k == 1:
                terms["peer_cross_entropy"] = ce
        return all_logits[0], total, terms

    def ensemble_predict(self, x, **kwargs):
        """Mean of all peers' probabilities."""
        outputs = [self.predict(x, **kwargs)] + [peer.predict(x, **kwargs) for peer in self.peers]
        if not self.has_softmax:
            outputs = [keras.ops.softmax(o) for o in outputs]
        return keras.ops.mean(keras.ops.stack(outputs), axis=0)

    def get_config(self):
        return {
            **super().get_config(),
            "peers": [keras.saving.serialize_keras_object(p) for p in self.peers],
            "temperature": self.temperature,
        }


registry.register("dml", MutualLearningModel, "deep mutual learning: peers teach each other", role="peer")
