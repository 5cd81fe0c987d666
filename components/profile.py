"""The data profile of an ingest run (`profile.json`, `profile.md`), built from streaming statistics.

Nothing here holds texts. Length percentiles are exact: they come from per-split histograms of
characters and words (a text holds at most `delimited.MAX_FIELD_CHARS` characters, so a
histogram is bounded). Duplicates, texts with conflicting labels and texts shared between
splits are counted on a 64-bit hash of each text, kept with its label id: 12 bytes a row.
"""

from __future__ import annotations

import json
import os
from array import array
from collections import Counter, defaultdict
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np

from components.delimited import BadRowLog

PROFILE_JSON = "profile.json"
PROFILE_MD = "profile.md"

LENGTH_STATISTICS = "exact, from per-split histograms of text lengths"
DUPLICATE_STATISTICS = "by a 64-bit hash of each text"


class SplitStats:
    """What the profile needs of one split's rows."""

    __slots__ = ("hashes", "labels", "chars", "words")

    def __init__(self):
        self.hashes = array("q")
        self.labels = array("i")
        self.chars: Counter = Counter()
        self.words: Counter = Counter()

    def add(self, text_hash: int, label_id: int, chars: int, words: int) -> None:
        self.hashes.append(text_hash)
        self.labels.append(label_id)
        self.chars[chars] += 1
        self.words[words] += 1

    @property
    def rows(self) -> int:
        return len(self.hashes)

    def label_counts(self, num_ids: int) -> np.ndarray:
        ids = np.frombuffer(self.labels, dtype=np.int32) if self.labels else np.zeros(0, np.int32)
        return np.bincount(ids, minlength=num_ids)

    def hash_summary(self):
        """(sorted distinct hashes, duplicate rows, distinct texts carrying more than one label)."""
        if not self.hashes:
            return np.zeros(0, np.int64), 0, 0
        hashes = np.frombuffer(self.hashes, dtype=np.int64)
        labels = np.frombuffer(self.labels, dtype=np.int32)
        order = np.lexsort((labels, hashes))
        hashes, labels = hashes[order], labels[order]
        repeat = hashes[1:] == hashes[:-1]
        conflict = repeat & (labels[1:] != labels[:-1])
        distinct = hashes[np.concatenate(([True], ~repeat))]
        return distinct, int(repeat.sum()), int(len(np.unique(hashes[1:][conflict])))


def percentiles(histogram: Counter) -> Dict[str, float]:
    """min/p50/p90/p99/max/mean of the values a histogram counts (nearest-rank, as before)."""
    total = sum(histogram.values())
    if not total:
        return {}
    keys = sorted(histogram)
    ranks = {q: min(total - 1, int(round(q * (total - 1)))) for q in (0.5, 0.9, 0.99)}
    picked, seen = {}, 0
    for key in keys:
        seen += histogram[key]
        for q, rank in ranks.items():
            if q not in picked and rank < seen:
                picked[q] = float(key)
    mean = sum(key * count for key, count in histogram.items()) / total
    return {"min": float(keys[0]), "p50": picked[0.5], "p90": picked[0.9], "p99": picked[0.99],
            "max": float(keys[-1]), "mean": round(mean, 2)}


def labels_differing_only_by_case(label_names: Sequence[str]) -> List[List[str]]:
    groups = defaultdict(list)
    for name in label_names:
        groups[name.casefold()].append(name)
    return [names for names in groups.values() if len(names) > 1]


def split_figures(rows: int, label_counts: Mapping[str, int], label_names: Sequence[str], chars: Counter,
                  words: Counter, duplicates: int, conflicting: int) -> Dict:
    """One split's entry of the profile, from its counts and length histograms."""
    return {
        "rows": rows,
        "labels": {label: int(label_counts.get(label, 0)) for label in label_names},
        "text_chars": percentiles(chars),
        "text_words": percentiles(words),
        "duplicate_rows": duplicates,
        "duplicate_texts_with_conflicting_labels": conflicting,
    }


def build_profile(stats: Dict[str, SplitStats], label_names: Sequence[str], id_names: Sequence[str],
                  sources: Dict[str, str], files: Dict[str, List[str]], bad: BadRowLog,
                  split_method: Dict, notes: Optional[List[str]] = None) -> Dict:
    """`stats` maps each split to its statistics; one object under two names is one set of rows."""
    summaries = {}
    for split in stats.values():
        if id(split) not in summaries:
            summaries[id(split)] = split.hash_summary()
    figures = {}
    for name, split in stats.items():
        counts = split.label_counts(len(id_names))
        _, duplicates, conflicting = summaries[id(split)]
        figures[name] = split_figures(split.rows, {label: counts[i] for i, label in enumerate(id_names)},
                                      label_names, split.chars, split.words, duplicates, conflicting)
    overlap = {}
    names = sorted(stats)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if stats[a] is stats[b]:
                continue  # the same rows under two names (test = validation)
            shared = len(np.intersect1d(summaries[id(stats[a])][0], summaries[id(stats[b])][0],
                                        assume_unique=True))
            if shared:
                overlap[f"{a}/{b}"] = shared
    return assemble_profile(figures, overlap, label_names, sources, files, bad, split_method, notes)


