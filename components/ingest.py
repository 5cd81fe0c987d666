"""Ingest and split: read labelled delimited text, validate every row, split, profile, streaming.

Rows flow from the reader (`components.delimited`) straight into the split folders' shards, so
memory holds a chunk of rows and a few bytes of statistics a row, not the data. Every row is kept
or reported: with `on_bad_rows="error"` the first bad row stops the step with its file, line and
column; with `"skip"` it is counted and listed in the profile.

Splits carved out of the training source are stratified per label, and every class keeps at least
one row in training. Up to `EXACT_SPLIT_MAX_ROWS` training rows the split is exact: each label's
rows are shuffled with a seeded generator and cut by the fractions (the same rows, in the same
order, for a seed; rows wait in a spill file, not in memory). Above it, each row goes to a split by
a stable hash of (seed, label, text): reproducible, independent of row order and sharding, exact
duplicates always land together, and each label's fractions hold in expectation.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import tempfile
from array import array
from collections import Counter, defaultdict
from typing import Dict, List, Optional, Sequence, Tuple

from components import beam_runner, split_io
from components.delimited import BadRow, BadRowLog, ReadResult, iter_rows, read_delimited
from components.errors import InputFormatError, LabelError
from components.labels import sorted_label_names
from components.options import CSVParams, SplitOptions
from components.profile import SplitStats, build_profile, labels_differing_only_by_case, profile_markdown
from components.profile import write as write_profile
from components.split_io import SplitWriter, encode_label_tail
from components.split_io import _encode_string as _encode_text

SPLITS = ("train", "validation", "test")
MAX_LISTED_BAD_ROWS = 50
# Training sources up to this many rows get the exact seeded split; larger ones the hash split.
EXACT_SPLIT_MAX_ROWS = 1_000_000
_TWO_TO_64 = float(2 ** 64)


def label_codes(rows: int, label: str, fractions: Sequence[float], seed: int, keep_one_in_rest: bool) -> bytearray:
    """Split code (0 = the rest, i = the i-th fraction) of each of one label's `rows` rows, in
    input order: the rows shuffled with `Random(f"{seed}:{label}")` and cut by
    `round(fraction * rows)`. With `keep_one_in_rest`, cuts that would take every row give them
    back (last cut first) until one is left. A label's codes need only its row count, so the Beam
    ingest computes them from counts alone."""
    order = list(range(rows))
    random.Random(f"{seed}:{label}").shuffle(order)
    counts = [int(round(fraction * rows)) for fraction in fractions]
    excess = sum(counts) - (rows - 1) if keep_one_in_rest else 0
    for j in reversed(range(len(counts))):
        if excess <= 0:
            break
        cut = min(excess, counts[j])
        counts[j] -= cut
        excess -= cut
    codes = bytearray(rows)
    position = 0
    for code, count in enumerate(counts, start=1):
        for index in order[position:position + count]:
            codes[index] = code
        position += count
    return codes


def _exact_codes(label_ids: Sequence[int], id_names: Sequence[str], fractions: Sequence[float], seed: int,
                 keep_one_in_rest: bool) -> bytearray:
    """Split code per row: each label's rows get `label_codes` in their input order."""
    by_label: Dict[int, List[int]] = defaultdict(list)
    for index, label_id in enumerate(label_ids):
        by_label[label_id].append(index)
    codes = bytearray(len(label_ids))
    for label_id, indices in by_label.items():
        for index, code in zip(indices, label_codes(len(indices), id_names[label_id], fractions, seed,
                                                    keep_one_in_rest)):
            codes[index] = code
    return codes


def stratified_split(rows: Sequence[Tuple[str, str]], fractions: Dict[str, float], seed: int
                     ) -> Dict[str, List[Tuple[str, str]]]:
    """Splits in-memory rows per label so each part keeps the label mix; same seed ⇒ same result.

    `fractions` names the parts carved out; the remainder is 'train'. Rows keep their input
    order inside each part. (The API's `Dataset.split`; ingest streams the same algorithm.)
    """
    ids: Dict[str, int] = {}
    label_ids = [ids.setdefault(label, len(ids)) for _, label in rows]
    codes = _exact_codes(label_ids, list(ids), list(fractions.values()), seed, keep_one_in_rest=False)
    names = ["train", *fractions]
    result: Dict[str, List[Tuple[str, str]]] = {name: [] for name in names}
    for code, row in zip(codes, rows):
        result[names[code]].append(row)
    return result


