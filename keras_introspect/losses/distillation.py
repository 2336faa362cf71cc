"""Per-example loss terms and their distribution-correct reduction.

Terms are computed per example so that sample weights apply uniformly and
the batch reduction happens once, in `reduce_per_example`, following the
semantics of Keras's `"sum_over_batch_size"` reduction under `tf.distribute`.
"""

import tensorflow as tf


def cross_entropy(targets, logits):
    """Per-example cross-entropy H(targets, softmax(logits)), over the last (class) axis.

    Args:
        targets: `(..., classes)` distributions (one-hot for hard labels).
        logits: `(..., classes)` pre-softmax scores.

    Returns:
        `(...)` cross-entropies.
    """
    logits = tf.cast(logits, tf.float32)
    return -tf.reduce_sum(tf.cast(targets, tf.float32) * tf.nn.log_softmax(logits), axis=-1)


MASKED_LOGIT = -1e9  # finite, so that 0 · log p stays 0 at excluded classes


def distillation_kl(soft_targets, logits, temperature, exclude=None):
    """Per-example T² · KL(q ‖ softmax(z / T)).

    The T² factor keeps the gradient scale of the soft term independent of T
    (Hinton et al., 2015).

    Args:
        soft_targets: `(..., classes)` target distributions q.
        logits: `(..., classes)` student logits z.
        temperature: T.
        exclude: optional int `(...)` class per example left out of the
            student's softmax (q must be 0 there): the non-target KL of
            Decoupled KD.

    Returns:
        `(...)` divergences, over the last (class) axis.
    """
    logits = tf.cast(logits, tf.float32)
    q = tf.cast(soft_targets, tf.float32)
    if exclude is not None:
        mask = tf.one_hot(exclude, tf.shape(logits)[-1], on_value=True, off_value=False)
        logits = tf.where(mask, MASKED_LOGIT, logits)
    log_p = tf.nn.log_softmax(logits / temperature)
    kl = tf.reduce_sum(tf.math.xlogy(q, q) - q * log_p, axis=-1)
    return (temperature**2) * kl


def entropy_of_logits(logits):
    """Per-example entropy of softmax(logits) (the confidence penalty's term)."""
    log_p = tf.nn.log_softmax(tf.cast(logits, tf.float32))
    return -tf.reduce_sum(tf.exp(log_p) * log_p, axis=-1)


def reduce_per_example(values, sample_weight=None):
    """The replica-local share of the global mean of `values`.

    Sums `values * sample_weight` and divides by the local batch size, then by
    the number of replicas in sync, exactly as Keras's "sum_over_batch_size"
    losses do. Summing these shares over replicas (what the optimizer's
    all-reduce does with gradients) gives the mean over the global batch, so
    training on N replicas equals training on one device with the same global
    batch. A plain `reduce_mean` here would make gradients N× too large.
    """
    values = tf.cast(values, tf.float32)
    if sample_weight is not None:
        weight = tf.cast(tf.reshape(sample_weight, [-1]), tf.float32)
        values = values * weight
    local = tf.math.divide_no_nan(tf.reduce_sum(values), tf.cast(tf.size(values), tf.float32))
    return local / tf.cast(num_replicas(), tf.float32)


def num_replicas():
    return tf.distribute.get_strategy().num_replicas_in_sync
