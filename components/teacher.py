"""A trained model as a teacher: its class scores for any texts, batched for speed, and its
word vectors (`components.word_vectors`).

The teacher is a trained model folder (`model_io`) of an architecture that brings its own
vocabulary (BERT: the encoder's WordPiece), so the folder alone is enough to score with; texts are
scored in batches of similar length, each trimmed to its longest text, which on a CPU is several
times faster than padding every text to `seq_len`.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np

from components import architectures, model_io
from components.errors import ConfigError

BATCH = 128


class TeacherScorer:
    """Class probabilities [n, classes] from a trained model folder, in the order given."""

    def __init__(self, model_dir: str):
        self.model, self.info = model_io.load_trained(model_dir)
        spec = architectures.get(self.info["architecture"])
        options = spec.options(self.info["model_options"])
        plan = spec.vocabulary_plan(options)
        if plan.counts_vocabulary:
            raise ConfigError(f"{model_dir}: a {spec.name} model counted its vocabulary on its training data, "
                              "which its model folder does not keep; use a BERT model as the teacher")
        self.tokenizer = plan.recipe.build(list(plan.tokens), int(options.seq_len))
        self.label_names: List[str] = list(self.info["label_names"])
        import tensorflow as tf
        # One traced graph per padded length (lengths are rounded up to a multiple of 8): about a
        # third faster than calling the Keras model eagerly, batch after batch.
        model = self.model

        def forward(inputs):
            return model(inputs, training=False)

        self._forward = tf.function(forward, reduce_retracing=True)

    def score(self, texts: Sequence[str], batch_size: int = BATCH) -> np.ndarray:
        texts = list(texts)
        probs = np.zeros((len(texts), len(self.label_names)), np.float32)
        if not texts:
            return probs
        features, _ = self.tokenizer.encode_features(texts)
        order = np.argsort(features["length"], kind="stable")
        names = self.tokenizer.feature_names
        seq_len = features[names[0]].shape[1]
        for start in range(0, len(texts), batch_size):
            rows = order[start:start + batch_size]
            longest = min(seq_len, -(-int(features["length"][rows].max()) // 8) * 8)
            batch = {name: features[name][rows, :longest] for name in names}
            inputs = batch[names[0]] if len(self.model.inputs) == 1 else batch
            probs[rows] = self._forward(inputs).numpy()
        return probs

    def input_embeddings(self) -> Optional[np.ndarray]:
        """The encoder's token embedding table [vocabulary, hidden]: the one 2-D weight with a row
        per vocabulary token (a word-piece name breaks a tie); None where the model shows none."""
        rows = len(self.tokenizer.tokens)
        tables = [w for w in self.model.weights if len(w.shape) == 2 and int(w.shape[0]) == rows]
        if len(tables) > 1:
            tables = [w for w in tables if "word" in w.name] or tables[:1]
        return tables[0].numpy() if tables else None

    def word_vectors(self, words: Sequence[str]) -> Optional[np.ndarray]:
        """Each word's vector: the mean of its word pieces' input embeddings [n, hidden]; None for
        a teacher whose tokenizer has no word pieces or whose embedding table is not found."""
        piece_ids = getattr(self.tokenizer, "piece_ids", None)
        table = self.input_embeddings() if piece_ids else None
        if table is None:
            return None
        vectors = np.zeros((len(words), table.shape[1]), np.float32)
        for row, ids in enumerate(piece_ids(list(words))):
            if ids:
                vectors[row] = table[ids].mean(axis=0)
        return vectors
