"""Text augmentations for a distillation transfer set, drawn from the data alone.

A student learns from the teacher's scores on many more texts than the labelled ones; with no
tagger or language model reachable, the extra texts are made from the training texts themselves
(Tang et al. 2019's recipe without its POS-guided step): each word is dropped or replaced by a
word of the data's own vocabulary with small probabilities, and now and then only an n-gram of the
text is kept. Dropping stands in for the paper's masking: a mask token would reach the teacher's
WordPiece tokenizer and the student's regex tokenizer as different things, a missing word as the
same one. Every augmentation is a pure function of (text, seed, index), so a transfer set is
reproducible on any runner and shard layout.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
from typing import Iterator, List, Sequence

from components.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class AugmentOptions:
    """Per-word dropping and replacement probabilities, the chance of keeping only an n-gram (of
    1..max_ngram words), and how many augmented texts each training text yields."""

    copies: int = 10
    drop_probability: float = 0.1
    replace_probability: float = 0.1
    ngram_probability: float = 0.25
    max_ngram: int = 5
    seed: int = 0

    def __post_init__(self):
        for name in ("drop_probability", "replace_probability", "ngram_probability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.copies < 0 or self.max_ngram < 1:
            raise ConfigError("copies must not be negative and max_ngram must be at least 1")


def _rng(text: str, seed: int, index: int) -> random.Random:
    digest = hashlib.blake2b(f"{seed}\x00{index}\x00{text}".encode("utf-8"), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "little"))


def augment(text: str, words: Sequence[str], options: AugmentOptions, index: int) -> str:
    """The `index`-th augmentation of `text` (split on whitespace), replacements drawn from `words`."""
    rng = _rng(text, options.seed, index)
    tokens = text.split()
    if not tokens:
        return text
    out: List[str] = []
    for token in tokens:
        draw = rng.random()
        if draw < options.drop_probability:
            continue
        if draw < options.drop_probability + options.replace_probability and words:
            out.append(words[rng.randrange(len(words))])
        else:
            out.append(token)
    if not out:
        out = [tokens[rng.randrange(len(tokens))]]
    if len(out) > 1 and rng.random() < options.ngram_probability:
        n = rng.randint(1, min(options.max_ngram, len(out)))
        start = rng.randrange(len(out) - n + 1)
        out = out[start:start + n]
    return " ".join(out)


def augmentations(text: str, words: Sequence[str], options: AugmentOptions) -> Iterator[str]:
    """`options.copies` augmentations of `text`, skipping those identical to it."""
    for index in range(options.copies):
        made = augment(text, words, options, index)
        if made != text:
            yield made
