"""Preprocessing and the Beam ingest on a real distributed engine: Beam's DaskRunner against a
two-worker `distributed.LocalCluster` on 127.0.0.1, compared byte for byte (and row by row) with
the DirectRunner's output."""

import os
import struct

import pytest

distributed = pytest.importorskip("distributed")

from fixtures_bert import make_tiny_hf_checkpoint  # noqa: E402
from test_preprocess import BERT_TOKENS, folder_bytes, outputs, write_splits  # noqa: E402

from components.options import AverageWordEmbeddingModelOptions, BertModelOptions, SplitOptions  # noqa: E402
from components.preprocess import preprocess  # noqa: E402
from components.tokenized import read_meta  # noqa: E402
from tests.conftest import sentiment_rows, write_text  # noqa: E402
from tests.test_beam_ingest import TSV, assert_identical, tsv  # noqa: E402


@pytest.fixture(scope="module")
def dask_args():
    """`beam_pipeline_args` for a two-worker cluster (ports chosen by the OS), closed afterwards.
    Worker processes, not threads: each has its own interpreter and hash seed, as on a cluster."""
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", processes=True,
                                       scheduler_port=0, dashboard_address=None, silence_logs=40,
                                       death_timeout=120)
    try:
        yield ["--runner=DaskRunner", f"--dask_client_address={cluster.scheduler_address}",
               "--dask_connection_timeout=120"]
    finally:
        cluster.close(timeout=60)


def tfrecord_count(path):
    """Records in a TFRecord file, by walking its frames (length, CRC, data, CRC)."""
    data, count, at = open(path, "rb").read(), 0, 0
    while at < len(data):
        (length,) = struct.unpack_from("<Q", data, at)
        at += 12 + length + 4
        count += 1
    assert at == len(data)
    return count


def assert_same_preprocess(tmp_path, architecture, options, dask_args):
    splits = write_splits(tmp_path)
    runs = {}
    for tag, args in (("direct", []), ("dask", dask_args)):
        out, vocab_dir = outputs(tmp_path, splits, tag)
        runs[tag] = (preprocess(architecture, splits, out, vocab_dir, options, beam_pipeline_args=args), out, vocab_dir)
    (summary_a, out_a, vocab_a), (summary_b, out_b, vocab_b) = runs["direct"], runs["dask"]
    assert summary_b == summary_a
    assert folder_bytes(vocab_b) == folder_bytes(vocab_a)
    for name in splits:
        assert folder_bytes(out_b[name]) == folder_bytes(out_a[name])
        rows = sum(tfrecord_count(os.path.join(out_b[name], f)) for f in os.listdir(out_b[name])
                   if f.endswith(".tfrecord"))
        assert rows == read_meta(out_a[name])["num_examples"] == summary_a["splits"][name]["num_examples"]
    return summary_b


def test_awe_preprocess_on_dask_matches_direct(tmp_path, dask_args):
    # a counted vocabulary and a fitted sequence length: every part of the plan
    summary = assert_same_preprocess(tmp_path, "awe", AverageWordEmbeddingModelOptions(seq_len=0, vocab_size=6),
                                     dask_args)
    assert summary["seq_len_fitted"] and summary["splits"]["train"]["num_examples"] == 6


def test_bert_preprocess_on_dask_matches_direct(tmp_path, dask_args):
    encoder = make_tiny_hf_checkpoint(str(tmp_path / "encoder"), vocab_tokens=BERT_TOKENS)
    assert_same_preprocess(tmp_path, "bert", BertModelOptions(seq_len=6, encoder=encoder), dask_args)


def test_beam_ingest_on_dask_matches_in_process(tmp_path, dask_args, monkeypatch):
    import components.beam_ingest as beam_ingest
    from components import split_io
    monkeypatch.setattr(beam_ingest, "BATCH_ROWS", 9)
    monkeypatch.setattr(split_io, "EXAMPLES_PER_SHARD", 20)
    rows = sentiment_rows(25, seed=6) + [("good film", "1")] * 3
    for i in range(2):
        write_text(tmp_path / "in" / f"part-{i}.tsv", tsv(rows[i::2]))
    profile = assert_identical(tmp_path, (str(tmp_path / "in"),), dask_args, csv_params=TSV,
                               split_options=SplitOptions(0.2, 0.2, seed=3))
    assert profile["split_method"]["method"] == "exact" and profile["splits"]["train"]["rows"] > 20
