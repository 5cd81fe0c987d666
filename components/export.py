"""Export a trained classifier as a MediaPipe-loadable float .tflite.

The serving SavedModel (fixed [1, seq_len] int32 inputs, one `score` output) is kept next to the
.tflite: quantization re-converts from it rather than from the Keras weights, so every model in
the export folder comes from the same graph.

Export folder: `saved_model/`, `model.tflite` (metadata + vocab/labels packed), `labels.txt`,
`vocab.txt` (the vocabulary folder's file, unchanged), `tokenizer.json` (BERT) and `export.json`.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any, Dict, List, Optional

import components  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from components import metadata as md
from components.errors import VocabularyError
from components.options import AWE, BERT

SAVED_MODEL = "saved_model"
TFLITE = "model.tflite"
EXPORT_INFO = "export.json"
TOKENIZER_INFO = "tokenizer.json"
SIGNATURE = "serving_default"
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
    with open(os.path.join(export_dir, EXPORT_INFO), encoding="utf-8") as f:
        return json.load(f)


def _bert_do_lower_case(vocab_dir: str) -> Optional[bool]:
    path = os.path.join(vocab_dir, TOKENIZER_INFO)
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return bool(json.load(f).get("do_lower_case", True))


def export_model(model_dir: str, vocab_dir: str, output_dir: str) -> Dict[str, Any]:
    """Trained model folder + vocabulary folder -> export folder (see module docstring)."""
    from components.model_io import load_trained

    vocab_path = os.path.join(vocab_dir, md.VOCAB_FILE)
    if not os.path.exists(vocab_path):
        raise VocabularyError(f"{vocab_dir}: no {md.VOCAB_FILE}")
    model, info = load_trained(model_dir)
    return export_keras_model(model, info, vocab_dir, output_dir)


def export_keras_model(model, info: Dict[str, Any], vocab_dir: str, output_dir: str) -> Dict[str, Any]:
    """Exports an in-memory model described by `info` (model.json's fields).

    Split from `export_model` so a caller holding a freshly trained model (the facade, a test
    with a stand-in BERT) skips the save/rebuild round trip.
    """
    vocab_path = os.path.join(vocab_dir, md.VOCAB_FILE)
    if not os.path.exists(vocab_path):
        raise VocabularyError(f"{vocab_dir}: no {md.VOCAB_FILE}")
    architecture = info["architecture"]
    seq_len = int(info["model_options"]["seq_len"])
    label_names = list(info["label_names"])
    os.makedirs(output_dir, exist_ok=True)

    saved_model_dir = os.path.join(output_dir, SAVED_MODEL)
    input_names = save_serving_model(model, seq_len, saved_model_dir)
    float_bytes = converter_for(saved_model_dir).convert()

    do_lower_case = None
    if architecture == AWE:
        do_lower_case = bool(info["model_options"].get("do_lower_case", True))
        packed = md.write_awe_metadata(
            float_bytes, vocab_path, label_names, do_lower_case=do_lower_case,
            case_variants=bool(info["model_options"].get("device_case_variants", False)))
    elif architecture == BERT:
        do_lower_case = _bert_do_lower_case(vocab_dir)
        packed = md.write_bert_metadata(float_bytes, vocab_path, label_names)
        if do_lower_case is not None:
            shutil.copyfile(os.path.join(vocab_dir, TOKENIZER_INFO), os.path.join(output_dir, TOKENIZER_INFO))
    else:
        raise ValueError(f"unknown architecture {architecture!r}")

    tflite_path = md.write_file(os.path.join(output_dir, TFLITE), packed)
    with open(os.path.join(output_dir, md.LABELS_FILE), "w", encoding="utf-8") as f:
        f.write("\n".join(label_names) + "\n")
    shutil.copyfile(vocab_path, os.path.join(output_dir, md.VOCAB_FILE))
    result = {
        "tflite": tflite_path,
        "model_bytes": len(packed),
        "architecture": architecture,
        "seq_len": seq_len,
        "label_names": label_names,
        "input_names": input_names,
        "tflite_input_names": md.input_tensor_names(packed),
        "do_lower_case": do_lower_case,
        "saved_model": saved_model_dir,
        "labels": os.path.join(output_dir, md.LABELS_FILE),
        "vocab": os.path.join(output_dir, md.VOCAB_FILE),
        "quantization": "none",
        "warnings": [],
    }
    if architecture == BERT and do_lower_case is False:
        # Observed with mediapipe 1.2.3: "GREAT" and "great" get the same WordPiece ids on device.
        result["warnings"].append(
            "MediaPipe's BERT tokenizer lower-cases its input, but this encoder is cased "
            "(do_lower_case false): on-device scores will differ from evaluation for upper-case text")
    # Paths inside the folder are stored relative to it: the folder is copied between stores.
    stored = {**result, "tflite": TFLITE, "saved_model": SAVED_MODEL, "labels": md.LABELS_FILE,
              "vocab": md.VOCAB_FILE}
    with open(os.path.join(output_dir, EXPORT_INFO), "w", encoding="utf-8") as f:
        json.dump(stored, f, indent=2, sort_keys=True)
    return result
