"""The ingest step as Beam jobs: the split folders and profile of `components.ingest`, byte for
byte, with reading, splitting and writing spread over a runner's workers.

Two pipelines, and between them a plan computed here, so that neither has a side input
(`components.beam_runner` says why that matters):

1. Count. Each file is read by one worker with the in-process reader, in batches of
   `BATCH_ROWS` rows (a quoted file whose records the labels read before it could decide is
   counted again once those are known: `_settle_known_labels`). Per batch it records the rows of each
   label and, in the source splits are carved from, each label's rows per hash code and its row
   with the highest hash; per unit the bad rows, the first error and the files read.
2. Write. Each unit is read again and each batch's rows routed by the plan: the split of every
   row and the place in its split where the batch's rows start. Rows are cut at the shard
   boundaries of `split_io.EXAMPLES_PER_SHARD`, grouped by shard and written by one worker per
   shard through `FileSystems`; label counts, length histograms and text hashes (for duplicates
   and texts shared between splits, combined per hash bucket) come back for the profile.

Both split methods distribute. The exact split's codes for a label depend only on its row count
and the seed (`ingest.label_codes`), so a row's code is the one at its place among its label's
rows, which earlier batches' counts give. The hash split (above `ingest.EXACT_SPLIT_MAX_ROWS`)
holds back each label's non-training row with the highest hash, which moves rows within a split;
the plan replays that from each batch's highest row, so the order is the in-process one too.

Errors are the in-process step's, raised in the same order and before anything is written: a
unit stops at its first error and the launcher raises the first unit's. Skipped rows are counted
per unit and merged in reading order. Text hashes for the profile are BLAKE2b (the in-process
step's `hash()` differs between processes); the profile's counts are the same.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter, defaultdict
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from components import beam_runner, errors, ingest, labels, split_io, storage
from components.delimited import BadRowLog, _FileReader
from components.errors import DataSourceError, InputFormatError, RunnerError, TextClfError
from components.options import CSVParams, SplitOptions
from components.profile import SplitStats, assemble_profile, split_figures
from components.profile import write as write_profile

BATCH_ROWS = 4096
# Rows per bucket of the duplicate and overlap count (one worker holds a bucket's hashes).
ROWS_PER_HASH_BUCKET = 2_000_000
_NO_ROW = -1.0  # below every hash unit: "no row held yet"


class _Reader(_FileReader):
    """The in-process file reader, noting whether the labels known so far could decide a row."""

    consulted = False

    def _span_problem(self, *args):
        self.consulted = True
        return super()._span_problem(*args)


def _text_hash(text: str) -> int:
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _row(text: str, label: str) -> tuple:
    """(shard line, text hash, characters, words, label): what writing and profiling need of a row."""
    return split_io.encode_example(text, label), _text_hash(text), len(text), len(text.split()), label


class _UnitRead:
    """One read of a unit: its batches of (text, label, file, line) rows, its bad rows and files."""

    def __init__(self, unit, params: CSVParams, batch_rows: int):
        self.source, self.index, self.paths, self.only_file, known_start = unit
        self.params, self.batch_rows = params, batch_rows
        self.known = set(known_start)
        self.bad = BadRowLog(keep=ingest.MAX_LISTED_BAD_ROWS)
        self.files: List[str] = []
        self.consulted = False

    def batches(self) -> Iterator[List[tuple]]:
        batch: List[tuple] = []
        for path in self.paths:
            self.files.append(path)
            reader = _Reader(path, self.params, self.bad, self.known, self.only_file)
            try:
                for row in reader.rows():
                    batch.append(row)
                    if len(batch) == self.batch_rows:
                        yield batch
                        batch = []
            finally:
                self.consulted = self.consulted or reader.consulted
        if batch:
            yield batch


def _error_record(error: TextClfError) -> tuple:
    return (type(error).__name__, str(error), getattr(error, "path", None), getattr(error, "line", None),
            getattr(error, "column", None))


def _rebuilt_error(record: tuple) -> TextClfError:
    """The error a worker met, as its own type with its own message."""
    name, message, path, line, column = record
    error_type = getattr(errors, name, TextClfError)
    if not (isinstance(error_type, type) and issubclass(error_type, TextClfError)):
        error_type = TextClfError
    error = error_type.__new__(error_type)
    Exception.__init__(error, message)
    if error_type is InputFormatError or issubclass(error_type, InputFormatError):
        error.path, error.line, error.column = path, line, column
    return error


class _Hasher:
    """Split hash units and codes of a carved source, as `ingest._Carver` computes them."""

    def __init__(self, seed: int, bounds: Sequence[float]):
        self.seed, self.bounds = seed, list(bounds)
        self._hashers: Dict[str, Any] = {}

    def unit(self, label: str, text: str) -> float:
        hasher = self._hashers.get(label)
        if hasher is None:
            hasher = self._hashers[label] = ingest._label_hasher(self.seed, label)
        hasher = hasher.copy()
        hasher.update(text.encode("utf-8", "surrogatepass"))
        return int.from_bytes(hasher.digest(), "big") / ingest._TWO_TO_64

    def code(self, unit: float) -> int:
        for code, bound in enumerate(self.bounds, start=1):
            if unit < bound:
                return code
        return 0


# ----------------------------------------------------------------------------------------------
# Pipeline 1: count.

def _count_unit(unit, params: CSVParams, batch_rows: int, carve: Optional[tuple]) -> Dict[str, Any]:
    """One unit's summary; `carve` is (seed, bounds) for the source splits are carved from."""
    read = _UnitRead(unit, params, batch_rows)
    hasher = _Hasher(*carve) if carve and unit[0] == 0 else None
    summary: Dict[str, Any] = {"key": (unit[0], unit[1]), "error": None, "batches": [], "rows": 0,
                               "first_seen": {}}
    first_seen = summary["first_seen"]
    start = set(read.known)
    try:
        for batch in read.batches():
            counts: Counter = Counter()
            figures: Dict[str, list] = {}
            for text, label, path, number in batch:
                counts[label] += 1
                seen = first_seen.get(label)
                if seen is None:
                    first_seen[label] = [path, number, 1]
                else:
                    seen[2] += 1
                if hasher is not None:
                    unit_value = hasher.unit(label, text)
                    code = hasher.code(unit_value)
                    entry = figures.get(label)
                    if entry is None:
                        entry = figures[label] = [[0] * (len(hasher.bounds) + 1), None]
                    entry[0][code] += 1
                    if code and (entry[1] is None or unit_value > entry[1][0]):
                        entry[1] = (unit_value, code, _row(text, label))
            summary["batches"].append({"labels": dict(counts), "hash": figures})
            summary["rows"] += len(batch)
    except TextClfError as error:
        summary["error"] = _error_record(error)
    summary.update(files=read.files, consulted=read.consulted, added_labels=read.known - start,
                   bad=(read.bad.total, dict(read.bad.by_kind), list(read.bad.rows)))
    return summary


