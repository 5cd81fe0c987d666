"""Hugging Face BERT checkpoints as a tf_keras layer, without PyTorch or the network.

A folder with `config.json`, `model.safetensors` (or shards and their index) and `vocab.txt` is read
here (safetensors decoded with numpy alone) and rebuilt as `HFBertEncoder`: embeddings, post-LayerNorm
transformer blocks with exact-erf GELU, and the pooler, taking the TF Hub BERT encoder interface.
It works at any sequence length up to `max_position_embeddings` (so training can batch by length)
and uses only ops TFLite has as builtins once traced at a fixed shape.
"""

from __future__ import annotations

import json
import math
import os
import struct
from typing import Any, Dict, Tuple

import numpy as np
import tensorflow as tf
import tf_keras as keras

import components  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from components.errors import EncoderError


def read_json(path: str) -> Dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (ValueError, OSError) as e:
        raise EncoderError(f"{path}: not readable JSON: {e}") from e


def dummy_inputs(length: int) -> Dict[str, tf.Tensor]:
    zeros = tf.zeros([1, length], tf.int32)
    return {"input_word_ids": zeros, "input_mask": tf.ones_like(zeros), "input_type_ids": zeros}


def hf_default_pooling(path: str) -> str:
    """Mean when the checkpoint was trained for mean pooling (sentence-transformers) or lacks a pooler."""
    pooling_config = os.path.join(path, "1_Pooling", "config.json")
    if os.path.exists(pooling_config):
        if read_json(pooling_config).get("pooling_mode_mean_tokens"):
            return "mean"
    names = {n[len("bert."):] if n.startswith("bert.") else n for n in checkpoint_names(path)}
    return "cls" if "pooler.dense.weight" in names else "mean"


def checkpoint_names(path: str) -> set:
    """Tensor names from the safetensors header(s) alone, without reading the weights."""
    index = os.path.join(path, "model.safetensors.index.json")
    if os.path.exists(index):
        return set(read_json(index).get("weight_map", {}))
    try:
        with open(os.path.join(path, "model.safetensors"), "rb") as f:
            (header_len,) = struct.unpack("<Q", f.read(8))
            return set(json.loads(f.read(header_len))) - {"__metadata__"}
    except (OSError, struct.error, ValueError) as e:
        raise EncoderError(f"{path}/model.safetensors: not a safetensors file ({e})") from e


def check_hf_config(config: Dict[str, Any], path: str) -> None:
    model_type = config.get("model_type", "bert")
    if model_type != "bert":
        raise EncoderError(f"{path}: model_type {model_type!r} is not supported; only BERT "
                           "checkpoints (model_type 'bert') are converted")
    act = config.get("hidden_act", "gelu")
    if act not in _ACTIVATIONS:
        raise EncoderError(f"{path}: hidden_act {act!r} is not supported ({', '.join(_ACTIVATIONS)})")
    pos = config.get("position_embedding_type", "absolute")
    if pos != "absolute":
        raise EncoderError(f"{path}: position_embedding_type {pos!r} is not supported (absolute only)")
    for key in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                "intermediate_size"):
        if key not in config:
            raise EncoderError(f"{path}: config.json lacks {key}")
    if config["hidden_size"] % config["num_attention_heads"]:
        raise EncoderError(f"{path}: hidden_size is not a multiple of num_attention_heads")


_SAFETENSORS_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16,
                       "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8,
                       "U8": np.uint8, "BOOL": np.bool_}


def read_safetensors(data: bytes) -> Dict[str, np.ndarray]:
    """Parses safetensors bytes into float32/int NumPy arrays.

    Written out (the format is a JSON header plus raw little-endian buffers) because
    `safetensors.numpy` cannot represent bfloat16, common in recent checkpoints.
    """
    try:
        (header_len,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8:8 + header_len])
    except (struct.error, ValueError) as e:
        raise EncoderError(f"not a safetensors file ({e})") from e
    body = memoryview(data)[8 + header_len:]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        dtype, shape = info["dtype"], info["shape"]
        if not 0 <= start <= end <= len(body):
            raise EncoderError(f"tensor {name}: data offsets {start}..{end} outside the file")
        raw = body[start:end]
        if dtype == "BF16":
            bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            array = bits.view(np.float32)
        elif dtype in _SAFETENSORS_DTYPES:
            array = np.frombuffer(raw, dtype=np.dtype(_SAFETENSORS_DTYPES[dtype]).newbyteorder("<"))
        else:
            raise EncoderError(f"tensor {name}: unsupported safetensors dtype {dtype}")
        array = array.reshape(shape)
        if array.dtype.kind == "f":
            array = array.astype(np.float32)
        tensors[name] = array
    return tensors


