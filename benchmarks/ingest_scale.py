"""Throughput and peak memory of `textclf ingest` on a large synthetic SST-2-like file.

Generates (once, then reuses) a TSV of `--rows` labelled rows of about 60 bytes, lower-case
words and labels 0/1 as in SST-2, then runs `textclf ingest --train FILE --output DIR` in a
fresh process `--repeats` times and reports each run's wall time (interpreter start included),
CPU seconds (the machine may be shared) and peak resident memory. The last line is one JSON
object with the medians: `{"rows": ..., "rows_per_s": ..., "peak_rss_mb": ...}`.

    python benchmarks/ingest_scale.py                 # 5 million rows, 3 runs
    python benchmarks/ingest_scale.py --rows 200000 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _vocabulary(rng: random.Random, size: int = 12_000):
    consonants, vowels = "bcdfghjklmnprstvwz", "aeiou"
    words = set()
    while len(words) < size:
        syllables = rng.choice((1, 1, 2, 2, 2, 3))
        words.add("".join(rng.choice(consonants) + rng.choice(vowels) for _ in range(syllables)))
    return sorted(words) + [",", ".", "'s", "the", "a", "and", "of", "film", "movie"] * 200


def generate(path: str, rows: int, seed: int) -> None:
    """SST-2-like rows: 2-18 words, ~57 characters of text on average, a tab, a 0/1 label."""
    rng = random.Random(seed)
    vocab = _vocabulary(rng)
    partial = path + ".partial"
    with open(partial, "w", encoding="utf-8", newline="\n", buffering=1 << 22) as f:
        f.write("sentence\tlabel\n")
        choices, randint, getrandbits = rng.choices, rng.randint, rng.getrandbits
        for _ in range(rows):
            f.write(" ".join(choices(vocab, k=randint(2, 18))) + (" \t1\n" if getrandbits(1) else " \t0\n"))
    os.replace(partial, path)


def run_measured(data: str, output: str) -> dict:
    """One `textclf ingest` run: wall seconds and the child's own peak RSS (from wait4)."""
    shutil.rmtree(output, ignore_errors=True)
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    command = [sys.executable, "-m", "pipelines.cli", "ingest", "--train", data, "--output", output]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=err, env=env, cwd=ROOT)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if process.returncode:
            sys.stderr.write(err.read().decode())
            raise SystemExit(f"textclf ingest failed with exit code {process.returncode}")
        counts = json.loads(out.read().decode().strip().splitlines()[-1])
    return {"seconds": round(seconds, 2), "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1), "splits": counts}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "textclf-ingest-scale"),
                        help="where the synthetic file (kept for reuse) and the outputs go")
    args = parser.parse_args(argv)
    if args.rows < 1 or args.repeats < 1:
        parser.error("--rows and --repeats must be positive")
    os.makedirs(args.workdir, exist_ok=True)
    data = os.path.join(args.workdir, f"synthetic-{args.rows}-{args.seed}.tsv")
    if not os.path.exists(data):
        started = time.perf_counter()
        generate(data, args.rows, args.seed)
        print(f"generated {data} ({os.path.getsize(data) / 1e6:.0f} MB) in {time.perf_counter() - started:.0f} s",
              flush=True)
    size = os.path.getsize(data)
    print(f"input: {args.rows} rows, {size / 1e6:.0f} MB, {size / args.rows:.1f} bytes a row", flush=True)
    runs = []
    for repeat in range(args.repeats):
        result = run_measured(data, os.path.join(args.workdir, "out"))
        result["rows_per_s"] = round(args.rows / result["seconds"])
        runs.append(result)
        print(f"run {repeat + 1}: {result['seconds']:.1f} s ({result['cpu_s']:.1f} s CPU), "
              f"{result['rows_per_s']} rows/s, "
              f"peak RSS {result['peak_rss_mb']:.0f} MB, splits {result['splits']}", flush=True)
    shutil.rmtree(os.path.join(args.workdir, "out"), ignore_errors=True)
    print(json.dumps({"rows": args.rows, "rows_per_s": round(statistics.median(r["rows_per_s"] for r in runs)),
                      "peak_rss_mb": round(statistics.median(r["peak_rss_mb"] for r in runs), 1),
                      "runs": [{k: r[k] for k in ("seconds", "cpu_s", "rows_per_s", "peak_rss_mb")} for r in runs]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