def _save_summary(summary, work: str) -> str:
    source, index = summary["key"]
    return beam_runner.write_pickle(summary, storage.join(work, f"count-{source}-{index}.pkl"))


# ----------------------------------------------------------------------------------------------
# Pipeline 2: route and write.

def _emit(rows_by_route: Dict[int, List[tuple]], offsets: Dict[int, int], plan: Dict[str, Any]):
    """Shard chunks, per-route counts and per-bucket hashes of rows routed in one batch."""
    per_shard, buckets, label_index = plan["examples_per_shard"], plan["hash_buckets"], plan["label_index"]
    for route, rows in rows_by_route.items():
        if not rows:
            continue
        start, i = offsets[route], 0
        while i < len(rows):
            ordinal = start + i
            shard = ordinal // per_shard
            end = min(len(rows), (shard + 1) * per_shard - start)
            yield "chunk", (route, shard), (ordinal, "".join(row[0] for row in rows[i:end]))
            i = end
        yield "counts", route, (Counter(row[4] for row in rows), Counter(row[2] for row in rows),
                                Counter(row[3] for row in rows))
        by_bucket: Dict[int, Tuple[list, list]] = defaultdict(lambda: ([], []))
        for row in rows:
            hashes, ids = by_bucket[row[1] % buckets]
            hashes.append(row[1])
            ids.append(label_index[row[4]])
        for bucket, (hashes, ids) in by_bucket.items():
            yield "hashes", bucket, (route, hashes, ids)


