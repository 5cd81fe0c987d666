"""The run's report and deliverables: the guide's benchmark table filled from this run.

The deliverables folder is what `publish` copies to `export_dir`: per architecture the model
a device should use (`model.tflite`: the quantized one unless quantization is off), its float
parent, labels, vocabulary and metrics; `summary.json` and the report at the top.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
from typing import Any, Dict, List, Mapping, Sequence

from components import architectures, run_results
from components import profile as profile_io
from components.benchmark import format_latency, format_size
from components.labels import LABELS_FILE
from components.profile import PROFILE_MD
from components.vocabulary import TOKENIZER_FILE, VOCAB_FILE

SUMMARY_FILE = "summary.json"
REPORT_MD, REPORT_HTML = "report.md", "report.html"
PLOTS = "plots"
DELIVERED_TFLITE, FLOAT_TFLITE = "model.tflite", "model_float.tflite"
DELIVERED_METRICS = "metrics.json"  # Keras, .tflite and latency figures of one delivered model
# Past this many classes a confusion matrix is drawn without numbers in its cells (they would not
# be readable) and the report lists the largest confusions instead.
CELL_LABELS_UP_TO = 20
TICK_LABELS_UP_TO = 60
TOP_CONFUSIONS = 15


def _plot_curves(history: List[Dict], title: str, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 2, figsize=(8, 3))
    for axis, key in zip(axes, ("loss", "accuracy")):
        for prefix, style in (("", "-o"), ("val_", "--s")):
            values = [h.get(prefix + key) for h in history]
            if all(v is not None for v in values) and values:
                axis.plot(epochs, values, style, label=(prefix or "train_") + key)
        axis.set_xlabel("epoch")
        axis.set_title(key)
        axis.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _plot_confusion(matrix: List[List[int]], labels: List[str], title: str, path: str) -> None:
    """At most about 10 inches whatever the class count; numbers in cells for small matrices."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(labels)
    size = min(10.0, max(4.0, 0.5 * n + 2.5))
    fig, axis = plt.subplots(figsize=(size, size))
    axis.imshow(matrix, cmap="Blues", interpolation="nearest")
    if n <= TICK_LABELS_UP_TO:
        font = 10 if n <= CELL_LABELS_UP_TO else 6
        axis.set_xticks(range(n), labels, rotation=45, ha="right", fontsize=font)
        axis.set_yticks(range(n), labels, fontsize=font)
    else:
        axis.set_xticks([])
        axis.set_yticks([])
    if n <= CELL_LABELS_UP_TO:
        for i, row in enumerate(matrix):
            for j, value in enumerate(row):
                axis.text(j, i, str(value), ha="center", va="center")
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    # The title in the figure's own space, wrapped: a long one is not clipped at the edges.
    fig.suptitle(title, wrap=True)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def top_confusions(matrix: Sequence[Sequence[int]], labels: Sequence[str], count: int = TOP_CONFUSIONS
                   ) -> List[Dict[str, Any]]:
    """The largest off-diagonal cells: which true class is most often taken for which."""
    cells = [(value, i, j) for i, row in enumerate(matrix) for j, value in enumerate(row) if i != j and value]
    cells.sort(key=lambda c: (-c[0], c[1], c[2]))
    return [{"true": labels[i], "predicted": labels[j], "count": value} for value, i, j in cells[:count]]


BASELINE_METRIC = "balanced_accuracy"
DEFAULT_MIN_GAIN_OVER_MAJORITY = 0.05


def baseline_check(evaluation: Mapping[str, Any], margin: float) -> Dict[str, Any]:
    """Does the model beat always answering the training split's majority label, on the
    validation split, by `margin` of balanced accuracy (mean per-class recall)? Plain accuracy
    would let a majority-only model pass on skewed data; a constant or random predictor's balanced
    accuracy is 1 / classes whatever the mix."""
    model = evaluation.get("validation", {}).get(BASELINE_METRIC)
    majority = evaluation.get("majority", {}).get("validation", {})
    if model is None or BASELINE_METRIC not in majority:
        return {"checked": False}
    return {"checked": True, "metric": BASELINE_METRIC, "split": "validation", "model": model,
            "majority": majority[BASELINE_METRIC], "majority_label": majority["label"], "margin": margin,
            "passed": model >= majority[BASELINE_METRIC] + margin - 1e-12}


