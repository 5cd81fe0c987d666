"""The two tokenizers of the text classifier, shared by preprocessing, training, evaluation and export.

Every step that turns text into ids imports this module, so the ids a model is trained on are the
ids it sees when evaluated or served (no train/serve skew).

- Average-Word-Embedding (AWE): Model Maker's regex tokenizer. Text is optionally lower-cased and
  split on `[^\\w']+` (Python's Unicode-aware `\\w`); ids are `<START>` followed by the token ids,
  truncated or padded with `<PAD>` to `seq_len`. The vocabulary file uses MediaPipe's format
  (`TOKEN ID` a line) so it can go into the exported model's metadata unchanged.
- BERT: WordPiece against the encoder's own `vocab.txt` via tensorflow-text's `FastBertTokenizer`,
  `[CLS] tokens [SEP]`, truncated to `seq_len`.

Both report the true length of every example so training can batch by length. This module imports
TensorFlow only when a BERT tokenizer is first used: the AWE path (and Beam workers running it)
stays free of TensorFlow's start-up cost.
"""

from __future__ import annotations

import itertools
import json
import os
import re
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from components.errors import ConfigError, VocabularyError

AWE_TOKEN_PATTERN = r"[^\w']+"
PAD, START, UNKNOWN = "<PAD>", "<START>", "<UNKNOWN>"
AWE_SPECIAL_TOKENS = (PAD, START, UNKNOWN)

BERT_PAD, BERT_UNK, BERT_CLS, BERT_SEP = "[PAD]", "[UNK]", "[CLS]", "[SEP]"
BERT_REQUIRED_TOKENS = (BERT_CLS, BERT_SEP, BERT_UNK, BERT_PAD)
BERT_FEATURES = ("input_word_ids", "input_mask", "input_type_ids")

MIN_SEQ_LEN = 3

# The non-empty pieces of `re.split(AWE_TOKEN_PATTERN, text)` are exactly the maximal runs of the
# complementary class, so one `findall` replaces split + strip + filter (and is ~2x faster).
#
# On-device parity (tests/test_awe_device_parity.py): MediaPipe's RegexTokenizer splits with RE2,
# whose `\w` is ASCII-only, so the exported model's metadata does not reuse this pattern but its
# RE2 equivalent `[^\p{L}\p{N}_']+` (components/metadata.py, REGEX_DELIM): for every code point of
# Python's Unicode database, Python's `\w` is exactly `[\p{L}\p{N}_]`. One thing the device does
# cannot be configured: it reads the text as a C string (`absl::string_view(input.data())`), so a
# text ends at its first NUL character there. Training does the same (the one deliberate departure
# from Model Maker's `re.split`); otherwise every word after a NUL would be seen only in training.
_WORD_PATTERN = re.compile(r"[\w']+")


class _Words:
    r"""`findall`: the maximal `[\w']+` runs of a text, up to its first NUL (see above)."""

    __slots__ = ()

    @staticmethod
    def findall(text: str) -> List[str]:
        end = text.find("\0")
        return _WORD_PATTERN.findall(text, 0, len(text) if end < 0 else end)


_WORD_RE = _Words()


def _check_seq_len(seq_len: int) -> int:
    if int(seq_len) != seq_len or seq_len < MIN_SEQ_LEN:
        raise ConfigError(f"seq_len must be an integer of at least {MIN_SEQ_LEN}, got {seq_len!r}")
    return int(seq_len)


def _as_text(text) -> str:
    if isinstance(text, bytes):
        return text.decode("utf-8")
    if not isinstance(text, str):
        raise TypeError(f"text must be str or bytes, got {type(text).__name__}")
    return text


def split_words(text, do_lower_case: bool = True) -> List[str]:
    """Model Maker's `_regex_tokenize`: lower-case (optionally), split on `[^\\w']+`, drop empties.

    A NUL character ends the text, as it does for MediaPipe's on-device tokenizer.
    """
    text = _as_text(text)
    return _WORD_RE.findall(text.lower() if do_lower_case else text)


def count_words(texts: Iterable, do_lower_case: bool = True, counts: Optional[Dict[str, int]] = None
                ) -> Dict[str, int]:
    """Adds the token frequencies of `texts` to `counts` (a new dict when None) and returns it."""
    from collections import Counter
    counter = Counter() if counts is None else counts
    findall = _WORD_RE.findall
    if do_lower_case:
        words = (findall(_as_text(t).lower()) for t in texts)
    else:
        words = (findall(_as_text(t)) for t in texts)
    if isinstance(counter, Counter):
        counter.update(itertools.chain.from_iterable(words))
    else:
        for word in itertools.chain.from_iterable(words):
            counter[word] = counter.get(word, 0) + 1
    return counter