def _route_exact(batch, state, codes, names: Sequence[int]):
    rows_by_route: Dict[int, List[tuple]] = defaultdict(list)
    for text, label, _, _ in batch:
        position = state[label] = state.get(label, 0) + 1
        rows_by_route[names[codes[label][position - 1]]].append(_row(text, label))
    return rows_by_route


def _route_hash(batch, hasher: _Hasher, held: Dict[str, list], names: Sequence[int]):
    """`ingest._Carver._route_hash` over one batch; `held` starts from the plan's state of each
    label (the highest hash so far and the row waiting) and ends with the batch's own."""
    rows_by_route: Dict[int, List[tuple]] = defaultdict(list)
    for text, label, _, _ in batch:
        unit_value = hasher.unit(label, text)
        code = hasher.code(unit_value)
        if not code:
            rows_by_route[names[0]].append(_row(text, label))
            continue
        state = held.setdefault(label, [_NO_ROW, None])
        row = _row(text, label)
        if unit_value > state[0]:
            if state[1] is not None:
                rows_by_route[names[state[1][0]]].append(state[1][1])
            state[0], state[1] = unit_value, (code, row)
        else:
            rows_by_route[names[code]].append(row)
    return rows_by_route


def _route_unit(unit, plan_path: str):
    """Reads a unit again and routes its batches as the plan says."""
    plan = _plan_cache.get(plan_path)
    if plan is None:
        plan = _plan_cache[plan_path] = beam_runner.read_pickle(plan_path)
    read = _UnitRead(unit, plan["params"], plan["batch_rows"])
    source = unit[0]
    carved = source == 0 and plan["method"] in ("exact", "hash")
    hasher = _Hasher(plan["seed"], plan["bounds"]) if plan["method"] == "hash" else None
    batches = plan["batches"]
    count = 0
    for number, batch in enumerate(read.batches()):
        key = (source, unit[1], number)
        entry = batches.get(key)
        if entry is None or entry["rows"] != len(batch):
            raise DataSourceError(f"{', '.join(unit[2])}: changed while the ingest job read it; run it again")
        count += 1
        if not carved:
            rows_by_route = {plan["source_routes"][source]: [_row(text, label) for text, label, _, _ in batch]}
        elif hasher is None:
            rows_by_route = _route_exact(batch, dict(entry["prefix"]), plan["codes"], plan["code_routes"])
        else:
            held = {label: [value, carry] for label, (value, carry) in entry["held"].items()}
            rows_by_route = _route_hash(batch, hasher, held, plan["code_routes"])
        yield from _emit(rows_by_route, entry["offsets"], plan)
    if count != plan["unit_batches"][(source, unit[1])]:
        raise DataSourceError(f"{', '.join(unit[2])}: changed while the ingest job read it; run it again")


_plan_cache: Dict[str, Dict[str, Any]] = {}


def _emit_held(plan_path: str):
    """The rows the hash split held back to the end, each at the end of its split."""
    plan = beam_runner.read_pickle(plan_path)
    by_route: Dict[int, List[tuple]] = defaultdict(list)
    for route, row in plan["held_rows"]:
        by_route[route].append(row)
    yield from _emit(by_route, plan["held_offsets"], plan)


def _write_shard(element, folders: Dict[int, List[str]], per_shard: int):
    from apache_beam.io.filesystems import FileSystems
    (route, shard), chunks = element
    chunks = sorted(chunks)
    expected = shard * per_shard
    for ordinal, text in chunks:
        if ordinal != expected:
            raise RunnerError(f"shard {shard} of split {route}: rows from {ordinal} where {expected} was due")
        expected += text.count("\n")
    data = "".join(text for _, text in chunks).encode("utf-8", "surrogatepass")
    for folder in folders[route]:
        path = storage.join(folder, f"examples-{shard:05d}.jsonl")
        with FileSystems.create(path, mime_type="application/octet-stream") as f:
            f.write(data)
    return "written", (route, shard), expected - shard * per_shard


