"""The report and its gates on a results folder made from a real tiny AWE export, and the step
glue around it, without kfp."""

import json
import os
import shutil

import pytest
from tflite_fixtures import make_awe

from components import run_results, steps
from components.report import baseline_check, build_report, markdown_to_html, top_confusions


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """collect_step's folder for one architecture, from the fixture's model, export, quantization,
    evaluation, TFLite evaluation and latency folders."""
    root = tmp_path_factory.mktemp("report")
    awe = make_awe(str(root / "awe"))
    model_dir = awe["model_dir"]
    with open(os.path.join(model_dir, "training.json"), "w") as f:
        json.dump({"train_seconds": 1.5, "best_epoch": 3, "train_label_counts": {"negative": 60, "positive": 50},
                   "history": [{"epoch": 1, "loss": 0.7, "accuracy": 0.5, "val_loss": 0.6, "val_accuracy": 0.6}],
                   "data_warnings": ["3 of 120 train texts (2%) tokenize to nothing"]}, f)
    out = {name: str(root / name) for name in ("evaluation", "quantized", "tflite", "latency", "results")}
    steps.evaluate_step(model_dir, awe["test_dir"], out["evaluation"], awe["train_dir"])
    steps.quantize_step(awe["export_dir"], {"mode": "dynamic"}, out["quantized"], awe["train_dir"])
    steps.tflite_evaluate_step(awe["export_dir"], out["quantized"], awe["test_dir"], 100.0, out["tflite"])
    steps.benchmark_step(awe["export_dir"], out["quantized"], awe["test_dir"], 5, out["latency"])
    steps.collect_step("awe", model_dir, out["evaluation"], awe["export_dir"], out["quantized"], out["tflite"],
                       out["latency"], out["results"])
    return root, out["results"]


def _build(root, results_dir, tag, min_accuracy=0.0, **gates):
    folder = root / tag
    summary = build_report(str(root / "no-profile"), results_dir, min_accuracy, markdown_path=str(folder) + ".md",
                           html_path=str(folder) + ".html", deliverables_dir=str(folder), **gates)
    return summary, (folder / "report.md").read_text(), folder


def test_evaluation_carries_validation_and_majority_figures(results):
    _, results_dir = results
    evaluation = run_results.read(results_dir)["awe"]["evaluation"]
    assert evaluation["majority"]["test"]["label"] == "negative"  # 60 of 110 training rows
    assert evaluation["majority"]["validation"]["balanced_accuracy"] == 0.5
    assert evaluation["validation"]["balanced_accuracy"] > 0.9


def test_a_model_that_clears_the_gates_is_published(results):
    root, results_dir = results
    summary, report, folder = _build(root, results_dir, "ok", min_accuracy=0.5)
    row = summary["models"]["awe"]
    assert row["published"] and row["beats_majority"] and row["baseline"]["passed"]
    assert summary["baseline_gate"] == {"metric": "balanced_accuracy", "split": "validation", "margin": 0.05,
                                        "publish_below_baseline": False}
    for name in ("model.tflite", "model_float.tflite", "labels.txt", "vocab.txt", "metrics.json"):
        assert (folder / "awe" / name).stat().st_size > 0, name
    assert "Against always answering the training majority `negative`" in report and "beats it" in report
    assert "Warning: 3 of 120 train texts (2%) tokenize to nothing." in report
    assert "| Average Word Embedding |" in report


def test_the_gates_withhold_publishing_and_say_why(results):
    root, results_dir = results
    summary, report, folder = _build(root, results_dir, "strict", min_accuracy=1.01)
    row = summary["models"]["awe"]
    assert not row["published"] and "below min_accuracy 1.0100" in row["not_published_because"]
    assert not (folder / "awe").exists() and "**Not published**" in report

    chance = root / "chance"
    shutil.copytree(results_dir, chance)
    metrics_path = chance / "awe" / "metrics.json"
    metrics = json.loads(metrics_path.read_text())
    metrics["validation"]["balanced_accuracy"] = 0.52  # within 0.05 of always answering "negative"
    metrics_path.write_text(json.dumps(metrics))
    summary, report, folder = _build(root, str(chance), "chance-report")
    row = summary["models"]["awe"]
    assert not row["published"] and not row["beats_majority"]
    assert "does not beat the majority-class predictor's 0.5000 by 0.05" in row["not_published_because"]
    assert "**does not beat it**" in report and not (folder / "awe").exists()
    summary, _, folder = _build(root, str(chance), "chance-asked", publish_below_baseline=True)
    assert summary["models"]["awe"]["published"] and (folder / "awe" / "model.tflite").exists()
    assert summary["models"]["awe"]["beats_majority"] is False  # still flagged


def test_baseline_check_without_figures_is_not_a_failure():
    assert baseline_check({}, 0.05) == {"checked": False}
    check = baseline_check({"validation": {"balanced_accuracy": 0.3},
                            "majority": {"validation": {"balanced_accuracy": 0.2, "label": "x"}}}, 0.05)
    assert check["passed"] and check["majority_label"] == "x"


def test_many_classes_get_a_readable_plot_and_a_confusion_list(results, tmp_path):
    from components.report import _plot_confusion
    labels = [f"c{i}" for i in range(200)]
    matrix = [[0] * 200 for _ in range(200)]
    matrix[3][7], matrix[5][5], matrix[9][1] = 12, 40, 5
    _plot_confusion(matrix, labels, "200 classes", str(tmp_path / "m.png"))
    from PIL import Image
    width, height = Image.open(tmp_path / "m.png").size
    assert max(width, height) <= 1000  # about 10 inches at 80 dpi, whatever the class count
    assert top_confusions(matrix, labels, 2) == [{"true": "c3", "predicted": "c7", "count": 12},
                                                 {"true": "c9", "predicted": "c1", "count": 5}]


def test_html_renders_markdown_with_inline_code_and_images(tmp_path):
    from PIL import Image
    Image.new("RGB", (4, 4)).save(tmp_path / "p.png")
    page = markdown_to_html("# Title\n\nUse `model.tflite`.\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n![x](plots/p.png)\n",
                            str(tmp_path))
    assert "<code>model.tflite</code>" in page and "`" not in page
    assert "<table>" in page and "<td>1</td>" in page
    assert 'src="data:image/png;base64,' in page
