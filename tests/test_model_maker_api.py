"""The Model Maker-compatible API: the guide's notebook, call for call, on our library.

Each architecture's test makes the guide's calls in the guide's order (only the import line and,
for BERT, a tiny offline encoder differ), then checks the deliverables with MediaPipe itself.
"""

import json
import math
import os

import numpy as np
import pytest
from conftest import sentiment_rows, write_text
from fixtures_bert import make_tiny_hf_checkpoint
from tflite_fixtures import mediapipe_classifier, mediapipe_scores

from components import quantization, text_classifier  # the one line that changes
from components.errors import ConfigError, LabelError

PROBES = ["the movie was great", "a terrible boring plot", "Great acting, wonderful story",
          "the film was DULL", "great", "Great", "GREAT"]


@pytest.fixture
def guide_dir(tmp_path, monkeypatch):
    """train.tsv / dev.tsv as the guide's SST-2 files (sentence<TAB>label); cwd is tmp_path, so
    the guide's relative export folders land there."""
    def tsv(rows):
        return "sentence\tlabel\n" + "".join(f"{text}\t{label}\n" for text, label in rows)

    write_text(tmp_path / "SST-2" / "train.tsv", tsv(sentiment_rows(24, seed=0)))
    write_text(tmp_path / "SST-2" / "dev.tsv", tsv(sentiment_rows(8, seed=1)))
    monkeypatch.chdir(tmp_path)
    return str(tmp_path / "SST-2")


def _check_deliverables(export_dir, model, label_names):
    tflite = os.path.join(export_dir, "model.tflite")
    labels = os.path.join(export_dir, "labels.txt")
    assert os.path.isfile(tflite) and os.path.isfile(labels)
    with open(labels, encoding="utf-8") as f:
        assert f.read().split("\n")[:-1] == label_names
    with mediapipe_classifier(tflite) as classifier:  # MediaPipe's TextClassifier loads it
        on_device = [mediapipe_scores(classifier, text) for text in PROBES]
    for scores in on_device:
        assert set(scores) == set(label_names)
    return tflite, on_device


def _guide_data(dir):
    csv_params = text_classifier.CSVParams(text_column='sentence', label_column='label', delimiter='\t')
    train_data = text_classifier.Dataset.from_csv(filename=os.path.join(dir, 'train.tsv'),
                                                  csv_params=csv_params)
    validation_data = text_classifier.Dataset.from_csv(filename=os.path.join(dir, 'dev.tsv'),
                                                       csv_params=csv_params)
    return train_data, validation_data


def test_average_word_embedding_guide_flow(guide_dir, tmp_path):
    train_data, validation_data = _guide_data(guide_dir)
    assert (train_data.size, train_data.num_classes, train_data.label_names) == (48, 2, ["0", "1"])

    supported_model = text_classifier.SupportedModels.AVERAGE_WORD_EMBEDDING_CLASSIFIER
    hparams = text_classifier.AverageWordEmbeddingHParams(epochs=10, batch_size=32, learning_rate=0,
                                                          export_dir="awe_exported_models")
    options = text_classifier.TextClassifierOptions(supported_model=supported_model, hparams=hparams)
    model = text_classifier.TextClassifier.create(train_data, validation_data, options)
    metrics = model.evaluate(validation_data)
    print(f'Test loss:{metrics[0]}, Test accuracy:{metrics[1]}')
    model.export_model()
    model.export_labels(export_dir=options.hparams.export_dir)

    assert math.isfinite(metrics[0]) and 0.0 <= metrics[1] <= 1.0
    assert metrics.metrics["num_examples"] == 16 and metrics.metrics["label_names"] == ["0", "1"]
    tflite, on_device = _check_deliverables(tmp_path / "awe_exported_models", model, ["0", "1"])

    # predict() agrees with MediaPipe whatever the casing: the default export packs the Title and
    # UPPER case spellings of its words (MediaPipe does not lower-case); load() scores as MediaPipe.
    predictions = model.predict(PROBES)
    assert all(isinstance(p.label, str) and p.scores[p.label] == p.score for p in predictions)
    for text, prediction, scores in zip(PROBES, predictions, on_device):
        np.testing.assert_allclose([prediction.scores[n] for n in "01"], [scores[n] for n in "01"],
                                   atol=1e-4, err_msg=text)
    great, title, upper = on_device[-3:]
    assert great == pytest.approx(title, abs=1e-6) and great == pytest.approx(upper, abs=1e-6)
    loaded = text_classifier.TextClassifier.load("awe_exported_models")
    assert loaded.label_names == ["0", "1"] and loaded.architecture == "awe"
    for prediction, scores in zip(loaded.predict(PROBES), on_device):
        np.testing.assert_allclose([prediction.scores[n] for n in "01"], [scores[n] for n in "01"],
                                   atol=1e-5)
    assert loaded.evaluate(validation_data)[1] == pytest.approx(metrics[1])

    # The work folder holds exactly what the Beam preprocessing step writes for the same splits.
    from components.preprocess import preprocess
    work = model._work_dir
    splits = {name: os.path.join(work, "splits", name) for name in ("train", "validation")}
    beam_out = {name: str(tmp_path / "beam" / name) for name in splits}
    preprocess("awe", splits, beam_out, str(tmp_path / "beam" / "vocab"), options.model_options)
    for ours, theirs in [(os.path.join(work, "vocab"), str(tmp_path / "beam" / "vocab"))] + [
            (os.path.join(work, "tokenized", name), beam_out[name]) for name in splits]:
        names = sorted(os.listdir(theirs))
        assert sorted(os.listdir(ours)) == names
        for name in names:
            with open(os.path.join(ours, name), "rb") as a, open(os.path.join(theirs, name), "rb") as b:
                if name == "meta.json":
                    mine, beams = json.load(a), json.load(b)
                    beams.pop("splits")
                    assert mine == beams
                else:
                    assert a.read() == b.read(), name

    # int8 calibrated on the dataset given to for_int8, as in Model Maker.
    int8 = model.export_model("model_int8.tflite",
                              quantization.QuantizationConfig.for_int8(train_data))
    with mediapipe_classifier(int8) as classifier:
        assert set(mediapipe_scores(classifier, PROBES[0])) == {"0", "1"}


