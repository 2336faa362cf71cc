"""State that a method keeps across steps — per-example and per-class tables — kept identical on every replica.

Under `tf.distribute`, each replica sees a different part of the global
batch. A table that every replica updated with its own rows would drift
apart between replicas; instead every replica first gathers (or sums) the
rows of the whole global batch and then applies the same update, and the
variable is created with `aggregation="only_first_replica"` so that the write
is taken once. On one device the gathers are no-ops.
"""

import tensorflow as tf


def _context():
    context = tf.distribute.get_replica_context()
    return context if context is not None and context.num_replicas_in_sync > 1 else None


def gather_across_replicas(*tensors):
    """The tensors of the whole global batch, concatenated along the batch axis in replica order."""
    context = _context()
    if context is None:
        return tensors
    return tuple(context.all_gather(t, axis=0) for t in tensors)


def sum_across_replicas(tensor):
    """The sum of `tensor` over replicas (itself on one device)."""
    context = _context()
    return tensor if context is None else context.all_reduce(tf.distribute.ReduceOp.SUM, tensor)


def table_variable(layer, name, shape, initializer="zeros"):
    """A non-trainable float32 table written once per step by all replicas alike."""
    return layer.add_weight(name=name, shape=shape, initializer=initializer, trainable=False, dtype="float32",
                            aggregation="only_first_replica")


def set_rows(table, rows, values):
    """`table[rows] = values` for the rows of the global batch (gathered by the caller).

    The whole table is rewritten (`tensor_scatter_nd_update`): memory traffic of
    one table per step, which for 50,000 examples × 100 classes is 20 MB.
    """
    table.assign(tf.tensor_scatter_nd_update(tf.convert_to_tensor(table), tf.reshape(rows, [-1, 1]), values))
