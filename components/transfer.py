"""The distillation transfer set: training texts, augmentations of them and the user's unlabelled
texts, each with a teacher's class scores, written as a split folder (`split_io`, records with
"scores") that the student's preprocessing and training read like any split.

Scoring is a Beam pipeline (the teacher loaded once per worker, texts scored in length-sorted
batches), so on Dataflow it scales out like preprocessing; `transfer_rows` does the same in-process
for the Model Maker-compatible API. Both are deterministic: augmentations are pure functions of
the text (`components.augment`), each input batch of the training split becomes one shard named
by its position, and scores are rounded when written.

The folder also holds `transfer.json` (rows by origin, the teacher, the options, the time taken)
and, for a student that starts from them, the teacher's word vectors (`components.word_vectors`).
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from components import labels as labels_io
from components import split_io, storage, word_vectors
from components import tokenizers as tok
from components.augment import AugmentOptions, augmentations
from components.errors import ConfigError, DataSourceError

_LOG = logging.getLogger(__name__)
SUMMARY_FILE = "transfer.json"
SHARD_NAME = "examples-{file:05d}-{batch:06d}.jsonl"  # sorts in input order; matches split_io's pattern
REPLACEMENT_WORDS = 10_000
SCORE_BATCH = 512
# Rows of a user's unlabelled file per Beam element, and the file index that names their shards
# after the training split's in name order.
UNLABELLED_BATCH = 1024
UNLABELLED_FILE = 99999


def augment_options(options) -> AugmentOptions:
    return AugmentOptions(copies=options.transfer_copies, drop_probability=options.drop_probability,
                          replace_probability=options.replace_probability,
                          ngram_probability=options.ngram_probability, max_ngram=options.max_ngram,
                          seed=options.seed)


def replacement_words(texts: Iterable[str], do_lower_case: bool, limit: int = REPLACEMENT_WORDS) -> List[str]:
    """The training split's most frequent words (ties by word): what replacements are drawn from."""
    counts = tok.count_words(texts, do_lower_case)
    return [word for word, _ in sorted(counts.items(), key=tok.rank_key)[:limit]]


def teacher_vectors(scorer, texts: Sequence[str], options) -> Optional[Tuple[List[str], Any]]:
    """(words, vectors): the teacher's vectors of the training split's most frequent words, twice
    the student's vocabulary (its words are counted on the transfer set, so rank a little
    differently); None when the student starts at random or the teacher has no word pieces."""
    if getattr(options, "embedding_init", "random") != "teacher":
        return None
    words = replacement_words(texts, options.do_lower_case, max(REPLACEMENT_WORDS, 2 * options.vocab_size))
    vectors = scorer.word_vectors(words)
    if vectors is None:
        _LOG.warning("the teacher has no word-piece embeddings to start the student's from; it starts at random")
        return None
    return words, vectors


def write_teacher_vectors(folder: str, found: Optional[Tuple[List[str], Any]]) -> int:
    if found is None:
        return 0
    word_vectors.write(folder, *found)
    return len(found[0])


def expand(texts: Sequence[str], label_names_of_rows: Sequence[str], words: Sequence[str],
           augment: AugmentOptions) -> List[Tuple[str, Optional[str]]]:
    """Each text with its own label, then its augmentations with no label (the teacher's decides)."""
    rows: List[Tuple[str, Optional[str]]] = []
    for text, label in zip(texts, label_names_of_rows):
        rows.append((text, label))
        rows.extend((made, None) for made in augmentations(text, words, augment))
    return rows


def scored_lines(rows: Sequence[Tuple[str, Optional[str]]], scorer, label_names: Sequence[str]) -> List[str]:
    """Split-shard lines for (text, label or None) rows: the teacher's scores on every row, its top
    label where the row has none."""
    scores = scorer.score([text for text, _ in rows], SCORE_BATCH)
    lines = []
    for (text, label), row in zip(rows, scores):
        lines.append(split_io.encode_scored_example(text, label or label_names[int(row.argmax())], row.tolist()))
    return lines


def transfer_rows(texts: Sequence[str], label_names_of_rows: Sequence[str], options, scorer,
                  unlabelled: Sequence[str] = ()) -> List[str]:
    """The transfer set in-process, as split-shard lines (the API's path; small data)."""
    words = replacement_words(texts, options.do_lower_case)
    rows = expand(texts, label_names_of_rows, words, augment_options(options))
    rows += [(text, None) for text in unlabelled]
    return scored_lines(rows, scorer, scorer.label_names)


