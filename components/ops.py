"""The kfp components: one per pipeline step, each a thin wrapper over `components.steps`.

Component bodies run inside our image (or the current environment on the local runner), so
they import the installed package instead of carrying code. They are built by `make_ops`
rather than decorated at import time, so the image is a compile-time choice
(`python compile.py --image ...`). `cache_salt` takes part in each task's cache key: the
runners set it from the library's source and the local input files, so a changed library or
a rewritten input file is not answered from the cache.
"""

import os
from types import SimpleNamespace
from typing import List, Optional

from kfp import dsl
from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Input, Markdown, Metrics, Model, Output

DEFAULT_IMAGE = os.environ.get("TEXTCLF_IMAGE", "textclf-pipelines:latest")


def ingest_split(train: str, validation: str, test: str, csv_params: dict, split_options: dict,
                 beam_pipeline_args: List[str], cache_salt: str,
                 train_data: Output[Dataset], validation_data: Output[Dataset], test_data: Output[Dataset],
                 profile: Output[Artifact], profile_report: Output[Markdown], profile_metrics: Output[Metrics]):
    """Reads and validates the labelled text, splits it and profiles it.

    Args:
        train: Training file: local path, gs://, http(s):// URL; ZIP#member picks a file in a zip.
        validation: Validation file; empty: carved out of train.
        test: Test file; empty: the validation split (or carved out of train with neither).
        csv_params: How to read the files (CSVParams fields: text_column, label_column, delimiter, ...).
        split_options: Fractions and seed of the splits carved out of train (SplitOptions fields).
        beam_pipeline_args: Preprocessing's Beam arguments; when they name a --runner, ingest runs
            on that runner too (the same outputs), else in this container.
        cache_salt: Changes with the library's code and local inputs, so stale cache hits cannot happen.
    """
    from components.steps import ingest_step, log_metrics
    result = ingest_step(train, validation, test, csv_params, split_options,
                         {"train": train_data.path, "validation": validation_data.path, "test": test_data.path},
                         profile.path, profile_report.path, beam_pipeline_args)
    outputs = {"train": train_data, "validation": validation_data, "test": test_data}
    for name, values in result["split_metadata"].items():
        outputs[name].metadata.update(values)
    log_metrics(profile_metrics, result["metrics"])
    profile.metadata["cache_salt"] = cache_salt


def preprocess(architecture: str, model_options: dict, beam_pipeline_args: List[str], cache_salt: str,
               train_data: Input[Dataset], validation_data: Input[Dataset], test_data: Input[Dataset],
               train_tokens: Output[Dataset], validation_tokens: Output[Dataset], test_tokens: Output[Dataset],
               vocab: Output[Artifact]):
    """Tokenizes every split and builds the vocabulary with Apache Beam.

    Args:
        architecture: The architecture the tokens are for (awe, bert, ...).
        model_options: The architecture's model options (e.g. AverageWordEmbeddingModelOptions fields).
        beam_pipeline_args: Passed to Beam unchanged (runner, project, workers, ...).
        cache_salt: Changes with the library's code and local inputs.
    """
    from components.steps import artifact_metadata, preprocess_step
    summary = preprocess_step(architecture, model_options, beam_pipeline_args,
                              {"train": train_data.path, "validation": validation_data.path,
                               "test": test_data.path},
                              {"train": train_tokens.path, "validation": validation_tokens.path,
                               "test": test_tokens.path}, vocab.path)
    vocab.metadata.update({**artifact_metadata(summary), "cache_salt": cache_salt})
    for name, artifact in (("train", train_tokens), ("validation", validation_tokens), ("test", test_tokens)):
        artifact.metadata.update(summary["splits"].get(name, {}))