def _label_hasher(seed: int, label: str):
    return hashlib.blake2b((label + "\x1f").encode("utf-8", "surrogatepass"), digest_size=8,
                           key=str(seed).encode())


def hash_unit(seed: int, label: str, text: str) -> float:
    """A stable number in [0, 1) for a row, from BLAKE2b keyed by the seed over label and text:
    where the hash split puts it."""
    hasher = _label_hasher(seed, label)
    hasher.update(text.encode("utf-8", "surrogatepass"))
    return int.from_bytes(hasher.digest(), "big") / _TWO_TO_64


class _Sink:
    """One split's destination: the shards of its folder(s) and its statistics."""

    def __init__(self, folders: Sequence[str]):
        self.writers = [SplitWriter(folder, split_io.EXAMPLES_PER_SHARD) for folder in folders]
        self.stats = SplitStats()
        if len(self.writers) == 1:
            self._write = self.writers[0].write_line
        else:
            self._write = self._write_all
        self._hash, self._label = self.stats.hashes.append, self.stats.labels.append
        self._chars, self._words = self.stats.chars, self.stats.words

    def _write_all(self, line: str) -> None:
        for writer in self.writers:
            writer.write_line(line)

    def add(self, line: str, text_hash: int, label_id: int, chars: int, words: int) -> None:
        self._write(line)
        self._hash(text_hash)
        self._label(label_id)
        self._chars[chars] += 1
        self._words[words] += 1

    def close(self, label_names: Optional[Sequence[str]]) -> None:
        for writer in self.writers:
            writer.close(label_names)


class _Ingest:
    """The state of one ingest run: label ids, sinks, bad rows, files read."""

    def __init__(self, params: CSVParams, output_dirs: Dict[str, str]):
        self.params = params
        self.output_dirs = output_dirs
        self.bad = BadRowLog(keep=MAX_LISTED_BAD_ROWS)
        self.ids: Dict[str, int] = {}
        self.id_names: List[str] = []
        self.tails: List[str] = []
        self.known_labels: set = set()
        self.files: Dict[str, List[str]] = {}
        self.sinks: Dict[str, _Sink] = {}

    def sink(self, *names: str) -> _Sink:
        """One sink written to the folders of `names` (validation serving as test: two folders)."""
        folders = [self.output_dirs[name] for name in names if name in self.output_dirs]
        sink = _Sink(folders)
        for name in names:
            self.sinks[name] = sink
        return sink

    def _new_label(self, label: str) -> int:
        self.ids[label] = len(self.id_names)
        self.id_names.append(label)
        self.tails.append(encode_label_tail(label))
        return self.ids[label]

    def label_id(self, label: str) -> int:
        label_id = self.ids.get(label)
        return self._new_label(label) if label_id is None else label_id

    def rows(self, name: str, uri: str):
        """(text, label, file, line) of every good row of a source; its files are recorded."""
        return iter_rows(uri, self.params, self.bad, self.known_labels, self.files.setdefault(name, []))

    def read_into(self, name: str, uri: str, sink: _Sink, train_labels: Optional[set] = None) -> Dict:
        """Streams a source into a sink; with `train_labels`, rows with other labels are held back
        and returned as {label: [file, line, count]}."""
        unknown: Dict[str, list] = {}
        add, ids, tails = sink.add, self.ids, self.tails
        for text, label, path, number in self.rows(name, uri):
            if train_labels is not None and label not in train_labels:
                entry = unknown.setdefault(label, [path, number, 0])
                entry[2] += 1
                continue
            label_id = ids[label] if label in ids else self.label_id(label)
            add('{"text": ' + _encode_text(text) + tails[label_id], hash(text), label_id, len(text),
                len(text.split()))
        return unknown


