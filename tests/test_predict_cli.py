"""`textclf predict`: the exported model's answers from the shell, as `TextClassifier.load` gives them;
and every flag of the `textclf` commands says what it does and its default."""

import argparse
import json

import pytest
from tflite_fixtures import make_awe

from components.text_classifier import TextClassifier
from pipelines.cli import build_parser, main

TEXTS = ["the movie was great", "the film was awful", "Great acting, terrible plot", "zebra"]


@pytest.fixture(scope="module")
def awe(tmp_path_factory):
    return make_awe(str(tmp_path_factory.mktemp("awe")), epochs=3)


def _expected(model):
    return TextClassifier.load(model).predict(TEXTS)


def test_lines_match_the_loaded_classifier(awe, capsys):
    tflite = awe["export"]["tflite"]
    assert main(["predict", tflite, *TEXTS]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(TEXTS)
    for line, text, want in zip(lines, TEXTS, _expected(tflite)):
        label, score, scores, printed = line.split("\t")
        assert (label, printed) == (want.label, text)
        assert float(score) == pytest.approx(want.score, abs=1e-4)
        assert {k: float(v) for k, v in (item.split("=") for item in scores.split())} == \
            pytest.approx(want.scores, abs=1e-4)


def test_json_from_an_export_folder_and_a_file(awe, tmp_path, capsys):
    folder = awe["export_dir"]
    texts_file = tmp_path / "texts.txt"
    texts_file.write_text("\ufeff" + "\n".join(TEXTS[:2]) + "\n\n  \r\n" + "\r\n".join(TEXTS[2:]) + "\n",
                          encoding="utf-8")
    assert main(["predict", folder, "--file", str(texts_file), "--json"]) == 0
    captured = capsys.readouterr()
    records = json.loads(captured.out)
    assert [r["text"] for r in records] == TEXTS
    assert f"skipped 2 blank line(s) in {texts_file}" in captured.err
    for record, want in zip(records, _expected(folder)):
        assert record["label"] == want.label
        assert record["score"] == pytest.approx(want.score, abs=1e-6)
        assert record["scores"] == pytest.approx(want.scores, abs=1e-6)
    assert all(line.startswith("{") for line in captured.out.splitlines()[1:-1])  # one object a line
    assert main(["predict", folder, "first text", "--file", str(texts_file)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 + len(TEXTS) and lines[0].endswith("\tfirst text")


def test_errors_are_one_line(awe, tmp_path, capsys):
    cases = [
        (["predict", str(tmp_path / "missing.tflite"), "x"], "no such .tflite file"),
        (["predict", awe["export"]["tflite"]], "no texts to classify"),
        (["predict", awe["export"]["tflite"], "--file", str(tmp_path / "none.txt")], "cannot read the texts file"),
    ]
    other = tmp_path / "other.tflite"
    other.write_bytes(b"not a model at all")
    cases.append((["predict", str(other), "x"], "is it a text classifier"))
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine\n\xff\xfe\n")
    cases.append((["predict", awe["export"]["tflite"], "--file", str(bad)], f"{bad}, line 2: not UTF-8"))
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("textclf: error: ") and message in err[0], err


def _actions(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from ((f"{name} {flag}", a) for flag, a in _actions(sub))
        elif not isinstance(action, argparse._HelpAction):
            yield (action.option_strings[0] if action.option_strings else action.dest), action


def test_every_flag_has_help_with_its_default():
    from components.benchmark import build_parser as benchmark_parser
    actions = list(_actions(build_parser())) + [(f"benchmark {f}", a) for f, a in _actions(benchmark_parser())]
    names = {name for name, _ in actions}
    assert {"run --text-column", "run --quotechar", "run --benchmark-runs", "submit --project",
            "submit --service-account", "predict --file", "benchmark --runs", "compile --output"} <= names
    missing, no_default = [], []
    for name, action in actions:
        if action.help == argparse.SUPPRESS:
            continue
        if not (action.help or "").strip():
            missing.append(name)
        elif action.option_strings and not action.required and "default" not in action.help:
            no_default.append(name)
    assert not missing, f"flags without help: {missing}"
    assert not no_default, f"flags whose help does not give the default: {no_default}"
    help_text = " ".join(build_parser()._subparsers._group_actions[0].choices["run"].format_help().split())
    assert "%(default)" not in help_text and "(default: runs/pipeline_root)" in help_text
