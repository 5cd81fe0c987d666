"""Step glue: what each kfp component does, as plain functions of paths and parameter values.

`components/ops.py` only maps kfp artifacts onto these functions and logs what they return, so
every step is testable without kfp and the library below never sees an artifact.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Mapping, Optional, Sequence

SPLITS = ("train", "validation", "test")


def ingest_step(train: str, validation: str, test: str, csv_params: Mapping, split_options: Mapping,
                split_dirs: Mapping[str, str], profile_dir: str, profile_markdown: str = "",
                beam_pipeline_args: Sequence[str] = ()) -> Dict:
    """Reads, validates, splits and profiles; returns the profile plus the metrics kfp shows.
    `beam_pipeline_args` naming a `--runner` make it a Beam job (`components.beam_ingest`)."""
    from components.ingest import ingest
    from components.ingest import profile_markdown as render
    from components.options import CSVParams, SplitOptions

    profile = ingest(train, validation, test, CSVParams.from_dict(dict(csv_params)),
                     SplitOptions.from_dict(dict(split_options)), output_dirs=dict(split_dirs),
                     profile_dir=profile_dir, beam_pipeline_args=list(beam_pipeline_args or []))
    if profile_markdown:
        with open(profile_markdown, "w", encoding="utf-8") as f:
            f.write(render(profile))
    metrics = {f"{name}_rows": split["rows"] for name, split in profile["splits"].items()}
    metrics["dropped_rows"] = profile["dropped_rows"]["total"]
    metrics["num_classes"] = len(profile["label_names"])
    return {"profile": profile, "metrics": metrics,
            "split_metadata": {name: {"rows": split["rows"], "labels": split["labels"]}
                               for name, split in profile["splits"].items()}}


def preprocess_step(architecture: str, model_options: Mapping, beam_pipeline_args: Sequence[str],
                    split_dirs: Mapping[str, str], output_dirs: Mapping[str, str], vocab_dir: str) -> Dict:
    from components.preprocess import preprocess
    return preprocess(architecture, dict(split_dirs), dict(output_dirs), vocab_dir, dict(model_options or {}),
                      beam_pipeline_args=list(beam_pipeline_args or []))


def transfer_step(architecture: str, model_options: Mapping, teacher_dir: str,
                  beam_pipeline_args: Sequence[str], split_dir: str, output_dir: str) -> Dict:
    """The teacher-scored transfer set a student architecture trains on (`components.transfer`)."""
    from components import architectures
    from components.transfer import build_transfer_set
    options = architectures.get(architecture).options(dict(model_options or {}))
    return build_transfer_set(teacher_dir, split_dir, output_dir, options, list(beam_pipeline_args or []))


def train_checkpoint_dir(checkpoint_root: str, pipeline_root: str, architecture: str, model_options: Mapping,
                         hparams: Mapping, cache_salt: str, data_uris: Mapping[str, str]) -> str:
    """The training task's checkpoint folder keyed by its inputs (`components.checkpoints`), or ""
    (checkpoints inside the model artifact) when no root can be written here; says which."""
    from components import checkpoints
    task_key = checkpoints.key(architecture, model_options, hparams, cache_salt, data_uris)
    folder, why = checkpoints.folder(checkpoint_root, pipeline_root, architecture, task_key)
    if folder:
        print(f"checkpoints: {folder} (a retry or re-run of this same work resumes from there)", flush=True)
    else:
        print(f"checkpoints: inside the model artifact, so a retried task starts over: {why}", flush=True)
    return folder


def train_step(architecture: str, model_options: Mapping, hparams: Mapping, train_dir: str,
               validation_dir: str, vocab_dir: str, model_dir: str, checkpoint_dir: str = "") -> Dict:
    """Trains; with `checkpoint_dir` (a keyed folder outside the model artifact) a re-run of the
    same work resumes from its checkpoints, and the folder is removed once the model is saved."""
    from components.train import train
    summary = train(architecture, train_dir, validation_dir, vocab_dir, dict(model_options or {}),
                    dict(hparams or {}), model_dir, checkpoint_dir, keep_checkpoints=not checkpoint_dir)
    summary["metrics"] = {key: summary[key] for key in ("best_val_accuracy", "train_seconds", "best_epoch")}
    return summary


def evaluate_step(model_dir: str, test_dir: str, output_dir: str, validation_dir: str = "") -> Dict:
    from components.evaluate import evaluate
    return evaluate(model_dir, test_dir, output_dir, validation_dir)


def export_step(model_dir: str, vocab_dir: str, output_dir: str) -> Dict:
    from components.export import export_model
    return export_model(model_dir, vocab_dir, output_dir)


def quantize_step(exported_dir: str, quantization: Mapping, output_dir: str, representative_dir: str) -> Dict:
    from components.options import QuantizationConfig
    from components.tflite_quantize import quantize_model
    return quantize_model(exported_dir, QuantizationConfig.from_dict(dict(quantization or {})), output_dir,
                          representative_dir=representative_dir)


def tflite_evaluate_step(exported_dir: str, quantized_dir: str, test_dir: str, max_accuracy_drop: float,
                         output_dir: str) -> Dict:
    from components.tflite_eval import evaluate_exports
    return evaluate_exports(exported_dir, quantized_dir, test_dir, max_accuracy_drop, output_dir)


def benchmark_step(exported_dir: str, quantized_dir: str, test_dir: str, runs: int, output_dir: str) -> Dict:
    from components.benchmark import benchmark_exports
    return benchmark_exports(exported_dir, quantized_dir, test_dir, runs, output_dir)


def collect_step(architecture: str, model_dir: str, evaluation_dir: str, exported_dir: str,
                 quantized_dir: str, tflite_evaluation_dir: str, latency_dir: str, output_dir: str,
                 previous_dir: Optional[str] = None) -> str:
    from components import run_results
    return run_results.add(output_dir, architecture, model_dir, evaluation_dir, exported_dir, quantized_dir,
                           tflite_evaluation_dir, latency_dir, previous_dir)


def report_step(profile_dir: str, results_dir: str, min_accuracy: float, markdown_path: str,
                html_path: str, deliverables_dir: str, min_gain_over_majority: float = 0.05,
                publish_below_baseline: bool = False) -> Dict:
    from components.report import build_report
    summary = build_report(profile_dir, results_dir, min_accuracy, markdown_path, html_path, deliverables_dir,
                           min_gain_over_majority, publish_below_baseline)
    metrics = {}
    for arch, row in summary["models"].items():
        for key in ("accuracy", "model_bytes", "p50_ms_1_thread"):
            metrics[f"{arch}_{key}"] = row[key]
    summary["metrics"] = metrics
    return summary


def publish_step(deliverables_dir: str, export_dir: str) -> List[str]:
    from components.storage import upload_tree
    written = upload_tree(deliverables_dir, export_dir)
    print(f"published {len(written)} files to {export_dir}", flush=True)
    return written


def classification_scalars(result: Mapping[str, Any]) -> Dict[str, float]:
    """The scalars of a metrics result as kfp Metrics shows them (per-class ones by label name)."""
    scalars = {key: float(result[key]) for key in ("accuracy", "loss", "macro_f1", "balanced_accuracy", "roc_auc")
               if result.get(key) is not None}
    for name, per_class in result.get("per_class", {}).items():
        for key in ("precision", "recall", "f1"):
            scalars[f"{key}_{name}"] = float(per_class[key])
    return scalars


def write_metrics_file(artifact) -> None:
    """The logged figures as a file at the artifact's path too. kfp keeps Metrics in metadata only,
    and kfp's local runner treats a cached output without a file as missing: without this, no step
    logging metrics (nor anything downstream of it) would ever be answered from the local cache."""
    import json
    path = getattr(artifact, "path", "")
    if not path:
        return
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(dict(artifact.metadata), f, indent=2, sort_keys=True, default=str)


def log_metrics(metrics, values: Mapping[str, Any]) -> None:
    for key, value in values.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            metrics.log_metric(key, value)
    write_metrics_file(metrics)


def log_classification(result: Dict, metrics, classification_metrics) -> None:
    """Scalars to kfp Metrics; confusion matrix and ROC curve to ClassificationMetrics (drawn by the UIs)."""
    log_metrics(metrics, classification_scalars(result))
    classification_metrics.log_confusion_matrix(list(result["label_names"]), result["confusion_matrix"])
    roc = result.get("roc_curve")
    if roc:
        classification_metrics.log_roc_curve(roc["fpr"], roc["tpr"], roc["thresholds"])
    write_metrics_file(classification_metrics)


def artifact_metadata(result: Mapping[str, Any]) -> Dict[str, Any]:
    """The flat, JSON-simple part of a step's result, for an output artifact's metadata."""
    return {k: v for k, v in result.items() if isinstance(v, (int, float, str, bool)) and not k.endswith("_dir")
            and not (isinstance(v, str) and os.path.isabs(v))}
