"""Tiny BERT encoders in every supported format, written to a folder, for offline tests.

Each takes well under a second to build except the SavedModel (a few seconds of tracing), so
tests can make their own instead of downloading anything:

    make_tiny_hf_checkpoint(tmp_path / "hf")          # config.json, model.safetensors, vocab.txt
    make_tiny_savedmodel_encoder(tmp_path / "sm")     # saved_model.pb + assets/vocab.txt
    make_tiny_tf1_hub_module(tmp_path / "tf1")        # TF1 Hub format, `tokens` signature
    make_mobilebert_tiny_tarball(tmp_path / "t.tar.gz")  # laid out as mobilebert_tiny.tar.gz
    serve_archive(monkeypatch, archive)               # encoder_downloads._download serves that file

The TF1 module and the tarball are the two shapes Model Maker's MobileBERT comes in (the
TF Hub module of 0.2.1.4's MOBILEBERT_CLASSIFIER, and the tarball earlier releases used).

`numpy_bert_forward` is an independent reference of what a Hugging Face `BertModel` computes,
for checking converted or exported encoders against the checkpoint.
"""

from __future__ import annotations

import json
import math
import os
from typing import Dict, Iterable, Optional

import numpy as np

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
_WORDS = ("the a an and or but not no very so is was are be it this that of to in for on with "
          "as at by i you he she we they movie film story plot acting good great fun love "
          "loved best wonderful charming bad boring awful terrible worst hate dull funny sad "
          "happy moving beautiful ugly slow").split()
_PUNCT = list(".,!?'\"-:;()")


def tiny_vocab() -> list:
    """Specials, some whole words, and every ASCII letter and digit with its `##` form.

    The single characters mean any lower-case ASCII text tokenizes without [UNK].
    """
    chars = [chr(c) for c in range(ord("a"), ord("z") + 1)] + [str(d) for d in range(10)]
    tokens = SPECIAL_TOKENS + _WORDS + _PUNCT + chars + ["##" + c for c in chars]
    seen, unique = set(), []
    for token in tokens:
        if token not in seen:
            seen.add(token)
            unique.append(token)
    return unique


def tiny_hf_config(vocab_size: int, **overrides) -> Dict:
    config = {
        "architectures": ["BertModel"], "model_type": "bert", "vocab_size": vocab_size,
        "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
        "intermediate_size": 32, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 512,
        "type_vocab_size": 2, "initializer_range": 0.02, "layer_norm_eps": 1e-12,
        "pad_token_id": 0, "position_embedding_type": "absolute",
    }
    config.update(overrides)
    return config


def tiny_hf_weights(config: Dict, seed: int = 0, pooler: bool = True,
                    scale: float = 0.5) -> Dict[str, np.ndarray]:
    """Random BertModel weights under Hugging Face's names, torch layout ([out, in]).

    `scale` is far above BERT's 0.02 init so attention is not uniform and every op matters
    in a comparison.
    """
    rng = np.random.default_rng(seed)
    h, inter = config["hidden_size"], config["intermediate_size"]
    rand = lambda *shape: (rng.standard_normal(shape) * scale).astype(np.float32)  # noqa: E731
    w = {
        "embeddings.word_embeddings.weight": rand(config["vocab_size"], h),
        "embeddings.position_embeddings.weight": rand(config["max_position_embeddings"], h),
        "embeddings.token_type_embeddings.weight": rand(config["type_vocab_size"], h),
        "embeddings.LayerNorm.weight": 1.0 + rand(h) * 0.2,
        "embeddings.LayerNorm.bias": rand(h) * 0.2,
        "embeddings.position_ids": np.arange(config["max_position_embeddings"],
                                             dtype=np.int64)[None],
    }
    for i in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        for name, (out_dim, in_dim) in (("attention.self.query", (h, h)),
                                        ("attention.self.key", (h, h)),
                                        ("attention.self.value", (h, h)),
                                        ("attention.output.dense", (h, h)),
                                        ("intermediate.dense", (inter, h)),
                                        ("output.dense", (h, inter))):
            w[p + name + ".weight"] = rand(out_dim, in_dim) / math.sqrt(in_dim) * 2
            w[p + name + ".bias"] = rand(out_dim) * 0.2
        for name in ("attention.output.LayerNorm", "output.LayerNorm"):
            w[p + name + ".weight"] = 1.0 + rand(h) * 0.2
            w[p + name + ".bias"] = rand(h) * 0.2
    if pooler:
        w["pooler.dense.weight"] = rand(h, h) / math.sqrt(h) * 2
        w["pooler.dense.bias"] = rand(h) * 0.2
    return w


