"""Step-level glue between kfp artifacts and the library: option parsing, file layout, metrics.

Kept out of `ops.py` so the component bodies stay a few lines and this logic is unit-testable
without kfp.
"""

from __future__ import annotations

import json
import os
from typing import Dict, List

from components.export import read_export_info
from components.options import (AWE, BERT, AverageWordEmbeddingHParams, AverageWordEmbeddingModelOptions,
                                BertHParams, BertModelOptions)

EVALUATION_FILE = "tflite_evaluation.json"
LATENCY_FILE = "latency.json"


def model_options_for(architecture: str, awe_model_options: Dict, bert_model_options: Dict):
    if architecture == AWE:
        return AverageWordEmbeddingModelOptions.from_dict(awe_model_options)
    if architecture == BERT:
        return BertModelOptions.from_dict(bert_model_options)
    from components.errors import ConfigError
    raise ConfigError(f"unknown architecture {architecture!r}; choose awe or bert")


def preprocess_step(architecture: str, awe_model_options: Dict, bert_model_options: Dict,
                    beam_pipeline_args: List[str], split_dirs: Dict[str, str], output_dirs: Dict[str, str],
                    vocab_dir: str) -> Dict:
    from components.preprocess import preprocess
    options = model_options_for(architecture, awe_model_options, bert_model_options)
    bert_vocab, lower = None, None
    if architecture == BERT:
        from components.encoders import resolve_encoder
        spec = resolve_encoder(options.encoder)
        bert_vocab, lower = spec.vocab_path, spec.do_lower_case
    return preprocess(architecture, split_dirs, output_dirs, vocab_dir, options, bert_vocab_path=bert_vocab,
                      bert_do_lower_case=lower, beam_pipeline_args=list(beam_pipeline_args or []))


def train_step(architecture: str, awe_model_options: Dict, awe_hparams: Dict, bert_model_options: Dict,
               bert_hparams: Dict, train_dir: str, validation_dir: str, vocab_dir: str, model_dir: str,
               checkpoint_root: str = "") -> Dict:
    """Trains; checkpoints go under `checkpoint_root/<architecture>` when given, so a re-run resumes."""
    from components.train import train
    options = model_options_for(architecture, awe_model_options, bert_model_options)
    hparams = (AverageWordEmbeddingHParams.from_dict(awe_hparams) if architecture == AWE
               else BertHParams.from_dict(bert_hparams))
    checkpoint_dir = os.path.join(checkpoint_root, architecture) if checkpoint_root else ""
    return train(architecture, train_dir, validation_dir, vocab_dir, options, hparams, model_dir, checkpoint_dir)


def log_classification(result: Dict, metrics, classification_metrics) -> None:
    """Scalars to kfp Metrics; confusion matrix and ROC curve to ClassificationMetrics (drawn by the UIs)."""
    for key in ("accuracy", "loss", "macro_f1", "roc_auc"):
        if result.get(key) is not None:
            metrics.log_metric(key, float(result[key]))
    for name, per_class in result.get("per_class", {}).items():
        for key in ("precision", "recall", "f1"):
            metrics.log_metric(f"{key}_{name}", float(per_class[key]))
    classification_metrics.log_confusion_matrix(list(result["label_names"]), result["confusion_matrix"])
    roc = result.get("roc_curve")
    if roc:
        classification_metrics.log_roc_curve(roc["fpr"], roc["tpr"], roc["thresholds"])


def _tflite(folder: str) -> str:
    return os.path.join(folder, "model.tflite")


def architecture_of_export(folder: str) -> str:
    return read_export_info(folder)["architecture"]


def export_step(model_dir: str, vocab_dir: str, output_dir: str) -> Dict:
    from components.export import export_model
    return export_model(model_dir, vocab_dir, output_dir)  # also writes export.json (architecture, ...)


def quantize_step(exported_dir: str, quantization: Dict, output_dir: str, representative_dir: str) -> Dict:
    from components.options import QuantizationConfig
    from components.quantize import quantize_model
    # quantize_model records architecture and mode in quantization.json
    return quantize_model(exported_dir, QuantizationConfig.from_dict(quantization), output_dir,
                          representative_dir=representative_dir)


def tflite_evaluate_step(exported_dir: str, quantized_dir: str, test_dir: str, max_accuracy_drop: float,
                         output_dir: str) -> Dict:
    """Float vs quantized on the test split; the comparison is written even when the gate fails."""
    from components.errors import QualityGateError
    from components.tflite_eval import compare_models
    os.makedirs(output_dir, exist_ok=True)
    try:
        result = compare_models(_tflite(exported_dir), _tflite(quantized_dir), test_dir,
                                max_accuracy_drop=max_accuracy_drop)
    except QualityGateError as error:
        with open(os.path.join(output_dir, EVALUATION_FILE), "w") as f:
            json.dump(getattr(error, "result", {}), f, indent=2)
        raise
    result["architecture"] = architecture_of_export(exported_dir)
    result["summary"] = {
        "float_accuracy": result["float"]["accuracy"],
        "quantized_accuracy": result["quantized"]["accuracy"],
        "accuracy_change_points": result["accuracy_change_points"],
        "top_class_changed_fraction": result["top_class_changed_fraction"],
        "float_model_bytes": result["float"]["model_bytes"],
        "quantized_model_bytes": result["quantized"]["model_bytes"],
    }
    with open(os.path.join(output_dir, EVALUATION_FILE), "w") as f:
        json.dump(result, f, indent=2)
    return result


def benchmark_step(exported_dir: str, quantized_dir: str, test_dir: str, runs: int, output_dir: str) -> Dict:
    from components.benchmark import benchmark_models
    rows = benchmark_models({"float": _tflite(exported_dir), "quantized": _tflite(quantized_dir)},
                            runs=runs, examples=test_dir)
    summary = {}
    for row in rows:
        for threads, stats in row["latency"].items():
            for key in ("p50_ms", "p90_ms", "p99_ms"):
                summary[f"{row['name']}_{key}_{threads}_thread"] = stats[key]
        summary[f"{row['name']}_model_bytes"] = row["model_bytes"]
    summary["peak_rss_mb"] = max(s["peak_rss_mb"] for row in rows for s in row["latency"].values())
    result = {"architecture": architecture_of_export(exported_dir), "models": rows, "summary": summary}
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, LATENCY_FILE), "w") as f:
        json.dump(result, f, indent=2)
    return result
