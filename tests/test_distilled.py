"""The distilled student: a tiny BERT teacher (the tests' tiny encoder) teaches a small CNN on data
the test writes; the transfer set's Beam pipeline is deterministic; the export runs in MediaPipe."""

import os

import numpy as np
import pytest
from fixtures_bert import make_tiny_hf_checkpoint
from tflite_fixtures import mediapipe_classifier, mediapipe_scores

from components import split_io
from components import text_classifier as tc
from components.augment import AugmentOptions, augment, augmentations
from tests.conftest import sentiment_rows


def _data(n, seed):
    rows = sentiment_rows(n, seed=seed)
    return tc.Dataset([t for t, _ in rows], ["pos" if label == "1" else "neg" for _, label in rows])


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """A tiny BERT classifier trained to be a teacher worth following (its own labels are what
    the student is checked against, whatever its accuracy)."""
    root = tmp_path_factory.mktemp("teacher")
    encoder = make_tiny_hf_checkpoint(str(root / "encoder"), scale=0.05)
    options = tc.TextClassifierOptions(
        supported_model=tc.SupportedModels.MOBILEBERT_CLASSIFIER,
        model_options=tc.BertModelOptions(encoder=encoder),
        hparams=tc.BertHParams(epochs=6, batch_size=8, learning_rate=5e-3, export_dir=str(root / "bert")))
    return tc.TextClassifier.create(_data(40, 1), _data(10, 2), options)


def test_augmentations_are_pure_functions_of_the_text():
    options = AugmentOptions(copies=4, drop_probability=0.3, replace_probability=0.3, ngram_probability=0.5)
    words = ["alpha", "beta", "gamma"]
    text = "the movie was really very good"
    first = list(augmentations(text, words, options))
    assert first == list(augmentations(text, words, options)) and first and text not in first
    assert all(set(made.split()) <= set(text.split()) | set(words) for made in first)
    unchanged = AugmentOptions(drop_probability=0, replace_probability=0, ngram_probability=0)
    assert augment(text, words, unchanged, 0) == text
    assert augment("solo", words, AugmentOptions(drop_probability=1.0), 3) == "solo"  # never empty


def test_student_follows_its_teacher_and_runs_in_mediapipe(teacher, tmp_path):
    model_options = tc.DistilledModelOptions(teacher=teacher.model_dir, vocab_size=100, wordvec_dim=16,
                                             filters=16, hidden_dim=8, transfer_copies=4)
    options = tc.TextClassifierOptions(
        supported_model=tc.SupportedModels.DISTILLED_CLASSIFIER, model_options=model_options,
        hparams=tc.DistilledHParams(epochs=15, batch_size=16, learning_rate=1e-2, export_dir=str(tmp_path)))
    student = tc.TextClassifier.create(_data(40, 1), _data(10, 2), options)
    assert student.architecture == "distilled"
    history = student.training["history"]
    assert history[-1]["loss"] < history[0]["loss"]
    assert student.training["picked"]["embedding_init"] == "teacher"

    texts = _data(20, 3).texts
    agreement = np.mean(student.predict_scores(texts).argmax(1) == teacher.predict_scores(texts).argmax(1))
    assert agreement >= 0.8, agreement  # it learned the teacher's decisions, not just any labels

    tflite = student.export_model()
    with mediapipe_classifier(tflite) as classifier:
        for text, probs in zip(texts[:8] + ["The Movie Was Great", "AWFUL TEDIOUS PLOT"],
                               student.predict_scores(texts[:8] + ["the movie was great", "awful tedious plot"])):
            scores = mediapipe_scores(classifier, text)
            np.testing.assert_allclose([scores["neg"], scores["pos"]], probs, atol=1e-4, err_msg=text)
    loaded = tc.TextClassifier.load(tflite)
    assert loaded.architecture == "distilled"
    np.testing.assert_allclose(loaded.predict_scores(texts), student.predict_scores(texts), atol=1e-4)


def test_the_beam_transfer_set_is_deterministic(teacher, tmp_path):
    from components.options import DistilledModelOptions
    from components.transfer import build_transfer_set, read_summary

    split = str(tmp_path / "train")
    split_io.write_split(split, _data(12, 4).rows(), ["neg", "pos"])
    unlabelled = tmp_path / "more.txt"
    unlabelled.write_text("a lovely film\n\nthe plot was dull\n", encoding="utf-8")
    options = DistilledModelOptions(transfer_copies=3, unlabelled_texts=str(unlabelled))
    outputs = []
    for tag in ("a", "b"):
        out = str(tmp_path / tag)
        summary = build_transfer_set(teacher.model_dir, split, out, options,
                                     ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]
                                     if tag == "b" else [])
        outputs.append({name: open(os.path.join(out, name), "rb").read()
                        for name in sorted(os.listdir(out)) if name.endswith((".jsonl", ".txt", ".npz"))})
        assert summary == {**read_summary(out), "seconds": summary["seconds"]}
    assert outputs[0] == outputs[1]
    assert summary["training"] == 24 and summary["unlabelled"] == 2
    assert summary["word_vectors"] > 0 and "word_vectors.npz" in outputs[0]
    assert summary["rows"] == summary["training"] + summary["augmented"] + summary["unlabelled"]
    texts, labels, names, scores = split_io.read_scored_split(str(tmp_path / "a"))
    assert len(texts) == summary["rows"] and len(scores) == len(texts)
    assert np.allclose(np.sum(scores, axis=1), 1.0, atol=1e-4)
    assert texts[-2:] == ["a lovely film", "the plot was dull"]  # the user's texts last


