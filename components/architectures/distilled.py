"""The distilled student: a small CNN on the AWE input contract, taught by a BERT teacher.

It reads what MediaPipe's regex tokenizer gives (the AWE model's vocabulary, metadata and casing
rules), so MediaPipe's `TextClassifier` and `TextClassifier.load` run it as they run the AWE
model, while its training targets are a BERT teacher's scores on a transfer set: the training
texts plus augmentations of them (`components.transfer`). A pipeline with `distilled` trains its
BERT branch first (`requires`) unless `teacher` names a trained model folder.
"""

from __future__ import annotations

from typing import Any, Dict

from components.architectures.awe import MAX_FITTED_SEQ_LEN
from components.architectures.word_ids import WordIdSpec
from components.options import DistilledHParams, DistilledModelOptions

# A rate of 1e-3 serves the student's transfer sets (tens to hundreds of thousands of texts);
# within the same bounds as AWE's rule for tiny ones.
LEARNING_BUDGET = 30.0
MIN_RATE, MAX_RATE = 2e-4, 3e-3


_RESERVED_BYTES = 8_192  # graph, metadata, scales, the zip of associated files


class DistilledSpec(WordIdSpec):
    name = "distilled"
    title = "Distilled CNN (from BERT)"
    api_name = "DISTILLED_CLASSIFIER"
    options_class = DistilledModelOptions
    hparams_class = DistilledHParams
    requires = ("bert",)
    learns_from_teacher = True
    steps_per_execution = 16
    max_fitted_seq_len = MAX_FITTED_SEQ_LEN
    learning_budget, min_rate, max_rate = LEARNING_BUDGET, MIN_RATE, MAX_RATE
    shuffle_buffer = 200_000

    def vocabulary_budget(self, options) -> Dict[str, Any]:
        """Words the dynamic-range export affords within `max_model_bytes`: an int8 embedding row is
        `wordvec_dim` bytes; the convolutions and dense layers (int8 too) are paid for first."""
        if not options.max_model_bytes:
            return {}
        convs = sum(width * options.wordvec_dim * options.filters + 4 * options.filters
                    for width in options.kernel_sizes)
        pooled = options.filters * len(options.kernel_sizes)
        dense = pooled * options.hidden_dim + 4 * options.hidden_dim + (options.hidden_dim or pooled) * 64 * 4
        return {"byte_budget": max(0, options.max_model_bytes - _RESERVED_BYTES - convs - dense),
                "row_bytes": options.wordvec_dim, "case_variants": self.case_variants(options)}

    def build_model(self, options, num_classes: int, info):
        from components.student_model import build_student
        return build_student(options, num_classes, info["vocab_rows"])

    def inputs(self, dataset, meta):
        """(ids, the teacher's scores) for a transfer set; (ids, one-hot label) for a split
        without scores (validation), so one loss serves both."""
        import tensorflow as tf

        from components import tokenizers as tok
        from components.tokenized import SCORES
        classes = len(meta["label_names"])
        if SCORES in meta["features"]:
            return dataset.map(lambda features, label: (features[tok.AWE_FEATURE], features[SCORES]))
        return dataset.map(lambda features, label: (features[tok.AWE_FEATURE], tf.one_hot(label, classes)))

    def loss(self, hparams):
        from components.student_model import distillation_loss
        return distillation_loss(hparams.loss, hparams.temperature)

    def metrics(self):
        import tf_keras as keras
        # Named "accuracy": the checkpoints keep the epoch with the best val_accuracy, the
        # validation split's own labels (one-hot) against the student's top class.
        return [keras.metrics.CategoricalAccuracy(name="accuracy")]


SPEC = DistilledSpec()