def test_bert_guide_flow(guide_dir, tmp_path):
    train_data, validation_data = _guide_data(guide_dir)
    encoder = make_tiny_hf_checkpoint(tmp_path / "tiny_bert", scale=0.05)

    supported_model = text_classifier.SupportedModels.MOBILEBERT_CLASSIFIER
    hparams = text_classifier.BertHParams(epochs=2, batch_size=48, learning_rate=3e-5,
                                          export_dir="bert_exported_models")
    options = text_classifier.TextClassifierOptions(
        supported_model=supported_model, hparams=hparams,
        model_options=text_classifier.BertModelOptions(encoder=encoder, seq_len=16))
    bert_model = text_classifier.TextClassifier.create(train_data, validation_data, options)
    metrics = bert_model.evaluate(validation_data)
    quantization_config = quantization.QuantizationConfig.for_dynamic()
    bert_model.export_model(quantization_config=quantization_config)
    bert_model.export_labels(export_dir=options.hparams.export_dir)

    assert math.isfinite(metrics[0]) and 0.0 <= metrics[1] <= 1.0
    tflite, on_device = _check_deliverables(tmp_path / "bert_exported_models", bert_model, ["0", "1"])
    from components.tflite_quantize import tensor_summary
    with open(tflite, "rb") as f:
        assert "int8" in tensor_summary(f.read())["weight_bytes"]  # dynamic-range weights
    keras_scores = bert_model.predict(PROBES)
    for prediction, scores in zip(keras_scores, on_device):
        np.testing.assert_allclose([prediction.scores[n] for n in "01"], [scores[n] for n in "01"],
                                   atol=0.02)
    single = text_classifier.TextClassifier.load(tflite).predict(PROBES[0])
    np.testing.assert_allclose([single.scores[n] for n in "01"], [on_device[0][n] for n in "01"],
                               atol=1e-5)


def test_dataset_and_options_contracts(tmp_path):
    data = text_classifier.Dataset([f"text {i}" for i in range(30)], ["b"] * 20 + ["a"] * 10)
    first, rest = data.split(0.8)
    assert (first.size, rest.size) == (24, 6)
    assert sorted(first.labels).count("a") == 8 and rest.label_names == ["a", "b"]
    assert data.split(0.8)[0].texts == first.texts  # reproducible
    assert text_classifier.Dataset(["x"], [1], label_names=["0", "1"]).num_classes == 2
    with pytest.raises(LabelError):
        text_classifier.Dataset(["x"], ["2"], label_names=["0", "1"])

    with pytest.raises(ConfigError, match="BertHParams"):
        text_classifier.TextClassifierOptions(
            supported_model=text_classifier.SupportedModels.MOBILEBERT_CLASSIFIER,
            hparams=text_classifier.AverageWordEmbeddingHParams())
    defaults = text_classifier.TextClassifierOptions(supported_model="bert")
    assert defaults.model_options.encoder == "mobilebert" and defaults.hparams.epochs == 0  # 0: fitted to the data

    config = quantization.QuantizationConfig.for_int8(data)
    assert config.mode == "int8" and config.representative_data is data
    assert quantization.QuantizationConfig.from_json(config.to_json()) == config
    assert quantization.QuantizationConfig.for_float16().mode == "float16"

    train = text_classifier.Dataset(["good", "bad"], ["pos", "neg"])
    unseen = text_classifier.Dataset(["meh"], ["neutral"])
    options = text_classifier.TextClassifierOptions(
        supported_model=text_classifier.SupportedModels.AVERAGE_WORD_EMBEDDING_CLASSIFIER)
    with pytest.raises(LabelError, match="neutral"):
        text_classifier.TextClassifier.create(train, unseen, options)