def load_hf_checkpoint(path: str) -> Tuple[Dict[str, Any], Dict[str, np.ndarray]]:
    """(config, weights) with names normalised to BertModel's (no `bert.` prefix, weight/bias)."""
    config = read_json(os.path.join(path, "config.json"))
    check_hf_config(config, path)
    index = os.path.join(path, "model.safetensors.index.json")
    files = (sorted(set(read_json(index)["weight_map"].values()))
             if os.path.exists(index) else ["model.safetensors"])
    weights: Dict[str, np.ndarray] = {}
    for file_name in files:
        with open(os.path.join(path, file_name), "rb") as f:
            data = f.read()
        try:
            weights.update(read_safetensors(data))
        except EncoderError as e:
            raise EncoderError(f"{os.path.join(path, file_name)}: {e}") from e
    normalised = {}
    for name, value in weights.items():
        if name.startswith("bert."):
            name = name[len("bert."):]
        elif not name.startswith(("embeddings.", "encoder.", "pooler.")):
            continue  # task heads (cls., classifier.) are not part of the encoder
        if name.endswith(".gamma"):
            name = name[:-len("gamma")] + "weight"
        elif name.endswith(".beta"):
            name = name[:-len("beta")] + "bias"
        normalised[name] = value
    return config, normalised


def _gelu_erf(x):
    return tf.nn.gelu(x, approximate=False)


def _gelu_tanh(x):
    return tf.nn.gelu(x, approximate=True)


_ACTIVATIONS = {"gelu": _gelu_erf, "gelu_new": _gelu_tanh, "gelu_pytorch_tanh": _gelu_tanh,
                "gelu_fast": _gelu_tanh, "relu": tf.nn.relu}


# Large enough to zero a masked position after softmax, small enough not to overflow float16.
_MASK_BIAS = -10000.0


@keras.saving.register_keras_serializable(package="textclf")
class LayerNorm(keras.layers.Layer):
    """Layer normalisation from plain reductions.

    Keras' own layer takes a fused batch-norm path whose TFLite conversion is less predictable;
    mean / squared difference / rsqrt are TFLite builtins. The name keeps `LayerNorm` in the
    variable names, which is how the optimizers exclude it from weight decay.
    """

    def __init__(self, epsilon: float = 1e-12, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def build(self, input_shape):
        dim = input_shape[-1]
        self.gamma = self.add_weight("gamma", shape=(dim,), initializer="ones")
        self.beta = self.add_weight("beta", shape=(dim,), initializer="zeros")
        super().build(input_shape)

    def call(self, x):
        mean = tf.reduce_mean(x, axis=-1, keepdims=True)
        variance = tf.reduce_mean(tf.math.squared_difference(x, mean), axis=-1, keepdims=True)
        return (x - mean) * tf.math.rsqrt(variance + self.epsilon) * self.gamma + self.beta

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="textclf")
class BertEmbeddings(keras.layers.Layer):
    """word + position + token-type embeddings, then LayerNorm and dropout."""

    def __init__(self, vocab_size, hidden_size, max_positions, type_vocab_size, epsilon,
                 dropout_rate, initializer_range=0.02, **kwargs):
        super().__init__(**kwargs)
        self._config = dict(vocab_size=vocab_size, hidden_size=hidden_size,
                            max_positions=max_positions, type_vocab_size=type_vocab_size,
                            epsilon=epsilon, dropout_rate=dropout_rate,
                            initializer_range=initializer_range)
        self.vocab_size, self.hidden_size = vocab_size, hidden_size
        self.max_positions, self.type_vocab_size = max_positions, type_vocab_size
        self.initializer_range = initializer_range
        self.layer_norm = LayerNorm(epsilon, name="LayerNorm")
        self.dropout = keras.layers.Dropout(dropout_rate)

    def build(self, input_shape):
        init = lambda: keras.initializers.TruncatedNormal(stddev=self.initializer_range)  # noqa: E731
        self.word_embeddings = self.add_weight(
            "word_embeddings", shape=(self.vocab_size, self.hidden_size), initializer=init())
        self.position_embeddings = self.add_weight(
            "position_embeddings", shape=(self.max_positions, self.hidden_size),
            initializer=init())
        self.token_type_embeddings = self.add_weight(
            "token_type_embeddings", shape=(self.type_vocab_size, self.hidden_size),
            initializer=init())
        super().build(input_shape)

    def call(self, word_ids, type_ids, training=None):
        length = tf.shape(word_ids)[1]
        x = tf.gather(self.word_embeddings, word_ids)
        x += tf.gather(self.token_type_embeddings, type_ids)
        x += self.position_embeddings[tf.newaxis, :length, :]
        return self.dropout(self.layer_norm(x), training=training)

    def get_config(self):
        return {**super().get_config(), **self._config}


