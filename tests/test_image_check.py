"""image/check.py, the in-image check's plan and plumbing, without buildah: the executor inputs it
writes must fit the compiled components, and the compiled kfp command must accept them (run here
with this interpreter as `python3`)."""

import copy
import importlib.util
import json
import os
import re
import sys

import pytest
import yaml

from pipelines.compile_pipeline import compile_pipeline

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGE = "textclf-pipelines:test"


def _load_check():
    spec = importlib.util.spec_from_file_location("image_check", os.path.join(ROOT, "image", "check.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


check = _load_check()


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    path = tmp_path_factory.mktemp("compiled") / "pipeline.yaml"
    compile_pipeline(str(path), image=IMAGE)
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def _outputs_as_produced(given):
    return {name: listed["artifacts"][0] for name, listed in given["outputs"]["artifacts"].items()}


def test_every_step_of_the_plan_fits_its_compiled_component(spec, tmp_path):
    layout = check.Layout(str(tmp_path), "/check")
    produced = {}
    plan = check.steps("/check/data", "/check/export")
    for step in plan:
        given = check.executor_input(spec, step, layout, produced)
        argv = check.container_argv(spec, step, json.dumps(given), IMAGE)
        assert argv[:2] == ["sh", "-ec"] and "kfp.dsl.executor_main" in argv[2]
        assert argv[argv.index("--executor_input") + 1] == json.dumps(given)
        assert given["outputs"]["outputFile"] == f"/check/steps/{step.function}/executor_output.json"
        produced[step.function] = _outputs_as_produced(given)
    # the report reads the collected results (one architecture here: the check runs AWE only)
    report = check.executor_input(spec, plan[-2], layout, produced)
    assert [a["uri"] for a in report["inputs"]["artifacts"]["results"]["artifacts"]] == [
        "/check/steps/collect/results"]
    # every kind of component (a branch per architecture compiles some of them twice: "-2")
    compiled = {re.sub(r"-\d+$", "", n[len("comp-"):]).replace("-", "_") for n in spec["components"]
                if spec["components"][n].get("executorLabel")}
    assert {s.function for s in plan} == compiled


def test_a_changed_component_signature_fails_before_anything_runs(spec, tmp_path):
    layout = check.Layout(str(tmp_path), "/check")
    changed = copy.deepcopy(spec)
    changed["components"]["comp-ingest-split"]["inputDefinitions"]["parameters"]["encoding"] = {
        "parameterType": "STRING"}
    first = check.steps("/check/data", "/check/export")[0]
    with pytest.raises(check.CheckError, match="step ingest_split: input parameter 'encoding' has no value"):
        check.executor_input(changed, first, layout, {})
    second = check.steps("/check/data", "/check/export")[1]
    with pytest.raises(check.CheckError, match=r"step preprocess: input '\w+_data' needs ingest_split\.\w+_data"):
        check.executor_input(spec, second, layout, {})
    with pytest.raises(check.CheckError, match="compiled for image"):
        check.container_argv(spec, first, "{}", "another:image")


def test_ingest_and_beam_preprocess_run_through_the_compiled_kfp_command(spec, tmp_path):
    layout = check.Layout(str(tmp_path), str(tmp_path))
    check.write_data(layout.host("data"), train_rows=80, test_rows=20)
    plan = check.steps(layout.inner("data"), layout.inner("export"))[:2]
    lines = []
    results = check.run_steps(spec, plan, layout, check.local_runner(), image=IMAGE, echo=lines.append)
    ingested = results["ingest_split"]["artifacts"]
    assert ingested["train_data"]["metadata"]["rows"] + ingested["validation_data"]["metadata"]["rows"] == 80
    assert ingested["profile"]["metadata"]["cache_salt"] == "image-check"
    vocab = results["preprocess"]["artifacts"]["vocab"]
    assert vocab["metadata"]["architecture"] == "awe" and os.listdir(layout.host_of(vocab["uri"]))
    assert [line.split()[1] for line in lines] == ["ingest_split", "preprocess"]


def test_a_failing_step_is_named_with_its_log(spec, tmp_path):
    layout = check.Layout(str(tmp_path), "/check")

    def failing(label, argv, log_path):
        os.makedirs(os.path.dirname(log_path), exist_ok=True)
        with open(log_path, "w") as f:
            f.write("Traceback ...\nReaderError: train.tsv line 3\n")
        return 1

    with pytest.raises(check.CheckError) as error:
        check.run_steps(spec, check.steps("/check/data", "/check/export"), layout, failing, echo=lambda _: None)
    assert "step ingest_split exited with status 1" in str(error.value)
    assert "ReaderError: train.tsv line 3" in str(error.value)


def test_a_step_that_writes_nothing_fails_the_check(spec, tmp_path):
    layout = check.Layout(str(tmp_path), "/check")
    with pytest.raises(check.CheckError, match="step ingest_split: output .* is missing or empty"):
        check.run_steps(spec, check.steps("/check/data", "/check/export")[:1], layout,
                        lambda label, argv, log_path: 0, echo=lambda _: None)


def test_work_folder_is_emptied_only_when_this_check_made_it(tmp_path):
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("keep me")
    with pytest.raises(check.CheckError, match="not made by this check"):
        check.prepare_work(str(theirs))
    assert (theirs / "notes.txt").read_text() == "keep me"
    ours = tmp_path / "ours"
    check.prepare_work(str(ours))
    (ours / "old.log").write_text("old")
    check.prepare_work(str(ours))
    assert sorted(os.listdir(ours)) == [check.MARKER]