def _write_vocab(path: str, tokens: Iterable[str]) -> list:
    tokens = list(tokens)
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(tokens) + "\n")
    return tokens


def make_tiny_hf_checkpoint(folder, vocab_tokens: Optional[Iterable[str]] = None, seed: int = 0,
                            pooler: bool = True, do_lower_case: bool = True, scale: float = 0.5,
                            **config_overrides) -> str:
    """A Hugging Face BERT folder (config.json, model.safetensors, vocab.txt, tokenizer_config).

    The default `scale` makes every op matter in comparisons; a small one (0.05) gives a
    near-linear encoder that a few fine-tuning steps can teach (training tests).
    """
    from safetensors.numpy import save_file
    folder = str(folder)
    os.makedirs(folder, exist_ok=True)
    tokens = _write_vocab(os.path.join(folder, "vocab.txt"), vocab_tokens or tiny_vocab())
    config = tiny_hf_config(len(tokens), **config_overrides)
    with open(os.path.join(folder, "config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2)
    with open(os.path.join(folder, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump({"do_lower_case": do_lower_case, "tokenizer_class": "BertTokenizer"}, f)
    save_file(tiny_hf_weights(config, seed=seed, pooler=pooler, scale=scale),
              os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})
    return folder


def make_tiny_savedmodel_encoder(folder, vocab_tokens: Optional[Iterable[str]] = None,
                                 seed: int = 0, do_lower_case: Optional[bool] = None,
                                 keras_format: bool = False, scale: float = 0.5) -> str:
    """A TF2 SavedModel with the TF Hub BERT encoder signature and assets/vocab.txt.

    Built from the tiny HF encoder so both formats compute the same function for a seed.
    `do_lower_case` adds the attribute TF Hub's BERT SavedModels carry (a bool variable);
    `keras_format` saves with Keras (adding keras_metadata.pb), as mobilebert_tiny was.
    """
    import tempfile

    import tensorflow as tf
    import tf_keras as keras

    import components  # noqa: F401
    from components.hf_bert import HFBertEncoder

    folder = str(folder)
    with tempfile.TemporaryDirectory() as tmp:
        vocab_path = os.path.join(tmp, "vocab.txt")
        tokens = _write_vocab(vocab_path, vocab_tokens or tiny_vocab())
        config = tiny_hf_config(len(tokens))
        encoder = HFBertEncoder(config, name="bert_encoder")
        encoder.load_checkpoint_weights(tiny_hf_weights(config, seed=seed, scale=scale))
        inputs = {name: keras.Input(shape=(None,), dtype=tf.int32, name=name)
                  for name in ("input_word_ids", "input_mask", "input_type_ids")}
        model = keras.Model(inputs, encoder(inputs), name="tiny_bert_encoder")
        model.vocab_file = tf.saved_model.Asset(vocab_path)
        if do_lower_case is not None:
            model.do_lower_case = tf.Variable(do_lower_case, trainable=False, name="do_lower_case")
        if keras_format:
            model.save(folder, save_format="tf", include_optimizer=False)
        else:
            tf.saved_model.save(model, folder)
    return folder


def make_mobilebert_tiny_tarball(archive, seed: int = 0, scale: float = 0.5) -> str:
    """A .tar.gz laid out as Model Maker's mobilebert_tiny.tar.gz.

    One root folder `mobilebert_tiny/` holding a Keras SavedModel: keras_metadata.pb,
    saved_model.pb, assets/vocab.txt, variables/.
    """
    import tarfile
    import tempfile

    archive = str(archive)
    with tempfile.TemporaryDirectory() as tmp:
        folder = make_tiny_savedmodel_encoder(os.path.join(tmp, "mobilebert_tiny"), seed=seed,
                                              keras_format=True, scale=scale)
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(folder, arcname="mobilebert_tiny")
    return archive


def make_tiny_tf1_hub_module(folder, vocab_tokens: Optional[Iterable[str]] = None,
                             seed: int = 0, resource_variables: bool = True,
                             do_lower_case: bool = True, tokenization_signature: bool = True,
                             hidden_act: str = "relu", dropout: float = 0.1,
                             scale: float = 0.5) -> str:
    """A BERT encoder in the TF1 Hub format, built with tf.compat.v1 in a graph.

    Laid out as Model Maker 0.2.1.4's MobileBERT module: saved_model.pb with an inference
    graph (empty tag set) and a `train` graph (dropout on), both with a `tokens` signature
    (input_ids / input_mask / segment_ids -> pooled_output / sequence_output) and, unless
    `tokenization_signature` is False, `tokenization_info` (vocab_file, do_lower_case);
    assets/vocab.txt, variables/ and tfhub_module.pb. The weights are the tiny HF encoder's for
    `seed` (with `hidden_act`; MobileBERT uses relu), so `numpy_bert_forward` is its
    reference. `resource_variables=False` stores TF1's reference variables instead.
    """
    import tempfile

    import tensorflow as tf

    import components  # noqa: F401

    v1 = tf.compat.v1
    folder = str(folder)
    with tempfile.TemporaryDirectory() as tmp:
        vocab_path = os.path.join(tmp, "vocab.txt")
        tokens = _write_vocab(vocab_path, vocab_tokens or tiny_vocab())
        config = tiny_hf_config(len(tokens), hidden_act=hidden_act)
        weights = tiny_hf_weights(config, seed=seed, scale=scale)
        builder = v1.saved_model.Builder(folder)
        for tags in ([], ["train"]):
            graph = tf.Graph()
            with graph.as_default():
                signatures = _tf1_bert_graph(config, weights, vocab_path, do_lower_case,
                                             tokenization_signature, resource_variables,
                                             dropout if tags else 0.0)
                assets = graph.get_collection(v1.GraphKeys.ASSET_FILEPATHS)
                with v1.Session(graph=graph) as session:
                    session.run(v1.global_variables_initializer())
                    if not tags:
                        builder.add_meta_graph_and_variables(
                            session, tags, signature_def_map=signatures, assets_collection=assets)
                    else:
                        builder.add_meta_graph(tags, signature_def_map=signatures,
                                               assets_collection=assets)
        builder.save()
    # tfhub_module.pb is a ModuleDef proto: field 1 (format) = 3 (FORMAT_V3).
    with open(os.path.join(folder, "tfhub_module.pb"), "wb") as f:
        f.write(b"\x08\x03")
    return folder


def _tf1_bert_graph(config, weights, vocab_path, do_lower_case, tokenization_signature,
                    resource_variables, dropout):
    """BERT's forward pass as google-research/bert's modeling.py lays it out, in TF1 ops."""
    import tensorflow as tf

    v1 = tf.compat.v1
    h, heads = config["hidden_size"], config["num_attention_heads"]
    head_size = h // heads
    act = {"relu": tf.nn.relu, "gelu": lambda t: tf.nn.gelu(t, approximate=False)}[
        config["hidden_act"]]
    ids = v1.placeholder(tf.int32, [None, None], "input_ids")
    mask = v1.placeholder(tf.int32, [None, None], "input_mask")
    segments = v1.placeholder(tf.int32, [None, None], "segment_ids")

    def var(name, value):
        return v1.get_variable(name, initializer=tf.constant(value),
                               use_resource=resource_variables)

    def drop(t):
        return tf.nn.dropout(t, rate=dropout) if dropout else t

    def layer_norm(t, scope, prefix):
        mean, variance = tf.nn.moments(t, [-1], keepdims=True)
        gamma = var(scope + "/gamma", weights[prefix + ".weight"])
        beta = var(scope + "/beta", weights[prefix + ".bias"])
        return (t - mean) * tf.math.rsqrt(variance + config["layer_norm_eps"]) * gamma + beta

    def dense(t2d, scope, prefix, activation=None):
        out = tf.matmul(t2d, var(scope + "/kernel", weights[prefix + ".weight"].T))
        out += var(scope + "/bias", weights[prefix + ".bias"])
        return activation(out) if activation else out

    batch, length = tf.shape(ids)[0], tf.shape(ids)[1]
    with v1.variable_scope("bert"):
        table = var("embeddings/word_embeddings", weights["embeddings.word_embeddings.weight"])
        x = tf.gather(table, ids)
        x += tf.gather(var("embeddings/token_type_embeddings",
                           weights["embeddings.token_type_embeddings.weight"]), segments)
        positions = var("embeddings/position_embeddings",
                        weights["embeddings.position_embeddings.weight"])
        x += tf.slice(positions, [0, 0], [length, -1])[tf.newaxis]
        x = drop(layer_norm(x, "embeddings/LayerNorm", "embeddings.LayerNorm"))
        bias = (1.0 - tf.cast(mask, tf.float32))[:, tf.newaxis, tf.newaxis, :] * -10000.0
        x2d = tf.reshape(x, [-1, h])

        def split(t):
            return tf.transpose(tf.reshape(t, [batch, length, heads, head_size]), [0, 2, 1, 3])

        for i in range(config["num_hidden_layers"]):
            scope, prefix = f"encoder/layer_{i}/", f"encoder.layer.{i}."
            q = split(dense(x2d, scope + "attention/self/query", prefix + "attention.self.query"))
            k = split(dense(x2d, scope + "attention/self/key", prefix + "attention.self.key"))
            v = split(dense(x2d, scope + "attention/self/value", prefix + "attention.self.value"))
            scores = tf.matmul(q, k, transpose_b=True) * (1.0 / math.sqrt(head_size)) + bias
            probs = drop(tf.nn.softmax(scores))
            context = tf.reshape(tf.transpose(tf.matmul(probs, v), [0, 2, 1, 3]), [-1, h])
            attended = drop(dense(context, scope + "attention/output/dense",
                                  prefix + "attention.output.dense"))
            x2d = layer_norm(x2d + attended, scope + "attention/output/LayerNorm",
                             prefix + "attention.output.LayerNorm")
            hidden = dense(x2d, scope + "intermediate/dense", prefix + "intermediate.dense", act)
            out = drop(dense(hidden, scope + "output/dense", prefix + "output.dense"))
            x2d = layer_norm(x2d + out, scope + "output/LayerNorm", prefix + "output.LayerNorm")
        sequence = tf.reshape(x2d, [batch, length, h])
        with v1.variable_scope("pooler"):
            pooled = dense(sequence[:, 0], "dense", "pooler.dense", tf.tanh)

    info = v1.saved_model.utils.build_tensor_info
    make = v1.saved_model.signature_def_utils.build_signature_def
    signatures = {"tokens": make(
        {"input_ids": info(ids), "input_mask": info(mask), "segment_ids": info(segments)},
        {"pooled_output": info(pooled), "sequence_output": info(sequence)})}
    vocab = tf.constant(vocab_path, name="vocab_file")  # copied to assets/ on save
    v1.add_to_collection(v1.GraphKeys.ASSET_FILEPATHS, vocab)
    if tokenization_signature:
        lower = tf.constant(do_lower_case, name="do_lower_case")
        signatures["tokenization_info"] = make(
            {}, {"vocab_file": info(vocab), "do_lower_case": info(lower)})
    return signatures


def tar_folder(folder, archive, root: Optional[str] = None) -> str:
    """`folder` as a .tar.gz: its files at the archive's root (TF Hub's compressed form), or
    under one `root` folder."""
    import tarfile

    archive = str(archive)
    with tarfile.open(archive, "w:gz") as tar:
        for name in sorted(os.listdir(str(folder))):
            tar.add(os.path.join(str(folder), name),
                    arcname=name if root is None else f"{root}/{name}")
    return archive


def serve_archive(monkeypatch, archive, calls: Optional[list] = None):
    """Replaces `encoder_downloads._download` so any URL serves `archive`; URLs asked go into `calls`."""
    import shutil

    from components import encoder_downloads

    def download(url, dest, timeout=60.0):
        if calls is not None:
            calls.append(url)
        shutil.copy(str(archive), dest)

    monkeypatch.setattr(encoder_downloads, "_download", download)
    return calls


# ------------------------------------------------------------------------------------------
# NumPy reference of Hugging Face's BertModel forward pass (eval mode)
# ------------------------------------------------------------------------------------------

def _layer_norm(x, gamma, beta, eps):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def _gelu(x):
    from math import erf
    return 0.5 * x * (1.0 + np.vectorize(erf)(x / math.sqrt(2.0)))


_ACTS = {"gelu": _gelu, "relu": lambda x: np.maximum(x, 0.0)}


def numpy_bert_forward(config: Dict, weights: Dict[str, np.ndarray], word_ids, mask,
                       type_ids=None) -> Dict[str, np.ndarray]:
    """sequence_output [b, s, h] and pooled_output [b, h], in float64."""
    w = {k: v.astype(np.float64) for k, v in weights.items()}
    word_ids = np.asarray(word_ids)
    mask = np.asarray(mask, dtype=np.float64)
    type_ids = np.zeros_like(word_ids) if type_ids is None else np.asarray(type_ids)
    b, s = word_ids.shape
    eps = config["layer_norm_eps"]
    nh = config["num_attention_heads"]
    hd = config["hidden_size"] // nh
    linear = lambda x, name: x @ w[name + ".weight"].T + w[name + ".bias"]  # noqa: E731

    x = (w["embeddings.word_embeddings.weight"][word_ids]
         + w["embeddings.position_embeddings.weight"][np.arange(s)][None]
         + w["embeddings.token_type_embeddings.weight"][type_ids])
    x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
    bias = np.where(mask > 0, 0.0, -1e30)[:, None, None, :]
    for i in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        heads = lambda t: t.reshape(b, s, nh, hd).transpose(0, 2, 1, 3)  # noqa: E731
        q = heads(linear(x, p + "attention.self.query"))
        k = heads(linear(x, p + "attention.self.key"))
        v = heads(linear(x, p + "attention.self.value"))
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(hd) + bias
        scores -= scores.max(-1, keepdims=True)
        probs = np.exp(scores)
        probs /= probs.sum(-1, keepdims=True)
        context = (probs @ v).transpose(0, 2, 1, 3).reshape(b, s, nh * hd)
        x = _layer_norm(x + linear(context, p + "attention.output.dense"),
                        w[p + "attention.output.LayerNorm.weight"],
                        w[p + "attention.output.LayerNorm.bias"], eps)
        hidden = _ACTS[config.get("hidden_act", "gelu")](linear(x, p + "intermediate.dense"))
        x = _layer_norm(x + linear(hidden, p + "output.dense"),
                        w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], eps)
    pooled = np.tanh(linear(x[:, 0], "pooler.dense")) if "pooler.dense.weight" in w else None
    return {"sequence_output": x, "pooled_output": pooled}
