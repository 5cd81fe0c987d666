"""Ingest and split: read labelled delimited text, validate every row, split, profile.

Every row is either kept, or reported: with `on_bad_rows="error"` the first bad row stops the
step with its file, line and column; with `"skip"` it is counted and listed in the profile.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import random
from collections import Counter, defaultdict
from typing import Dict, List, Optional, Sequence, Tuple

from components import storage
from components.errors import InputFormatError, LabelError
from components.options import AUTO, CSVParams, SplitOptions
from components.split_io import write_split

SPLITS = ("train", "validation", "test")
MAX_LISTED_BAD_ROWS = 50


@dataclasses.dataclass
class BadRow:
    source: str
    line: int
    column: Optional[str]
    reason: str

    def to_dict(self):
        return dataclasses.asdict(self)


@dataclasses.dataclass
class ReadResult:
    source: str
    rows: List[Tuple[str, str]]
    bad_rows: List[BadRow]


def _decode_lines(data: bytes, params: CSVParams, source: str, bad: List[BadRow]) -> str:
    """Decodes line by line so an undecodable byte is reported with its line number."""
    try:
        return data.decode(params.encoding)
    except UnicodeDecodeError:
        pass
    except LookupError as error:
        raise InputFormatError(f"unknown encoding {params.encoding!r}", path=source) from error
    kept = []
    for number, raw in enumerate(data.splitlines(keepends=True), start=1):
        try:
            kept.append(raw.decode(params.encoding))
        except UnicodeDecodeError as error:
            reason = (f"bytes not decodable as {params.encoding} at byte {error.start} of the line "
                      f"({raw[error.start:error.start + 4]!r})")
            if params.on_bad_rows == "error":
                raise InputFormatError(reason + "; fix the file or pass the right encoding",
                                       path=source, line=number) from error
            bad.append(BadRow(source, number, None, reason))
            kept.append("\n")  # a blank stand-in keeps the following line numbers true
    return "".join(kept)


def _label_key(label: str):
    """Integer-looking labels sort numerically ('2' before '10'), others as strings."""
    try:
        return (0, int(label), label)
    except ValueError:
        return (1, 0, label)


def _auto_text_column(fieldnames: List[str], label_column: str) -> str:
    others = [name for name in fieldnames if name != label_column]
    if len(others) == 1:
        return others[0]
    for name in ("text", "sentence"):
        if name in others:
            return name
    return "text"  # not in the header: the missing-column error below lists what is there


def sorted_label_names(labels) -> List[str]:
    return sorted(set(labels), key=_label_key)


def read_delimited(uri: str, params: CSVParams) -> ReadResult:
    """Reads (text, label) rows from a path, gs:// object or URL (optionally a zip member)."""
    local = storage.resolve_input(uri)
    with open(local, "rb") as f:
        data = f.read()
    bad: List[BadRow] = []
    if not data.strip():
        raise InputFormatError("the file is empty", path=uri)
    if data.startswith(b"\xef\xbb\xbf") and params.encoding.lower().replace("-", "") == "utf8":
        data = data[3:]
    text = _decode_lines(data, params, uri, bad)
    delimiter = params.delimiter
    if delimiter == AUTO:
        delimiter = "\t" if uri.lower().endswith((".tsv", ".tab")) else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter,
                        quotechar=params.quotechar or None, quoting=csv.QUOTE_MINIMAL if params.quotechar
                        else csv.QUOTE_NONE, strict=False)
    header_line = 0
    try:
        if params.fieldnames:
            fieldnames = list(params.fieldnames)
        else:
            fieldnames = next(reader)
            header_line = reader.line_num
    except StopIteration:
        raise InputFormatError("the file is empty", path=uri)
    except csv.Error as error:
        raise InputFormatError(f"unreadable header: {error}", path=uri, line=1) from error
    fieldnames = [name.strip() for name in fieldnames]
    text_column = _auto_text_column(fieldnames, params.label_column) if params.text_column == AUTO \
        else params.text_column
    for column in (text_column, params.label_column):
        if column not in fieldnames:
            raise InputFormatError(
                f"no column named {column!r}; the header has {fieldnames} "
                f"(delimiter {delimiter!r}). Set text_column/label_column, or fieldnames for "
                "a file without a header", path=uri, line=header_line or None, column=column)
    text_index = fieldnames.index(text_column)
    label_index = fieldnames.index(params.label_column)

    def reject(line, column, reason):
        if params.on_bad_rows == "error":
            raise InputFormatError(reason + " (pass on_bad_rows='skip' to count and skip such rows)",
                                   path=uri, line=line, column=column)
        bad.append(BadRow(uri, line, column, reason))

    rows: List[Tuple[str, str]] = []
    start_line = header_line + 1
    while True:
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            reject(reader.line_num, None, f"malformed row: {error}")
            continue
        line = start_line
        start_line = reader.line_num + 1
        if not record:
            continue  # a blank line is not a row
        if len(record) != len(fieldnames):
            reject(line, None, f"expected {len(fieldnames)} fields, found {len(record)}")
            continue
        text_value, label_value = record[text_index], record[label_index].strip()
        if not text_value.strip():
            reject(line, text_column, "empty text")
            continue
        if not label_value:
            reject(line, params.label_column, "empty label")
            continue
        rows.append((text_value, label_value))
    if not rows:
        raise InputFormatError("no usable rows (only a header, or every row was rejected)", path=uri)
    return ReadResult(uri, rows, bad)


