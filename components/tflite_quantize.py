"""Post-training quantization of an exported classifier, keeping its MediaPipe metadata.

Re-converts the export folder's serving SavedModel (not the float .tflite: the converter
quantizes graphs, not flatbuffers), then copies the float model's metadata and associated files
onto the result, so the quantized model tokenizes and labels exactly like its parent.

int8 is full-integer where the ops allow it: weights and activations int8, calibrated on
tokenized training examples. Token-id inputs stay int32 (ids are indices, not values to scale)
and the output stays float probabilities, which is what MediaPipe's classifier expects.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from typing import Any, Dict, Iterator, List, Optional

import numpy as np

import components  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from components import metadata as md
from components.errors import ConfigError, DataSourceError
from components.export import DELIVERABLE_FILES as REPEATED_FILES  # noqa: F401 (the folder's contract)
from components.export import SAVED_MODEL, TFLITE, converter_for, copy_deliverable_files, read_export_info
from components.options import QuantizationConfig

QUANT_INFO = "quantization.json"
_TENSOR_TYPES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 6: "bool",
                 7: "int16", 9: "int8"}


def representative_examples(representative_dir: str, count: int,
                            input_names: List[str]) -> List[Dict[str, np.ndarray]]:
    """Up to `count` tokenized examples as {signature input name: [1, seq_len] int32}."""
    from components.tokenized import load_tokenized

    dataset, _ = load_tokenized(representative_dir)
    examples = []
    for features, _label in dataset:
        missing = [n for n in input_names if n not in features]
        if missing:
            raise ConfigError(f"{representative_dir}: tokenized examples have features "
                              f"{sorted(features)}, the model needs {input_names}")
        batch = {n: np.asarray(features[n]) for n in input_names}
        rows = [batch] if batch[input_names[0]].ndim == 1 else [
            {n: v[i] for n, v in batch.items()} for i in range(batch[input_names[0]].shape[0])]
        for row in rows:
            examples.append({n: v.astype(np.int32).reshape(1, -1) for n, v in row.items()})
            if len(examples) >= count:
                return examples
    if not examples:
        raise ConfigError(f"{representative_dir}: no tokenized examples to calibrate int8 with")
    return examples


def _convert(saved_model_dir: str, mode: str, examples: Optional[List[Dict[str, np.ndarray]]],
             strict_int8: bool = True) -> bytes:
    import tensorflow as tf

    converter = converter_for(saved_model_dir)
    if mode == "none":
        return converter.convert()
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif mode == "int8":
        def dataset() -> Iterator[Dict[str, np.ndarray]]:
            yield from examples

        converter.representative_dataset = dataset
        converter.target_spec.supported_ops = (
            [tf.lite.OpsSet.TFLITE_BUILTINS_INT8] if strict_int8
            else [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS])
    return converter.convert()


def tensor_summary(tflite_bytes: bytes) -> Dict[str, Dict[str, int]]:
    """Bytes of constant data and count of activation tensors per dtype: shows what got quantized."""
    model = md._model(tflite_bytes)
    graph = model.Subgraphs(0)
    weights: Counter = Counter()
    activations: Counter = Counter()
    for i in range(graph.TensorsLength()):
        tensor = graph.Tensors(i)
        dtype = _TENSOR_TYPES.get(tensor.Type(), str(tensor.Type()))
        size = model.Buffers(tensor.Buffer()).DataLength() if tensor.Buffer() else 0
        if size:
            weights[dtype] += size
        else:
            activations[dtype] += 1
    return {"weight_bytes": dict(weights), "activation_tensors": dict(activations)}


def quantize_model(export_dir: str, config: QuantizationConfig, output_dir: str,
                   representative_dir: Optional[str] = None) -> Dict[str, Any]:
    """Export folder -> `output_dir/model.tflite` quantized per `config`, metadata carried over.

    The output folder repeats the parent's labels/vocab files so it is a deliverable by itself.
    """
    if isinstance(config, dict):
        config = QuantizationConfig.from_dict(config)
    parent_path = os.path.join(export_dir, TFLITE)
    saved_model_dir = os.path.join(export_dir, SAVED_MODEL)
    for path in (parent_path, saved_model_dir):
        if not os.path.exists(path):
            raise ConfigError(f"{export_dir}: no {os.path.basename(path)}; is this an export folder?")
    with open(parent_path, "rb") as f:
        parent = f.read()
    export_info = read_export_info(export_dir)

    examples = None
    if config.mode == "int8":
        if not representative_dir:
            raise ConfigError("int8 quantization needs representative data: pass the tokenized "
                              "training split as representative_dir")
        examples = representative_examples(representative_dir, config.representative_examples,
                                           export_info["input_names"])

    fallback = False
    if config.mode == "none":
        converted = parent
    else:
        try:
            converted = _convert(saved_model_dir, config.mode, examples)
        except Exception as err:
            if config.mode != "int8":
                raise
            # Some encoders have ops without an int8 kernel; those stay float, the rest int8.
            fallback = str(err).strip().splitlines()[-1][:300] if str(err).strip() else repr(err)
            converted = _convert(saved_model_dir, config.mode, examples, strict_int8=False)
        converted = md.copy_metadata(parent, converted)

    os.makedirs(output_dir, exist_ok=True)
    path = md.write_file(os.path.join(output_dir, TFLITE), converted)
    copy_deliverable_files(export_dir, output_dir)
    result = {
        "tflite": path,
        "model_bytes": len(converted),
        "float_model_bytes": len(parent),
        "size_ratio": len(converted) / len(parent),
        "quantization": config.mode,
        "config": config.to_dict(),
        "representative_examples": len(examples) if examples else 0,
        "int8_float_fallback": fallback,
        "tensors": tensor_summary(converted),
        "architecture": export_info.get("architecture"),
        "seq_len": export_info.get("seq_len"),
        "label_names": export_info.get("label_names"),
        "input_names": export_info.get("input_names"),
    }
    # Stored without paths: the folder is copied between stores (the caller gets `tflite`).
    with open(os.path.join(output_dir, QUANT_INFO), "w", encoding="utf-8") as f:
        json.dump({k: v for k, v in result.items() if k != "tflite"}, f, indent=2, sort_keys=True)
    return result


def read_quantization_info(folder: str) -> Dict[str, Any]:
    path = os.path.join(folder, QUANT_INFO)
    if not os.path.exists(path):
        raise DataSourceError(f"{folder}: no {QUANT_INFO}; is this a quantize output folder?")
    with open(path, encoding="utf-8") as f:
        return json.load(f)

