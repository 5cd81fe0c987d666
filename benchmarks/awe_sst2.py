"""AWE on SST-2, honestly evaluated: accuracy, exported model size and training time.

    .venv/bin/python benchmarks/awe_sst2.py [--data ../shared/data/sst2] [--epochs 10] [--out DIR]

A stratified 5 % of `train.tsv` is held out for checkpoint selection; `dev.tsv` (the published
benchmark's test set) is only ever used for the final evaluation (see `benchmarks/sst2_run.py`).
The last line printed is one JSON object: {"accuracy", "model_bytes", "train_s", "tflite", ...}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import sst2_run

from components.options import AverageWordEmbeddingHParams, AverageWordEmbeddingModelOptions


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/sst2", help="folder with train.tsv and dev.tsv")
    parser.add_argument("--epochs", type=int, default=AverageWordEmbeddingHParams().epochs)
    parser.add_argument("--out", default="", help="work folder (default: a new temporary folder)")
    args = parser.parse_args(argv)
    result = sst2_run.run("awe", AverageWordEmbeddingModelOptions(), AverageWordEmbeddingHParams(epochs=args.epochs),
                          args.data, args.out)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
