"""The two tokenizers of the text classifier, shared by preprocessing, training, evaluation and export.

Every step that turns text into ids imports this module, so the ids a model is trained on are the
ids it sees when evaluated or served (no train/serve skew).

- Average-Word-Embedding (AWE): Model Maker's regex tokenizer. Text is optionally lower-cased and
  split on `[^\\w']+` (Python's Unicode-aware `\\w`); ids are `<START>` followed by the token ids,
  truncated or padded with `<PAD>` to `seq_len`. The vocabulary file uses MediaPipe's format
  (`TOKEN ID` a line) so it can go into the exported model's metadata unchanged.
- BERT: WordPiece against the encoder's own `vocab.txt` via tensorflow-text's `FastBertTokenizer`,
  `[CLS] tokens [SEP]`, truncated to `seq_len`.

Both report the true length of every example so training can batch by length, and both share one
interface (`feature_names`, `encode_features`, `token_counts`), which is all the preprocessing
pipeline, the tokenized-data writer and the Model Maker-compatible API know of them. A
`TokenizerRecipe` is the picklable description Beam workers rebuild a tokenizer from.

This module imports TensorFlow only when a WordPiece tokenizer is first used: the regex path (and
Beam workers running it) stays free of TensorFlow's start-up cost.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from components import vocabulary as vocab_io
from components.errors import ConfigError, InputFormatError, VocabularyError

AWE_TOKEN_PATTERN = r"[^\w']+"
PAD, START, UNKNOWN = "<PAD>", "<START>", "<UNKNOWN>"
AWE_SPECIAL_TOKENS = (PAD, START, UNKNOWN)

BERT_PAD, BERT_UNK, BERT_CLS, BERT_SEP = "[PAD]", "[UNK]", "[CLS]", "[SEP]"
BERT_REQUIRED_TOKENS = (BERT_CLS, BERT_SEP, BERT_UNK, BERT_PAD)
BERT_FEATURES = ("input_word_ids", "input_mask", "input_type_ids")
AWE_FEATURE = "input_ids"

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
        raise InputFormatError(f"a text must be str or bytes, got {type(text).__name__}")
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


def rank_key(item: Tuple[str, int]):
    """Most frequent first; equal counts by token (code point order) so the vocab is reproducible."""
    return -item[1], item[0]


def build_awe_vocab(token_counts: Mapping[str, int], vocab_size: int, min_count: int = 1) -> List[str]:
    """Specials, then the `vocab_size` most frequent tokens seen at least `min_count` times; ids
    are list positions.

    Unlike `Counter.most_common` (Model Maker), ties are broken by token, not by first occurrence,
    so the result does not depend on the order the corpus was read in.
    """
    if vocab_size < 0:
        raise ConfigError(f"vocab_size must not be negative, got {vocab_size}")
    candidates = ((t, c) for t, c in token_counts.items()
                  if t not in AWE_SPECIAL_TOKENS and c >= min_count)
    ranked = sorted(candidates, key=rank_key)[:vocab_size]
    return list(AWE_SPECIAL_TOKENS) + [token for token, _ in ranked]


# ----------------------------------------------------------------------------------------------
# AWE

def write_awe_vocab(path: str, tokens: Sequence[str]) -> None:
    """Writes MediaPipe's regex-tokenizer vocabulary (`TOKEN ID` lines, ids = positions)."""
    from components import storage
    storage.write_bytes(path, vocab_io.token_id_bytes(vocab_io.enumerate_pairs(tokens), path))


def load_awe_vocab(path: str) -> Dict[str, int]:
    """A `TOKEN ID` vocabulary file as {token: id}; the specials must sit at the ids the model
    relies on (`<PAD>` 0, `<START>` 1, `<UNKNOWN>` 2)."""
    pairs = vocab_io.parse_token_ids(vocab_io.read_file(path), path)
    tokens = vocab_io.tokens_from_token_ids(pairs, path, AWE_SPECIAL_TOKENS)
    return {token: i for i, token in enumerate(tokens)}


