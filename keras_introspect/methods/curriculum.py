"""ISL: knowledge distillation via instance-level sequence learning (Zhao et al., 2021).

The student learns from a teacher (here: `TeacherDistillationModel`) in
phases; at each phase boundary a *snapshot* of the student scores every
training instance, and the next phase feeds the instances as an easy→hard
sequence. The paper's exact pacing is not available to us; this is our
interpretation (docs/comparators.md):

* phase 0 (warm-up): all instances in random order, so that the first
  snapshot has learned something;
* phase p ≥ 1: the snapshot's per-instance cross-entropy ranks the training
  set; the easiest fraction f_p (rising linearly from `start_fraction` in
  phase 1 to 1 in the last phase) is fed in ascending-loss order, cycling
  through the sequence;
* every epoch has the same number of steps as one pass over the full
  training set, so the budget equals standard training's.

Use it with any library model and plain `model.fit`:

>>> curriculum = InstanceSequenceCurriculum(x_train, y_train, batch_size=128, epochs=30)
>>> model.fit(curriculum.dataset(), epochs=30, callbacks=[curriculum])

The dataset is one epoch long and its generator starts anew for every epoch,
after the callback's `on_epoch_begin` has set that epoch's order: prefetching
(tf.data's, or a distribution strategy's) cannot carry batches of the old
order into a new phase, so the sequence changes exactly at the boundary, on
one device and on several alike.
"""

import math

import keras
import numpy as np
import tensorflow as tf

from keras_introspect.data.pipeline import pad_crop_flip
from keras_introspect.errors import InputError


class InstanceSequenceCurriculum(keras.callbacks.Callback):
    """Reorders the training instances at phase boundaries, easy first.

    Args:
        x, y: the (normalized) training images and integer labels.
        batch_size: batch size.
        epochs: total epochs of the run (the phases divide them evenly).
        phases: number of phases, including the warm-up phase.
        start_fraction: fraction of instances used in phase 1.
        augment: pad-4 crop + flip on each batch (images ≥ 16 px).
        seed: seed of the warm-up order.
    """

    def __init__(self, x, y, batch_size, epochs, phases=4, start_fraction=0.5, augment=True, seed=0):
        super().__init__()
        if phases < 2 or phases > epochs:
            raise InputError(f"phases must be between 2 and epochs ({epochs}), got {phases}.")
        if not 0.0 < start_fraction <= 1.0:
            raise InputError(f"start_fraction must be in (0, 1], got {start_fraction}.")
        self.x, self.y = np.asarray(x, "float32"), np.asarray(y, "int32")
        self.batch_size, self.epochs, self.phases = int(batch_size), int(epochs), int(phases)
        self.start_fraction, self.augment = float(start_fraction), bool(augment) and min(self.x.shape[1:3]) >= 16
        self.steps_per_epoch = math.ceil(len(self.y) / self.batch_size)
        self.order = np.random.default_rng(seed).permutation(len(self.y))
        self._start = 0  # where this epoch's first batch starts in `order`
        self.history = []  # (epoch, fraction, mean snapshot loss of the selected instances)

    def phase_of(self, epoch):
        return min(epoch * self.phases // self.epochs, self.phases - 1)

    def fraction(self, phase):
        if phase == 0:
            return 1.0
        if self.phases == 2:
            return 1.0
        return self.start_fraction + (1.0 - self.start_fraction) * (phase - 1) / (self.phases - 2)

    def snapshot_losses(self):
        """Per-instance cross-entropy of the current model (inference mode)."""
        losses = []
        for start in range(0, len(self.y), 512):
            logits = self.model.logits(self.x[start:start + 512]).numpy()
            logits = logits - logits.max(-1, keepdims=True)
            log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
            losses.append(-log_p[np.arange(len(logits)), self.y[start:start + 512]])
        return np.concatenate(losses)

    def on_epoch_begin(self, epoch, logs=None):
        phase = self.phase_of(epoch)
        if epoch > 0 and self.phase_of(epoch - 1) == phase:
            # The same phase: the sequence goes on where the last epoch stopped.
            self._start = (self._start + self.steps_per_epoch * self.batch_size) % len(self.order)
            return
        self._start = 0
        if phase == 0:
            return
        losses = self.snapshot_losses()
        count = max(self.batch_size, int(round(self.fraction(phase) * len(self.y))))
        self.order = np.argsort(losses, kind="stable")[:count]
        self.history.append((epoch, count / len(self.y), float(losses[self.order].mean())))

    def _index_batches(self):
        """This epoch's batches of indices, cycling through `order` from `_start`."""
        for step in range(self.steps_per_epoch):
            first = self._start + step * self.batch_size
            yield np.take(self.order, np.arange(first, first + self.batch_size), mode="wrap").astype("int64")

    def dataset(self):
        """One epoch of batches in the current order (pass it to `fit` without `steps_per_epoch`)."""
        x, y = tf.constant(self.x), tf.constant(self.y)

        def gather(indices):
            images = tf.gather(x, indices)
            if self.augment:
                seeds = tf.random.uniform([tf.shape(indices)[0], 2], maxval=2**31 - 1, dtype=tf.int64)
                images = tf.map_fn(lambda a: pad_crop_flip(a[0], a[1]), (images, seeds), fn_output_signature=tf.float32)
            return images, tf.gather(y, indices)

        indices = tf.data.Dataset.from_generator(
            self._index_batches, output_signature=tf.TensorSpec((self.batch_size,), tf.int64)
        )
        indices = indices.apply(tf.data.experimental.assert_cardinality(self.steps_per_epoch))
        return indices.map(gather, num_parallel_calls=tf.data.AUTOTUNE).prefetch(1)
