"""The BERT classifier and what fine-tuning it needs: optimizer, schedule, length-bucketed batches.

The model is Model Maker's (encoder -> dropout -> dense softmax on the pooled output), with one
addition: a masked mean of `sequence_output` as the pooled vector, for encoders whose pooler was
never trained (all-MiniLM-L6-v2).

Batches are grouped by length and trimmed to their longest example: on a CPU, BERT's cost grows
with the padded length, and most classification texts are far shorter than `seq_len`. Every
operation masks padding, so a trimmed batch and the same batch padded to `seq_len` give the same
outputs; export still traces the model at the fixed `seq_len`.
"""

from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence

import tensorflow as tf
import tf_keras as keras

import components  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from components.encoders import ENCODER_INPUTS, EncoderSpec, build_encoder_layer, resolve_encoder
from components.errors import ConfigError
from components.hf_bert import HFBertEncoder
from components.options import BertHParams, BertModelOptions

# Model Maker's list: LayerNorm parameters and biases are not decayed.
NO_WEIGHT_DECAY = ("LayerNorm", "layer_norm", "bias")
INITIALIZER_RANGE = 0.02
ADAM_EPSILON = 1e-6


@keras.saving.register_keras_serializable(package="textclf")
class MaskedMeanPooling(keras.layers.Layer):
    """Mean of token vectors over positions where `input_mask` is 1 (TFLite builtins only)."""

    def call(self, inputs):
        sequence, mask = inputs
        weights = tf.cast(mask, sequence.dtype)[..., tf.newaxis]
        total = tf.reduce_sum(sequence * weights, axis=1)
        count = tf.maximum(tf.reduce_sum(weights, axis=1), 1.0)
        return total / count


def pooling_mode(options: BertModelOptions, spec: EncoderSpec) -> str:
    """'cls' or 'mean': the option unless 'auto', which defers to what the encoder was trained for."""
    return spec.pooling if options.pooling == "auto" else options.pooling


def build_bert_classifier(options: BertModelOptions, num_classes: int,
                          encoder_spec: Optional[EncoderSpec] = None) -> keras.Model:
    """Three int32 [batch, seq] inputs -> class probabilities [batch, num_classes].

    The sequence dimension is left open so training can feed length-bucketed batches.
    """
    if num_classes < 2:
        raise ConfigError(f"a classifier needs at least 2 classes, got {num_classes}")
    if isinstance(encoder_spec, dict):
        encoder_spec = EncoderSpec.from_dict(encoder_spec)
    spec = encoder_spec or resolve_encoder(options.encoder)
    encoder = build_encoder_layer(spec, options.seq_len, trainable=options.do_fine_tuning)
    mean_pooling = pooling_mode(options, spec) == "mean"
    if mean_pooling and isinstance(encoder, HFBertEncoder):
        encoder.pooler.trainable = False  # unused: no gradient, so no "gradients do not exist" noise
    inputs = {name: keras.Input(shape=(None,), dtype=tf.int32, name=name)
              for name in ENCODER_INPUTS}
    outputs = encoder(inputs)
    if mean_pooling:
        pooled = MaskedMeanPooling(name="mean_pooling")(
            [outputs["sequence_output"], inputs["input_mask"]])
    else:
        pooled = outputs["pooled_output"]
    pooled = keras.layers.Dropout(options.dropout_rate, name="dropout")(pooled)
    probs = keras.layers.Dense(
        num_classes, activation="softmax", name="output", dtype=tf.float32,
        kernel_initializer=keras.initializers.TruncatedNormal(stddev=INITIALIZER_RANGE))(pooled)
    return keras.Model(inputs=inputs, outputs=probs, name="bert_classifier")


# --------------------------------------------------------------------------------------------
# Optimization
# --------------------------------------------------------------------------------------------

