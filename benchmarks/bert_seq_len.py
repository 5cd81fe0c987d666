"""A trained BERT model exported at its fitted input length and at Model Maker's 128: accuracy on
SST-2 dev through MediaPipe (as given, Title Case, UPPER CASE) and 1-thread latency.

    .venv/bin/python benchmarks/bert_seq_len.py --model MODEL_DIR [--data ../shared/data/sst2]
        [--lengths 0,128] [--repeats 5] [--runs 300]

`--model` is a BERT model folder as the pipeline's training step writes it (0 in `--lengths` means
the length it was trained with: the fitted one by default). MediaPipe feeds `[1, seq_len]`, so the
device pays for every padded position; repetitions take turns across the lengths so a load burst
hits them alike. The last line printed is one JSON object: {LENGTH: {"device", "device_title",
"device_upper", "keras", "model_bytes", "p50_ms"}}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "sst2"))
    parser.add_argument("--lengths", default="0,128")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--work", default="")
    args = parser.parse_args(argv)

    from suite import _device_accuracy, _read

    from components import architectures, model_io
    from components import vocabulary as vocab_io
    from components.benchmark import benchmark_tflite
    from components.export import export_keras_model
    from components.options import QuantizationConfig
    from components.tflite_quantize import quantize_model

    work = args.work or tempfile.mkdtemp(prefix="bert-seq-len-")
    model, info = model_io.load_trained(args.model)
    spec = architectures.get(info["architecture"])
    options = spec.options(info["model_options"])
    plan = spec.vocabulary_plan(options)
    vocab_dir = os.path.join(work, "vocab")
    vocab_io.write_folder(vocab_dir, vocab_io.Vocabulary(plan.recipe.vocabulary_format, plan.tokens,
                                                         plan.recipe.do_lower_case), raw=plan.raw)
    rows = _read(os.path.join(args.data, "dev.tsv"), "sentence")
    texts = [t for t, _ in rows]
    labels = [int(label) for _, label in rows]
    results, paths = {}, {}
    for length in [int(x) for x in args.lengths.split(",")]:
        seq_len = length or int(options.seq_len)
        tokenizer = plan.recipe.build(plan.tokens, seq_len)
        features, _ = tokenizer.encode_features(texts)
        probs = model({k: features[k] for k in tokenizer.feature_names}, training=False).numpy()
        keras_accuracy = float((probs.argmax(1) == labels).mean())
        folder = os.path.join(work, f"export-{seq_len}")
        export_keras_model(model, dict(info, model_options=dict(info["model_options"], seq_len=seq_len)), vocab_dir,
                           folder)
        quantized = quantize_model(folder, QuantizationConfig.for_dynamic(), folder + "-dynamic")
        device = _device_accuracy(quantized["tflite"], rows, info["label_names"])
        results[seq_len] = {"keras": keras_accuracy, "device": device[""]["accuracy"],
                            "device_title": device["_title"]["accuracy"],
                            "device_upper": device["_upper"]["accuracy"], "model_bytes": quantized["model_bytes"],
                            "p50_ms": []}
        paths[seq_len] = quantized["tflite"]
        print(f"seq_len {seq_len}: Keras {100 * keras_accuracy:.2f} %, device {100 * results[seq_len]['device']:.2f} %",
              flush=True)
    for _ in range(args.repeats):
        for seq_len, path in paths.items():
            results[seq_len]["p50_ms"].append(benchmark_tflite(path, threads=1, runs=args.runs, warmup=30)["p50_ms"])
    for seq_len, row in results.items():
        row["p50_ms"] = statistics.median(row["p50_ms"])
        print(f"seq_len {seq_len}: dynamic-range {row['model_bytes']:,} B, 1-thread p50 {row['p50_ms']:.2f} ms, "
              f"device accuracy {100 * row['device']:.2f} % (Title {100 * row['device_title']:.2f} %, "
              f"UPPER {100 * row['device_upper']:.2f} %)")
    print(json.dumps({str(k): v for k, v in results.items()}))
    return results


if __name__ == "__main__":
    main()