def _rank_key(item: Tuple[str, int]):
    """Most frequent first; equal counts by token (code point order) so the vocab is reproducible."""
    return -item[1], item[0]


def build_awe_vocab(token_counts: Mapping[str, int], vocab_size: int) -> List[str]:
    """Specials, then the `vocab_size` most frequent tokens; ids are list positions.

    Unlike `Counter.most_common` (Model Maker), ties are broken by token, not by first occurrence,
    so the result does not depend on the order the corpus was read in.
    """
    if vocab_size < 0:
        raise ConfigError(f"vocab_size must not be negative, got {vocab_size}")
    candidates = ((t, c) for t, c in token_counts.items() if t not in AWE_SPECIAL_TOKENS)
    ranked = sorted(candidates, key=_rank_key)[:vocab_size]
    return list(AWE_SPECIAL_TOKENS) + [token for token, _ in ranked]


# ----------------------------------------------------------------------------------------------
# File access: plain paths locally, anything else (gs://, ...) through Beam's filesystems.

def _is_remote(path: str) -> bool:
    return "://" in str(path)


def _read_bytes(path: str) -> bytes:
    if _is_remote(path):
        from apache_beam.io.filesystem import CompressionTypes
        from apache_beam.io.filesystems import FileSystems
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            return f.read()
    with open(path, "rb") as f:
        return f.read()


def _write_bytes(path: str, data: bytes) -> None:
    if _is_remote(path):
        from apache_beam.io.filesystem import CompressionTypes
        from apache_beam.io.filesystems import FileSystems
        with FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            f.write(data)
        return
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def _exists(path: str) -> bool:
    if _is_remote(path):
        from apache_beam.io.filesystems import FileSystems
        return FileSystems.exists(path)
    return os.path.isfile(path)


def _read_vocab_lines(path: str) -> List[str]:
    if not _exists(path):
        raise VocabularyError(f"{path}: vocabulary file not found")
    try:
        text = _read_bytes(path).decode("utf-8")
    except UnicodeDecodeError as e:
        raise VocabularyError(f"{path}: vocabulary is not UTF-8 text ({e})") from None
    except OSError as e:
        raise VocabularyError(f"{path}: vocabulary could not be read ({e})") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    if not lines:
        raise VocabularyError(f"{path}: vocabulary file is empty")
    return lines


# ----------------------------------------------------------------------------------------------
# AWE

def write_awe_vocab(path: str, tokens: Sequence[str]) -> None:
    """Writes MediaPipe's regex-tokenizer vocabulary: `TOKEN ID` a line, ids = positions."""
    for i, token in enumerate(tokens):
        if not token or any(c.isspace() for c in token):
            raise VocabularyError(f"{path}: token {i} ({token!r}) is empty or contains whitespace")
    _write_bytes(path, "".join(f"{token} {i}\n" for i, token in enumerate(tokens)).encode("utf-8"))


def load_awe_vocab(path: str) -> Dict[str, int]:
    """Reads a `TOKEN ID` vocabulary; checks the specials sit at the ids the model relies on."""
    vocab: Dict[str, int] = {}
    for number, line in enumerate(_read_vocab_lines(path), start=1):
        parts = line.rsplit(" ", 1)
        if len(parts) != 2 or not parts[0] or not parts[1].isdigit():
            raise VocabularyError(f"{path}, line {number}: expected 'TOKEN ID', got {line!r}")
        token, token_id = parts[0], int(parts[1])
        if token in vocab:
            raise VocabularyError(f"{path}, line {number}: token {token!r} appears twice")
        vocab[token] = token_id
    ids = sorted(vocab.values())
    if ids != list(range(len(ids))):
        raise VocabularyError(f"{path}: ids must be 0..{len(ids) - 1} without gaps or repeats")
    for expected_id, token in enumerate(AWE_SPECIAL_TOKENS):
        if vocab.get(token) != expected_id:
            raise VocabularyError(
                f"{path}: {token} must have id {expected_id}, found {vocab.get(token)}")
    return vocab


