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
# `learning_rate` 0 means this rate for Adam. Measured on SST-2: at Keras' 1e-3 the model peaks
# after one epoch and then overfits the training phrases; 1e-4 climbs to ~82-83 % and stays there.
DEFAULT_LEARNING_RATE = 1e-4


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
                              max_size=options.vocab_size)

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
        return Resolved(dataclasses.replace(hparams, learning_rate=DEFAULT_LEARNING_RATE),
                        {"learning_rate": DEFAULT_LEARNING_RATE})

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
