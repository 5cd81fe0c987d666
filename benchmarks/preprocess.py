"""Preprocessing throughput: SST-2's training split, AWE and BERT, DirectRunner in-memory and multi-processing.

    .venv/bin/python benchmarks/preprocess.py [--data ../shared/data/sst2] [--workers 2]

Converts `train.tsv` (header `sentence<TAB>label`) into a split folder first (timed separately, as
"convert_s"), then times `components.preprocess.preprocess` for each architecture and mode, from
pipeline construction to the last file written (Beam start-up and worker start-up included; the
first BERT run also pays TensorFlow's import). The BERT vocabulary is the bundled MiniLM WordPiece
vocab (uncased). The last line printed is one JSON object:
`{"rows": N, "best_wall_s": ..., "modes": {MODE: {"wall_s": ..., "rows_per_s": ...}}}`, where a
mode's wall time covers both architectures and rows_per_s is rows / that wall time.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from components import split_io
from components.options import AverageWordEmbeddingModelOptions, BertModelOptions
from components.preprocess import preprocess


def convert_tsv(tsv: str, folder: str) -> int:
    with open(tsv, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        rows = [(row["sentence"], row["label"]) for row in reader]
    labels = sorted({label for _, label in rows})
    return split_io.write_split(folder, rows, labels)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/sst2",
                        help="folder holding train.tsv (default ../shared/data/sst2)")
    parser.add_argument("--workers", type=int, default=2, help="multi-processing worker count")
    args = parser.parse_args(argv)
    logging.getLogger("apache_beam").setLevel(logging.ERROR)

    work = tempfile.mkdtemp(prefix="preprocess-bench-")
    try:
        return _run(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(args, work: str) -> dict:
    split = os.path.join(work, "train")
    start = time.perf_counter()
    rows = convert_tsv(os.path.join(args.data, "train.tsv"), split)
    convert_s = time.perf_counter() - start
    print(f"converted {rows} rows to a split folder in {convert_s:.2f} s")

    modes = {
        "in_memory": ["--direct_running_mode=in_memory"],
        "multi_processing": ["--direct_running_mode=multi_processing",
                             f"--direct_num_workers={args.workers}"],
    }
    runs = {
        "awe": dict(model_options=AverageWordEmbeddingModelOptions()),
        "bert": dict(model_options=BertModelOptions(encoder="minilm-l6")),
    }
    results = {}
    for mode, beam_args in modes.items():
        result = {}
        for architecture, kwargs in runs.items():
            out = os.path.join(work, mode, architecture)
            start = time.perf_counter()
            summary = preprocess(architecture, {"train": split}, {"train": os.path.join(out, "train")},
                                 os.path.join(out, "vocab"), beam_pipeline_args=beam_args, **kwargs)
            wall = time.perf_counter() - start
            assert summary["splits"]["train"]["num_examples"] == rows
            result[f"{architecture}_wall_s"] = round(wall, 2)
            print(f"{mode:>16} {architecture:>4}: {wall:6.2f} s  {rows / wall:9.0f} rows/s  "
                  f"(vocab {summary['vocab_size']}, truncated "
                  f"{summary['splits']['train']['truncated']})")
        wall = result["awe_wall_s"] + result["bert_wall_s"]
        results[mode] = {"wall_s": round(wall, 2), "rows_per_s": round(rows / wall, 1), **result}
        print(f"{mode:>16} both: {wall:6.2f} s  {rows / wall:9.0f} rows/s")
    report = {"rows": rows, "best_wall_s": min(r["wall_s"] for r in results.values()),
              "convert_s": round(convert_s, 2), "modes": results}
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
