"""The step glue every kfp component calls, run as plain functions on folders under tmp_path, and the
precedence of pipeline defaults, a config file and flags."""

import json
import os

from conftest import sentiment_rows, write_text

from components import steps
from pipelines.cli import build_parser


def _csv(rows):
    return "text,label\n" + "".join(f"{text},{'pos' if label == '1' else 'neg'}\n" for text, label in rows)


def test_steps_take_an_awe_model_from_a_file_to_a_report(tmp_path):
    train = write_text(tmp_path / "train.csv", _csv(sentiment_rows(30, seed=1)))
    folder = {name: str(tmp_path / name) for name in (
        "train", "validation", "test", "profile", "tokens_train", "tokens_validation", "tokens_test", "vocab",
        "model", "evaluation", "export", "quantized", "tflite", "latency", "results", "deliverables")}
    ingested = steps.ingest_step(train, "", "", {"text_column": "text"}, {"validation_fraction": 0.2,
                                                                          "test_fraction": 0.2, "seed": 1},
                                 {n: folder[n] for n in ("train", "validation", "test")}, folder["profile"],
                                 str(tmp_path / "profile_copy.md"))
    assert ingested["metrics"]["train_rows"] == 36 and ingested["metrics"]["num_classes"] == 2
    assert ingested["split_metadata"]["test"]["rows"] == 12
    assert (tmp_path / "profile_copy.md").read_text().startswith("# Data profile")

    options = {"vocab_size": 100}
    summary = steps.preprocess_step("awe", options, [], {n: folder[n] for n in ("train", "validation", "test")},
                                    {n: folder[f"tokens_{n}"] for n in ("train", "validation", "test")},
                                    folder["vocab"])
    assert summary["seq_len_fitted"] and summary["splits"]["train"]["num_examples"] == 36
    trained = steps.train_step("awe", options, {"epochs": 6, "batch_size": 8}, folder["tokens_train"],
                               folder["tokens_validation"], folder["vocab"], folder["model"])
    assert set(trained["metrics"]) == {"best_val_accuracy", "train_seconds", "best_epoch"}
    assert trained["picked"]["seq_len"] == summary["seq_len"] and "learning_rate" in trained["picked"]
    evaluation = steps.evaluate_step(folder["model"], folder["tokens_test"], folder["evaluation"],
                                     folder["tokens_validation"])
    assert {"accuracy", "macro_f1", "balanced_accuracy", "roc_auc", "f1_pos"} <= set(
        steps.classification_scalars(evaluation))
    assert evaluation["majority"]["validation"]["balanced_accuracy"] == 0.5
    exported = steps.export_step(folder["model"], folder["vocab"], folder["export"])
    assert steps.artifact_metadata(exported)["architecture"] == "awe"
    assert not any(os.path.isabs(v) for v in steps.artifact_metadata(exported).values() if isinstance(v, str))
    steps.quantize_step(folder["export"], {"mode": "dynamic"}, folder["quantized"], folder["tokens_train"])
    checked = steps.tflite_evaluate_step(folder["export"], folder["quantized"], folder["tokens_test"], 100.0,
                                         folder["tflite"])
    assert set(checked["summary"]) >= {"float_accuracy", "quantized_accuracy"}
    timed = steps.benchmark_step(folder["export"], folder["quantized"], folder["tokens_test"], 5, folder["latency"])
    assert timed["summary"]["float_p50_ms_1_thread"] > 0
    assert "path" not in json.dumps(json.load(open(os.path.join(folder["latency"], "latency.json"))))
    steps.collect_step("awe", folder["model"], folder["evaluation"], folder["export"], folder["quantized"],
                       folder["tflite"], folder["latency"], folder["results"])
    report = steps.report_step(folder["profile"], folder["results"], 0.0, str(tmp_path / "r.md"),
                               str(tmp_path / "r.html"), folder["deliverables"])
    assert set(report["metrics"]) == {"awe_accuracy", "awe_model_bytes", "awe_p50_ms_1_thread"}
    written = steps.publish_step(folder["deliverables"], str(tmp_path / "published"))
    assert str(tmp_path / "published" / "summary.json") in written


def _parse(*argv):
    from pipelines.arguments import pipeline_arguments
    return pipeline_arguments(build_parser().parse_args(["run", *argv]))


def test_flags_override_the_config_which_overrides_the_defaults(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("csv_params: {text_column: body, delimiter: ';'}\nawe_hparams: {epochs: 4, batch_size: 64}\n"
                      "min_accuracy: 0.5\nmodels: [awe]\n")
    values = _parse("--config", str(config))
    assert values["csv_params"]["text_column"] == "body" and values["csv_params"]["delimiter"] == ";"
    assert values["csv_params"]["label_column"] == "label"  # the pipeline default survives
    assert values["awe_hparams"] == {**values["awe_hparams"], "epochs": 4, "batch_size": 64}
    assert values["min_accuracy"] == 0.5 and values["models"] == ["awe"]

    values = _parse("--config", str(config), "--text-column", "review", "--epochs", "2", "--min-accuracy", "0.6",
                    "--models", "awe,bert")
    assert values["csv_params"]["text_column"] == "review" and values["csv_params"]["delimiter"] == ";"
    assert values["awe_hparams"]["epochs"] == 2 and values["awe_hparams"]["batch_size"] == 64
    assert values["bert_hparams"]["epochs"] == 2
    assert values["min_accuracy"] == 0.6 and values["models"] == ["awe", "bert"]


def test_build_arguments_leave_the_pipeline_only_its_parameters(tmp_path):
    from pipelines.arguments import split_build_arguments
    models, resources, teacher, values = split_build_arguments(
        {"models": ["awe"], "resources": {"train": {"cpu": "4"}}, "awe_hparams": {"epochs": 3},
         "bert_hparams": {"epochs": 1}, "min_accuracy": 0.5})
    assert models == ["awe"] and resources == {"train": {"cpu": "4"}} and teacher == ""
    assert values == {"awe_hparams": {"epochs": 3}, "min_accuracy": 0.5}  # no bert branch, no bert_hparams
    # a student brings its teacher's branch, unless a trained teacher is given
    models, _, teacher, values = split_build_arguments({"models": ["distilled"], "bert_hparams": {"epochs": 1}})
    assert models == ["distilled"] and "bert_hparams" in values
    _, _, teacher, values = split_build_arguments({"models": ["distilled"], "teacher": "/t", "bert_hparams": {}})
    assert teacher == "/t" and "bert_hparams" not in values
