"""Rebuilds this folder's tiny AWE model with the code of commit 5494fdc (run it there, not here).

    git worktree add /tmp/legacy 5494fdc
    PYTHONPATH=/tmp/legacy python tests/data/legacy/build.py --out tests/data/legacy
    git worktree remove /tmp/legacy

It runs that commit's own steps on a toy corpus (ingest, Beam preprocessing, training, export),
then keeps what a user of that version would hold: the trained model folder (`model/`), the
vocabulary folder (`vocab/`) and the exported `model.tflite`, plus `expected.json`: the old
Keras model's scores for a few probe texts.
"""

import argparse
import json
import os
import random
import shutil
import tempfile

import components  # noqa: F401  (that commit's legacy-Keras switch)

POSITIVE = ["good", "great", "wonderful", "fun", "love", "best", "charming", "beautiful"]
NEGATIVE = ["bad", "awful", "terrible", "boring", "hate", "worst", "dull", "ugly"]
FILLER = ["the", "movie", "film", "story", "plot", "was", "a", "very", "acting", "it"]
PROBES = ["the movie was great", "the film was awful", "a wonderful charming story", "boring and dull plot",
          "Great acting, terrible plot", "the worst film", "it was good but ugly", "Beautiful!",
          "zebra xylophone", "BEST movie, BEST story"]


def corpus_tsv(path: str, per_class: int = 200, seed: int = 0) -> None:
    rng = random.Random(seed)
    lines = ["sentence\tlabel"]
    for _ in range(per_class):
        for label, words in (("negative", NEGATIVE), ("positive", POSITIVE)):
            tokens = rng.sample(FILLER, 3) + rng.sample(words, 2)
            rng.shuffle(tokens)
            lines.append(" ".join(tokens) + "\t" + label)
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    out = parser.parse_args().out

    from components.export import export_model
    from components.ingest import ingest
    from components.model_io import load_trained
    from components.options import (
        AverageWordEmbeddingHParams,
        AverageWordEmbeddingModelOptions,
        CSVParams,
        SplitOptions,
    )
    from components.preprocess import preprocess
    from components.tokenizers import RegexTokenizer
    from components.train import train

    work = tempfile.mkdtemp(prefix="legacy-")
    data = os.path.join(work, "train.tsv")
    corpus_tsv(data)
    splits = {name: os.path.join(work, "splits", name) for name in ("train", "validation", "test")}
    ingest(data, csv_params=CSVParams(text_column="sentence", delimiter="\t"),
           split_options=SplitOptions(0.2, 0.1, seed=0), output_dirs=splits)
    options = AverageWordEmbeddingModelOptions(seq_len=12, wordvec_dim=16, dropout_rate=0.0, vocab_size=100,
                                               device_case_variants=True)
    tokens = {name: os.path.join(work, "tokens", name) for name in splits}
    vocab_dir = os.path.join(work, "vocab")
    preprocess("awe", splits, tokens, vocab_dir, options)
    model_dir = os.path.join(work, "model")
    train("awe", tokens["train"], tokens["validation"], vocab_dir, options,
          AverageWordEmbeddingHParams(epochs=10, batch_size=16, learning_rate=0.05), model_dir)
    export_dir = os.path.join(work, "export")
    export_model(model_dir, vocab_dir, export_dir)

    model, info = load_trained(model_dir)
    tokenizer = RegexTokenizer.from_file(os.path.join(vocab_dir, "vocab.txt"), options.seq_len)
    scores = model.predict(tokenizer.encode_batch(PROBES)[0], verbose=0)

    if os.path.exists(os.path.join(out, "model")):
        shutil.rmtree(os.path.join(out, "model"))
    if os.path.exists(os.path.join(out, "vocab")):
        shutil.rmtree(os.path.join(out, "vocab"))
    os.makedirs(os.path.join(out, "model"))
    for name in ("model.json", "weights.h5", "training.json"):
        shutil.copyfile(os.path.join(model_dir, name), os.path.join(out, "model", name))
    shutil.copytree(vocab_dir, os.path.join(out, "vocab"))
    shutil.copyfile(os.path.join(export_dir, "model.tflite"), os.path.join(out, "model.tflite"))
    expected = {"made_by": "commit 5494fdc, tests/data/legacy/build.py", "label_names": info["label_names"],
                "texts": PROBES, "keras_scores": [[float(p) for p in row] for row in scores]}
    with open(os.path.join(out, "expected.json"), "w", encoding="utf-8") as f:
        json.dump(expected, f, indent=2)
        f.write("\n")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
