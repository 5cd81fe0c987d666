"""Export a trained classifier as a MediaPipe-loadable float .tflite.

The serving SavedModel (fixed [1, seq_len] int32 inputs, one `score` output) is kept next to the
.tflite: quantization re-converts from it rather than from the Keras weights, so every model in
the export folder comes from the same graph.

Export folder: `saved_model/`, `model.tflite` (metadata + vocab/labels packed), `labels.txt`,
`vocab.txt` and `tokenizer.json` (the vocabulary folder's files, unchanged) and `export.json`.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any, Dict, List

import components  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from components import architectures, labels
from components import metadata as md
from components import vocabulary as vocab_io
from components.errors import DataSourceError

SAVED_MODEL = "saved_model"
TFLITE = "model.tflite"
EXPORT_INFO = "export.json"
SIGNATURE = "serving_default"
# What an export folder holds beside the model, so it (or a copy) is a deliverable by itself.
DELIVERABLE_FILES = (labels.LABELS_FILE, vocab_io.VOCAB_FILE, vocab_io.TOKENIZER_FILE)
OUTPUT_NAME = "score"


def model_input_names(model) -> List[str]:
    names = getattr(model, "input_names", None)
    if not names:
        names = [t.name.split(":")[0] for t in model.inputs]
    return list(names)


def save_serving_model(model, seq_len: int, path: str) -> List[str]:
    """Saves `model` behind a fixed-shape signature; returns the signature's input names.

    A batch of one and a fixed length is what MediaPipe feeds, and fixed shapes let the
    converter fold shape arithmetic away.
    """
    import tensorflow as tf

    names = model_input_names(model)
    specs = [tf.TensorSpec([1, seq_len], tf.int32, name=n) for n in names]

    @tf.function(input_signature=specs)
    def serve(*tensors):
        inputs = tensors[0] if len(tensors) == 1 else dict(zip(names, tensors))
        return {OUTPUT_NAME: model(inputs, training=False)}

    module = tf.Module()
    module.model = model
    module.serve = serve
    if os.path.exists(path):
        shutil.rmtree(path)
    tf.saved_model.save(module, path, signatures={SIGNATURE: serve.get_concrete_function()})
    return names


def converter_for(saved_model_dir: str):
    """A TFLiteConverter on the serving signature, builtin ops only (what MediaPipe runs)."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir, signature_keys=[SIGNATURE])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter


def read_export_info(export_dir: str) -> Dict[str, Any]:
    path = os.path.join(export_dir, EXPORT_INFO)
    if not os.path.exists(path):
        raise DataSourceError(f"{export_dir}: no {EXPORT_INFO}; is this an export folder?")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def tflite_path(folder: str) -> str:
    """The .tflite of an export or quantized folder (both name it the same)."""
    return os.path.join(folder, TFLITE)


def copy_deliverable_files(source_dir: str, target_dir: str) -> None:
    """labels.txt and the vocabulary files beside a model, as an export folder holds them."""
    os.makedirs(target_dir, exist_ok=True)
    for name in DELIVERABLE_FILES:
        source = os.path.join(source_dir, name)
        if os.path.exists(source):
            shutil.copyfile(source, os.path.join(target_dir, name))


def export_model(model_dir: str, vocab_dir: str, output_dir: str) -> Dict[str, Any]:
    """Trained model folder + vocabulary folder -> export folder (see module docstring)."""
    from components.model_io import load_trained

    vocab_io.read_folder(vocab_dir)  # a clear error before the model is rebuilt
    model, info = load_trained(model_dir)
    return export_keras_model(model, info, vocab_dir, output_dir)


def export_keras_model(model, info: Dict[str, Any], vocab_dir: str, output_dir: str) -> Dict[str, Any]:
    """Exports an in-memory model described by `info` (model.json's fields).

    Split from `export_model` so a caller holding a freshly trained model (the facade, a test
    with a stand-in BERT) skips the save/rebuild round trip.
    """
    spec = architectures.get(info["architecture"])
    vocabulary = vocab_io.read_folder(vocab_dir)
    seq_len = int(info["model_options"]["seq_len"])
    label_names = list(info["label_names"])
    os.makedirs(output_dir, exist_ok=True)

    saved_model_dir = os.path.join(output_dir, SAVED_MODEL)
    input_names = save_serving_model(model, seq_len, saved_model_dir)
    float_bytes = converter_for(saved_model_dir).convert()
    packed = spec.write_metadata(float_bytes, vocabulary, label_names, info)

    path = md.write_file(os.path.join(output_dir, TFLITE), packed)
    labels.write(output_dir, label_names)
    vocab_io.write_folder(output_dir, vocabulary, raw=vocabulary.raw)
    result = {
        "tflite": path,
        "model_bytes": len(packed),
        "architecture": spec.name,
        "seq_len": seq_len,
        "label_names": label_names,
        "input_names": input_names,
        "tflite_input_names": md.input_tensor_names(packed),
        "do_lower_case": vocabulary.do_lower_case,
        "saved_model": saved_model_dir,
        "labels": os.path.join(output_dir, labels.LABELS_FILE),
        "vocab": os.path.join(output_dir, vocab_io.VOCAB_FILE),
        "quantization": "none",
        "warnings": spec.export_warnings(info, vocabulary),
    }
    # Paths inside the folder are stored relative to it: the folder is copied between stores.
    stored = {**result, "tflite": TFLITE, "saved_model": SAVED_MODEL, "labels": labels.LABELS_FILE,
              "vocab": vocab_io.VOCAB_FILE}
    with open(os.path.join(output_dir, EXPORT_INFO), "w", encoding="utf-8") as f:
        json.dump(stored, f, indent=2, sort_keys=True)
    return result
