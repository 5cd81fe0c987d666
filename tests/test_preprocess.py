"""The Beam preprocessing step end to end on small splits the tests write themselves."""

import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
from fixtures_bert import make_tiny_hf_checkpoint

from components import split_io
from components.errors import ConfigError, EncoderError, InputFormatError, LabelError, VocabularyError
from components.options import AverageWordEmbeddingModelOptions, BertModelOptions
from components.preprocess import preprocess
from components.tfrecord import serialize_examples, tfrecord_frame
from components.tokenized import load_tokenized, read_meta
from components.tokenizers import PAD, START, UNKNOWN, BertTokenizer, RegexTokenizer, load_awe_vocab

LABELS = ["neg", "pos"]
TRAIN = [
    ("The movie was great", "pos"),
    ("the plot was thin", "neg"),
    ("Great acting, great music!", "pos"),
    ("It's not bad", "pos"),
    ("...", "neg"),
    ("a b c d e f g h", "neg"),
]
# "zebra" is the most frequent token overall but appears only outside training.
VALIDATION = [("zebra zebra zebra zebra", "pos"), ("zebra great", "neg")]
TEST = [("great the movie", "pos"), ("unseen words", "neg")]
MULTI_PROCESSING = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]


def write_splits(root, train=TRAIN, validation=VALIDATION, test=TEST):
    splits = {}
    for name, rows in (("train", train), ("validation", validation), ("test", test)):
        if rows is not None:
            splits[name] = str(root / "splits" / name)
            split_io.write_split(splits[name], rows, LABELS)
    return splits


def outputs(root, splits, tag="out"):
    return {name: str(root / tag / name) for name in splits}, str(root / tag / "vocab")


def load_rows(folder):
    dataset, meta = load_tokenized(folder)
    rows = [({k: v.numpy().tolist() for k, v in f.items()}, int(label)) for f, label in dataset]
    return rows, meta


def folder_bytes(folder):
    return {name: open(os.path.join(folder, name), "rb").read() for name in sorted(os.listdir(folder))}


def test_serialized_examples_are_tf_examples(tmp_path):
    rng = np.random.default_rng(0)
    features = {
        "input_ids": rng.integers(0, 40_000, size=(5, 7)),
        "big": np.array([[0], [127], [128], [2**40], [-3]]),
        "label": np.array([0, 1, 1, 0, 1]),
    }
    records = serialize_examples(features)
    for row, record in enumerate(records):
        expected = tf.train.Example(features=tf.train.Features(feature={
            name: tf.train.Feature(int64_list=tf.train.Int64List(
                value=np.atleast_1d(values[row]).tolist()))
            for name, values in features.items()}))
        assert record == expected.SerializeToString(deterministic=True)
    path = tmp_path / "x.tfrecord"
    path.write_bytes(b"".join(map(tfrecord_frame, records)))
    assert [r.numpy() for r in tf.data.TFRecordDataset(str(path))] == records


