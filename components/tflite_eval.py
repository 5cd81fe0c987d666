"""Evaluate .tflite classifiers with the LiteRT interpreter on a tokenized test split.

The metrics are `components.metrics.classification_metrics`, the same code training-time
evaluation uses, so "float .tflite vs quantized .tflite vs Keras" compares models, not code.
Examples run one at a time at the model's fixed [1, seq_len] shape, the way MediaPipe runs them.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from components import metadata as md
from components.errors import DataSourceError, ModelFormatError, QualityGateError
from components.export import read_export_info, tflite_path
from components.metrics import classification_metrics
from components.tokenized import load_examples

EVALUATION_FILE = "tflite_evaluation.json"

# Feature names a tokenized split may use for each BERT input role, preferred first.
_ROLE_FEATURES = {"ids": ("input_word_ids", "input_ids"), "mask": ("input_mask",),
                  "segment_ids": ("input_type_ids", "segment_ids")}


def _base_name(tensor_name: str) -> str:
    name = tensor_name.split(":")[0]
    return name[len("serving_default_"):] if name.startswith("serving_default_") else name


def input_feature_plan(input_details: Sequence[Mapping[str, Any]],
                       feature_keys: Sequence[str]) -> List[Tuple[int, str]]:
    """(interpreter input index, feature name) pairs, matched by tensor name, else by role.

    Matching by name rather than position matters: the converter may reorder BERT inputs.
    """
    keys = list(feature_keys)
    plan = []
    for detail in input_details:
        base = _base_name(detail["name"])
        if base in keys:
            plan.append((detail["index"], base))
            continue
        candidates = _ROLE_FEATURES[md.bert_input_role(detail["name"])]
        if len(input_details) == 1:
            candidates = candidates + tuple(k for k in keys if k not in ("label", "length"))
        match = next((k for k in candidates if k in keys), None)
        if match is None:
            raise ModelFormatError(f"no tokenized feature for model input {detail['name']!r} among {sorted(keys)}")
        plan.append((detail["index"], match))
    return plan


def make_interpreter(path: str, threads: Optional[int] = None):
    from ai_edge_litert.interpreter import Interpreter

    if not os.path.isfile(path):
        raise DataSourceError(f"{path}: no such .tflite file")
    try:
        interpreter = Interpreter(model_path=path, num_threads=threads)
    except ValueError as error:  # LiteRT's word for a file it cannot read as a model
        raise ModelFormatError(f"{path}: not a model LiteRT can load ({error})") from error
    interpreter.allocate_tensors()
    return interpreter


class TfliteClassifier:
    """A .tflite classifier fed tokenized features (dict of 1-D int arrays) one example at a time."""

    def __init__(self, path: str, threads: Optional[int] = None):
        self.path = path
        self.interpreter = make_interpreter(path, threads)
        self.inputs = self.interpreter.get_input_details()
        outputs = self.interpreter.get_output_details()
        if len(outputs) != 1:
            raise ModelFormatError(f"{path}: expected one output (class scores), found {len(outputs)}")
        self.output = outputs[0]
        self._plan: Optional[List[Tuple[int, str]]] = None

    def label_names(self) -> Optional[List[str]]:
        with open(self.path, "rb") as f:
            return md.packed_labels(f.read())

    def predict_one(self, features: Mapping[str, np.ndarray]) -> np.ndarray:
        if self._plan is None:
            self._plan = input_feature_plan(self.inputs, list(features))
        for detail, (index, key) in zip(self.inputs, self._plan):
            value = np.asarray(features[key]).reshape(-1)
            length = int(detail["shape"][-1])
            if value.shape[0] != length:
                raise ModelFormatError(f"{self.path}: input {detail['name']} takes {length} ids, the "
                                 f"tokenized feature {key!r} has {value.shape[0]}; was the split "
                                 "tokenized with the model's seq_len?")
            self.interpreter.set_tensor(index, value.astype(detail["dtype"]).reshape(detail["shape"]))
        self.interpreter.invoke()
        scores = self.interpreter.get_tensor(self.output["index"])[0]
        scale, zero = self.output["quantization"]
        if scale:  # an integer output (some third-party models): back to probabilities
            scores = (scores.astype(np.float32) - zero) * scale
        return scores.astype(np.float32)

    def predict(self, examples: Sequence[Mapping[str, np.ndarray]]) -> np.ndarray:
        return np.stack([self.predict_one(e) for e in examples]) if examples else np.zeros((0, 0))


def _label_names(model: TfliteClassifier, meta: Mapping[str, Any]) -> List[str]:
    names = meta.get("label_names") or model.label_names()
    if not names:
        names = [str(i) for i in range(int(model.output["shape"][-1]))]
    return list(names)


def evaluate_tflite(path: str, test_dir: str, threads: Optional[int] = None) -> Dict[str, Any]:
    """Training-time metrics for one .tflite, plus its size."""
    examples, labels, meta = load_examples(test_dir)
    model = TfliteClassifier(path, threads)
    metrics = classification_metrics(labels, model.predict(examples), _label_names(model, meta))
    metrics["model_bytes"] = os.path.getsize(path)
    return metrics


def compare_models(float_tflite: str, quant_tflite: str, test_dir: str,
                   max_accuracy_drop: float = 1.0, threads: Optional[int] = None) -> Dict[str, Any]:
    """Float vs quantized on the same examples; raises QualityGateError past the drop threshold.

    `max_accuracy_drop` is in accuracy points (1.0 = one percentage point). The error carries the
    full comparison as `.result` so a pipeline can still record what it measured.
    """
    examples, labels, meta = load_examples(test_dir)
    float_model = TfliteClassifier(float_tflite, threads)
    quant_model = TfliteClassifier(quant_tflite, threads)
    names = _label_names(float_model, meta)
    float_probs, quant_probs = float_model.predict(examples), quant_model.predict(examples)
    float_metrics = classification_metrics(labels, float_probs, names)
    quant_metrics = classification_metrics(labels, quant_probs, names)
    float_metrics["model_bytes"] = os.path.getsize(float_tflite)
    quant_metrics["model_bytes"] = os.path.getsize(quant_tflite)
    change = 100.0 * (quant_metrics["accuracy"] - float_metrics["accuracy"])
    changed = (float_probs.argmax(1) != quant_probs.argmax(1)) if len(examples) else np.zeros(0, bool)
    result = {
        "float": float_metrics,
        "quantized": quant_metrics,
        "accuracy_change_points": change,
        "top_class_changed_fraction": float(changed.mean()) if len(changed) else 0.0,
        "max_abs_score_change": float(np.abs(float_probs - quant_probs).max()) if len(examples) else 0.0,
        "size_ratio": quant_metrics["model_bytes"] / float_metrics["model_bytes"],
        "max_accuracy_drop": float(max_accuracy_drop),
        "num_examples": len(examples),
    }
    result["passed"] = -change <= max_accuracy_drop + 1e-9
    if not result["passed"]:
        err = QualityGateError(
            f"quantized model {quant_tflite} loses {-change:.2f} accuracy points against its float "
            f"parent ({100 * float_metrics['accuracy']:.2f}% -> {100 * quant_metrics['accuracy']:.2f}% "
            f"on {len(examples)} test examples); the limit is {max_accuracy_drop:.2f} points. Try "
            "dynamic-range or float16 quantization, or more representative examples for int8.")
        err.result = result
        raise err
    return result


def evaluate_exports(exported_dir: str, quantized_dir: str, test_dir: str, max_accuracy_drop: float,
                     output_dir: str) -> Dict[str, Any]:
    """Float vs quantized .tflite of one export on the test split, written to
    `output_dir/tflite_evaluation.json`, also when the accuracy gate fails."""
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, EVALUATION_FILE)
    try:
        result = compare_models(tflite_path(exported_dir), tflite_path(quantized_dir), test_dir,
                                max_accuracy_drop=max_accuracy_drop)
    except QualityGateError as error:
        with open(path, "w") as f:
            json.dump(getattr(error, "result", {}), f, indent=2)
        raise
    result["architecture"] = read_export_info(exported_dir)["architecture"]
    result["summary"] = {
        "float_accuracy": result["float"]["accuracy"],
        "quantized_accuracy": result["quantized"]["accuracy"],
        "accuracy_change_points": result["accuracy_change_points"],
        "top_class_changed_fraction": result["top_class_changed_fraction"],
        "float_model_bytes": result["float"]["model_bytes"],
        "quantized_model_bytes": result["quantized"]["model_bytes"],
    }
    with open(path, "w") as f:
        json.dump(result, f, indent=2)
    return result


def read_evaluation(folder: str) -> Dict[str, Any]:
    with open(os.path.join(folder, EVALUATION_FILE), encoding="utf-8") as f:
        return json.load(f)