def test_the_student_starts_from_the_teachers_word_vectors(teacher, tmp_path):
    from components import architectures, transfer, vocabulary, word_vectors
    from components.options import DistilledModelOptions
    from components.teacher import TeacherScorer

    scorer = TeacherScorer(teacher.model_dir)
    table = scorer.input_embeddings()
    words = ["good", "terrible", "movie", "plot", "film"]
    vectors = scorer.word_vectors(words)
    for word, vector in zip(words, vectors):
        pieces = scorer.tokenizer.piece_ids([word])[0]
        assert pieces
        np.testing.assert_allclose(vector, table[pieces].mean(axis=0), rtol=1e-5, atol=1e-7)

    # Wide enough for every component, the projection keeps the words' distances up to one scale.
    tokens = ("<PAD>", "<START>", "<UNKNOWN>") + tuple(words) + ("unseen",)
    matrix, covered = word_vectors.project(words, vectors, tokens, 8, padding=("<PAD>",))
    assert covered == len(words) and matrix.shape == (len(tokens), 8)
    assert not matrix[0].any() and np.all(np.abs(matrix[[1, 2, -1]]) <= word_vectors.SCALE)
    kept = matrix[3:3 + len(words), :len(words)]
    pairs = [(i, j) for i in range(len(words)) for j in range(i + 1, len(words))]
    ratios = [np.linalg.norm(kept[i] - kept[j]) / np.linalg.norm(vectors[i] - vectors[j]) for i, j in pairs]
    np.testing.assert_allclose(ratios, ratios[0], rtol=1e-3)

    # Transfer folder -> vocabulary folder -> the freshly built student's embedding.
    options = DistilledModelOptions(seq_len=8, wordvec_dim=4, filters=4, hidden_dim=0)
    split, vocab = str(tmp_path / "transfer"), str(tmp_path / "vocab")
    split_io.write_split(split, _data(12, 4).rows(), ["neg", "pos"])
    texts = [text for text, _ in split_io.iter_split(split)]
    assert transfer.write_teacher_vectors(split, transfer.teacher_vectors(scorer, texts, options)) > 0
    vocabulary.write_folder(vocab, vocabulary.Vocabulary("token_ids", tokens, True))
    spec = architectures.get("distilled")
    derived = spec.after_vocabulary(vocab, split, options)
    assert derived["embedding_init"] == "teacher" and derived["teacher_vector_words"] >= 3
    model = spec.build_model(options, 2, spec.model_info(options, len(tokens)))
    assert spec.initialize(model, vocab, options) == {"embedding_init": "teacher"}
    np.testing.assert_array_equal(model.get_layer("emb").get_weights()[0], word_vectors.read_initial(vocab))

    at_random = DistilledModelOptions(seq_len=8, wordvec_dim=4, filters=4, hidden_dim=0, embedding_init="random")
    assert spec.initialize(spec.build_model(at_random, 2, {"vocab_rows": len(tokens)}), vocab, at_random) == {}
    assert spec.after_vocabulary(vocab, str(tmp_path / "nowhere"), options) == {"embedding_init": "random"}


def test_the_scoring_estimate_times_rows_like_the_sets_own():
    """The rate printed up front is measured on texts from across the split with their
    augmentations (shorter, so faster to score), not on the first texts alone."""
    from components import transfer
    from components.options import DistilledModelOptions
    texts = [f"review {i} of the film was long but the acting in part {i % 7} was good" for i in range(1_000)]
    options = DistilledModelOptions(transfer_copies=20)
    sample = transfer.rate_sample(texts, transfer.replacement_words(texts, True), options)
    originals = [i for i, text in enumerate(texts) if text in set(sample)]
    assert 400 <= len(sample) <= transfer.SCORE_BATCH
    assert len(originals) >= 15 and max(originals) > 700        # spread over the split
    assert sum(text not in set(texts) for text in sample) > 0.8 * len(sample)  # mostly augmentations


def test_the_scoring_rate_leaves_out_the_tracing_of_each_length():
    """A scorer that pays once per new padded length (graph tracing) is timed on its steady rate."""
    from components import transfer

    class Clock:
        now = 0.0

        def __call__(self):
            return self.now

    clock = Clock()

    class TracingScorer:
        seen = set()

        def score(self, texts):
            for text in texts:
                width = -(-len(text.split()) // 8) * 8
                clock.now += 30.0 if width not in self.seen else 0.01
                self.seen.add(width)

    texts = [" ".join(["word"] * (1 + i % 40)) for i in range(transfer.SCORE_BATCH)]
    assert transfer.measure_rate(TracingScorer(), texts, clock) == pytest.approx(100.0)
