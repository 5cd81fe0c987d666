"""The whole DAG on kfp's local runner: tiny data, both architectures, a tiny BERT encoder.

This is the CI-sized end-to-end run; it checks every deliverable exists and the summary's
figures are sane. A second invocation with caching on must reuse the cached steps.
"""

import glob
import json
import os

import pytest

from tests.conftest import sentiment_rows, write_text
from tests.fixtures_bert import make_tiny_hf_checkpoint


def _csv(rows):
    return "review,label\n" + "".join(f"{text},{'pos' if label == '1' else 'neg'}\n" for text, label in rows)


@pytest.fixture(scope="module")
def e2e_run(tmp_path_factory):
    from pipelines.local import run_local
    root = tmp_path_factory.mktemp("e2e")
    os.environ["TEXTCLF_CACHE"] = str(root / "cache")
    train = write_text(root / "train.csv", _csv(sentiment_rows(40, seed=1)))
    dev = write_text(root / "dev.csv", _csv(sentiment_rows(8, seed=2)))
    encoder = make_tiny_hf_checkpoint(root / "encoder", scale=0.05)
    arguments = {
        "train": train, "validation": dev, "test": "",
        "csv_params": {"text_column": "review", "label_column": "label"},
        "models": ["awe", "bert"],
        "awe_model_options": {"seq_len": 16, "vocab_size": 200},
        "awe_hparams": {"epochs": 8, "batch_size": 8, "learning_rate": 0.01},
        "bert_model_options": {"seq_len": 16, "encoder": encoder},
        "bert_hparams": {"epochs": 6, "batch_size": 8, "learning_rate": 0.005},
        "benchmark_runs": 20,
        "max_accuracy_drop": 50.0,  # 16 test texts: one changed prediction is 6 points
        "export_dir": str(root / "export"),
    }
    run_local(arguments, pipeline_root=str(root / "pipeline_root"), enable_caching=True)
    return root, arguments


def test_every_deliverable_exists(e2e_run):
    root, _ = e2e_run
    export = root / "export"
    for arch in ("awe", "bert"):
        for name in ("model.tflite", "model_float.tflite", "labels.txt", "vocab.txt", "metrics.json"):
            assert (export / arch / name).stat().st_size > 0, f"{arch}/{name}"
        assert (export / arch / "labels.txt").read_text().split() == ["neg", "pos"]
    for name in ("summary.json", "report.md", "report.html", "profile.md",
                 "plots/awe_confusion_matrix.png", "plots/bert_training_curves.png"):
        assert (export / name).stat().st_size > 0, name


def test_summary_figures_are_sane(e2e_run):
    root, _ = e2e_run
    summary = json.loads((root / "export" / "summary.json").read_text())
    assert set(summary["models"]) == {"awe", "bert"}
    for arch, row in summary["models"].items():
        assert 0.0 <= row["accuracy"] <= 1.0
        assert row["model_bytes"] == os.path.getsize(root / "export" / arch / "model.tflite")
        assert row["p50_ms_1_thread"] > 0 and row["p99_ms_1_thread"] >= row["p50_ms_1_thread"]
        assert row["published"] is True and row["quantization"] == "dynamic"
        # (tiny toy weights can fall under the converter's quantization threshold: not smaller)
        assert row["float_p50_ms_1_thread"] > 0 and row["float_model_bytes"] >= row["model_bytes"]
    # the toy task is easy: the AWE model must have learnt it
    assert summary["models"]["awe"]["accuracy"] >= 0.9
    report = (root / "export" / "report.md").read_text()
    assert "| Model architecture | Test accuracy | Model size | CPU 1 thread latency |" in report
    # each architecture: the delivered (quantized) row, then its float parent's
    assert report.count("| dynamic |") == 2 and report.count("| none (float, `model_float.tflite`) |") == 2


def test_rerun_is_served_from_cache(e2e_run, capfd):
    from pipelines.local import run_local
    root, arguments = e2e_run
    capfd.readouterr()
    run_local(dict(arguments, export_dir=str(root / "export2")), pipeline_root=str(root / "pipeline_root"),
              enable_caching=True)
    out = "".join(capfd.readouterr())
    assert "train" in out and "cache" in out.lower()
    # kfp's local runner makes a folder for each task it runs: only the uncached ones appear
    runs = sorted(glob.glob(os.path.join(str(root / "pipeline_root"), "textclf-text-classifier-*")))
    ran = set(os.listdir(runs[-1]))
    assert len(runs) == 2 and "benchmark" in ran
    assert not [task for task in ran if task.startswith(("ingest", "preprocess", "train", "evaluate", "export"))]
    summary = json.loads((root / "export2" / "summary.json").read_text())
    first = json.loads((root / "export" / "summary.json").read_text())
    assert summary["models"]["awe"]["accuracy"] == first["models"]["awe"]["accuracy"]
