"""State that a method keeps across steps — per-example and per-class tables — kept identical on every replica.

Under `tf.distribute`, each replica sees a different part of the global
batch. A table that every replica updated with its own rows would drift
apart between replicas; instead every replica first gathers (or sums) the
rows of the whole global batch and then applies the same update, and the
variable is created with `aggregation="only_first_replica"` so that the write
is taken once. On one device the gathers are no-ops.
"""

import tensorflow as tf

from keras_introspect.errors import InputError


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


def split_example_ids(x, num_examples):
    """`{"images": x, "example_id": i}` → `(x, i)`, with an error saying how to provide the ids.

    The ids are checked to lie in `[0, num_examples)` before any table is read with them: an
    out-of-range gather returns zeros silently on GPUs.
    """
    if not isinstance(x, dict) or "example_id" not in x or "images" not in x:
        raise InputError(
            "This method keeps state per training example: give its training data as "
            '({"images": x, "example_id": index}, y) — e.g. DataSplits.train_with_ids, or '
            "tf.data.Dataset.from_tensor_slices((x, y, np.arange(len(y)))).map(ki.data.with_example_id)."
        )
    ids = tf.cast(tf.reshape(x["example_id"], [-1]), tf.int32)
    checks = [tf.debugging.assert_non_negative(ids, message="example_id must be >= 0"),
              tf.debugging.assert_less(ids, num_examples, message=f"example_id must be < num_examples "
                                       f"({num_examples}, the training set's size): pass the right num_examples")]
    with tf.control_dependencies([c for c in checks if c is not None]):
        return x["images"], tf.identity(ids)
