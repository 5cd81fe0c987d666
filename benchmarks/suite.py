"""The data-set suite: our models with default settings on data unlike SST-2, against baselines.

    .venv/bin/python benchmarks/suite.py [--sets sst2,sst2_500,...] [--bert [--distilled]] [--data ../shared/data]

Sets (README of `../shared/data/suite`):
- `sst2`: GLUE SST-2, all of `train.tsv`; validation a stratified 5 % of it, test `dev.tsv`.
- `sst2_500`, `sst2_2000`, `sst2_10000`: stratified, seeded samples of `train.tsv` of that many rows;
  validation a stratified 10 % of the sample (a user with 500 rows has only those), test `dev.tsv`.
- `sst5`, `subj`, `mpqa`: their own train / validation / test files.
Validation picks (epochs, TF-IDF's C); test is scored once. Sets with fewer than 10,000 training
rows run with three seeds (sample and training seed) and report the median.

Per set: the majority-class predictor; TF-IDF (word 1-2-grams, sublinear tf) + logistic regression
with C chosen on validation (scikit-learn, `pip install .[bench]`); our AWE with default settings
through the Model Maker-compatible API: Keras test accuracy, and on-device accuracy through
MediaPipe's `TextClassifier` on the exported `model.tflite`, also on the test texts in Title Case
(first letter of every space-separated word upper-cased) and UPPER CASE; macro-F1; training seconds;
float model bytes. `--bert` adds BERT (offline `minilm-l6` encoder, otherwise defaults) on the sets
of at most 10,000 training rows (`--bert-device` scores it through MediaPipe too); `--distilled`
with it adds the distilled student of each of those BERT models, on device in three casings.
The last line printed is one JSON object,
`{"sets": {NAME: {"train_rows", "majority", "tfidf_lr", "awe", "awe_device", "awe_device_title",
"awe_device_upper", "awe_bytes", "awe_train_s", "bert", ...}}}`.

`--awe-options` / `--awe-hparams` (JSON) override defaults, to measure a candidate setting on the
whole suite before making it the default.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from typing import Dict, List, Optional, Sequence, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

Rows = List[Tuple[str, str]]
SAMPLE_SETS = {"sst2_500": 500, "sst2_2000": 2000, "sst2_10000": 10000}
FILE_SETS = ("sst5", "subj", "mpqa")
ALL_SETS = ("sst2", *SAMPLE_SETS, *FILE_SETS)
SEEDED_BELOW = 10_000
BERT_MAX_ROWS = 10_000
C_GRID = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)


# --------------------------------------------------------------------------------------------
# Data

def _read(path: str, text_column: str) -> Rows:
    from components.ingest import read_delimited
    from components.options import CSVParams

    # GLUE-style TSVs: no quoting (a text may contain '"').
    params = CSVParams(text_column=text_column, label_column="label", delimiter="\t", quotechar=None)
    return read_delimited(path, params).rows


def load_set(name: str, data: str, seed: int) -> Dict[str, Rows]:
    from components.ingest import stratified_split

    if name == "sst2" or name in SAMPLE_SETS:
        train = _read(os.path.join(data, "sst2", "train.tsv"), "sentence")
        test = _read(os.path.join(data, "sst2", "dev.tsv"), "sentence")
        fraction = 0.05
        if name in SAMPLE_SETS:
            size = SAMPLE_SETS[name]
            train = stratified_split(train, {"sample": size / len(train)}, seed)["sample"]
            fraction = 0.1
        parts = stratified_split(train, {"validation": fraction}, seed)
        return {"train": parts["train"], "validation": parts["validation"], "test": test}
    folder = os.path.join(data, "suite", name)
    return {split: _read(os.path.join(folder, f"{split}.tsv"), "text")
            for split in ("train", "validation", "test")}


def title_case(text: str) -> str:
    """First letter of every space-separated word upper-cased (not `str.title`: "Don'T")."""
    return " ".join(word[:1].upper() + word[1:] for word in text.split(" "))


# --------------------------------------------------------------------------------------------
# Scores

def _scores(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]) -> Dict[str, float]:
    import numpy as np

    from components.metrics import classification_metrics

    index = {name: i for i, name in enumerate(labels)}
    probs = np.zeros((len(y_pred), len(labels)))
    probs[np.arange(len(y_pred)), [index[p] for p in y_pred]] = 1.0
    m = classification_metrics([index[t] for t in y_true], probs, labels)
    return {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"]}


def majority(splits: Dict[str, Rows], labels: Sequence[str]) -> Dict[str, float]:
    from collections import Counter
    top = Counter(label for _, label in splits["train"]).most_common(1)[0][0]
    test = splits["test"]
    return _scores([lab for _, lab in test], [top] * len(test), labels)


def tfidf_lr(splits: Dict[str, Rows], labels: Sequence[str]) -> Dict[str, float]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, token_pattern=r"(?u)[\w']+")
    x_train = vectorizer.fit_transform([t for t, _ in splits["train"]])
    x_val = vectorizer.transform([t for t, _ in splits["validation"]])
    x_test = vectorizer.transform([t for t, _ in splits["test"]])
    y_train = [lab for _, lab in splits["train"]]
    y_val = [lab for _, lab in splits["validation"]]
    best = None
    for c in C_GRID:
        model = LogisticRegression(C=c, max_iter=2000).fit(x_train, y_train)
        accuracy = float((model.predict(x_val) == y_val).mean())
        if best is None or accuracy > best[0]:
            best = (accuracy, c, model)
    _, c, model = best
    result = _scores([lab for _, lab in splits["test"]], list(model.predict(x_test)), labels)
    result["C"] = c
    return result


def _device_accuracy(tflite: str, rows: Rows, labels: Sequence[str]) -> Dict[str, Dict[str, float]]:
    """MediaPipe's TextClassifier on the test texts as given, in Title Case and in UPPER CASE."""
    from mediapipe.tasks.python.core.base_options import BaseOptions
    from mediapipe.tasks.python.text import text_classifier as mp_text

    options = mp_text.TextClassifierOptions(base_options=BaseOptions(model_asset_path=tflite))
    truth = [lab for _, lab in rows]
    out = {}
    with mp_text.TextClassifier.create_from_options(options) as classifier:
        for casing, transform in (("", lambda t: t), ("_title", title_case), ("_upper", str.upper)):
            predicted = [classifier.classify(transform(t)).classifications[0].categories[0].category_name
                         for t, _ in rows]
            out[casing] = _scores(truth, predicted, labels)
    return out


