"""AWE regex tokenizer and vocabulary, and the BERT WordPiece tokenizer, on hand-written data."""

import json
import pickle
import re

import numpy as np
import pytest

from components.errors import ConfigError, VocabularyError
from components.tokenizers import (
    AWE_TOKEN_PATTERN,
    PAD,
    START,
    UNKNOWN,
    BertTokenizer,
    RegexTokenizer,
    build_awe_vocab,
    count_words,
    infer_bert_do_lower_case,
    load_awe_vocab,
    load_bert_vocab,
    split_words,
    write_awe_vocab,
)

TRICKY = [
    "Don't STOP -- it's great!!",
    "  leading and trailing  ",
    "...starts with punctuation",
    "Café naïve 日本語 a_b x-y",
    "'quoted' words'",
    "",
    "!!!",
    "tab\tnew\nline",
]


def model_maker_split(text, do_lower_case):
    """Model Maker's `_regex_tokenize`, verbatim in behaviour."""
    if do_lower_case:
        text = text.lower()
    return [t for t in re.compile(AWE_TOKEN_PATTERN).split(text.strip()) if t]


@pytest.mark.parametrize("do_lower_case", [True, False])
def test_split_words_matches_model_maker(do_lower_case):
    for text in TRICKY:
        assert split_words(text, do_lower_case) == model_maker_split(text, do_lower_case)


def test_split_words_examples():
    assert split_words("Don't STOP -- it's great!!", True) == ["don't", "stop", "it's", "great"]
    assert split_words("Don't STOP", False) == ["Don't", "STOP"]
    assert split_words("Café 日本語 a_b x-y", True) == ["café", "日本語", "a_b", "x", "y"]
    assert split_words(b"bytes too", True) == ["bytes", "too"]
    assert split_words("...", True) == []


def test_build_awe_vocab_order_and_ties():
    counts = {"b": 2, "a": 2, "c": 5, "d": 1, UNKNOWN: 100}
    assert build_awe_vocab(counts, 3) == [PAD, START, UNKNOWN, "c", "a", "b"]
    assert build_awe_vocab(counts, 10) == [PAD, START, UNKNOWN, "c", "a", "b", "d"]
    # Insertion order must not matter (Counter.most_common would keep first-seen order).
    assert build_awe_vocab(dict(reversed(list(counts.items()))), 3) == build_awe_vocab(counts, 3)


def test_vocab_from_hand_written_corpus():
    corpus = ["The cat sat.", "the dog sat!", "A cat, a dog; the END"]
    counts = count_words(corpus, do_lower_case=True)
    assert counts == {"the": 3, "cat": 2, "sat": 2, "dog": 2, "a": 2, "end": 1}
    vocab = build_awe_vocab(counts, 4)
    assert vocab == [PAD, START, UNKNOWN, "the", "a", "cat", "dog"]
    tokenizer = RegexTokenizer({t: i for i, t in enumerate(vocab)}, seq_len=6)
    assert tokenizer.encode("The cat ate the end") == ([1, 3, 5, 2, 3, 2], 6)
    assert tokenizer.encode("dog") == ([1, 6, 0, 0, 0, 0], 2)


def test_awe_vocab_file_format_and_round_trip(tmp_path):
    path = tmp_path / "vocab.txt"
    tokens = [PAD, START, UNKNOWN, "the", "it's", "café"]
    write_awe_vocab(str(path), tokens)
    assert path.read_bytes() == "<PAD> 0\n<START> 1\n<UNKNOWN> 2\nthe 3\nit's 4\ncafé 5\n".encode()
    assert load_awe_vocab(str(path)) == {t: i for i, t in enumerate(tokens)}


@pytest.mark.parametrize("content, message", [
    ("<PAD> 0\n<START> 1\n<UNKNOWN> 2\nthe\n", "line 4"),
    ("<PAD> 0\n<START> 1\n<UNKNOWN> 2\nthe 3\nthe 4\n", "appears twice"),
    ("<START> 0\n<PAD> 1\n<UNKNOWN> 2\n", "<PAD> must have id 0"),
    ("<PAD> 0\n<START> 1\n<UNKNOWN> 2\nthe 7\n", "without gaps"),
    ("", "empty"),
])
def test_load_awe_vocab_rejects_malformed(tmp_path, content, message):
    path = tmp_path / "vocab.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(VocabularyError, match=message) as info:
        load_awe_vocab(str(path))
    assert str(path) in str(info.value)


def test_load_awe_vocab_missing_file(tmp_path):
    with pytest.raises(VocabularyError, match="not found"):
        load_awe_vocab(str(tmp_path / "nope.txt"))


