"""Tiny trained classifiers, exported, plus tokenized splits, for the export/quantize/benchmark tests.

Everything is built in a few seconds from a toy sentiment corpus: an AWE model (the real
`build_awe_model`) and a BERT-shaped stand-in (three int32 inputs named like the real encoder's,
embedding + masked mean + softmax) that exercises BERT metadata without an encoder.
"""

from __future__ import annotations

import json
import os
import random
from typing import Dict, List, Sequence, Tuple

import numpy as np

import components  # noqa: F401  (legacy Keras switch before TensorFlow loads)

LABELS = ["negative", "positive"]
POSITIVE = ["good", "great", "wonderful", "fun", "love", "best", "charming", "beautiful"]
NEGATIVE = ["bad", "awful", "terrible", "boring", "hate", "worst", "dull", "ugly"]
FILLER = ["the", "movie", "film", "story", "plot", "was", "a", "very", "acting", "it"]

# Texts for checking MediaPipe against our own predictions: clear, mixed, capitalised, unknown.
PROBE_TEXTS = [
    "the movie was great", "the film was awful", "a wonderful charming story", "boring and dull plot",
    "Great acting, terrible plot", "I love it", "the worst film", "it was good but ugly",
    "Beautiful!", "zebra xylophone", "the plot", "BEST movie, BEST story",
]


def corpus(n_per_class: int = 60, seed: int = 0) -> Tuple[List[str], np.ndarray]:
    rng = random.Random(seed)
    texts, labels = [], []
    for _ in range(n_per_class):
        for label, words in ((0, NEGATIVE), (1, POSITIVE)):
            tokens = rng.sample(FILLER, 3) + rng.sample(words, 2)
            rng.shuffle(tokens)
            if rng.random() < 0.3:
                tokens[0] = tokens[0].capitalize()
            texts.append(" ".join(tokens))
            labels.append(label)
    return texts, np.asarray(labels, dtype=np.int32)