def _bucket_figures(element) -> tuple:
    """Duplicates, texts with conflicting labels and texts shared between routes, in one bucket."""
    import numpy as np
    _, parts = element
    stats: Dict[int, SplitStats] = defaultdict(SplitStats)
    for route, hashes, ids in parts:
        stats[route].hashes.extend(hashes)
        stats[route].labels.extend(ids)
    summaries = {route: split.hash_summary() for route, split in stats.items()}
    figures = {route: (duplicates, conflicting) for route, (_, duplicates, conflicting) in summaries.items()}
    shared = {}
    routes = sorted(summaries)
    for i, a in enumerate(routes):
        for b in routes[i + 1:]:
            shared[(a, b)] = len(np.intersect1d(summaries[a][0], summaries[b][0], assume_unique=True))
    return "figures", figures, shared


def _merge_counts(parts) -> tuple:
    total = (Counter(), Counter(), Counter())
    for part in parts:
        for into, counts in zip(total, part):
            into.update(counts)
    return total


def _save_results(element, work: str) -> str:
    _, parts = element
    results: Dict[str, Any] = {"written": {}, "counts": {}, "figures": []}
    for kind, key, value in parts:
        if kind == "written":
            results["written"][key] = value
        elif kind == "counts":
            results["counts"][key] = value
        else:
            results["figures"].append((key, value))
    return beam_runner.write_pickle(results, storage.join(work, "results.pkl"))


# ----------------------------------------------------------------------------------------------
# Launcher.

def _units(source: int, paths: List[str]) -> List[tuple]:
    """A unit per file: (source, index, files, only file of its source, labels known before)."""
    return [(source, i, (path,), len(paths) == 1, frozenset()) for i, path in enumerate(paths)]


def _run_count(args, units, params, batch_rows, carve, work, worker) -> Dict[tuple, Dict[str, Any]]:
    import apache_beam as beam
    pipeline, _ = beam_runner.new_pipeline(args)
    elements = [(u[0], u[1], tuple(worker(p) for p in u[2]), u[3], u[4]) for u in units]
    saved = (pipeline
             | "Units" >> beam.Create(elements)
             | "Distribute" >> beam.Reshuffle()
             | "Count" >> beam.Map(_count_unit, params, batch_rows, carve)
             | "Save" >> beam.Map(_save_summary, worker(work)))
    beam_runner.finish([saved])
    beam_runner.run(pipeline)
    return {(u[0], u[1]): beam_runner.read_pickle(storage.join(worker(work), f"count-{u[0]}-{u[1]}.pkl"))
            for u in units}


def _run_write(args, units, plan, plan_path, folders, work, worker) -> Dict[str, Any]:
    import apache_beam as beam
    pipeline, _ = beam_runner.new_pipeline(args)
    routed = (pipeline
              | "Units" >> beam.Create(units)
              | "Distribute" >> beam.Reshuffle()
              | "Route" >> beam.FlatMap(_route_unit, plan_path))
    held = pipeline | "HeldRows" >> beam.Create([plan_path]) | "RouteHeld" >> beam.FlatMap(_emit_held)
    rows = (routed, held) | "AllRows" >> beam.Flatten()
    written = (rows
               | "Chunks" >> beam.Filter(lambda e: e[0] == "chunk")
               | "KeyChunks" >> beam.Map(lambda e: (e[1], e[2]))
               | "GroupShards" >> beam.GroupByKey()
               | "WriteShards" >> beam.Map(_write_shard, folders, plan["examples_per_shard"]))
    counts = (rows
              | "Counts" >> beam.Filter(lambda e: e[0] == "counts")
              | "KeyCounts" >> beam.Map(lambda e: (e[1], e[2]))
              | "GroupCounts" >> beam.GroupByKey()
              | "MergeCounts" >> beam.Map(lambda e: ("counts", e[0], _merge_counts(e[1]))))
    figures = (rows
               | "Hashes" >> beam.Filter(lambda e: e[0] == "hashes")
               | "KeyHashes" >> beam.Map(lambda e: (e[1], e[2]))
               | "GroupBuckets" >> beam.GroupByKey()
               | "Figures" >> beam.Map(_bucket_figures))
    saved = ((written, counts, figures)
             | "Results" >> beam.Flatten()
             | "KeyResults" >> beam.Map(lambda e: (0, e))
             | "GroupResults" >> beam.GroupByKey()
             | "Save" >> beam.Map(_save_results, worker(work)))
    beam_runner.finish([saved])
    beam_runner.run(pipeline)
    return beam_runner.read_pickle(storage.join(worker(work), "results.pkl"))


