"""The tokenized split folder: TFRecord shards of int64 features and `meta.json`, written and
read here only.

Layout (docs/contracts.md): `tokens-NNNNN-of-MMMMM.tfrecord` shards of `tf.train.Example`s, one per
text, with the tokenizer's features ([seq_len] each), `length` (real tokens including the
tokenizer's specials) and `label` (index into the label names); and `meta.json`, the split's
profile: "num_examples", "truncated", "empty_after_tokenization", "unknown_tokens",
"length_counts", "label_counts", plus what every reader needs ("seq_len", "features",
"label_names", "architecture", ...). Shards hold contiguous runs of the split in its original
order, so reading them in name order gives the examples in order.

The per-batch encoder here is what the Beam workers run and what the Model Maker-compatible API
calls in-process, so both write byte-identical folders.
"""

from __future__ import annotations

import glob
import json
import math
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from components import storage
from components.errors import DataSourceError, InputFormatError
from components.tfrecord import serialize_examples, tfrecord_frame

META_FILE = "meta.json"
SHARD_GLOB = "tokens-*-of-*.tfrecord"
EXAMPLES_PER_SHARD = 100_000
BATCH_SIZE = 1024
LENGTH, LABEL = "length", "label"
SCORES = "teacher_scores"  # float32 [classes]: a teacher's class probabilities (distillation)
# A training split where more texts than this tokenize to nothing cannot make a model; above
# `EMPTY_WARNING` of them (any split) the report says so.
EMPTY_ERROR = 0.5
EMPTY_WARNING = 0.05

# Counters summed over batches; "max_length" is a max, the dict-valued ones are merged by key.
SUM_STATS = ("num_examples", "truncated", "empty_after_tokenization", "tokens", "unknown_tokens", "scored")
DICT_STATS = ("length_counts", "label_counts", "unknown_labels")


def shard_name(index: int, count: int) -> str:
    return f"tokens-{index:05d}-of-{count:05d}.tfrecord"


def shard_count(num_examples: int, requested: int) -> int:
    """`requested` shards (never an empty one), or one per `EXAMPLES_PER_SHARD` when 0."""
    if num_examples <= 0:
        return 1
    if requested > 0:
        return min(requested, num_examples)
    return max(1, math.ceil(num_examples / EXAMPLES_PER_SHARD))


# ----------------------------------------------------------------------------------------------
# Encoding batches and their profile counters

def empty_stats() -> Dict[str, Any]:
    stats: Dict[str, Any] = {name: 0 for name in SUM_STATS}
    stats["max_length"] = 0
    for name in DICT_STATS:
        stats[name] = {}
    return stats


def merge_stats(a: Dict[str, Any], b: Mapping[str, Any]) -> Dict[str, Any]:
    for name in SUM_STATS:
        a[name] += b[name]
    a["max_length"] = max(a["max_length"], b["max_length"])
    for name in DICT_STATS:
        target = a[name]
        for key, value in b[name].items():
            target[key] = target.get(key, 0) + value
    return a


def _batch_stats(lengths: np.ndarray, raw: np.ndarray, cap: int, ids: np.ndarray, unk_id: int,
                 labels: np.ndarray, unknown_labels: Mapping[str, int]) -> Dict[str, Any]:
    values, counts = np.unique(lengths, return_counts=True)
    label_values, label_counts = np.unique(labels[labels >= 0], return_counts=True)
    return {
        "num_examples": int(len(lengths)),
        "truncated": int((raw > cap).sum()),
        "empty_after_tokenization": int((raw == 0).sum()),
        "tokens": int(lengths.sum()),
        "unknown_tokens": int((ids == unk_id).sum()),
        "max_length": int(lengths.max()) if len(lengths) else 0,
        "length_counts": {int(v): int(c) for v, c in zip(values, counts)},
        "label_counts": {int(v): int(c) for v, c in zip(label_values, label_counts)},
        "unknown_labels": dict(unknown_labels),
    }


