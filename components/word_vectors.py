"""A teacher's word vectors, and the student embedding that starts from them; written and read here only.

A BERT teacher already holds a vector for every word piece. A word's vector here is the mean of its
pieces' input embeddings, taken for the training split's most frequent words when the transfer set
is scored (`word_vectors.npz` in the transfer folder: `words`, unicode [n], and `vectors`,
float16 [n, hidden]). Preprocessing keeps the rows of the student's own vocabulary, projected on
their leading principal components to the student's width (`initial_embedding.npy` in the
vocabulary folder: float32 [vocabulary rows, width]), and training starts the student's embedding
there instead of at random: a student that begins knowing which words are alike learns more from
the same transfer set (the README's distilled figures).
"""

from __future__ import annotations

import io
from typing import Optional, Sequence, Tuple

import numpy as np

from components import storage
from components.errors import DataSourceError

WORD_VECTORS_FILE = "word_vectors.npz"
INITIAL_EMBEDDING_FILE = "initial_embedding.npy"
# Keras' uniform initializer draws embeddings from [-0.05, 0.05]; the projected vectors are scaled
# to a standard deviation of the same size, and rows without a vector are drawn from that range.
SCALE = 0.05


def write(folder: str, words: Sequence[str], vectors: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, words=np.asarray(list(words), dtype=str), vectors=np.asarray(vectors, np.float16))
    storage.write_bytes(storage.join(folder, WORD_VECTORS_FILE), buffer.getvalue())


def read(folder: str) -> Optional[Tuple[Sequence[str], np.ndarray]]:
    """(words, float32 vectors) from a transfer folder; None where it has none."""
    path = storage.join(folder, WORD_VECTORS_FILE)
    if not storage.exists(path):
        return None
    try:
        with np.load(io.BytesIO(storage.read_bytes(path)), allow_pickle=False) as data:
            words, vectors = [str(w) for w in data["words"]], data["vectors"].astype(np.float32)
    except (ValueError, KeyError, OSError) as error:
        raise DataSourceError(f"{path}: not a word-vectors file ({error})") from None
    if vectors.ndim != 2 or len(words) != len(vectors):
        raise DataSourceError(f"{path}: {len(words)} words but vectors of shape {vectors.shape}")
    return words, vectors


def project(words: Sequence[str], vectors: np.ndarray, tokens: Sequence[str], width: int,
            seed: int = 0, padding: Sequence[str] = ()) -> Tuple[np.ndarray, int]:
    """The embedding matrix [len(tokens), width] and how many tokens had a vector.

    Vectors are centred and projected on their `width` leading principal components (computed on
    the tokens' own vectors), then scaled to a standard deviation of `SCALE`; tokens without one
    (the specials, words the teacher's list lacks) and any width beyond the components get
    uniform random values in [-SCALE, SCALE]; `padding` tokens start at zero, as the zeros a
    convolution pads a full-length text with.
    """
    rng = np.random.default_rng(seed)
    matrix = rng.uniform(-SCALE, SCALE, (len(tokens), width)).astype(np.float32)
    pads = set(padding)
    matrix[[row for row, token in enumerate(tokens) if token in pads]] = 0.0
    index = {word: i for i, word in enumerate(words)}
    rows = [(row, index[token]) for row, token in enumerate(tokens) if token in index]
    if len(rows) < 2:
        return matrix, 0
    target, source = (np.asarray(part) for part in zip(*rows))
    picked = vectors[source].astype(np.float64)
    centred = picked - picked.mean(axis=0)
    _, _, components = np.linalg.svd(centred, full_matrices=False)
    kept = min(width, components.shape[0])
    projected = centred @ components[:kept].T
    spread = projected.std()
    if spread > 0:
        matrix[target[:, None], np.arange(kept)[None, :]] = (projected / spread * SCALE).astype(np.float32)
    return matrix, len(rows)


def write_initial(vocab_folder: str, matrix: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(matrix, np.float32), allow_pickle=False)
    storage.write_bytes(storage.join(vocab_folder, INITIAL_EMBEDDING_FILE), buffer.getvalue())


def read_initial(vocab_folder: str) -> Optional[np.ndarray]:
    path = storage.join(vocab_folder, INITIAL_EMBEDDING_FILE)
    if not storage.exists(path):
        return None
    try:
        return np.load(io.BytesIO(storage.read_bytes(path)), allow_pickle=False)
    except (ValueError, OSError) as error:
        raise DataSourceError(f"{path}: not an embedding matrix ({error})") from None
