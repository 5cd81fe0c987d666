"""Classification metrics in numpy, shared by training-time evaluation and .tflite evaluation.

One implementation for both means an accuracy drop between a Keras model and its quantized
.tflite is a property of the models, never of two metric codes disagreeing.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Sequence

import numpy as np

from components.errors import ConfigError

_EPS = 1e-7


def _binary_roc_auc(y_true: np.ndarray, scores: np.ndarray) -> float | None:
    """Mann-Whitney form of ROC AUC (ties count half); None when one class is absent."""
    positives = y_true == 1
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    ranks = ((ends - counts + 1 + ends) / 2.0)[inverse]  # 1-based, averaged over ties
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _binary_roc_curve(y_true: np.ndarray, scores: np.ndarray, max_points: int = 201):
    """{"fpr", "tpr", "thresholds"} (thresholds descending, first one above every score, as older
    scikit-learn did); thinned to `max_points` so it fits a kfp ClassificationMetrics artifact."""
    positives = y_true == 1
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(-scores, kind="mergesort")
    ranked, hits = scores[order], positives[order]
    last = np.r_[np.flatnonzero(np.diff(ranked)), len(ranked) - 1]  # end of each equal-score run
    tps = np.cumsum(hits)[last]
    fps = last + 1 - tps
    tpr = np.r_[0.0, tps / n_pos]
    fpr = np.r_[0.0, fps / n_neg]
    thresholds = np.r_[ranked[0] + 1.0, ranked[last]]
    if len(tpr) > max_points:
        keep = np.unique(np.linspace(0, len(tpr) - 1, max_points).round().astype(int))
        tpr, fpr, thresholds = tpr[keep], fpr[keep], thresholds[keep]
    return {"fpr": fpr.tolist(), "tpr": tpr.tolist(), "thresholds": thresholds.tolist()}


def classification_metrics(y_true, probs, label_names: Sequence[str]) -> Dict[str, Any]:
    """Accuracy, cross-entropy loss, per-class precision/recall/F1, macro F1, confusion matrix,
    and for two classes ROC AUC and the ROC curve (positive class = label id 1).

    `probs` are class probabilities [n, num_classes]. Precision of a class never predicted is 0
    (as in scikit-learn's default), so macro F1 is not inflated by skipped classes.
    """
    y_true = np.asarray(y_true, dtype=np.int64).reshape(-1)
    probs = np.asarray(probs, dtype=np.float64)
    num_classes = len(label_names)
    if probs.ndim != 2 or probs.shape != (len(y_true), num_classes):
        raise ConfigError(f"probs must be [{len(y_true)}, {num_classes}], got {list(probs.shape)}")
    if len(y_true) and (y_true.min() < 0 or y_true.max() >= num_classes):
        raise ConfigError(f"labels must be in [0, {num_classes}), got {y_true.min()}..{y_true.max()}")
    n = len(y_true)
    predicted = probs.argmax(axis=1) if n else np.zeros(0, dtype=np.int64)
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (y_true, predicted), 1)

    per_class = {}
    f1s, recalls = [], []
    for k, name in enumerate(label_names):
        tp = confusion[k, k]
        predicted_k, actual_k = confusion[:, k].sum(), confusion[k, :].sum()
        precision = tp / predicted_k if predicted_k else 0.0
        recall = tp / actual_k if actual_k else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        f1s.append(f1)
        if actual_k:
            recalls.append(recall)
        per_class[str(name)] = {"precision": float(precision), "recall": float(recall),
                                "f1": float(f1), "support": int(actual_k)}

    true_probs = probs[np.arange(n), y_true] if n else np.zeros(0)
    result = {
        "num_examples": int(n),
        "accuracy": float((predicted == y_true).mean()) if n else 0.0,
        "loss": float(-np.log(np.clip(true_probs, _EPS, 1.0)).mean()) if n else 0.0,
        "per_class": per_class,
        "macro_f1": float(np.mean(f1s)) if f1s else 0.0,
        # Mean recall over the classes present: 1 / (classes present) for any constant predictor
        # and in expectation for a random one, whatever the class mix.
        "balanced_accuracy": float(np.mean(recalls)) if recalls else 0.0,
        "confusion_matrix": confusion.tolist(),
        "label_names": [str(x) for x in label_names],
    }
    if num_classes == 2:
        result["roc_auc"] = _binary_roc_auc(y_true, probs[:, 1])
        result["roc_curve"] = _binary_roc_curve(y_true, probs[:, 1])
    return result


def majority_label(label_counts: Mapping[str, int], label_names: Sequence[str]) -> int:
    """The id of the training split's most frequent label (ties: the first in id order)."""
    counts = [int(label_counts.get(name, 0)) for name in label_names]
    return int(np.argmax(counts))


def majority_metrics(y_true, majority_id: int, label_names: Sequence[str]) -> Dict[str, Any]:
    """What always answering the majority label scores on these labels: the floor a model must
    clear (on skewed data plain accuracy does not show it, balanced accuracy does)."""
    y_true = np.asarray(y_true, dtype=np.int64).reshape(-1)
    probs = np.zeros((len(y_true), len(label_names)))
    probs[:, majority_id] = 1.0
    full = classification_metrics(y_true, probs, label_names)
    return {"label": str(label_names[majority_id]),
            **{k: full[k] for k in ("accuracy", "macro_f1", "balanced_accuracy", "num_examples")}}
