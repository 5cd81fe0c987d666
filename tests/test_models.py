"""The AWE model: padding never counts; the <PAD> row and the counting column hold through training."""

import numpy as np

from components.awe_model import build_awe_model
from components.options import AverageWordEmbeddingModelOptions


def test_average_ignores_padding_and_pad_row_stays_zero():
    import tf_keras as keras
    keras.utils.set_random_seed(0)
    options = AverageWordEmbeddingModelOptions(seq_len=8, wordvec_dim=4, vocab_size=20, dropout_rate=0.0)
    model = build_awe_model(options, 2)
    embedding = model.get_layer("emb")
    rows = embedding.get_weights()[0]
    assert not rows[0].any() and (rows[1:, -1] == 1).all()
    short = np.array([[1, 5, 6, 0, 0, 0, 0, 0]], np.int32)
    features = model.get_layer("avg")(embedding(short)).numpy()
    np.testing.assert_allclose(features[0], rows[[1, 5, 6]].mean(axis=0), rtol=1e-6)
    assert features[0, -1] == 1.0

    model.compile(keras.optimizers.Adam(0.1), "sparse_categorical_crossentropy")
    ids = np.array([[1, 3, 4, 0, 0, 0, 0, 0], [1, 7, 8, 9, 0, 0, 0, 0]] * 8, np.int32)
    model.fit(ids, np.array([0, 1] * 8), epochs=30, verbose=0)
    trained = embedding.get_weights()[0]
    assert not trained[0].any() and (trained[1:, -1] == 1).all() and trained[3, :-1].any()
    assert model.predict(ids[:2], verbose=0).argmax(1).tolist() == [0, 1]
