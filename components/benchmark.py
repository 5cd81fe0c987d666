"""On-CPU latency of .tflite classifiers with the LiteRT interpreter, and the guide's table.

Works on any .tflite (ours or Model Maker's): input shapes come from the interpreter, and
without real examples the inputs are filled with plausible token ids. An id past the embedding
table makes GATHER fail, so the id range comes from the packed vocabulary or the embedding
table's size.

Only `invoke()` is timed, one example at a time at the model's batch of 1: that is the
on-device cost MediaPipe adds to tokenization.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np

from components import metadata as md
from components.errors import ConfigError, ModelFormatError

Examples = Union[str, Sequence[Mapping[str, np.ndarray]], None]
DYNAMIC_SEQ_LEN = 128
LATENCY_FILE = "latency.json"
_FALLBACK_VOCAB_BOUND = 100


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (it includes TensorFlow/LiteRT themselves)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


def packed_vocab(model_bytes: bytes) -> Dict[str, int]:
    """token -> id from a model's packed vocab.txt (either vocabulary format); {} without one."""
    from components import vocabulary as vocab_io
    from components.errors import VocabularyError

    data = md.associated_files(model_bytes).get(md.VOCAB_FILE)
    if not data:
        return {}
    try:
        return dict(vocab_io.parse_token_ids(data, md.VOCAB_FILE))
    except VocabularyError:  # not "TOKEN ID" lines: one token a line
        try:
            return {token: i for i, token in enumerate(vocab_io.parse_wordpiece(data, md.VOCAB_FILE))}
        except VocabularyError:
            return {}


def _gather_bound(interpreter, input_index: int) -> Optional[int]:
    """Rows of the embedding table this input indexes, when it feeds a GATHER directly."""
    try:
        ops = interpreter._get_ops_details()
        tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    except Exception:
        return None
    bounds = [int(tensors[op["inputs"][0]]["shape"][0]) for op in ops
              if op["op_name"] == "GATHER" and len(op["inputs"]) > 1
              and int(op["inputs"][1]) == input_index and op["inputs"][0] in tensors]
    return min(bounds) if bounds else None