def train_api(architecture: str, splits: Dict[str, Rows], seed: int, options_json: Dict,
              hparams_json: Dict, work: str, device: bool = True, keep: Optional[Dict] = None) -> Dict:
    """Our model through the Model Maker-compatible API, defaults unless overridden (BERT: the
    offline minilm-l6 encoder). With `keep`, the trained classifier is left in keep["model"]."""
    from components import architectures
    from components import text_classifier as tc

    data = {name: tc.Dataset([t for t, _ in rows], [lab for _, lab in rows]) for name, rows in splits.items()}
    labels = data["train"].label_names
    export_dir = tempfile.mkdtemp(prefix=f"{architecture}-", dir=work)
    spec = architectures.get(architecture)
    defaults = {"bert": {"encoder": "minilm-l6"}}.get(architecture, {})
    model_options = spec.options_class(**{**defaults, **options_json})
    hparams = spec.hparams_class(**{"seed": seed, **hparams_json, "export_dir": export_dir})
    supported = tc.SupportedModels[spec.api_name]
    options = tc.TextClassifierOptions(supported_model=supported, model_options=model_options, hparams=hparams)
    started = time.time()
    model = tc.TextClassifier.create(data["train"], data["validation"], options)
    wall = time.time() - started
    evaluation = model.evaluate(data["test"])
    path = model.export_model()
    result = {"accuracy": evaluation.accuracy, "macro_f1": evaluation.metrics["macro_f1"],
              "train_s": model.training.get("train_seconds", wall), "wall_s": round(wall, 1),
              "best_epoch": model.training.get("best_epoch"), "bytes": os.path.getsize(path),
              "defaults": model.training.get("picked", {})}
    if device:
        for casing, scores in _device_accuracy(path, splits["test"], labels).items():
            result[f"device{casing}"] = scores["accuracy"]
            result[f"device{casing}_macro_f1"] = scores["macro_f1"]
    if keep is not None:
        keep["model"] = model
    return result


# --------------------------------------------------------------------------------------------
# The run

def _median(values: List[Optional[float]]) -> Optional[float]:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def run_set(name: str, args, work: str) -> Dict:
    seeds = list(range(args.seeds))
    per_seed = []
    for seed in seeds:
        splits = load_set(name, args.data, seed)
        labels = sorted({lab for _, lab in splits["train"]})
        row: Dict = {"train_rows": len(splits["train"]), "seed": seed}
        row["majority"] = majority(splits, labels)
        if not args.no_tfidf:
            row["tfidf_lr"] = tfidf_lr(splits, labels)
        if not args.no_awe:
            row["awe"] = train_api("awe", splits, seed, args.awe_options, args.awe_hparams, work,
                                   device=not args.no_device)
        if args.bert and len(splits["train"]) <= BERT_MAX_ROWS:
            kept: Dict = {}
            row["bert"] = train_api("bert", splits, seed, args.bert_options, args.bert_hparams, work,
                                    device=args.bert_device, keep=kept)
            if args.distilled:  # the student of the BERT model just trained
                row["distilled"] = train_api("distilled", splits, seed,
                                             {**args.distilled_options, "teacher": kept["model"].model_dir},
                                             args.distilled_hparams, work)
        per_seed.append(row)
        print(f"  {name} seed {seed}: " + json.dumps(row, default=str), flush=True)
        if len(splits["train"]) >= SEEDED_BELOW and len(per_seed) >= args.large_seeds:
            break

    def med(part: str, key: str):
        return _median([r[part][key] for r in per_seed if part in r and key in r[part]])

    summary = {
        "train_rows": per_seed[0]["train_rows"], "seeds": len(per_seed),
        "majority": med("majority", "accuracy"), "majority_macro_f1": med("majority", "macro_f1"),
        "tfidf_lr": med("tfidf_lr", "accuracy"), "tfidf_lr_macro_f1": med("tfidf_lr", "macro_f1"),
        "awe": med("awe", "accuracy"), "awe_macro_f1": med("awe", "macro_f1"),
        "awe_device": med("awe", "device"), "awe_device_macro_f1": med("awe", "device_macro_f1"),
        "awe_device_title": med("awe", "device_title"), "awe_device_upper": med("awe", "device_upper"),
        "awe_bytes": med("awe", "bytes"), "awe_train_s": med("awe", "train_s"),
        "awe_best_epoch": med("awe", "best_epoch"),
        "bert": med("bert", "accuracy"), "bert_macro_f1": med("bert", "macro_f1"),
        "bert_device": med("bert", "device"), "bert_train_s": med("bert", "train_s"),
        "distilled": med("distilled", "accuracy"), "distilled_device": med("distilled", "device"),
        "distilled_bytes": med("distilled", "bytes"),
    }
    if per_seed and "awe" in per_seed[0]:
        summary["awe_defaults"] = per_seed[0]["awe"].get("defaults", {})
    return summary