class _Carver:
    """Carves validation (and test) out of the training source while it streams."""

    def __init__(self, run: _Ingest, fractions: Dict[str, float], seed: int, exact_max_rows: int):
        self.run = run
        self.names = list(fractions)
        self.fractions = list(fractions.values())
        self.seed = seed
        self.exact_max_rows = exact_max_rows
        self.sinks = [run.sink("train")] + [run.sink(name) for name in self.names]
        self.bounds = [sum(self.fractions[:i + 1]) for i in range(len(self.fractions))]
        self.method = "exact"
        self.rows = 0
        self.train_counts: Counter = Counter()
        self.best: Dict[int, tuple] = {}
        # local temp space, not next to the outputs (on Vertex those are a GCS mount)
        self._spill_dir = tempfile.mkdtemp(prefix="textclf-ingest-spill-")
        self._spill = open(os.path.join(self._spill_dir, "rows.jsonl"), "w", encoding="utf-8", newline="\n",
                           buffering=1 << 20)
        self._held = {"hash": array("q"), "label": array("i"), "chars": array("i"), "words": array("i"),
                      "unit": array("d")}

    def _code(self, unit: float) -> int:
        for code, bound in enumerate(self.bounds, start=1):
            if unit < bound:
                return code
        return 0

    def _route_hash(self, line, text_hash, label_id, chars, words, unit) -> None:
        """Hash split; each label's non-training row nearest to training waits (one per label) so
        a label that gets no training row by hash can have that one instead."""
        code = self._code(unit)
        if code == 0:
            self.train_counts[label_id] += 1
            self.sinks[0].add(line, text_hash, label_id, chars, words)
            return
        self._route_held(line, text_hash, label_id, chars, words, unit, code)

    def _route_held(self, line, text_hash, label_id, chars, words, unit, code) -> None:
        held = self.best.get(label_id)
        if held is None or unit > held[0]:
            self.best[label_id] = (unit, code, line, text_hash, chars, words)
            if held is None:
                return
            unit, code, line, text_hash, chars, words = held
        self.sinks[code].add(line, text_hash, label_id, chars, words)

    def _replay_spill(self):
        self._spill.close()
        held = self._held
        with open(self._spill.name, encoding="utf-8", newline="\n") as f:
            for i, line in enumerate(f):
                yield i, line, held["hash"][i], held["label"][i], held["chars"][i], held["words"][i]

    def _switch_to_hash(self) -> None:
        units = self._held["unit"]
        for i, line, text_hash, label_id, chars, words in self._replay_spill():
            self._route_hash(line, text_hash, label_id, chars, words, units[i])
        self._held = None
        self.method = "hash"

    def read(self, uri: str) -> None:
        run, seed, limit = self.run, self.seed, self.exact_max_rows
        ids, tails = run.ids, run.tails
        hashers: List = []
        exact_rows = self._read_exact(run.rows("train", uri), hashers, limit)
        if exact_rows is None:
            self.finish()
            return
        # above the switch: every further row goes straight to its split
        train_from = self.bounds[-1]
        add_train, held, train_counts = self.sinks[0].add, self._route_held, self.train_counts
        code = self._code
        for text, label, _, _ in exact_rows:
            label_id = ids[label] if label in ids else run.label_id(label)
            if label_id >= len(hashers):
                hashers.extend(_label_hasher(seed, name) for name in run.id_names[len(hashers):])
            hasher = hashers[label_id].copy()
            hasher.update(text.encode("utf-8", "surrogatepass"))
            unit = int.from_bytes(hasher.digest(), "big") / _TWO_TO_64
            line = '{"text": ' + _encode_text(text) + tails[label_id]
            self.rows += 1
            if unit >= train_from:
                train_counts[label_id] += 1
                add_train(line, hash(text), label_id, len(text), len(text.split()))
            else:
                held(line, hash(text), label_id, len(text), len(text.split()), unit, code(unit))
        self.finish()

    def _read_exact(self, rows, hashers: List, limit: int):
        """Spills rows until the source ends (returns None) or passes `limit` rows; then routes the
        spilled rows by hash and returns the iterator to go on with."""
        run, seed = self.run, self.seed
        ids, tails = run.ids, run.tails
        held = self._held
        spill_write = self._spill.write
        h_add, l_add, c_add, w_add, u_add = (held[k].append for k in ("hash", "label", "chars", "words", "unit"))
        for text, label, _, _ in rows:
            label_id = ids[label] if label in ids else run.label_id(label)
            if label_id >= len(hashers):
                hashers.extend(_label_hasher(seed, name) for name in run.id_names[len(hashers):])
            hasher = hashers[label_id].copy()
            hasher.update(text.encode("utf-8", "surrogatepass"))
            spill_write('{"text": ' + _encode_text(text) + tails[label_id])
            h_add(hash(text))
            l_add(label_id)
            c_add(len(text))
            w_add(len(text.split()))
            u_add(int.from_bytes(hasher.digest(), "big") / _TWO_TO_64)
            self.rows += 1
            if self.rows > limit:
                self._switch_to_hash()
                return rows
        return None

    def finish(self) -> None:
        if self.method == "exact":
            codes = _exact_codes(self._held["label"], self.run.id_names, self.fractions, self.seed,
                                 keep_one_in_rest=True)
            for i, line, text_hash, label_id, chars, words in self._replay_spill():
                self.sinks[codes[i]].add(line, text_hash, label_id, chars, words)
            self._held = None
        else:
            for label_id, (_, code, line, text_hash, chars, words) in sorted(self.best.items()):
                if not self.train_counts[label_id]:
                    code = 0
                self.sinks[code].add(line, text_hash, label_id, chars, words)
        shutil.rmtree(self._spill_dir, ignore_errors=True)

    def abort(self) -> None:
        if not self._spill.closed:
            self._spill.close()
        shutil.rmtree(self._spill_dir, ignore_errors=True)


