"""Preprocessing step: the vocabulary and a tokenized folder per split, as one Beam pipeline.

The architecture's spec says how (`ArchitectureSpec.vocabulary_plan`): a vocabulary counted on the
training split only (no validation leakage: the most frequent tokens, ties broken by token) and fed
as a side input to the tokenization of every split, or an encoder's own vocabulary, validated and
copied. With `seq_len` 0 the input length is fitted to the longest text of all the splits given
(`tokenizers.fitted_seq_len`), also a side input. Tokenizing and writing are
`components.tokenizers` and `components.tokenized`, the code training, evaluation, export and the
Model Maker-compatible API use too.

Outputs are deterministic: the same input gives byte-identical vocabulary, shards and meta.json on
any runner. Shards hold contiguous runs of the split in its original order (shard i covers
ordinals [i*n/k, (i+1)*n/k)).

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
"""

from __future__ import annotations

import io
import logging
import os
from collections import Counter
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from components import architectures, labels, split_io, storage, tokenized
from components import tokenizers as tok
from components import vocabulary as vocab_io
from components.errors import ConfigError, DataSourceError, InputFormatError, LabelError, TextClfError

_LOG = logging.getLogger(__name__)

# ----------------------------------------------------------------------------------------------
# Beam transforms. Imported lazily so that reading tokenized folders does not need Beam at hand.

def _beam():
    import apache_beam as beam
    return beam


def _filesystems():
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems
    return FileSystems, CompressionTypes.UNCOMPRESSED


def _read_split_batches(element, label_names: Sequence[str], batch_size: int):
    """(file_idx, path) -> (file_idx, first ordinal in file, texts, label ids, unknown labels,
    teacher scores or None)."""
    file_idx, path = element
    index = {name: i for i, name in enumerate(label_names)}
    file_systems, uncompressed = _filesystems()
    texts: List[str] = []
    label_ids: List[int] = []
    scores: List[List[float]] = []
    unknown: Counter = Counter()
    start, scored = 0, None
    with file_systems.open(path, compression_type=uncompressed) as raw:
        stream = io.TextIOWrapper(raw, encoding="utf-8", newline="\n")
        for line_number, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            text, label, row_scores = split_io.parse_scored_record(line, path, line_number)
            if scored is None:
                scored = row_scores is not None
            elif scored != (row_scores is not None):
                raise InputFormatError("a split mixes records with and without teacher scores",
                                       path=path, line=line_number)
            if row_scores is not None:
                if len(row_scores) != len(label_names):
                    raise InputFormatError(f"{len(row_scores)} teacher scores for {len(label_names)} labels",
                                           path=path, line=line_number)
                scores.append(row_scores)
            label_id = index.get(label, -1)
            if label_id < 0:
                unknown[label] += 1
            texts.append(text)
            label_ids.append(label_id)
            if len(texts) == batch_size:
                yield file_idx, start, texts, label_ids, dict(unknown), scores or None
                start += len(texts)
                texts, label_ids, scores, unknown = [], [], [], Counter()
    if texts:
        yield file_idx, start, texts, label_ids, dict(unknown), scores or None


def _batch_size_of(batch) -> Tuple[int, int]:
    return batch[0], len(batch[2])


def _longest(batch, recipe: tok.TokenizerRecipe, tokens) -> int:
    counts = recipe.token_counts(batch[2], tokens)
    return int(counts.max()) if len(counts) else 0


def _write_counted_vocab(tokens: List[str], folder: str, do_lower_case: bool) -> int:
    vocab_io.write_folder(folder, vocab_io.Vocabulary(vocab_io.TOKEN_IDS, tuple(tokens), do_lower_case))
    return len(tokens)