@keras.saving.register_keras_serializable(package="textclf")
class WarmUp(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to `initial_learning_rate`, then `decay_schedule` (Model Maker's WarmUp)."""

    def __init__(self, initial_learning_rate: float, decay_schedule, warmup_steps: int):
        super().__init__()
        self.initial_learning_rate = initial_learning_rate
        self.decay_schedule = decay_schedule
        self.warmup_steps = warmup_steps

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        warmup = tf.cast(self.warmup_steps, tf.float32)
        warm = self.initial_learning_rate * step / warmup
        return tf.cond(step < warmup, lambda: warm,
                       lambda: tf.cast(self.decay_schedule(step), tf.float32))

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_schedule": keras.optimizers.schedules.serialize(self.decay_schedule),
                "warmup_steps": self.warmup_steps}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["decay_schedule"] = keras.optimizers.schedules.deserialize(config["decay_schedule"])
        return cls(**config)


@keras.saving.register_keras_serializable(package="textclf")
class LAMB(keras.optimizers.Optimizer):
    """Layer-wise adaptive Adam (You et al., 2019), as tensorflow_addons had it.

    tf_keras ships no LAMB and tensorflow_addons is gone; Model Maker offers it for BERT. The
    Adam step (plus decoupled weight decay) is rescaled per variable by ||w|| / ||step||;
    variables excluded from weight decay are also excluded from that rescaling.
    """

    def __init__(self, learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-6,
                 weight_decay_rate=0.0, exclude_from_weight_decay: Sequence[str] = (),
                 global_clipnorm=None, name="LAMB", **kwargs):
        super().__init__(name=name, global_clipnorm=global_clipnorm, **kwargs)
        self._learning_rate = self._build_learning_rate(learning_rate)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon
        self.weight_decay_rate = weight_decay_rate
        self.exclude_names = tuple(exclude_from_weight_decay)

    def build(self, var_list):
        super().build(var_list)
        if getattr(self, "_built", False):
            return
        self._built = True
        self._m = [self.add_variable_from_reference(v, "m") for v in var_list]
        self._v = [self.add_variable_from_reference(v, "v") for v in var_list]

    def _excluded(self, variable) -> bool:
        return any(name in variable.name for name in self.exclude_names)

    def update_step(self, gradient, variable):
        if isinstance(gradient, tf.IndexedSlices):
            gradient = tf.convert_to_tensor(gradient)
        dtype = variable.dtype
        lr = tf.cast(self.learning_rate, dtype)
        step = tf.cast(self.iterations + 1, dtype)
        index = self._index_dict[self._var_key(variable)]
        m, v = self._m[index], self._v[index]
        m.assign(self.beta_1 * m + (1.0 - self.beta_1) * gradient)
        v.assign(self.beta_2 * v + (1.0 - self.beta_2) * tf.square(gradient))
        m_hat = m / (1.0 - tf.pow(tf.cast(self.beta_1, dtype), step))
        v_hat = v / (1.0 - tf.pow(tf.cast(self.beta_2, dtype), step))
        update = m_hat / (tf.sqrt(v_hat) + self.epsilon)
        ratio = tf.constant(1.0, dtype)
        if not self._excluded(variable):
            if self.weight_decay_rate:
                update += self.weight_decay_rate * variable
            w_norm, u_norm = tf.norm(variable), tf.norm(update)
            ratio = tf.where((w_norm > 0) & (u_norm > 0), w_norm / tf.maximum(u_norm, 1e-30),
                             ratio)
        variable.assign_sub(lr * ratio * update)

    def get_config(self):
        config = super().get_config()
        config.update({
            "learning_rate": self._serialize_hyperparameter(self._learning_rate),
            "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon,
            "weight_decay_rate": self.weight_decay_rate,
            "exclude_from_weight_decay": list(self.exclude_names)})
        return config


def learning_rate_schedule(hparams: BertHParams, total_steps: int):
    """Linear decay to `end_learning_rate` over all steps, after warm-up over the first fraction."""
    if hparams.learning_rate <= 0:
        raise ConfigError("learning_rate 0 stands for the encoder's default; resolve it with "
                          "train.resolve_bert_hparams (or encoders.default_learning_rate) first")
    total_steps = max(1, int(total_steps))
    schedule = keras.optimizers.schedules.PolynomialDecay(
        initial_learning_rate=hparams.learning_rate, decay_steps=total_steps,
        end_learning_rate=hparams.end_learning_rate, power=1.0)
    warmup_steps = int(total_steps * hparams.warmup_fraction)
    if warmup_steps:
        schedule = WarmUp(hparams.learning_rate, schedule, warmup_steps)
    return schedule


def make_optimizer(hparams: BertHParams, total_steps: int):
    """AdamW or LAMB as Model Maker configures them (epsilon 1e-6, global clip norm)."""
    schedule = learning_rate_schedule(hparams, total_steps)
    clip = hparams.clip_norm or None
    if hparams.optimizer == "lamb":
        return LAMB(schedule, weight_decay_rate=hparams.weight_decay, epsilon=ADAM_EPSILON,
                    exclude_from_weight_decay=NO_WEIGHT_DECAY, global_clipnorm=clip)
    if hparams.optimizer == "adamw":
        optimizer = keras.optimizers.AdamW(learning_rate=schedule, weight_decay=hparams.weight_decay,
                                           epsilon=ADAM_EPSILON, global_clipnorm=clip)
        optimizer.exclude_from_weight_decay(var_names=list(NO_WEIGHT_DECAY))
        return optimizer
    raise ConfigError(f"optimizer must be 'adamw' or 'lamb', got {hparams.optimizer!r}")


def compile_classifier(model: keras.Model, optimizer) -> keras.Model:
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


# --------------------------------------------------------------------------------------------
# Batching
# --------------------------------------------------------------------------------------------

_BOUNDARIES = (8, 12, 16, 20, 24, 32, 40, 48, 64, 80, 96, 128, 160, 192, 256, 320, 384, 512)
SHUFFLE_BUFFER = 16384
BATCH_SHUFFLE_BUFFER = 64


def bucket_boundaries(seq_len: int) -> List[int]:
    """Upper length limits of the buckets: about 25 % apart, so padding inside one stays small."""
    return [b for b in _BOUNDARIES if b < seq_len]


def _lengths(features):
    if "length" in features:
        return tf.cast(features["length"], tf.int32)
    return tf.reduce_sum(tf.cast(features["input_mask"], tf.int32), axis=-1)


def _model_inputs(features, label, trim_to=None):
    selected = {name: tf.cast(features[name], tf.int32) for name in ENCODER_INPUTS}
    if trim_to is not None:
        selected = {name: value[:, :trim_to] for name, value in selected.items()}
    return selected, tf.cast(label, tf.int32)


def _trim_to_longest(features, label):
    longest = tf.maximum(tf.reduce_max(_lengths(features)), 1)
    return _model_inputs(features, label, trim_to=longest)


def bucketed_batches(dataset: tf.data.Dataset, batch_size: int, seq_len: int,
                     shuffle: bool = True, seed: int = 0,
                     shuffle_buffer: int = SHUFFLE_BUFFER) -> tf.data.Dataset:
    """Batches of similar-length examples, each trimmed to its longest example.

    Takes `load_tokenized`'s (features, label) examples (features padded to `seq_len`, with
    `length`) and yields ({input_word_ids, input_mask, input_type_ids}: int32 [b, <=seq_len],
    label). Batches come out in bucket-fill order, which is random given shuffled examples;
    a small batch-level shuffle also mixes lengths across steps.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be positive, got {batch_size}")
    boundaries = tf.constant(bucket_boundaries(seq_len), tf.int32)
    if shuffle:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)

    def bucket_of(features, label):
        return tf.reduce_sum(tf.cast(_lengths(features) > boundaries, tf.int64))

    dataset = dataset.group_by_window(key_func=bucket_of,
                                      reduce_func=lambda _, window: window.batch(batch_size),
                                      window_size=batch_size)
    dataset = dataset.map(_trim_to_longest, num_parallel_calls=tf.data.AUTOTUNE)
    if shuffle:
        dataset = dataset.shuffle(BATCH_SHUFFLE_BUFFER, seed=seed + 1,
                                  reshuffle_each_iteration=True)
    return dataset.prefetch(tf.data.AUTOTUNE)


def padded_batches(dataset: tf.data.Dataset, batch_size: int, seq_len: int,
                   shuffle: bool = True, seed: int = 0,
                   shuffle_buffer: int = SHUFFLE_BUFFER) -> tf.data.Dataset:
    """Model Maker's batching: every example at the full `seq_len` (the benchmark's baseline)."""
    if batch_size < 1:
        raise ConfigError(f"batch_size must be positive, got {batch_size}")
    if shuffle:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size).map(
        lambda f, label: _model_inputs(f, label, trim_to=seq_len),
        num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def steps_per_epoch(num_examples: int, batch_size: int) -> int:
    """Batches in one pass at a fixed batch size (length bucketing adds at most one per bucket)."""
    return max(1, math.ceil(num_examples / batch_size))


def bucketed_steps(length_counts: Dict[int, int], batch_size: int, seq_len: int) -> int:
    """Batches `bucketed_batches` yields in one pass over examples with these lengths: every
    bucket ends with a batch of its own, so it is a sum per bucket, not rows / batch size."""
    boundaries = bucket_boundaries(seq_len)
    per_bucket: Dict[int, int] = {}
    for length, count in length_counts.items():
        bucket = sum(1 for b in boundaries if length > b)
        per_bucket[bucket] = per_bucket.get(bucket, 0) + count
    return max(1, sum(math.ceil(n / batch_size) for n in per_bucket.values()))