# Case spellings for a device tokenizer that does not lower-case (MediaPipe's regex tokenizer).

def _case_variants(token: str) -> List[str]:
    """Spellings of a lower-case token that text may use: Title case and UPPER case.

    Besides `str.upper()` ("straße" -> "STRASSE"), the upper-case spellings that keep one letter
    per letter ("STRAßE", "STRAẞE"), and the title-case form of a first letter that has one
    ("ǆemal" -> "ǅemal").
    """
    first, rest = token[:1], token[1:]

    def capital(c: str, keep: bool) -> str:
        upper = c.upper()
        if len(upper) == 1:
            return upper
        if keep:
            return c
        title = c.title()
        return title if len(title) == 1 else _CAPITAL_FORMS.get(c, c)

    return [first.upper() + rest, first.title() + rest, token.upper(),
            "".join(capital(c, True) for c in token), "".join(capital(c, False) for c in token)]


# Lower-case letters whose `upper()` is two letters but that also have a one-letter capital.
_CAPITAL_FORMS = {"ß": "ẞ"}


def case_insensitive_vocab(pairs: Iterable[Tuple[str, int]]) -> List[Tuple[str, int]]:
    """Adds Title-case and UPPER-case spellings of each token, with the id training gives them.

    MediaPipe's regex tokenizer looks tokens up verbatim, while training lower-cases the text
    first: a lower-cased vocabulary alone would map "Great" and "GREAT" to <UNKNOWN> on device
    although training read them as "great". A spelling is added only when the training tokenizer
    (`split_words`) reads it as exactly one token of the vocabulary, and it gets that token's id:
    so "STRASSE" is "strasse" (or stays unknown), never "straße", and a spelling training would
    split (e.g. "İ", which lower-cases to "i" + a combining dot) is not added. Spellings already
    present keep their own id; other mixed casings ("gReAt") stay unknown on device, the one
    difference from training that no vocabulary can remove.
    """
    pairs = list(pairs)
    ids = {token: index for token, index in pairs}
    seen = set(ids)
    extra = []
    for token, _ in pairs:
        for variant, index in _device_spellings(token, ids, seen):
            seen.add(variant)
            extra.append((variant, index))
    return pairs + extra


def _device_spellings(token: str, ids: Mapping[str, int], seen) -> List[Tuple[str, int]]:
    """The case spellings `case_insensitive_vocab` adds for `token`, with their ids."""
    if token in AWE_SPECIAL_TOKENS:
        return []
    found, mine = [], set()
    for variant in _case_variants(token):
        if variant in seen or variant in mine or split_words(variant, False) != [variant]:
            continue  # present already, or the device would not read it as one token
        words = split_words(variant, True)
        if len(words) == 1 and words[0] in ids:
            mine.add(variant)
            found.append((variant, ids[words[0]]))
    return found


def fit_to_bytes(tokens: Sequence[str], budget: int, row_bytes: int, case_variants: bool) -> List[str]:
    """The longest head of a ranked vocabulary (specials first) whose embedding rows (`row_bytes`
    each) and packed vocabulary lines (with their device case spellings) take at most `budget`
    bytes: a vocabulary as large as a model size allows, whatever the data's word lengths."""
    ids = {token: i for i, token in enumerate(tokens)}
    seen = set(ids)
    used, kept = 0, []
    for index, token in enumerate(tokens):
        spellings = [(token, index)] + (_device_spellings(token, ids, seen) if case_variants else [])
        cost = row_bytes + sum(len(f"{spelling} {i}\n".encode("utf-8")) for spelling, i in spellings)
        if used + cost > budget and index >= len(AWE_SPECIAL_TOKENS):
            break
        used += cost
        kept.append(token)
    return kept


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

    # The interface every tokenizer shares (see the module docstring).
    feature_names = (AWE_FEATURE,)
    id_feature = AWE_FEATURE
    num_special = 1  # <START>

    @property
    def tokens(self) -> List[str]:
        return sorted(self.vocab, key=self.vocab.get)

    def encode_features(self, texts: Sequence) -> Tuple[Dict[str, np.ndarray], np.ndarray]:
        """({"input_ids": [n, seq_len], "length": [n]}, untruncated token counts)."""
        ids, lengths, raw = self.encode_batch_profiled(texts)
        return {AWE_FEATURE: ids, "length": lengths}, raw

    def token_counts(self, texts: Sequence) -> np.ndarray:
        return np.asarray([len(split_words(t, self.do_lower_case)) for t in texts], np.int32)

    def with_seq_len(self, seq_len: int) -> "RegexTokenizer":
        copy = object.__new__(RegexTokenizer)
        copy.__dict__.update(self.__dict__)
        copy.seq_len = _check_seq_len(seq_len)
        return copy


