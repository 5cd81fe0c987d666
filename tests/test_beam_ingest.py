"""The Beam ingest (`components.beam_ingest`) writes what the in-process ingest writes, byte for byte."""

import os
import random

import pytest

import components.beam_ingest as beam_ingest
import components.ingest as ingest_module
from components import errors, split_io
from components.errors import DataSourceError, InputFormatError, LabelError
from components.ingest import ingest
from components.options import CSVParams, SplitOptions
from tests.conftest import sentiment_rows, write_text

TSV = CSVParams(delimiter="\t", text_column="sentence", label_column="label")
DIRECT = ["--runner=DirectRunner"]


def tsv(rows, header="sentence\tlabel"):
    return header + "\n" + "".join(f"{t}\t{lab}\n" for t, lab in rows)


def csv_text(rows):
    return "text,label\n" + "".join(f'"{t}",{lab}\n' for t, lab in rows)


def tree_bytes(root):
    """Every file under `root` by relative path: what a run left behind."""
    found = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            found[os.path.relpath(path, root)] = open(path, "rb").read()
    return found


def run_both(tmp_path, sources, beam_args=DIRECT, **kwargs):
    """Runs the in-process and the Beam ingest on the same sources; returns both profiles and trees."""
    results = []
    for tag, args in (("local", None), ("beam", beam_args)):
        root = tmp_path / tag
        profile = ingest(*sources, output_dirs={n: str(root / n) for n in ("train", "validation", "test")},
                         profile_dir=str(root / "profile"), beam_pipeline_args=args, **kwargs)
        results.append((profile, tree_bytes(root)))
    return results


def assert_identical(tmp_path, sources, beam_args=DIRECT, **kwargs):
    (local, local_files), (beam, beam_files) = run_both(tmp_path, sources, beam_args, **kwargs)
    assert beam == local
    assert sorted(beam_files) == sorted(local_files)
    for name, data in local_files.items():
        assert beam_files[name] == data, name
    rows = {name: split["rows"] for name, split in local["splits"].items()}
    for name, count in rows.items():  # the row counts, recounted from the shards themselves
        folder = tmp_path / "beam" / name
        assert sum(open(folder / f, "rb").read().count(b"\n") for f in os.listdir(folder)
                   if f.startswith("examples-")) == count
    return local


@pytest.fixture
def small_batches(monkeypatch):
    """Batches and shards of a few rows, so that a small input spans many of both."""
    monkeypatch.setattr(beam_ingest, "BATCH_ROWS", 7)
    monkeypatch.setattr(beam_ingest, "ROWS_PER_HASH_BUCKET", 40)
    monkeypatch.setattr(split_io, "EXAMPLES_PER_SHARD", 25)


def test_exact_split_across_files_batches_and_shards(tmp_path, small_batches):
    rows = sentiment_rows(60, seed=3) + [(f"neutral {i}", "2") for i in range(17)] + [("good film", "1")] * 4
    random.Random(2).shuffle(rows)
    for i in range(3):
        write_text(tmp_path / "in" / f"part-{i}.tsv", tsv(rows[i::3]))
    profile = assert_identical(tmp_path, (str(tmp_path / "in" / "part-*.tsv"),), csv_params=TSV,
                               split_options=SplitOptions(0.2, 0.15, seed=9))
    assert profile["split_method"]["method"] == "exact"
    assert profile["splits"]["train"]["rows"] > 50  # three shards of 25
    assert profile["file_counts"] == {"train": 3}


def test_hash_split_keeps_the_held_back_rows_in_place(tmp_path, small_batches, monkeypatch):
    monkeypatch.setattr(ingest_module, "EXACT_SPLIT_MAX_ROWS", 30)
    rows = [(f"review {i} " + ("good" if i % 3 else "bad"), "pos" if i % 3 else "neg") for i in range(300)]
    rows += [("duplicate row", "pos")] * 6 + [("the only one", "rare"), ("another rare", "rare2"),
                                              ("second rare2", "rare2")]
    random.Random(4).shuffle(rows)
    source = write_text(tmp_path / "one.tsv", tsv(rows))
    profile = assert_identical(tmp_path, (source,), csv_params=TSV, split_options=SplitOptions(0.2, 0.1, seed=5))
    assert profile["split_method"]["method"] == "hash"
    assert profile["splits"]["train"]["labels"]["rare"] == 1


