"""The Average-Word-Embedding classifier.

Model Maker averages over all `seq_len` positions, padding included, so a short sentence's
embedding is mostly the `<PAD>` vector. We average over the real tokens only, which is both
what the issue asks for and a large part of the accuracy gain on short texts like SST-2.
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

import components  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from components.options import AverageWordEmbeddingModelOptions

AWE_INPUT = "input_ids"


class CountingRows(keras.constraints.Constraint):
    """Holds the `<PAD>` row at zero and the last column of every other row at one.

    Summing the looked-up rows then yields, in one reduction, the sum of the real tokens'
    vectors and (in the last column) how many real tokens there are.
    """

    def __call__(self, weights):
        rows = tf.shape(weights)[0]
        counting = tf.concat([tf.zeros([1, 1], weights.dtype), tf.ones([rows - 1, 1], weights.dtype)], axis=0)
        real = tf.concat([weights[:, :-1], counting], axis=1)
        return tf.concat([tf.zeros_like(real[:1]), real[1:]], axis=0)


class CountingRowsInitializer(keras.initializers.Initializer):
    """Keras' default uniform embedding initialisation, shaped by `CountingRows`."""

    def __init__(self, seed=None):
        self.seed = seed

    def __call__(self, shape, dtype=None, **kwargs):
        weights = keras.initializers.RandomUniform(-0.05, 0.05, seed=self.seed)(shape, dtype=dtype)
        return CountingRows()(weights)

    def get_config(self):
        return {"seed": self.seed}


class MaskedAverage(keras.layers.Layer):
    """Mean of token vectors over the real tokens (`<PAD>`, id 0, never counts).

    With `CountingRows` on the embedding, one sum over positions gives both the total and the
    token count (last column), so the average is total / count. The count is at least one,
    since every sequence starts with `<START>` (our tokenizer and MediaPipe's both put it
    there); the last feature is therefore the constant 1.

    The count is taken with a slice, not a gather: TFLite's XNNPACK delegate runs SUM, SLICE
    and DIV, so everything after the embedding lookup stays in one delegate partition. A
    gather there splits the graph in two and costs about 8 % of the AWE model's latency.
    """

    def call(self, vectors):
        total = tf.reduce_sum(vectors, axis=1)
        # An explicit batch size: XNNPACK takes no -1 in a SLICE (the export's batch is 1).
        count = tf.slice(total, [0, vectors.shape[-1] - 1], tf.stack([tf.shape(total)[0], 1]))
        return total / count


def build_awe_model(options: AverageWordEmbeddingModelOptions, num_classes: int,
                    vocab_size: int | None = None) -> keras.Model:
    """Embedding -> masked average -> Dense(wordvec_dim, relu) -> dropout -> softmax.

    One of the `wordvec_dim` embedding columns is the token counter (see `MaskedAverage`), so
    the size and layout match Model Maker's model exactly.

    `vocab_size` is the size of the built vocabulary (specials included) when it is smaller
    than `options.vocab_size`, so no embedding rows are wasted on ids that never occur.
    """
    rows = vocab_size if vocab_size is not None else options.vocab_size
    # Short model and layer names: they become the .tflite's tensor names, bytes in every export
    # (the default AWE export is held to Model Maker's 776 KB).
    ids = keras.Input(shape=(options.seq_len,), dtype=tf.int32, name=AWE_INPUT)
    vectors = keras.layers.Embedding(rows, options.wordvec_dim, embeddings_initializer=CountingRowsInitializer(),
                                     embeddings_constraint=CountingRows(), name="emb")(ids)
    pooled = MaskedAverage(name="avg")(vectors)
    hidden = keras.layers.Dense(options.wordvec_dim, activation="relu", name="fc")(pooled)
    hidden = keras.layers.Dropout(options.dropout_rate, name="dropout")(hidden)
    probs = keras.layers.Dense(num_classes, activation="softmax", name="out")(hidden)
    return keras.Model(ids, probs, name="m")
