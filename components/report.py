"""The run's report and deliverables: the guide's benchmark table filled from this run.

The deliverables folder is what `publish` copies to `export_dir`: per architecture the model
a device should use (`model.tflite`: the quantized one unless quantization is off), its float
parent, labels, vocabulary and metrics; `summary.json` and the report at the top.
"""

from __future__ import annotations

import base64
import html
import json
import os
import shutil
from typing import Dict, List, Sequence

from components.benchmark import format_latency
from components.export import EXPORT_INFO
from components.quantize import QUANT_INFO
from components.steps import EVALUATION_FILE, LATENCY_FILE

ARCH_TITLES = {"awe": "Average Word Embedding", "bert": "BERT"}


def _load_json(path: str) -> Dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _by_architecture(folders: Sequence[str], filename: str) -> Dict[str, Dict]:
    found = {}
    for folder in folders:
        data = _load_json(os.path.join(folder, filename))
        found[data["architecture"]] = {"folder": folder, **data}
    return found


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
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = max(3, 0.6 * len(labels) + 2)
    fig, axis = plt.subplots(figsize=(size, size))
    axis.imshow(matrix, cmap="Blues")
    axis.set_xticks(range(len(labels)), labels, rotation=45)
    axis.set_yticks(range(len(labels)), labels)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            axis.text(j, i, str(value), ha="center", va="center")
    axis.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _size(num_bytes: int) -> str:
    return f"{num_bytes / 1e6:.1f} MB" if num_bytes >= 1e6 else f"{num_bytes / 1e3:.0f} KB"