class RegexTokenizer:
    """Model Maker's AWE tokenization: `<START>` + token ids, `<UNKNOWN>` for OOV, `<PAD>` after."""

    def __init__(self, vocab: Mapping[str, int], seq_len: int = 256, do_lower_case: bool = True):
        missing = [t for t in AWE_SPECIAL_TOKENS if t not in vocab]
        if missing:
            raise VocabularyError(f"AWE vocabulary lacks {', '.join(missing)}")
        self.vocab = dict(vocab)
        self.seq_len = _check_seq_len(seq_len)
        self.do_lower_case = bool(do_lower_case)
        self.pad_id = self.vocab[PAD]
        self.start_id = self.vocab[START]
        self.unknown_id = self.vocab[UNKNOWN]

    @classmethod
    def from_file(cls, path: str, seq_len: int = 256, do_lower_case: bool = True) -> "RegexTokenizer":
        return cls(load_awe_vocab(path), seq_len, do_lower_case)

    def tokenize(self, text) -> List[str]:
        return split_words(text, self.do_lower_case)

    def encode(self, text) -> Tuple[List[int], int]:
        """(ids of length seq_len, number of real ids including `<START>`)."""
        ids, lengths = self.encode_batch([text])
        return ids[0].tolist(), int(lengths[0])

    def encode_batch(self, texts: Sequence) -> Tuple[np.ndarray, np.ndarray]:
        """int32 ids [n, seq_len] and int32 lengths [n]."""
        ids, lengths, _ = self.encode_batch_profiled(texts)
        return ids, lengths

    def encode_batch_profiled(self, texts: Sequence) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """As `encode_batch`, plus the untruncated token counts (without `<START>`) for profiling."""
        findall, get, unk = _WORD_RE.findall, self.vocab.get, self.unknown_id
        keep = self.seq_len - 1
        rows, raw = [], []
        for text in texts:
            text = _as_text(text)
            words = findall(text.lower() if self.do_lower_case else text)
            raw.append(len(words))
            rows.append(list(map(get, words[:keep], itertools.repeat(unk))))
        n = len(rows)
        raw_lengths = np.asarray(raw, dtype=np.int32).reshape(n)
        kept = np.minimum(raw_lengths, keep)
        out = np.full((n, self.seq_len), self.pad_id, dtype=np.int32)
        if n:
            out[:, 0] = self.start_id
            total = int(kept.sum())
            if total:
                flat = np.fromiter(itertools.chain.from_iterable(rows), dtype=np.int32, count=total)
                row_index = np.repeat(np.arange(n), kept)
                starts = np.cumsum(kept) - kept
                col_index = np.arange(total) - np.repeat(starts, kept) + 1
                out[row_index, col_index] = flat
        return out, (kept + 1).astype(np.int32), raw_lengths


# ----------------------------------------------------------------------------------------------
# BERT

def load_bert_vocab(path: str) -> Dict[str, int]:
    """Reads a WordPiece `vocab.txt` (one token a line, id = line index) and validates it.

    A vocabulary that would silently shift ids (blank lines, repeated tokens) or lacks the special
    tokens the classifier's inputs need is rejected here rather than producing garbage ids later.
    """
    lines = _read_vocab_lines(path)
    vocab: Dict[str, int] = {}
    for i, token in enumerate(lines):
        if not token.strip():
            raise VocabularyError(f"{path}, line {i + 1}: blank token; is this a WordPiece vocab.txt?")
        if token in vocab:
            raise VocabularyError(f"{path}, line {i + 1}: token {token!r} appears twice")
        vocab[token] = i
    missing = [t for t in BERT_REQUIRED_TOKENS if t not in vocab]
    if missing:
        raise VocabularyError(
            f"{path}: not a BERT WordPiece vocabulary, missing {', '.join(missing)} "
            f"({len(vocab)} tokens read)")
    return vocab


def infer_bert_do_lower_case(tokens: Iterable[str], vocab_path: Optional[str] = None) -> bool:
    """Guesses casing when the caller does not say: the encoder's own config, else the vocabulary.

    Hugging Face exports keep `tokenizer_config.json` next to `vocab.txt`; our vocabulary folder keeps
    `tokenizer.json` (`{"do_lower_case": ...}`). Without either, a vocabulary with no upper-case
    ASCII letters outside `[SPECIAL]`/`<special>` tokens is an uncased one.
    """
    if vocab_path:
        folder = vocab_path.rsplit("/", 1)[0] if "/" in vocab_path else "."
        for name in ("tokenizer_config.json", "tokenizer.json"):
            candidate = f"{folder}/{name}"
            try:
                if _exists(candidate):
                    config = json.loads(_read_bytes(candidate).decode("utf-8"))
                    if isinstance(config, dict) and isinstance(config.get("do_lower_case"), bool):
                        return config["do_lower_case"]
            except (OSError, ValueError):
                pass
    for token in tokens:
        if (token[:1], token[-1:]) in (("[", "]"), ("<", ">")):
            continue
        if any("A" <= c <= "Z" for c in token):
            return False
    return True