def _clear_shards(folder: str) -> None:
    import os

    from apache_beam.io.filesystems import FileSystems
    if "://" not in folder:
        os.makedirs(folder, exist_ok=True)
    try:
        stale = [m.path for m in FileSystems.match([storage.join(folder, split_io.SHARD_PATTERN)])[0].metadata_list]
    except Exception:  # nothing there yet
        stale = []
    if stale:
        FileSystems.delete(stale)


class _Sources:
    """The sources in reading order, their files (or the error expanding them) and their units."""

    def __init__(self, uris: Dict[str, str], params: CSVParams):
        self.names = [name for name in ("train", "validation", "test") if uris.get(name)]
        self.uris = uris
        self.paths: Dict[str, List[str]] = {}
        self.errors: Dict[str, TextClfError] = {}
        self.units: Dict[str, List[tuple]] = {}
        for index, name in enumerate(self.names):
            try:
                self.paths[name] = storage.expand_inputs(uris[name])
            except TextClfError as error:
                self.errors[name] = error
                self.paths[name] = []
            self.units[name] = _units(index, self.paths[name])

    def all_units(self) -> List[tuple]:
        return [unit for name in self.names for unit in self.units[name]]


def _settle_known_labels(sources: _Sources, summaries, run_count) -> Dict[tuple, frozenset]:
    """The labels known before each unit, as one in-process read of everything in order has them
    (quoted rows add theirs; an unclosed quote is judged with them). Units are first counted
    with none known; those whose reading consulted them and had others before are counted again
    with those, together, until nothing changes (once, unless the recount changes a unit's labels).
    Only quoted files with multi-line or malformed records are ever counted again."""
    used = {(u[0], u[1]): u[4] for u in sources.all_units()}
    while True:
        known: set = set()
        starts, stale = {}, []
        for unit in sources.all_units():
            key = (unit[0], unit[1])
            starts[key] = frozenset(known)
            if starts[key] != used[key] and summaries[key]["consulted"]:
                stale.append(unit[:4] + (starts[key],))
            known |= summaries[key]["added_labels"]
        if not stale:
            return starts
        summaries.update(run_count(stale))
        used.update({(u[0], u[1]): u[4] for u in stale})


def _check_source(name: str, sources: _Sources, summaries) -> None:
    """The errors the in-process read of this source would raise, in its order."""
    if name in sources.errors:
        raise sources.errors[name]
    for unit in sources.units[name]:
        record = summaries[(unit[0], unit[1])]["error"]
        if record is not None:
            raise _rebuilt_error(record)
    if not sum(summaries[(u[0], u[1])]["rows"] for u in sources.units[name]):
        raise InputFormatError("no usable rows (only a header, or every row was rejected)", path=sources.uris[name])


def _source_labels(name: str, sources: _Sources, summaries) -> Dict[str, list]:
    """label -> [file, first line, rows] over a source, labels in order of first appearance."""
    seen: Dict[str, list] = {}
    for unit in sources.units[name]:
        for label, (path, number, count) in summaries[(unit[0], unit[1])]["first_seen"].items():
            if label in seen:
                seen[label][2] += count
            else:
                seen[label] = [path, number, count]
    return seen


