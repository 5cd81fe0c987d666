"""Quantization keeps metadata and MediaPipe compatibility; .tflite evaluation, the quality gate,
and the shared numpy metrics."""

import os

import numpy as np
import pytest
from tflite_fixtures import LABELS, PROBE_TEXTS, make_awe, make_bert, mediapipe_classifier, mediapipe_scores

from components import metadata as md
from components.errors import ConfigError, QualityGateError
from components.metrics import classification_metrics
from components.options import QuantizationConfig
from components.tflite_eval import compare_models, evaluate_tflite
from components.tflite_quantize import quantize_model

MODES = ("dynamic", "float16", "int8")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Both tiny models, each quantized in every mode."""
    result = {}
    # wordvec_dim 32 gives the AWE a 32x32 layer, big enough for dynamic-range quantization
    for arch, make in (("awe", lambda root: make_awe(root, wordvec_dim=32)), ("bert", make_bert)):
        root = str(tmp_path_factory.mktemp(arch))
        fixture = make(root)
        fixture["quantized"] = {
            mode: quantize_model(fixture["export_dir"], QuantizationConfig(mode=mode),
                                 os.path.join(root, f"quant_{mode}"), representative_dir=fixture["train_dir"])
            for mode in MODES}
        result[arch] = fixture
    return result


def _read(path):
    with open(path, "rb") as f:
        return f.read()


@pytest.mark.parametrize("arch", ["awe", "bert"])
@pytest.mark.parametrize("mode", MODES)
def test_quantized_model_keeps_parent_metadata(models, arch, mode):
    fixture = models[arch]
    parent, result = _read(fixture["export"]["tflite"]), fixture["quantized"][mode]
    child = _read(result["tflite"])
    assert result["model_bytes"] == len(child) and result["quantization"] == mode
    assert md.read_metadata(child)["metadata"] == md.read_metadata(parent)["metadata"]
    assert md.associated_files(child) == md.associated_files(parent)
    out_dir = os.path.dirname(result["tflite"])
    assert {"labels.txt", "model.tflite", "quantization.json", "vocab.txt"} <= set(os.listdir(out_dir))

    weights = result["tensors"]["weight_bytes"]
    if mode == "dynamic" and arch == "awe":
        assert weights.get("int8", 0) >= 32 * 32
    if mode == "float16":
        assert "float16" in weights and "float32" not in weights
    if mode == "int8":
        assert result["representative_examples"] > 0
        assert weights.get("int8", 0) > 0 and "float32" not in weights
        assert "int8" in result["tensors"]["activation_tensors"]


@pytest.mark.parametrize("arch", ["awe", "bert"])
def test_mediapipe_loads_quantized_models(models, arch):
    fixture = models[arch]
    with mediapipe_classifier(fixture["export"]["tflite"]) as float_model:
        expected = {t: mediapipe_scores(float_model, t) for t in PROBE_TEXTS[:6]}
    for mode in ("dynamic", "int8"):
        with mediapipe_classifier(fixture["quantized"][mode]["tflite"]) as quantized:
            for text, scores in expected.items():
                got = mediapipe_scores(quantized, text)
                assert set(got) == set(LABELS)
                if abs(scores["positive"] - scores["negative"]) > 0.2:  # clear cases keep their class
                    assert max(got, key=got.get) == max(scores, key=scores.get), (mode, text)


def test_int8_needs_representative_data(models, tmp_path):
    with pytest.raises(ConfigError, match="representative"):
        quantize_model(models["awe"]["export_dir"], QuantizationConfig.for_int8(), str(tmp_path / "q"))


def test_not_an_export_folder(tmp_path):
    with pytest.raises(ConfigError, match="export folder"):
        quantize_model(str(tmp_path), QuantizationConfig(), str(tmp_path / "q"))


def test_evaluate_tflite_matches_keras(models):
    fixture = models["awe"]
    metrics = evaluate_tflite(fixture["export"]["tflite"], fixture["test_dir"])
    keras_probs = fixture["predict"](fixture["test_texts"])
    expected = classification_metrics(fixture["test_labels"], keras_probs, LABELS)
    assert metrics["num_examples"] == len(fixture["test_labels"])
    assert metrics["accuracy"] == pytest.approx(expected["accuracy"])
    assert metrics["loss"] == pytest.approx(expected["loss"], abs=1e-4)
    assert metrics["confusion_matrix"] == expected["confusion_matrix"]
    assert metrics["accuracy"] > 0.8 and metrics["roc_auc"] > 0.9
    assert metrics["model_bytes"] == os.path.getsize(fixture["export"]["tflite"])


@pytest.mark.parametrize("arch", ["awe", "bert"])
def test_compare_float_and_quantized(models, arch):
    fixture = models[arch]
    result = compare_models(fixture["export"]["tflite"], fixture["quantized"]["int8"]["tflite"],
                            fixture["test_dir"], max_accuracy_drop=5.0)
    assert result["passed"] and result["num_examples"] == len(fixture["test_labels"])
    for key in ("accuracy", "loss", "macro_f1", "roc_auc", "per_class", "confusion_matrix"):
        assert key in result["float"] and key in result["quantized"]
    assert 0.0 <= result["top_class_changed_fraction"] <= 0.2
    assert result["accuracy_change_points"] == pytest.approx(
        100 * (result["quantized"]["accuracy"] - result["float"]["accuracy"]))


def test_quality_gate_fails_on_a_much_worse_model(models, tmp_path):
    """A model with its output columns swapped (always the wrong class) must fail the gate."""
    from components.export import export_keras_model
    from components.model_io import load_trained

    fixture = models["awe"]
    model, info = load_trained(fixture["model_dir"])
    layer = model.get_layer("out")
    kernel, bias = layer.get_weights()
    layer.set_weights([kernel[:, ::-1], bias[::-1]])
    worse = export_keras_model(model, info, fixture["vocab_dir"], str(tmp_path / "worse"))
    with pytest.raises(QualityGateError, match="accuracy points") as caught:
        compare_models(fixture["export"]["tflite"], worse["tflite"], fixture["test_dir"], max_accuracy_drop=1.0)
    result = caught.value.result
    assert not result["passed"] and result["accuracy_change_points"] < -50
    assert result["top_class_changed_fraction"] > 0.9


def test_classification_metrics_known_values():
    m = classification_metrics([0, 1, 1, 0], [[.9, .1], [.2, .8], [.6, .4], [.5, .5]], ["a", "b"])
    assert m["accuracy"] == 0.75
    assert m["confusion_matrix"] == [[2, 0], [1, 1]]
    assert m["per_class"]["a"] == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2})
    assert m["per_class"]["b"]["f1"] == pytest.approx(2 / 3)
    assert m["macro_f1"] == pytest.approx((0.8 + 2 / 3) / 2)
    assert m["roc_auc"] == pytest.approx(0.75)
    assert m["loss"] == pytest.approx(-np.mean(np.log([.9, .8, .4, .5])))
    # scores of class b: .8 (pos), .5 (neg), .4 (pos), .1 (neg)
    assert m["roc_curve"] == {"fpr": [0, 0, .5, .5, 1], "tpr": [0, .5, .5, 1, 1],
                              "thresholds": pytest.approx([1.8, .8, .5, .4, .1])}
    fpr, tpr = m["roc_curve"]["fpr"], m["roc_curve"]["tpr"]
    assert np.trapezoid(tpr, fpr) == pytest.approx(m["roc_auc"])


def test_classification_metrics_edge_cases():
    tied = classification_metrics([0, 1, 0, 1], [[.5, .5]] * 4, ["a", "b"])
    assert tied["roc_auc"] == pytest.approx(0.5)
    one_class = classification_metrics([1, 1], [[.2, .8], [.6, .4]], ["a", "b"])
    assert one_class["roc_auc"] is None and one_class["roc_curve"] is None
    assert one_class["per_class"]["a"]["precision"] == 0.0
    many = classification_metrics(np.arange(1000) % 2, np.c_[np.linspace(1, 0, 1000), np.linspace(0, 1, 1000)],
                                  ["a", "b"])
    assert len(many["roc_curve"]["fpr"]) <= 201 and many["roc_curve"]["tpr"][-1] == 1.0
    three = classification_metrics([0, 1, 2], np.eye(3), ["x", "y", "z"])
    assert three["accuracy"] == 1.0 and "roc_auc" not in three and three["macro_f1"] == 1.0
    assert classification_metrics([0], [[0.0, 1.0]], ["a", "b"])["loss"] == pytest.approx(-np.log(1e-7))
    with pytest.raises(ConfigError, match="probs must be"):
        classification_metrics([0, 1], [[1.0, 0.0]], ["a", "b"])