def write_tokenized(folder: str, architecture: str, features: Dict[str, np.ndarray],
                    labels: Sequence[int], seq_len: int) -> str:
    """A tokenized folder in the contract's layout (TFRecord shard + meta.json)."""
    import tensorflow as tf

    os.makedirs(folder, exist_ok=True)
    names = ["input_ids"] if architecture == "awe" else ["input_word_ids", "input_mask", "input_type_ids"]
    with tf.io.TFRecordWriter(os.path.join(folder, "tokens-00000-of-00001.tfrecord")) as writer:
        for i, label in enumerate(labels):
            feature = {n: tf.train.Feature(int64_list=tf.train.Int64List(value=features[n][i].tolist()))
                       for n in names}
            feature["label"] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)]))
            feature["length"] = tf.train.Feature(int64_list=tf.train.Int64List(
                value=[int(features["length"][i])]))
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    meta = {"architecture": architecture, "seq_len": seq_len, "num_examples": len(labels),
            "label_names": LABELS, "do_lower_case": True, "features": names + ["length", "label"]}
    with open(os.path.join(folder, "meta.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f)
    return folder


def _fit(model, x, y, epochs: int):
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=epochs, batch_size=16, verbose=0)
    return model


def make_awe(root: str, seq_len: int = 16, wordvec_dim: int = 16, epochs: int = 40) -> Dict:
    """Trains, saves and exports a tiny AWE classifier; returns paths, model and tokenizer."""
    import tf_keras as keras

    from components import tokenizers as tok
    from components import vocabulary as vocab_io
    from components.awe_model import build_awe_model
    from components.export import export_model
    from components.model_io import save_trained
    from components.options import AverageWordEmbeddingModelOptions

    texts, labels = corpus()
    vocab_tokens = tok.build_awe_vocab(tok.count_words(texts), 1000)
    vocab_dir = os.path.join(root, "vocab")
    vocab_io.write_folder(vocab_dir, vocab_io.Vocabulary(vocab_io.TOKEN_IDS, tuple(vocab_tokens), True))
    tokenizer = tok.RegexTokenizer.from_file(os.path.join(vocab_dir, "vocab.txt"), seq_len)
    ids, lengths = tokenizer.encode_batch(texts)

    keras.utils.set_random_seed(0)
    options = AverageWordEmbeddingModelOptions(seq_len=seq_len, wordvec_dim=wordvec_dim,
                                               vocab_size=len(vocab_tokens), dropout_rate=0.0,
                                               device_case_variants=True)
    model = _fit(build_awe_model(options, len(LABELS)), ids, labels, epochs)
    model_dir = save_trained(os.path.join(root, "model"), model, "awe", options, LABELS)
    export = export_model(model_dir, vocab_dir, os.path.join(root, "export"))

    test_texts, test_labels = corpus(15, seed=1)
    test_ids, test_lengths = tokenizer.encode_batch(test_texts)
    return {
        "model": model, "tokenizer": tokenizer, "export": export, "export_dir": os.path.join(root, "export"),
        "model_dir": model_dir, "vocab_dir": vocab_dir, "seq_len": seq_len,
        "train_dir": write_tokenized(os.path.join(root, "train"), "awe",
                                     {"input_ids": ids, "length": lengths}, labels, seq_len),
        "test_dir": write_tokenized(os.path.join(root, "test"), "awe",
                                    {"input_ids": test_ids, "length": test_lengths}, test_labels, seq_len),
        "test_texts": test_texts, "test_labels": test_labels,
        "predict": lambda batch: model.predict(tokenizer.encode_batch(batch)[0], verbose=0),
    }


def bert_standin(vocab_size: int, dim: int = 16):
    """Three int32 [None, None] inputs named like the real encoder's -> class probabilities."""
    import tensorflow as tf
    import tf_keras as keras

    word = keras.Input((None,), dtype=tf.int32, name="input_word_ids")
    mask = keras.Input((None,), dtype=tf.int32, name="input_mask")
    types = keras.Input((None,), dtype=tf.int32, name="input_type_ids")
    vectors = (keras.layers.Embedding(vocab_size, dim, name="words")(word)
               + keras.layers.Embedding(2, dim, name="types")(types))
    weights = keras.layers.Lambda(lambda m: tf.cast(m, tf.float32)[..., tf.newaxis])(mask)
    pooled = keras.layers.Lambda(lambda vw: tf.reduce_sum(vw[0] * vw[1], 1)
                                 / tf.maximum(tf.reduce_sum(vw[1], 1), 1.0))([vectors, weights])
    hidden = keras.layers.Dense(dim, activation="relu")(pooled)
    probs = keras.layers.Dense(len(LABELS), activation="softmax")(hidden)
    return keras.Model([word, mask, types], probs, name="bert_standin")


def make_bert(root: str, seq_len: int = 24, epochs: int = 40) -> Dict:
    """Trains and exports the BERT stand-in with a WordPiece vocabulary (tests/fixtures_bert's)."""
    import tf_keras as keras
    from fixtures_bert import tiny_vocab

    from components import tokenizers as tok
    from components import vocabulary as vocab_io
    from components.export import export_keras_model

    vocab_dir = os.path.join(root, "vocab")
    vocab = tiny_vocab()
    vocab_io.write_folder(vocab_dir, vocab_io.Vocabulary(vocab_io.WORDPIECE, tuple(vocab), True))
    tokenizer = tok.BertTokenizer(os.path.join(vocab_dir, "vocab.txt"), seq_len, do_lower_case=True)

    texts, labels = corpus()
    features = tokenizer.encode_batch(texts)
    inputs = {k: features[k] for k in tok.BERT_FEATURES}
    keras.utils.set_random_seed(0)
    model = _fit(bert_standin(len(vocab)), inputs, labels, epochs)
    info = {"architecture": "bert", "model_options": {"seq_len": seq_len}, "label_names": LABELS,
            "num_classes": len(LABELS)}
    export = export_keras_model(model, info, vocab_dir, os.path.join(root, "export"))

    test_texts, test_labels = corpus(15, seed=1)
    test_features = tokenizer.encode_batch(test_texts)

    def predict(batch):
        encoded = tokenizer.encode_batch(batch)
        return model.predict({k: encoded[k] for k in tok.BERT_FEATURES}, verbose=0)

    return {
        "model": model, "tokenizer": tokenizer, "export": export, "export_dir": os.path.join(root, "export"),
        "vocab_dir": vocab_dir, "seq_len": seq_len,
        "train_dir": write_tokenized(os.path.join(root, "train"), "bert", features, labels, seq_len),
        "test_dir": write_tokenized(os.path.join(root, "test"), "bert", test_features, test_labels, seq_len),
        "test_texts": test_texts, "test_labels": test_labels, "predict": predict,
    }


def mediapipe_classifier(path: str):
    from mediapipe.tasks.python.core.base_options import BaseOptions
    from mediapipe.tasks.python.text import text_classifier

    options = text_classifier.TextClassifierOptions(base_options=BaseOptions(model_asset_path=path))
    return text_classifier.TextClassifier.create_from_options(options)


def mediapipe_scores(classifier, text: str) -> Dict[str, float]:
    """label -> score for one text (MediaPipe returns categories sorted by score)."""
    categories = classifier.classify(text).classifications[0].categories
    return {c.category_name: c.score for c in categories}
