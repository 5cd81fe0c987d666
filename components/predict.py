"""Classifying texts with an exported model from the shell (`textclf predict`).

The scores come from `TextClassifier.load`: the .tflite run by LiteRT and the texts tokenized from
the vocabulary packed in the model, as MediaPipe tokenizes them on the device. So what this prints
is what the shipped model answers, not what the Keras model answered in training.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import Any, Dict, List, Sequence

from components.errors import ConfigError, DataSourceError, InputFormatError


@dataclasses.dataclass
class TextFile:
    """The texts of a file, one a line, and how many blank lines were not texts."""

    texts: List[str]
    blank_lines: int


def read_texts(path: str) -> TextFile:
    """One text a line of a UTF-8 file ('-': standard input); a trailing CR is dropped with the
    newline, and blank lines are counted, not classified."""
    try:
        if path == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(path, "rb") as f:
                data = f.read()
    except OSError as error:
        raise DataSourceError(f"{path}: cannot read the texts file ({error.strerror or error})") from error
    pieces = data.split(b"\n")
    if pieces[-1] == b"":  # after the final newline (or an empty file): no line
        pieces.pop()
    texts, blank = [], 0
    for number, raw in enumerate(pieces, start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise InputFormatError(f"not UTF-8 text ({error.reason} at byte {error.start})", path=path,
                                   line=number) from error
        line = line[:-1] if line.endswith("\r") else line
        if number == 1:
            line = line.removeprefix("\ufeff")  # a byte-order mark is not part of the text
        if line.strip():
            texts.append(line)
        else:
            blank += 1
    return TextFile(texts, blank)


def predict_texts(model: str, texts: Sequence[str]) -> List[Dict[str, Any]]:
    """{text, label, score, scores} per text, in order, from a .tflite or an export folder."""
    texts = list(texts)
    if not texts:
        raise ConfigError("no texts to classify: give them as arguments or with --file")
    from components.text_classifier import TextClassifier

    classifier = TextClassifier.load(model)
    return [{"text": text, "label": p.label, "score": p.score, "scores": p.scores}
            for text, p in zip(texts, classifier.predict(texts))]


def format_line(record: Dict[str, Any]) -> str:
    """LABEL, its score, every label's score and the text, tab-separated."""
    scores = " ".join(f"{name}={score:.4f}" for name, score in record["scores"].items())
    text = record["text"].replace("\t", " ").replace("\n", " ")
    return f"{record['label']}\t{record['score']:.4f}\t{scores}\t{text}"


def format_json(records: Sequence[Dict[str, Any]]) -> str:
    """One JSON list, one object a line: the whole output parses, and each text's line stands alone."""
    if not records:
        return "[]"
    return "[\n" + ",\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n]"