def _make_dofns():
    """DoFn classes, defined on first use so importing this module does not import Beam."""
    beam = _beam()
    from apache_beam.transforms.window import GlobalWindow
    from apache_beam.utils.windowed_value import WindowedValue

    class CountTokens(beam.DoFn):
        """Token frequencies pre-aggregated per bundle: far fewer elements reach the shuffle."""

        def __init__(self, recipe: tok.TokenizerRecipe):
            self._recipe = recipe
            self._counts: Counter = Counter()

        def start_bundle(self):
            self._counts = Counter()

        def process(self, batch):
            self._recipe.count(batch[2], self._counts)
            return ()

        def finish_bundle(self):
            window = GlobalWindow()
            for item in self._counts.items():
                yield WindowedValue(item, window.max_timestamp(), (window,))
            self._counts = Counter()

    class Encode(beam.DoFn):
        """Batch -> (file_idx, first ordinal, serialized examples, profile counters).

        The tokenizer is rebuilt on the worker from the recipe, the tokens (fixed, or the counted
        vocabulary's side input) and the sequence length (fixed, or the fitted side input).
        """

        def __init__(self, recipe: tok.TokenizerRecipe, tokens: Optional[Sequence[str]], seq_len: int):
            self._recipe, self._tokens, self._seq_len = recipe, tokens, seq_len
            self._tokenizer, self._key = None, None

        def _tokenizer_for(self, tokens, seq_len):
            key = (id(tokens), seq_len)
            if self._tokenizer is None or key != self._key:
                self._tokenizer = self._recipe.build(tokens, seq_len)
                self._key = key
            return self._tokenizer

        def process(self, batch, vocab=None, seq_len=None):
            file_idx, start, texts, label_ids, unknown, scores = batch
            tokenizer = self._tokenizer_for(self._tokens if vocab is None else vocab,
                                            self._seq_len if seq_len is None else seq_len)
            records, stats = tokenized.encode_batch(tokenizer, texts, label_ids, unknown, scores)
            yield file_idx, start, records, stats

    class AssignShards(beam.DoFn):
        """Cuts encoded batches at shard boundaries so shards are contiguous runs of the split."""

        def __init__(self, num_shards: int):
            self._num_shards = num_shards

        def process(self, encoded, counts):
            file_idx, start, records, _ = encoded
            total = sum(counts.values())
            shards = tokenized.shard_count(total, self._num_shards)
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
            from components.tfrecord import tfrecord_frame
            (shard, shards), chunks = element
            file_systems, uncompressed = _filesystems()
            path = storage.join(self._folder, tokenized.shard_name(shard, shards))
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
            return tokenized.empty_stats()

        def add_input(self, accumulator, stats):
            return tokenized.merge_stats(accumulator, stats)

        def merge_accumulators(self, accumulators):
            result = tokenized.empty_stats()
            for accumulator in accumulators:
                tokenized.merge_stats(result, accumulator)
            return result

        def extract_output(self, accumulator):
            return accumulator

    return CombineStats()


def _write_meta(stats, folder, base, num_shards, seq_len, vocab_size):
    return tokenized.write_split_meta(stats, folder, dict(base, seq_len=seq_len, vocab_size=vocab_size),
                                      num_shards)


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
        matches = file_systems.match([storage.join(folder, split_io.SHARD_PATTERN)])[0].metadata_list
    except Exception as e:  # Beam raises BeamIOError for unreadable locations
        raise DataSourceError(f"{folder}: cannot list split files ({e})") from None
    files = sorted((m.path, m.size_in_bytes) for m in matches)
    if not files:
        raise DataSourceError(f"{folder}: no {split_io.SHARD_PATTERN} files; is this an ingest output split?")
    return files


def _clear_outputs(folder: str, names: Iterable[str]) -> None:
    file_systems, _ = _filesystems()
    stale = []
    for pattern in names:
        try:
            stale += [m.path for m in file_systems.match([storage.join(folder, pattern)])[0].metadata_list]
        except Exception:  # nothing there yet
            pass
    if stale:
        file_systems.delete(stale)


