"""AWE train/serve parity: MediaPipe's on-device regex tokenizer must give the ids training gives.

Training tokenizes in Python (`components.tokenizers`: lower-case, `[\\w']+` runs with Python's
Unicode `\\w`); on device MediaPipe's TextClassifier tokenizes with RE2, configured by the
delimiter pattern and vocabulary that the AWE export packs into the model (`components.architectures.awe`).

The main probe is an "id echo" model: its scores are the token ids it was fed (label i scores the
id at position i), so MediaPipe's scores *are* the device's ids and can be compared exactly with
what our tokenizer produced. A real (random-weight) AWE classifier checks the same at score level.
"""

import os
import unicodedata

import numpy as np
import pytest
from tflite_fixtures import LABELS, mediapipe_classifier, mediapipe_scores

from components import tokenizers as tok

SEQ_LEN = 512  # long enough for ~250 one-character probes per call in the code point sweep

LONG = " ".join(["Café", "ÜBER", "great", "日本語", "zebra", "naïve"] * 100)  # 600 words > SEQ_LEN

BATTERY = [
    # ASCII and case
    "the movie was great", "The Movie Was GREAT", "Great", "START", "pad",
    # non-ASCII letters: RE2's `\w` is ASCII-only
    "café au lait", "CAFÉ", "Café", "naïve", "NAÏVE", "über alles", "ÜBER", "Über",
    "Привет мир", "ПРИВЕТ", "مرحبا بالعالم", "ΟΔΟΣ", "οδος", "Οδος",
    "我爱你 电影", "日本語", "hello日本語world",
    # upper() that is not one letter per letter; title-case digraphs
    "straße", "Straße", "STRAßE", "STRAẞE", "STRASSE", "ǆemal ǅemal Ǆemal", "ﬁne Fine FINE",
    # combining marks are delimiters for Python's `\w` (decomposed text, Indic vowel signs)
    "nai\u0308ve", "हिन्दी",
    # numbers, underscores, apostrophes
    "123 4.5 1,000", "٣٤ ²½ Ⅻ ⅻ", "a_b __init__ _", "don't stop", "DON'T", "'quoted'",
    "it’s", "rock 'n' roll",
    # delimiters only, leading/trailing delimiters, odd whitespace, emoji, specials
    "", "!!!", "   leading spaces", "...hello...", "\ttab\nnewline\r\n", "x-y x/y",
    "emoji 😀 great", "a\u200bb", "a\u00a0b", "<START> <PAD> <UNKNOWN>",
    # unknown words; NUL ends the text on device (C string)
    "zebra xylophone", "great\x00 after nul", "\x00great",
    # truncation at seq_len
    LONG,
]
UNSEEN = ("STRASSE", "zebra xylophone")  # kept out of the vocabulary: must be <UNKNOWN> on both


def _vocab_dir(root):
    corpus = [t for t in BATTERY if t not in UNSEEN] + ["a b"]
    counts = tok.count_words(corpus)
    for word in ("zebra", "strasse"):
        counts.pop(word, None)
    tokens = tok.build_awe_vocab(counts, 10_000)
    os.makedirs(os.path.join(root, "vocab"))
    tok.write_awe_vocab(os.path.join(root, "vocab", "vocab.txt"), tokens)
    return os.path.join(root, "vocab")


def _export(model, seq_len, labels, vocab_dir, out):
    from components.export import export_keras_model

    info = {"architecture": "awe",
            "model_options": {"seq_len": seq_len, "do_lower_case": True, "device_case_variants": True},
            "label_names": labels}
    return export_keras_model(model, info, vocab_dir, out)["tflite"]


@pytest.fixture(scope="module")
def echo(tmp_path_factory):
    """An exported model whose output is its input ids, as float scores."""
    import tensorflow as tf
    import tf_keras as keras

    root = str(tmp_path_factory.mktemp("echo"))
    vocab_dir = _vocab_dir(root)
    ids = keras.Input((SEQ_LEN,), dtype=tf.int32, name="input_ids")
    model = keras.Model(ids, keras.layers.Lambda(lambda x: tf.cast(x, tf.float32))(ids))
    tflite = _export(model, SEQ_LEN, [f"id{i}" for i in range(SEQ_LEN)], vocab_dir,
                     os.path.join(root, "export"))
    tokenizer = tok.RegexTokenizer.from_file(os.path.join(vocab_dir, "vocab.txt"), SEQ_LEN)
    with mediapipe_classifier(tflite) as classifier:
        yield {"model": model, "tokenizer": tokenizer, "classifier": classifier}


def _device_ids(classifier, text):
    ids = np.zeros(SEQ_LEN, dtype=np.int64)
    for category in classifier.classify(text).classifications[0].categories:
        ids[category.index] = int(round(category.score))
    return ids


def _words(tokenizer, ids):
    names = {i: t for t, i in tokenizer.vocab.items()}
    return [names[int(i)] for i in ids if i != tokenizer.pad_id]


