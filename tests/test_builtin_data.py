"""The built-in SST-2: packaged, checksummed, read through ingest, and the pipeline's default source."""

import ast
import fnmatch
import gzip
import io
import json
import os
import shutil
import zipfile

import pytest

from components import storage
from components.errors import DataSourceError
from components.ingest import read_delimited
from components.options import BertModelOptions, CSVParams
from pipelines.cli import build_parser, main
from tests.conftest import ROOT, sentiment_rows

AUTO = CSVParams(text_column="auto", delimiter="auto")


def parse(*argv):
    from pipelines.arguments import pipeline_arguments
    return pipeline_arguments(build_parser().parse_args(["run", *argv]))


def test_builtin_files_are_glue_sst2_read_through_ingest():
    dev = read_delimited("builtin:sst2/dev.tsv", AUTO)
    assert len(dev.rows) == 872 and not dev.bad_rows
    assert dev.rows[0] == ("it 's a charming and often affecting journey . ", "1")
    assert sum(label == "0" for _, label in dev.rows) == 428
    assert dev.files == ["builtin:sst2/dev.tsv"]  # errors and the profile name the built-in file
    train = read_delimited("builtin:sst2/train.tsv", CSVParams(text_column="sentence", delimiter="\t"))
    assert len(train.rows) == 67_349 and sum(label == "1" for _, label in train.rows) == 37_569
    assert storage.exists("builtin:sst2/train.tsv") and not storage.exists("builtin:sst2/test.tsv")


def test_packaged_files_are_deterministic_gzip_and_in_the_wheel():
    patterns = None
    tree = ast.parse(open(os.path.join(ROOT, "setup.py"), encoding="utf-8").read())
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "package_data":
            patterns = ast.literal_eval(node.value)["components"]
    assert patterns, "setup.py has no package_data for components"
    for relative, _ in storage.BUILTIN_DATA.values():
        with open(os.path.join(storage.BUILTIN_DIR, relative), "rb") as f:
            header = f.read(10)
        assert header[:2] == b"\x1f\x8b" and header[4:8] == b"\0\0\0\0"  # gzip, mtime 0
        assert not header[3] & 0x08  # no file name stored
        assert any(fnmatch.fnmatch(f"data/{relative}", pattern) for pattern in patterns), relative
    assert any(fnmatch.fnmatch("data/sst2/README.md", pattern) for pattern in patterns)


def test_a_damaged_builtin_file_is_named(tmp_path, monkeypatch):
    folder = tmp_path / "data"
    shutil.copytree(storage.BUILTIN_DIR, folder)
    with gzip.open(folder / "sst2" / "dev.tsv.gz", "ab") as f:
        f.write(b"an extra row\t1\n")
    monkeypatch.setattr(storage, "BUILTIN_DIR", str(folder))
    monkeypatch.setattr(storage, "_verified_builtins", set())
    with pytest.raises(DataSourceError, match=r"builtin:sst2/dev\.tsv: the packaged file .*dev\.tsv\.gz fails "
                                              r"its checksum .*expected 268856b487b2a31a28c0a93daaff7288"):
        read_delimited("builtin:sst2/dev.tsv", AUTO)
    (folder / "sst2" / "train.tsv.gz").write_bytes(b"\x1f\x8b not gzip")
    with pytest.raises(DataSourceError, match="train.tsv.gz is not a readable gzip file"):
        read_delimited("builtin:sst2/train.tsv", AUTO)
    with pytest.raises(DataSourceError, match="no built-in data file of that name; built in: builtin:sst2/train"):
        read_delimited("builtin:sst2/test.tsv", AUTO)


def test_default_run_reads_the_builtin_data_with_the_honest_split():
    from pipelines.arguments import data_sources
    values = parse()
    assert "train" not in values  # the pipeline's own default
    assert data_sources(values) == {"train": "builtin:sst2/train.tsv", "validation": "",
                                    "test": "builtin:sst2/dev.tsv"}
    assert values["split_options"]["validation_fraction"] == 0.05
    assert parse("--validation-fraction", "0.1")["split_options"]["validation_fraction"] == 0.1


def test_own_training_data_inherits_none_of_the_builtin_defaults(tmp_path):
    from pipelines.arguments import data_sources
    for values in (parse("--train", "a.csv"), parse("--config", _config(tmp_path, "train: gs://b/t.csv\n"))):
        assert data_sources(values)["validation"] == "" and data_sources(values)["test"] == ""
        assert values["split_options"]["validation_fraction"] == 0.1  # SplitOptions' own default
    assert data_sources(parse("--train", "a.csv", "--test", "t.csv"))["test"] == "t.csv"


def _config(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return str(path)


def test_ingest_with_no_data_flags_splits_the_builtin_sst2(tmp_path, capsys):
    assert main(["ingest", "--output", str(tmp_path / "out")]) == 0
    counts = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert counts == {"train": 63_982, "validation": 3_367, "test": 872}
    profile = json.load(open(tmp_path / "out" / "profile" / "profile.json"))
    assert profile["sources"]["train"] == "builtin:sst2/train.tsv"
    assert profile["sources"]["test"] == "builtin:sst2/dev.tsv"


def test_the_public_sst2_zip_still_works_when_given(tmp_path, monkeypatch, capsys):
    """The download is faked: the URL answers with a zip laid out as GLUE's."""
    from pipelines.pipeline import SST2_ZIP
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, rows in (("train", sentiment_rows(20)), ("dev", sentiment_rows(4, seed=1))):
            zf.writestr(f"SST-2/{name}.tsv", "sentence\tlabel\n" + "".join(f"{t} \t{lab}\n" for t, lab in rows))
    asked = []

    def urlopen(url, timeout=None):
        asked.append(url)
        if url != SST2_ZIP:
            raise OSError(f"unexpected URL {url}")
        return io.BytesIO(buffer.getvalue())

    monkeypatch.setattr(storage.urllib.request, "urlopen", urlopen)
    argv = ["ingest", "--train", f"{SST2_ZIP}#SST-2/train.tsv", "--test", f"{SST2_ZIP}#SST-2/dev.tsv",
            "--validation-fraction", "0.25", "--output", str(tmp_path / "out")]
    assert main(argv) == 0
    counts = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert counts == {"train": 30, "validation": 10, "test": 8}
    assert asked == [SST2_ZIP]  # downloaded once, then read from the cache


def test_bert_encoder_defaults_end_to_end(tmp_path):
    import yaml

    from pipelines.compile_pipeline import compile_pipeline
    assert BertModelOptions().encoder == "mobilebert"  # the Model Maker-compatible API keeps MobileBERT
    assert "bert_model_options" not in parse()  # the pipeline's default applies
    assert parse("--bert-encoder", "mobilebert")["bert_model_options"]["encoder"] == "mobilebert"
    partial = parse("--config", _config(tmp_path, "bert_model_options: {seq_len: 64}\n"))["bert_model_options"]
    assert partial["encoder"] == "minilm-l6" and partial["seq_len"] == 64
    path = tmp_path / "pipeline.yaml"
    compile_pipeline(str(path), image="textclf:test")
    inputs = yaml.safe_load(open(path))["root"]["inputDefinitions"]["parameters"]
    assert inputs["bert_model_options"]["defaultValue"] == {"encoder": "minilm-l6"}
    assert inputs["train"]["defaultValue"] == "builtin:sst2/train.tsv"
    assert inputs["test"]["defaultValue"] == "builtin:sst2/dev.tsv"
    assert inputs["validation"]["defaultValue"] == ""
    assert inputs["split_options"]["defaultValue"] == {"validation_fraction": 0.05}