def _run_pipeline(pipeline, beam, splits, files, output_dirs, vocab_dir, plan, label_names,
                  num_shards, base, worker):
    """Builds and runs the graph: read -> (count, top-k vocabulary) -> (longest text) -> encode
    -> shards + meta."""
    CountTokens, Encode, AssignShards, WriteShard = _make_dofns()
    with pipeline as p:
        batches = {}
        for name in sorted(splits):
            batches[name] = (
                p
                | f"{name}/ListFiles" >> beam.Create(
                    [(i, worker(path)) for i, (path, _) in enumerate(files[name])])
                | f"{name}/Distribute" >> beam.Reshuffle()
                | f"{name}/Read" >> beam.FlatMap(_read_split_batches, label_names, tokenized.BATCH_SIZE))

        if plan.counts_vocabulary:
            vocab = (
                batches["train"]
                | "vocab/Count" >> beam.ParDo(CountTokens(plan.recipe))
                | "vocab/Sum" >> beam.CombinePerKey(sum)
                | "vocab/Top" >> beam.combiners.Top.Of(plan.max_size, key=tok.rank_key, reverse=True)
                | "vocab/Build" >> beam.Map(lambda top: plan.select(dict(top))))
            vocab_size = (vocab | "vocab/Write" >> beam.Map(_write_counted_vocab, worker(vocab_dir),
                                                              plan.recipe.do_lower_case))
            vocab_side = beam.pvalue.AsSingleton(vocab)
            size_side = beam.pvalue.AsSingleton(vocab_size)
        else:
            vocab_side, size_side = None, len(plan.tokens)

        if plan.seq_len:
            seq_len_side = plan.seq_len
        else:
            longest = (
                [batches[name] for name in sorted(splits)]
                | "seq_len/Flatten" >> beam.Flatten()
                | "seq_len/Longest" >> beam.Map(_longest, plan.recipe, plan.tokens)
                | "seq_len/Max" >> beam.CombineGlobally(lambda values: max(values, default=0))
                | "seq_len/Fit" >> beam.Map(tok.fitted_seq_len, plan.recipe.num_special, plan.max_seq_len))
            seq_len_side = beam.pvalue.AsSingleton(longest)

        for name in sorted(splits):
            out = worker(output_dirs[name])
            counts = (batches[name]
                      | f"{name}/RowsPerFile" >> beam.Map(_batch_size_of)
                      | f"{name}/SumRows" >> beam.CombinePerKey(sum))
            encoded = batches[name] | f"{name}/Encode" >> beam.ParDo(
                Encode(plan.recipe, plan.tokens, plan.seq_len), vocab=vocab_side, seq_len=seq_len_side)
            _ = (encoded
                 | f"{name}/AssignShards" >> beam.ParDo(AssignShards(num_shards), beam.pvalue.AsDict(counts))
                 | f"{name}/GroupShards" >> beam.GroupByKey()
                 | f"{name}/WriteShards" >> beam.ParDo(WriteShard(out)))
            _ = (encoded
                 | f"{name}/Stats" >> beam.Map(lambda e: e[3])
                 | f"{name}/CombineStats" >> beam.CombineGlobally(_stats_combine_fn())
                 | f"{name}/WriteMeta" >> beam.Map(_write_meta, out, dict(base, split=name), num_shards,
                                                   seq_len_side, size_side))


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
               vocab_dir: str, model_options=None, beam_pipeline_args: Optional[Sequence[str]] = None,
               num_shards: int = 0) -> Dict[str, Any]:
    """Tokenizes every split with one Beam pipeline; returns the summary also stored in meta.json.

    `splits` maps split names to ingest split folders and must include "train"; `output_dirs` maps
    the same names to tokenized output folders. `num_shards` 0 picks one shard per 100,000
    examples. Raises ConfigError, DataSourceError, InputFormatError (empty training split,
    malformed records, texts that tokenize to nothing), LabelError (labels unseen in training)
    or VocabularyError.
    """
    spec = architectures.get(architecture)
    options = spec.options(model_options)
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
    label_names = labels.read(splits["train"])
    plan = spec.vocabulary_plan(options)
    if plan.seq_len:
        tok._check_seq_len(plan.seq_len)

    beam = _beam()
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
    pipeline_options = PipelineOptions(list(beam_pipeline_args or []))
    local = _is_direct_runner(pipeline_options.view_as(StandardOptions).runner)

    def worker(path: str) -> str:
        return _worker_path(path, not local)

    _clear_outputs(vocab_dir, (vocab_io.VOCAB_FILE, vocab_io.TOKENIZER_FILE))
    for name in splits:
        _clear_outputs(output_dirs[name], (tokenized.SHARD_GLOB, tokenized.META_FILE))
    if not plan.counts_vocabulary:
        vocab_io.write_folder(vocab_dir, vocab_io.Vocabulary(plan.recipe.vocabulary_format, plan.tokens,
                                                             plan.recipe.do_lower_case), raw=plan.raw)

    base = tokenized.base_meta(spec.name, plan.recipe, label_names, options, not plan.seq_len)
    pipeline = beam.Pipeline(runner=_local_runner(pipeline_options) if local else None,
                             options=pipeline_options)
    try:
        _run_pipeline(pipeline, beam, splits, files, output_dirs, vocab_dir, plan, label_names,
                      num_shards, base, worker)
    except TextClfError:
        raise
    except Exception as e:
        _reraise_worker_error(e)
        raise

    metas = {name: tokenized.read_meta(output_dirs[name]) for name in splits}
    if metas["train"]["num_examples"] == 0:
        raise InputFormatError("the training split has no examples", path=splits["train"])
    unknown = {name: meta["unknown_labels"] for name, meta in metas.items() if meta["unknown_labels"]}
    if unknown:
        details = "; ".join(f"{name}: {names}" for name, names in sorted(unknown.items()))
        raise LabelError(f"labels not among the training labels {label_names}: {details}")
    warnings = tokenized.check_texts(metas, splits)
    train_meta = metas["train"]
    summary = {
        "architecture": spec.name,
        "seq_len": train_meta["seq_len"],
        "seq_len_fitted": not plan.seq_len,
        "do_lower_case": plan.recipe.do_lower_case,
        "vocab_size": train_meta["vocab_size"],
        "label_names": label_names,
        "warnings": warnings,
        "splits": {name: {key: meta[key] for key in tokenized.SUM_STATS + (
            "max_length", "num_shards", "label_counts")} for name, meta in sorted(metas.items())},
    }
    for name, meta in metas.items():
        meta.update(splits=summary["splits"], warnings=warnings)
        tokenized.update_meta(output_dirs[name], meta)
    for message in warnings:
        _LOG.warning("%s", message)
    return summary