def stratified_split(rows: Sequence[Tuple[str, str]], fractions: Dict[str, float], seed: int
                     ) -> Dict[str, List[Tuple[str, str]]]:
    """Splits per label so each split keeps the label mix; same seed ⇒ same result.

    `fractions` names the splits carved out; the remainder is 'train'. Rows keep their input
    order inside each split, so output files are stable under the seed alone.
    """
    by_label: Dict[str, List[int]] = defaultdict(list)
    for index, (_, label) in enumerate(rows):
        by_label[label].append(index)
    assignment: Dict[int, str] = {}
    for label in sorted(by_label, key=_label_key):
        indices = list(by_label[label])
        random.Random(f"{seed}:{label}").shuffle(indices)
        position = 0
        for name, fraction in fractions.items():
            count = int(round(fraction * len(indices)))
            for index in indices[position:position + count]:
                assignment[index] = name
            position += count
    result: Dict[str, List[Tuple[str, str]]] = {"train": [], **{name: [] for name in fractions}}
    for index, row in enumerate(rows):
        result[assignment.get(index, "train")].append(row)
    return result


def _percentiles(values: List[int]) -> Dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def pick(q):
        return float(ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))])

    return {"min": float(ordered[0]), "p50": pick(0.5), "p90": pick(0.9), "p99": pick(0.99),
            "max": float(ordered[-1]), "mean": round(sum(ordered) / len(ordered), 2)}


def profile_splits(splits: Dict[str, List[Tuple[str, str]]], sources: Dict[str, str],
                   bad_rows: List[BadRow], label_names: List[str]) -> Dict:
    profile: Dict = {"label_names": label_names, "sources": sources, "splits": {}}
    seen_in: Dict[str, set] = defaultdict(set)
    for name, rows in splits.items():
        counts = Counter(label for _, label in rows)
        texts = Counter(text for text, _ in rows)
        conflicting = defaultdict(set)
        for text, label in rows:
            conflicting[text].add(label)
        for text in texts:
            seen_in[text].add(name)
        profile["splits"][name] = {
            "rows": len(rows),
            "labels": {label: counts.get(label, 0) for label in label_names},
            "text_chars": _percentiles([len(t) for t, _ in rows]),
            "text_words": _percentiles([len(t.split()) for t, _ in rows]),
            "duplicate_rows": sum(c - 1 for c in texts.values() if c > 1),
            "duplicate_texts_with_conflicting_labels": sum(1 for v in conflicting.values() if len(v) > 1),
        }
    same_rows = {("test", "validation")} if splits.get("test") is splits.get("validation") else set()
    overlap = Counter()
    for names in seen_in.values():
        for a in sorted(names):
            for b in sorted(names):
                if a < b and (a, b) not in same_rows:
                    overlap[f"{a}/{b}"] += 1
    profile["texts_shared_between_splits"] = dict(overlap)
    reasons = Counter(row.reason.split(":")[0] for row in bad_rows)
    profile["dropped_rows"] = {
        "total": len(bad_rows),
        "by_reason": dict(reasons),
        "rows": [row.to_dict() for row in bad_rows[:MAX_LISTED_BAD_ROWS]],
        "listed": min(len(bad_rows), MAX_LISTED_BAD_ROWS),
    }
    return profile


