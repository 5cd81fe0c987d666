"""Saving and rebuilding trained models: options + weights, not a pickled graph.

Rebuilding from options keeps a model folder small and independent of Keras' serialization of
custom layers; the BERT builder re-resolves its encoder from the recorded spec.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Sequence, Tuple

from components.errors import DataSourceError
from components.options import (AWE, BERT, AverageWordEmbeddingModelOptions, BertModelOptions)

MODEL_INFO = "model.json"
WEIGHTS = "weights.h5"


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


def model_options_of(info: Dict[str, Any]):
    if info["architecture"] == AWE:
        return AverageWordEmbeddingModelOptions.from_dict(info["model_options"])
    return BertModelOptions.from_dict(info["model_options"])


def build_model(info: Dict[str, Any]):
    """A fresh, untrained model of the architecture and shape `info` describes."""
    options = model_options_of(info)
    if info["architecture"] == AWE:
        from components.models import build_awe_model
        return build_awe_model(options, info["num_classes"], vocab_size=info.get("vocab_rows"))
    if info["architecture"] == BERT:
        from components.bert import build_bert_classifier
        return build_bert_classifier(options, info["num_classes"], encoder_spec=_encoder_spec(info))
    raise DataSourceError(f"unknown architecture {info['architecture']!r} in {MODEL_INFO}")


def _encoder_spec(info: Dict[str, Any]):
    """The encoder training used, while its folder is still on this machine; else None, and the
    builder resolves `model_options.encoder` again (another machine, a cleared cache)."""
    recorded = info.get("encoder") or {}
    if not recorded.get("path") or not os.path.isdir(recorded["path"]):
        return None
    from components.encoders import EncoderSpec
    return EncoderSpec.from_dict(recorded)


def load_trained(folder: str) -> Tuple[Any, Dict[str, Any]]:
    info = read_info(folder)
    model = build_model(info)
    model.load_weights(os.path.join(folder, WEIGHTS))
    return model, info
