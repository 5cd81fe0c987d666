"""The on-disk form of one data split, as the ingest step writes it and later steps read it.

A split folder holds `examples-NNNNN.jsonl` shards (one `{"text": ..., "label": NAME}` object a
line, UTF-8) and `labels.txt`, the label names of the training split in id order. JSON lines keep
any text intact (tabs, quotes, newlines) without a second escaping convention.
"""

from __future__ import annotations

import glob
import json
import os
from typing import Iterable, Iterator, List, Optional, Sequence, Tuple

from components import labels
from components.errors import DataSourceError, InputFormatError, LabelError

LABELS_FILE = labels.LABELS_FILE
SHARD_PATTERN = "examples-*.jsonl"

EXAMPLES_PER_SHARD = 100_000

try:  # the C encoder json.dumps(..., ensure_ascii=False) uses for strings
    from json.encoder import c_encode_basestring as _encode_string
except ImportError:  # pragma: no cover (a Python without the _json accelerator)
    from json.encoder import py_encode_basestring as _encode_string


def encode_label_tail(label: str) -> str:
    """The end of an example line for `label`, computed once per label by streaming writers."""
    return ', "label": ' + _encode_string(label) + "}\n"


def encode_example(text: str, label: str) -> str:
    """One shard line, byte for byte what `json.dumps({"text": ..., "label": ...}, ensure_ascii=False)`
    writes, plus the newline."""
    return '{"text": ' + _encode_string(text) + encode_label_tail(label)


SCORE_DIGITS = 6


def encode_scored_example(text: str, label: str, scores: Sequence[float]) -> str:
    """A shard line that also carries a teacher's class scores (a distillation transfer set);
    scores are rounded to `SCORE_DIGITS` so the bytes do not depend on float printing."""
    rounded = [round(float(s), SCORE_DIGITS) for s in scores]
    return json.dumps({"text": text, "label": label, "scores": rounded}, ensure_ascii=False) + "\n"


class SplitWriter:
    """Streams example lines into a split folder's shards; `labels.txt` is written by `close`.

    Shards left in the folder by an earlier write are removed first, so the folder holds exactly
    what this writer wrote.
    """

    def __init__(self, folder: str, examples_per_shard: int = EXAMPLES_PER_SHARD):
        self.folder = folder
        self.examples_per_shard = examples_per_shard
        os.makedirs(folder, exist_ok=True)
        for stale in glob.glob(os.path.join(folder, SHARD_PATTERN)):
            os.remove(stale)
        self._shard = 0
        self._in_shard = examples_per_shard
        self._out = None

    @property
    def count(self) -> int:
        return 0 if self._out is None else (self._shard - 1) * self.examples_per_shard + self._in_shard

    def write_line(self, line: str) -> None:
        """Writes one line made by `encode_example` (or `encode_label_tail`)."""
        if self._in_shard == self.examples_per_shard:
            self._next_shard()
        self._out.write(line)
        self._in_shard += 1

    def write(self, text: str, label: str) -> None:
        self.write_line(encode_example(text, label))

    def _next_shard(self) -> None:
        if self._out is not None:
            self._out.close()
        self._out = open(os.path.join(self.folder, f"examples-{self._shard:05d}.jsonl"), "w",
                         encoding="utf-8", newline="\n", buffering=1 << 20)
        self._shard += 1
        self._in_shard = 0

    def close(self, label_names: Optional[Sequence[str]] = None) -> int:
        """Finishes the shards (an empty split gets one empty shard); returns the rows written."""
        count = self.count
        if self._out is None:
            open(os.path.join(self.folder, "examples-00000.jsonl"), "w").close()
        else:
            self._out.close()
        if label_names is not None:
            labels.write(self.folder, label_names)
        return count

    def abort(self) -> None:
        if self._out is not None:
            self._out.close()


def write_split(folder: str, examples: Iterable[Tuple[str, str]], label_names: Sequence[str],
                examples_per_shard: int = EXAMPLES_PER_SHARD) -> int:
    """Writes (text, label_name) pairs; returns how many were written."""
    writer = SplitWriter(folder, examples_per_shard)
    try:
        for text, label in examples:
            writer.write(text, label)
    except BaseException:
        writer.abort()
        raise
    return writer.close(label_names)


def parse_record(line: str, path: str, number: int) -> Tuple[str, str]:
    """(text, label name) of one JSON line of a split shard; errors name the shard and line."""
    text, label, _ = parse_scored_record(line, path, number)
    return text, label


def parse_scored_record(line: str, path: str, number: int) -> Tuple[str, str, Optional[List[float]]]:
    """(text, label name, the teacher's scores or None) of one JSON line of a split shard."""
    try:
        record = json.loads(line)
        text, label = record["text"], record["label"]
    except (ValueError, KeyError, TypeError) as e:
        raise InputFormatError(f"not a split record ({e})", path=path, line=number) from None
    if not isinstance(text, str):
        raise InputFormatError(f"'text' must be a string, got {type(text).__name__}", path=path, line=number)
    scores = record.get("scores")
    if scores is not None and (not isinstance(scores, list) or not all(isinstance(s, (int, float)) for s in scores)):
        raise InputFormatError("'scores' must be a list of numbers", path=path, line=number)
    return text, label if isinstance(label, str) else str(label), scores


def split_files(folder: str) -> List[str]:
    files = sorted(glob.glob(os.path.join(folder, SHARD_PATTERN)))
    if not files:
        raise DataSourceError(f"{folder}: no {SHARD_PATTERN} files; is this an ingest output split?")
    return files


def iter_split(folder: str) -> Iterator[Tuple[str, str]]:
    """Yields (text, label_name) in the order written."""
    for path in split_files(folder):
        with open(path, encoding="utf-8") as f:
            for record in map(json.loads, f):
                yield record["text"], record["label"]


def read_split(folder: str) -> Tuple[List[str], List[int], List[str]]:
    """Returns texts, label ids (index into labels.txt) and label names."""
    label_names = labels.read(folder)
    index = {name: i for i, name in enumerate(label_names)}
    texts, label_ids = [], []
    for text, label in iter_split(folder):
        if label not in index:
            raise LabelError(f"{folder}: label {label!r} is not among the training labels {label_names}")
        texts.append(text)
        label_ids.append(index[label])
    return texts, label_ids, label_names


def read_scored_split(folder: str) -> Tuple[List[str], List[int], List[str], Optional[List[List[float]]]]:
    """As `read_split`, plus the records' teacher scores (None for a split without them)."""
    label_names = labels.read(folder)
    index = {name: i for i, name in enumerate(label_names)}
    texts, label_ids, scores = [], [], []
    for path in split_files(folder):
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                text, label, row_scores = parse_scored_record(line, path, number)
                if label not in index:
                    raise LabelError(f"{folder}: label {label!r} is not among the training labels {label_names}")
                texts.append(text)
                label_ids.append(index[label])
                if row_scores is not None:
                    scores.append(row_scores)
    if scores and len(scores) != len(texts):
        raise InputFormatError(f"{folder}: {len(scores)} of {len(texts)} records carry teacher scores")
    return texts, label_ids, label_names, scores or None
