"""Saving and rebuilding trained models: options + weights, not a pickled graph.

Rebuilding from options keeps a model folder small and independent of Keras' serialization of
custom layers; the BERT builder re-resolves its encoder from the recorded spec.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Sequence, Tuple

from components import architectures
from components.errors import DataSourceError

MODEL_INFO = "model.json"
WEIGHTS = "weights.h5"
TRAINING_FILE = "training.json"


def save_trained(folder: str, model, architecture: str, model_options, label_names: Sequence[str],
                 **extra: Any) -> str:
    os.makedirs(folder, exist_ok=True)
    info = {
        "architecture": architecture,
        "model_options": model_options.to_dict(),
        "num_classes": len(label_names),
        "label_names": list(label_names),
        **extra,
    }
    with open(os.path.join(folder, MODEL_INFO), "w", encoding="utf-8") as f:
        json.dump(info, f, indent=2, sort_keys=True)
    model.save_weights(os.path.join(folder, WEIGHTS))
    return folder


def read_info(folder: str) -> Dict[str, Any]:
    path = os.path.join(folder, MODEL_INFO)
    if not os.path.exists(path):
        raise DataSourceError(f"{folder}: no {MODEL_INFO}; is this a trained model folder?")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def write_training(folder: str, summary: Dict[str, Any]) -> None:
    with open(os.path.join(folder, TRAINING_FILE), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)


def read_training(folder: str) -> Dict[str, Any]:
    """training.json (epochs, history, picked defaults), or {} for a folder without one."""
    path = os.path.join(folder, TRAINING_FILE)
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def model_options_of(info: Dict[str, Any]):
    return architectures.get(info["architecture"]).options(info["model_options"])


def build_model(info: Dict[str, Any]):
    """A fresh, untrained model of the architecture and shape `info` (model.json) describes."""
    spec = architectures.get(info["architecture"])
    return spec.build_model(spec.options(info["model_options"]), info["num_classes"], info)


def load_trained(folder: str) -> Tuple[Any, Dict[str, Any]]:
    info = read_info(folder)
    model = build_model(info)
    model.load_weights(os.path.join(folder, WEIGHTS))
    return model, info