def synthetic_inputs(interpreter, model_bytes: bytes, seed: int = 0) -> Dict[int, np.ndarray]:
    """Plausible inputs: a start token, random in-vocabulary ids for a quarter of the length,
    then padding; mask ones over the real tokens; segment ids zero; float inputs normal."""
    rng = np.random.default_rng(seed)
    details = interpreter.get_input_details()
    vocab = packed_vocab(model_bytes)
    bert_like = len(details) > 1
    values = {}
    for detail in details:
        shape = [int(d) for d in detail["shape"]]
        dtype = np.dtype(detail["dtype"])
        if dtype.kind == "f":
            values[detail["index"]] = rng.standard_normal(shape).astype(dtype)
            continue
        if dtype.kind not in "iu":
            raise ModelFormatError(f"input {detail['name']} has type {dtype}; only id and float inputs "
                                   "can be synthesized (pass tokenized examples instead)")
        length = shape[-1]
        real = min(length, max(2, length // 4))
        role = md.bert_input_role(detail["name"]) if bert_like else "ids"
        row = np.zeros(length, dtype=np.int64)
        if role == "mask":
            row[:real] = 1
        elif role == "ids":
            bound = (max(vocab.values()) + 1 if vocab else None) or _gather_bound(interpreter, detail["index"])
            bound = bound or _FALLBACK_VOCAB_BOUND
            if bert_like:
                start = vocab.get("[CLS]", 101 if bound > 1000 else 1)
                end = vocab.get("[SEP]", 102 if bound > 1000 else 2)
                low = 1000 if bound > 2000 else min(5, bound - 1)
            else:
                start, end, low = vocab.get("<START>", 1), None, min(3, bound - 1)
            row[0] = start
            row[1:real] = rng.integers(low, bound, size=real - 1)
            if end is not None and real > 2:
                row[real - 1] = end
        values[detail["index"]] = np.broadcast_to(row, shape).astype(dtype)
    return values


def _load(path: str, threads: int):
    from components.tflite_eval import make_interpreter

    interpreter = make_interpreter(path, threads)
    resized = False
    for detail in interpreter.get_input_details():
        signature = list(detail.get("shape_signature", detail["shape"]))
        if any(d < 0 for d in signature):  # dynamic dims: batch 1, a typical length
            shape = [1 if i == 0 else (DYNAMIC_SEQ_LEN if d < 0 else int(d)) for i, d in enumerate(signature)]
            interpreter.resize_tensor_input(detail["index"], shape)
            resized = True
    if resized:
        interpreter.allocate_tensors()
    return interpreter


def _example_feeds(interpreter, examples: Examples) -> List[Dict[int, np.ndarray]]:
    from components.tflite_eval import input_feature_plan
    from components.tokenized import load_examples

    if isinstance(examples, str):
        examples = load_examples(examples)[0]
    examples = list(examples)
    if not examples:
        raise ConfigError("no examples to benchmark with")
    details = interpreter.get_input_details()
    plan = input_feature_plan(details, list(examples[0]))
    return [{index: np.asarray(e[key]).astype(d["dtype"]).reshape(d["shape"])
             for d, (index, key) in zip(details, plan)} for e in examples]


def benchmark_tflite(path: str, threads: int = 1, runs: int = 200, warmup: int = 20,
                     examples: Examples = None, seed: int = 0) -> Dict[str, Any]:
    """Latency percentiles of single-example `invoke()`s; `examples` is a tokenized split folder
    or a list of feature dicts (real text), else synthetic ids of the right shape."""
    if runs < 1 or warmup < 0 or threads < 1:
        raise ConfigError("runs and threads must be positive and warmup not negative")
    interpreter = _load(path, threads)
    with open(path, "rb") as f:
        model_bytes = f.read()
    if examples is None:
        feeds = [synthetic_inputs(interpreter, model_bytes, seed)]
        source = "synthetic"
    else:
        feeds = _example_feeds(interpreter, examples)
        source = "examples"
    times = np.empty(runs, dtype=np.float64)
    for i in range(warmup + runs):
        for index, value in feeds[i % len(feeds)].items():
            interpreter.set_tensor(index, value)
        start = time.perf_counter()
        interpreter.invoke()
        elapsed = time.perf_counter() - start
        if i >= warmup:
            times[i - warmup] = elapsed * 1000.0
    p50, p90, p99 = np.percentile(times, [50, 90, 99])
    return {
        "path": path,
        "model_bytes": len(model_bytes),
        "threads": threads,
        "runs": runs,
        "warmup": warmup,
        "inputs": source,
        "input_shapes": [[int(d) for d in x["shape"]] for x in interpreter.get_input_details()],
        "p50_ms": float(p50),
        "p90_ms": float(p90),
        "p99_ms": float(p99),
        "mean_ms": float(times.mean()),
        "min_ms": float(times.min()),
        "peak_rss_mb": peak_rss_mb(),
    }


def benchmark_models(models: Mapping[str, str] | Sequence[str], runs: int = 200, warmup: int = 20,
                     examples: Examples | Mapping[str, Examples] = None,
                     accuracies: Optional[Mapping[str, float]] = None,
                     threads: Optional[Sequence[int]] = None) -> List[Dict[str, Any]]:
    """Each model at 1 thread and at all cores. `models` maps a name (e.g. "AWE", "MobileBERT
    (int8)") to a path; `examples` / `accuracies` may be per name since AWE and BERT models take
    differently tokenized inputs."""
    if not isinstance(models, Mapping):
        models = {os.path.basename(p): p for p in models}
    counts = sorted(set(threads or (1, os.cpu_count() or 1)))
    results = []
    for name, path in models.items():
        model_examples = examples.get(name) if isinstance(examples, Mapping) else examples
        latency = {str(n): benchmark_tflite(path, n, runs, warmup, model_examples) for n in counts}
        results.append({
            "name": name,
            "path": path,
            "model_bytes": os.path.getsize(path),
            "accuracy": (accuracies or {}).get(name),
            "latency": latency,
        })
    return results


def format_latency(ms: float) -> str:
    """Milliseconds for models that take them, microseconds for the tiny ones (AWE runs in µs)."""
    return f"{ms:.2f} ms" if ms >= 1.0 else f"{1000 * ms:.1f} µs"


def format_size(num_bytes: int) -> str:
    return f"{num_bytes / 1e6:.1f} MB" if num_bytes >= 1e6 else f"{num_bytes / 1e3:.1f} KB"


def benchmark_exports(exported_dir: str, quantized_dir: str, test_dir: str, runs: int,
                      output_dir: str) -> Dict[str, Any]:
    """Latency of an export's float and quantized .tflite on its test split's examples, written
    to `output_dir/latency.json` with a flat summary for kfp's Metrics."""
    from components.export import read_export_info, tflite_path

    rows = benchmark_models({"float": tflite_path(exported_dir), "quantized": tflite_path(quantized_dir)},
                            runs=runs, examples=test_dir)
    summary = {}
    for row in rows:
        for threads, stats in row["latency"].items():
            for key in ("p50_ms", "p90_ms", "p99_ms"):
                summary[f"{row['name']}_{key}_{threads}_thread"] = stats[key]
        summary[f"{row['name']}_model_bytes"] = row["model_bytes"]
    summary["peak_rss_mb"] = max(s["peak_rss_mb"] for row in rows for s in row["latency"].values())
    for row in rows:  # stored without paths: the folder is copied between stores
        row.pop("path", None)
        for stats in row["latency"].values():
            stats.pop("path", None)
    result = {"architecture": read_export_info(exported_dir)["architecture"], "models": rows,
              "summary": summary}
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, LATENCY_FILE), "w") as f:
        json.dump(result, f, indent=2)
    return result


