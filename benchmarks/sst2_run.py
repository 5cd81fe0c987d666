"""SST-2 through the pipeline's own library functions, for the accuracy benchmarks.

ingest (validation = a stratified 5 % of train.tsv; dev.tsv is the untouched test set) → Beam
preprocess → train → evaluate → export → dynamic-range quantization → LiteRT evaluation. The
same code the kfp steps run, without kfp's per-step process start-up.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from typing import Dict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from components.options import CSVParams, QuantizationConfig, SplitOptions

SPLITS = ("train", "validation", "test")


def run(architecture: str, model_options, hparams, data: str, out: str = "") -> Dict:
    """Trains and evaluates one architecture on SST-2; returns the figures the benchmarks print."""
    logging.getLogger("apache_beam").setLevel(logging.ERROR)
    from components.evaluate import evaluate
    from components.export import export_model
    from components.ingest import ingest
    from components.steps import preprocess_step
    from components.tflite_eval import compare_models
    from components.tflite_quantize import quantize_model
    from components.train import train

    work = out or tempfile.mkdtemp(prefix=f"{architecture}-sst2-")
    folder = {name: os.path.join(work, name) for name in
              (*SPLITS, "profile", *(f"tokens_{s}" for s in SPLITS), "vocab", "model", "export", "quantized")}
    profile = ingest(os.path.join(data, "train.tsv"), test=os.path.join(data, "dev.tsv"),
                     csv_params=CSVParams(delimiter="\t", text_column="sentence", label_column="label"),
                     split_options=SplitOptions(validation_fraction=0.05, test_fraction=0.0, seed=42),
                     output_dirs={n: folder[n] for n in SPLITS}, profile_dir=folder["profile"])
    started = time.time()
    preprocess_step(architecture, model_options.to_dict(), beam_pipeline_args=[],
                    split_dirs={n: folder[n] for n in SPLITS},
                    output_dirs={n: folder[f"tokens_{n}"] for n in SPLITS}, vocab_dir=folder["vocab"])
    preprocess_s = time.time() - started
    summary = train(architecture, folder["tokens_train"], folder["tokens_validation"], folder["vocab"],
                    model_options, hparams, folder["model"])
    metrics = evaluate(folder["model"], folder["tokens_test"])
    exported = export_model(folder["model"], folder["vocab"], folder["export"])
    quantized = quantize_model(folder["export"], QuantizationConfig.for_dynamic(), folder["quantized"])
    compare = compare_models(exported["tflite"], os.path.join(folder["quantized"], "model.tflite"),
                             folder["tokens_test"], max_accuracy_drop=100.0)

    print(f"rows: { {name: split['rows'] for name, split in profile['splits'].items()} }")
    print(f"epochs: {hparams.epochs}, best epoch {summary['best_epoch']} "
          f"(validation accuracy {summary['best_val_accuracy']:.4f})")
    for entry in summary["history"]:
        print("  " + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in entry.items()))
    print(f"dev accuracy: Keras {metrics['accuracy']:.4f}, float .tflite {compare['float']['accuracy']:.4f}, "
          f"dynamic-range .tflite {compare['quantized']['accuracy']:.4f}")
    print(f"model bytes: float {exported['model_bytes']}, dynamic-range {quantized['model_bytes']}")
    print(f"training {summary['train_seconds']:.1f} s; preprocessing {preprocess_s:.1f} s")
    return {"accuracy": metrics["accuracy"], "model_bytes": exported["model_bytes"],
            "train_s": summary["train_seconds"], "tflite": exported["tflite"],
            "float_tflite_accuracy": compare["float"]["accuracy"],
            "quantized_accuracy": compare["quantized"]["accuracy"],
            "quantized_model_bytes": quantized["model_bytes"], "best_epoch": summary["best_epoch"],
            "macro_f1": metrics["macro_f1"], "preprocess_s": round(preprocess_s, 2)}