@keras.saving.register_keras_serializable(package="textclf")
class TransformerLayer(keras.layers.Layer):
    """One post-LayerNorm BERT block: self-attention, add & norm, feed-forward, add & norm."""

    def __init__(self, hidden_size, num_heads, intermediate_size, activation, epsilon,
                 hidden_dropout, attention_dropout, initializer_range=0.02, **kwargs):
        super().__init__(**kwargs)
        self._config = dict(hidden_size=hidden_size, num_heads=num_heads,
                            intermediate_size=intermediate_size, activation=activation,
                            epsilon=epsilon, hidden_dropout=hidden_dropout,
                            attention_dropout=attention_dropout,
                            initializer_range=initializer_range)
        self.num_heads = num_heads
        self.head_size = hidden_size // num_heads
        self.hidden_size = hidden_size
        init = lambda: keras.initializers.TruncatedNormal(stddev=initializer_range)  # noqa: E731
        dense = lambda units, name, act=None: keras.layers.Dense(  # noqa: E731
            units, activation=act, kernel_initializer=init(), name=name)
        self.query = dense(hidden_size, "query")
        self.key = dense(hidden_size, "key")
        self.value = dense(hidden_size, "value")
        self.attention_output = dense(hidden_size, "attention_output")
        self.attention_layer_norm = LayerNorm(epsilon, name="attention_LayerNorm")
        self.intermediate = dense(intermediate_size, "intermediate", _ACTIVATIONS[activation])
        self.output_dense = dense(hidden_size, "output")
        self.output_layer_norm = LayerNorm(epsilon, name="output_LayerNorm")
        self.attention_dropout = keras.layers.Dropout(attention_dropout)
        self.hidden_dropout = keras.layers.Dropout(hidden_dropout)

    def _split_heads(self, t, batch, length):
        t = tf.reshape(t, [batch, length, self.num_heads, self.head_size])
        return tf.transpose(t, [0, 2, 1, 3])

    def call(self, x, mask_bias, training=None):
        batch, length = tf.shape(x)[0], tf.shape(x)[1]
        scale = 1.0 / math.sqrt(self.head_size)
        q = self._split_heads(self.query(x) * scale, batch, length)
        k = self._split_heads(self.key(x), batch, length)
        v = self._split_heads(self.value(x), batch, length)
        scores = tf.matmul(q, k, transpose_b=True) + mask_bias
        probs = self.attention_dropout(tf.nn.softmax(scores, axis=-1), training=training)
        context = tf.transpose(tf.matmul(probs, v), [0, 2, 1, 3])
        context = tf.reshape(context, [batch, length, self.hidden_size])
        attended = self.hidden_dropout(self.attention_output(context), training=training)
        x = self.attention_layer_norm(x + attended)
        hidden = self.output_dense(self.intermediate(x))
        return self.output_layer_norm(x + self.hidden_dropout(hidden, training=training))

    def get_config(self):
        return {**super().get_config(), **self._config}