def transfer(architecture: str, model_options: dict, teacher_dir: str, beam_pipeline_args: List[str],
             cache_salt: str, train_data: Input[Dataset], transfer_data: Output[Dataset],
             teacher: Optional[Input[Model]] = None):
    """Scores the training texts, augmentations of them and the user's unlabelled texts with a
    teacher (Apache Beam): the transfer set a student learns from.

    Args:
        architecture: The student architecture (its options hold the augmentation settings).
        model_options: The student's model options (e.g. DistilledModelOptions fields).
        teacher_dir: A trained teacher model folder; empty: the `teacher` artifact of this run.
        beam_pipeline_args: Passed to Beam unchanged (runner, project, workers, ...).
        cache_salt: Changes with the library's code and local inputs.
    """
    from components.steps import transfer_step
    summary = transfer_step(architecture, model_options, teacher_dir or teacher.path, beam_pipeline_args,
                            train_data.path, transfer_data.path)
    transfer_data.metadata.update({k: summary[k] for k in ("rows", "training", "augmented", "unlabelled")})
    transfer_data.metadata["cache_salt"] = cache_salt


def train(architecture: str, model_options: dict, hparams: dict, checkpoint_root: str, pipeline_root: str,
          cache_salt: str, train_tokens: Input[Dataset], validation_tokens: Input[Dataset], vocab: Input[Artifact],
          model: Output[Model], training_metrics: Output[Metrics]):
    """Trains one architecture, resuming from its checkpoints when retried or re-run.

    Args:
        architecture: The architecture to train (awe, bert, ...).
        model_options: The architecture's model options.
        hparams: The architecture's training hyperparameters (e.g. BertHParams fields).
        checkpoint_root: Where checkpoints go; empty: `checkpoints/` under the pipeline root. Either
            way in a folder keyed by this task's inputs, so a retried or re-submitted task resumes.
        pipeline_root: The run's pipeline root (the pipeline passes kfp's placeholder for it).
        cache_salt: Changes with the library's code and local inputs.
    """
    from components.steps import log_metrics, train_checkpoint_dir, train_step
    checkpoint_dir = train_checkpoint_dir(
        checkpoint_root, pipeline_root, architecture, model_options, hparams, cache_salt,
        {"train_tokens": train_tokens.uri, "validation_tokens": validation_tokens.uri, "vocab": vocab.uri})
    summary = train_step(architecture, model_options, hparams, train_tokens.path, validation_tokens.path,
                         vocab.path, model.path, checkpoint_dir)
    model.metadata.update({"architecture": architecture, "best_epoch": summary["best_epoch"],
                           "resumed_from_epoch": summary["resumed_from_epoch"], "cache_salt": cache_salt})
    log_metrics(training_metrics, summary["metrics"])


def evaluate(cache_salt: str, model: Input[Model], test_tokens: Input[Dataset], validation_tokens: Input[Dataset],
             evaluation: Output[Artifact], metrics: Output[Metrics],
             classification_metrics: Output[ClassificationMetrics]):
    """Evaluates the trained Keras model on the test split, and against the majority-class
    predictor on validation and test.

    Args:
        cache_salt: Changes with the library's code and local inputs.
    """
    from components.steps import evaluate_step, log_classification
    result = evaluate_step(model.path, test_tokens.path, evaluation.path, validation_tokens.path)
    log_classification(result, metrics, classification_metrics)
    evaluation.metadata.update({"architecture": result["architecture"], "cache_salt": cache_salt})


def export(cache_salt: str, model: Input[Model], vocab: Input[Artifact], exported: Output[Model]):
    """Exports a float TFLite model with MediaPipe metadata, labels and vocabulary.

    Args:
        cache_salt: Changes with the library's code and local inputs.
    """
    from components.steps import artifact_metadata, export_step
    result = export_step(model.path, vocab.path, exported.path)
    exported.metadata.update({**artifact_metadata(result), "cache_salt": cache_salt})


def quantize(quantization: dict, cache_salt: str, exported: Input[Model], train_tokens: Input[Dataset],
             quantized: Output[Model]):
    """Post-training quantization of the exported model, metadata carried over.

    Args:
        quantization: QuantizationConfig fields: mode none, dynamic, float16 or int8.
        cache_salt: Changes with the library's code and local inputs.
    """
    from components.steps import artifact_metadata, quantize_step
    result = quantize_step(exported.path, quantization, quantized.path, train_tokens.path)
    quantized.metadata.update({**artifact_metadata(result), "cache_salt": cache_salt})


