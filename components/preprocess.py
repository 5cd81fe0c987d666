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

Runners (`components.beam_runner`). `beam_pipeline_args` go to `PipelineOptions` unchanged; without
`--runner` the pipeline runs on Beam's FnApiRunner, where `--direct_*` flags apply. Any other runner
is used as given, e.g.
`--runner=DataflowRunner --project=P --region=R --temp_location=gs://B/tmp --setup_file=./setup.py`
(workers pip-install this package from the repository's setup.py), `--sdk_container_image=IMAGE`
with the package preinstalled (also the way for Flink/Spark portable runners), or
`--runner=DaskRunner --dask_client_address=HOST:PORT`. Workers need only this package and its
requirements; vocabularies travel inside the pipeline, not as local files. Split and output folders
must then be visible to the workers (gs://..., or a file system every Dask worker shares); Vertex
AI's `/gcs/BUCKET/` fuse paths are rewritten to `gs://BUCKET/` for non-local runners.
"""

from __future__ import annotations

import io
import logging
import os
from collections import Counter
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from components import architectures, beam_runner, labels, split_io, storage, tokenized, word_vectors
from components import tokenizers as tok
from components import vocabulary as vocab_io
from components.errors import ConfigError, DataSourceError, InputFormatError, LabelError, RunnerError

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


def _write_counted_vocab(plan, folder: str, do_lower_case: bool):
    """The counted vocabulary, from the plan (not before: the plan is where it is decided)."""
    vocab_io.write_folder(folder, vocab_io.Vocabulary(vocab_io.TOKEN_IDS, tuple(plan["tokens"]), do_lower_case))
    return "vocab", folder, len(plan["tokens"])


def _make_dofns():
    """DoFn classes, defined on first use so importing this module does not import Beam."""
    beam = _beam()

    class CountTokens(beam.DoFn):
        """Token frequencies pre-aggregated per batch, so far fewer elements reach the shuffle.
        (Not per bundle: what `finish_bundle` emits is lost on Beam's DaskRunner.)"""

        def __init__(self, recipe: tok.TokenizerRecipe):
            self._recipe = recipe

        def process(self, batch):
            counts: Counter = Counter()
            self._recipe.count(batch[2], counts)
            yield from counts.items()

    class Encode(beam.DoFn):
        """Batch -> (file_idx, first ordinal, serialized examples, profile counters).

        The tokenizer is rebuilt on the worker from the recipe and the plan's tokens (fixed, or
        the counted vocabulary) and sequence length (fixed, or fitted).
        """

        def __init__(self, recipe: tok.TokenizerRecipe):
            self._recipe = recipe
            self._tokenizer, self._key = None, None

        def process(self, batch, plan):
            file_idx, start, texts, label_ids, unknown, scores = batch
            key = (id(plan), plan["seq_len"])
            if self._tokenizer is None or key != self._key:
                self._tokenizer = self._recipe.build(plan["tokens"], plan["seq_len"])
                self._key = key
            records, stats = tokenized.encode_batch(self._tokenizer, texts, label_ids, unknown, scores)
            yield file_idx, start, records, stats

    class AssignShards(beam.DoFn):
        """Cuts encoded batches at shard boundaries so shards are contiguous runs of the split."""

        def __init__(self, split: str, num_shards: int):
            self._split, self._num_shards = split, num_shards

        def process(self, encoded, plan):
            file_idx, start, records, _ = encoded
            counts = plan["rows"][self._split]
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
            yield "shard", shard, count

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


def _make_plan(grouped, plan_base: Dict[str, Any], vocabulary_plan, splits: Sequence[str]):
    """What every split's encoding needs, from the parts counted over the data: the counted
    vocabulary (from the top tokens), the fitted sequence length (from the longest text) and the
    rows of each split file (for the shard boundaries)."""
    _, parts = grouped
    plan = dict(plan_base, rows={name: {} for name in splits})
    top, longest = [], 0
    for part in parts:
        if part[0] == "top":
            top = part[1]
        elif part[0] == "longest":
            longest = max(longest, part[1])
        elif part[0] == "rows":
            plan["rows"][part[1]][part[2]] = part[3]
    if plan["count_vocabulary"]:
        plan["tokens"] = vocabulary_plan.select(dict(top))
        plan["vocab_size"] = len(plan["tokens"])
    if not plan["seq_len"]:
        plan["seq_len"] = tok.fitted_seq_len(longest, vocabulary_plan.recipe.num_special, plan["max_seq_len"])
    return plan


def _write_meta(grouped, folder, base, num_shards, plan):
    """meta.json, once the split's shards are written and hold every example the statistics count:
    a runner that lost some of them fails here instead of leaving a short split behind."""
    _, values = grouped
    stats = next(value[1] for value in values if value[0] == "stats")
    written = {value[1]: value[2] for value in values if value[0] == "shard"}
    total = stats["num_examples"]
    shards = tokenized.shard_count(total, num_shards) if total else 0
    if sorted(written) != list(range(shards)) or sum(written.values()) != total:
        raise RunnerError(f"{folder}: the runner wrote shards {sorted(written)} with {sum(written.values())} "
                          f"examples; expected shards 0-{shards - 1} with {total}")
    tokenized.write_split_meta(stats, folder, dict(base, seq_len=plan["seq_len"], vocab_size=plan["vocab_size"]),
                               num_shards)
    return "meta", folder, total


# ----------------------------------------------------------------------------------------------
# Launcher side.

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


def _read_batches(pipeline, beam, names, files, label_names, worker):
    batches = {}
    for name in names:
        batches[name] = (
            pipeline
            | f"{name}/ListFiles" >> beam.Create(
                [(i, worker(path)) for i, (path, _) in enumerate(files[name])])
            | f"{name}/Distribute" >> beam.Reshuffle()
            | f"{name}/Read" >> beam.FlatMap(_read_split_batches, label_names, tokenized.BATCH_SIZE))
    return batches


def _plan_pcoll(pipeline, beam, batches, names, plan):
    """The plan as a one-element PCollection: token counts, longest text and rows per file,
    counted over the data and gathered under one key (`_make_plan`)."""
    CountTokens = _make_dofns()[0]
    parts = [pipeline | "plan/Seed" >> beam.Create([("seed",)])]
    if plan.counts_vocabulary:
        parts.append(
            batches["train"]
            | "vocab/Count" >> beam.ParDo(CountTokens(plan.recipe))
            | "vocab/Sum" >> beam.CombinePerKey(sum)
            # a CombineFn, not Top.Of: that one emits from finish_bundle (lost on Beam's DaskRunner)
            | "vocab/Top" >> beam.CombineGlobally(
                beam.combiners.TopCombineFn(plan.max_size, key=tok.rank_key, reverse=True)).without_defaults()
            | "vocab/Tag" >> beam.Map(lambda top: ("top", top)))
    if not plan.seq_len:
        parts.append(
            [batches[name] for name in names]
            | "seq_len/Flatten" >> beam.Flatten()
            | "seq_len/Longest" >> beam.Map(_longest, plan.recipe, plan.tokens)
            | "seq_len/Max" >> beam.CombineGlobally(max).without_defaults()
            | "seq_len/Tag" >> beam.Map(lambda longest: ("longest", longest)))
    for name in names:
        parts.append(batches[name]
                     | f"{name}/RowsPerFile" >> beam.Map(_batch_size_of)
                     | f"{name}/SumRows" >> beam.CombinePerKey(sum)
                     | f"{name}/TagRows" >> beam.Map(lambda rows, split: ("rows", split, rows[0], rows[1]), name))
    plan_base = {"count_vocabulary": plan.counts_vocabulary, "max_size": plan.max_size,
                 "min_count": plan.min_count, "max_seq_len": plan.max_seq_len, "seq_len": plan.seq_len,
                 "tokens": None if plan.counts_vocabulary else list(plan.tokens),
                 "vocab_size": None if plan.counts_vocabulary else len(plan.tokens)}
    return (parts
            | "plan/Flatten" >> beam.Flatten()
            | "plan/Key" >> beam.Map(lambda part: (0, part))
            | "plan/Group" >> beam.GroupByKey()
            | "plan/Make" >> beam.Map(_make_plan, plan_base, plan, names))


def _encode_and_write(pipeline, beam, batches, names, plan_side, plan, output_dirs, num_shards, base, worker):
    """Encoding, shards and meta.json of every split; returns the writes' PCollections. `plan_side`
    is the plan: a side input, or its value when an earlier pipeline computed it."""
    _, Encode, AssignShards, WriteShard = _make_dofns()
    writes = []
    for name in names:
        out = worker(output_dirs[name])
        encoded = batches[name] | f"{name}/Encode" >> beam.ParDo(Encode(plan.recipe), plan_side)
        written = (encoded
                   | f"{name}/AssignShards" >> beam.ParDo(AssignShards(name, num_shards), plan_side)
                   | f"{name}/GroupShards" >> beam.GroupByKey()
                   | f"{name}/WriteShards" >> beam.ParDo(WriteShard(out)))
        # the statistics' combine is seeded with empty ones instead of taking CombineGlobally's
        # default, which is one more side input
        stats = ((encoded | f"{name}/Stats" >> beam.Map(lambda e: e[3]),
                  pipeline | f"{name}/NoStats" >> beam.Create([tokenized.empty_stats()]))
                 | f"{name}/AllStats" >> beam.Flatten()
                 | f"{name}/CombineStats" >> beam.CombineGlobally(_stats_combine_fn()).without_defaults()
                 | f"{name}/TagStats" >> beam.Map(lambda stats: ("stats", stats)))
        writes.append((written, stats)
                      | f"{name}/Gather" >> beam.Flatten()
                      | f"{name}/KeyMeta" >> beam.Map(lambda value: (0, value))
                      | f"{name}/GroupMeta" >> beam.GroupByKey()
                      | f"{name}/WriteMeta" >> beam.Map(_write_meta, out, dict(base, split=name), num_shards,
                                                        plan_side))
    return writes


def _run_pipeline(args, beam, splits, files, output_dirs, vocab_dir, plan, label_names, num_shards, base):
    """read -> (token counts, longest text, rows per file) -> plan -> encode -> shards -> meta.

    One pipeline, with the plan as its only side input; on runners that evaluate a side input
    again in every task that reads it (Beam's DaskRunner) two: the first computes the plan, the
    second gets it as a value. The outputs are the same."""
    names = sorted(splits)
    pipeline, local = beam_runner.new_pipeline(args)

    def worker(path: str) -> str:
        return beam_runner.worker_path(path, not local)

    if beam_runner.side_inputs_supported(args):
        batches = _read_batches(pipeline, beam, names, files, label_names, worker)
        plan_pcoll = _plan_pcoll(pipeline, beam, batches, names, plan)
        writes = _encode_and_write(pipeline, beam, batches, names, beam.pvalue.AsSingleton(plan_pcoll), plan,
                                   output_dirs, num_shards, base, worker)
        if plan.counts_vocabulary:
            writes.append(plan_pcoll | "vocab/Write" >> beam.Map(_write_counted_vocab, worker(vocab_dir),
                                                                 plan.recipe.do_lower_case))
        beam_runner.finish(writes)
        beam_runner.run(pipeline)
        return
    work = beam_runner.work_folder(args, vocab_dir, local)
    try:
        plan_path = storage.join(worker(work), "plan.pkl")
        batches = _read_batches(pipeline, beam, names, files, label_names, worker)
        saved = (_plan_pcoll(pipeline, beam, batches, names, plan)
                 | "plan/Save" >> beam.Map(beam_runner.write_pickle, plan_path))
        beam_runner.finish([saved])
        beam_runner.run(pipeline)
        plan_value = beam_runner.read_pickle(plan_path)
    finally:
        beam_runner.remove_folder(worker(work))
    if plan.counts_vocabulary:
        _write_counted_vocab(plan_value, vocab_dir, plan.recipe.do_lower_case)
    pipeline, _ = beam_runner.new_pipeline(args)
    batches = _read_batches(pipeline, beam, names, files, label_names, worker)
    beam_runner.finish(_encode_and_write(pipeline, beam, batches, names, plan_value, plan, output_dirs,
                                         num_shards, base, worker))
    beam_runner.run(pipeline)


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

    _clear_outputs(vocab_dir, (vocab_io.VOCAB_FILE, vocab_io.TOKENIZER_FILE, word_vectors.INITIAL_EMBEDDING_FILE))
    for name in splits:
        _clear_outputs(output_dirs[name], (tokenized.SHARD_GLOB, tokenized.META_FILE))
    if not plan.counts_vocabulary:
        vocab_io.write_folder(vocab_dir, vocab_io.Vocabulary(plan.recipe.vocabulary_format, plan.tokens,
                                                             plan.recipe.do_lower_case), raw=plan.raw)

    base = tokenized.base_meta(spec.name, plan.recipe, label_names, options, not plan.seq_len)
    _run_pipeline(list(beam_pipeline_args or []), beam, splits, files, output_dirs, vocab_dir, plan, label_names,
                  num_shards, base)

    missing = [storage.join(output_dirs[name], tokenized.META_FILE) for name in sorted(splits)
               if not storage.exists(storage.join(output_dirs[name], tokenized.META_FILE))]
    if plan.counts_vocabulary and not storage.exists(storage.join(vocab_dir, vocab_io.VOCAB_FILE)):
        missing.append(storage.join(vocab_dir, vocab_io.VOCAB_FILE))
    if missing:
        raise RunnerError(f"the Beam runner finished without writing {', '.join(missing)}")
    metas = {name: tokenized.read_meta(output_dirs[name]) for name in splits}
    if metas["train"]["num_examples"] == 0:
        raise InputFormatError("the training split has no examples", path=splits["train"])
    unknown = {name: meta["unknown_labels"] for name, meta in metas.items() if meta["unknown_labels"]}
    if unknown:
        details = "; ".join(f"{name}: {names}" for name, names in sorted(unknown.items()))
        raise LabelError(f"labels not among the training labels {label_names}: {details}")
    warnings = tokenized.check_texts(metas, splits)
    derived = spec.after_vocabulary(vocab_dir, splits["train"], options)
    train_meta = metas["train"]
    summary = {
        "architecture": spec.name,
        "seq_len": train_meta["seq_len"],
        "seq_len_fitted": not plan.seq_len,
        "do_lower_case": plan.recipe.do_lower_case,
        "vocab_size": train_meta["vocab_size"],
        "label_names": label_names,
        "warnings": warnings,
        **derived,
        "splits": {name: {key: meta[key] for key in tokenized.SUM_STATS + (
            "max_length", "num_shards", "label_counts")} for name, meta in sorted(metas.items())},
    }
    for name, meta in metas.items():
        meta.update(splits=summary["splits"], warnings=warnings)
        tokenized.update_meta(output_dirs[name], meta)
    for message in warnings:
        _LOG.warning("%s", message)
    return summary
