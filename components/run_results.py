"""The run's results folder: every architecture's figures and deliverable files, for the report.

kfp cannot hand artifacts of separate tasks to one task as a list (only a `ParallelFor` can, and
its iterations cannot differ in resources), so each architecture's branch ends with a task that
copies the previous results folder and adds its own architecture: the last one holds them all.

Layout: one folder per architecture, holding `model.json`, `training.json` (training), `metrics.json`
(Keras evaluation), `export.json`, `quantization.json`, `tflite_evaluation.json`, `latency.json`,
`model_float.tflite`, `model_quantized.tflite`, and the export's `labels.txt`, `vocab.txt`,
`tokenizer.json`.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any, Dict, Optional

from components import benchmark, evaluate, export, model_io, tflite_eval, tflite_quantize
from components.errors import DataSourceError
from components.export import DELIVERABLE_FILES as REPEATED_FILES  # noqa: F401 (the folder's contract)

ORDER_FILE = "architectures.json"
FLOAT_TFLITE = "model_float.tflite"
QUANTIZED_TFLITE = "model_quantized.tflite"
_FILES = (  # (source folder key, file name)
    ("model", model_io.MODEL_INFO), ("model", model_io.TRAINING_FILE),
    ("evaluation", evaluate.METRICS_FILE), ("export", export.EXPORT_INFO),
    ("quantized", tflite_quantize.QUANT_INFO), ("tflite_evaluation", tflite_eval.EVALUATION_FILE),
    ("latency", benchmark.LATENCY_FILE),
)


def add(output_dir: str, architecture: str, model_dir: str, evaluation_dir: str, export_dir: str,
        quantized_dir: str, tflite_evaluation_dir: str, latency_dir: str,
        previous_dir: Optional[str] = None) -> str:
    """`previous_dir`'s architectures plus this one, in `output_dir`; returns the new folder."""
    if previous_dir:
        shutil.copytree(previous_dir, output_dir, dirs_exist_ok=True)
    target = os.path.join(output_dir, architecture)
    os.makedirs(target, exist_ok=True)
    sources = {"model": model_dir, "evaluation": evaluation_dir, "export": export_dir,
               "quantized": quantized_dir, "tflite_evaluation": tflite_evaluation_dir, "latency": latency_dir}
    for key, name in _FILES:
        source = os.path.join(sources[key], name)
        if os.path.exists(source):
            shutil.copyfile(source, os.path.join(target, name))
    shutil.copyfile(export.tflite_path(export_dir), os.path.join(target, FLOAT_TFLITE))
    shutil.copyfile(export.tflite_path(quantized_dir), os.path.join(target, QUANTIZED_TFLITE))
    export.copy_deliverable_files(export_dir, target)
    order = [name for name in _order(output_dir) if name != architecture] + [architecture]
    with open(os.path.join(output_dir, ORDER_FILE), "w") as f:
        json.dump(order, f)
    return target


def _order(folder: str):
    return _load(os.path.join(folder, ORDER_FILE)) or []


def _load(path: str) -> Dict[str, Any]:
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def read(folder: str) -> Dict[str, Dict[str, Any]]:
    """{architecture: {"folder", "model", "training", "evaluation", "export", "quantization",
    "tflite_evaluation", "latency"}}, in the order the architectures were added."""
    if not os.path.isdir(folder):
        raise DataSourceError(f"{folder}: no results folder")
    results = {}
    for name in _order(folder):
        path = os.path.join(folder, name)
        results[name] = {
            "folder": path,
            "model": _load(os.path.join(path, model_io.MODEL_INFO)),
            "training": _load(os.path.join(path, model_io.TRAINING_FILE)),
            "evaluation": _load(os.path.join(path, evaluate.METRICS_FILE)),
            "export": _load(os.path.join(path, export.EXPORT_INFO)),
            "quantization": _load(os.path.join(path, tflite_quantize.QUANT_INFO)),
            "tflite_evaluation": _load(os.path.join(path, tflite_eval.EVALUATION_FILE)),
            "latency": _load(os.path.join(path, benchmark.LATENCY_FILE)),
        }
    return results
