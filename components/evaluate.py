"""Training-time evaluation of a trained model folder on a tokenized split."""

from __future__ import annotations

import json
import os
from typing import Dict, Tuple

import components  # noqa: F401
import numpy as np

from components import model_io
from components.metrics import classification_metrics
from components.options import AWE, BertHParams, BertModelOptions
from components.preprocess import load_tokenized


def predict_tokenized(model, info: Dict, folder: str, batch_size: int = 256) -> Tuple[np.ndarray, np.ndarray]:
    """Class probabilities and true labels for every example of a tokenized split."""
    dataset, _ = load_tokenized(folder)
    if info["architecture"] == AWE:
        batches = dataset.map(lambda features, label: (features["input_ids"], label)).batch(batch_size)
    else:
        from components import bert
        options = BertModelOptions.from_dict(info["model_options"])
        batches = bert.bucketed_batches(dataset, min(batch_size, BertHParams().batch_size), options.seq_len,
                                        shuffle=False, seed=0)
    probs, labels = [], []
    for inputs, label in batches:
        probs.append(model(inputs, training=False).numpy())
        labels.append(label.numpy())
    if not probs:
        return np.zeros((0, info["num_classes"]), np.float32), np.zeros((0,), np.int64)
    return np.concatenate(probs), np.concatenate(labels)


def evaluate(model_dir: str, test_dir: str, output_dir: str = "") -> Dict:
    """Metrics of the model on `test_dir`; with `output_dir`, also writes `metrics.json`."""
    model, info = model_io.load_trained(model_dir)
    probs, labels = predict_tokenized(model, info, test_dir)
    metrics = classification_metrics(labels, probs, info["label_names"])
    metrics["architecture"] = info["architecture"]
    if output_dir:
        os.makedirs(output_dir, exist_ok=True)
        with open(os.path.join(output_dir, "metrics.json"), "w") as f:
            json.dump(metrics, f, indent=2)
    return metrics