class BertTokenizer:
    """WordPiece for BERT encoders: `[CLS] pieces [SEP]`, mask and type ids, true lengths.

    Uses tensorflow-text's `FastBertTokenizer` (BERT's basic tokenization: whitespace, punctuation
    and CJK splitting; with `do_lower_case`, lower-casing plus NFD accent stripping).
    """

    def __init__(self, vocab_path: str, seq_len: int = 128, do_lower_case: Optional[bool] = None):
        vocab = load_bert_vocab(vocab_path)
        if do_lower_case is None:
            do_lower_case = infer_bert_do_lower_case(vocab, vocab_path)
        self._init(list(vocab), seq_len, do_lower_case)
        self.vocab_path = vocab_path

    @classmethod
    def from_tokens(cls, tokens: Sequence[str], seq_len: int = 128,
                    do_lower_case: Optional[bool] = None) -> "BertTokenizer":
        """From an in-memory token list (e.g. shipped to Beam workers that cannot see the file)."""
        tokens = list(tokens)
        if len(set(tokens)) != len(tokens):
            raise VocabularyError("BERT vocabulary has repeated tokens")
        missing = [t for t in BERT_REQUIRED_TOKENS if t not in tokens]
        if missing:
            raise VocabularyError(f"BERT vocabulary lacks {', '.join(missing)}")
        self = cls.__new__(cls)
        self._init(tokens, seq_len, infer_bert_do_lower_case(tokens) if do_lower_case is None
                   else do_lower_case)
        self.vocab_path = None
        return self

    def _init(self, tokens: List[str], seq_len: int, do_lower_case: bool) -> None:
        self.tokens = tokens
        self.vocab = {t: i for i, t in enumerate(tokens)}
        self.seq_len = _check_seq_len(seq_len)
        self.do_lower_case = bool(do_lower_case)
        self.pad_id = self.vocab[BERT_PAD]
        self.unk_id = self.vocab[BERT_UNK]
        self.cls_id = self.vocab[BERT_CLS]
        self.sep_id = self.vocab[BERT_SEP]
        self._tokenizer = None

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_tokenizer"] = None  # a TF resource; rebuilt on first use after unpickling
        return state

    def _tf_tokenizer(self):
        if self._tokenizer is None:
            import tensorflow as tf
            import tensorflow_text as tf_text
            self._tokenizer = tf_text.FastBertTokenizer(
                self.tokens, suffix_indicator="##", unknown_token=BERT_UNK,
                token_out_type=tf.int32, lower_case_nfd_strip_accents=self.do_lower_case)
        return self._tokenizer

    def tokenize(self, text) -> List[str]:
        """The word pieces of one text (without `[CLS]`/`[SEP]`), for inspection."""
        import tensorflow as tf
        ids = self._tf_tokenizer().tokenize(tf.constant([_as_text(text)])).flat_values.numpy()
        return [self.tokens[i] for i in ids]

    def encode_batch(self, texts: Sequence) -> Dict[str, np.ndarray]:
        """input_word_ids / input_mask / input_type_ids int32 [n, seq_len], length int32 [n]."""
        features, _ = self.encode_batch_profiled(texts)
        return features

    def encode_batch_profiled(self, texts: Sequence) -> Tuple[Dict[str, np.ndarray], np.ndarray]:
        """As `encode_batch`, plus the untruncated word-piece counts (without specials)."""
        import tensorflow as tf
        texts = [_as_text(t) for t in texts]
        n, seq_len = len(texts), self.seq_len
        if n:
            pieces = self._tf_tokenizer().tokenize(tf.constant(texts, dtype=tf.string))
            flat = pieces.flat_values.numpy().astype(np.int32, copy=False)
            splits = pieces.row_splits.numpy().astype(np.int64, copy=False)
        else:
            flat, splits = np.zeros(0, np.int32), np.zeros(1, np.int64)
        raw = np.diff(splits).astype(np.int32)
        kept = np.minimum(raw, seq_len - 2)
        word_ids = np.full((n, seq_len), self.pad_id, dtype=np.int32)
        rows = np.arange(n)
        if n:
            word_ids[:, 0] = self.cls_id
            total = int(kept.sum())
            if total:
                row_index = np.repeat(rows, kept)
                offsets = np.arange(total) - np.repeat(np.cumsum(kept) - kept, kept)
                word_ids[row_index, offsets + 1] = flat[np.repeat(splits[:-1], kept) + offsets]
            word_ids[rows, kept + 1] = self.sep_id
        lengths = (kept + 2).astype(np.int32)
        mask = (np.arange(seq_len)[None, :] < lengths[:, None]).astype(np.int32)
        features = {
            "input_word_ids": word_ids,
            "input_mask": mask,
            "input_type_ids": np.zeros((n, seq_len), dtype=np.int32),
            "length": lengths,
        }
        return features, raw

    def encode(self, text) -> Tuple[Dict[str, List[int]], int]:
        features = self.encode_batch([text])
        return ({k: features[k][0].tolist() for k in BERT_FEATURES}, int(features["length"][0]))
