"""The BERT classifier: a pre-trained encoder fine-tuned with a softmax head.

The encoder (`components.encoders`: Model Maker's MobileBERT, TF Hub / SavedModel encoders, Hugging
Face BERT checkpoints) brings its own WordPiece vocabulary and casing; the exported .tflite takes
the three `[1, seq_len]` BERT inputs, which MediaPipe's `TextClassifier` computes with its BERT
tokenizer from the packed vocabulary.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Mapping, Sequence

from components import tokenizers as tok
from components.architectures.base import ArchitectureSpec, Resolved, VocabularyPlan
from components.options import BertHParams, BertModelOptions

# `seq_len` 0 fits the input to the longest text, at most Model Maker's 128 word pieces.
MAX_FITTED_SEQ_LEN = 128

# `epochs` 0: Model Maker's 3 epochs are about 40 optimizer steps on 450 rows, too few to move a
# pre-trained encoder (MiniLM-L6 on a 500-row SST-2 sample: 59 % against TF-IDF's 66 %), so
# small data gets more epochs, up to MIN_STEPS steps in all; validation still picks the epoch.
BASE_EPOCHS = 3
MIN_STEPS = 300
MAX_EPOCHS = 30


def default_epochs(steps_per_epoch: int) -> int:
    """Epochs for `epochs` 0: at least BASE_EPOCHS, enough for MIN_STEPS steps, at most MAX_EPOCHS."""
    needed = -(-MIN_STEPS // max(1, int(steps_per_epoch)))
    return int(min(MAX_EPOCHS, max(BASE_EPOCHS, needed)))


class BertSpec(ArchitectureSpec):
    name = "bert"
    title = "BERT"
    api_name = "MOBILEBERT_CLASSIFIER"
    options_class = BertModelOptions
    hparams_class = BertHParams

    def encoder(self, options):
        from components.encoders import resolve_encoder
        return resolve_encoder(options.encoder)

    def vocabulary_plan(self, options) -> VocabularyPlan:
        from components import vocabulary as vocab_io
        spec = self.encoder(options)
        raw = vocab_io.read_file(spec.vocab_path)
        tokens = vocab_io.parse_wordpiece(raw, spec.vocab_path, tok.BERT_REQUIRED_TOKENS)
        return VocabularyPlan(recipe=tok.TokenizerRecipe(tok.WORDPIECE, bool(spec.do_lower_case)),
                              seq_len=options.seq_len, max_seq_len=MAX_FITTED_SEQ_LEN,
                              tokens=tuple(tokens), raw=raw)

    def model_info(self, options, vocab_size: int) -> Dict[str, Any]:
        return {"encoder": self.encoder(options).to_dict()}

    def build_model(self, options, num_classes: int, info: Mapping[str, Any]):
        """With the encoder model.json recorded while its folder is still here; otherwise (another
        machine, a cleared cache) `options.encoder` is resolved again."""
        import os

        from components.bert import build_bert_classifier
        from components.encoders import EncoderSpec
        recorded = info.get("encoder") or {}
        spec = EncoderSpec.from_dict(recorded) if os.path.isdir(recorded.get("path", "")) else None
        return build_bert_classifier(options, num_classes, encoder_spec=spec)

    def resolve_hparams(self, hparams, options, info, meta, steps_per_epoch) -> Resolved:
        picked: Dict[str, Any] = {}
        if not hparams.epochs:
            picked["epochs"] = default_epochs(steps_per_epoch)
        if not hparams.learning_rate:
            from components.encoders import EncoderSpec, default_learning_rate
            picked["learning_rate"] = default_learning_rate(EncoderSpec.from_dict(info["encoder"]))
        return Resolved(dataclasses.replace(hparams, **picked) if picked else hparams, picked)

    def steps_per_epoch(self, meta, hparams) -> int:
        if hparams.steps_per_epoch or not hparams.bucket_by_length:
            return super().steps_per_epoch(meta, hparams)
        from components.bert import bucketed_steps
        lengths = {int(k): int(v) for k, v in meta["length_counts"].items()}
        return bucketed_steps(lengths, hparams.batch_size, int(meta["seq_len"]))

    def train_batches(self, dataset, meta, options, hparams, shuffle: bool):
        from components import bert
        if hparams.steps_per_epoch is not None:
            dataset = dataset.repeat()
        make = bert.bucketed_batches if hparams.bucket_by_length else bert.padded_batches
        return make(dataset, hparams.batch_size, int(meta["seq_len"]), shuffle, hparams.seed)

    def eval_batches(self, dataset, meta, options, batch_size: int):
        from components import bert
        return bert.bucketed_batches(dataset, min(batch_size, BertHParams().batch_size),
                                     int(meta["seq_len"]), shuffle=False, seed=0)

    def optimizer(self, hparams, total_steps: int):
        from components import bert
        return bert.make_optimizer(hparams, total_steps)

    def write_metadata(self, tflite_bytes: bytes, vocabulary, label_names: Sequence[str],
                       info: Mapping[str, Any]) -> bytes:
        from components import metadata as md
        return md.write_bert_tokenizer_metadata(tflite_bytes, vocabulary.raw, label_names,
                                                producer={"architecture": self.name})

    def export_warnings(self, info: Mapping[str, Any], vocabulary) -> List[str]:
        if vocabulary.do_lower_case:
            return []
        # Observed with mediapipe 1.2.3: "GREAT" and "great" get the same WordPiece ids on device.
        return ["MediaPipe's BERT tokenizer lower-cases its input, but this encoder is cased "
                "(do_lower_case false): on-device scores will differ from evaluation for upper-case text"]

    def describe(self, info: Mapping[str, Any]) -> str:
        encoder = info.get("model_options", {}).get("encoder", "")
        return f"{self.title} ({encoder})" if encoder else self.title


SPEC = BertSpec()