def profile_markdown(profile: Dict) -> str:
    labels = profile["label_names"]
    lines = ["# Data profile", "", "| split | rows | " + " | ".join(f"label {l}" for l in labels)
             + " | median words | p99 words | duplicate rows |",
             "|---|---|" + "---|" * len(labels) + "---|---|---|"]
    for name, split in profile["splits"].items():
        cells = [name, str(split["rows"])] + [str(split["labels"][l]) for l in labels]
        words = split["text_words"]
        cells += [f"{words.get('p50', 0):.0f}", f"{words.get('p99', 0):.0f}", str(split["duplicate_rows"])]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Sources: " + ", ".join(f"{k} = `{v}`" for k, v in profile["sources"].items())]
    shared = profile["texts_shared_between_splits"]
    lines.append("Texts present in more than one split: "
                 + (", ".join(f"{k}: {v}" for k, v in shared.items()) if shared else "none"))
    dropped = profile["dropped_rows"]
    lines.append(f"Rows dropped: {dropped['total']}"
                 + ("" if not dropped["total"] else " — " + ", ".join(
                     f"{reason}: {count}" for reason, count in dropped["by_reason"].items())))
    for row in dropped["rows"]:
        where = f"{row['source']} line {row['line']}" + (f" column {row['column']}" if row["column"] else "")
        lines.append(f"- {where}: {row['reason']}")
    return "\n".join(lines) + "\n"


def ingest(train: str, validation: str = "", test: str = "", csv_params: CSVParams | None = None,
           split_options: SplitOptions | None = None, output_dirs: Dict[str, str] | None = None,
           profile_dir: str = "") -> Dict:
    """Reads the sources, splits what is missing, writes split folders and the profile.

    Splits missing as files are made: no validation file ⇒ carved from train; no test file ⇒
    the validation file serves as test (Model Maker's guide evaluates on its validation set),
    or, with neither, carved from train too. The profile records which applied.
    """
    params = csv_params or CSVParams()
    split_options = split_options or SplitOptions()
    if not train:
        raise InputFormatError("a training source is required")
    read = {"train": read_delimited(train, params)}
    if validation:
        read["validation"] = read_delimited(validation, params)
    if test:
        read["test"] = read_delimited(test, params)

    carve = {}
    if not validation:
        carve["validation"] = split_options.validation_fraction
    if not test and not validation:
        carve["test"] = split_options.test_fraction
    splits = stratified_split(read["train"].rows, carve, split_options.seed) if carve \
        else {"train": list(read["train"].rows)}
    sources = {"train": train}
    for name in ("validation", "test"):
        if name in read:
            splits[name] = list(read[name].rows)
            sources[name] = read[name].source
        elif name in carve:
            sources[name] = f"{carve[name]:.0%} of train (stratified, seed {split_options.seed})"
    if "test" not in splits:
        splits["test"] = splits["validation"]
        sources["test"] = "the validation split (no test file given)"

    label_names = sorted_label_names(label for _, label in splits["train"])
    if len(label_names) < 2:
        raise LabelError(f"{train}: the training split has {len(label_names)} class(es) "
                         f"({label_names}); a classifier needs at least two")
    known = set(label_names)
    for name in ("validation", "test"):
        unknown = sorted_label_names(label for _, label in splits[name] if label not in known)
        if unknown:
            line_hint = ""
            if name in read:
                first = next(i for i, (_, l) in enumerate(read[name].rows) if l == unknown[0])
                line_hint = f" (first at data row {first + 1})"
            raise LabelError(f"{sources[name]}: label(s) {unknown} in the {name} split do not occur in "
                             f"the training split {label_names}{line_hint}; a model cannot learn them")
    for name in ("validation", "test"):
        if not splits[name]:
            raise LabelError(f"the {name} split is empty ({sources[name]}); give a file or a larger fraction")

    bad_rows = [row for result in read.values() for row in result.bad_rows]
    profile = profile_splits({n: splits[n] for n in SPLITS}, sources, bad_rows, label_names)
    if output_dirs:
        for name in SPLITS:
            if name in output_dirs:
                write_split(output_dirs[name], splits[name], label_names)
    if profile_dir:
        os.makedirs(profile_dir, exist_ok=True)
        with open(os.path.join(profile_dir, "profile.json"), "w", encoding="utf-8") as f:
            json.dump(profile, f, indent=2, ensure_ascii=False)
        with open(os.path.join(profile_dir, "profile.md"), "w", encoding="utf-8") as f:
            f.write(profile_markdown(profile))
    return profile
