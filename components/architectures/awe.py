"""The average-word-embedding (AWE) classifier: Model Maker's small on-device text model.

Texts are split by MediaPipe's regex tokenizer contract (`tokenizers.RegexTokenizer`), the
vocabulary is counted on the training split, and the exported .tflite takes `[1, seq_len]` token
ids that MediaPipe's `TextClassifier` computes itself from the packed vocabulary.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Sequence

from components import tokenizers as tok
from components.architectures.base import ArchitectureSpec, Resolved, VocabularyPlan
from components.options import AverageWordEmbeddingHParams, AverageWordEmbeddingModelOptions

# `seq_len` 0 fits the input to the longest text, at most Model Maker's 256 ids.
MAX_FITTED_SEQ_LEN = 256
# `learning_rate` 0: Adam at LEARNING_BUDGET / (the run's steps), within [MIN_RATE, MAX_RATE].
# One fixed rate cannot serve 500 rows and 67,000: on SST-2 (21,000 steps in 10 epochs) 1e-4 is
# right and 1e-3 overfits the training phrases after one epoch, while 450 rows (150 steps) stay at
# chance with 1e-4. A rate that shrinks with the steps taken keeps the distance Adam moves the
# weights about the same. Measured on benchmarks/suite.py (median of 3 seeds, Keras test
# accuracy): budget 1 gives SST-2 500 rows 65.9 %, 2,000 rows 73.6 %, SST-5 39.4 %, SUBJ 91.1 %,
# MPQA 86.0 % (fixed 1e-4: 50.9, 50.9, 35.7, 88.1, 73.7; budget 2.1: 63.2, 73.3, 39.9, 90.7, 85.8).
LEARNING_BUDGET = 1.0
MIN_RATE, MAX_RATE = 1e-4, 5e-2


# What a float export holds besides the embedding table and the packed vocabulary: the dense
# layers (for up to 64 classes), the graph, the metadata and the zip of associated files.
_RESERVED_BYTES = 6_144


def vocabulary_budget(options) -> dict:
    """How many words the float .tflite can afford within `options.max_model_bytes`."""
    if not options.max_model_bytes:
        return {}
    dim = options.wordvec_dim
    head = 4 * (dim * dim + dim) + 4 * (dim + 1) * 64
    case_variants = bool(options.do_lower_case and options.device_case_variants)
    return {"byte_budget": max(0, options.max_model_bytes - _RESERVED_BYTES - head), "row_bytes": 4 * dim,
            "case_variants": case_variants}


def default_learning_rate(total_steps: int) -> float:
    """Adam's rate for a run of `total_steps` steps when `learning_rate` is 0 (see LEARNING_BUDGET)."""
    return float(min(MAX_RATE, max(MIN_RATE, LEARNING_BUDGET / max(1, total_steps))))


class AverageWordEmbeddingSpec(ArchitectureSpec):
    name = "awe"
    title = "Average Word Embedding"
    api_name = "AVERAGE_WORD_EMBEDDING_CLASSIFIER"
    options_class = AverageWordEmbeddingModelOptions
    hparams_class = AverageWordEmbeddingHParams
    # Small steps are dominated by per-step Python overhead; several per graph call make 10
    # epochs of SST-2 several times faster and change nothing else.
    steps_per_execution = 32

    def vocabulary_plan(self, options) -> VocabularyPlan:
        return VocabularyPlan(recipe=tok.TokenizerRecipe(tok.REGEX, bool(options.do_lower_case)),
                              seq_len=options.seq_len, max_seq_len=MAX_FITTED_SEQ_LEN,
                              max_size=options.vocab_size, **vocabulary_budget(options))

    def model_info(self, options, vocab_size: int) -> Dict[str, Any]:
        # Embedding rows for the ids the vocabulary really has (specials included).
        return {"vocab_rows": int(vocab_size)}

    def build_model(self, options, num_classes: int, info: Mapping[str, Any]):
        from components.awe_model import build_awe_model
        return build_awe_model(options, num_classes, vocab_size=info.get("vocab_rows"))

    def resolve_hparams(self, hparams, options, info, meta, steps_per_epoch) -> Resolved:
        import dataclasses
        if hparams.learning_rate:
            return Resolved(hparams)
        rate = default_learning_rate(steps_per_epoch * hparams.epochs)
        return Resolved(dataclasses.replace(hparams, learning_rate=rate), {"learning_rate": rate})

    def train_batches(self, dataset, meta, options, hparams, shuffle: bool):
        import tensorflow as tf
        dataset = dataset.map(lambda features, label: (features[tok.AWE_FEATURE], label))
        # TFRecords have unknown cardinality; knowing it lets Keras run several steps per call.
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(meta["num_examples"]))
        if shuffle:
            dataset = dataset.shuffle(min(meta["num_examples"], 100_000), seed=hparams.seed,
                                      reshuffle_each_iteration=True)
        if hparams.steps_per_epoch is not None:
            dataset = dataset.repeat()
        return dataset.batch(hparams.batch_size).prefetch(tf.data.AUTOTUNE)

    def eval_batches(self, dataset, meta, options, batch_size: int):
        import tensorflow as tf
        dataset = dataset.map(lambda features, label: (features[tok.AWE_FEATURE], label))
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(meta["num_examples"]))
        return dataset.batch(batch_size)

    def optimizer(self, hparams, total_steps: int):
        import tf_keras as keras
        return keras.optimizers.Adam(learning_rate=hparams.learning_rate)

    def device_vocabulary(self, vocabulary, info: Mapping[str, Any]) -> List:
        """The (token, id) pairs packed for MediaPipe, which looks words up as written: with
        lower-casing and `device_case_variants`, Title and UPPER case spellings map to the
        lower-case word's id."""
        pairs = [(token, i) for i, token in enumerate(vocabulary.tokens)]
        options = info["model_options"]
        if options.get("do_lower_case", True) and options.get("device_case_variants", False):
            pairs = tok.case_insensitive_vocab(pairs)
        return pairs

    def write_metadata(self, tflite_bytes: bytes, vocabulary, label_names: Sequence[str],
                       info: Mapping[str, Any]) -> bytes:
        from components import metadata as md
        return md.write_regex_tokenizer_metadata(tflite_bytes, self.device_vocabulary(vocabulary, info),
                                                 label_names, producer={"architecture": self.name})


SPEC = AverageWordEmbeddingSpec()
