"""Preprocessing step: tokenized TFRecord shards per split plus the vocabulary, as one Beam pipeline.

For AWE the vocabulary is counted on the training split only (no validation leakage), cut to the
`vocab_size` most frequent tokens with ties broken by token, and fed as a side input to the
tokenization of every split. For BERT the encoder's `vocab.txt` is validated and copied. Both use
`components.tokenizers`, the code training, evaluation and export use too.

Outputs are deterministic: the same input gives byte-identical vocabulary, shards and meta.json on
any runner. Shards hold contiguous runs of the split in its original order (shard i covers ordinals
[i*n/k, (i+1)*n/k)), so reading them in name order gives the split's examples in order.

Runners. `beam_pipeline_args` go to `PipelineOptions` unchanged.
- Without `--runner` (or with `--runner=DirectRunner`) the pipeline runs on Beam's FnApiRunner, the
  DirectRunner's batch engine, so `--direct_running_mode=in_memory|multi_threading|multi_processing`
  and `--direct_num_workers=N` apply. (Beam's DirectRunner would first try to download and start
  Prism, which ignores those flags and needs network access.)
- Any other runner is used as given, e.g.
  `--runner=DataflowRunner --project=P --region=R --temp_location=gs://B/tmp --setup_file=./setup.py`
  (workers pip-install this package from the repository's setup.py), or `--sdk_container_image=IMAGE`
  with the package preinstalled (also the way for Flink/Spark portable runners). Workers need only
  this package and its requirements; vocabularies travel inside the pipeline, not as local files.
  Split and output folders must then be visible to the workers (gs://...); Vertex AI's `/gcs/BUCKET/`
  fuse paths are rewritten to `gs://BUCKET/` for non-local runners.

Tokenized folder layout (docs/contracts.md): `tokens-NNNNN-of-MMMMM.tfrecord` shards of
`tf.train.Example` (int64 features) and `meta.json` with the profile of the split ("num_examples",
"truncated", "empty_after_tokenization", "unknown_tokens", "length_counts", "label_counts", ...).
Examples are serialized here without TensorFlow, so AWE workers never pay TensorFlow's import.
"""

from __future__ import annotations

import glob
import io
import json
import logging
import math
import os
import struct
from collections import Counter
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from components import tokenizers as tok
from components.errors import (ConfigError, DataSourceError, InputFormatError, LabelError,
                               TextClfError)
from components.options import AWE, BERT, AverageWordEmbeddingModelOptions, BertModelOptions

_LOG = logging.getLogger(__name__)

META_FILE = "meta.json"
VOCAB_FILE = "vocab.txt"
TOKENIZER_FILE = "tokenizer.json"
SPLIT_GLOB = "examples-*.jsonl"
LABELS_FILE = "labels.txt"
SHARD_GLOB = "tokens-*-of-*.tfrecord"
EXAMPLES_PER_SHARD = 100_000
BATCH_SIZE = 1024

AWE_FEATURES = ("input_ids",)
BERT_FEATURES = tok.BERT_FEATURES
# Counters summed over batches; "max_length" is a max, the dict-valued ones are merged by key.
_SUM_STATS = ("num_examples", "truncated", "empty_after_tokenization", "tokens", "unknown_tokens")
_DICT_STATS = ("length_counts", "label_counts", "unknown_labels")


def shard_name(index: int, count: int) -> str:
    return f"tokens-{index:05d}-of-{count:05d}.tfrecord"


def _join(folder: str, name: str) -> str:
    return folder.rstrip("/") + "/" + name if "://" in folder else os.path.join(folder, name)


def _shard_count(num_examples: int, requested: int) -> int:
    if num_examples <= 0:
        return 1
    if requested > 0:
        return min(requested, num_examples)  # never an empty shard
    return max(1, math.ceil(num_examples / EXAMPLES_PER_SHARD))


# ----------------------------------------------------------------------------------------------
# tf.train.Example / TFRecord encoding without TensorFlow.

_VARINT_TABLE = []
for _n in range(1 << 14):
    _VARINT_TABLE.append(bytes([_n]) if _n < 0x80 else bytes([(_n & 0x7F) | 0x80, _n >> 7]))
