"""Tiny BERT encoders in every supported format, written to a folder, for offline tests.

Each takes well under a second to build except the SavedModel (a few seconds of tracing), so
tests can make their own instead of downloading anything:

    make_tiny_hf_checkpoint(tmp_path / "hf")          # config.json, model.safetensors, vocab.txt
    make_tiny_savedmodel_encoder(tmp_path / "sm")     # saved_model.pb + assets/vocab.txt
    make_fake_mobilebert_cache(tmp_path / "cache")    # then set TEXTCLF_CACHE to it

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
                                 seed: int = 0) -> str:
    """A TF2 SavedModel with the TF Hub BERT encoder signature and assets/vocab.txt.

    Built from the tiny HF encoder so both formats compute the same function for a seed.
    """
    import tempfile

    import components  # noqa: F401
    import tensorflow as tf
    import tf_keras as keras

    from components.encoders import HFBertEncoder

    folder = str(folder)
    with tempfile.TemporaryDirectory() as tmp:
        vocab_path = os.path.join(tmp, "vocab.txt")
        tokens = _write_vocab(vocab_path, vocab_tokens or tiny_vocab())
        config = tiny_hf_config(len(tokens))
        encoder = HFBertEncoder(config, name="bert_encoder")
        encoder.load_checkpoint_weights(tiny_hf_weights(config, seed=seed))
        inputs = {name: keras.Input(shape=(None,), dtype=tf.int32, name=name)
                  for name in ("input_word_ids", "input_mask", "input_type_ids")}
        model = keras.Model(inputs, encoder(inputs), name="tiny_bert_encoder")
        model.vocab_file = tf.saved_model.Asset(vocab_path)
        tf.saved_model.save(model, folder)
    return folder


def make_fake_mobilebert_cache(cache_root) -> str:
    """Puts a tiny SavedModel where `resolve_encoder('mobilebert')` looks for its download.

    Point $TEXTCLF_CACHE at `cache_root` to exercise the default encoder offline.
    """
    target = os.path.join(str(cache_root), "encoders", "mobilebert_tiny")
    make_tiny_savedmodel_encoder(target)
    return str(cache_root)


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
        hidden = _gelu(linear(x, p + "intermediate.dense"))
        x = _layer_norm(x + linear(hidden, p + "output.dense"),
                        w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], eps)
    pooled = np.tanh(linear(x[:, 0], "pooler.dense")) if "pooler.dense.weight" in w else None
    return {"sequence_output": x, "pooled_output": pooled}