def test_awe_end_to_end(tmp_path):
    splits = write_splits(tmp_path, validation=[])  # an empty validation split is allowed
    splits["test"] = write_splits(tmp_path / "t", train=TEST, validation=None, test=None)["train"]
    out, vocab_dir = outputs(tmp_path, splits)
    options = AverageWordEmbeddingModelOptions(seq_len=6, vocab_size=5)
    summary = preprocess("awe", splits, out, vocab_dir, options)

    # Top 5 by count, ties by token, from training only: no "zebra".
    vocab_text = open(os.path.join(vocab_dir, "vocab.txt"), encoding="utf-8").read()
    assert vocab_text == ("<PAD> 0\n<START> 1\n<UNKNOWN> 2\ngreat 3\nthe 4\nwas 5\na 6\n"
                          "acting 7\n")
    assert sorted(os.listdir(vocab_dir)) == ["tokenizer.json", "vocab.txt"]
    assert json.load(open(os.path.join(vocab_dir, "tokenizer.json"))) == {
        "do_lower_case": True, "format": "token_ids", "size": 8}

    rows, meta = load_rows(out["train"])
    tokenizer = RegexTokenizer(load_awe_vocab(os.path.join(vocab_dir, "vocab.txt")), 6, True)
    ids, lengths = tokenizer.encode_batch([text for text, _ in TRAIN])
    assert [r[0]["input_ids"] for r in rows] == ids.tolist()  # same order as the split
    assert [r[0]["length"] for r in rows] == lengths.tolist()
    assert [r[1] for r in rows] == [LABELS.index(label) for _, label in TRAIN]
    assert rows[0] == ({"input_ids": [1, 4, 2, 5, 3, 0], "length": 5}, 1)

    assert meta["architecture"] == "awe" and meta["seq_len"] == 6 and meta["do_lower_case"] is True
    assert meta["label_names"] == LABELS and meta["vocab_size"] == 8
    assert meta["num_examples"] == 6 and meta["truncated"] == 1
    assert meta["empty_after_tokenization"] == 1
    assert meta["label_counts"] == {"neg": 3, "pos": 3}
    assert summary["splits"]["train"]["truncated"] == 1
    assert summary["splits"]["validation"]["num_examples"] == 0
    assert summary["splits"]["test"]["num_examples"] == 2
    assert read_meta(out["test"])["splits"] == summary["splits"]

    assert load_rows(out["validation"])[0] == []
    # Shards carry no absolute paths: a moved folder still loads.
    moved = str(tmp_path / "moved")
    shutil.copytree(out["test"], moved)
    assert load_rows(moved)[0] == load_rows(out["test"])[0]


def test_two_runs_are_byte_identical_and_shards_keep_order(tmp_path):
    splits = write_splits(tmp_path)
    runs = []
    for tag in ("a", "b"):
        out, vocab_dir = outputs(tmp_path, splits, tag)
        preprocess("awe", splits, out, vocab_dir, AverageWordEmbeddingModelOptions(seq_len=8),
                   num_shards=3)
        runs.append((out, vocab_dir))
    (out_a, vocab_a), (out_b, vocab_b) = runs
    assert folder_bytes(vocab_a) == folder_bytes(vocab_b)
    for name in splits:
        assert folder_bytes(out_a[name]) == folder_bytes(out_b[name])
    assert sorted(f for f in os.listdir(out_a["train"]) if f.endswith(".tfrecord")) == [
        "tokens-00000-of-00003.tfrecord", "tokens-00001-of-00003.tfrecord",
        "tokens-00002-of-00003.tfrecord"]
    labels = [label for _, label in load_rows(out_a["train"])[0]]
    assert labels == [LABELS.index(label) for _, label in TRAIN]
    assert read_meta(out_a["validation"])["num_shards"] == 2  # never more shards than examples


def test_multi_processing_matches_in_memory(tmp_path):
    splits = write_splits(tmp_path)
    options = AverageWordEmbeddingModelOptions(seq_len=8, vocab_size=6)
    results = []
    for tag, args in (("memory", ["--direct_running_mode=in_memory"]), ("mp", MULTI_PROCESSING)):
        out, vocab_dir = outputs(tmp_path, splits, tag)
        summary = preprocess("awe", splits, out, vocab_dir, options, beam_pipeline_args=args)
        results.append((summary, out, vocab_dir))
    (summary_a, out_a, vocab_a), (summary_b, out_b, vocab_b) = results
    assert summary_a == summary_b
    assert folder_bytes(vocab_a) == folder_bytes(vocab_b)
    for name in splits:
        assert folder_bytes(out_a[name]) == folder_bytes(out_b[name])


BERT_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "movie", "was", "great", "!",
               "plot", "thin", "act", "##ing", ","]