def encode_batch(tokenizer, texts: Sequence[str], labels: Sequence[int],
                 unknown_labels: Optional[Mapping[str, int]] = None,
                 scores: Optional[Sequence[Sequence[float]]] = None) -> Tuple[List[bytes], Dict[str, Any]]:
    """One batch of texts (and a teacher's scores for them) -> serialized examples plus its
    profile counters."""
    label_array = np.asarray(labels, dtype=np.int64).reshape(len(texts))
    features, raw = tokenizer.encode_features(texts)
    features = dict(features, **{LABEL: label_array})
    if scores is not None:
        features[SCORES] = np.asarray(scores, dtype=np.float32).reshape(len(texts), -1)
    cap = tokenizer.seq_len - tokenizer.num_special
    stats = _batch_stats(features[LENGTH], raw, cap, features[tokenizer.id_feature],
                         tokenizer.unknown_id, label_array, unknown_labels or {})
    stats["scored"] = len(texts) if scores is not None else 0
    return serialize_examples(features), stats


# ----------------------------------------------------------------------------------------------
# meta.json

def dump_json(value) -> bytes:
    return (json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def base_meta(architecture: str, recipe, label_names: Sequence[str], model_options,
              seq_len_fitted: bool) -> Dict[str, Any]:
    """The fields every split's meta.json carries besides its counters, `seq_len` and
    `vocab_size` (known once the pipeline has counted)."""
    return {
        "architecture": architecture,
        "label_names": list(label_names),
        "do_lower_case": recipe.do_lower_case,
        "features": list(recipe.feature_names) + [LENGTH, LABEL],
        "model_options": model_options.to_dict(),
        "seq_len_fitted": bool(seq_len_fitted),
    }


def write_split_meta(stats: Dict[str, Any], folder: str, base: Dict[str, Any],
                     num_shards: int) -> Dict[str, Any]:
    """meta.json for one split (and an empty shard for an empty split, so readers find one)."""
    label_names = base["label_names"]
    meta = dict(base)
    meta.update({name: stats[name] for name in SUM_STATS})
    meta["max_length"] = stats["max_length"]
    meta["num_shards"] = shard_count(stats["num_examples"], num_shards)
    meta["length_counts"] = {str(k): v for k, v in sorted(stats["length_counts"].items())}
    meta["label_counts"] = {label_names[k]: v for k, v in sorted(stats["label_counts"].items())}
    meta["unknown_labels"] = dict(sorted(stats["unknown_labels"].items()))
    if stats["scored"]:
        if stats["scored"] != stats["num_examples"]:
            raise InputFormatError(f"{folder}: {stats['scored']} of {stats['num_examples']} examples carry "
                                   "teacher scores; a split has them for all its examples or none")
        meta["features"] = list(meta["features"]) + [SCORES]
    if stats["num_examples"] == 0:
        storage.write_bytes(storage.join(folder, shard_name(0, 1)), b"")
    storage.write_bytes(storage.join(folder, META_FILE), dump_json(meta))
    return meta


def update_meta(folder: str, meta: Mapping[str, Any]) -> None:
    storage.write_bytes(storage.join(folder, META_FILE), dump_json(dict(meta)))


def read_meta(folder: str) -> Dict[str, Any]:
    path = storage.join(folder, META_FILE)
    if not storage.exists(path):
        raise DataSourceError(f"{path}: not found; is this a preprocess output folder?")
    try:
        return json.loads(storage.read_bytes(path).decode("utf-8"))
    except ValueError as e:
        raise DataSourceError(f"{path}: not valid JSON ({e})") from None


def check_texts(metas: Mapping[str, Mapping[str, Any]], split_dirs: Mapping[str, str]) -> List[str]:
    """Refuses a training split that mostly tokenizes to nothing; returns warnings for the report."""
    warnings = []
    for name, meta in sorted(metas.items()):
        total, empty = meta["num_examples"], meta["empty_after_tokenization"]
        if not total or not empty:
            continue
        share = empty / total
        if name == "train" and share > EMPTY_ERROR:
            raise InputFormatError(
                f"{empty} of {total} training texts ({share:.0%}) hold no token the tokenizer keeps "
                "(letters, digits, apostrophes for the regex tokenizer; word pieces for BERT). Check "
                "text_column (is it the label or an id?), the encoding, and that the texts are text",
                path=split_dirs[name])
        if share > EMPTY_WARNING:
            warnings.append(f"{empty} of {total} {name} texts ({share:.0%}) tokenize to nothing; "
                            "the model sees only <START> for them")
    return warnings


# ----------------------------------------------------------------------------------------------
# Writing in-process

def clear_local(folder: str) -> None:
    for pattern in (SHARD_GLOB, META_FILE):
        for stale in glob.glob(os.path.join(glob.escape(folder), pattern)):
            os.remove(stale)


def write_tokenized(folder: str, tokenizer, texts: Sequence[str], label_ids: Sequence[int],
                    base: Mapping[str, Any], scores: Optional[Sequence[Sequence[float]]] = None) -> Dict[str, Any]:
    """A local tokenized split folder written in-process, byte for byte what Beam writes.

    For callers that hold the texts in memory (the Model Maker-compatible API): one shard, which
    is what Beam's sharding gives below `EXAMPLES_PER_SHARD` examples.
    """
    os.makedirs(folder, exist_ok=True)
    clear_local(folder)
    stats = empty_stats()
    if len(texts):
        with open(os.path.join(folder, shard_name(0, 1)), "wb") as f:
            for start in range(0, len(texts), BATCH_SIZE):
                end = start + BATCH_SIZE
                records, batch_stats = encode_batch(tokenizer, texts[start:end], label_ids[start:end], None,
                                                    scores[start:end] if scores is not None else None)
                f.write(b"".join(map(tfrecord_frame, records)))
                merge_stats(stats, batch_stats)
    return write_split_meta(stats, folder, dict(base), 1)


# ----------------------------------------------------------------------------------------------
# Reading

def tokenized_files(folder: str) -> List[str]:
    """Shard paths in order; found by listing the folder, never from paths stored at write time."""
    import tensorflow as tf
    files = sorted(tf.io.gfile.glob(storage.join(folder, SHARD_GLOB)))
    if not files:
        raise DataSourceError(f"{folder}: no {SHARD_GLOB} files; is this a preprocess output folder?")
    return files


def model_features(meta: Mapping[str, Any]) -> List[str]:
    """The features a model takes (all but `length`, `label` and teacher scores), in the writer's order."""
    return [name for name in meta["features"] if name not in (LENGTH, LABEL, SCORES)]


def feature_spec(meta: Mapping[str, Any]):
    import tensorflow as tf
    seq_len = int(meta["seq_len"])
    spec = {name: tf.io.FixedLenFeature([seq_len], tf.int64) for name in model_features(meta)}
    spec[LENGTH] = tf.io.FixedLenFeature([], tf.int64)
    spec[LABEL] = tf.io.FixedLenFeature([], tf.int64)
    if SCORES in meta["features"]:
        spec[SCORES] = tf.io.FixedLenFeature([len(meta["label_names"])], tf.float32)
    return spec


def load_tokenized(folder: str):
    """(tf.data.Dataset of (features: dict of int32 incl. "length", label: int32), meta), in order."""
    import tensorflow as tf
    meta = read_meta(folder)
    spec = feature_spec(meta)

    def parse(records):
        parsed = tf.io.parse_example(records, spec)
        label = tf.cast(parsed.pop(LABEL), tf.int32)
        return {k: v if k == SCORES else tf.cast(v, tf.int32) for k, v in parsed.items()}, label

    dataset = (tf.data.TFRecordDataset(tokenized_files(folder))
               .batch(256)
               .map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
               .unbatch())
    return dataset, meta


def load_examples(folder: str) -> Tuple[List[Dict[str, np.ndarray]], np.ndarray, Dict[str, Any]]:
    """A tokenized split as (examples: list of {feature: 1-D int32}, labels, meta)."""
    dataset, meta = load_tokenized(folder)
    examples, labels = [], []
    for features, label in dataset.as_numpy_iterator():
        examples.append({k: np.asarray(v, np.int32).reshape(-1) for k, v in features.items() if k != SCORES})
        labels.append(int(label))
    return examples, np.asarray(labels, dtype=np.int64), dict(meta)
