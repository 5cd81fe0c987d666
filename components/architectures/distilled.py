"""The distilled student: a small CNN on the AWE input contract, taught by a BERT teacher.

It reads what MediaPipe's regex tokenizer gives (the AWE model's vocabulary, metadata and casing
rules), so MediaPipe's `TextClassifier` and `TextClassifier.load` run it as they run the AWE
model, while its training targets are a BERT teacher's scores on a transfer set: the training
texts plus augmentations of them (`components.transfer`). A pipeline with `distilled` trains its
BERT branch first (`requires`) unless `teacher` names a trained model folder.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Mapping, Sequence

from components import tokenizers as tok
from components.architectures.awe import MAX_FITTED_SEQ_LEN
from components.architectures.awe import SPEC as AWE
from components.architectures.base import ArchitectureSpec, Resolved, VocabularyPlan
from components.options import DistilledHParams, DistilledModelOptions

# A rate of 1e-3 serves the student's transfer sets (tens to hundreds of thousands of texts);
# within the same bounds as AWE's rule for tiny ones.
LEARNING_BUDGET = 30.0
MIN_RATE, MAX_RATE = 2e-4, 3e-3


_RESERVED_BYTES = 8_192  # graph, metadata, scales, the zip of associated files


def _vocabulary_budget(options) -> dict:
    """Words the dynamic-range export affords within `max_model_bytes`: an int8 embedding row is
    `wordvec_dim` bytes; the convolutions and dense layers (int8 too) are paid for first."""
    if not options.max_model_bytes:
        return {}
    convs = sum(width * options.wordvec_dim * options.filters + 4 * options.filters
                for width in options.kernel_sizes)
    pooled = options.filters * len(options.kernel_sizes)
    dense = pooled * options.hidden_dim + 4 * options.hidden_dim + (options.hidden_dim or pooled) * 64 * 4
    return {"byte_budget": max(0, options.max_model_bytes - _RESERVED_BYTES - convs - dense),
            "row_bytes": options.wordvec_dim,
            "case_variants": bool(options.do_lower_case and options.device_case_variants)}


def default_learning_rate(total_steps: int) -> float:
    return float(min(MAX_RATE, max(MIN_RATE, LEARNING_BUDGET / max(1, total_steps))))


class DistilledSpec(ArchitectureSpec):
    name = "distilled"
    title = "Distilled CNN (from BERT)"
    api_name = "DISTILLED_CLASSIFIER"
    options_class = DistilledModelOptions
    hparams_class = DistilledHParams
    requires = ("bert",)
    learns_from_teacher = True
    steps_per_execution = 16

    def vocabulary_plan(self, options) -> VocabularyPlan:
        return VocabularyPlan(recipe=tok.TokenizerRecipe(tok.REGEX, bool(options.do_lower_case)),
                              seq_len=options.seq_len, max_seq_len=MAX_FITTED_SEQ_LEN,
                              max_size=options.vocab_size, **_vocabulary_budget(options))

    def model_info(self, options, vocab_size: int) -> Dict[str, Any]:
        return {"vocab_rows": int(vocab_size)}

    def build_model(self, options, num_classes: int, info: Mapping[str, Any]):
        from components.student_model import build_student
        return build_student(options, num_classes, info["vocab_rows"])

    def resolve_hparams(self, hparams, options, info, meta, steps_per_epoch) -> Resolved:
        if hparams.learning_rate:
            return Resolved(hparams)
        rate = default_learning_rate(steps_per_epoch * hparams.epochs)
        return Resolved(dataclasses.replace(hparams, learning_rate=rate), {"learning_rate": rate})

    def _targets(self, dataset, meta):
        """(ids, the teacher's scores) for a transfer set; (ids, one-hot label) for a split
        without scores (validation), so one loss serves both."""
        import tensorflow as tf

        from components.tokenized import SCORES
        classes = len(meta["label_names"])
        if SCORES in meta["features"]:
            return dataset.map(lambda features, label: (features[tok.AWE_FEATURE], features[SCORES]))
        return dataset.map(lambda features, label: (features[tok.AWE_FEATURE], tf.one_hot(label, classes)))

    def train_batches(self, dataset, meta, options, hparams, shuffle: bool):
        import tensorflow as tf
        dataset = self._targets(dataset, meta)
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(meta["num_examples"]))
        if shuffle:
            dataset = dataset.shuffle(min(meta["num_examples"], 200_000), seed=hparams.seed,
                                      reshuffle_each_iteration=True)
        if hparams.steps_per_epoch is not None:
            dataset = dataset.repeat()
        return dataset.batch(hparams.batch_size).prefetch(tf.data.AUTOTUNE)

    def validation_batches(self, dataset, meta, options, batch_size: int):
        import tensorflow as tf
        dataset = self._targets(dataset, meta)
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(meta["num_examples"]))
        return dataset.batch(batch_size)

    def eval_batches(self, dataset, meta, options, batch_size: int):
        return AWE.eval_batches(dataset, meta, options, batch_size)

    def loss(self, hparams):
        from components.student_model import distillation_loss
        return distillation_loss(hparams.loss, hparams.temperature)

    def metrics(self):
        import tf_keras as keras
        # Named "accuracy": the checkpoints keep the epoch with the best val_accuracy, the
        # validation split's own labels (one-hot) against the student's top class.
        return [keras.metrics.CategoricalAccuracy(name="accuracy")]

    def optimizer(self, hparams, total_steps: int):
        import tf_keras as keras
        return keras.optimizers.Adam(learning_rate=hparams.learning_rate)

    def write_metadata(self, tflite_bytes: bytes, vocabulary, label_names: Sequence[str],
                       info: Mapping[str, Any]) -> bytes:
        from components import metadata as md
        return md.write_regex_tokenizer_metadata(tflite_bytes, AWE.device_vocabulary(vocabulary, info),
                                                 label_names, producer={"architecture": self.name})

    def export_warnings(self, info: Mapping[str, Any], vocabulary) -> List[str]:
        return []

    def describe(self, info: Mapping[str, Any]) -> str:
        return self.title


SPEC = DistilledSpec()
