"""`labels.txt`: a model's label names, one a line, in id order; written and read here only.

The same file sits in split folders, export folders and deliverables, and packed inside every
.tflite (MediaPipe reads it from there), so label id i means line i everywhere.
"""

from __future__ import annotations

from typing import Iterable, List, Sequence

from components import storage
from components.errors import DataSourceError, LabelError

LABELS_FILE = "labels.txt"


def label_key(label: str):
    """Integer-looking labels sort numerically ('2' before '10'), the others as strings."""
    try:
        return (0, int(label), label)
    except ValueError:
        return (1, 0, label)


def sorted_label_names(labels: Iterable[str]) -> List[str]:
    return sorted(set(labels), key=label_key)


def to_bytes(label_names: Sequence[str]) -> bytes:
    names = [str(n) for n in label_names]
    if not names or any(not n or "\n" in n or "\r" in n for n in names):
        raise LabelError(f"label names must be non-empty single-line strings, got {names!r}")
    return ("\n".join(names) + "\n").encode("utf-8")


def parse(data: bytes, source: str = LABELS_FILE) -> List[str]:
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError as error:
        raise LabelError(f"{source}: not UTF-8 text ({error})") from None
    names = [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]
    names = [name for name in names if name]
    if len(names) < 2:
        raise LabelError(f"{source}: needs at least two label names, found {len(names)}")
    return names


def write(folder: str, label_names: Sequence[str], file_name: str = LABELS_FILE) -> str:
    """Writes `folder/labels.txt` (or `file_name`); returns its path."""
    path = storage.join(folder, file_name)
    storage.write_bytes(path, to_bytes(label_names))
    return path


def read(folder: str) -> List[str]:
    path = storage.join(folder, LABELS_FILE)
    if not storage.exists(path):
        raise DataSourceError(f"{path}: label file not found")
    return parse(storage.read_bytes(path), path)
