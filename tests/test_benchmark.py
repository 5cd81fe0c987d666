"""LiteRT latency benchmark: figures present and sane (never timed assertions), the table, the CLI."""

import importlib.util
import json
import os

import pytest
from tflite_fixtures import make_awe, make_bert

from components import metadata as md
from components.benchmark import benchmark_models, benchmark_tflite, main, markdown_table, synthetic_inputs, table_rows
from components.errors import DataSourceError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def awe(tmp_path_factory):
    return make_awe(str(tmp_path_factory.mktemp("awe")), epochs=3)


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    return make_bert(str(tmp_path_factory.mktemp("bert")), epochs=3)


def _check_figures(result, path, threads):
    assert result["model_bytes"] == os.path.getsize(path) > 0
    assert result["threads"] == threads
    assert 0 < result["p50_ms"] <= result["p90_ms"] <= result["p99_ms"]
    assert result["min_ms"] > 0 and result["mean_ms"] > 0
    assert result["peak_rss_mb"] > 0


def test_benchmark_synthetic_and_real_examples(awe, bert):
    for fixture in (awe, bert):
        path = fixture["export"]["tflite"]
        synthetic = benchmark_tflite(path, threads=1, runs=30, warmup=5)
        _check_figures(synthetic, path, 1)
        assert synthetic["inputs"] == "synthetic" and synthetic["runs"] == 30
        real = benchmark_tflite(path, threads=2, runs=30, warmup=5, examples=fixture["test_dir"])
        _check_figures(real, path, 2)
        assert real["inputs"] == "examples"
        assert real["input_shapes"] == [[1, fixture["seq_len"]]] * len(real["input_shapes"])


def test_synthetic_inputs_are_plausible(awe, bert, tmp_path):
    from components.tflite_eval import make_interpreter

    path = bert["export"]["tflite"]
    interpreter = make_interpreter(path, 1)
    values = synthetic_inputs(interpreter, open(path, "rb").read())
    by_role = {md.bert_input_role(d["name"]): values[d["index"]][0]
               for d in interpreter.get_input_details()}
    vocab = bert["tokenizer"].vocab
    real = int(by_role["mask"].sum())
    assert by_role["ids"][0] == vocab["[CLS]"] and by_role["ids"][real - 1] == vocab["[SEP]"]
    assert by_role["ids"].max() < len(vocab) and not by_role["segment_ids"].any()
    assert not by_role["ids"][real:].any()

    # A model without metadata (no packed vocabulary): the id range comes from the embedding table.
    bare = tmp_path / "bare.tflite"
    bare.write_bytes(md.attach_metadata(open(awe["export"]["tflite"], "rb").read(), {"name": "bare"}, {}))
    interpreter = make_interpreter(str(bare), 1)
    (ids,) = synthetic_inputs(interpreter, bare.read_bytes()).values()
    assert ids[0, 0] == 1 and ids.max() < len(awe["tokenizer"].vocab)
    _check_figures(benchmark_tflite(str(bare), runs=10, warmup=2), str(bare), 1)


def test_benchmark_models_table(awe, bert):
    models = {"Average word embedding": awe["export"]["tflite"], "BERT stand-in": bert["export"]["tflite"]}
    results = benchmark_models(models, runs=20, warmup=2, threads=[1, 2],
                               examples={"Average word embedding": awe["test_dir"]},
                               accuracies={"Average word embedding": 0.875})
    assert [r["name"] for r in results] == list(models)
    assert set(results[0]["latency"]) == {"1", "2"}
    assert results[0]["latency"]["1"]["inputs"] == "examples"
    assert results[1]["latency"]["1"]["inputs"] == "synthetic"
    rows = table_rows(results)
    assert list(rows[0])[:4] == ["Model architecture", "Test accuracy", "Model size", "CPU 1 thread latency"]
    assert rows[0]["Test accuracy"] == "87.5%" and rows[1]["Test accuracy"] == "n/a"
    assert rows[0]["Model size"].endswith("KB") and rows[0]["CPU 1 thread latency"].endswith((" ms", " µs"))
    table = markdown_table(rows).splitlines()
    assert table[0].startswith("| Model architecture | Test accuracy | Model size | CPU 1 thread latency")
    assert len(table) == 2 + len(models)


def test_cli_json_last_line(awe, capsys):
    path = awe["export"]["tflite"]
    assert main([path, "--threads", "1", "--runs", "15", "--warmup", "2", "--json"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    figures = json.loads(last)
    assert figures["model_bytes"] == os.path.getsize(path) and figures["threads"] == 1
    assert 0 < figures["p50_ms"] <= figures["p90_ms"] <= figures["p99_ms"]

    assert main([path, "--runs", "5", "--examples", awe["test_dir"]]) == 0
    assert "p50" in capsys.readouterr().out
    with pytest.raises(DataSourceError, match="no such"):
        main([os.path.join(awe["export_dir"], "missing.tflite")])


def test_latency_script(awe, bert, capsys):
    spec = importlib.util.spec_from_file_location("latency", os.path.join(ROOT, "benchmarks", "latency.py"))
    latency = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(latency)
    paths = [awe["export"]["tflite"], bert["export"]["tflite"]]
    assert latency.main(paths + ["--runs", "10", "--warmup", "2", "--repeats", "2", "--threads", "1,2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    results = json.loads(lines[-1])["results"]
    assert [(r["model"], r["threads"]) for r in results] == [(p, t) for p in paths for t in (1, 2)]
    assert all(r["repeats"] == 2 and r["p50_ms"] > 0 for r in results)
    # each thread count's ratios are relative to the first model at that thread count
    assert [r["p50_vs_first"] for r in results[:2]] == [1.0, 1.0]
    assert results[2]["p50_vs_first"] == pytest.approx(results[2]["p50_ms"] / results[0]["p50_ms"])
    assert results[3]["p50_vs_first"] == pytest.approx(results[3]["p50_ms"] / results[1]["p50_ms"])
    assert lines[0].startswith("| Model |") and "p50 / first" in lines[0]


def test_latency_format_switches_to_microseconds():
    from components.benchmark import format_latency
    assert format_latency(0.0031) == "3.1 µs"
    assert format_latency(12.345) == "12.35 ms"
