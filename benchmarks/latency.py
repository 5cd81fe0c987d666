"""Latency table for .tflite text classifiers.

    .venv/bin/python benchmarks/latency.py A.tflite B.tflite --runs 200 [--repeats 3] [--threads 1,4]

Each model is benchmarked `--repeats` times per thread count, the models taking turns, and the
median of each percentile is reported, so one noisy repetition on a shared machine does not
decide the table; "p50 / first" is each model's median p50 over the first model's. The last
line is one JSON object: {"results": [{"model", "model_bytes", "threads", "p50_ms", "p90_ms",
"p99_ms", "p50_vs_first", "repeats"}, ...]}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from typing import List, Optional, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from components.benchmark import benchmark_tflite, format_latency, format_size, markdown_table


def _thread_counts(text: str) -> List[int]:
    counts = []
    for item in text.split(","):
        item = item.strip().lower()
        if item:
            counts.append((os.cpu_count() or 1) if item in ("all", "max") else int(item))
    return sorted(set(counts)) or [1]


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help=".tflite files")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", default="1", help="comma-separated thread counts; 'all' = every core")
    args = parser.parse_args(argv)

    # Repetitions go round-robin over the models, so a burst of load on a shared machine lands
    # on every model alike instead of on whichever happened to be measured then.
    cases = [(path, threads) for path in args.models for threads in _thread_counts(args.threads)]
    reps = {case: [] for case in cases}
    for _ in range(max(1, args.repeats)):
        for path, threads in cases:
            reps[(path, threads)].append(benchmark_tflite(path, threads, args.runs, args.warmup))
    results = []
    for (path, threads), runs in reps.items():
        results.append({
            "model": path,
            "model_bytes": runs[0]["model_bytes"],
            "threads": threads,
            "repeats": len(runs),
            **{k: statistics.median(r[k] for r in runs) for k in ("p50_ms", "p90_ms", "p99_ms")},
        })
    first = {r["threads"]: r["p50_ms"] for r in reversed(results)}
    for r in results:
        r["p50_vs_first"] = r["p50_ms"] / first[r["threads"]]
    rows = [{"Model": r["model"],
             "Model size": format_size(r["model_bytes"]), "Threads": str(r["threads"]),
             "p50": format_latency(r["p50_ms"]), "p90": format_latency(r["p90_ms"]),
             "p99": format_latency(r["p99_ms"]), "p50 / first": f"{r['p50_vs_first']:.3f}"}
            for r in results]
    print(markdown_table(rows))
    print(json.dumps({"results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