@keras.saving.register_keras_serializable(package="textclf")
class HFBertEncoder(keras.layers.Layer):
    """A Hugging Face `BertModel` as a tf_keras layer with the TF Hub BERT encoder interface.

    Works at any sequence length up to `max_position_embeddings`; weights come from
    `load_checkpoint_weights` (names as in the safetensors file).
    """

    def __init__(self, config: Dict[str, Any], **kwargs):
        super().__init__(**kwargs)
        self.config = dict(config)
        c = self.config
        eps = c.get("layer_norm_eps", 1e-12)
        init_range = c.get("initializer_range", 0.02)
        hidden_dropout = c.get("hidden_dropout_prob", 0.1)
        self.embeddings = BertEmbeddings(
            c["vocab_size"], c["hidden_size"], c.get("max_position_embeddings", 512),
            c.get("type_vocab_size", 2), eps, hidden_dropout, init_range, name="embeddings")
        self.layers_ = [
            TransformerLayer(c["hidden_size"], c["num_attention_heads"], c["intermediate_size"],
                             c.get("hidden_act", "gelu"), eps, hidden_dropout,
                             c.get("attention_probs_dropout_prob", 0.1), init_range,
                             name=f"layer_{i}")
            for i in range(c["num_hidden_layers"])]
        self.pooler = keras.layers.Dense(
            c["hidden_size"], activation="tanh", name="pooler",
            kernel_initializer=keras.initializers.TruncatedNormal(stddev=init_range))

    @property
    def max_positions(self) -> int:
        return self.config.get("max_position_embeddings", 512)

    def call(self, inputs, training=None):
        word_ids = tf.cast(inputs["input_word_ids"], tf.int32)
        mask = tf.cast(inputs["input_mask"], tf.float32)
        type_ids = tf.cast(inputs["input_type_ids"], tf.int32)
        x = self.embeddings(word_ids, type_ids, training=training)
        mask_bias = ((1.0 - mask) * _MASK_BIAS)[:, tf.newaxis, tf.newaxis, :]
        for layer in self.layers_:
            x = layer(x, mask_bias, training=training)
        pooled = self.pooler(x[:, 0, :])
        return {"pooled_output": pooled, "sequence_output": x}

    def get_config(self):
        return {**super().get_config(), "config": self.config}

    def load_checkpoint_weights(self, weights: Dict[str, np.ndarray]) -> list:
        """Assigns checkpoint tensors; returns the names of encoder weights it had to leave random.

        Torch `Linear` weights are [out, in]; Keras kernels are [in, out], hence the transposes.
        """
        if not self.built:
            self(dummy_inputs(2))
        assignments = []
        emb = self.embeddings
        assignments += [
            (emb.word_embeddings, "embeddings.word_embeddings.weight", False),
            (emb.position_embeddings, "embeddings.position_embeddings.weight", False),
            (emb.token_type_embeddings, "embeddings.token_type_embeddings.weight", False),
            (emb.layer_norm.gamma, "embeddings.LayerNorm.weight", False),
            (emb.layer_norm.beta, "embeddings.LayerNorm.bias", False)]
        for i, layer in enumerate(self.layers_):
            p = f"encoder.layer.{i}."
            for dense, name in ((layer.query, "attention.self.query"),
                                (layer.key, "attention.self.key"),
                                (layer.value, "attention.self.value"),
                                (layer.attention_output, "attention.output.dense"),
                                (layer.intermediate, "intermediate.dense"),
                                (layer.output_dense, "output.dense")):
                assignments += [(dense.kernel, p + name + ".weight", True),
                                (dense.bias, p + name + ".bias", False)]
            for norm, name in ((layer.attention_layer_norm, "attention.output.LayerNorm"),
                               (layer.output_layer_norm, "output.LayerNorm")):
                assignments += [(norm.gamma, p + name + ".weight", False),
                                (norm.beta, p + name + ".bias", False)]
        pooler = [(self.pooler.kernel, "pooler.dense.weight", True),
                  (self.pooler.bias, "pooler.dense.bias", False)]
        missing = [name for _, name, _ in assignments if name not in weights]
        if missing:
            raise EncoderError(f"checkpoint lacks {len(missing)} BERT weight(s), e.g. "
                               f"{', '.join(missing[:3])}; is it a BertModel checkpoint "
                               "matching its config.json?")
        left_random = [name for _, name, _ in pooler if name not in weights]
        if not left_random:
            assignments += pooler
        for variable, name, transpose in assignments:
            value = weights[name].T if transpose else weights[name]
            if tuple(value.shape) != tuple(variable.shape):
                raise EncoderError(f"checkpoint weight {name} has shape {tuple(value.shape)}, "
                                   f"config.json implies {tuple(variable.shape)}")
            variable.assign(value)
        return left_random
