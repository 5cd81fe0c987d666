"""AWE on SST-2, honestly evaluated: accuracy, exported model size and training time.

    .venv/bin/python benchmarks/awe_sst2.py [--data ../shared/data/sst2] [--epochs 10] [--out DIR]

A stratified 5 % of `train.tsv` is held out for checkpoint selection; `dev.tsv` (the published
benchmark's test set) is only ever used for the final evaluation. Runs the same library
functions as the pipeline's steps (ingest → Beam preprocess → train → evaluate → export →
quantize → LiteRT evaluation), without kfp's per-step process start-up. The last line printed
is one JSON object: {"accuracy", "model_bytes", "train_s", "tflite", ...}.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from components.options import (AverageWordEmbeddingHParams, AverageWordEmbeddingModelOptions,  # noqa: E402
                                CSVParams, QuantizationConfig, SplitOptions)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/sst2", help="folder with train.tsv and dev.tsv")
    parser.add_argument("--epochs", type=int, default=AverageWordEmbeddingHParams().epochs)
    parser.add_argument("--out", default="", help="work folder (default: a new temporary folder)")
    args = parser.parse_args(argv)
    logging.getLogger("apache_beam").setLevel(logging.ERROR)

    from components.evaluate import evaluate
    from components.export import export_model
    from components.ingest import ingest
    from components.preprocess import preprocess
    from components.quantize import quantize_model
    from components.tflite_eval import compare_models
    from components.train import train

    work = args.out or tempfile.mkdtemp(prefix="awe-sst2-")
    folder = {name: os.path.join(work, name) for name in
              ("train", "validation", "test", "profile", "tokens_train", "tokens_validation", "tokens_test",
               "vocab", "model", "export", "quantized")}
    timings = {}
    started = time.time()
    profile = ingest(os.path.join(args.data, "train.tsv"), test=os.path.join(args.data, "dev.tsv"),
                     csv_params=CSVParams(delimiter="\t", text_column="sentence", label_column="label"),
                     split_options=SplitOptions(validation_fraction=0.05, test_fraction=0.0, seed=42),
                     output_dirs={n: folder[n] for n in ("train", "validation", "test")},
                     profile_dir=folder["profile"])
    timings["ingest_s"] = time.time() - started
    options = AverageWordEmbeddingModelOptions()
    hparams = AverageWordEmbeddingHParams(epochs=args.epochs)
    started = time.time()
    preprocess("awe", {n: folder[n] for n in ("train", "validation", "test")},
               {n: folder[f"tokens_{n}"] for n in ("train", "validation", "test")}, folder["vocab"], options)
    timings["preprocess_s"] = time.time() - started
    summary = train("awe", folder["tokens_train"], folder["tokens_validation"], folder["vocab"], options, hparams,
                    folder["model"])
    metrics = evaluate(folder["model"], folder["tokens_test"])
    exported = export_model(folder["model"], folder["vocab"], folder["export"])
    quantized = quantize_model(folder["export"], QuantizationConfig.for_dynamic(), folder["quantized"])
    compare = compare_models(exported["tflite"], os.path.join(folder["quantized"], "model.tflite"),
                             folder["tokens_test"], max_accuracy_drop=100.0)
    rows = {name: split["rows"] for name, split in profile["splits"].items()}
    print(f"rows: {rows}")
    print(f"epochs: {hparams.epochs}, best epoch {summary['best_epoch']} "
          f"(validation accuracy {summary['best_val_accuracy']:.4f})")
    for entry in summary["history"]:
        print("  " + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in entry.items()))
    print(f"dev accuracy: Keras {metrics['accuracy']:.4f}, float .tflite {compare['float']['accuracy']:.4f}, "
          f"dynamic-range .tflite {compare['quantized']['accuracy']:.4f}")
    print(f"model bytes: float {exported['model_bytes']}, dynamic-range {quantized['model_bytes']}")
    print(f"training {summary['train_seconds']:.1f} s; preprocessing {timings['preprocess_s']:.1f} s")
    result = {"accuracy": metrics["accuracy"], "model_bytes": exported["model_bytes"],
              "train_s": summary["train_seconds"], "tflite": exported["tflite"],
              "float_tflite_accuracy": compare["float"]["accuracy"],
              "quantized_accuracy": compare["quantized"]["accuracy"],
              "quantized_model_bytes": quantized["model_bytes"], "best_epoch": summary["best_epoch"],
              "macro_f1": metrics["macro_f1"], "preprocess_s": round(timings["preprocess_s"], 2)}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
