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
from components.errors import DataSourceError
from components.options import DistilledHParams, DistilledModelOptions

# The starting rate of a linear decay to zero: 9.5e-4 on SST-2's transfer set (63,000 steps), up to
# 6e-3 on small ones; averaged over the run, what a constant 30 / steps within [2e-4, 3e-3] gave.
LEARNING_BUDGET = 60.0
MIN_RATE, MAX_RATE = 4e-4, 6e-3


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

    def after_vocabulary(self, vocab_dir, train_split_dir, options) -> Dict[str, Any]:
        """The student's starting embedding, from the teacher's word vectors the transfer set
        carries (`components.word_vectors`), for `embedding_init` "teacher"."""
        from components import tokenizers as tok
        from components import vocabulary, word_vectors
        if options.embedding_init != "teacher":
            return {}
        found = word_vectors.read(train_split_dir)
        if found is None:
            print(f"{train_split_dir}: no teacher word vectors; the student's embedding starts at random", flush=True)
            return {"embedding_init": "random"}
        tokens = vocabulary.read_folder(vocab_dir).tokens
        matrix, covered = word_vectors.project(*found, tokens, options.wordvec_dim, options.seed,
                                               padding=(tok.PAD,))
        if not covered:
            return {"embedding_init": "random"}
        word_vectors.write_initial(vocab_dir, matrix)
        return {"embedding_init": "teacher", "teacher_vector_words": covered}

    def initialize(self, model, vocab_dir, options) -> Dict[str, Any]:
        from components import word_vectors
        if options.embedding_init != "teacher":
            return {}
        matrix = word_vectors.read_initial(vocab_dir)
        if matrix is None:
            return {"embedding_init": "random"}
        layer = model.get_layer("emb")
        if matrix.shape != tuple(layer.embeddings.shape):
            raise DataSourceError(f"{vocab_dir}: the starting embedding is {matrix.shape}, the student's "
                                  f"{tuple(layer.embeddings.shape)}; re-run preprocessing with these options")
        layer.set_weights([matrix])
        return {"embedding_init": "teacher"}

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

    def optimizer(self, hparams, total_steps: int):
        import tf_keras as keras
        rate = hparams.learning_rate
        if hparams.learning_rate_schedule == "linear":
            # Decaying to zero settles the weights the way averaging the last epochs' would: the
            # epoch early stopping keeps then varies less from seed to seed.
            rate = keras.optimizers.schedules.PolynomialDecay(rate, max(1, total_steps), 0.0)
        return keras.optimizers.Adam(learning_rate=rate)

    def loss(self, hparams):
        from components.student_model import distillation_loss
        return distillation_loss(hparams.loss, hparams.temperature)

    def metrics(self):
        import tf_keras as keras
        # Named "accuracy": the checkpoints keep the epoch with the best val_accuracy, the
        # validation split's own labels (one-hot) against the student's top class.
        return [keras.metrics.CategoricalAccuracy(name="accuracy")]


SPEC = DistilledSpec()