def _train_batches(sources: _Sources, summaries) -> List[Tuple[tuple, Dict[str, Any]]]:
    return [((unit[0], unit[1], number), batch) for unit in sources.units["train"]
            for number, batch in enumerate(summaries[(unit[0], unit[1])]["batches"])]


def _plan_exact(batches, label_counts: Dict[str, int], carve, seed, plan, offsets_of, totals) -> None:
    fractions = list(carve.values())
    codes = {label: bytes(ingest.label_codes(count, label, fractions, seed, keep_one_in_rest=True))
             for label, count in label_counts.items()}
    routes = plan["code_routes"]
    prefix: Counter = Counter()
    for key, batch in batches:
        offsets = {route: totals[route] for route in set(routes)}
        entry = {"rows": sum(batch["labels"].values()), "prefix": dict(prefix), "offsets": offsets}
        for label, count in batch["labels"].items():
            piece = codes[label][prefix[label]:prefix[label] + count]
            for code in range(len(routes)):
                totals[routes[code]] += piece.count(code)
            prefix[label] += count
        offsets_of[key] = entry
    plan["codes"] = codes


def _plan_hash(batches, id_names: Sequence[str], plan, offsets_of, totals) -> None:
    """Replays the hash split's held-back rows batch by batch (see `_route_hash`)."""
    routes = plan["code_routes"]
    held: Dict[str, list] = {}  # label -> [highest unit, (code, row)]
    train_rows: Counter = Counter()
    for key, batch in batches:
        entry = {"rows": sum(batch["labels"].values()), "offsets": {route: totals[route] for route in set(routes)},
                 "held": {}}
        for label, (per_code, highest) in batch["hash"].items():
            counts = list(per_code)
            train_rows[label] += counts[0]
            state = held.get(label)
            entry["held"][label] = (state[0], state[1]) if state else (_NO_ROW, None)
            if highest is not None and (state is None or highest[0] > state[0]):
                counts[highest[1]] -= 1  # waits, written by a later batch or at the end
                if state is not None:
                    counts[state[1][0]] += 1  # the row it displaces is written in this batch
                held[label] = [highest[0], (highest[1], highest[2])]
            for code, count in enumerate(counts):
                totals[routes[code]] += count
        offsets_of[key] = entry
    held_rows = []
    for label in id_names:
        if label in held:
            code, row = held[label][1]
            held_rows.append((routes[code if train_rows[label] else 0], row))
    plan["held_offsets"] = {route: totals[route] for route in set(routes)}
    for route, _ in held_rows:
        totals[route] += 1
    plan["held_rows"] = held_rows


def ingest_beam(train: str, validation: str, test: str, params: CSVParams, split_options: SplitOptions,
                output_dirs: Dict[str, str], profile_dir: str, beam_pipeline_args: Sequence[str]) -> Dict:
    """`ingest.ingest` as Beam jobs on the runner `beam_pipeline_args` name (see the module doc)."""
    args = list(beam_pipeline_args)
    local = beam_runner.runner_is_local(args)

    def worker(path: str) -> str:
        return beam_runner.worker_path(path, not local)

    carve = ingest.carved_fractions(validation, test, split_options)
    sources = _Sources({"train": train, "validation": validation, "test": test}, params)
    batch_rows = BATCH_ROWS
    bounds = [sum(list(carve.values())[:i + 1]) for i in range(len(carve))]
    count_carve = (split_options.seed, bounds) if carve else None
    work = beam_runner.work_folder(args, output_dirs.get("train") or next(iter(output_dirs.values()), ""), local)
    try:
        def run_count(units):
            return _run_count(args, units, params, batch_rows, count_carve, work, worker)

        summaries = run_count(sources.all_units()) if sources.all_units() else {}
        starts = _settle_known_labels(sources, summaries, run_count)
        return _finish(train, validation, test, params, split_options, output_dirs, profile_dir, args,
                       sources, summaries, starts, carve, bounds, batch_rows, work, worker)
    finally:
        beam_runner.remove_folder(worker(work))


