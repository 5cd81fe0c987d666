"""Per-step machines, accelerators and retries, read back from the compiled pipeline YAML: the
Vertex defaults, overrides from a resources file, Vertex custom jobs (machine types, replicas), and
the pipeline the local runner gets, which leaves them out."""

import json

import pytest
import yaml

from components import distribute
from components.errors import ConfigError
from pipelines import resources as res
from pipelines.compile_pipeline import compile_pipeline
from pipelines.pipeline import create_pipeline

IMAGE, GPU_IMAGE = "europe-docker.pkg.dev/p/r/textclf:1", "europe-docker.pkg.dev/p/r/textclf:1-gpu"


def _tasks(spec):
    """{display name: (task, component, container)} over the root DAG and its sub-DAGs."""
    found = {}

    def walk(dag):
        for task in dag.get("tasks", {}).values():
            component = spec["components"][task["componentRef"]["name"]]
            if "dag" in component:
                walk(component["dag"])
                continue
            container = spec["deploymentSpec"]["executors"][component["executorLabel"]]["container"]
            found[task["taskInfo"]["name"]] = (task, component, container)

    walk(spec["root"]["dag"])
    return found


def _compiled(tmp_path, name="pipeline.yaml", **kwargs):
    path = str(tmp_path / name)
    compile_pipeline(path, image=IMAGE, gpu_image=GPU_IMAGE, **kwargs)
    with open(path, encoding="utf-8") as f:
        return _tasks(yaml.safe_load(f))


def _accelerator(resources):
    given = resources["accelerator"]
    return given["resourceType"], given["resourceCount"]


def _env(container):
    return {item["name"]: item["value"] for item in container.get("env", [])}


def test_vertex_defaults_put_bert_training_alone_on_a_gpu(tmp_path):
    tasks = _compiled(tmp_path)
    assert set(tasks) >= {"ingest-and-split", "train-awe", "train-bert", "tflite-evaluate-bert", "benchmark-bert",
                          "report", "publish"}
    for name, (task, _, container) in tasks.items():
        resources = container.get("resources", {})
        if name == "train-bert":
            assert _accelerator(resources) == ("NVIDIA_L4", "1"), resources
            assert (resources["resourceCpuLimit"], resources["resourceMemoryLimit"]) == ("8", "32G")
            assert container["image"] == GPU_IMAGE
            assert _env(container) == {distribute.ACCELERATOR_ENV: "NVIDIA_L4", distribute.ACCELERATOR_COUNT_ENV: "1"}
        else:  # AWE and the light steps (LiteRT evaluation and latency run on CPU): small CPU machines
            assert "accelerator" not in resources and container["image"] == IMAGE and not _env(container), name
        retry = task.get("retryPolicy")
        if name.startswith(("train-", "preprocess-")):
            assert retry["maxRetryCount"] == (3 if name.startswith("train-") else 2)
            assert retry["backoffDuration"] == "60s" and retry["backoffFactor"] == 2.0
        else:
            assert retry is None, name
    cpu = {name: container["resources"]["resourceCpuLimit"] for name, (_, _, container) in tasks.items()}
    memory = {name: container["resources"]["resourceMemoryLimit"] for name, (_, _, container) in tasks.items()}
    assert (cpu["train-awe"], memory["train-awe"]) == ("4", "16G")
    assert (cpu["preprocess-bert"], memory["preprocess-bert"]) == ("4", "16G")
    assert (cpu["evaluate-bert"], memory["evaluate-bert"]) == ("8", "32G")
    for light in ("ingest-and-split", "evaluate-awe", "tflite-evaluate-bert", "benchmark-bert", "report", "publish"):
        assert (cpu[light], memory[light]) == ("2", "8G"), light


def test_machines_and_retries_leave_what_the_cache_keys_on_unchanged(tmp_path):
    """Resources and retries are task settings: the component, its command and the task's inputs
    (what kfp computes cache keys from) are those of a pipeline compiled without any."""
    from kfp import compiler
    plain = str(tmp_path / "plain.yaml")
    # local=True: no retries, no resources (nor the accelerator variables)
    compiler.Compiler().compile(create_pipeline(IMAGE, local=True), package_path=plain)
    with open(plain, encoding="utf-8") as f:
        bare = _tasks(yaml.safe_load(f))
    configured = _compiled(tmp_path, resources={"train.awe": {"cpu": "16"}})
    assert set(bare) == set(configured)
    for name, (task, component, container) in configured.items():
        task0, component0, container0 = bare[name]
        assert task["inputs"] == task0["inputs"] and task.get("cachingOptions") == task0.get("cachingOptions"), name
        assert component["inputDefinitions"] == component0["inputDefinitions"], name
        if name != "train-bert":  # the accelerated step: the GPU image, told to expect its GPU
            assert (container["command"], container["args"], container["image"]) == (
                container0["command"], container0["args"], container0["image"]), name
        assert "retryPolicy" not in task0
    assert configured["benchmark-awe"][0]["cachingOptions"] == {}  # a measurement: never cached


