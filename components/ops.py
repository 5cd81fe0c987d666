"""The kfp components: one per pipeline step, each a thin wrapper over library functions.

Component bodies run inside our image (or the current environment on the local runner), so
they import the installed package instead of carrying code. They are built by `make_ops`
rather than decorated at import time, so the image is a compile-time choice
(`python compile.py --image ...`). `cache_salt` takes part in each task's cache key: the
runners set it from the library's source and the local input files, so a changed library or
a rewritten input file is not answered from the cache.
"""


import os
from types import SimpleNamespace
from typing import List

from kfp import dsl
from kfp.dsl import (HTML, Artifact, ClassificationMetrics, Dataset, Input, Markdown, Metrics, Model,
                     Output)

DEFAULT_IMAGE = os.environ.get("TEXTCLF_IMAGE", "textclf-pipelines:latest")


def ingest_split(train: str, validation: str, test: str, csv_params: dict, split_options: dict,
                 cache_salt: str,
                 train_data: Output[Dataset], validation_data: Output[Dataset], test_data: Output[Dataset],
                 profile: Output[Artifact], profile_report: Output[Markdown], profile_metrics: Output[Metrics]):
    """Read and validate the labelled text, split it, and profile it."""
    import os
    from components.ingest import ingest
    from components.options import CSVParams, SplitOptions
    result = ingest(train, validation, test, CSVParams.from_dict(csv_params), SplitOptions.from_dict(split_options),
                    output_dirs={"train": train_data.path, "validation": validation_data.path,
                                 "test": test_data.path}, profile_dir=profile.path)
    with open(os.path.join(profile.path, "profile.md"), encoding="utf-8") as f:
        text = f.read()
    with open(profile_report.path, "w", encoding="utf-8") as f:
        f.write(text)
    outputs = {"train": train_data, "validation": validation_data, "test": test_data}
    for name, split in result["splits"].items():
        profile_metrics.log_metric(f"{name}_rows", split["rows"])
        outputs[name].metadata.update({"rows": split["rows"], "labels": split["labels"]})
    profile_metrics.log_metric("dropped_rows", result["dropped_rows"]["total"])
    profile_metrics.log_metric("num_classes", len(result["label_names"]))
    profile.metadata["cache_salt"] = cache_salt


def preprocess(architecture: str, awe_model_options: dict, bert_model_options: dict,
               beam_pipeline_args: List[str], cache_salt: str,
               train_data: Input[Dataset], validation_data: Input[Dataset], test_data: Input[Dataset],
               train_tokens: Output[Dataset], validation_tokens: Output[Dataset], test_tokens: Output[Dataset],
               vocab: Output[Artifact]):
    """Tokenize every split and build the vocabulary with Apache Beam."""
    from components.steps import preprocess_step
    summary = preprocess_step(architecture, awe_model_options, bert_model_options, beam_pipeline_args,
                              {"train": train_data.path, "validation": validation_data.path,
                               "test": test_data.path},
                              {"train": train_tokens.path, "validation": validation_tokens.path,
                               "test": test_tokens.path}, vocab.path)
    vocab.metadata.update({"architecture": architecture, "cache_salt": cache_salt})
    for name, artifact in (("train", train_tokens), ("validation", validation_tokens), ("test", test_tokens)):
        artifact.metadata.update(summary.get(name, {}))


def train(architecture: str, awe_model_options: dict, awe_hparams: dict, bert_model_options: dict,
          bert_hparams: dict, checkpoint_root: str, cache_salt: str,
          train_tokens: Input[Dataset], validation_tokens: Input[Dataset], vocab: Input[Artifact],
          model: Output[Model], training_metrics: Output[Metrics]):
    """Train one architecture, resuming from checkpoints when re-run."""
    from components.steps import train_step
    summary = train_step(architecture, awe_model_options, awe_hparams, bert_model_options, bert_hparams,
                         train_tokens.path, validation_tokens.path, vocab.path, model.path, checkpoint_root)
    model.metadata.update({"architecture": architecture, "best_epoch": summary["best_epoch"],
                           "cache_salt": cache_salt})
    for key in ("best_val_accuracy", "train_seconds", "best_epoch"):
        training_metrics.log_metric(key, summary[key])