def _finish(train, validation, test, params, split_options, output_dirs, profile_dir, args, sources,
            summaries, starts, carve, bounds, batch_rows, work, worker) -> Dict:
    _check_source("train", sources, summaries)
    train_seen = _source_labels("train", sources, summaries)
    id_names = list(train_seen)
    label_names = ingest.sorted_label_names(id_names)
    error = ingest.too_few_classes(train, label_names)
    if error:
        raise error

    # routes: where rows go; a validation file without a test file is written to both folders
    route_names: List[List[str]] = [["train"]] + [[name] for name in carve]
    code_routes = list(range(len(route_names))) if carve else [0]
    source_routes = {0: 0}
    for name, uri in (("validation", validation), ("test", test)):
        if uri:
            source_routes[sources.names.index(name)] = len(route_names)
            route_names.append(["validation", "test"] if name == "validation" and not test else [name])
    totals: Counter = Counter({route: 0 for route in range(len(route_names))})
    offsets_of: Dict[tuple, Dict[str, Any]] = {}
    total_rows = sum(summaries[(u[0], u[1])]["rows"] for u in sources.units["train"])
    method = "files"
    plan: Dict[str, Any] = {"code_routes": code_routes, "held_rows": [], "held_offsets": {}, "codes": {}}
    batches = _train_batches(sources, summaries)
    if carve:
        method = "exact" if total_rows <= ingest.EXACT_SPLIT_MAX_ROWS else "hash"
        if method == "exact":
            _plan_exact(batches, {label: seen[2] for label, seen in train_seen.items()}, carve,
                        split_options.seed, plan, offsets_of, totals)
        else:
            _plan_hash(batches, id_names, plan, offsets_of, totals)
    else:
        for key, batch in batches:
            rows = sum(batch["labels"].values())
            offsets_of[key] = {"rows": rows, "offsets": {0: totals[0]}}
            totals[0] += rows

    # the in-process order of checks: classes, carved splits, then each further source
    if carve:
        train_split = _train_split_counts(plan, method, batches, train_seen, carve, code_routes)
        for i, name in enumerate(carve, start=1):
            if not totals[i]:
                raise ingest.empty_split_error(name, carve, [train_split.get(label, 0) for label in id_names])
    train_labels = set(label_names)
    for name in ("validation", "test"):
        if name not in sources.names:
            continue
        _check_source(name, sources, summaries)
        unknown = {label: seen for label, seen in _source_labels(name, sources, summaries).items()
                   if label not in train_labels}
        if unknown:
            raise ingest.unknown_labels_error(name, unknown, label_names)
        index = sources.names.index(name)
        route = source_routes[index]
        for unit in sources.units[name]:
            for number, batch in enumerate(summaries[(unit[0], unit[1])]["batches"]):
                rows = sum(batch["labels"].values())
                offsets_of[(unit[0], unit[1], number)] = {"rows": rows, "offsets": {route: totals[route]}}
                totals[route] += rows

    per_shard = split_io.EXAMPLES_PER_SHARD
    plan.update(params=params, batch_rows=batch_rows, method=method, seed=split_options.seed, bounds=bounds,
                batches=offsets_of, source_routes=source_routes, examples_per_shard=per_shard,
                label_index={label: i for i, label in enumerate(label_names)},
                hash_buckets=max(1, min(4096, math.ceil(sum(totals.values()) / ROWS_PER_HASH_BUCKET))),
                unit_batches={key: len(summary["batches"]) for key, summary in summaries.items()})
    folders = {route: [worker(output_dirs[name]) for name in names if name in output_dirs]
               for route, names in enumerate(route_names)}
    for route_folders in folders.values():
        for folder in route_folders:
            _clear_shards(folder)
    plan_path = beam_runner.write_pickle(plan, storage.join(worker(work), "plan.pkl"))
    units = [unit[:4] + (starts[(unit[0], unit[1])],) for unit in sources.all_units()]
    units = [(u[0], u[1], tuple(worker(p) for p in u[2]), u[3], u[4]) for u in units]
    try:
        results = _run_write(args, units, plan, plan_path, folders, work, worker)
    finally:
        _plan_cache.pop(plan_path, None)

    _check_written(results["written"], totals, per_shard, route_names)
    for route, route_folders in folders.items():
        for folder in route_folders:
            if not totals[route]:
                storage.write_bytes(storage.join(folder, "examples-00000.jsonl"), b"")
            labels.write(folder, label_names)
    profile = _profile(results, totals, route_names, label_names, sources, summaries, carve, method,
                       total_rows, split_options, train, validation, test)
    if profile_dir:
        write_profile(profile_dir, profile)
    return profile