def test_a_resources_file_overrides_the_defaults_field_by_field(tmp_path):
    from pipelines.cli import main
    resources = tmp_path / "resources.yaml"
    resources.write_text("train: {cpu: '16', memory: 64G}\n"
                         "train.bert: {accelerator: NVIDIA_TESLA_T4, accelerator_count: 2}\n"
                         "benchmark: {cpu: '1'}\n")
    output = tmp_path / "pipeline.yaml"
    assert main(["compile", "--output", str(output), "--image", IMAGE, "--gpu-image", GPU_IMAGE,
                 "--resources", str(resources)]) == 0
    tasks = _tasks(yaml.safe_load(output.read_text()))
    awe = tasks["train-awe"][2]["resources"]
    assert (awe["resourceCpuLimit"], awe["resourceMemoryLimit"]) == ("16", "64G")
    bert = tasks["train-bert"][2]
    # train.bert's defaults (8 CPU, 32G) are more specific than the file's `train`
    assert bert["resources"]["resourceCpuLimit"] == "8"
    assert _accelerator(bert["resources"]) == ("NVIDIA_TESLA_T4", "2")
    assert _env(bert)[distribute.ACCELERATOR_COUNT_ENV] == "2"
    assert tasks["benchmark-bert"][2]["resources"]["resourceCpuLimit"] == "1"


def test_a_machine_type_and_replicas_make_a_vertex_custom_job(tmp_path):
    pytest.importorskip("google_cloud_pipeline_components")
    tasks = _compiled(tmp_path, resources={"train.bert": {"machine_type": "a2-highgpu-1g",
                                                          "accelerator": "NVIDIA_TESLA_A100", "replica_count": 2}})
    task, component, container = tasks["train-bert"]
    assert container["image"].startswith("gcr.io/ml-pipeline/google-cloud-pipeline-components:")
    assert "resources" not in container  # the machines are in the job spec, not on the launcher
    pools = component["inputDefinitions"]["parameters"]["worker_pool_specs"]["defaultValue"]
    assert [pool["replica_count"] for pool in pools] == [1, 1]  # the chief, then the other replica
    for pool in pools:
        assert pool["machine_spec"] == {"machine_type": "a2-highgpu-1g", "accelerator_type": "NVIDIA_TESLA_A100",
                                        "accelerator_count": 1}
        spec = pool["container_spec"]
        assert spec["image_uri"] == GPU_IMAGE and "kfp.dsl.executor_main" in json.dumps(spec["command"])
        assert spec["args"][spec["args"].index("--function_to_execute") + 1] == "train"
        assert {e["name"]: e["value"] for e in spec["env"]} == {distribute.ACCELERATOR_ENV: "NVIDIA_TESLA_A100",
                                                              distribute.ACCELERATOR_COUNT_ENV: "1"}
    # the step keeps its inputs (checkpoints keyed under the pipeline root) and its retries
    assert task["inputs"]["parameters"]["pipeline_root"] == {"runtimeValue": {"constant": "{{$.pipeline_root}}"}}
    assert set(component["inputDefinitions"]["artifacts"]) == {"train_tokens", "validation_tokens", "vocab"}
    assert task["retryPolicy"]["maxRetryCount"] == 3
    assert tasks["train-awe"][2]["image"] == IMAGE  # only the step named runs as a custom job


def test_the_local_runner_gets_no_custom_jobs_accelerator_checks_or_retries(tmp_path):
    from kfp import compiler
    resources = res.validate({"train.bert": {"machine_type": "a2-highgpu-1g", "accelerator": "NVIDIA_TESLA_A100",
                                             "replica_count": 2},
                              "train.awe": {"accelerator": "NVIDIA_L4"}})
    path = str(tmp_path / "local.yaml")
    compiler.Compiler().compile(create_pipeline(IMAGE, resources=resources, gpu_image=GPU_IMAGE, local=True),
                                package_path=path)
    with open(path, encoding="utf-8") as f:
        tasks = _tasks(yaml.safe_load(f))
    for name, (task, _, container) in tasks.items():
        assert "google-cloud-pipeline-components" not in container["image"], name
        assert not _env(container) and "retryPolicy" not in task, name
    # kfp's local runner warns about and ignores these; tests/test_resume.py runs such a pipeline
    assert tasks["train-awe"][2]["resources"]["accelerator"]["resourceType"] == "NVIDIA_L4"


@pytest.mark.parametrize("entry, message", [
    ({"evaluate": {"machine_type": "n1-standard-8", "replica_count": 2}}, "only train runs on several replicas"),
    ({"train": {"replica_count": 0}}, "replica_count must be at least 1"),
    ({"train": {"accelerator_count": True}}, "accelerator_count must be a whole number"),
    ({"train": {"accelerator": "TPU_V3"}}, "TPUs are not supported"),
    ({"train": {"machine": "n1"}}, "unknown field"),
    ({"trian": {"cpu": "2"}}, "unknown step 'trian'"),
])
def test_bad_resources_are_named(entry, message):
    with pytest.raises(ConfigError, match=message):
        res.validate(entry)


def test_replicas_need_a_machine_type():
    machines = res.validate({"train.bert": {"replica_count": 2}})
    with pytest.raises(ConfigError, match="replica_count 2 needs a machine_type"):
        res.for_step(machines, "train", "bert")


def test_custom_jobs_without_the_vertex_extra_say_what_to_install(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "google_cloud_pipeline_components.v1.custom_job", None)
    with pytest.raises(ConfigError, match=r"pip install '\.\[vertex\]'"):
        create_pipeline(IMAGE, models=["awe"], resources={"train": {"machine_type": "n1-standard-8"}})


def test_kubeflow_submission_refuses_vertex_custom_jobs(tmp_path, capsys):
    from pipelines.cli import main
    resources = tmp_path / "resources.yaml"
    resources.write_text("train.bert: {machine_type: a2-highgpu-1g, replica_count: 2}\n")
    assert main(["submit", "--kfp-host", "http://127.0.0.1:9", "--train", "gs://b/train.csv",
                 "--resources", str(resources)]) == 2
    assert "train.bert: machine_type and replica_count run steps as Vertex AI custom jobs" in capsys.readouterr().err