def _row(arch: str, result: Mapping[str, Any], min_accuracy: float, margin: float,
         publish_below_baseline: bool) -> Dict[str, Any]:
    quant_mode = result["quantization"]["quantization"]
    delivered = "quantized" if quant_mode != "none" else "float"
    compare = result["tflite_evaluation"]
    bench = {row["name"]: row for row in result["latency"]["models"]}
    accuracy = compare[delivered]["accuracy"]
    row = {
        "accuracy": accuracy,
        "keras_accuracy": result["evaluation"]["accuracy"],
        "float_tflite_accuracy": compare["float"]["accuracy"],
        "quantized_accuracy": compare["quantized"]["accuracy"],
        "accuracy_change_points": compare["accuracy_change_points"],
        "model_bytes": bench[delivered]["model_bytes"],
        "float_model_bytes": bench["float"]["model_bytes"],
        "p50_ms_1_thread": bench[delivered]["latency"]["1"]["p50_ms"],
        "p90_ms_1_thread": bench[delivered]["latency"]["1"]["p90_ms"],
        "p99_ms_1_thread": bench[delivered]["latency"]["1"]["p99_ms"],
        "float_p50_ms_1_thread": bench["float"]["latency"]["1"]["p50_ms"],
        "quantization": quant_mode,
        "delivered": delivered,
        "baseline": baseline_check(result["evaluation"], margin),
        "majority_test": result["evaluation"].get("majority", {}).get("test"),
        "train_seconds": result["training"].get("train_seconds"),
        "best_epoch": result["training"].get("best_epoch"),
        "picked_defaults": {**result["model"].get("picked", {}),
                            **result["training"].get("picked", {})},
    }
    row["beats_majority"] = row["baseline"].get("passed", True)
    reasons = []
    if accuracy < min_accuracy:
        reasons.append(f"test accuracy {accuracy:.4f} is below min_accuracy {min_accuracy:.4f}")
    if not row["beats_majority"] and not publish_below_baseline:
        b = row["baseline"]
        reasons.append(f"validation {b['metric'].replace('_', ' ')} {b['model']:.4f} does not beat the "
                       f"majority-class predictor's {b['majority']:.4f} by {b['margin']:.2f} (pass "
                       "publish_below_baseline to publish it anyway)")
    row["published"] = not reasons
    if reasons:
        row["not_published_because"] = "; ".join(reasons)
    return row


def _section(arch: str, title: str, row: Mapping[str, Any], result: Mapping[str, Any], history: bool) -> str:
    evaluation = result["evaluation"]
    lines = [
        f"## {title}", "",
        f"Keras test accuracy {100 * row['keras_accuracy']:.2f}%, float .tflite "
        f"{100 * row['float_tflite_accuracy']:.2f}%, quantized ({row['quantization']}) "
        f"{100 * row['quantized_accuracy']:.2f}% (change {row['accuracy_change_points']:+.2f} points); "
        f"macro F1 {evaluation.get('macro_f1', 0):.4f}. Best epoch {row.get('best_epoch')}, "
        f"training {row.get('train_seconds')} s.",
        f"Latency (1 thread) p50 / p90 / p99: {format_latency(row['p50_ms_1_thread'])} / "
        f"{format_latency(row['p90_ms_1_thread'])} / {format_latency(row['p99_ms_1_thread'])}. "
        + ("Published." if row["published"] else f"**Not published**: {row['not_published_because']}."),
        "",
    ]
    baseline, majority = row["baseline"], row.get("majority_test")
    if baseline.get("checked"):
        verdict = "beats it" if baseline["passed"] else "**does not beat it**"
        lines += [f"Against always answering the training majority `{baseline['majority_label']}`: validation "
                  f"balanced accuracy {baseline['model']:.4f} vs {baseline['majority']:.4f} (the model must be "
                  f"{baseline['margin']:.2f} above): {verdict}."
                  + (f" On test the majority predictor scores accuracy {100 * majority['accuracy']:.2f}%, "
                     f"macro F1 {majority['macro_f1']:.4f}." if majority else ""), ""]
    for warning in result["training"].get("data_warnings", []):
        lines += [f"Warning: {warning}.", ""]
    model_options = result["model"].get("model_options", {})
    picked = row["picked_defaults"]
    if model_options or picked:
        shown = ", ".join(f"`{k}` {v}" for k, v in sorted(model_options.items()))
        lines += [f"Model options: {shown}."]
        if picked:
            lines += ["Defaults picked from the data: "
                      + ", ".join(f"`{k}` {v:g}" if isinstance(v, float) else f"`{k}` {v}"
                                  for k, v in sorted(picked.items())) + "."]
        lines.append("")
    labels = evaluation.get("label_names", [])
    if len(labels) > CELL_LABELS_UP_TO:
        confusions = top_confusions(evaluation["confusion_matrix"], labels)
        if confusions:
            lines += [f"Largest confusions ({len(labels)} classes):", "",
                      "| true | predicted as | test examples |", "|---|---|---|"]
            lines += [f"| {c['true']} | {c['predicted']} | {c['count']} |" for c in confusions]
            lines.append("")
    if history:
        lines.append(f"![training curves]({PLOTS}/{arch}_training_curves.png)")
        lines.append("")
    lines.append(f"![confusion matrix]({PLOTS}/{arch}_confusion_matrix.png)")
    return "\n".join(lines) + "\n"


def _deliver(arch: str, result: Mapping[str, Any], row: Mapping[str, Any], deliverables_dir: str) -> None:
    folder = result["folder"]
    target = os.path.join(deliverables_dir, arch)
    os.makedirs(target, exist_ok=True)
    delivered = run_results.QUANTIZED_TFLITE if row["delivered"] == "quantized" else run_results.FLOAT_TFLITE
    shutil.copyfile(os.path.join(folder, delivered), os.path.join(target, DELIVERED_TFLITE))
    shutil.copyfile(os.path.join(folder, run_results.FLOAT_TFLITE), os.path.join(target, FLOAT_TFLITE))
    for name in (LABELS_FILE, VOCAB_FILE, TOKENIZER_FILE):
        if os.path.exists(os.path.join(folder, name)):
            shutil.copyfile(os.path.join(folder, name), os.path.join(target, name))
    with open(os.path.join(target, DELIVERED_METRICS), "w") as f:
        json.dump({"evaluation": result["evaluation"], "tflite": result["tflite_evaluation"],
                   "latency": result["latency"]["models"]}, f, indent=2)