def _train_split_counts(plan, method, batches, train_seen, carve, code_routes) -> Dict[str, int]:
    """Rows of each label that the training split gets (for the empty-split advice)."""
    if method == "exact":
        return {label: plan["codes"][label].count(0) for label in train_seen}
    counts: Counter = Counter()
    for _, batch in batches:
        for label, (per_code, _) in batch["hash"].items():
            counts[label] += per_code[0]
    for route, row in plan["held_rows"]:
        if route == code_routes[0]:
            counts[row[4]] += 1
    return dict(counts)


def _check_written(written: Dict[tuple, int], totals, per_shard: int, route_names) -> None:
    for route, total in totals.items():
        expected = {shard: min(per_shard, total - shard * per_shard) for shard in range(math.ceil(total / per_shard))}
        got = {shard: rows for (r, shard), rows in written.items() if r == route}
        if got != expected:
            raise RunnerError(f"the {'/'.join(route_names[route])} split: the runner wrote shards "
                              f"{sorted(got.items())}, not {sorted(expected.items())}; nothing was lost from the "
                              "input, but this output is incomplete: run the step again")


def _profile(results, totals, route_names, label_names, sources, summaries, carve, method, total_rows,
             split_options, train, validation, test) -> Dict:
    route_of = {name: route for route, names in enumerate(route_names) for name in names}
    duplicates: Counter = Counter()
    conflicting: Counter = Counter()
    shared: Counter = Counter()
    for figures, pairs in results["figures"]:
        for route, (dup, conflict) in figures.items():
            duplicates[route] += dup
            conflicting[route] += conflict
        shared.update(pairs)
    figures_by_name, counts_by_name = {}, {}
    for name in ingest.SPLITS:
        route = route_of[name]
        label_counts, chars, words = results["counts"].get(route, (Counter(), Counter(), Counter()))
        counts_by_name[name] = {label: label_counts.get(label, 0) for label in label_names}
        figures_by_name[name] = split_figures(totals[route], label_counts, label_names, chars, words,
                                              duplicates[route], conflicting[route])
    overlap = {}
    names = sorted(ingest.SPLITS)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            ra, rb = route_of[a], route_of[b]
            if ra != rb and shared[(min(ra, rb), max(ra, rb))]:
                overlap[f"{a}/{b}"] = shared[(min(ra, rb), max(ra, rb))]
    bad = BadRowLog(keep=ingest.MAX_LISTED_BAD_ROWS)
    files: Dict[str, List[str]] = {}
    for name in sources.names:
        files[name] = []
        for unit in sources.units[name]:
            summary = summaries[(unit[0], unit[1])]
            files[name] += summary["files"]
            total, by_kind, rows = summary["bad"]
            bad.total += total
            bad.by_kind.update(by_kind)
            bad.rows += rows[:max(0, ingest.MAX_LISTED_BAD_ROWS - len(bad.rows))]
    if carve:
        split_method = {"method": method, "rows": total_rows, "seed": split_options.seed,
                        "exact_max_rows": ingest.EXACT_SPLIT_MAX_ROWS, "fractions": dict(carve)}
    else:
        split_method = {"method": "files"}
    notes = ingest.small_class_notes(counts_by_name, list(carve), label_names)
    sources_text = ingest.split_sources(train, validation, test, carve, split_options.seed)
    return assemble_profile(figures_by_name, overlap, label_names, sources_text, files, bad, split_method, notes)
