"""A user's own small data with the defaults: cased text, several classes, a few hundred rows."""

import random

import numpy as np
from tflite_fixtures import mediapipe_classifier, mediapipe_scores

from components import text_classifier as tc

TOPICS = {
    "sports": ["Goal", "Match", "Striker", "Referee", "League", "Penalty", "Coach", "Stadium"],
    "weather": ["Rain", "Storm", "Sunny", "Forecast", "Wind", "Snow", "Cloudy", "Thunder"],
    "food": ["Pasta", "Recipe", "Dessert", "Spicy", "Oven", "Chef", "Sauce", "Bakery"],
    "tech": ["Laptop", "Software", "Update", "Battery", "Chip", "Browser", "Server", "Keyboard"],
}
FILLER = ["The", "today", "was", "really", "about", "a", "new", "and", "our", "this", "week", "Very"]


def _rows(per_topic, seed):
    rng = random.Random(seed)
    rows = []
    for _ in range(per_topic):
        for topic, words in TOPICS.items():
            tokens = rng.sample(FILLER, 4) + rng.sample(words, 2)
            rng.shuffle(tokens)
            text = " ".join(tokens)
            text = text.upper() if rng.random() < 0.15 else text
            rows.append((text, topic))
    return tc.Dataset([t for t, _ in rows], [label for _, label in rows])


def test_defaults_learn_a_small_cased_multi_class_set(tmp_path):
    options = tc.TextClassifierOptions(supported_model=tc.SupportedModels.AVERAGE_WORD_EMBEDDING_CLASSIFIER,
                                       hparams=tc.AverageWordEmbeddingHParams(export_dir=str(tmp_path)))
    model = tc.TextClassifier.create(_rows(50, 1), _rows(10, 2), options)
    test = _rows(15, 3)
    accuracy = model.evaluate(test)[1]
    assert accuracy >= 0.8, accuracy  # chance is 0.25
    assert model.baseline["passed"]
    assert model.training["picked"]["learning_rate"] > 1e-3  # 200 rows: the rule picks a high rate

    tflite = model.export_model()
    with mediapipe_classifier(tflite) as classifier:
        casings = [mediapipe_scores(classifier, text)
                   for text in ("storm and rain", "Storm And Rain", "STORM AND RAIN")]
        on_device = np.array([[mediapipe_scores(classifier, t)[n] for n in model.label_names] for t in test.texts])
    assert [max(scores, key=scores.get) for scores in casings] == ["weather"] * 3
    np.testing.assert_allclose(on_device, model.predict_scores(test.texts), atol=1e-4)
