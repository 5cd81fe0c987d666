"""The vocabulary folder and its two file formats, written and read here only.

A vocabulary folder (the preprocess step's `vocab` artifact, and the API's work folder) holds:
- `vocab.txt`, in one of two formats:
  - "token_ids" (MediaPipe's regex-tokenizer format): `TOKEN ID` a line, ids 0..n-1 without gaps;
    the average-word-embedding family's vocabulary, counted on the training split.
  - "wordpiece": one token a line, id = line index; a BERT encoder's own vocabulary, copied.
- `tokenizer.json`: `{"format": ..., "do_lower_case": bool, "size": n}`, the casing every later
  step must tokenize with.

The exported .tflite packs the same `vocab.txt` bytes, so `parse_token_ids` / `parse_wordpiece`
also read vocabularies out of a model's metadata.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from components import storage
from components.errors import VocabularyError

VOCAB_FILE = "vocab.txt"
TOKENIZER_FILE = "tokenizer.json"
TOKEN_IDS = "token_ids"
WORDPIECE = "wordpiece"
FORMATS = (TOKEN_IDS, WORDPIECE)


@dataclasses.dataclass(frozen=True)
class Vocabulary:
    """A vocabulary as every step after preprocessing needs it."""

    format: str
    tokens: Tuple[str, ...]
    do_lower_case: bool
    raw: bytes = dataclasses.field(default=b"", repr=False, compare=False)  # vocab.txt as read

    @property
    def size(self) -> int:
        return len(self.tokens)

    def ids(self) -> Dict[str, int]:
        return {token: i for i, token in enumerate(self.tokens)}


def _lines(data: bytes, source: str) -> List[str]:
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError as error:
        raise VocabularyError(f"{source}: vocabulary is not UTF-8 text ({error})") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    if not lines:
        raise VocabularyError(f"{source}: vocabulary file is empty")
    return lines


# ----------------------------------------------------------------------------------------------
# "TOKEN ID" lines

def token_id_bytes(pairs: Iterable[Tuple[str, int]], source: str = "vocabulary") -> bytes:
    """`TOKEN ID` lines; tokens must be non-empty and free of whitespace (MediaPipe splits on it)."""
    lines = []
    for token, index in pairs:
        if not token or any(c.isspace() for c in token):
            raise VocabularyError(f"{source}: token {index} ({token!r}) is empty or contains whitespace")
        lines.append(f"{token} {int(index)}\n")
    return "".join(lines).encode("utf-8")


def parse_token_ids(data: bytes, source: str = "vocabulary") -> List[Tuple[str, int]]:
    """(token, id) pairs of `TOKEN ID` lines, in file order; several tokens may share an id
    (the case spellings an export packs), one token never has two."""
    pairs, seen = [], set()
    for number, line in enumerate(_lines(data, source), start=1):
        token, _, index = line.rpartition(" ")
        if not token or not index.isdigit():
            raise VocabularyError(f"{source}, line {number}: expected 'TOKEN ID', got {line!r}")
        if token in seen:
            raise VocabularyError(f"{source}, line {number}: token {token!r} appears twice")
        seen.add(token)
        pairs.append((token, int(index)))
    return pairs


def tokens_from_token_ids(pairs: Sequence[Tuple[str, int]], source: str,
                          specials: Sequence[str] = ()) -> List[str]:
    """The token of each id 0..n-1 of a vocabulary with one token per id (the training form)."""
    by_id = {}
    for token, index in pairs:
        if index in by_id:
            raise VocabularyError(f"{source}: id {index} is given to both {by_id[index]!r} and {token!r}")
        by_id[index] = token
    if sorted(by_id) != list(range(len(by_id))):
        raise VocabularyError(f"{source}: ids must be 0..{len(by_id) - 1} without gaps or repeats")
    tokens = [by_id[i] for i in range(len(by_id))]
    for expected, token in enumerate(specials):
        if tokens[expected:expected + 1] != [token]:
            found = next((i for i, t in enumerate(tokens) if t == token), None)
            raise VocabularyError(f"{source}: {token} must have id {expected}, found {found}")
    return tokens


# ----------------------------------------------------------------------------------------------
# WordPiece

def parse_wordpiece(data: bytes, source: str = "vocabulary",
                    required: Sequence[str] = ()) -> List[str]:
    """One token a line (id = line index); refuses what would shift ids or lack `required`."""
    tokens: List[str] = []
    seen = set()
    for number, token in enumerate(_lines(data, source), start=1):
        if not token.strip():
            raise VocabularyError(f"{source}, line {number}: blank token; is this a WordPiece vocab.txt?")
        if token in seen:
            raise VocabularyError(f"{source}, line {number}: token {token!r} appears twice")
        seen.add(token)
        tokens.append(token)
    missing = [t for t in required if t not in seen]
    if missing:
        raise VocabularyError(f"{source}: not a BERT WordPiece vocabulary, missing {', '.join(missing)} "
                              f"({len(tokens)} tokens read)")
    return tokens


def read_file(path: str) -> bytes:
    if not storage.exists(path):
        raise VocabularyError(f"{path}: vocabulary file not found")
    try:
        return storage.read_bytes(path)
    except (OSError, storage.DataSourceError) as error:
        raise VocabularyError(f"{path}: vocabulary could not be read ({error})") from None


# ----------------------------------------------------------------------------------------------
# The folder

def write_folder(folder: str, vocabulary: Vocabulary, raw: Optional[bytes] = None) -> None:
    """vocab.txt (`raw` bytes as given, e.g. an encoder's own file, else made from the tokens)
    and tokenizer.json."""
    if vocabulary.format not in FORMATS:
        raise VocabularyError(f"unknown vocabulary format {vocabulary.format!r}")
    if raw is None:
        if vocabulary.format == TOKEN_IDS:
            raw = token_id_bytes(enumerate_pairs(vocabulary.tokens), storage.join(folder, VOCAB_FILE))
        else:
            raw = "".join(f"{t}\n" for t in vocabulary.tokens).encode("utf-8")
    storage.write_bytes(storage.join(folder, VOCAB_FILE), raw)
    info = {"format": vocabulary.format, "do_lower_case": bool(vocabulary.do_lower_case),
            "size": vocabulary.size}
    storage.write_bytes(storage.join(folder, TOKENIZER_FILE),
                        (json.dumps(info, indent=2, sort_keys=True) + "\n").encode("utf-8"))


def enumerate_pairs(tokens: Sequence[str]) -> List[Tuple[str, int]]:
    return [(token, i) for i, token in enumerate(tokens)]


def read_folder(folder: str, specials: Sequence[str] = ()) -> Vocabulary:
    """The folder's vocabulary; `specials` are checked to sit at ids 0, 1, ... ("token_ids")."""
    info_path = storage.join(folder, TOKENIZER_FILE)
    path = storage.join(folder, VOCAB_FILE)
    data = read_file(path)
    if storage.exists(info_path):
        try:
            info = json.loads(storage.read_bytes(info_path).decode("utf-8"))
        except ValueError as error:
            raise VocabularyError(f"{info_path}: not valid JSON ({error})") from None
    else:  # written before tokenizer.json recorded the format: AWE folders had none
        info = {"format": TOKEN_IDS if data.startswith(b"<PAD> 0\n") else WORDPIECE}
    # BERT folders of that time recorded only the casing.
    fmt = info.get("format", WORDPIECE)
    if fmt == TOKEN_IDS:
        tokens = tokens_from_token_ids(parse_token_ids(data, path), path, specials)
    elif fmt == WORDPIECE:
        tokens = parse_wordpiece(data, path)
    else:
        raise VocabularyError(f"{info_path}: unknown vocabulary format {fmt!r}")
    return Vocabulary(fmt, tuple(tokens), bool(info.get("do_lower_case", True)), data)


def vocab_path(folder: str) -> str:
    return storage.join(folder, VOCAB_FILE)