# ----------------------------------------------------------------------------------------------
# BERT

def load_bert_vocab(path: str) -> Dict[str, int]:
    """A WordPiece `vocab.txt` as {token: line index}, with the special tokens the classifier's
    inputs need; what would shift ids (blank lines, repeats) is refused here, not met later as
    garbage ids."""
    tokens = vocab_io.parse_wordpiece(vocab_io.read_file(path), path, BERT_REQUIRED_TOKENS)
    return {token: i for i, token in enumerate(tokens)}


def vocab_is_uncased(tokens: Iterable[str]) -> bool:
    """An uncased WordPiece vocabulary holds no capital letter (any script) outside `[SPECIAL]`
    and `<special>` tokens; one capital makes it cased."""
    for token in tokens:
        if (token[:1], token[-1:]) in (("[", "]"), ("<", ">")):
            continue
        if token != token.lower():
            return False
    return True


def infer_bert_do_lower_case(tokens: Iterable[str], vocab_path: Optional[str] = None) -> bool:
    """Casing when the caller does not say: the encoder's own config beside the vocabulary, else
    `vocab_is_uncased`.

    Hugging Face exports keep `tokenizer_config.json` next to `vocab.txt`; our vocabulary folder
    keeps `tokenizer.json`.
    """
    if vocab_path:
        import json

        from components import storage
        folder = vocab_path.rsplit("/", 1)[0] if "/" in vocab_path else "."
        for name in ("tokenizer_config.json", vocab_io.TOKENIZER_FILE):
            candidate = f"{folder}/{name}"
            try:
                if storage.exists(candidate):
                    config = json.loads(storage.read_bytes(candidate).decode("utf-8"))
                    if isinstance(config, dict) and isinstance(config.get("do_lower_case"), bool):
                        return config["do_lower_case"]
            except (OSError, ValueError):
                pass
    return vocab_is_uncased(tokens)


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

    def piece_ids(self, texts: Sequence) -> List[List[int]]:
        """Each text's word-piece ids, untruncated and without specials."""
        import tensorflow as tf
        if not texts:
            return []
        pieces = self._tf_tokenizer().tokenize(tf.constant([_as_text(t) for t in texts], dtype=tf.string))
        return pieces.merge_dims(1, -1).to_list() if pieces.shape.rank > 2 else pieces.to_list()

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

    # The interface every tokenizer shares (see the module docstring).
    feature_names = BERT_FEATURES
    id_feature = BERT_FEATURES[0]
    num_special = 2  # [CLS], [SEP]

    @property
    def unknown_id(self) -> int:
        return self.unk_id

    def encode_features(self, texts: Sequence) -> Tuple[Dict[str, np.ndarray], np.ndarray]:
        return self.encode_batch_profiled(texts)

    def token_counts(self, texts: Sequence) -> np.ndarray:
        import tensorflow as tf
        texts = [_as_text(t) for t in texts]
        if not texts:
            return np.zeros(0, np.int32)
        pieces = self._tf_tokenizer().tokenize(tf.constant(texts, dtype=tf.string))
        return np.diff(pieces.row_splits.numpy()).astype(np.int32)

    def with_seq_len(self, seq_len: int) -> "BertTokenizer":
        copy = object.__new__(BertTokenizer)
        copy.__dict__.update(self.__dict__)
        copy.seq_len = _check_seq_len(seq_len)
        return copy