def test_device_ids_equal_training_ids(echo):
    tokenizer, classifier = echo["tokenizer"], echo["classifier"]
    ours = echo["model"].predict(tokenizer.encode_batch(BATTERY)[0], verbose=0)
    mismatches = []
    for text, expected in zip(BATTERY, ours):
        expected = np.rint(expected).astype(np.int64)
        got = _device_ids(classifier, text)
        if not np.array_equal(got, expected):
            mismatches.append(f"{text[:40]!r}: training {_words(tokenizer, expected)[:8]}, "
                              f"device {_words(tokenizer, got)[:8]}")
    assert not mismatches, "\n".join(mismatches)
    # the battery does exercise what it claims to
    assert tokenizer.encode("STRASSE")[0][1] == tokenizer.unknown_id
    assert tokenizer.encode("CAFÉ")[0][1] == tokenizer.vocab["café"]
    assert tokenizer.encode(LONG)[1] == SEQ_LEN


def test_delimiters_agree_for_every_assigned_code_point(echo):
    """Each code point c as the middle of "a{c}b": one token if c is a word character, two if not.

    Covers every code point assigned in Python's Unicode database (private-use planes 15-16 and
    surrogates aside, and NUL, which ends the text on device). Code points Python's database
    does not know are left out: MediaPipe's RE2 has newer Unicode tables (measured with Python
    3.11 / Unicode 14: 14,049 such code points, e.g. CJK Extension H, are letters on device and
    delimiters in training); training on a newer Python narrows that gap.
    """
    classifier = echo["classifier"]
    plain = tok.RegexTokenizer(echo["tokenizer"].vocab, SEQ_LEN, do_lower_case=False)
    points = [c for c in range(1, 0xF0000) if unicodedata.category(chr(c)) not in ("Cn", "Cs")]
    per_call = (SEQ_LEN - 1) // 2
    bad = []
    for start in range(0, len(points), per_call):
        if len(bad) >= 20:
            break
        chunk = points[start:start + per_call]
        text = " ".join(f"a{chr(c)}b" for c in chunk)
        if not np.array_equal(_device_ids(classifier, text), plain.encode(text)[0]):
            bad.extend(c for c in chunk
                       if not np.array_equal(_device_ids(classifier, f"a{chr(c)}b"),
                                             plain.encode(f"a{chr(c)}b")[0]))
    assert not bad, [f"U+{c:04X} {unicodedata.name(chr(c), '?')}" for c in bad[:20]]


def test_case_spellings_get_the_id_training_gives_them(echo):
    """Title/UPPER spellings on device map to the token training lower-cases them to."""

    vocab = echo["tokenizer"].vocab
    pairs = tok.case_insensitive_vocab(sorted(vocab.items(), key=lambda p: p[1]))
    assert len({t for t, _ in pairs}) == len(pairs)  # MediaPipe keeps the last of a repeated token
    for token, index in pairs:
        if token not in tok.AWE_SPECIAL_TOKENS:
            assert tok.split_words(token) == [t for t, i in vocab.items() if i == index], token
    added = {t for t, _ in pairs} - set(vocab)
    assert {"Café", "CAFÉ", "STRAßE", "STRAẞE", "ǅemal", "ΟΔΟΣ", "ПРИВЕТ"} <= added
    assert "STRASSE" not in added  # "strasse" is not in the vocabulary; never "straße"'s id


def test_known_device_limits(echo):
    """What no delimiter pattern or vocabulary can fix, because MediaPipe does not lower-case:
    mixed casings, and "İ", which Python lower-cases to "i" + a combining dot (a delimiter)."""
    tokenizer, classifier = echo["tokenizer"], echo["classifier"]
    assert tokenizer.encode("gReAt")[0][1] == tokenizer.vocab["great"]
    assert _device_ids(classifier, "gReAt")[1] == tokenizer.unknown_id
    assert tok.split_words("İstanbul") == ["i", "stanbul"]
    assert _device_ids(classifier, "İstanbul")[2] == tokenizer.pad_id  # one token on device


def test_real_awe_classifier_scores_agree(tmp_path):
    """A real AWE classifier (random weights, unit-scale embeddings so every token moves the
    scores)."""
    import tf_keras as keras

    from components.awe_model import build_awe_model
    from components.options import AverageWordEmbeddingModelOptions

    vocab_dir = _vocab_dir(str(tmp_path))
    tokenizer = tok.RegexTokenizer.from_file(os.path.join(vocab_dir, "vocab.txt"), 24)
    keras.utils.set_random_seed(0)
    options = AverageWordEmbeddingModelOptions(seq_len=24, wordvec_dim=32,
                                               vocab_size=len(tokenizer.vocab), dropout_rate=0.0)
    model = build_awe_model(options, len(LABELS))
    embedding = model.get_layer("emb")
    weights = np.random.default_rng(0).normal(0, 1.0, embedding.get_weights()[0].shape).astype(np.float32)
    embedding.set_weights([embedding.embeddings_constraint(weights).numpy()])  # as training keeps them
    tflite = _export(model, 24, LABELS, vocab_dir, str(tmp_path / "export"))
    texts = [t for t in BATTERY if t.strip()]
    ours = model.predict(tokenizer.encode_batch(texts)[0], verbose=0)
    # The texts score apart, so the agreement below is not vacuous. Texts that tokenize alike
    # score exactly alike; any other two differ by far more than float noise (1e-6).
    scores = np.sort(ours[:, 1])
    assert scores[-1] - scores[0] > 0.3 and (np.diff(scores) > 1e-6).sum() + 1 > len(texts) // 2
    with mediapipe_classifier(tflite) as classifier:
        for text, probs in zip(texts, ours):
            scores = mediapipe_scores(classifier, text)
            np.testing.assert_allclose([scores[n] for n in LABELS], probs, atol=1e-5,
                                       err_msg=repr(text))