def evaluate(cache_salt: str, model: Input[Model], test_tokens: Input[Dataset], evaluation: Output[Artifact],
             metrics: Output[Metrics], classification_metrics: Output[ClassificationMetrics]):
    """Evaluate the trained Keras model on the test split."""
    from components.evaluate import evaluate as run_evaluate
    from components.steps import log_classification
    result = run_evaluate(model.path, test_tokens.path, evaluation.path)
    log_classification(result, metrics, classification_metrics)
    evaluation.metadata.update({"architecture": result["architecture"], "cache_salt": cache_salt})


def export(cache_salt: str, model: Input[Model], vocab: Input[Artifact], exported: Output[Model]):
    """Export a float TFLite model with MediaPipe metadata, labels and vocabulary."""
    from components.steps import export_step
    result = export_step(model.path, vocab.path, exported.path)
    exported.metadata.update({k: v for k, v in result.items() if isinstance(v, (int, float, str))})
    exported.metadata["cache_salt"] = cache_salt


def quantize(quantization: dict, cache_salt: str, exported: Input[Model], train_tokens: Input[Dataset],
             quantized: Output[Model]):
    """Post-training quantization of the exported model, metadata carried over."""
    from components.steps import quantize_step
    result = quantize_step(exported.path, quantization, quantized.path, train_tokens.path)
    quantized.metadata.update({k: v for k, v in result.items() if isinstance(v, (int, float, str))})
    quantized.metadata["cache_salt"] = cache_salt


def tflite_evaluate(max_accuracy_drop: float, cache_salt: str, exported: Input[Model],
                    quantized: Input[Model], test_tokens: Input[Dataset], tflite_evaluation: Output[Artifact],
                    metrics: Output[Metrics]):
    """Evaluate float and quantized .tflite files with LiteRT; fail on too large an accuracy drop."""
    from components.steps import tflite_evaluate_step
    result = tflite_evaluate_step(exported.path, quantized.path, test_tokens.path, max_accuracy_drop,
                                  tflite_evaluation.path)
    for key, value in result["summary"].items():
        metrics.log_metric(key, value)
    tflite_evaluation.metadata["cache_salt"] = cache_salt


def benchmark(runs: int, cache_salt: str, exported: Input[Model], quantized: Input[Model],
              test_tokens: Input[Dataset], latency: Output[Artifact], metrics: Output[Metrics]):
    """Latency of each .tflite with LiteRT: p50/p90/p99 for 1 thread and all cores, size, memory."""
    from components.steps import benchmark_step
    result = benchmark_step(exported.path, quantized.path, test_tokens.path, runs, latency.path)
    for key, value in result["summary"].items():
        metrics.log_metric(key, value)
    latency.metadata["cache_salt"] = cache_salt


def report(min_accuracy: float, cache_salt: str, profile: Input[Artifact],
           models: Input[List[Model]], evaluations: Input[List[Artifact]],
           exports: Input[List[Model]], quantized_models: Input[List[Model]],
           tflite_evaluations: Input[List[Artifact]], latencies: Input[List[Artifact]],
           report_markdown: Output[Markdown], report_html: Output[HTML], deliverables: Output[Artifact],
           summary_metrics: Output[Metrics]):
    """The guide's benchmark table for this run, plots, profile, and the deliverables folder."""
    from components.report import build_report
    summary = build_report(profile.path, [m.path for m in models], [e.path for e in evaluations],
                           [e.path for e in exports], [q.path for q in quantized_models],
                           [t.path for t in tflite_evaluations], [l.path for l in latencies],
                           min_accuracy, report_markdown.path, report_html.path, deliverables.path)
    for arch, row in summary["models"].items():
        summary_metrics.log_metric(f"{arch}_accuracy", row["accuracy"])
        summary_metrics.log_metric(f"{arch}_model_bytes", row["model_bytes"])
        summary_metrics.log_metric(f"{arch}_p50_ms_1_thread", row["p50_ms_1_thread"])
    deliverables.metadata["cache_salt"] = cache_salt


def publish(export_dir: str, deliverables: Input[Artifact]) -> str:
    """Copy the deliverables folder to `export_dir` (local path or gs://)."""
    from components.storage import upload_tree
    written = upload_tree(deliverables.path, export_dir)
    print(f"published {len(written)} files to {export_dir}", flush=True)
    return export_dir


STEPS = (ingest_split, preprocess, train, evaluate, export, quantize, tflite_evaluate, benchmark, report,
         publish)


def make_ops(image: str = DEFAULT_IMAGE) -> SimpleNamespace:
    """kfp components for every step, all running in `image`."""
    return SimpleNamespace(**{
        fn.__name__: dsl.component(fn, base_image=image, install_kfp_package=False) for fn in STEPS})
