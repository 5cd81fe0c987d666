"""The family of models that read MediaPipe's regex-tokenizer contract: `[1, seq_len]` word ids.

MediaPipe's `TextClassifier` computes those ids itself from the vocabulary packed in the model's
metadata, so every member shares the vocabulary plan (counted on the training split, optionally
cut to a byte budget), the casing rules of the packed vocabulary, the metadata writer and the
input pipeline. A member says what its model is and how many bytes a word costs it.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Mapping, Sequence

from components import tokenizers as tok
from components.architectures.base import ArchitectureSpec, Resolved, VocabularyPlan


def _ids_and_labels(dataset):
    return dataset.map(lambda features, label: (features[tok.AWE_FEATURE], label))


class WordIdSpec(ArchitectureSpec):
    # `seq_len` 0 fits the input to the longest text, at most Model Maker's 256 ids.
    max_fitted_seq_len = 256
    # `learning_rate` 0: Adam at learning_budget / (the run's steps), within [min_rate, max_rate].
    learning_budget = 1.0
    min_rate, max_rate = 1e-4, 5e-2
    shuffle_buffer = 100_000

    def vocabulary_budget(self, options) -> Dict[str, Any]:
        """`VocabularyPlan` fields bounding the words by `options.max_model_bytes`; {} for none."""
        return {}

    def case_variants(self, options) -> bool:
        return bool(options.do_lower_case and options.device_case_variants)

    def vocabulary_plan(self, options) -> VocabularyPlan:
        return VocabularyPlan(recipe=tok.TokenizerRecipe(tok.REGEX, bool(options.do_lower_case)),
                              seq_len=options.seq_len, max_seq_len=self.max_fitted_seq_len,
                              max_size=options.vocab_size, **self.vocabulary_budget(options))

    def model_info(self, options, vocab_size: int) -> Dict[str, Any]:
        # Embedding rows for the ids the vocabulary really has (specials included).
        return {"vocab_rows": int(vocab_size)}

    def default_learning_rate(self, total_steps: int) -> float:
        return float(min(self.max_rate, max(self.min_rate, self.learning_budget / max(1, total_steps))))

    def resolve_hparams(self, hparams, options, info, meta, steps_per_epoch) -> Resolved:
        if hparams.learning_rate:
            return Resolved(hparams)
        rate = self.default_learning_rate(steps_per_epoch * hparams.epochs)
        return Resolved(dataclasses.replace(hparams, learning_rate=rate), {"learning_rate": rate})

    def inputs(self, dataset, meta: Mapping[str, Any]):
        """(ids, target) pairs for training and validation: by default the label id; a member
        trained on other targets maps them here (evaluation always scores against labels)."""
        return _ids_and_labels(dataset)

    def _counted(self, dataset, meta):
        import tensorflow as tf
        # TFRecords have unknown cardinality; knowing it lets Keras run several steps per call.
        return dataset.apply(tf.data.experimental.assert_cardinality(meta["num_examples"]))

    def train_batches(self, dataset, meta, options, hparams, shuffle: bool):
        import tensorflow as tf
        dataset = self._counted(self.inputs(dataset, meta), meta)
        if shuffle:
            dataset = dataset.shuffle(min(meta["num_examples"], self.shuffle_buffer), seed=hparams.seed,
                                      reshuffle_each_iteration=True)
        if hparams.steps_per_epoch is not None:
            dataset = dataset.repeat()
        return dataset.batch(hparams.batch_size).prefetch(tf.data.AUTOTUNE)

    def eval_batches(self, dataset, meta, options, batch_size: int):
        return self._counted(_ids_and_labels(dataset), meta).batch(batch_size)

    def validation_batches(self, dataset, meta, options, batch_size: int):
        return self._counted(self.inputs(dataset, meta), meta).batch(batch_size)

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