def _plural(count: int, word: str) -> str:
    if count == 1:
        return f"{count} {word}"
    return f"{count} {word}es" if word.endswith("s") else f"{count} {word}s"


def _label_counts(stats: SplitStats, id_names: Sequence[str]) -> Dict[str, int]:
    counts = stats.label_counts(len(id_names))
    return {label: int(counts[i]) for i, label in enumerate(id_names)}


def small_class_notes(counts: Dict[str, Dict[str, int]], carved: Sequence[str], label_names: Sequence[str]
                      ) -> List[str]:
    """Classes a carved split has no row of, with their size: true advice, not a blame on the data.
    `counts` maps each split to its rows per label."""
    notes = []
    train = counts["train"]
    for name in carved:
        missing = [label for label in label_names if not counts[name].get(label, 0)]
        if missing and sum(counts[name].values()):
            listed = ", ".join(f"{label!r} ({_plural(train.get(label, 0), 'row')})" for label in missing[:20])
            more = f" and {len(missing) - 20} more" if len(missing) > 20 else ""
            notes.append(f"the {name} split has no rows of {_plural(len(missing), 'class')}: {listed}{more}. "
                         "Every class keeps at least one row in training, so these are too small to reach "
                         f"the {name} split and its figures do not measure them; add rows for them, or give "
                         f"a {name} file")
    return notes


def _rows_needed(fractions: Sequence[float], index: int, limit: int = 100_000) -> Optional[int]:
    """The fewest rows a class needs for the exact split to give the `index`-th carved split one."""
    for rows in range(1, limit):
        codes = _exact_codes([0] * rows, ["x"], fractions, 0, keep_one_in_rest=True)
        if index + 1 in codes:
            return rows
    return None


def empty_split_error(name: str, fractions: Dict[str, float], counts: Sequence[int]) -> LabelError:
    """`counts`: the training split's rows of each label of the training source."""
    option, fraction = f"{name}_fraction", fractions[name]
    if fraction == 0:
        return LabelError(f"the {name} split is empty: {option} is 0; give a {name} file or a fraction above 0")
    largest = int(max(counts)) if len(counts) else 0
    needed = _rows_needed(list(fractions.values()), list(fractions).index(name))
    need = f"; with these fractions a class needs {_plural(needed, 'row')} to give it one" if needed else ""
    given = ", ".join(f"{split}_fraction {value}" for split, value in fractions.items())
    return LabelError(
        f"the {name} split is empty: with {given}, no class is large enough to give it a row once every "
        f"class keeps one in training ({_plural(len(counts), 'class')}, the largest with "
        f"{_plural(largest, 'row')}{need}). Give a {name} file, add rows, or raise {option}")


def carved_fractions(validation: str, test: str, split_options: SplitOptions) -> Dict[str, float]:
    """The splits carved out of train, with their fractions: those given no file (no validation
    file: validation; neither file: test too; a validation file alone also serves as test)."""
    carve: Dict[str, float] = {}
    if not validation:
        carve["validation"] = split_options.validation_fraction
    if not test and not validation:
        carve["test"] = split_options.test_fraction
    return carve


def split_sources(train: str, validation: str, test: str, carve: Dict[str, float], seed: int) -> Dict[str, str]:
    """Where each split came from, as the profile says it."""
    sources = {"train": train}
    for name, fraction in carve.items():
        sources[name] = f"{fraction:.0%} of train (stratified, seed {seed})"
    for name, uri in (("validation", validation), ("test", test)):
        if uri:
            sources[name] = uri
    if validation and not test:
        sources["test"] = "the validation split (no test file given)"
    return sources