def build_report(profile_dir: str, results_dir: str, min_accuracy: float, markdown_path: str,
                 html_path: str, deliverables_dir: str,
                 min_gain_over_majority: float = DEFAULT_MIN_GAIN_OVER_MAJORITY,
                 publish_below_baseline: bool = False) -> Dict:
    """Writes report.md/.html and the deliverables folder; returns summary.json's content.

    A model is published when its test accuracy reaches `min_accuracy` and it beats the
    majority-class predictor (`baseline_check`) by `min_gain_over_majority`, unless
    `publish_below_baseline`.
    """
    results = run_results.read(results_dir)
    os.makedirs(deliverables_dir, exist_ok=True)
    plots = os.path.join(deliverables_dir, PLOTS)
    os.makedirs(plots, exist_ok=True)

    summary: Dict = {"models": {}, "min_accuracy": min_accuracy,
                     "baseline_gate": {"metric": BASELINE_METRIC, "split": "validation",
                                       "margin": min_gain_over_majority,
                                       "publish_below_baseline": publish_below_baseline}}
    table = ["| Model architecture | Test accuracy | Model size | CPU 1 thread latency | Quantization |",
             "|---|---|---|---|---|"]
    sections: List[str] = []
    for arch, result in results.items():
        row = _row(arch, result, min_accuracy, min_gain_over_majority, publish_below_baseline)
        summary["models"][arch] = row
        title = architectures.get(arch).describe(result["model"])
        table.append(f"| {title} | {100 * row['accuracy']:.2f}% | {format_size(row['model_bytes'])} | "
                     f"{format_latency(row['p50_ms_1_thread'])} | {row['quantization']} |")
        if row["delivered"] == "quantized":
            # The float parent too: the guide's AWE row is a float model, and the trade (bytes
            # against latency and accuracy) is the reader's to weigh.
            table.append(f"| {title} | {100 * row['float_tflite_accuracy']:.2f}% | "
                         f"{format_size(row['float_model_bytes'])} | {format_latency(row['float_p50_ms_1_thread'])} | "
                         f"none (float, `{FLOAT_TFLITE}`) |")
        history = result["training"].get("history", [])
        if history:
            _plot_curves(history, f"{title}: training curves", os.path.join(plots, f"{arch}_training_curves.png"))
        evaluation = result["evaluation"]
        _plot_confusion(evaluation["confusion_matrix"], evaluation["label_names"],
                        f"{title}: test confusion matrix", os.path.join(plots, f"{arch}_confusion_matrix.png"))
        sections.append(_section(arch, title, row, result, bool(history)))
        if row["published"]:
            _deliver(arch, result, row, deliverables_dir)

    profile_md = ""
    profile_file = profile_io.markdown_path(profile_dir)
    if profile_file:
        with open(profile_file, encoding="utf-8") as f:
            profile_md = f.read()
        shutil.copyfile(profile_file, os.path.join(deliverables_dir, PROFILE_MD))
    markdown = "\n".join(["# Text classifier run report", "",
                          "The Model Maker guide's benchmark table, filled from this run:", "", *table, "",
                          *sections, profile_md.replace("# Data profile", "## Data profile")])
    with open(os.path.join(deliverables_dir, SUMMARY_FILE), "w") as f:
        json.dump(summary, f, indent=2)
    page = markdown_to_html(markdown, plots)
    for path, text in ((os.path.join(deliverables_dir, REPORT_MD), markdown), (markdown_path, markdown),
                       (html_path, page), (os.path.join(deliverables_dir, REPORT_HTML), page)):
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    return summary


_STYLE = ("body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}"
          "table{border-collapse:collapse}td,th{border:1px solid #999;padding:.3em .6em}"
          "code{background:#f2f2f2;padding:0 .2em}img{max-width:100%}")


def markdown_to_html(markdown_text: str, plots_dir: str) -> str:
    """A self-contained page: Python-Markdown's rendering with the plots inlined as data URIs."""
    import markdown as md

    body = md.markdown(markdown_text, extensions=["tables"], output_format="html")

    def inline(match):
        path = os.path.join(plots_dir, os.path.basename(match.group(1)))
        if not os.path.exists(path):
            return match.group(0)
        with open(path, "rb") as f:
            return 'src="data:image/png;base64,' + base64.b64encode(f.read()).decode("ascii") + '"'

    body = re.sub(r'src="([^"]+\.png)"', inline, body)
    return ("<!doctype html><html><head><meta charset='utf-8'><title>Text classifier report</title>"
            f"<style>{_STYLE}</style></head><body>\n{body}\n</body></html>\n")
