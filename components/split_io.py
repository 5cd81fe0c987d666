"""The on-disk form of one data split, as the ingest step writes it and later steps read it.

A split folder holds `examples-NNNNN.jsonl` shards (one `{"text": ..., "label": NAME}` object a
line, UTF-8) and `labels.txt`, the label names of the training split in id order. JSON lines keep
any text intact (tabs, quotes, newlines) without a second escaping convention.
"""

from __future__ import annotations

import glob
import json
import os
from typing import Iterable, Iterator, List, Sequence, Tuple

from components.errors import DataSourceError, InputFormatError, LabelError

LABELS_FILE = "labels.txt"
SHARD_PATTERN = "examples-*.jsonl"


def write_labels(path: str, label_names: Sequence[str]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for name in label_names:
            f.write(f"{name}\n")


def read_labels(path: str) -> List[str]:
    if not os.path.exists(path):
        raise DataSourceError(f"{path}: label file not found")
    with open(path, encoding="utf-8") as f:
        names = [line.rstrip("\n") for line in f if line.rstrip("\n")]
    if len(names) < 2:
        raise LabelError(f"{path}: needs at least two label names, found {len(names)}")
    return names


def write_split(folder: str, examples: Iterable[Tuple[str, str]], label_names: Sequence[str],
                examples_per_shard: int = 100_000) -> int:
    """Writes (text, label_name) pairs; returns how many were written."""
    os.makedirs(folder, exist_ok=True)
    write_labels(os.path.join(folder, LABELS_FILE), label_names)
    count, shard, out = 0, 0, None
    try:
        for text, label in examples:
            if out is None or count % examples_per_shard == 0:
                if out is not None:
                    out.close()
                out = open(os.path.join(folder, f"examples-{shard:05d}.jsonl"), "w", encoding="utf-8")
                shard += 1
            out.write(json.dumps({"text": text, "label": label}, ensure_ascii=False) + "\n")
            count += 1
    finally:
        if out is not None:
            out.close()
    if count == 0:
        open(os.path.join(folder, "examples-00000.jsonl"), "w").close()
    return count


def parse_record(line: str, path: str, number: int) -> Tuple[str, str]:
    """(text, label name) of one JSON line of a split shard; errors name the shard and line."""
    try:
        record = json.loads(line)
        text, label = record["text"], record["label"]
    except (ValueError, KeyError, TypeError) as e:
        raise InputFormatError(f"not a split record ({e})", path=path, line=number) from None
    if not isinstance(text, str):
        raise InputFormatError(f"'text' must be a string, got {type(text).__name__}", path=path, line=number)
    return text, label if isinstance(label, str) else str(label)


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
    label_names = read_labels(os.path.join(folder, LABELS_FILE))
    index = {name: i for i, name in enumerate(label_names)}
    texts, labels = [], []
    for text, label in iter_split(folder):
        if label not in index:
            raise LabelError(f"{folder}: label {label!r} is not among the training labels {label_names}")
        texts.append(text)
        labels.append(index[label])
    return texts, labels, label_names
