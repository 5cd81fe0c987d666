"""The distilled student on SST-2, honestly evaluated: validation held out of train.tsv, dev.tsv untouched.

    .venv/bin/python benchmarks/distill_sst2.py [--teacher MODEL_DIR] [--data ../shared/data/sst2]
        [--options JSON] [--hparams JSON] [--work DIR] [--transfer DIR] [--quantization dynamic]

Without `--teacher` it first fine-tunes the BERT teacher (minilm-l6, defaults: about 35 minutes on
2 cores); with it, the teacher's model folder (what the pipeline's BERT training step writes) is
reused and only the student's path is timed: transfer-set scoring (Beam), preprocessing, training,
export, quantization. Accuracy is measured through MediaPipe's `TextClassifier` on the exported
model (what a device runs), also on dev in Title Case and UPPER CASE, and through Keras; latency is
the LiteRT interpreter's 1-thread p50 on dev's examples. The last line printed is one JSON object:
{"accuracy", "device_accuracy", "device_title", "device_upper", "model_bytes", "p50_us",
"teacher_accuracy", "transfer_rows", "wall_s", ...}.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

SPLITS = ("train", "validation", "test")


def _folders(work: str):
    names = ("train", "validation", "test", "profile", "transfer", "bert_tokens_train", "bert_tokens_validation",
             "bert_tokens_test", "bert_vocab", "teacher", "tokens_train", "tokens_validation", "tokens_test",
             "vocab", "model", "evaluation", "export", "quantized", "tflite")
    return {name: os.path.join(work, name) for name in names}


def _add_word_vectors(transfer_dir, teacher, train_dir, options):
    """A transfer set scored before the student started from the teacher's word vectors gets them
    now (seconds), so reusing it measures the default student."""
    from components import split_io, transfer, word_vectors
    from components.options import DistilledModelOptions
    from components.teacher import TeacherScorer
    resolved = DistilledModelOptions.from_dict(options)
    if resolved.embedding_init != "teacher" or word_vectors.read(transfer_dir) is not None:
        return
    texts = [text for text, _ in split_io.iter_split(train_dir)]
    found = transfer.teacher_vectors(TeacherScorer(teacher), texts, resolved)
    print(f"added the teacher's vectors of {transfer.write_teacher_vectors(transfer_dir, found):,} words to "
          f"{transfer_dir}", flush=True)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "sst2"))
    parser.add_argument("--teacher", default="", help="a trained BERT model folder to reuse")
    parser.add_argument("--options", type=json.loads, default={}, help="DistilledModelOptions overrides (JSON)")
    parser.add_argument("--hparams", type=json.loads, default={}, help="DistilledHParams overrides (JSON)")
    parser.add_argument("--quantization", default="dynamic", choices=("none", "dynamic", "float16"))
    parser.add_argument("--work", default="")
    parser.add_argument("--transfer", default="",
                        help="a scored transfer set to reuse (another run's WORK/transfer); its scoring time is "
                             "taken from its transfer.json")
    parser.add_argument("--latency-runs", type=int, default=2000)
    args = parser.parse_args(argv)
    logging.getLogger("apache_beam").setLevel(logging.ERROR)

    from suite import _device_accuracy  # MediaPipe on the export, as the suite measures it

    from components import steps
    from components.benchmark import benchmark_tflite
    from components.ingest import ingest
    from components.options import CSVParams, SplitOptions
    from components.teacher import TeacherScorer

    work = args.work or tempfile.mkdtemp(prefix="distill-sst2-")
    folder = _folders(work)
    ingest(os.path.join(args.data, "train.tsv"), test=os.path.join(args.data, "dev.tsv"),
           csv_params=CSVParams(delimiter="\t", text_column="sentence", label_column="label"),
           split_options=SplitOptions(validation_fraction=0.05, test_fraction=0.0, seed=42),
           output_dirs={n: folder[n] for n in SPLITS}, profile_dir=folder["profile"])
    teacher = args.teacher
    if not teacher:
        started = time.time()
        bert = {"encoder": "minilm-l6"}
        steps.preprocess_step("bert", bert, [], {n: folder[n] for n in SPLITS},
                              {n: folder[f"bert_tokens_{n}"] for n in SPLITS}, folder["bert_vocab"])
        steps.train_step("bert", bert, {}, folder["bert_tokens_train"], folder["bert_tokens_validation"],
                         folder["bert_vocab"], folder["teacher"])
        teacher = folder["teacher"]
        print(f"teacher trained in {time.time() - started:.0f} s", flush=True)

    from components.split_io import read_split
    dev_texts, dev_labels, label_names = read_split(folder["test"])
    teacher_accuracy = float((TeacherScorer(teacher).score(dev_texts).argmax(1) == dev_labels).mean())
    print(f"teacher dev accuracy {100 * teacher_accuracy:.2f} %", flush=True)

    started = time.time()
    options = dict(args.options)
    if args.transfer:
        from components.transfer import read_summary
        folder["transfer"] = args.transfer
        transfer = read_summary(args.transfer)
        scored_s = float(transfer["seconds"])
        started -= scored_s
        print(f"reusing the transfer set in {args.transfer} ({transfer['rows']:,} texts, scored in "
              f"{scored_s:.0f} s)", flush=True)
        _add_word_vectors(args.transfer, teacher, folder["train"], options)
    else:
        transfer = steps.transfer_step("distilled", options, teacher, [], folder["train"], folder["transfer"])
        scored_s = time.time() - started
    splits = {"train": folder["transfer"], "validation": folder["validation"], "test": folder["test"]}
    steps.preprocess_step("distilled", options, [], splits, {n: folder[f"tokens_{n}"] for n in SPLITS},
                          folder["vocab"])
    trained = steps.train_step("distilled", options, args.hparams, folder["tokens_train"],
                               folder["tokens_validation"], folder["vocab"], folder["model"])
    keras_metrics = steps.evaluate_step(folder["model"], folder["tokens_test"], folder["evaluation"],
                                        folder["tokens_validation"])
    exported = steps.export_step(folder["model"], folder["vocab"], folder["export"])
    quantized = steps.quantize_step(folder["export"], {"mode": args.quantization}, folder["quantized"],
                                    folder["tokens_train"])
    wall_s = time.time() - started
    compare = steps.tflite_evaluate_step(folder["export"], folder["quantized"], folder["tokens_test"], 100.0,
                                         folder["tflite"])

    from components.split_io import iter_split
    rows = list(iter_split(folder["test"]))
    device = _device_accuracy(quantized["tflite"], rows, label_names)
    latency = benchmark_tflite(quantized["tflite"], threads=1, runs=args.latency_runs, warmup=200,
                               examples=folder["tokens_test"])
    float_latency = benchmark_tflite(exported["tflite"], threads=1, runs=args.latency_runs, warmup=200,
                                     examples=folder["tokens_test"])
    result = {
        "accuracy": keras_metrics["accuracy"],
        "device_accuracy": device[""]["accuracy"],
        "device_title": device["_title"]["accuracy"],
        "device_upper": device["_upper"]["accuracy"],
        "quantized_tflite_accuracy": compare["quantized"]["accuracy"],
        "float_tflite_accuracy": compare["float"]["accuracy"],
        "model_bytes": quantized["model_bytes"],
        "float_model_bytes": exported["model_bytes"],
        "p50_us": round(1000 * latency["p50_ms"], 1),
        "float_p50_us": round(1000 * float_latency["p50_ms"], 1),
        "teacher_accuracy": teacher_accuracy,
        "transfer_rows": transfer["rows"],
        "transfer_s": round(scored_s, 1),
        "train_s": trained["train_seconds"],
        "best_epoch": trained["best_epoch"],
        "wall_s": round(wall_s, 1),
        "seq_len": exported["seq_len"],
        "options": options, "hparams": args.hparams, "quantization": args.quantization,
        "picked": trained["picked"],
    }
    print(f"student dev accuracy: Keras {100 * result['accuracy']:.2f} %, on device (MediaPipe, "
          f"{args.quantization}) {100 * result['device_accuracy']:.2f} % (Title {100 * result['device_title']:.2f} %, "
          f"UPPER {100 * result['device_upper']:.2f} %); teacher {100 * teacher_accuracy:.2f} %")
    print(f"model {result['model_bytes']:,} B ({args.quantization}; float {result['float_model_bytes']:,} B), "
          f"1-thread p50 {result['p50_us']} µs (float {result['float_p50_us']} µs)")
    print(f"student path {wall_s:.0f} s: transfer set {transfer['rows']:,} texts scored in {scored_s:.0f} s, "
          f"training {trained['train_seconds']:.0f} s")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
