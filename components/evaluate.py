"""Training-time evaluation of a trained model folder on a tokenized split."""

from __future__ import annotations

import json
import os
from typing import Dict, Tuple

import numpy as np

import components  # noqa: F401
from components import architectures, model_io
from components.metrics import classification_metrics
from components.tokenized import load_tokenized

METRICS_FILE = "metrics.json"


def predict_tokenized(model, info: Dict, folder: str, batch_size: int = 256) -> Tuple[np.ndarray, np.ndarray]:
    """Class probabilities and true labels for every example of a tokenized split."""
    spec = architectures.get(info["architecture"])
    dataset, meta = load_tokenized(folder)
    batches = spec.eval_batches(dataset, meta, spec.options(info["model_options"]), batch_size)
    probs, labels = [], []
    for inputs, label in batches:
        probs.append(model(inputs, training=False).numpy())
        labels.append(label.numpy())
    if not probs:
        return np.zeros((0, info["num_classes"]), np.float32), np.zeros((0,), np.int64)
    return np.concatenate(probs), np.concatenate(labels)


def evaluate(model_dir: str, test_dir: str, output_dir: str = "", validation_dir: str = "") -> Dict:
    """Metrics of the model on `test_dir`; with `validation_dir`, also its validation figures and
    the majority-class predictor's on both splits (what the report's baseline gate compares);
    with `output_dir`, writes `metrics.json`."""
    from components.metrics import majority_label, majority_metrics

    model, info = model_io.load_trained(model_dir)
    probs, labels = predict_tokenized(model, info, test_dir)
    metrics = classification_metrics(labels, probs, info["label_names"])
    metrics["architecture"] = info["architecture"]
    counts = model_io.read_training(model_dir).get("train_label_counts")
    if validation_dir:
        val_probs, val_labels = predict_tokenized(model, info, validation_dir)
        validation = classification_metrics(val_labels, val_probs, info["label_names"])
        metrics["validation"] = {k: validation[k] for k in ("accuracy", "macro_f1", "balanced_accuracy",
                                                            "num_examples")}
    if counts:
        majority = majority_label(counts, info["label_names"])
        metrics["majority"] = {"test": majority_metrics(labels, majority, info["label_names"])}
        if validation_dir:
            metrics["majority"]["validation"] = majority_metrics(val_labels, majority, info["label_names"])
    if output_dir:
        write_metrics(output_dir, metrics)
    return metrics


def write_metrics(folder: str, metrics: Dict) -> None:
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, METRICS_FILE), "w") as f:
        json.dump(metrics, f, indent=2)


def read_metrics(folder: str) -> Dict:
    with open(os.path.join(folder, METRICS_FILE), encoding="utf-8") as f:
        return json.load(f)
