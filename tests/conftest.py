"""Shared fixtures: small data the tests write themselves, and a local GCS emulator."""

import os
import socket
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: end-to-end runs that take minutes (deselect with -m 'not slow')")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Downloads and zip extractions go to a per-test cache, never the user's."""
    monkeypatch.setenv("TEXTCLF_CACHE", str(tmp_path / "cache"))


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def gcs_emulator(monkeypatch):
    """A gcp-storage-emulator on 127.0.0.1; yields a client bound to it with bucket 'textclf-test'."""
    from gcp_storage_emulator.server import create_server

    port = _free_port()
    server = create_server("127.0.0.1", port, in_memory=True, default_bucket="textclf-test")
    server.start()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "textclf-test")
    from components.storage import gcs_client
    try:
        yield gcs_client()
    finally:
        server.stop()


def write_text(path, text, encoding="utf-8"):
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    with open(path, "w", encoding=encoding, newline="") as f:
        f.write(text)
    return str(path)


def sentiment_rows(n_per_class=20, seed=0):
    """A small, learnable two-class corpus: positive and negative words, mixed fillers."""
    import random
    rng = random.Random(seed)
    pos = ["good", "great", "wonderful", "fine", "lovely", "superb", "brilliant", "enjoyable"]
    neg = ["bad", "awful", "terrible", "boring", "dull", "poor", "horrible", "tedious"]
    filler = ["the", "movie", "film", "plot", "was", "a", "really", "very", "acting", "story"]
    rows = []
    for _ in range(n_per_class):
        for label, words in (("1", pos), ("0", neg)):
            tokens = rng.sample(filler, 3) + rng.sample(words, 2)
            rng.shuffle(tokens)
            rows.append((" ".join(tokens), label))
    return rows
