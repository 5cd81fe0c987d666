"""MediaPipe Model Maker's `text_classifier` API, on this package's library and current TensorFlow.

Moving a notebook over is one import line:
`from mediapipe_model_maker import text_classifier, quantization` becomes
`from components import text_classifier, quantization`. The guide's calls then run unchanged.

Everything runs in-process on the functions the pipeline's steps call: ingest's reader and
stratified splitter, the split and tokenized folder formats, `train.train`, `export` and `quantize`.
A model made here and one the pipeline makes from the same data and options are the same model.
Only the Beam runner is skipped: tokenization calls the per-batch encoder and record framing the
Beam pipeline's workers run, which gives byte-identical folders without a runner's start-up.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import os
import shutil
import tempfile
import warnings
import weakref
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import components  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from components import architectures, ingest, split_io, tokenized
from components import labels as labels_io
from components import tokenizers as tok
from components import vocabulary as vocab_io
from components.errors import ConfigError, EncoderError, LabelError
from components.options import (
    DEFAULT_BERT_ENCODER,
    AverageWordEmbeddingHParams,
    AverageWordEmbeddingModelOptions,
    BertHParams,
    BertModelOptions,
    CSVParams,
    DistilledHParams,
    DistilledModelOptions,
)
from components.quantization import QuantizationConfig

_LOG = logging.getLogger(__name__)
DEFAULT_MODEL_NAME = "model.tflite"

__all__ = [
    "AverageWordEmbeddingHParams", "AverageWordEmbeddingModelOptions", "BertHParams",
    "BertModelOptions", "CSVParams", "Dataset", "DistilledHParams", "DistilledModelOptions", "EvaluationResult",
    "Prediction",
    "QuantizationConfig", "SupportedModels", "TextClassifier", "TextClassifierOptions",
]


# ----------------------------------------------------------------------------------------------
# Data

class Dataset:
    """Labelled texts held in memory, as Model Maker's `text_classifier.Dataset`.

    Labels are kept as strings and label names sorted the way ingest sorts them (numerically when
    they look like integers), so label ids match the pipeline's `labels.txt` for the same data.
    """

    def __init__(self, texts: Sequence[str], labels: Sequence[Any],
                 label_names: Optional[Sequence[str]] = None):
        texts, labels = list(texts), [str(label) for label in labels]
        if len(texts) != len(labels):
            raise ConfigError(f"{len(texts)} texts but {len(labels)} labels")
        names = [str(n) for n in label_names] if label_names is not None \
            else labels_io.sorted_label_names(labels)
        unknown = labels_io.sorted_label_names(set(labels) - set(names))
        if unknown:
            raise LabelError(f"label(s) {unknown} are not among the label names {names}")
        self._texts, self._labels, self._label_names = texts, labels, names

    @classmethod
    def from_csv(cls, filename: str, csv_params: Optional[CSVParams] = None, shuffle: bool = True,
                 cache_dir: Optional[str] = None, num_shards: int = 1) -> "Dataset":
        """Reads delimited text (a file, glob or folder; local, gs:// or a URL) with ingest's
        validating reader, under the same `CSVParams` rules as the pipeline (tab-delimited files
        are read without quoting unless `quotechar` says otherwise).

        `shuffle`, `cache_dir` and `num_shards` are Model Maker's and accepted so its calls run;
        rows stay in file order (training shuffles every epoch, `split` draws per label).
        """
        del shuffle, cache_dir, num_shards
        result = ingest.read_delimited(filename, csv_params or CSVParams())
        if result.bad_rows:
            first = result.bad_rows[0]
            _LOG.warning("%s: skipped %d bad row(s), first at %s line %d: %s", filename,
                         len(result.bad_rows), first.source, first.line, first.reason)
        labels = [label for _, label in result.rows]
        for group in ingest.labels_differing_only_by_case(sorted(set(labels))):
            _LOG.warning("%s: labels %s differ only by case and are separate classes", filename, group)
        return cls([text for text, _ in result.rows], labels)

    @property
    def size(self) -> int:
        return len(self._texts)

    def __len__(self) -> int:
        return len(self._texts)

    @property
    def num_classes(self) -> int:
        return len(self._label_names)

    @property
    def label_names(self) -> List[str]:
        return list(self._label_names)

    @property
    def texts(self) -> List[str]:
        return list(self._texts)

    @property
    def labels(self) -> List[str]:
        return list(self._labels)

    def rows(self) -> List[Tuple[str, str]]:
        return list(zip(self._texts, self._labels))

    def split(self, fraction: float, seed: int = 0) -> Tuple["Dataset", "Dataset"]:
        """(`fraction` of the rows, the rest), cut per label and reproducible for a seed.

        Model Maker cuts in file order, which on a file sorted by label yields one-class parts;
        ingest's stratified split keeps both parts' label mix. Both keep this dataset's label names.
        """
        if not 0.0 < fraction < 1.0:
            raise ConfigError(f"fraction must be between 0 and 1, got {fraction}")
        parts = ingest.stratified_split(self.rows(), {"first": fraction}, seed)
        return tuple(Dataset([t for t, _ in rows], [label for _, label in rows], self._label_names)
                     for rows in (parts["first"], parts["train"]))

    def __repr__(self) -> str:
        return f"Dataset(size={self.size}, label_names={self._label_names})"


def _label_ids(data: Dataset, label_names: Sequence[str], strict: bool = True) -> List[int]:
    index = {name: i for i, name in enumerate(label_names)}
    if strict:
        unknown = labels_io.sorted_label_names(set(data.labels) - set(index))
        if unknown:
            raise LabelError(f"label(s) {unknown} are not among the model's labels {list(label_names)}")
    return [index.get(label, -1) for label in data.labels]


# ----------------------------------------------------------------------------------------------
# Options

SupportedModels = enum.Enum("SupportedModels", [
    (architectures.get(name).api_name, name) for name in architectures.names()])
SupportedModels.__doc__ = """The classifiers of the guide (and ours); the value is the pipeline's architecture name."""


@dataclasses.dataclass
class TextClassifierOptions:
    """Model Maker's options; unset `model_options` / `hparams` get the model's defaults.

    For BERT, `BertModelOptions(encoder=...)` picks the encoder: "mobilebert" (the TF Hub module
    Model Maker 0.2.1.4 fine-tunes, downloaded once), "mobilebert_tiny" (the tarball earlier
    releases used), "minilm-l6" (offline), a TF Hub URL, a TF1 Hub module or SavedModel folder,
    or a Hugging Face BERT folder.
    """

    supported_model: SupportedModels
    model_options: Optional[Union[AverageWordEmbeddingModelOptions, BertModelOptions]] = None
    hparams: Optional[Union[AverageWordEmbeddingHParams, BertHParams]] = None

    def __post_init__(self):
        if isinstance(self.supported_model, str):  # "awe" / "bert", as the pipeline spells them
            self.supported_model = SupportedModels(self.supported_model.strip().lower())
        if not isinstance(self.supported_model, SupportedModels):
            raise ConfigError(f"supported_model must be a SupportedModels member, got {self.supported_model!r}")
        spec = architectures.get(self.supported_model.value)
        options_class, hparams_class = spec.options_class, spec.hparams_class
        if self.model_options is None:
            self.model_options = options_class()
        if self.hparams is None:
            self.hparams = hparams_class()
        for name, value, expected in (("model_options", self.model_options, options_class),
                                      ("hparams", self.hparams, hparams_class)):
            if not isinstance(value, expected):
                raise ConfigError(f"{self.supported_model.name} takes {name} of type "
                                  f"{expected.__name__}, got {type(value).__name__}")

    @property
    def architecture(self) -> str:
        return self.supported_model.value


# ----------------------------------------------------------------------------------------------
# Results

class EvaluationResult(list):
    """`[loss, accuracy]`, as the guide indexes Model Maker's result; `.metrics` holds the full
    report (per-class precision/recall/F1, macro F1, confusion matrix, ROC AUC for two classes)."""

    def __init__(self, metrics: Dict[str, Any]):
        super().__init__([metrics["loss"], metrics["accuracy"]])
        self.metrics = metrics

    @property
    def loss(self) -> float:
        return self[0]

    @property
    def accuracy(self) -> float:
        return self[1]


@dataclasses.dataclass(frozen=True)
class Prediction:
    """The top label, its score, and every label's score."""

    label: str
    score: float
    scores: Dict[str, float]


def _resolve_encoder(options: BertModelOptions):
    from components.encoders import resolve_encoder
    try:
        return resolve_encoder(options.encoder)
    except EncoderError as error:
        if (options.encoder or DEFAULT_BERT_ENCODER).strip().lower() == DEFAULT_BERT_ENCODER:
            raise EncoderError(f"{error}\nIn Python: text_classifier.TextClassifierOptions(..., "
                               "model_options=text_classifier.BertModelOptions(encoder='minilm-l6'))"
                               ) from error
        raise


def _write_transfer_set(folder: str, model_options, train_data: "Dataset", label_names: Sequence[str]) -> None:
    """The training split replaced by the teacher-scored transfer set (`components.transfer`)."""
    from components import transfer
    from components.teacher import TeacherScorer

    if not model_options.teacher:
        raise ConfigError("a distilled model needs a teacher: DistilledModelOptions(teacher=bert_model.model_dir), "
                          "the model folder of a BERT TextClassifier (or of the pipeline's BERT training step)")
    scorer = TeacherScorer(model_options.teacher)
    if list(scorer.label_names) != list(label_names):
        raise LabelError(f"the teacher's labels {scorer.label_names} are not the training data's {list(label_names)}")
    lines = transfer.transfer_rows(train_data.texts, train_data.labels, model_options, scorer,
                                   transfer.read_unlabelled(model_options.unlabelled_texts))
    writer = split_io.SplitWriter(folder)
    for line in lines:
        writer.write_line(line)
    writer.close(label_names)
    transfer.write_teacher_vectors(folder, transfer.teacher_vectors(scorer, train_data.texts, model_options))


def _make_tokenizer(architecture: str, model_options, texts: Sequence[str], vocab_dir: str):
    """Writes the vocabulary folder as preprocessing does; returns the tokenizer and vocabulary
    size. `seq_len` 0 fits the input to the longest of `texts` (training and validation)."""
    spec = architectures.get(architecture)
    try:
        plan = spec.vocabulary_plan(model_options)
    except EncoderError as error:
        encoder = getattr(model_options, "encoder", None)
        if encoder is not None and (encoder or DEFAULT_BERT_ENCODER).strip().lower() == DEFAULT_BERT_ENCODER:
            raise EncoderError(f"{error}\nIn Python: text_classifier.TextClassifierOptions(..., "
                               "model_options=text_classifier.BertModelOptions(encoder='minilm-l6'))"
                               ) from error
        raise
    if plan.counts_vocabulary:
        tokens = plan.select(plan.recipe.count(texts[0]))
    else:
        tokens = list(plan.tokens)
    vocab_io.write_folder(vocab_dir, vocab_io.Vocabulary(plan.recipe.vocabulary_format, tuple(tokens),
                                                         plan.recipe.do_lower_case), raw=plan.raw)
    seq_len = plan.seq_len
    if not seq_len:
        counts = [plan.recipe.token_counts(part, tokens) for part in texts]
        longest = max((int(c.max()) for c in counts if len(c)), default=0)
        seq_len = tok.fitted_seq_len(longest, plan.recipe.num_special, plan.max_seq_len)
    return plan.recipe.build(tokens, seq_len), len(tokens), not plan.seq_len


# ----------------------------------------------------------------------------------------------
# The classifier

class TextClassifier:
    """A trained (`create`) or exported (`load`) text classifier with Model Maker's methods.

    Made by `create`, it scores with the Keras model and can export; made by `load`, it scores
    with the .tflite through LiteRT and tokenizes from the model's own metadata, i.e. as the model
    runs on device.
    """

    def __init__(self, architecture: str, label_names: Sequence[str], tokenizer, *,
                 keras_model=None, info: Optional[Dict] = None, tflite_path: str = "",
                 hparams=None, export_dir: str = "", work_dir: str = "", vocab_dir: str = "",
                 train_tokenized: str = ""):
        self.architecture = architecture
        self._label_names = list(label_names)
        self._tokenizer = tokenizer
        self._model, self._info, self._tflite_path = keras_model, info, tflite_path
        self.hparams = hparams
        self._export_dir = export_dir
        self._vocab_dir, self._train_tokenized = vocab_dir, train_tokenized
        self._work_dir = work_dir
        self._base_meta: Dict[str, Any] = {}
        self._float_export = ""
        self._tflite_runner = None
        self.training: Dict[str, Any] = {}
        self.warnings: List[str] = []
        self.baseline: Dict[str, Any] = {}

    # -- construction --------------------------------------------------------------------------

    @classmethod
    def create(cls, train_data: Dataset, validation_data: Dataset,
               options: TextClassifierOptions) -> "TextClassifier":
        """Tokenizes both datasets, trains, and keeps the best-validation weights.

        The work folder (split and tokenized folders, vocabulary, checkpoints, trained model) is
        a temporary directory removed with the object; exports go to `hparams.export_dir`.
        """
        if not isinstance(options, TextClassifierOptions):
            raise ConfigError(f"options must be TextClassifierOptions, got {type(options).__name__}")
        if not isinstance(train_data, Dataset) or not isinstance(validation_data, Dataset):
            raise ConfigError("train_data and validation_data must be text_classifier.Dataset objects")
        from components import model_io
        from components.train import train

        architecture, model_options = options.architecture, options.model_options
        label_names = train_data.label_names
        if len(label_names) < 2:
            raise LabelError(f"the training data has {len(label_names)} class(es) ({label_names}); "
                             "a classifier needs at least two")
        if train_data.size == 0:
            raise LabelError("the training data is empty")
        _label_ids(validation_data, label_names)  # a clear error before any work

        work = tempfile.mkdtemp(prefix="textclf_")
        hparams = options.hparams
        export_dir = hparams.export_dir or tempfile.mkdtemp(prefix="textclf_export_")
        self = cls(architecture, label_names, None, hparams=hparams, export_dir=export_dir,
                   work_dir=work, vocab_dir=os.path.join(work, "vocab"),
                   train_tokenized=os.path.join(work, "tokenized", "train"))
        weakref.finalize(self, shutil.rmtree, work, True)

        split_dirs = {}
        for name, data in (("train", train_data), ("validation", validation_data)):
            split_dirs[name] = os.path.join(work, "splits", name)
            split_io.write_split(split_dirs[name], data.rows(), label_names)
        if architectures.get(architecture).learns_from_teacher:
            _write_transfer_set(split_dirs["train"], model_options, train_data, label_names)
        read = {name: split_io.read_scored_split(folder) for name, folder in split_dirs.items()}
        tokenizer, vocab_size, fitted = _make_tokenizer(architecture, model_options,
                                                        [read["train"][0], read["validation"][0]],
                                                        self._vocab_dir)
        self._tokenizer = tokenizer
        architectures.get(architecture).after_vocabulary(self._vocab_dir, split_dirs["train"], model_options)
        self._base_meta = dict(tokenized.base_meta(architecture, tok.TokenizerRecipe.for_vocabulary(
            vocab_io.read_folder(self._vocab_dir)), label_names, model_options, fitted),
            seq_len=tokenizer.seq_len, vocab_size=vocab_size)
        folders, metas = {}, {}
        for name, (texts, ids, _, scores) in read.items():
            folders[name] = os.path.join(work, "tokenized", name)
            metas[name] = tokenized.write_tokenized(folders[name], tokenizer, texts, ids,
                                                    dict(self._base_meta, split=name), scores)
        self.warnings = tokenized.check_texts(metas, folders)
        for name, meta in metas.items():
            tokenized.update_meta(folders[name], dict(meta, warnings=self.warnings))
        for message in self.warnings:
            warnings.warn(message, stacklevel=2)

        model_dir = os.path.join(work, "model")
        self.training = train(architecture, folders["train"], folders["validation"],
                              self._vocab_dir, model_options, hparams, model_dir,
                              os.path.join(work, "checkpoints"))
        self._model, self._info = model_io.load_trained(model_dir)
        self.baseline = self._baseline(folders["validation"], metas["train"])
        if self.baseline.get("checked") and not self.baseline["passed"]:
            warnings.warn(f"the model does not beat always answering {self.baseline['majority_label']!r} on the "
                          f"validation data (balanced accuracy {self.baseline['model']:.3f} vs "
                          f"{self.baseline['majority']:.3f}): it has not learned the task. More data, more epochs "
                          "or a higher learning rate may help.", stacklevel=2)
        return self

    def _baseline(self, validation_dir: str, train_meta: Dict[str, Any]) -> Dict[str, Any]:
        """The report's baseline gate, on the validation data given to `create`."""
        from components.evaluate import predict_tokenized
        from components.metrics import classification_metrics, majority_label, majority_metrics
        from components.report import DEFAULT_MIN_GAIN_OVER_MAJORITY, baseline_check

        probs, labels = predict_tokenized(self._model, self._info, validation_dir)
        if not len(labels):
            return {"checked": False}
        majority = majority_label(train_meta.get("label_counts", {}), self._label_names)
        evaluation = {"validation": classification_metrics(labels, probs, self._label_names),
                      "majority": {"validation": majority_metrics(labels, majority, self._label_names)}}
        return baseline_check(evaluation, DEFAULT_MIN_GAIN_OVER_MAJORITY)

    @classmethod
    def load(cls, path: str) -> "TextClassifier":
        """An exported classifier: a .tflite with MediaPipe metadata, or a folder with model.tflite.

        Any text classifier packing `labels.txt` and `vocab.txt` in its metadata loads.
        Tokenization comes from the packed vocabulary and
        mirrors MediaPipe's: AWE looks words up as written (our exports pack Title/UPPER-case
        spellings), BERT lower-cases.
        """
        from components import metadata as md
        from components.tflite_eval import TfliteClassifier

        tflite = path if os.path.isfile(path) else os.path.join(path, DEFAULT_MODEL_NAME)
        if not os.path.isfile(tflite):
            raise ConfigError(f"{path}: no such .tflite file, nor a folder holding {DEFAULT_MODEL_NAME}")
        with open(tflite, "rb") as f:
            model_bytes = f.read()
        files = md.associated_files(model_bytes)
        missing = [n for n in (md.LABELS_FILE, md.VOCAB_FILE) if n not in files]
        if missing:
            raise ConfigError(f"{tflite}: no packed {', '.join(missing)}; is it a text classifier "
                              "exported with MediaPipe metadata?")
        label_names = labels_io.parse(files[md.LABELS_FILE], f"{tflite}: {md.LABELS_FILE}")
        runner = TfliteClassifier(tflite)
        seq_len = int(runner.inputs[0]["shape"][-1])
        work = tempfile.mkdtemp(prefix="textclf_")
        if len(runner.inputs) == 1:  # MediaPipe's regex tokenizer: words looked up as written
            pairs = vocab_io.parse_token_ids(files[md.VOCAB_FILE], f"{tflite}: {md.VOCAB_FILE}")
            tokenizer = tok.RegexTokenizer(dict(pairs), seq_len, False)
        elif len(runner.inputs) == 3:  # MediaPipe's BERT tokenizer lower-cases
            tokens = vocab_io.parse_wordpiece(files[md.VOCAB_FILE], f"{tflite}: {md.VOCAB_FILE}",
                                              tok.BERT_REQUIRED_TOKENS)
            tokenizer = tok.BertTokenizer.from_tokens(tokens, seq_len, do_lower_case=True)
        else:
            raise ConfigError(f"{tflite}: {len(runner.inputs)} inputs; a text classifier has 1 (token ids) "
                              "or 3 (BERT)")
        # Our exports record their architecture; another exporter's model is named by its inputs.
        architecture = md.producer(model_bytes).get("architecture") or (
            "awe" if len(runner.inputs) == 1 else "bert")
        self = cls(architecture, label_names, tokenizer, tflite_path=tflite,
                   export_dir=os.path.dirname(os.path.abspath(tflite)), work_dir=work)
        self._tflite_runner = runner
        self._base_meta = {"architecture": architecture, "seq_len": seq_len, "label_names": label_names,
                           "do_lower_case": tokenizer.do_lower_case,
                           "features": list(tokenizer.feature_names) + [tokenized.LENGTH, tokenized.LABEL]}
        weakref.finalize(self, shutil.rmtree, work, True)
        return self

    # -- properties ----------------------------------------------------------------------------

    @property
    def label_names(self) -> List[str]:
        return list(self._label_names)

    @property
    def export_dir(self) -> str:
        return self._export_dir

    @property
    def model_dir(self) -> str:
        """The trained model folder (model.json + weights.h5): what a distilled model's `teacher` takes."""
        if self._model is None:
            raise ConfigError("a loaded .tflite classifier has no trained model folder")
        return os.path.join(self._work_dir, "model")

    @property
    def keras_model(self):
        """The trained Keras model (None for a loaded .tflite)."""
        return self._model

    def summary(self) -> None:
        if self._model is None:
            raise ConfigError("a loaded .tflite classifier has no Keras summary")
        self._model.summary()

    # -- scoring -------------------------------------------------------------------------------

    def _tokenize(self, data: Dataset, strict: bool = True) -> str:
        folder = tempfile.mkdtemp(prefix="data_", dir=self._work_dir)
        tokenized.write_tokenized(folder, self._tokenizer, data.texts,
                                  _label_ids(data, self._label_names, strict), dict(self._base_meta, split="data"))
        return folder

    def evaluate(self, data: Dataset, batch_size: int = 32) -> EvaluationResult:
        """`[loss, accuracy]` (plus `.metrics`) with the metrics code of the pipeline's evaluate."""
        from components.metrics import classification_metrics

        folder = self._tokenize(data)
        try:
            if self._model is not None:
                from components.evaluate import predict_tokenized
                probs, labels = predict_tokenized(self._model, self._info, folder, batch_size)
                metrics = classification_metrics(labels, probs, self._label_names)
            else:
                from components.tflite_eval import evaluate_tflite
                metrics = evaluate_tflite(self._tflite_path, folder)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        metrics["architecture"] = self.architecture
        return EvaluationResult(metrics)

    def predict_scores(self, texts: Sequence[str], batch_size: int = 256):
        """Class probabilities [len(texts), num_classes], columns in `label_names` order."""
        import numpy as np

        texts = list(texts)
        if not texts:
            return np.zeros((0, len(self._label_names)), np.float32)
        chunks = []
        for start in range(0, len(texts), batch_size):
            encoded, _ = self._tokenizer.encode_features(texts[start:start + batch_size])
            features = {name: encoded[name] for name in self._tokenizer.feature_names}
            if self._model is not None:
                single = len(self._model.inputs) == 1
                inputs = features[self._tokenizer.feature_names[0]] if single else features
                chunks.append(self._model(inputs, training=False).numpy())
            else:
                rows = len(next(iter(features.values())))
                chunks.append(self._tflite_runner.predict(
                    [{k: v[i] for k, v in features.items()} for i in range(rows)]))
        return np.concatenate(chunks).astype(np.float32)

    def predict(self, texts: Union[str, Sequence[str]], batch_size: int = 256
                ) -> Union[Prediction, List[Prediction]]:
        """Top label and scores per text; one `Prediction` for one string, else a list."""
        single = isinstance(texts, (str, bytes))
        probs = self.predict_scores([texts] if single else texts, batch_size)
        predictions = []
        for row in probs:
            scores = {name: float(p) for name, p in zip(self._label_names, row)}
            best = int(row.argmax())
            predictions.append(Prediction(self._label_names[best], float(row[best]), scores))
        return predictions[0] if single else predictions

    # -- export --------------------------------------------------------------------------------

    def _float_export_dir(self) -> str:
        """The export step's folder (SavedModel, float .tflite with metadata), made once."""
        if not self._float_export:
            from components.export import export_keras_model
            folder = os.path.join(self._work_dir, "export")
            result = export_keras_model(self._model, self._info, self._vocab_dir, folder)
            for message in result.get("warnings", []):
                warnings.warn(message, stacklevel=3)
            self._float_export = folder
        return self._float_export

    def export_model(self, model_name: str = DEFAULT_MODEL_NAME,
                     quantization_config: Optional[QuantizationConfig] = None) -> str:
        """Writes `export_dir/model_name`, a MediaPipe-ready .tflite (labels and vocabulary packed),
        quantized per `quantization_config`; returns its path."""
        from components import options as opts

        config = quantization_config
        if isinstance(config, dict):
            config = QuantizationConfig.from_dict(config)
        if config is not None and not isinstance(config, opts.QuantizationConfig):
            raise ConfigError(f"quantization_config must be a QuantizationConfig, got {type(config).__name__}")
        quantize = config is not None and config.mode != "none"
        if self._model is None:
            if quantize:
                raise ConfigError("a loaded .tflite cannot be re-quantized; quantize when exporting "
                                  "the model made by TextClassifier.create")
            source = self._tflite_path
        else:
            float_dir = self._float_export_dir()
            source = os.path.join(float_dir, DEFAULT_MODEL_NAME)
            if quantize:
                from components.tflite_quantize import quantize_model
                representative = self._train_tokenized
                data = getattr(config, "representative_data", None)
                if config.mode == "int8" and data is not None:
                    representative = self._tokenize(data, strict=False)
                output = os.path.join(self._work_dir, "quantized", config.mode)
                shutil.rmtree(output, ignore_errors=True)
                quantize_model(float_dir, config, output, representative_dir=representative)
                source = os.path.join(output, DEFAULT_MODEL_NAME)
        target = os.path.join(self._export_dir, model_name)
        os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
        if os.path.abspath(source) != os.path.abspath(target):
            shutil.copyfile(source, target)
        _LOG.info("exported %s", target)
        return target

    def export_labels(self, export_dir: str = "", label_filename: str = "labels.txt") -> str:
        """Writes the label names, one a line in id order; `export_dir` defaults to the model's."""
        return labels_io.write(export_dir or self._export_dir, self._label_names, label_filename)

    def __repr__(self) -> str:
        source = "keras" if self._model is not None else self._tflite_path
        return f"TextClassifier({self.architecture}, labels={self._label_names}, model={source})"