def test_bert_end_to_end(tmp_path):
    encoder = make_tiny_hf_checkpoint(str(tmp_path / "encoder"), vocab_tokens=BERT_TOKENS)
    vocab_path = tmp_path / "encoder" / "vocab.txt"
    tokens = BERT_TOKENS
    splits = write_splits(tmp_path)
    out, vocab_dir = outputs(tmp_path, splits)
    summary = preprocess("bert", splits, out, vocab_dir, BertModelOptions(seq_len=6, encoder=str(encoder)))

    assert open(os.path.join(vocab_dir, "vocab.txt"), "rb").read() == vocab_path.read_bytes()
    assert json.load(open(os.path.join(vocab_dir, "tokenizer.json"))) == {
        "do_lower_case": True, "format": "wordpiece", "size": len(tokens)}
    rows, meta = load_rows(out["train"])
    expected = BertTokenizer(str(vocab_path), 6, True).encode_batch([t for t, _ in TRAIN])
    for name in ("input_word_ids", "input_mask", "input_type_ids", "length"):
        assert [r[0][name] for r in rows] == expected[name].tolist()
    assert rows[0][0]["input_word_ids"] == [2, 5, 6, 7, 8, 3]
    assert rows[4][0]["input_word_ids"] == [2, 1, 1, 1, 3, 0]  # "..." is three [UNK] pieces
    assert meta["features"] == ["input_word_ids", "input_mask", "input_type_ids", "length", "label"]
    assert meta["vocab_size"] == len(tokens) and meta["do_lower_case"] is True
    assert summary["splits"]["train"]["truncated"] == 3
    assert summary["splits"]["validation"]["unknown_tokens"] == 5


def test_bad_input_is_reported(tmp_path):
    splits = write_splits(tmp_path)
    out, vocab_dir = outputs(tmp_path, splits)
    awe = AverageWordEmbeddingModelOptions()
    with pytest.raises(ConfigError, match="train"):
        preprocess("awe", {"test": splits["test"]}, out, vocab_dir, awe)
    with pytest.raises(ConfigError, match="architecture"):
        preprocess("lstm", splits, out, vocab_dir, awe)
    with pytest.raises(ConfigError, match="seq_len"):
        preprocess("awe", splits, out, vocab_dir, {"seq_len": 2})
    with pytest.raises(EncoderError, match="neither"):
        preprocess("bert", splits, out, vocab_dir, BertModelOptions(encoder=str(tmp_path / "missing")))
    encoder = make_tiny_hf_checkpoint(str(tmp_path / "encoder"), vocab_tokens=BERT_TOKENS)
    (tmp_path / "encoder" / "vocab.txt").write_text("hello\nworld\n", encoding="utf-8")
    with pytest.raises(VocabularyError, match="missing"):
        preprocess("bert", splits, out, vocab_dir, BertModelOptions(encoder=str(encoder)))
    empty = write_splits(tmp_path / "empty", train=[], validation=None, test=None)
    with pytest.raises(InputFormatError, match="no examples"):
        preprocess("awe", empty, {"train": str(tmp_path / "e")}, vocab_dir, awe)


def test_unknown_label_fails_after_counting(tmp_path):
    splits = write_splits(tmp_path)
    split_io.write_split(splits["test"], [("great", "pos"), ("odd", "meh"), ("odder", "meh")], LABELS)
    out, vocab_dir = outputs(tmp_path, splits)
    with pytest.raises(LabelError, match=r"test: \{'meh': 2\}"):
        preprocess("awe", splits, out, vocab_dir, AverageWordEmbeddingModelOptions())


def test_malformed_record_names_file_and_line(tmp_path):
    splits = write_splits(tmp_path, validation=None, test=None)
    with open(os.path.join(splits["train"], "examples-00000.jsonl"), "a", encoding="utf-8") as f:
        f.write('{"label": "pos"}\n')
    out, vocab_dir = outputs(tmp_path, splits)
    with pytest.raises(InputFormatError, match=r"examples-00000.jsonl, line 7"):
        preprocess("awe", splits, out, vocab_dir, AverageWordEmbeddingModelOptions())


def test_vocab_specials_are_first():
    assert [PAD, START, UNKNOWN] == ["<PAD>", "<START>", "<UNKNOWN>"]