def read_unlabelled(path: str) -> List[str]:
    """A user's own in-domain texts: one a line, UTF-8 (blank lines skipped)."""
    if not path:
        return []
    if not storage.exists(path):
        raise DataSourceError(f"{path}: unlabelled texts file not found")
    try:
        text = storage.read_bytes(path).decode("utf-8")
    except UnicodeDecodeError as error:
        raise DataSourceError(f"{path}: unlabelled texts are not UTF-8 ({error})") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def estimate(train_rows: int, options, unlabelled_rows: int, texts_per_second: float) -> Dict[str, Any]:
    """Rows the transfer set will hold (augmentations identical to their text are dropped, so at
    most this) and the teacher's scoring time at the measured rate."""
    rows = train_rows * (1 + options.transfer_copies) + unlabelled_rows
    return {"rows_at_most": rows, "teacher_texts_per_s": round(texts_per_second, 1),
            "scoring_minutes": round(rows / max(texts_per_second, 1e-9) / 60.0, 1)}


def rate_sample(texts: Sequence[str], words: Sequence[str], options, size: int = SCORE_BATCH) -> List[str]:
    """About `size` rows like the set's own: texts spread over the split, each followed by its
    augmentations, which are shorter than the texts and so score faster."""
    step = max(1, len(texts) * (1 + options.transfer_copies) // size)
    picked = list(texts[::step])
    return [text for text, _ in expand(picked, [None] * len(picked), words, augment_options(options))][:size]


def measure_rate(scorer, texts: Sequence[str], clock: Callable[[], float] = time.perf_counter) -> float:
    """Texts a second the teacher scores here, on `texts` (a `rate_sample`).

    The sample is scored twice and the second pass timed: the scorer traces a graph per padded
    length on first sight, and a first pass over mixed lengths spends most of its time tracing
    (on SST-2 it read 295 texts/s against the Beam step's 705)."""
    sample = list(texts[:SCORE_BATCH]) or ["a"]
    scorer.score(sample)
    started = clock()
    scorer.score(sample)
    return len(sample) / max(clock() - started, 1e-9)


# ----------------------------------------------------------------------------------------------
# The Beam pipeline

def _make_dofns():
    import apache_beam as beam

    class Expand(beam.DoFn):
        def __init__(self, label_names, augment: AugmentOptions):
            self._label_names, self._augment = label_names, augment

        def process(self, batch, words):
            file_idx, start, texts, label_ids, _, _ = batch
            names = [self._label_names[i] if i >= 0 else None for i in label_ids]
            yield (file_idx, start), expand(texts, names, words, self._augment)

    class ScoreAndWrite(beam.DoFn):
        """Scores one expanded batch with the teacher (loaded once per worker) and writes its shard."""

        def __init__(self, teacher_dir: str, output_dir: str, batch_size: int):
            self._teacher_dir, self._output_dir, self._batch_size = teacher_dir, output_dir, batch_size
            self._scorer = None

        def setup(self):
            from components.teacher import TeacherScorer
            self._scorer = TeacherScorer(_local_teacher(self._teacher_dir))

        def process(self, element):
            (file_idx, start), rows = element
            lines = scored_lines(rows, self._scorer, self._scorer.label_names)
            name = SHARD_NAME.format(file=file_idx, batch=start // self._batch_size)
            storage.write_bytes(storage.join(self._output_dir, name), "".join(lines).encode("utf-8"))
            if file_idx == UNLABELLED_FILE:
                yield {"rows": len(lines), "unlabelled": len(lines)}
                return
            originals = sum(1 for _, label in rows if label is not None)
            yield {"rows": len(lines), "training": originals, "augmented": len(lines) - originals}

    return Expand, ScoreAndWrite


def _local_teacher(teacher_dir: str) -> str:
    """A model folder this process can read: gs:// folders are copied to the cache once."""
    if not storage.is_gcs(teacher_dir):
        return teacher_dir
    from components.encoder_downloads import mirror_gcs_folder
    return mirror_gcs_folder(teacher_dir)


def _unlabelled_batches(texts: Sequence[str]) -> Iterator[Tuple[Tuple[int, int], List[Tuple[str, None]]]]:
    for start in range(0, len(texts), UNLABELLED_BATCH):
        yield (UNLABELLED_FILE, start), [(text, None) for text in texts[start:start + UNLABELLED_BATCH]]


def build_transfer_set(teacher_dir: str, split_dir: str, output_dir: str, options,
                       beam_pipeline_args: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Scores the training split, its augmentations and `options.unlabelled_texts` with the
    teacher into the split folder `output_dir`; returns (and writes) its summary."""
    import apache_beam as beam

    from components import beam_runner
    from components import preprocess as pp
    from components.teacher import TeacherScorer

    if not teacher_dir:
        raise ConfigError("distillation needs a teacher: a trained BERT model folder")
    label_names = labels_io.read(split_dir)
    files = pp._list_split(split_dir)
    train_texts = [text for text, _ in split_io.iter_split(split_dir)]
    unlabelled = read_unlabelled(options.unlabelled_texts)
    scorer = TeacherScorer(_local_teacher(teacher_dir))
    if list(scorer.label_names) != list(label_names):
        raise ConfigError(f"the teacher's labels {scorer.label_names} are not the training split's {label_names}")
    words = replacement_words(train_texts, options.do_lower_case)
    planned = estimate(len(train_texts), options, len(unlabelled),
                       measure_rate(scorer, rate_sample(train_texts, words, options)))
    print(f"transfer set: at most {planned['rows_at_most']:,} texts ({len(train_texts):,} training texts, "
          f"{options.transfer_copies} augmentations each, {len(unlabelled):,} unlabelled); teacher scoring "
          f"about {planned['scoring_minutes']} min at {planned['teacher_texts_per_s']} texts/s here", flush=True)
    found = teacher_vectors(scorer, train_texts, options)
    del scorer

    pipeline, local = beam_runner.new_pipeline(list(beam_pipeline_args or []))

    def worker(path: str) -> str:
        return beam_runner.worker_path(path, not local)

    pp._clear_outputs(output_dir, (split_io.SHARD_PATTERN, SUMMARY_FILE, labels_io.LABELS_FILE,
                                   word_vectors.WORD_VECTORS_FILE))
    vector_words = write_teacher_vectors(output_dir, found)
    Expand, ScoreAndWrite = _make_dofns()
    started = time.time()
    expanded = (pipeline
                | "ListFiles" >> beam.Create([(i, worker(path)) for i, (path, _) in enumerate(files)])
                | "Distribute" >> beam.Reshuffle()
                | "Read" >> beam.FlatMap(pp._read_split_batches, label_names, pp.tokenized.BATCH_SIZE)
                | "Augment" >> beam.ParDo(Expand(label_names, augment_options(options)), words))
    extra = pipeline | "Unlabelled" >> beam.Create(list(_unlabelled_batches(unlabelled)))
    counts = ((expanded, extra) | "All" >> beam.Flatten()
              | "Redistribute" >> beam.Reshuffle()
              | "Score" >> beam.ParDo(ScoreAndWrite(worker(teacher_dir), worker(output_dir),
                                                    pp.tokenized.BATCH_SIZE)))
    # Seeded with an empty count rather than CombineGlobally's default, which is a side input
    # (see components.beam_runner); the summary is the pipeline's last transform.
    _ = ((counts, pipeline | "NoCounts" >> beam.Create([{}]))
         | "AllCounts" >> beam.Flatten()
         | "Count" >> beam.CombineGlobally(_sum_counts).without_defaults()
         | "Summary" >> beam.Map(_write_summary, worker(output_dir), teacher_dir, options, started, planned,
                               vector_words))
    beam_runner.run(pipeline)
    labels_io.write(output_dir, label_names)
    return read_summary(output_dir)


def _sum_counts(counts: Iterable[Dict[str, int]]) -> Dict[str, int]:
    total: Counter = Counter()
    for count in counts:
        total.update(count)
    return dict(total)


def _write_summary(counts, output_dir, teacher_dir, options, started, planned, vector_words=0) -> Dict[str, Any]:
    summary = {key: counts.get(key, 0) for key in ("rows", "training", "augmented", "unlabelled")}
    summary.update(teacher=teacher_dir, options=options.to_dict(), planned=planned, word_vectors=vector_words,
                   seconds=round(time.time() - started, 1))
    storage.write_bytes(storage.join(output_dir, SUMMARY_FILE),
                        (json.dumps(summary, indent=2, sort_keys=True) + "\n").encode("utf-8"))
    return summary


def read_summary(folder: str) -> Dict[str, Any]:
    path = storage.join(folder, SUMMARY_FILE)
    if not storage.exists(path):
        raise DataSourceError(f"{path}: not found; is this a transfer set folder?")
    return json.loads(storage.read_bytes(path).decode("utf-8"))