def test_given_validation_serves_as_test_and_duplicates_are_counted(tmp_path, small_batches):
    train = write_text(tmp_path / "train.tsv", tsv(sentiment_rows(30) + [("good film", "1")] * 3))
    dev = write_text(tmp_path / "dev.tsv", tsv(sentiment_rows(9, seed=1) + [("good film", "1")]))
    profile = assert_identical(tmp_path, (train, dev), csv_params=TSV)
    assert profile["splits"]["train"]["duplicate_rows"] >= 2
    assert profile["texts_shared_between_splits"]


def test_validation_carved_and_test_given(tmp_path, small_batches):
    train = write_text(tmp_path / "train.tsv", tsv(sentiment_rows(30)))
    test = write_text(tmp_path / "test.tsv", tsv(sentiment_rows(5, seed=8)))
    profile = assert_identical(tmp_path, (train, "", test), csv_params=TSV)
    assert profile["sources"]["test"] == test


def test_skipped_rows_are_all_counted(tmp_path, small_batches):
    lines = ["sentence\tlabel"]
    for i, (text, label) in enumerate(sentiment_rows(40)):
        lines.append(f"{text}\t{label}" if i % 9 else f"{text}\t{label}\textra")
        if i % 13 == 5:
            lines.append(f"\t{label}")
    for i in range(2):
        write_text(tmp_path / "in" / f"p{i}.tsv", "\n".join(lines[:1] + lines[1 + i::2]) + "\n")
    params = CSVParams(delimiter="\t", text_column="sentence", on_bad_rows="skip")
    profile = assert_identical(tmp_path, (str(tmp_path / "in"),), csv_params=params)
    dropped = profile["dropped_rows"]
    assert dropped["total"] == dropped["listed"] > 5
    assert set(dropped["by_reason"]) == {"wrong field count", "empty text"}


def test_quoted_rows_are_judged_with_the_labels_read_before(tmp_path, small_batches):
    rows = sentiment_rows(12)
    train = csv_text(rows[:10]) + '"two\nlines",1\n' + "".join(f'"{t}",{lab}\n' for t, lab in rows[10:])
    # One record over four lines. Its middle lines look like rows of labels train has, so the
    # in-process read, knowing train's labels, reports an unclosed quote and reads them as rows;
    # read alone (no labels known), the same file is one multi-line text.
    dev = 'text,label\n"starts here,1\nok movie,0\nfine film,1\nends here",1\n' + "".join(
        f'"{t}",{lab}\n' for t, lab in sentiment_rows(3, seed=5))
    sources = (write_text(tmp_path / "train.csv", train), write_text(tmp_path / "dev.csv", dev))
    profile = assert_identical(tmp_path / "files", sources, csv_params=CSVParams(on_bad_rows="skip"))
    assert profile["dropped_rows"]["by_reason"] == {"unclosed quote": 1}
    assert profile["splits"]["validation"]["rows"] == 9
    # the same within one source: the second file is judged with the first one's labels
    write_text(tmp_path / "shards" / "a.csv", train)
    write_text(tmp_path / "shards" / "b.csv", dev)
    profile = assert_identical(tmp_path / "glob", (str(tmp_path / "shards"),), csv_params=CSVParams(on_bad_rows="skip"))
    assert profile["dropped_rows"]["by_reason"] == {"unclosed quote": 1}


