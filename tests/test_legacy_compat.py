"""Old exports and model folders still load: files made by commit 5494fdc (tests/data/legacy)."""

import json
import os
import shutil

import numpy as np
import pytest

LEGACY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "legacy")


@pytest.fixture(scope="module")
def expected():
    with open(os.path.join(LEGACY, "expected.json"), encoding="utf-8") as f:
        return json.load(f)


def _scores(classifier, texts):
    return np.asarray([[p.scores[name] for name in classifier.label_names] for p in classifier.predict(texts)])


def test_old_model_folder_rebuilds_with_the_old_scores(tmp_path, expected):
    from components import tokenizers as tok
    from components import vocabulary as vocab_io
    from components.model_io import load_trained

    model_dir = shutil.copytree(os.path.join(LEGACY, "model"), tmp_path / "model")
    model, info = load_trained(str(model_dir))
    assert info["label_names"] == expected["label_names"] and info["architecture"] == "awe"
    vocabulary = vocab_io.read_folder(os.path.join(LEGACY, "vocab"))  # no tokenizer.json back then
    assert vocabulary.format == vocab_io.TOKEN_IDS and vocabulary.do_lower_case
    tokenizer = tok.tokenizer_for(vocabulary, int(info["model_options"]["seq_len"]))
    ids, _ = tokenizer.encode_batch(expected["texts"])
    np.testing.assert_allclose(model.predict(ids, verbose=0), expected["keras_scores"], atol=1e-5)


def test_old_model_and_vocabulary_export_today(tmp_path, expected):
    from components.export import export_model
    from components.text_classifier import TextClassifier

    result = export_model(os.path.join(LEGACY, "model"), os.path.join(LEGACY, "vocab"), str(tmp_path / "export"))
    assert result["architecture"] == "awe" and result["label_names"] == expected["label_names"]
    classifier = TextClassifier.load(str(tmp_path / "export"))
    np.testing.assert_allclose(_scores(classifier, expected["texts"]), expected["keras_scores"], atol=1e-5)


def test_old_tflite_loads_and_predicts_as_the_old_keras_model(expected):
    from components.text_classifier import TextClassifier

    classifier = TextClassifier.load(os.path.join(LEGACY, "model.tflite"))
    assert classifier.label_names == expected["label_names"] and classifier.architecture == "awe"
    predictions = classifier.predict(expected["texts"])
    np.testing.assert_allclose(_scores(classifier, expected["texts"]), expected["keras_scores"], atol=1e-5)
    wanted = [expected["label_names"][int(np.argmax(row))] for row in expected["keras_scores"]]
    assert [p.label for p in predictions] == wanted
