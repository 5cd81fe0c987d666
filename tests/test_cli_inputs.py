"""The `textclf` command on bad inputs and flags: clear one-line errors, nothing ignored."""

import json
import os
import subprocess
import sys

import pytest

from components.errors import ConfigError
from pipelines.cli import build_parser, main
from tests.conftest import ROOT, sentiment_rows, write_text


def parse(*argv):
    from pipelines.arguments import pipeline_arguments
    return pipeline_arguments(build_parser().parse_args(["run", *argv]))


@pytest.mark.parametrize("argv, message", [
    (("--epochs", "0"), "epochs must be at least 1, got 0"),
    (("--benchmark-runs", "0"), "benchmark_runs must be at least 1, got 0"),
    (("--min-accuracy", "1.5"), "min_accuracy is a fraction in"),
    (("--max-accuracy-drop", "-1"), "max_accuracy_drop is in accuracy points"),
    (("--validation-fraction", "1"), "validation_fraction must be in"),
    (("--test-fraction", "-0.1"), "test_fraction must be in"),
    (("--models", ""), "at least one model architecture"),
    (("--fieldnames", ""), "fieldnames must be non-empty"),
    (("--delimiter", ""), "delimiter must be one character"),
    (("--bert-encoder", ""), "--bert-encoder is empty"),
])
def test_falsy_flags_are_checked_not_ignored(argv, message):
    with pytest.raises(ConfigError, match=message):
        parse(*argv)


def test_zero_values_that_are_valid_are_kept(tmp_path):
    values = parse("--min-accuracy", "0", "--max-accuracy-drop", "0", "--seed", "0",
                   "--validation-fraction", "0.0", "--test-fraction", "0")
    assert values["min_accuracy"] == 0.0 and values["max_accuracy_drop"] == 0.0
    assert values["split_options"] == {"validation_fraction": 0.0, "test_fraction": 0.0, "seed": 0}
    config = tmp_path / "c.yaml"
    config.write_text("benchmark_runs: 0\n")
    with pytest.raises(ConfigError, match="benchmark_runs must be at least 1"):
        parse("--config", str(config))
    assert parse("--epochs", "2")["awe_hparams"]["epochs"] == 2


def test_benchmark_command_refuses_zero_runs(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["benchmark", "model.tflite", "--runs", "0"])
    assert exit_.value.code == 2 and "must be at least 1, got 0" in capsys.readouterr().err


def test_run_checks_the_header_before_the_pipeline_starts(tmp_path, capsys):
    train = write_text(tmp_path / "train.csv", "review,label\ngood,1\nbad,0\n")
    root = tmp_path / "root"
    assert main(["run", "--train", train, "--text-column", "text", "--pipeline-root", str(root)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"textclf: error: {train}, line 1, column 'text': no column named 'text'")
    assert "\x1b[" not in err[-1] and not root.exists()
    assert main(["run", "--train", str(tmp_path / "nothing-*.csv"), "--pipeline-root", str(root)]) == 2
    assert "matches no files" in capsys.readouterr().err and not root.exists()


def test_a_failing_step_ends_with_its_own_message(tmp_path):
    """The header is fine, so the run starts; the ingest step fails on line 3."""
    train = write_text(tmp_path / "train.csv", "text,label\ngood film,1\nbad film,0,extra\nok,1\n")
    env = dict(os.environ, PYTHONPATH=ROOT)
    done = subprocess.run([sys.executable, "-m", "pipelines.cli", "run", "--train", train, "--models", "awe",
                           "--pipeline-root", str(tmp_path / "root")], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=300)
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert last == (f"textclf: error: step ingest-split failed: {train}, line 3: expected 2 fields, found 3 "
                    "(pass on_bad_rows='skip' to count and skip such rows)")
    assert "\x1b[" not in done.stderr  # stderr is not a terminal here


def test_ingest_reads_a_gcs_folder(tmp_path, gcs_emulator, capsys):
    bucket = gcs_emulator.bucket("textclf-test")
    for i in range(2):
        bucket.blob(f"folder/part-{i}.tsv").upload_from_string(
            "sentence\tlabel\n" + "".join(f"{t}\t{lab}\n" for t, lab in sentiment_rows(10, seed=i)))
    out = tmp_path / "out"
    assert main(["ingest", "--train", "gs://textclf-test/folder/", "--output", str(out)]) == 0
    counts = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert sum(counts.values()) == 40
    assert main(["ingest", "--train", "gs://textclf-test/none/", "--output", str(out)]) == 2
    assert "gs://textclf-test/none/: holds no data files" in capsys.readouterr().err


def test_model_maker_api_reads_through_the_same_reader(tmp_path, caplog):
    from components import text_classifier
    rows = [('"a quoted start', "pos"), ("plain", "neg"), ("Fine", "Pos")]
    for i in range(2):
        write_text(tmp_path / "d" / f"part-{i}.tsv", "sentence\tlabel\n" + "".join(f"{t}\t{lab}\n" for t, lab in rows))
    params = text_classifier.CSVParams(text_column="sentence", label_column="label", delimiter="\t")
    data = text_classifier.Dataset.from_csv(filename=str(tmp_path / "d" / "part-*.tsv"), csv_params=params)
    assert data.size == 6 and data.texts[0] == '"a quoted start'
    assert "differ only by case" in caplog.text
    quoted = text_classifier.CSVParams(text_column="sentence", delimiter="\t", quotechar='"',
                                       on_bad_rows="skip")
    data = text_classifier.Dataset.from_csv(filename=str(tmp_path / "d" / "part-0.tsv"), csv_params=quoted)
    assert data.size == 2  # the quote opened on line 2 is reported; the lines after it are rows
    assert "skipped 1 bad row(s)" in caplog.text and "unclosed quote" in caplog.text


def test_ingest_scale_benchmark_prints_one_json_line(tmp_path):
    done = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "ingest_scale.py"), "--rows", "3000",
                           "--repeats", "1", "--workdir", str(tmp_path)], capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, PYTHONPATH=ROOT))
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["rows"] == 3000 and figures["rows_per_s"] > 0 and figures["peak_rss_mb"] > 0