del _n


def _varint(n: int) -> bytes:
    if n < 16384:
        return _VARINT_TABLE[n]
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _packed_varints(values: np.ndarray) -> Tuple[bytes, np.ndarray]:
    """Protobuf varints of every row of an int array [n, k], concatenated, and row byte offsets.

    Vectorized because this is the hot loop of writing examples (n*seq_len values per batch).
    Byte 0 of every value is scattered at once, later bytes only for the few values that need
    them (most ids are small and padding is 0). Negative numbers become 10-byte two's-complement
    varints, as protobuf's int64 does.
    """
    n = len(values)
    flat = np.ascontiguousarray(values, dtype=np.int64).reshape(-1).view(np.uint64)
    offsets = np.zeros(n + 1, dtype=np.int64)
    if not flat.size:
        return b"", offsets
    nbytes = None
    width = 1
    for k in range(1, 10):
        above = flat >= np.uint64(1 << (7 * k))
        if not above.any():
            break
        nbytes = above.astype(np.int32) if nbytes is None else nbytes + above
        width += 1
    if nbytes is None:  # every value fits one byte
        offsets[1:] = np.arange(1, n + 1) * (flat.size // n)
        return flat.astype(np.uint8).tobytes(), offsets
    nbytes += 1
    ends = np.cumsum(nbytes, dtype=np.int64)
    starts = ends - nbytes
    out = np.empty(int(ends[-1]), dtype=np.uint8)
    out[starts] = (flat.astype(np.uint8) & np.uint8(0x7F)) | (nbytes > 1).view(np.uint8) << np.uint8(7)
    for level in range(1, width):
        chosen = np.flatnonzero(nbytes > level)
        part = (flat[chosen] >> np.uint64(7 * level)).astype(np.uint8) & np.uint8(0x7F)
        more = (nbytes[chosen] > level + 1).view(np.uint8) << np.uint8(7)
        out[starts[chosen] + level] = part | more
    offsets[1:] = ends.reshape(n, -1)[:, -1]
    return out.tobytes(), offsets


def _feature_prefix(header: bytes, packed_length: int) -> bytes:
    """Everything of a map entry `name -> Feature(int64_list)` before its packed values."""
    int64_list = 1 + len(_varint(packed_length)) + packed_length
    feature = 1 + len(_varint(int64_list)) + int64_list
    entry = len(header) + len(_varint(feature)) + feature
    return b"".join((b"\x0a", _varint(entry), header, _varint(feature), b"\x1a",
                     _varint(int64_list), b"\x0a", _varint(packed_length)))


def serialize_examples(features: Mapping[str, np.ndarray]) -> List[bytes]:
    """Serialized `tf.train.Example`s with one int64 feature per key ([n] or [n, k] arrays).

    Protobuf wire format written directly: TensorFlow's protos would make every AWE worker import
    TensorFlow, and per-example message building is the slowest part of preprocessing. Entry
    prefixes depend only on the packed length (and whole entries of scalars only on the value), so
    they are cached; keys are written sorted, which keeps the bytes deterministic.
    """
    names = sorted(features)
    n = len(features[names[0]]) if names else 0
    columns = []
    for name in names:
        values = np.asarray(features[name])
        if len(values) != n:
            raise ValueError(f"feature {name!r} has {len(values)} rows, expected {n}")
        data, offsets = _packed_varints(values)
        key = name.encode("utf-8")
        header = b"\x0a" + _varint(len(key)) + key + b"\x12"
        columns.append((header, data, offsets.tolist(), values.ndim == 1, {}))
    records = []
    append = records.append
    for i in range(n):
        parts = []
        for header, data, offsets, scalar, cache in columns:
            packed = data[offsets[i]:offsets[i + 1]]
            if scalar:
                entry = cache.get(packed)
                if entry is None:
                    entry = cache[packed] = _feature_prefix(header, len(packed)) + packed
                parts.append(entry)
            else:
                prefix = cache.get(len(packed))
                if prefix is None:
                    prefix = cache[len(packed)] = _feature_prefix(header, len(packed))
                parts.append(prefix)
                parts.append(packed)
        body = b"".join(parts)
        append(b"\x0a" + _varint(len(body)) + body)
    return records


def _masked_crc(data: bytes) -> int:
    import google_crc32c
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def tfrecord_frame(record: bytes) -> bytes:
    """One TFRecord entry: length, CRC of length, payload, CRC of payload (masked CRC32C)."""
    length = struct.pack("<Q", len(record))
    return b"".join((length, struct.pack("<I", _masked_crc(length)), record,
                     struct.pack("<I", _masked_crc(record))))


# ----------------------------------------------------------------------------------------------
# Per-batch work, independent of Beam (kept as functions so tests can call them directly).

def _empty_stats() -> Dict[str, Any]:
    stats: Dict[str, Any] = {name: 0 for name in _SUM_STATS}
    stats["max_length"] = 0
    for name in _DICT_STATS:
        stats[name] = {}
    return stats


def merge_stats(a: Dict[str, Any], b: Mapping[str, Any]) -> Dict[str, Any]:
    for name in _SUM_STATS:
        a[name] += b[name]
    a["max_length"] = max(a["max_length"], b["max_length"])
    for name in _DICT_STATS:
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


def encode_batch(tokenizer, architecture: str, texts: Sequence[str], labels: Sequence[int],
                 unknown_labels: Optional[Mapping[str, int]] = None
                 ) -> Tuple[List[bytes], Dict[str, Any]]:
    """Tokenizes one batch into serialized examples plus its profile counters."""
    label_array = np.asarray(labels, dtype=np.int64).reshape(len(texts))
    if architecture == AWE:
        ids, lengths, raw = tokenizer.encode_batch_profiled(texts)
        features = {"input_ids": ids, "length": lengths, "label": label_array}
        cap, main, unk = tokenizer.seq_len - 1, ids, tokenizer.unknown_id
    else:
        features, raw = tokenizer.encode_batch_profiled(texts)
        lengths = features["length"]
        features = dict(features, label=label_array)
        cap, main, unk = tokenizer.seq_len - 2, features["input_word_ids"], tokenizer.unk_id
    stats = _batch_stats(lengths, raw, cap, main, unk, label_array, unknown_labels or {})
    return serialize_examples(features), stats


# ----------------------------------------------------------------------------------------------
# Beam transforms. Imported lazily so that `load_tokenized` users do not need Beam at hand.

def _beam():
    import apache_beam as beam
    return beam


def _filesystems():
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems
    return FileSystems, CompressionTypes.UNCOMPRESSED


def _read_split_batches(element, label_names: Sequence[str], batch_size: int):
    """(file_idx, path) -> (file_idx, first ordinal in file, texts, label ids, unknown labels)."""
    file_idx, path = element
    index = {name: i for i, name in enumerate(label_names)}
    file_systems, uncompressed = _filesystems()
    texts: List[str] = []
    labels: List[int] = []
    unknown: Counter = Counter()
    start = 0
    with file_systems.open(path, compression_type=uncompressed) as raw:
        stream = io.TextIOWrapper(raw, encoding="utf-8", newline="\n")
        for line_number, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                text, label = record["text"], record["label"]
            except (ValueError, KeyError, TypeError) as e:
                raise InputFormatError(f"not a split record ({e})", path=path,
                                       line=line_number) from None
            if not isinstance(text, str):
                raise InputFormatError(f"'text' must be a string, got {type(text).__name__}",
                                       path=path, line=line_number)
            label = label if isinstance(label, str) else str(label)
            label_id = index.get(label, -1)
            if label_id < 0:
                unknown[label] += 1
            texts.append(text)
            labels.append(label_id)
            if len(texts) == batch_size:
                yield file_idx, start, texts, labels, dict(unknown)
                start += len(texts)
                texts, labels, unknown = [], [], Counter()
    if texts:
        yield file_idx, start, texts, labels, dict(unknown)


def _batch_size_of(batch) -> Tuple[int, int]:
    return batch[0], len(batch[2])


def _vocab_from_top(top: List[Tuple[str, int]], vocab_size: int) -> List[str]:
    return tok.build_awe_vocab(dict(top), vocab_size)


def _write_vocab(tokens: List[str], path: str) -> int:
    tok.write_awe_vocab(path, tokens)
    return len(tokens)


def _make_dofns():
    """DoFn classes, defined on first use so importing this module does not import Beam."""
    beam = _beam()
    from apache_beam.transforms.window import GlobalWindow
    from apache_beam.utils.windowed_value import WindowedValue

    class CountTokens(beam.DoFn):
        """Token frequencies pre-aggregated per bundle: far fewer elements reach the shuffle."""

        def __init__(self, do_lower_case: bool):
            self._do_lower_case = do_lower_case
            self._counts: Counter = Counter()

        def start_bundle(self):
            self._counts = Counter()

        def process(self, batch):
            tok.count_words(batch[2], self._do_lower_case, self._counts)
            return ()

        def finish_bundle(self):
            window = GlobalWindow()
            for item in self._counts.items():
                yield WindowedValue(item, window.max_timestamp(), (window,))
            self._counts = Counter()

    class Encode(beam.DoFn):
        """Batch -> (file_idx, first ordinal, serialized examples, profile counters)."""

        def __init__(self, architecture: str, seq_len: int, do_lower_case: bool,
                     bert_tokens: Optional[List[str]] = None):
            self._architecture = architecture
            self._seq_len = seq_len
            self._do_lower_case = do_lower_case
            self._bert_tokens = bert_tokens
            self._tokenizer = None
            self._vocab_key = None

        def setup(self):
            if self._architecture == BERT:
                self._tokenizer = tok.BertTokenizer.from_tokens(
                    self._bert_tokens, self._seq_len, self._do_lower_case)

        def _awe_tokenizer(self, vocab: List[str]):
            key = (len(vocab), vocab[-1] if vocab else None, id(vocab))
            if self._tokenizer is None or key != self._vocab_key:
                self._tokenizer = tok.RegexTokenizer(
                    {t: i for i, t in enumerate(vocab)}, self._seq_len, self._do_lower_case)
                self._vocab_key = key
            return self._tokenizer

        def process(self, batch, vocab=None):
            file_idx, start, texts, labels, unknown = batch
            tokenizer = self._awe_tokenizer(vocab) if self._architecture == AWE else self._tokenizer
            records, stats = encode_batch(tokenizer, self._architecture, texts, labels, unknown)
            yield file_idx, start, records, stats

    class AssignShards(beam.DoFn):
        """Cuts encoded batches at shard boundaries so shards are contiguous runs of the split."""

        def __init__(self, num_shards: int):
            self._num_shards = num_shards

        def process(self, encoded, counts):
            file_idx, start, records, _ = encoded
            total = sum(counts.values())
            shards = _shard_count(total, self._num_shards)
            first = start + sum(c for f, c in counts.items() if f < file_idx)
            i, m = 0, len(records)
            while i < m:
                shard = (first + i) * shards // total
                end = min(m, -(-(shard + 1) * total // shards) - first)
                yield (shard, shards), (first + i, records[i:end])
                i = end

    class WriteShard(beam.DoFn):
        def __init__(self, folder: str):
            self._folder = folder

        def process(self, element):
            (shard, shards), chunks = element
            file_systems, uncompressed = _filesystems()
            path = _join(self._folder, shard_name(shard, shards))
            count = 0
            with file_systems.create(path, mime_type="application/octet-stream",
                                     compression_type=uncompressed) as f:
                for _, records in sorted(chunks, key=lambda chunk: chunk[0]):
                    f.write(b"".join(map(tfrecord_frame, records)))
                    count += len(records)
            yield shard, count

    return CountTokens, Encode, AssignShards, WriteShard


def _stats_combine_fn():
    beam = _beam()

    class CombineStats(beam.CombineFn):
        def create_accumulator(self):
            return _empty_stats()

        def add_input(self, accumulator, stats):
            return merge_stats(accumulator, stats)

        def merge_accumulators(self, accumulators):
            result = _empty_stats()
            for accumulator in accumulators:
                merge_stats(result, accumulator)
            return result

        def extract_output(self, accumulator):
            return accumulator

    return CombineStats()


def _write_split_meta(stats: Dict[str, Any], folder: str, base: Dict[str, Any],
                      num_shards: int) -> Dict[str, Any]:
    """Runs in the pipeline: meta.json for one split, and an empty shard for an empty split."""
    label_names = base["label_names"]
    meta = dict(base)
    meta.update({name: stats[name] for name in _SUM_STATS})
    meta["max_length"] = stats["max_length"]
    meta["num_shards"] = _shard_count(stats["num_examples"], num_shards)
    meta["length_counts"] = {str(k): v for k, v in sorted(stats["length_counts"].items())}
    meta["label_counts"] = {label_names[k]: v for k, v in sorted(stats["label_counts"].items())}
    meta["unknown_labels"] = dict(sorted(stats["unknown_labels"].items()))
    if stats["num_examples"] == 0:
        tok._write_bytes(_join(folder, shard_name(0, 1)), b"")
    tok._write_bytes(_join(folder, META_FILE), _dump_json(meta))
    return meta


def _dump_json(value) -> bytes:
    return (json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def write_tokenizer_info(vocab_dir: str, do_lower_case: bool) -> None:
    """tokenizer.json beside a BERT vocabulary: the casing every later step must tokenize with."""
    tok._write_bytes(_join(vocab_dir, TOKENIZER_FILE), _dump_json({"do_lower_case": bool(do_lower_case)}))


def write_tokenized(folder: str, architecture: str, tokenizer, texts: Sequence[str],
                    label_ids: Sequence[int], base_meta: Mapping[str, Any]) -> Dict[str, Any]:
    """A local tokenized split folder written in-process, byte for byte what Beam writes.

    For callers that hold the texts in memory (the Model Maker-compatible API): the workers'
    own encoder, record framing and meta.json code, one shard (what Beam's sharding gives below
    `EXAMPLES_PER_SHARD` examples, so keep it to small splits). `base_meta` carries the fields
    `preprocess` puts in every split's meta.json (architecture, seq_len, label_names, ...).
    """
    os.makedirs(folder, exist_ok=True)
    for pattern in (SHARD_GLOB, META_FILE):
        for stale in glob.glob(os.path.join(glob.escape(folder), pattern)):
            os.remove(stale)
    stats = _empty_stats()
    if len(texts):
        with open(os.path.join(folder, shard_name(0, 1)), "wb") as f:
            for start in range(0, len(texts), BATCH_SIZE):
                end = start + BATCH_SIZE
                records, batch_stats = encode_batch(tokenizer, architecture, texts[start:end], label_ids[start:end])
                f.write(b"".join(map(tfrecord_frame, records)))
                merge_stats(stats, batch_stats)
    return _write_split_meta(stats, folder, dict(base_meta), 1)


# ----------------------------------------------------------------------------------------------
# Launcher side.

def _is_direct_runner(runner) -> bool:
    if runner is None:
        return True
    name = runner if isinstance(runner, str) else type(runner).__name__
    return name.rsplit(".", 1)[-1].lower() in ("direct", "directrunner", "switchingdirectrunner")


def _local_runner(options):
    """FnApiRunner set up as the DirectRunner would, so --direct_* flags take effect."""
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    try:
        from apache_beam.portability.api import beam_provision_api_pb2
        from apache_beam.runners.portability.portable_runner import JobServiceHandle
        encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
        return fn_runner.FnApiRunner(provision_info=fn_runner.ExtendedProvisionInfo(
            beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded)))
    except (ImportError, AttributeError, TypeError):  # internal API moved: plain FnApiRunner
        return fn_runner.FnApiRunner()


def _worker_path(path: str, remote: bool) -> str:
    if remote and path.startswith("/gcs/"):
        return "gs://" + path[len("/gcs/"):]
    return path


def _list_split(folder: str) -> List[Tuple[str, int]]:
    file_systems, _ = _filesystems()
    try:
        matches = file_systems.match([_join(folder, SPLIT_GLOB)])[0].metadata_list
    except Exception as e:  # Beam raises BeamIOError for unreadable locations
        raise DataSourceError(f"{folder}: cannot list split files ({e})") from None
    files = sorted((m.path, m.size_in_bytes) for m in matches)
    if not files:
        raise DataSourceError(f"{folder}: no {SPLIT_GLOB} files; is this an ingest output split?")
    return files


def _read_label_names(folder: str) -> List[str]:
    path = _join(folder, LABELS_FILE)
    if not tok._exists(path):
        raise DataSourceError(f"{path}: label file not found")
    names = [line for line in tok._read_bytes(path).decode("utf-8").split("\n") if line]
    if len(names) < 2:
        raise LabelError(f"{path}: needs at least two label names, found {len(names)}")
    return names


def _clear_outputs(folder: str, names: Iterable[str]) -> None:
    file_systems, _ = _filesystems()
    stale = []
    for pattern in names:
        try:
            stale += [m.path for m in file_systems.match([_join(folder, pattern)])[0].metadata_list]
        except Exception:  # nothing there yet
            pass
    if stale:
        file_systems.delete(stale)


def _resolve_options(architecture: str, model_options):
    expected = AverageWordEmbeddingModelOptions if architecture == AWE else BertModelOptions
    if model_options is None:
        return expected()
    if isinstance(model_options, Mapping):
        return expected.from_dict(model_options)
    if not isinstance(model_options, expected):
        raise ConfigError(f"{architecture} preprocessing needs {expected.__name__}, "
                          f"got {type(model_options).__name__}")
    return model_options


def _run_pipeline(pipeline, beam, architecture, splits, files, output_dirs, vocab_dir, options,
                  label_names, seq_len, do_lower_case, bert_tokens, num_shards, base_meta, worker):
    """Builds and runs the graph: read -> (AWE: count, top-k vocab) -> encode -> shards + meta."""
    CountTokens, Encode, AssignShards, WriteShard = _make_dofns()
    with pipeline as p:
        batches = {}
        for name in sorted(splits):
            batches[name] = (
                p
                | f"{name}/ListFiles" >> beam.Create(
                    [(i, worker(path)) for i, (path, _) in enumerate(files[name])])
                | f"{name}/Distribute" >> beam.Reshuffle()
                | f"{name}/Read" >> beam.FlatMap(_read_split_batches, label_names, BATCH_SIZE))

        vocab_side = ()
        if architecture == AWE:
            vocab = (
                batches["train"]
                | "vocab/Count" >> beam.ParDo(CountTokens(do_lower_case))
                | "vocab/Sum" >> beam.CombinePerKey(sum)
                | "vocab/Top" >> beam.combiners.Top.Of(options.vocab_size, key=tok._rank_key,
                                                        reverse=True)
                | "vocab/Build" >> beam.Map(_vocab_from_top, options.vocab_size))
            _ = vocab | "vocab/Write" >> beam.Map(_write_vocab, worker(_join(vocab_dir, VOCAB_FILE)))
            vocab_side = (beam.pvalue.AsSingleton(vocab),)

        for name in sorted(splits):
            out = worker(output_dirs[name])
            counts = (batches[name]
                      | f"{name}/RowsPerFile" >> beam.Map(_batch_size_of)
                      | f"{name}/SumRows" >> beam.CombinePerKey(sum))
            encoded = batches[name] | f"{name}/Encode" >> beam.ParDo(
                Encode(architecture, seq_len, do_lower_case, bert_tokens), *vocab_side)
            _ = (encoded
                 | f"{name}/AssignShards" >> beam.ParDo(AssignShards(num_shards),
                                                        beam.pvalue.AsDict(counts))
                 | f"{name}/GroupShards" >> beam.GroupByKey()
                 | f"{name}/WriteShards" >> beam.ParDo(WriteShard(out)))
            _ = (encoded
                 | f"{name}/Stats" >> beam.Map(lambda e: e[3])
                 | f"{name}/CombineStats" >> beam.CombineGlobally(_stats_combine_fn())
                 | f"{name}/WriteMeta" >> beam.Map(_write_split_meta, out,
                                                   dict(base_meta, split=name), num_shards))


def _reraise_worker_error(error: Exception) -> None:
    """Runners with worker processes report our errors as text; raise them as the typed error."""
    import re
    from components import errors
    match = re.search(r"components\.errors\.(\w+): ([^\n]*)", str(error))
    if match:
        error_type = getattr(errors, match.group(1), None)
        if isinstance(error_type, type) and issubclass(error_type, TextClfError):
            raise error_type(match.group(2)) from error


def preprocess(architecture: str, splits: Mapping[str, str], output_dirs: Mapping[str, str],
               vocab_dir: str, model_options=None, bert_vocab_path: Optional[str] = None,
               bert_do_lower_case: Optional[bool] = None,
               beam_pipeline_args: Optional[Sequence[str]] = None, num_shards: int = 0
               ) -> Dict[str, Any]:
    """Tokenizes every split with one Beam pipeline; returns the summary also stored in meta.json.

    `splits` maps split names to ingest split folders and must include "train"; `output_dirs` maps
    the same names to tokenized output folders. `num_shards` 0 picks one shard per
    100,000 examples. Raises ConfigError, DataSourceError, InputFormatError (empty training split,
    malformed records), LabelError (labels unseen in training) or VocabularyError.
    """
    architecture = (architecture or "").strip().lower()
    if architecture not in (AWE, BERT):
        raise ConfigError(f"architecture must be '{AWE}' or '{BERT}', got {architecture!r}")
    options = _resolve_options(architecture, model_options)
    seq_len = tok._check_seq_len(options.seq_len)
    if "train" not in splits:
        raise ConfigError(f"splits must include 'train'; got {', '.join(sorted(splits)) or 'none'}")
    missing_outputs = sorted(set(splits) - set(output_dirs))
    if missing_outputs:
        raise ConfigError(f"no output folder for split(s) {', '.join(missing_outputs)}")
    if num_shards < 0:
        raise ConfigError(f"num_shards must not be negative, got {num_shards}")
    folders = [os.path.normpath(output_dirs[name]) for name in splits]
    if len(set(folders)) != len(folders):
        raise ConfigError("every split needs its own output folder")

    files = {name: _list_split(folder) for name, folder in splits.items()}
    if sum(size for _, size in files["train"]) == 0:
        raise InputFormatError("the training split has no examples; there is nothing to build a "
                               "vocabulary from or to train on", path=splits["train"])
    label_names = _read_label_names(splits["train"])

    beam = _beam()
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
    pipeline_options = PipelineOptions(list(beam_pipeline_args or []))
    runner_option = pipeline_options.view_as(StandardOptions).runner
    local = _is_direct_runner(runner_option)

    def worker(path: str) -> str:
        return _worker_path(path, not local)

    bert_tokens = None
    if architecture == BERT:
        if not bert_vocab_path:
            raise ConfigError("BERT preprocessing needs bert_vocab_path (the encoder's vocab.txt)")
        bert_vocab = tok.load_bert_vocab(bert_vocab_path)
        bert_vocab_bytes = tok._read_bytes(bert_vocab_path)  # before clearing: it may live in vocab_dir
        bert_tokens = list(bert_vocab)
        do_lower_case = (tok.infer_bert_do_lower_case(bert_tokens, bert_vocab_path)
                         if bert_do_lower_case is None else bool(bert_do_lower_case))
        vocab_size = len(bert_tokens)
    else:
        do_lower_case = bool(options.do_lower_case)
        vocab_size = None

    _clear_outputs(vocab_dir, (VOCAB_FILE, TOKENIZER_FILE))
    for name in splits:
        _clear_outputs(output_dirs[name], (SHARD_GLOB, META_FILE))
    if architecture == BERT:
        tok._write_bytes(_join(vocab_dir, VOCAB_FILE), bert_vocab_bytes)
        write_tokenizer_info(vocab_dir, do_lower_case)

    base_meta = {
        "architecture": architecture,
        "seq_len": seq_len,
        "label_names": label_names,
        "do_lower_case": do_lower_case,
        "features": list(AWE_FEATURES if architecture == AWE else BERT_FEATURES)
        + ["length", "label"],
        "model_options": options.to_dict(),
    }
    pipeline = beam.Pipeline(runner=_local_runner(pipeline_options) if local else None,
                             options=pipeline_options)
    try:
        _run_pipeline(pipeline, beam, architecture, splits, files, output_dirs, vocab_dir, options,
                      label_names, seq_len, do_lower_case, bert_tokens, num_shards, base_meta,
                      worker)
    except TextClfError:
        raise
    except Exception as e:
        _reraise_worker_error(e)
        raise

    metas = {name: read_meta(output_dirs[name]) for name in splits}
    if metas["train"]["num_examples"] == 0:
        raise InputFormatError("the training split has no examples", path=splits["train"])
    unknown = {name: meta["unknown_labels"] for name, meta in metas.items() if meta["unknown_labels"]}
    if unknown:
        details = "; ".join(f"{name}: {labels}" for name, labels in sorted(unknown.items()))
        raise LabelError(f"labels not among the training labels {label_names}: {details}")
    if vocab_size is None:
        vocab_size = len(tok.load_awe_vocab(_join(vocab_dir, VOCAB_FILE)))
    summary = {
        "architecture": architecture,
        "seq_len": seq_len,
        "do_lower_case": do_lower_case,
        "vocab_size": vocab_size,
        "label_names": label_names,
        "splits": {name: {key: meta[key] for key in _SUM_STATS + (
            "max_length", "num_shards", "label_counts")} for name, meta in sorted(metas.items())},
    }
    for name, meta in metas.items():
        meta.update(vocab_size=vocab_size, splits=summary["splits"])
        tok._write_bytes(_join(output_dirs[name], META_FILE), _dump_json(meta))
        if meta["num_examples"] and meta["empty_after_tokenization"]:
            _LOG.warning("%s: %d of %d texts tokenize to nothing", name,
                         meta["empty_after_tokenization"], meta["num_examples"])
    return summary


# ----------------------------------------------------------------------------------------------
# Reading the output.

def read_meta(folder: str) -> Dict[str, Any]:
    path = _join(folder, META_FILE)
    if not tok._exists(path):
        raise DataSourceError(f"{path}: not found; is this a preprocess output folder?")
    try:
        return json.loads(tok._read_bytes(path).decode("utf-8"))
    except ValueError as e:
        raise DataSourceError(f"{path}: not valid JSON ({e})") from None


def tokenized_files(folder: str) -> List[str]:
    """Shard paths in order; found by listing the folder, never from paths stored at write time."""
    import tensorflow as tf
    files = sorted(tf.io.gfile.glob(_join(folder, SHARD_GLOB)))
    if not files:
        raise DataSourceError(f"{folder}: no {SHARD_GLOB} files; is this a preprocess output folder?")
    return files


def feature_spec(meta: Mapping[str, Any]):
    import tensorflow as tf
    seq_len = int(meta["seq_len"])
    names = AWE_FEATURES if meta["architecture"] == AWE else BERT_FEATURES
    spec = {name: tf.io.FixedLenFeature([seq_len], tf.int64) for name in names}
    spec["length"] = tf.io.FixedLenFeature([], tf.int64)
    spec["label"] = tf.io.FixedLenFeature([], tf.int64)
    return spec


def load_tokenized(folder: str):
    """(tf.data.Dataset of (features: dict of int32 incl. "length", label: int32), meta), in order."""
    import tensorflow as tf
    meta = read_meta(folder)
    spec = feature_spec(meta)

    def parse(records):
        parsed = tf.io.parse_example(records, spec)
        label = tf.cast(parsed.pop("label"), tf.int32)
        return {k: tf.cast(v, tf.int32) for k, v in parsed.items()}, label

    dataset = (tf.data.TFRecordDataset(tokenized_files(folder))
               .batch(256)
               .map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
               .unbatch())
    return dataset, meta