def read_latency(folder: str) -> Dict[str, Any]:
    with open(os.path.join(folder, LATENCY_FILE), encoding="utf-8") as f:
        return json.load(f)


def table_rows(results: Sequence[Mapping[str, Any]]) -> List[Dict[str, str]]:
    """Rows shaped like the Model Maker guide's table, one more column per extra thread count."""
    rows = []
    for result in results:
        accuracy = result.get("accuracy")
        row = {
            "Model architecture": str(result["name"]),
            "Test accuracy": f"{100 * accuracy:.1f}%" if accuracy is not None else "n/a",
            "Model size": format_size(int(result["model_bytes"])),
        }
        for n, stats in sorted(result["latency"].items(), key=lambda kv: int(kv[0])):
            label = "CPU 1 thread latency" if int(n) == 1 else f"CPU {n} threads latency"
            row[label] = format_latency(stats["p50_ms"])
        rows.append(row)
    return rows


def markdown_table(rows: Sequence[Mapping[str, str]]) -> str:
    if not rows:
        return ""
    columns = list(dict.fromkeys(c for row in rows for c in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(row.get(c, "") for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def _count(minimum: int):
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="textclf benchmark",
                                     description="CPU latency of a .tflite text classifier (LiteRT).")
    parser.add_argument("model", help=".tflite file (ours or Model Maker's)")
    parser.add_argument("--threads", type=_count(1), default=1,
                        help="interpreter threads (default: %(default)s, as the guide's table)")
    parser.add_argument("--runs", type=_count(1), default=200, help="timed runs (default: %(default)s)")
    parser.add_argument("--warmup", type=_count(0), default=20,
                        help="untimed runs before them (default: %(default)s)")
    parser.add_argument("--examples", default=None,
                        help="tokenized split folder to time real examples (default: synthetic ids)")
    parser.add_argument("--json", action="store_true",
                        help="end with one JSON line of the figures (default: text only)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """`textclf benchmark MODEL.tflite [--threads 1] [--runs N] [--json]`."""
    parser = build_parser()
    args = parser.parse_args(argv)
    result = benchmark_tflite(args.model, args.threads, args.runs, args.warmup, args.examples)
    print(f"model        {result['path']} ({format_size(result['model_bytes'])}, inputs "
          f"{result['input_shapes']}, {result['inputs']})")
    print(f"threads      {result['threads']}, {result['runs']} runs after {result['warmup']} warm-up")
    print(f"latency      p50 {format_latency(result['p50_ms'])}  p90 {format_latency(result['p90_ms'])}  "
          f"p99 {format_latency(result['p99_ms'])}")
    print(f"peak memory  {result['peak_rss_mb']:.0f} MB (whole process)")
    if args.json:
        keys = ("model_bytes", "threads", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "runs",
                "peak_rss_mb", "inputs")
        print(json.dumps({k: result[k] for k in keys}))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
