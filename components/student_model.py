"""The distillation student: a 1-D CNN over word embeddings, on the regex tokenizer's ids.

Embedding -> one convolution per kernel width (ReLU) -> max over the real positions -> dropout ->
Dense(hidden, ReLU) -> dropout -> softmax. Every op is a TFLite builtin, and XNNPACK runs the
convolutions and dense layers: at SST-2's fitted length (56 ids) it answers in tens of
microseconds on one CPU thread.

The ReLU outputs are non-negative, so multiplying padded positions by zero before the max leaves
the max over the real positions; every sequence starts with `<START>`, so at least one position
is real.
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

import components  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from components.tokenizers import AWE_FEATURE


@keras.saving.register_keras_serializable(package="textclf")
class RealPositions(keras.layers.Layer):
    """1.0 where an id is a real token, 0.0 on `<PAD>` (id 0): [batch, seq, 1]."""

    def call(self, ids):
        return tf.cast(tf.minimum(ids, 1), tf.float32)[..., tf.newaxis]


def build_student(options, num_classes: int, vocab_size: int) -> keras.Model:
    ids = keras.Input(shape=(options.seq_len,), dtype=tf.int32, name=AWE_FEATURE)
    vectors = keras.layers.Embedding(vocab_size, options.wordvec_dim, name="emb")(ids)
    real = RealPositions(name="real")(ids)
    pooled = []
    for width in options.kernel_sizes:
        conv = keras.layers.Conv1D(options.filters, width, padding="same", activation="relu",
                                   name=f"conv{width}")(vectors)
        masked = keras.layers.Multiply(name=f"masked{width}")([conv, real])
        pooled.append(keras.layers.GlobalMaxPooling1D(name=f"max{width}")(masked))
    x = pooled[0] if len(pooled) == 1 else keras.layers.Concatenate(name="pooled")(pooled)
    x = keras.layers.Dropout(options.dropout_rate, name="dropout")(x)
    if options.hidden_dim:
        x = keras.layers.Dense(options.hidden_dim, activation="relu", name="fc")(x)
        x = keras.layers.Dropout(options.dropout_rate, name="dropout_fc")(x)
    probs = keras.layers.Dense(num_classes, activation="softmax", name="out")(x)
    return keras.Model(ids, probs, name="student")


def distillation_loss(kind: str, temperature: float):
    """Loss of student probabilities against a teacher's (or one-hot) probabilities [batch, classes].

    "kl": cross-entropy of the temperature-softened distributions (KL up to the teacher's entropy),
    scaled by T^2 so gradients keep their size; "mse": squared error between centred log-scores,
    the log-probability form of matching logits.
    """
    eps = 1e-7

    def soften(p):
        logits = tf.math.log(tf.clip_by_value(p, eps, 1.0)) / temperature
        return tf.nn.log_softmax(logits, axis=-1)

    def kl(y_true, y_pred):
        return -tf.reduce_sum(tf.exp(soften(y_true)) * soften(y_pred), axis=-1) * temperature ** 2

    def mse(y_true, y_pred):
        def centred(p):
            logp = tf.math.log(tf.clip_by_value(p, eps, 1.0))
            return logp - tf.reduce_mean(logp, axis=-1, keepdims=True)
        return tf.reduce_mean(tf.square(centred(y_true) - centred(y_pred)), axis=-1)

    loss = kl if kind == "kl" else mse
    loss.__name__ = f"distillation_{kind}"
    return loss