# ----------------------------------------------------------------------------------------------
# Recipes: what a Beam worker needs to rebuild a tokenizer, and the sequence-length rule.

REGEX, WORDPIECE = "regex", "wordpiece"


@dataclasses.dataclass(frozen=True)
class TokenizerRecipe:
    """A tokenizer kind and casing; the tokens come separately (counted, or an encoder's)."""

    kind: str
    do_lower_case: bool

    def __post_init__(self):
        if self.kind not in (REGEX, WORDPIECE):
            raise ConfigError(f"unknown tokenizer kind {self.kind!r}; expected {REGEX} or {WORDPIECE}")

    @property
    def num_special(self) -> int:
        return RegexTokenizer.num_special if self.kind == REGEX else BertTokenizer.num_special

    @property
    def feature_names(self) -> Tuple[str, ...]:
        return RegexTokenizer.feature_names if self.kind == REGEX else BertTokenizer.feature_names

    @property
    def vocabulary_format(self) -> str:
        return vocab_io.TOKEN_IDS if self.kind == REGEX else vocab_io.WORDPIECE

    def build(self, tokens: Sequence[str], seq_len: int):
        if self.kind == REGEX:
            return RegexTokenizer({t: i for i, t in enumerate(tokens)}, seq_len, self.do_lower_case)
        return BertTokenizer.from_tokens(tokens, seq_len, self.do_lower_case)

    def count(self, texts: Iterable, counts: Optional[Dict[str, int]] = None) -> Dict[str, int]:
        """Adds the token frequencies of `texts` to `counts` (for a vocabulary counted on them)."""
        if self.kind != REGEX:
            raise ConfigError("a WordPiece vocabulary comes with its encoder; it is not counted")
        return count_words(texts, self.do_lower_case, counts)

    def counted_vocabulary(self, counts: Mapping[str, int], max_size: int, min_count: int = 1) -> List[str]:
        return build_awe_vocab(counts, max_size, min_count)

    def token_counts(self, texts: Sequence, tokens: Optional[Sequence[str]]) -> np.ndarray:
        """Untruncated token counts (specials excluded); a counted vocabulary need not exist yet."""
        if self.kind == REGEX:
            return np.asarray([len(split_words(t, self.do_lower_case)) for t in texts], np.int32)
        return self.build(tokens, MIN_SEQ_LEN).token_counts(texts)

    @classmethod
    def for_vocabulary(cls, vocabulary) -> "TokenizerRecipe":
        return cls(REGEX if vocabulary.format == vocab_io.TOKEN_IDS else WORDPIECE,
                   vocabulary.do_lower_case)


def tokenizer_for(vocabulary, seq_len: int):
    """The tokenizer a vocabulary folder's contents (`vocabulary.Vocabulary`) describe."""
    return TokenizerRecipe.for_vocabulary(vocabulary).build(vocabulary.tokens, seq_len)


SEQ_LEN_STEP = 8


def fitted_seq_len(longest: int, num_special: int, cap: int) -> int:
    """The shortest input that holds the longest text seen (`longest` tokens plus the specials),
    rounded up to a multiple of 8 and at most `cap`.

    Padding is paid for on the device (MediaPipe feeds [1, seq_len]) and, for averaging models,
    in every lookup; nothing the data holds is cut unless it is longer than `cap`.
    """
    needed = max(MIN_SEQ_LEN, int(longest) + num_special)
    rounded = -(-needed // SEQ_LEN_STEP) * SEQ_LEN_STEP
    return max(MIN_SEQ_LEN, min(int(cap), rounded))
