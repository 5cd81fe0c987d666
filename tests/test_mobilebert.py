"""Model Maker's MobileBERT in both shapes it ships in, end to end and offline.

`mobilebert` is what Model Maker 0.2.1.4's MOBILEBERT_CLASSIFIER loads (a TF1 Hub module, fetched
from tfhub.dev in compressed form); `mobilebert_tiny` is the tarball earlier releases downloaded
(a Keras SavedModel under one root folder). Tiny encoders in exactly those layouts are served by
a stand-in for the download function, then each goes through the guide's Model Maker calls:
download and cache, training, the model folder round trip (model.json + weights.h5), export,
and MediaPipe's TextClassifier on the exported file.
"""

import os

import numpy as np
import pytest
from conftest import sentiment_rows
from fixtures_bert import make_mobilebert_tiny_tarball, make_tiny_tf1_hub_module, serve_archive, tar_folder
from tflite_fixtures import mediapipe_classifier, mediapipe_scores

from components import encoders, text_classifier

PROBES = ["the movie was great", "a terrible boring plot", "wonderful acting and a fine story",
          "the film was dull"]


@pytest.fixture(params=["mobilebert", "mobilebert_tiny"])
def served(request, tmp_path, monkeypatch):
    """(alias, the URL Model Maker downloads it from, the URLs our download was asked for)."""
    if request.param == "mobilebert":
        module = make_tiny_tf1_hub_module(tmp_path / "module", seed=3)
        archive = tar_folder(module, tmp_path / "module.tar.gz")
        url = encoders.hub_compressed_url(encoders.MOBILEBERT_URL)
    else:
        archive = make_mobilebert_tiny_tarball(tmp_path / "mobilebert_tiny.tar.gz", seed=3)
        url = encoders.MOBILEBERT_TINY_URL
    return request.param, url, serve_archive(monkeypatch, archive, [])


def _datasets():
    def dataset(rows):
        return text_classifier.Dataset([t for t, _ in rows], [label for _, label in rows])
    return dataset(sentiment_rows(24, seed=0)), dataset(sentiment_rows(8, seed=1))


def _scores(classifier, text):
    scores = mediapipe_scores(classifier, text)
    return [scores["0"], scores["1"]]


def _spread_probe_scores(model):
    """Sets the output layer so the probes get logit gaps of +-2 and +-1.

    A few steps on toy data leave every score near 0.5; agreement between Keras and MediaPipe
    means more when the scores compared are far apart.
    """
    import tf_keras as keras

    from components.tokenizers import BERT_FEATURES
    keras_model = model.keras_model
    encoded = model._tokenizer.encode_batch(PROBES)
    inputs = {k: encoded[k] for k in BERT_FEATURES}
    pooled = keras.Model(keras_model.inputs, keras_model.get_layer("dropout").output).predict(
        inputs, verbose=0).astype(np.float64)
    layer = keras_model.get_layer("output")
    kernel, bias = layer.get_weights()
    kernel = np.zeros_like(kernel)
    kernel[:, 1] = np.linalg.lstsq(pooled, np.array([2.0, -2.0, 1.0, -1.0]), rcond=None)[0]
    layer.set_weights([kernel.astype(np.float32), np.zeros_like(bias)])


def _encoder_moved(model, spec_dict):
    """Whether fine-tuning changed the encoder: its weights against a freshly built one's."""
    from components.encoders import EncoderSpec, build_encoder_layer
    fresh = build_encoder_layer(EncoderSpec.from_dict(spec_dict), 128, trainable=True)
    trained = model.keras_model.get_layer("encoder")
    assert [w.name for w in trained.weights] == [w.name for w in fresh.weights]
    return max(float(np.abs(a.numpy() - b.numpy()).max())
               for a, b in zip(trained.weights, fresh.weights))


def test_model_maker_api_trains_and_exports_mobilebert(served, tmp_path):
    alias, url, calls = served
    train_data, validation_data = _datasets()
    # `mobilebert` is the default: the guide's BertModelOptions() with nothing set.
    model_options = (text_classifier.BertModelOptions() if alias == "mobilebert"
                     else text_classifier.BertModelOptions(encoder=alias))
    assert model_options.seq_len == 0  # fitted to the data (at most Model Maker's 128)
    hparams = text_classifier.BertHParams(epochs=2, batch_size=16, learning_rate=1e-3,
                                          export_dir=str(tmp_path / "exported"))
    options = text_classifier.TextClassifierOptions(
        supported_model=text_classifier.SupportedModels.MOBILEBERT_CLASSIFIER,
        model_options=model_options, hparams=hparams)
    model = text_classifier.TextClassifier.create(train_data, validation_data, options)
    assert calls == [url]  # resolved several times, downloaded once

    model_dir = os.path.join(model._work_dir, "model")
    from components import model_io
    info = model_io.read_info(model_dir)
    recorded = info["encoder"]
    assert recorded["name"] == alias and recorded["handle"] == url.split("?")[0]
    assert recorded["kind"] == ("hub_tf1" if alias == "mobilebert" else "savedmodel")
    if alias == "mobilebert":
        assert (recorded["signature"], recorded["tags"], recorded["train_tags"]) == (
            "tokens", [], ["train"])
    assert len(model.training["history"]) == 2
    # The model loaded back from model.json + weights.h5 holds the fine-tuned encoder.
    assert _encoder_moved(model, recorded) > 1e-5
    assert 0.0 <= model.evaluate(validation_data)[1] <= 1.0

    _spread_probe_scores(model)
    model_io.save_trained(model_dir, model.keras_model, info["architecture"],
                          model_io.model_options_of(info), info["label_names"],
                          **{k: v for k, v in info.items() if k in ("encoder", "hparams")})
    tflite = model.export_model()
    keras_probs = model.predict_scores(PROBES)
    assert np.ptp(keras_probs[:, 1]) > 0.5, keras_probs
    with mediapipe_classifier(tflite) as classifier:
        on_device = np.array([_scores(classifier, text) for text in PROBES])
    np.testing.assert_allclose(on_device, keras_probs, atol=1e-4)
    loaded = text_classifier.TextClassifier.load(tflite)
    np.testing.assert_allclose(loaded.predict_scores(PROBES), on_device, atol=1e-5)

    # The pipeline's export step: a model rebuilt from model.json + weights.h5.
    from components.export import export_model
    export = export_model(model_dir, model._vocab_dir, str(tmp_path / "pipeline_export"))
    assert sorted(export["input_names"]) == ["input_mask", "input_type_ids", "input_word_ids"]
    assert export["seq_len"] == info["model_options"]["seq_len"] == model._tokenizer.seq_len < 128
    with mediapipe_classifier(export["tflite"]) as classifier:
        again = np.array([_scores(classifier, text) for text in PROBES])
    np.testing.assert_allclose(again, on_device, atol=1e-5)