def assemble_profile(figures: Dict[str, Dict], overlap: Dict[str, int], label_names: Sequence[str],
                     sources: Dict[str, str], files: Dict[str, List[str]], bad: BadRowLog,
                     split_method: Dict, notes: Optional[List[str]] = None) -> Dict:
    """The profile from each split's figures (`split_figures`) and the texts shared between splits;
    the in-process ingest and the Beam ingest both end here."""
    profile: Dict = {"label_names": list(label_names), "sources": dict(sources),
                     "files": {name: paths[:100] for name, paths in files.items()},
                     "file_counts": {name: len(paths) for name, paths in files.items()},
                     "split_method": split_method, "length_statistics": LENGTH_STATISTICS,
                     "duplicate_statistics": DUPLICATE_STATISTICS, "splits": dict(figures)}
    profile["texts_shared_between_splits"] = dict(overlap)
    profile["labels_differing_only_by_case"] = labels_differing_only_by_case(label_names)
    profile["dropped_rows"] = {
        "total": bad.total,
        "by_reason": dict(bad.by_kind),
        "rows": [row.to_dict() for row in bad.rows],
        "listed": len(bad.rows),
    }
    all_notes = list(notes or [])
    for group in profile["labels_differing_only_by_case"]:
        all_notes.append(f"labels {', '.join(repr(g) for g in group)} differ only by case and are "
                         "separate classes; if they mean one class, make the labels agree")
    for name, split in profile["splits"].items():
        if split["duplicate_texts_with_conflicting_labels"]:
            all_notes.append(f"{name}: {split['duplicate_texts_with_conflicting_labels']} text(s) occur with "
                             "more than one label")
    profile["notes"] = all_notes
    return profile


def profile_markdown(profile: Dict) -> str:
    labels = profile["label_names"]
    lines = ["# Data profile", "", "| split | rows | " + " | ".join(f"label {lab}" for lab in labels)
             + " | median words | p99 words | duplicate rows | texts with conflicting labels |",
             "|---|---|" + "---|" * len(labels) + "---|---|---|---|"]
    for name, split in profile["splits"].items():
        cells = [name, str(split["rows"])] + [str(split["labels"][lab]) for lab in labels]
        words = split["text_words"]
        cells += [f"{words.get('p50', 0):.0f}", f"{words.get('p99', 0):.0f}", str(split["duplicate_rows"]),
                  str(split["duplicate_texts_with_conflicting_labels"])]
        lines.append("| " + " | ".join(cells) + " |")
    counts = profile.get("file_counts", {})
    lines += ["", "Sources: " + ", ".join(
        f"{k} = `{v}`" + (f" ({counts[k]} files)" if counts.get(k, 1) > 1 else "")
        for k, v in profile["sources"].items())]
    method = profile.get("split_method", {})
    if method.get("method") == "exact":
        lines.append(f"Split: exact stratified split of {method['rows']} rows (seed {method['seed']}; "
                     f"exact up to {method['exact_max_rows']} rows)")
    elif method.get("method") == "hash":
        lines.append(f"Split: by a stable hash of (seed, label, text), per label, of {method['rows']} rows "
                     f"(seed {method['seed']}; above {method['exact_max_rows']} rows the exact split is not used)")
    elif method.get("method") == "files":
        lines.append("Split: nothing carved; the splits come from the files given")
    shared = profile["texts_shared_between_splits"]
    lines.append("Texts present in more than one split: "
                 + (", ".join(f"{k}: {v}" for k, v in shared.items()) if shared else "none"))
    dropped = profile["dropped_rows"]
    lines.append(f"Rows dropped: {dropped['total']}"
                 + ("" if not dropped["total"] else " — " + ", ".join(
                     f"{reason}: {count}" for reason, count in dropped["by_reason"].items())))
    for row in dropped["rows"]:
        where = f"{row['source']} line {row['line']}" + (f" column {row['column']}" if row["column"] else "")
        lines.append(f"- {where}: {row['reason']}")
    if dropped["total"] > dropped["listed"]:
        lines.append(f"- ... and {dropped['total'] - dropped['listed']} more (counted above)")
    if profile.get("notes"):
        lines += ["", "Notes:"] + [f"- {note}" for note in profile["notes"]]
    return "\n".join(lines) + "\n"


def write(folder: str, profile: Dict) -> None:
    """The profile folder: profile.json and its Markdown rendering, profile.md."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, PROFILE_JSON), "w", encoding="utf-8") as f:
        json.dump(profile, f, indent=2, ensure_ascii=False)
    with open(os.path.join(folder, PROFILE_MD), "w", encoding="utf-8") as f:
        f.write(profile_markdown(profile))


def markdown_path(folder: str) -> Optional[str]:
    path = os.path.join(folder, PROFILE_MD)
    return path if os.path.exists(path) else None