def test_errors_name_file_line_and_column_as_in_process(tmp_path):
    good = sentiment_rows(10)
    bad = write_text(tmp_path / "bad.tsv", tsv(good[:4]) + "\t1\n" + "".join(f"{t}\t{lab}\n" for t, lab in good[4:]))
    for args in (None, DIRECT):
        with pytest.raises(InputFormatError, match=r"bad.tsv, line 6, column 'sentence': empty text"):
            ingest(bad, csv_params=TSV, output_dirs={"train": str(tmp_path / "o" / "train")},
                   beam_pipeline_args=args)
    dev = write_text(tmp_path / "dev.tsv", tsv([("great", "1"), ("meh", "7"), ("so so", "7")]))
    train = write_text(tmp_path / "train.tsv", tsv(good))
    for args in (None, DIRECT):
        with pytest.raises(LabelError, match=r"dev.tsv, line 3: label '7' \(2 rows\) in the validation"):
            ingest(train, dev, csv_params=TSV, beam_pipeline_args=args)
        with pytest.raises(DataSourceError):
            ingest(train, str(tmp_path / "missing.tsv"), csv_params=TSV, beam_pipeline_args=args)
        with pytest.raises(LabelError, match="at least two"):
            ingest(write_text(tmp_path / "one.tsv", tsv([("a", "1"), ("b", "1")])), csv_params=TSV,
                   beam_pipeline_args=args)


def test_without_a_runner_the_step_runs_in_process(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the Beam ingest ran")
    monkeypatch.setattr(beam_ingest, "ingest_beam", refuse)
    train = write_text(tmp_path / "train.tsv", tsv(sentiment_rows(10)))
    ingest(train, csv_params=TSV, beam_pipeline_args=["--direct_num_workers=2"])
    with pytest.raises(AssertionError, match="Beam ingest ran"):
        ingest(train, csv_params=TSV, beam_pipeline_args=["--runner", "DirectRunner"])


def test_a_runner_that_loses_rows_fails_the_step(tmp_path, monkeypatch):
    def short_shard(element, folders, per_shard):
        kind, key, rows = real(element, folders, per_shard)
        return kind, key, rows - 1
    real = beam_ingest._write_shard
    monkeypatch.setattr(beam_ingest, "_write_shard", short_shard)
    train = write_text(tmp_path / "train.tsv", tsv(sentiment_rows(10)))
    with pytest.raises(errors.RunnerError, match="the train split: the runner wrote shards"):
        ingest(train, csv_params=TSV, output_dirs={"train": str(tmp_path / "o")}, beam_pipeline_args=DIRECT)


def test_runner_arguments():
    from components import beam_runner
    assert beam_runner._runner_args(["--runner=DaskRunner", "--x=1"]) == [
        "--runner=" + beam_runner.DASK_RUNNER, "--x=1"]
    assert beam_runner._runner_args(["--runner", "dask"]) == ["--runner", beam_runner.DASK_RUNNER]
    assert beam_runner.names_runner(["--runner=DataflowRunner"]) and not beam_runner.names_runner(["--a=b"])
    assert not beam_runner.side_inputs_supported(["--runner=DaskRunner"])
    assert beam_runner.side_inputs_supported(["--runner=DataflowRunner"]) and beam_runner.side_inputs_supported([])
    assert beam_runner.runner_is_local([]) and not beam_runner.runner_is_local(["--runner=FlinkRunner"])


def test_textclf_ingest_runs_on_the_runner_given(tmp_path, capsys):
    from pipelines.cli import main
    train = write_text(tmp_path / "train.tsv", tsv(sentiment_rows(15)))
    assert main(["ingest", "--train", train, "--output", str(tmp_path / "local")]) == 0
    assert main(["ingest", "--train", train, "--output", str(tmp_path / "beam"),
                 "--beam-arg=--runner=DirectRunner", "--beam-arg=--direct_num_workers=1"]) == 0
    local, beam = tree_bytes(tmp_path / "local"), tree_bytes(tmp_path / "beam")
    assert sorted(local) == sorted(beam) and all(beam[name] == data for name, data in local.items())
    assert capsys.readouterr().out.count('{"train": 22, "validation": 4, "test": 4}') == 2