def too_few_classes(train: str, label_names: Sequence[str]) -> Optional[LabelError]:
    if len(label_names) >= 2:
        return None
    return LabelError(f"{train}: the training split has {len(label_names)} class(es) "
                      f"({list(label_names)}); a classifier needs at least two")


def unknown_labels_error(name: str, unknown: Dict[str, list], label_names: Sequence[str]) -> LabelError:
    """`unknown` maps each label the training split lacks to [file, first line, rows]."""
    first_label = sorted(unknown, key=lambda label: (unknown[label][0], unknown[label][1]))[0]
    path, number, count = unknown[first_label]
    others = sorted_label_names(set(unknown) - {first_label})
    return LabelError(
        f"{path}, line {number}: label {first_label!r} ({_plural(count, 'row')}) in the {name} split does "
        f"not occur in the training split {list(label_names)}"
        + (f"; nor do {others}" if others else "")
        + "; a model cannot learn them. Fix the labels, or add training rows for them")


def ingest(train: str, validation: str = "", test: str = "", csv_params: CSVParams | None = None,
           split_options: SplitOptions | None = None, output_dirs: Dict[str, str] | None = None,
           profile_dir: str = "", beam_pipeline_args: Optional[Sequence[str]] = None) -> Dict:
    """Reads the sources, splits what is missing, writes split folders and the profile.

    Splits missing as files are made: no validation file ⇒ carved from train; no test file ⇒
    the validation file serves as test (Model Maker's guide evaluates on its validation set),
    or, with neither, carved from train too. Each source may be a file, a glob or a folder, local
    or gs://. The profile records which applied.

    `beam_pipeline_args` that name a `--runner` run the step as a Beam job on that runner
    (`components.beam_ingest`: the same folders and profile, byte for byte); otherwise it runs
    here, streaming.
    """
    params = csv_params or CSVParams()
    split_options = split_options or SplitOptions()
    if not train:
        raise InputFormatError("a training source is required")
    if beam_runner.names_runner(beam_pipeline_args):
        from components.beam_ingest import ingest_beam
        return ingest_beam(train, validation, test, params, split_options, dict(output_dirs or {}),
                           profile_dir, list(beam_pipeline_args))
    run = _Ingest(params, dict(output_dirs or {}))
    carve = carved_fractions(validation, test, split_options)

    if carve:
        carver = _Carver(run, carve, split_options.seed, EXACT_SPLIT_MAX_ROWS)
        try:
            carver.read(train)
        except BaseException:
            carver.abort()
            raise
        split_method = {"method": carver.method, "rows": carver.rows, "seed": split_options.seed,
                        "exact_max_rows": EXACT_SPLIT_MAX_ROWS, "fractions": dict(carve)}
    else:
        run.read_into("train", train, run.sink("train"))
        split_method = {"method": "files"}
    train_stats = run.sinks["train"].stats
    train_counts = train_stats.label_counts(len(run.id_names))
    train_labels = {run.id_names[i] for i, count in enumerate(train_counts) if count}
    label_names = sorted_label_names(train_labels)
    error = too_few_classes(train, label_names)
    if error:
        raise error
    for name in carve:
        if not run.sinks[name].stats.rows:
            raise empty_split_error(name, carve, train_counts)

    for name, uri in (("validation", validation), ("test", test)):
        if not uri:
            continue
        sink = run.sink(name, "test") if name == "validation" and not test else run.sink(name)
        unknown = run.read_into(name, uri, sink, train_labels)
        if unknown:
            raise unknown_labels_error(name, unknown, label_names)

    for sink in {id(s): s for s in run.sinks.values()}.values():
        sink.close(label_names)
    stats = {name: run.sinks[name].stats for name in SPLITS}
    notes = small_class_notes({name: _label_counts(stats[name], run.id_names) for name in SPLITS}, list(carve),
                              label_names)
    sources = split_sources(train, validation, test, carve, split_options.seed)
    profile = build_profile(stats, label_names, run.id_names, sources, run.files, run.bad, split_method, notes)
    if profile_dir:
        write_profile(profile_dir, profile)
    return profile


__all__ = ["BadRow", "EXACT_SPLIT_MAX_ROWS", "ReadResult", "SPLITS", "hash_unit", "ingest",
           "labels_differing_only_by_case", "profile_markdown", "read_delimited", "sorted_label_names",
           "stratified_split"]
