"""The Model Maker guide's AWE calls on a small data set: the first N rows of SST-2's train.tsv.

    .venv/bin/python benchmarks/guide_small.py [--rows 3000] [--epochs 3] [--data ../shared/data/sst2]

Exactly the guide's flow (`CSVParams(text_column='sentence', label_column='label', delimiter='\\t')`,
`Dataset.from_csv`, `AverageWordEmbeddingHParams(epochs=..., batch_size=32, learning_rate=0)`,
`TextClassifier.create(train, dev, options)`, `evaluate(dev)`), with dev.tsv as the validation data
as in the guide, beside TF-IDF + logistic regression trained on the same rows (C chosen on dev, as
generous to the baseline as the guide's setup is to the model). The last line printed is one JSON
object: {"rows", "epochs", "awe", "tfidf_lr", "learning_rate"}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "sst2"))
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args(argv)

    from suite import tfidf_lr

    from components import text_classifier

    work = tempfile.mkdtemp(prefix="guide-small-")
    head = os.path.join(work, "train.tsv")
    with open(os.path.join(args.data, "train.tsv"), encoding="utf-8") as f, open(head, "w", encoding="utf-8") as out:
        for number, line in enumerate(f):
            if number > args.rows:
                break
            out.write(line)
    csv_params = text_classifier.CSVParams(text_column="sentence", label_column="label", delimiter="\t")
    train_data = text_classifier.Dataset.from_csv(filename=head, csv_params=csv_params)
    validation_data = text_classifier.Dataset.from_csv(filename=os.path.join(args.data, "dev.tsv"),
                                                       csv_params=csv_params)
    hparams = text_classifier.AverageWordEmbeddingHParams(epochs=args.epochs, batch_size=32, learning_rate=0,
                                                          export_dir=os.path.join(work, "awe"))
    options = text_classifier.TextClassifierOptions(
        supported_model=text_classifier.SupportedModels.AVERAGE_WORD_EMBEDDING_CLASSIFIER, hparams=hparams)
    model = text_classifier.TextClassifier.create(train_data, validation_data, options)
    metrics = model.evaluate(validation_data)
    rows = {"train": train_data.rows(), "validation": validation_data.rows(), "test": validation_data.rows()}
    baseline = tfidf_lr(rows, train_data.label_names)
    result = {"rows": train_data.size, "epochs": args.epochs, "awe": metrics[1], "tfidf_lr": baseline["accuracy"],
              "learning_rate": model.training["picked"].get("learning_rate")}
    print(f"guide flow on the first {train_data.size} rows, {args.epochs} epochs: AWE dev accuracy "
          f"{100 * metrics[1]:.1f} % (TF-IDF + LR {100 * baseline['accuracy']:.1f} %)")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