def build_report(profile_dir: str, model_dirs: Sequence[str], evaluation_dirs: Sequence[str],
                 export_dirs: Sequence[str], quantized_dirs: Sequence[str], tflite_eval_dirs: Sequence[str],
                 latency_dirs: Sequence[str], min_accuracy: float, markdown_path: str, html_path: str,
                 deliverables_dir: str) -> Dict:
    """Writes report.md/.html and the deliverables folder; returns summary.json's content."""
    trained = _by_architecture(model_dirs, "model.json")
    evaluations = _by_architecture(evaluation_dirs, "metrics.json")
    exports = _by_architecture(export_dirs, EXPORT_INFO)
    quantized = _by_architecture(quantized_dirs, QUANT_INFO)
    tflite = _by_architecture(tflite_eval_dirs, EVALUATION_FILE)
    latency = _by_architecture(latency_dirs, LATENCY_FILE)
    os.makedirs(deliverables_dir, exist_ok=True)
    plots = os.path.join(deliverables_dir, "plots")
    os.makedirs(plots, exist_ok=True)

    summary: Dict = {"models": {}, "min_accuracy": min_accuracy}
    table = ["| Model architecture | Test accuracy | Model size | CPU 1 thread latency | Quantization |",
             "|---|---|---|---|---|"]
    sections: List[str] = []
    images: List[str] = []
    for arch in sorted(trained):
        quant_mode = quantized[arch]["quantization"]
        delivered = "quantized" if quant_mode != "none" else "float"
        compare = tflite[arch]
        accuracy = compare[delivered]["accuracy"]
        bench = {row["name"]: row for row in latency[arch]["models"]}
        delivered_bench = bench[delivered]
        p50_1 = delivered_bench["latency"]["1"]["p50_ms"]
        published = accuracy >= min_accuracy
        row = {
            "accuracy": accuracy,
            "keras_accuracy": evaluations[arch]["accuracy"],
            "float_tflite_accuracy": compare["float"]["accuracy"],
            "quantized_accuracy": compare["quantized"]["accuracy"],
            "accuracy_change_points": compare["accuracy_change_points"],
            "model_bytes": delivered_bench["model_bytes"],
            "float_model_bytes": bench["float"]["model_bytes"],
            "p50_ms_1_thread": p50_1,
            "p90_ms_1_thread": delivered_bench["latency"]["1"]["p90_ms"],
            "p99_ms_1_thread": delivered_bench["latency"]["1"]["p99_ms"],
            "quantization": quant_mode,
            "published": published,
        }
        if not published:
            row["not_published_because"] = (f"test accuracy {accuracy:.4f} is below min_accuracy {min_accuracy:.4f}")
        summary["models"][arch] = row
        title = ARCH_TITLES.get(arch, arch)
        if arch == "bert":
            title += f" ({trained[arch].get('model_options', {}).get('encoder', '')})"
        table.append(f"| {title} | {100 * accuracy:.2f}% | {_size(row['model_bytes'])} | {format_latency(p50_1)} | "
                     f"{quant_mode} |")
        if delivered == "quantized":
            # The float parent too: the guide's AWE row is a float model, and the trade (bytes
            # against latency and accuracy) is the reader's to weigh.
            row["float_p50_ms_1_thread"] = bench["float"]["latency"]["1"]["p50_ms"]
            table.append(f"| {title} | {100 * row['float_tflite_accuracy']:.2f}% | {_size(row['float_model_bytes'])} | "
                         f"{format_latency(row['float_p50_ms_1_thread'])} | none (float, `model_float.tflite`) |")

        history = []
        training_file = os.path.join(trained[arch]["folder"], "training.json")
        if os.path.exists(training_file):
            training = _load_json(training_file)
            history = training.get("history", [])
            row["train_seconds"] = training.get("train_seconds")
            row["best_epoch"] = training.get("best_epoch")
        curve_png = os.path.join(plots, f"{arch}_training_curves.png")
        confusion_png = os.path.join(plots, f"{arch}_confusion_matrix.png")
        if history:
            _plot_curves(history, f"{title}: training curves", curve_png)
            images.append(curve_png)
        _plot_confusion(evaluations[arch]["confusion_matrix"], evaluations[arch]["label_names"],
                        f"{title}: test confusion matrix", confusion_png)
        images.append(confusion_png)
        sections.append(
            f"## {title}\n\nKeras test accuracy {100 * row['keras_accuracy']:.2f}%, float .tflite "
            f"{100 * row['float_tflite_accuracy']:.2f}%, quantized ({quant_mode}) {100 * row['quantized_accuracy']:.2f}% "
            f"(change {row['accuracy_change_points']:+.2f} points); macro F1 {evaluations[arch].get('macro_f1', 0):.4f}."
            f" Best epoch {row.get('best_epoch')}, training {row.get('train_seconds')} s.\n"
            f"Latency (1 thread) p50 / p90 / p99: {format_latency(p50_1)} / "
            f"{format_latency(row['p90_ms_1_thread'])} / {format_latency(row['p99_ms_1_thread'])}. "
            + ("Published." if published else f"**Not published**: {row['not_published_because']}.") + "\n\n"
            + (f"![training curves](plots/{arch}_training_curves.png)\n" if history else "")
            + f"![confusion matrix](plots/{arch}_confusion_matrix.png)\n")

        if published:
            target = os.path.join(deliverables_dir, arch)
            os.makedirs(target, exist_ok=True)
            shutil.copyfile(os.path.join(quantized[arch]["folder"] if delivered == "quantized"
                                         else exports[arch]["folder"], "model.tflite"),
                            os.path.join(target, "model.tflite"))
            shutil.copyfile(os.path.join(exports[arch]["folder"], "model.tflite"),
                            os.path.join(target, "model_float.tflite"))
            for name in ("labels.txt", "vocab.txt"):
                shutil.copyfile(os.path.join(exports[arch]["folder"], name), os.path.join(target, name))
            with open(os.path.join(target, "metrics.json"), "w") as f:
                json.dump({"evaluation": {k: v for k, v in evaluations[arch].items() if k != "folder"},
                           "tflite": {k: v for k, v in compare.items() if k != "folder"},
                           "latency": latency[arch]["models"]}, f, indent=2)

    profile_md = ""
    profile_file = os.path.join(profile_dir, "profile.md")
    if os.path.exists(profile_file):
        with open(profile_file, encoding="utf-8") as f:
            profile_md = f.read()
        shutil.copyfile(profile_file, os.path.join(deliverables_dir, "profile.md"))
    markdown = "\n".join(["# Text classifier run report", "",
                          "The Model Maker guide's benchmark table, filled from this run:", "", *table, "",
                          *sections, profile_md.replace("# Data profile", "## Data profile")])
    with open(os.path.join(deliverables_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    with open(os.path.join(deliverables_dir, "report.md"), "w", encoding="utf-8") as f:
        f.write(markdown)
    with open(markdown_path, "w", encoding="utf-8") as f:
        f.write(markdown)
    page = _markdown_to_html(markdown, plots)
    with open(html_path, "w", encoding="utf-8") as f:
        f.write(page)
    with open(os.path.join(deliverables_dir, "report.html"), "w", encoding="utf-8") as f:
        f.write(page)
    return summary


def _markdown_to_html(markdown: str, plots_dir: str) -> str:
    """Just enough Markdown (headings, tables, images, paragraphs) for a self-contained page."""
    out = ["<!doctype html><html><head><meta charset='utf-8'><title>Text classifier report</title>",
           "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse}"
           "td,th{border:1px solid #999;padding:.3em .6em}</style></head><body>"]
    in_table = False
    for line in markdown.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if all(set(c) <= set("-:") for c in cells):
                continue
            if not in_table:
                out.append("<table>")
                in_table, tag = True, "th"
            else:
                tag = "td"
            out.append("<tr>" + "".join(f"<{tag}>{html.escape(c)}</{tag}>" for c in cells) + "</tr>")
            continue
        if in_table:
            out.append("</table>")
            in_table = False
        if line.startswith("!["):
            name = line[line.index("(") + 1:line.rindex(")")]
            path = os.path.join(plots_dir, os.path.basename(name))
            if os.path.exists(path):
                with open(path, "rb") as f:
                    data = base64.b64encode(f.read()).decode("ascii")
                out.append(f"<p><img alt='{html.escape(name)}' src='data:image/png;base64,{data}'></p>")
        elif line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{level}>{html.escape(line[level:].strip())}</h{level}>")
        elif line.strip():
            out.append(f"<p>{html.escape(line).replace('**', '')}</p>")
    if in_table:
        out.append("</table>")
    out.append("</body></html>")
    return "\n".join(out)