def test_regex_tokenizer_truncates_pads_and_batches():
    vocab = {t: i for i, t in enumerate([PAD, START, UNKNOWN, "a", "b", "c"])}
    tokenizer = RegexTokenizer(vocab, seq_len=4, do_lower_case=True)
    assert tokenizer.encode("A b c a b") == ([1, 3, 4, 5], 4)  # truncated to seq_len
    assert tokenizer.encode("...") == ([1, 0, 0, 0], 1)  # empty after tokenization
    assert tokenizer.encode("zzz B") == ([1, 2, 4, 0], 3)
    texts = ["A b c a b", "...", "zzz B", "c"]
    ids, lengths = tokenizer.encode_batch(texts)
    assert ids.dtype == np.int32 and lengths.dtype == np.int32 and ids.shape == (4, 4)
    for row, text in enumerate(texts):
        assert (ids[row].tolist(), int(lengths[row])) == tokenizer.encode(text)
    _, _, raw = tokenizer.encode_batch_profiled(texts)
    assert raw.tolist() == [5, 0, 2, 1]
    empty_ids, empty_lengths = tokenizer.encode_batch([])
    assert empty_ids.shape == (0, 4) and empty_lengths.shape == (0,)
    cased = RegexTokenizer(vocab, seq_len=4, do_lower_case=False)
    assert cased.encode("A b")[0] == [1, 2, 4, 0]


def test_seq_len_below_three_is_rejected(tmp_path):
    vocab = {PAD: 0, START: 1, UNKNOWN: 2}
    with pytest.raises(ConfigError, match="seq_len"):
        RegexTokenizer(vocab, seq_len=2)
    path = tmp_path / "vocab.txt"
    path.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="seq_len"):
        BertTokenizer(str(path), seq_len=2)


BERT_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "the", "quick", "brown", "fox", "##es", "jump",
               "##ed", "over", "!", ",", "cafe", "The"]


@pytest.fixture()
def bert_vocab(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(BERT_TOKENS) + "\n", encoding="utf-8")
    return str(path)


def test_wordpiece_against_tiny_vocab(bert_vocab):
    tokenizer = BertTokenizer(bert_vocab, seq_len=8, do_lower_case=True)
    assert tokenizer.tokenize("The quick foxes jumped!") == ["the", "quick", "fox", "##es", "jump",
                                                            "##ed", "!"]
    out = tokenizer.encode_batch(["The quick foxes JUMPED!", "Café, over", "", "zebra"])
    assert set(out) == {"input_word_ids", "input_mask", "input_type_ids", "length"}
    assert out["input_word_ids"].tolist() == [
        [2, 4, 5, 7, 8, 9, 10, 3],  # 7 pieces + 2 specials > 8: truncated
        [2, 14, 13, 11, 3, 0, 0, 0],  # accents stripped, punctuation split
        [2, 3, 0, 0, 0, 0, 0, 0],
        [2, 1, 3, 0, 0, 0, 0, 0],
    ]
    assert out["length"].tolist() == [8, 5, 2, 3]
    assert out["input_mask"].tolist()[1] == [1, 1, 1, 1, 1, 0, 0, 0]
    assert out["input_type_ids"].sum() == 0
    assert all(v.dtype == np.int32 for v in out.values())
    _, raw = tokenizer.encode_batch_profiled(["The quick foxes JUMPED!", ""])
    assert raw.tolist() == [7, 0]


def test_wordpiece_cased_keeps_case(bert_vocab):
    tokenizer = BertTokenizer(bert_vocab, seq_len=6, do_lower_case=False)
    assert tokenizer.encode_batch(["The the THE"])["input_word_ids"].tolist() == [[2, 15, 4, 1, 3, 0]]


def test_bert_tokenizer_pickles(bert_vocab):
    tokenizer = BertTokenizer(bert_vocab, seq_len=8, do_lower_case=True)
    before = tokenizer.encode_batch(["quick fox"])
    copy = pickle.loads(pickle.dumps(tokenizer))
    assert copy.encode_batch(["quick fox"])["input_word_ids"].tolist() == \
        before["input_word_ids"].tolist()
    from_tokens = BertTokenizer.from_tokens(BERT_TOKENS, seq_len=8, do_lower_case=True)
    assert from_tokens.encode_batch(["quick fox"])["length"].tolist() == [4]


@pytest.mark.parametrize("lines, message", [
    (["[PAD]", "[UNK]", "[CLS]", "the"], "missing \\[SEP\\]"),
    (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "the", "the"], "appears twice"),
    (["[PAD]", "[UNK]", "", "[CLS]", "[SEP]"], "blank token"),
    ([], "empty"),
])
def test_load_bert_vocab_rejects_malformed(tmp_path, lines, message):
    path = tmp_path / "vocab.txt"
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    with pytest.raises(VocabularyError, match=message) as info:
        load_bert_vocab(str(path))
    assert str(path) in str(info.value)


def test_load_bert_vocab_missing_and_binary(tmp_path):
    with pytest.raises(VocabularyError, match="not found"):
        load_bert_vocab(str(tmp_path / "missing.txt"))
    path = tmp_path / "binary.txt"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(VocabularyError, match="UTF-8"):
        load_bert_vocab(str(path))


def test_load_bert_vocab_ids_are_line_numbers(bert_vocab):
    assert load_bert_vocab(bert_vocab) == {t: i for i, t in enumerate(BERT_TOKENS)}


def test_infer_do_lower_case(tmp_path):
    assert infer_bert_do_lower_case(["[PAD]", "[CLS]", "the", "ℝ"]) is True
    assert infer_bert_do_lower_case(["[PAD]", "the", "The"]) is False
    path = tmp_path / "vocab.txt"
    path.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\nThe\n", encoding="utf-8")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True}))
    assert infer_bert_do_lower_case(["The"], str(path)) is True
    assert BertTokenizer(str(path), seq_len=4).do_lower_case is True