def _pct(value) -> str:
    return "" if value is None else f"{100 * value:.1f}"


def print_table(results: Dict[str, Dict]) -> None:
    columns = [("set", None), ("rows", "train_rows"), ("majority", "majority"), ("tfidf+lr", "tfidf_lr"),
               ("awe", "awe"), ("awe dev", "awe_device"), ("title", "awe_device_title"),
               ("UPPER", "awe_device_upper"), ("awe F1", "awe_macro_f1"), ("tfidf F1", "tfidf_lr_macro_f1"),
               ("bytes", "awe_bytes"), ("train s", "awe_train_s"), ("bert", "bert"),
               ("distilled dev", "distilled_device")]
    print("| " + " | ".join(c for c, _ in columns) + " |")
    print("|" + "---|" * len(columns))
    for name, row in results.items():
        cells = []
        for _, key in columns:
            value = name if key is None else row.get(key)
            if key in ("train_rows", "awe_bytes") and value is not None:
                cells.append(f"{int(value):,}")
            elif key == "awe_train_s" and value is not None:
                cells.append(f"{value:.1f}")
            elif key is not None and isinstance(value, float):
                cells.append(_pct(value))
            else:
                cells.append("" if value is None else str(value))
        print("| " + " | ".join(cells) + " |")


def main(argv=None) -> Dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"))
    parser.add_argument("--sets", default=",".join(ALL_SETS), help=f"comma-separated: {', '.join(ALL_SETS)}")
    parser.add_argument("--seeds", type=int, default=3, help="seeds for sets under 10,000 training rows")
    parser.add_argument("--bert", action="store_true", help="add BERT (minilm-l6) on sets of <= 10k rows")
    parser.add_argument("--bert-device", action="store_true", help="also score BERT through MediaPipe")
    parser.add_argument("--distilled", action="store_true", help="with --bert: the distilled student of each "
                                                                 "BERT model, through MediaPipe")
    parser.add_argument("--distilled-options", type=json.loads, default={}, help="JSON overrides")
    parser.add_argument("--distilled-hparams", type=json.loads, default={}, help="JSON overrides")
    parser.add_argument("--no-awe", action="store_true")
    parser.add_argument("--no-tfidf", action="store_true")
    parser.add_argument("--no-device", action="store_true", help="skip MediaPipe (Keras accuracy only)")
    parser.add_argument("--large-seeds", type=int, default=1,
                        help="seeds for sets of 10,000 training rows or more (default 1)")
    parser.add_argument("--awe-options", type=json.loads, default={}, help="JSON overrides")
    parser.add_argument("--awe-hparams", type=json.loads, default={}, help="JSON overrides")
    parser.add_argument("--bert-options", type=json.loads, default={}, help="JSON overrides")
    parser.add_argument("--bert-hparams", type=json.loads, default={}, help="JSON overrides")
    parser.add_argument("--work", default="", help="work folder (default: a temporary one)")
    args = parser.parse_args(argv)
    logging.getLogger("apache_beam").setLevel(logging.ERROR)
    os.environ.setdefault("GLOG_minloglevel", "2")
    names = [n.strip() for n in args.sets.split(",") if n.strip()]
    unknown = sorted(set(names) - set(ALL_SETS))
    if unknown:
        parser.error(f"unknown set(s) {unknown}; choose from {', '.join(ALL_SETS)}")
    work = args.work or tempfile.mkdtemp(prefix="suite-")
    os.makedirs(work, exist_ok=True)
    started = time.time()
    results = {}
    for name in names:
        results[name] = run_set(name, args, work)
    print_table(results)
    print(f"suite wall time {time.time() - started:.0f} s")
    print(json.dumps({"sets": results}, default=str))
    return results


if __name__ == "__main__":
    main()