def tflite_evaluate(max_accuracy_drop: float, cache_salt: str, exported: Input[Model],
                    quantized: Input[Model], test_tokens: Input[Dataset], tflite_evaluation: Output[Artifact],
                    metrics: Output[Metrics]):
    """Evaluates the float and quantized .tflite files with LiteRT; fails on too large an accuracy drop.

    Args:
        max_accuracy_drop: Accuracy points quantization may cost before the step fails.
        cache_salt: Changes with the library's code and local inputs.
    """
    from components.steps import log_metrics, tflite_evaluate_step
    result = tflite_evaluate_step(exported.path, quantized.path, test_tokens.path, max_accuracy_drop,
                                  tflite_evaluation.path)
    log_metrics(metrics, result["summary"])
    tflite_evaluation.metadata["cache_salt"] = cache_salt


def benchmark(runs: int, cache_salt: str, exported: Input[Model], quantized: Input[Model],
              test_tokens: Input[Dataset], latency: Output[Artifact], metrics: Output[Metrics]):
    """Latency of each .tflite with LiteRT: p50/p90/p99 at 1 thread and all cores, size, memory.

    Args:
        runs: Timed single-example invocations per model and thread count.
        cache_salt: Changes with the library's code and local inputs.
    """
    from components.steps import benchmark_step, log_metrics
    result = benchmark_step(exported.path, quantized.path, test_tokens.path, runs, latency.path)
    log_metrics(metrics, result["summary"])
    latency.metadata["cache_salt"] = cache_salt


def collect(architecture: str, model: Input[Model], evaluation: Input[Artifact], exported: Input[Model],
            quantized: Input[Model], tflite_evaluation: Input[Artifact], latency: Input[Artifact],
            results: Output[Artifact], previous: Optional[Input[Artifact]] = None):
    """Adds one architecture's figures and deliverable files to the run's results.

    Args:
        architecture: The architecture whose results are added.
    """
    from components.steps import collect_step
    collect_step(architecture, model.path, evaluation.path, exported.path, quantized.path,
                 tflite_evaluation.path, latency.path, results.path,
                 previous.path if previous is not None else None)


def report(min_accuracy: float, min_gain_over_majority: float, publish_below_baseline: bool, cache_salt: str,
           profile: Input[Artifact], results: Input[Artifact], report_markdown: Output[Markdown],
           report_html: Output[HTML], deliverables: Output[Artifact], summary_metrics: Output[Metrics]):
    """The guide's benchmark table for this run, plots, profile, and the deliverables folder.

    Args:
        min_accuracy: Publish gate: a model below this test accuracy is reported, not published.
        min_gain_over_majority: Baseline gate: validation balanced accuracy must beat the
            majority-class predictor's by this much, or the model is flagged and not published.
        publish_below_baseline: Publish a model that fails the baseline gate all the same.
        cache_salt: Changes with the library's code and local inputs.
    """
    from components.steps import log_metrics, report_step
    summary = report_step(profile.path, results.path, min_accuracy, report_markdown.path, report_html.path,
                          deliverables.path, min_gain_over_majority, publish_below_baseline)
    log_metrics(summary_metrics, summary["metrics"])
    deliverables.metadata["cache_salt"] = cache_salt


def publish(export_dir: str, deliverables: Input[Artifact]) -> str:
    """Copies the deliverables folder to `export_dir` (local path or gs://).

    Args:
        export_dir: Where the deliverables go: a local folder or gs://BUCKET/PATH.
    """
    from components.steps import publish_step
    publish_step(deliverables.path, export_dir)
    return export_dir


STEPS = (ingest_split, transfer, preprocess, train, evaluate, export, quantize, tflite_evaluate, benchmark,
         collect, report, publish)


def make_ops(image: str = DEFAULT_IMAGE) -> SimpleNamespace:
    """kfp components for every step, all running in `image`."""
    return SimpleNamespace(**{
        fn.__name__: dsl.component(fn, base_image=image, install_kfp_package=False) for fn in STEPS})
