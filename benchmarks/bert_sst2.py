"""BERT on SST-2: training throughput with length-bucketed vs padded batches, and accuracy.

    .venv/bin/python benchmarks/bert_sst2.py --throughput-only      # a few minutes on a CPU
    .venv/bin/python benchmarks/bert_sst2.py [--learning-rate R]     # + full fine-tune (~35 min CPU)

Uses the offline `minilm-l6` encoder by default. `train.tsv` gives training data minus a
stratified 5 % validation hold-out (best-epoch selection); `dev.tsv` is the untouched test set,
as in the published Model Maker table. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from typing import Dict, List, Sequence, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for path in (ROOT, os.path.dirname(os.path.abspath(__file__))):
    if path not in sys.path:
        sys.path.insert(0, path)

import numpy as np
import tensorflow as tf
import tf_keras as keras

import components  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow loads)
from components import bert
from components.encoders import ENCODER_INPUTS, default_learning_rate, resolve_encoder
from components.options import BertHParams, BertModelOptions

DEFAULT_DATA = os.path.join(ROOT, "..", "shared", "data", "sst2")


def read_tsv(path: str) -> Tuple[List[str], np.ndarray]:
    texts, labels = [], []
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader)
        text_col, label_col = header.index("sentence"), header.index("label")
        for row in reader:
            texts.append(row[text_col].strip())
            labels.append(int(row[label_col]))
    return texts, np.asarray(labels, np.int32)


def stratified_holdout(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of the held-out rows: `fraction` of each class, chosen at random."""
    rng = np.random.default_rng(seed)
    held = np.zeros(len(labels), bool)
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        held[rng.choice(rows, size=max(1, round(len(rows) * fraction)), replace=False)] = True
    return held


def tokenize(texts: Sequence[str], spec, seq_len: int) -> Dict[str, np.ndarray]:
    """The same features `load_tokenized` yields (padded to seq_len, plus `length`)."""
    from components.tokenizers import BertTokenizer
    tokenizer = BertTokenizer(spec.vocab_path, seq_len, spec.do_lower_case)
    chunks = [tokenizer.encode_batch(list(texts[i:i + 4096])) for i in range(0, len(texts), 4096)]
    return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}


def as_dataset(features: Dict[str, np.ndarray], labels: np.ndarray) -> tf.data.Dataset:
    return tf.data.Dataset.from_tensor_slices((features, labels))


def _replay(batches) -> tf.data.Dataset:
    """Pre-built batches as a dataset with open shapes, so Keras traces its step only once."""
    spec = ({k: tf.TensorSpec([None, None], tf.int32) for k in ENCODER_INPUTS},
            tf.TensorSpec([None], tf.int32))
    return tf.data.Dataset.from_generator(lambda: iter(batches), output_signature=spec)


def measure_throughput(model, batches: tf.data.Dataset, steps: int, warmup: int) -> Dict:
    """Training examples per second over `steps` steps, after `warmup` untimed ones."""
    taken = [(x, y) for x, y in batches.take(warmup + steps).as_numpy_iterator()]
    if len(taken) < warmup + steps:
        raise SystemExit(f"only {len(taken)} batches available; use fewer --steps")
    warm, timed = taken[:warmup], taken[warmup:]
    model.fit(_replay(warm), epochs=1, verbose=0)
    started = time.perf_counter()
    model.fit(_replay(timed), epochs=1, verbose=0)
    elapsed = time.perf_counter() - started
    examples = sum(len(y) for _, y in timed)
    widths = [x["input_word_ids"].shape[1] for x, _ in timed]
    return {"examples_per_s": examples / elapsed, "seconds": elapsed, "examples": examples,
            "mean_width": float(np.mean(widths))}


def main(argv=None) -> Dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=DEFAULT_DATA, help="folder with train.tsv and dev.tsv")
    parser.add_argument("--encoder", default="minilm-l6")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=48)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--learning-rate", type=float, default=0.0,
                        help="0 (default): the encoder's tuned default (5e-5 for minilm-l6)")
    parser.add_argument("--throughput-only", action="store_true")
    parser.add_argument("--steps", type=int, default=40, help="timed steps per batching mode")
    parser.add_argument("--warmup-steps", type=int, default=3)
    parser.add_argument("--max-train", type=int, default=0,
                        help="with --throughput-only: sample at least N training rows")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="", help="work folder for the full run (default: a temporary one)")
    args = parser.parse_args(argv)

    keras.utils.set_random_seed(args.seed)
    spec = resolve_encoder(args.encoder)
    options = BertModelOptions(encoder=args.encoder, seq_len=args.seq_len)
    hparams = BertHParams(epochs=args.epochs, batch_size=args.batch_size,
                          learning_rate=args.learning_rate or default_learning_rate(spec), seed=args.seed)
    texts, labels = read_tsv(os.path.join(args.data, "train.tsv"))
    rng = np.random.default_rng(args.seed)
    if args.throughput_only:  # a random sample is enough to fill the timed batches
        needed = max(args.max_train, 8 * (args.steps + args.warmup_steps) * args.batch_size)
        keep = np.sort(rng.choice(len(texts), size=min(needed, len(texts)), replace=False))
        texts, labels = [texts[i] for i in keep], labels[keep]
    held = stratified_holdout(labels, 0.05, args.seed)
    started = time.time()
    train_features = tokenize([t for t, h in zip(texts, held) if not h], spec, args.seq_len)
    train_labels = labels[~held]
    print(f"tokenized {len(train_labels)} training texts in {time.time() - started:.1f}s; "
          f"mean length {train_features['length'].mean():.1f}", flush=True)

    model = bert.build_bert_classifier(options, 2, encoder_spec=spec)
    bert.compile_classifier(model, bert.make_optimizer(hparams, 10 ** 6))
    train_ds = as_dataset(train_features, train_labels)
    result = {"encoder": args.encoder, "pooling": bert.pooling_mode(options, spec),
              "seq_len": args.seq_len, "batch_size": args.batch_size, "threads": os.cpu_count()}
    for mode, make in (("bucketed", bert.bucketed_batches), ("padded", bert.padded_batches)):
        measured = measure_throughput(
            model, make(train_ds.repeat(), args.batch_size, args.seq_len, True, args.seed),
            args.steps, args.warmup_steps)
        print(f"{mode}: {measured['examples_per_s']:.1f} examples/s "
              f"(mean padded width {measured['mean_width']:.1f})", flush=True)
        result[f"{mode}_examples_per_s"] = round(measured["examples_per_s"], 2)
        result[f"{mode}_mean_width"] = round(measured["mean_width"], 1)
    result["speedup"] = round(result["bucketed_examples_per_s"] / result["padded_examples_per_s"], 2)

    if not args.throughput_only:
        # The full run is the pipeline's own training and evaluation (benchmarks/sst2_run.py).
        import sst2_run
        full = sst2_run.run("bert", options, hparams, args.data, args.out)
        result.update({k: full[k] for k in ("accuracy", "train_s", "tflite", "model_bytes", "quantized_accuracy",
                                           "quantized_model_bytes", "best_epoch")})
    print(json.dumps(result, sort_keys=True))
    return result


if __name__ == "__main__":
    main()
