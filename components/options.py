"""Typed options mirroring MediaPipe Model Maker's, so a guide user recognises every field.

All option classes are plain dataclasses that round-trip through JSON (`to_dict` / `from_dict`):
that is how they travel as kfp pipeline parameters and how a trained model records what built it.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from typing import Any, Dict, List, Optional, Type, TypeVar

from components.errors import ConfigError

T = TypeVar("T", bound="_JsonOptions")

def _coerce_numbers(cls, values: Dict[str, Any]) -> Dict[str, Any]:
    """kfp carries dict parameters as protobuf Structs, where every number is a float: give
    integer fields their whole-number values back as ints (a fractional value is an error)."""
    hints = typing.get_type_hints(cls)
    result = dict(values)
    for name, value in values.items():
        wants_int = hints.get(name) in (int, Optional[int])
        if wants_int and isinstance(value, float):
            if not value.is_integer():
                raise ConfigError(f"{cls.__name__}.{name} must be a whole number, got {value}")
            result[name] = int(value)
    return result


class _JsonOptions:
    """JSON round-tripping shared by every options class."""

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls: Type[T], values: Optional[Dict[str, Any]]) -> T:
        values = dict(values or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"{cls.__name__} has no option(s) {', '.join(unknown)}; "
                f"known options: {', '.join(sorted(known))}")
        return cls(**_coerce_numbers(cls, values))

    @classmethod
    def from_json(cls: Type[T], text: str) -> T:
        return cls.from_dict(json.loads(text) if text else {})


AUTO = "auto"


NO_QUOTING_SPELLINGS = (None, "", "none", "None", "NONE")
TAB_EXTENSIONS = (".tsv", ".tab")


def _without_gz(name: str) -> str:
    lowered = name.lower()
    return lowered[:-3] if lowered.endswith(".gz") else lowered


@dataclasses.dataclass
class CSVParams(_JsonOptions):
    """How to read a delimited file (Model Maker's `CSVParams`, plus encoding and bad-row policy).

    `delimiter="auto"` picks a tab for `.tsv`/`.tab` files (also gzipped) and a comma otherwise;
    `text_column="auto"` picks the header's only column besides the label column, else a column
    named `text` or `sentence`.

    `quotechar="auto"` (the default) reads tab-delimited files without quoting, as GLUE and most
    TSV writers produce them, and other files with `"` quoting (Model Maker's default was `"` for
    every file). `None`, `""` and `"none"` all mean no quoting and are stored as `""`, the form
    that travels as a pipeline parameter.
    """

    text_column: str = "text"
    label_column: str = "label"
    fieldnames: Optional[List[str]] = None
    delimiter: str = ","
    quotechar: Optional[str] = AUTO
    encoding: str = "utf-8"
    on_bad_rows: str = "error"

    def __post_init__(self):
        if self.delimiter in ("\\t", "tab", "TAB"):
            self.delimiter = "\t"
        if not isinstance(self.delimiter, str) or (self.delimiter != AUTO and len(self.delimiter) != 1):
            raise ConfigError(f"delimiter must be one character (or 'auto'), got {self.delimiter!r}")
        if self.delimiter in ("\n", "\r"):
            raise ConfigError("delimiter must not be a line break")
        if self.quotechar in NO_QUOTING_SPELLINGS:
            self.quotechar = ""
        if not isinstance(self.quotechar, str) or (self.quotechar not in (AUTO, "") and len(self.quotechar) != 1):
            raise ConfigError(f"quotechar must be one character, 'auto', or 'none'/'' for no quoting; "
                              f"got {self.quotechar!r}")
        if self.quotechar not in ("", AUTO) and self.quotechar == self.delimiter:
            raise ConfigError(f"quotechar and delimiter must differ, both are {self.delimiter!r}")
        if self.fieldnames is not None:
            if isinstance(self.fieldnames, str):
                self.fieldnames = [name.strip() for name in self.fieldnames.split(",")]
            self.fieldnames = [str(name) for name in self.fieldnames]
            if not self.fieldnames or not all(name.strip() for name in self.fieldnames):
                raise ConfigError(f"fieldnames must be non-empty column names, got {self.fieldnames!r}")
        if self.on_bad_rows not in ("error", "skip"):
            raise ConfigError(f"on_bad_rows must be 'error' or 'skip', got {self.on_bad_rows!r}")
        if self.text_column == self.label_column and self.text_column != AUTO:
            raise ConfigError("text_column and label_column must differ")

    def delimiter_for(self, filename: str) -> str:
        """The delimiter used for `filename`: the given one, or by extension for "auto"."""
        if self.delimiter != AUTO:
            return self.delimiter
        return "\t" if _without_gz(filename).endswith(TAB_EXTENSIONS) else ","

    def quotechar_for(self, filename: str) -> str:
        """The quote character used for `filename`; "" means no quoting."""
        if self.quotechar != AUTO:
            return self.quotechar
        return "" if self.delimiter_for(filename) == "\t" else '"'


@dataclasses.dataclass
class SplitOptions(_JsonOptions):
    """Fractions used when one file is split; the rest of the rows go to training."""

    validation_fraction: float = 0.1
    test_fraction: float = 0.1
    seed: int = 42

    def __post_init__(self):
        for name in ("validation_fraction", "test_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ConfigError(f"{name} must be in [0, 1), got {value}")
        if self.validation_fraction + self.test_fraction >= 1.0:
            raise ConfigError("validation_fraction + test_fraction must leave rows for training")


def _check_seq_len(owner, seq_len: int) -> None:
    if seq_len != 0 and seq_len < 3:
        raise ConfigError(f"{owner}.seq_len must be 0 (fitted to the data) or at least 3, got {seq_len}")


@dataclasses.dataclass
class AverageWordEmbeddingModelOptions(_JsonOptions):
    """Model Maker's AWE options, with Model Maker's names.

    `seq_len` 0 (the default) fits the model's input to the longest text of the data given, at
    most Model Maker's 256 ids: MediaPipe feeds `[1, seq_len]`, so padding costs on the device.
    `device_case_variants` (on by default) packs the capitalised and upper-case spellings of every
    vocabulary word into the .tflite's vocabulary, mapped to the lower-case word's id: MediaPipe's
    tokenizer never lower-cases, and without them "Great" and "GREAT" are `<UNKNOWN>` on the
    device. They take bytes a word, so `max_model_bytes` (Model Maker's 776 KB) keeps the float
    export that size by keeping fewer of the rarest words (on SST-2 about 7,450 of `vocab_size`
    10,000, at no measured cost on the suite); 0 lifts the limit, `vocab_size` stays the cap.
    """

    seq_len: int = 0
    wordvec_dim: int = 16
    dropout_rate: float = 0.2
    do_lower_case: bool = True
    vocab_size: int = 10000
    device_case_variants: bool = True
    max_model_bytes: int = 776_000

    def __post_init__(self):
        _check_seq_len(type(self).__name__, self.seq_len)
        if self.vocab_size < 1:
            raise ConfigError(f"vocab_size must be positive, got {self.vocab_size}")
        if self.max_model_bytes < 0:
            raise ConfigError(f"max_model_bytes must be 0 (no limit) or positive, got {self.max_model_bytes}")
        if not 0.0 <= self.dropout_rate < 1.0:
            raise ConfigError(f"dropout_rate must be in [0, 1), got {self.dropout_rate}")


@dataclasses.dataclass
class AverageWordEmbeddingHParams(_JsonOptions):
    """Training settings for the AWE classifier, with Model Maker's names.

    `learning_rate` 0 (the default, as the guide passes it) picks Adam's rate from the length of
    the run, so 500 rows and 67,000 both train (`architectures.awe.default_learning_rate`); a rate
    you give is used as given.
    """

    epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 0.0
    steps_per_epoch: Optional[int] = None
    shuffle: bool = True
    class_weights: Optional[Dict[str, float]] = None
    export_dir: str = ""
    seed: int = 0

    def __post_init__(self):
        _check_common_hparams(self)


DEFAULT_BERT_ENCODER = "mobilebert"


@dataclasses.dataclass
class BertModelOptions(_JsonOptions):
    """BERT classifier options; `encoder` is an alias, a TF Hub URL/handle, a TF1 Hub module or
    SavedModel folder, or a Hugging Face BERT folder.

    `seq_len` 0 (the default) fits the input to the longest text (in word pieces) of the data
    given, at most Model Maker's 128.
    """

    seq_len: int = 0
    dropout_rate: float = 0.1
    do_fine_tuning: bool = True
    encoder: str = DEFAULT_BERT_ENCODER
    pooling: str = "auto"

    def __post_init__(self):
        _check_seq_len(type(self).__name__, self.seq_len)
        if self.pooling not in ("auto", "cls", "mean"):
            raise ConfigError(f"pooling must be 'auto', 'cls' or 'mean', got {self.pooling!r}")


@dataclasses.dataclass
class BertHParams(_JsonOptions):
    """Fine-tuning settings; defaults are Model Maker's BERT defaults plus AdamW details.

    `learning_rate` 0 means the encoder's tuned default (`encoders.default_learning_rate`):
    Model Maker's 3e-5 for MobileBERT and unknown encoders, 5e-5 for MiniLM-L6. `epochs` 0 (the
    default) means Model Maker's 3, more on small data so that training takes at least 300
    steps (at most 30 epochs; `architectures.bert.default_epochs`). Given values are used as given.
    """

    epochs: int = 0
    batch_size: int = 48
    learning_rate: float = 0.0
    end_learning_rate: float = 0.0
    warmup_fraction: float = 0.1
    optimizer: str = "adamw"
    weight_decay: float = 0.01
    clip_norm: float = 1.0
    steps_per_epoch: Optional[int] = None
    shuffle: bool = True
    class_weights: Optional[Dict[str, float]] = None
    checkpoint_frequency: int = 1
    bucket_by_length: bool = True
    export_dir: str = ""
    seed: int = 0

    def __post_init__(self):
        _check_common_hparams(self, epochs_default=True)
        if self.optimizer not in ("adamw", "lamb"):
            raise ConfigError(f"optimizer must be 'adamw' or 'lamb', got {self.optimizer!r}")
        if not 0.0 <= self.warmup_fraction < 1.0:
            raise ConfigError(f"warmup_fraction must be in [0, 1), got {self.warmup_fraction}")


def _check_common_hparams(hparams, epochs_default: bool = False) -> None:
    if hparams.epochs < (0 if epochs_default else 1):
        least = "0 (the default) or more" if epochs_default else "at least 1"
        raise ConfigError(f"epochs must be {least}, got {hparams.epochs}")
    if hparams.batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {hparams.batch_size}")
    if hparams.learning_rate < 0:
        raise ConfigError(f"learning_rate must not be negative, got {hparams.learning_rate}")
    if hparams.steps_per_epoch is not None and hparams.steps_per_epoch < 1:
        raise ConfigError(f"steps_per_epoch must be positive, got {hparams.steps_per_epoch}")


EMBEDDING_INITS = ("teacher", "random")


@dataclasses.dataclass
class DistilledModelOptions(_JsonOptions):
    """A small student on MediaPipe's regex tokenizer (the AWE input contract), taught by a BERT
    teacher's scores on the training texts and augmentations of them (our extension).

    `teacher`: a trained BERT model folder (what the pipeline's BERT training writes); empty in a
    pipeline run means the run's own BERT model. `transfer_copies` augmentations are made of each
    training text (words dropped or replaced with `drop_probability` / `replace_probability`,
    n-grams kept with `ngram_probability`), and `unlabelled_texts` (a text file, one text a line)
    adds in-domain texts of your own; the teacher scores them all. New augmented texts teach the
    student more than more passes over the same ones, so the default makes many copies and
    `DistilledHParams` trains few epochs over them. The student is a 1-D CNN over
    `wordvec_dim` embeddings (`filters` per kernel size, max-pooled) with a `hidden_dim` layer.
    `max_model_bytes` keeps the dynamic-range (int8 weights) export within that size by keeping
    fewer of the rarest words, as the AWE model does for its float export; 0 lifts the limit.
    `embedding_init` "teacher" starts the student's word embeddings from the teacher's own (each
    word's mean word-piece vector, projected to `wordvec_dim`); "random" starts them at random.
    """

    seq_len: int = 0
    vocab_size: int = 10000
    do_lower_case: bool = True
    device_case_variants: bool = True
    max_model_bytes: int = 1_000_000
    wordvec_dim: int = 64
    filters: int = 256
    kernel_sizes: List[int] = dataclasses.field(default_factory=lambda: [2, 3, 4])
    hidden_dim: int = 128
    dropout_rate: float = 0.2
    teacher: str = ""
    transfer_copies: int = 20
    drop_probability: float = 0.1
    replace_probability: float = 0.1
    ngram_probability: float = 0.25
    max_ngram: int = 5
    unlabelled_texts: str = ""
    embedding_init: str = "teacher"
    seed: int = 0

    def __post_init__(self):
        _check_seq_len(type(self).__name__, self.seq_len)
        if self.embedding_init not in EMBEDDING_INITS:
            raise ConfigError(f"embedding_init must be one of {', '.join(EMBEDDING_INITS)}, "
                              f"got {self.embedding_init!r}")
        if self.vocab_size < 1 or self.wordvec_dim < 1 or self.filters < 1 or self.hidden_dim < 0:
            raise ConfigError("vocab_size, wordvec_dim and filters must be positive, hidden_dim not negative")
        if not self.kernel_sizes or any(int(k) < 1 for k in self.kernel_sizes):
            raise ConfigError(f"kernel_sizes must be positive widths, got {self.kernel_sizes}")
        self.kernel_sizes = [int(k) for k in self.kernel_sizes]
        if not 0.0 <= self.dropout_rate < 1.0:
            raise ConfigError(f"dropout_rate must be in [0, 1), got {self.dropout_rate}")
        if self.transfer_copies < 0:
            raise ConfigError(f"transfer_copies must not be negative, got {self.transfer_copies}")


DISTILL_LOSSES = ("kl", "mse")
RATE_SCHEDULES = ("linear", "constant")


@dataclasses.dataclass
class DistilledHParams(_JsonOptions):
    """Training settings for the student: `loss` "kl" (cross-entropy against the teacher's scores,
    softened by `temperature`) or "mse" (on centred log-scores); early stopping picks the epoch by
    the validation split's own labels. `epochs` is few because the transfer set holds
    `transfer_copies` augmentations of every training text. `learning_rate` 0 picks Adam's rate
    from the run's length; `learning_rate_schedule` "linear" decays it to zero over the run,
    "constant" keeps it."""

    epochs: int = 3
    batch_size: int = 64
    learning_rate: float = 0.0
    learning_rate_schedule: str = "linear"
    loss: str = "kl"
    temperature: float = 1.0
    steps_per_epoch: Optional[int] = None
    shuffle: bool = True
    class_weights: Optional[Dict[str, float]] = None
    export_dir: str = ""
    seed: int = 0

    def __post_init__(self):
        _check_common_hparams(self)
        if self.learning_rate_schedule not in RATE_SCHEDULES:
            raise ConfigError(f"learning_rate_schedule must be one of {', '.join(RATE_SCHEDULES)}, "
                              f"got {self.learning_rate_schedule!r}")
        if self.loss not in DISTILL_LOSSES:
            raise ConfigError(f"loss must be one of {', '.join(DISTILL_LOSSES)}, got {self.loss!r}")
        if self.temperature <= 0:
            raise ConfigError(f"temperature must be positive, got {self.temperature}")
        if self.class_weights:
            raise ConfigError("class_weights do not apply to a student taught by a teacher's scores")


QUANTIZATION_MODES = ("none", "dynamic", "float16", "int8")


@dataclasses.dataclass
class QuantizationConfig(_JsonOptions):
    """Post-training quantization choice, with Model Maker's constructors.

    `representative_examples` is how many tokenized training examples calibrate int8.
    """

    mode: str = "dynamic"
    representative_examples: int = 200

    def __post_init__(self):
        if self.mode not in QUANTIZATION_MODES:
            raise ConfigError(
                f"quantization mode must be one of {', '.join(QUANTIZATION_MODES)}, got {self.mode!r}")
        if self.representative_examples < 1:
            raise ConfigError("representative_examples must be positive")

    @classmethod
    def for_dynamic(cls) -> "QuantizationConfig":
        return cls(mode="dynamic")

    @classmethod
    def for_float16(cls) -> "QuantizationConfig":
        return cls(mode="float16")

    @classmethod
    def for_int8(cls, representative_data=None, representative_examples: int = 200) -> "QuantizationConfig":
        # Model Maker takes the representative dataset here; ours comes from the tokenized training
        # split, so only its size is configurable. Passing a dataset keeps call sites unchanged.
        del representative_data
        return cls(mode="int8", representative_examples=representative_examples)
