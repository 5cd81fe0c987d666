"""The compiled pipeline, the CLI's argument mapping and the submission requests (no network)."""

import json

import pytest
import yaml

from components.errors import ConfigError
from pipelines.cli import build_parser
from pipelines.compile_pipeline import compile_pipeline

STEPS = {"ingest-split", "preprocess", "train", "evaluate", "export", "quantize", "tflite-evaluate",
         "benchmark", "collect", "report", "publish"}


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    path = tmp_path_factory.mktemp("compiled") / "pipeline.yaml"
    compile_pipeline(str(path), image="europe-docker.pkg.dev/p/r/textclf:1.2")
    return str(path)


def test_compiled_yaml_loads_back_with_steps_and_parameters(compiled):
    from kfp.components import load_component_from_file
    component = load_component_from_file(compiled)
    params = set(component.component_spec.inputs)
    for name in ("train", "validation", "test", "csv_params", "awe_hparams", "bert_hparams",
                 "awe_model_options", "bert_model_options", "quantization", "beam_pipeline_args",
                 "min_accuracy", "max_accuracy_drop", "export_dir"):
        assert name in params
    spec = yaml.safe_load(open(compiled))
    executors = spec["deploymentSpec"]["executors"]
    images = {e["container"]["image"] for e in executors.values()}
    assert images == {"europe-docker.pkg.dev/p/r/textclf:1.2"}
    names = {name[len("comp-"):] for name in spec["components"]}
    assert STEPS <= names
    # no per-step pip install: the image carries the package and kfp
    assert not any("pip install" in " ".join(e["container"].get("command", [])) for e in executors.values())
    # kfp shows these as the inputs' descriptions in the Vertex and Kubeflow UIs
    inputs = spec["root"]["inputDefinitions"]["parameters"]
    assert all(definition.get("description") for definition in inputs.values()), inputs
    for name, component in spec["components"].items():
        for parameter, definition in component.get("inputDefinitions", {}).get("parameters", {}).items():
            if "executorLabel" in component:
                assert definition.get("description"), f"{name}.{parameter} has no Args: entry"
    task_names = json.dumps(spec["root"]["dag"]["tasks"])
    assert "ingest-and-split" in task_names and "report" in task_names
    assert "train-awe" in task_names and "train-bert" in task_names  # a branch per architecture


def parse(*argv):
    from pipelines.arguments import pipeline_arguments
    return pipeline_arguments(build_parser().parse_args(["run", *argv]))


def test_default_run_uses_sst2_zip():
    values = parse()
    assert "train" not in values  # pipeline default: the built-in SST-2 (tests/test_builtin_data.py)
    assert values["csv_params"]["delimiter"] == "auto" and values["csv_params"]["text_column"] == "auto"


def test_flags_map_onto_pipeline_parameters(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("awe_hparams: {epochs: 4, batch_size: 64}\nmin_accuracy: 0.5\n"
                      "bert_model_options: {seq_len: 64}\n")
    values = parse("--train", "a.csv", "--text-column", "review", "--models", "awe", "--config", str(config),
                   "--bert-encoder", "minilm-l6", "--quantization", "float16", "--export-dir", "gs://b/out",
                   "--beam-arg=--direct_num_workers=2", "--min-accuracy", "0.7")
    assert values["train"] == "a.csv" and values["validation"] == "" and values["test"] == ""
    assert values["csv_params"]["text_column"] == "review" and values["csv_params"]["delimiter"] == "auto"
    assert values["models"] == ["awe"]
    assert values["awe_hparams"]["epochs"] == 4 and values["awe_hparams"]["batch_size"] == 64
    assert values["bert_model_options"]["encoder"] == "minilm-l6"
    assert values["bert_model_options"]["seq_len"] == 64
    assert values["quantization"]["mode"] == "float16"
    assert values["beam_pipeline_args"] == ["--direct_num_workers=2"]
    assert values["min_accuracy"] == 0.7


def test_bad_config_is_named(tmp_path):
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"awe_hparams": {"epoch": 3}}))
    with pytest.raises(ConfigError, match="epoch"):
        parse("--config", str(config))
    config.write_text(json.dumps({"learning_rate": 3}))
    with pytest.raises(ConfigError, match="unknown parameter"):
        parse("--config", str(config))
    with pytest.raises(ConfigError, match="unknown model architecture 'cnn'"):
        parse("--models", "awe,cnn")


def test_vertex_job_and_schedule_requests(compiled, monkeypatch, gcs_emulator):
    """PipelineJob/Schedule requests as built by google-cloud-aiplatform, captured at the API client.

    The SDK checks the pipeline root's bucket first; the GCS emulator answers that.
    """
    from google.auth.credentials import AnonymousCredentials
    from google.cloud.aiplatform_v1.services.pipeline_service import PipelineServiceClient
    from google.cloud.aiplatform_v1.services.schedule_service import ScheduleServiceClient

    from pipelines import vertex
    sent = {}

    class Sent(Exception):
        pass

    def capture(kind):
        def fake(self, *args, **kwargs):
            sent[kind] = kwargs
            raise Sent(kind)
        return fake

    # The emulator has no projects: the SDK's bucket-ownership lookup (Resource Manager) is answered here.
    from google.cloud.aiplatform.utils import gcs_utils
    monkeypatch.setattr(gcs_utils, "_verify_bucket_ownership", lambda bucket, project, client: True)
    monkeypatch.setattr(PipelineServiceClient, "create_pipeline_job", capture("job"))
    monkeypatch.setattr(ScheduleServiceClient, "create_schedule", capture("schedule"))
    args = {"awe_hparams": {"epochs": 3}, "train": "gs://b/train.csv", "export_dir": "gs://b/out"}
    job = vertex.make_job(compiled, "textclf-test", "europe-west4", "gs://textclf-test/root", args,
                          credentials=AnonymousCredentials())
    with pytest.raises((Sent, RuntimeError)):
        vertex.submit(job, service_account="sa@textclf-test.iam.gserviceaccount.com")
    request = sent["job"]
    assert request["parent"] == "projects/textclf-test/locations/europe-west4"
    pipeline_job = request["pipeline_job"]
    assert pipeline_job.runtime_config.gcs_output_directory == "gs://textclf-test/root"
    assert pipeline_job.service_account == "sa@textclf-test.iam.gserviceaccount.com"
    assert pipeline_job.runtime_config.parameter_values["train"] == "gs://b/train.csv"

    job = vertex.make_job(compiled, "textclf-test", "europe-west4", "gs://textclf-test/root", args,
                          credentials=AnonymousCredentials())
    with pytest.raises((Sent, RuntimeError)):
        vertex.submit(job, schedule="0 3 * * 1", schedule_name="weekly")
    schedule = sent["schedule"]["schedule"]
    assert schedule.cron == "0 3 * * 1" and schedule.display_name == "weekly"
    assert schedule.create_pipeline_job_request.pipeline_job.runtime_config.gcs_output_directory == "gs://textclf-test/root"
    with pytest.raises(ConfigError, match="gs://"):
        vertex.make_job(compiled, "p", "r", "/local/root", args)


def test_kubeflow_run_and_recurring_run(compiled):
    from pipelines import kubeflow

    class FakeClient:
        def __init__(self):
            self.calls = []

        def create_run_from_pipeline_package(self, path, **kwargs):
            self.calls.append(("run", path, kwargs))
            return "run"

        def create_experiment(self, name, namespace=None):
            self.calls.append(("experiment", name, namespace))
            return type("E", (), {"experiment_id": "exp-1"})()

        def create_recurring_run(self, **kwargs):
            self.calls.append(("recurring", kwargs))
            return "recurring"

    client = FakeClient()
    kubeflow.submit("http://kfp.local", compiled, {"min_accuracy": 0.5}, pipeline_root="gs://b/r", client=client)
    kind, path, kwargs = client.calls[0]
    assert kind == "run" and path == compiled and kwargs["arguments"] == {"min_accuracy": 0.5}
    assert kwargs["pipeline_root"] == "gs://b/r"
    kubeflow.submit("http://kfp.local", compiled, {}, schedule="*/30 * * * *", client=client)
    assert client.calls[-1][1]["cron_expression"] == "*/30 * * * *"
    assert client.calls[-1][1]["experiment_id"] == "exp-1"


def test_kubeflow_client_sends_the_compiled_package(compiled, monkeypatch):
    """The real kfp.Client builds the request; only its HTTP calls are replaced."""
    import kfp
    import kfp_server_api

    from pipelines import kubeflow
    seen = {}

    def obj(**fields):
        return type("Response", (), fields)()

    monkeypatch.setattr(kfp_server_api.HealthzServiceApi, "healthz_service_get_healthz",
                        lambda self, **kw: obj(multi_user=False))
    monkeypatch.setattr(kfp_server_api.ExperimentServiceApi, "experiment_service_list_experiments",
                        lambda self, **kw: obj(experiments=[], next_page_token=None, total_size=0))
    monkeypatch.setattr(kfp_server_api.ExperimentServiceApi, "experiment_service_create_experiment",
                        lambda self, experiment, **kw: obj(experiment_id="e-1",
                                                           display_name=experiment.display_name))

    def fake_create_run(self, run, **kwargs):
        seen["run"] = run
        return obj(run_id="r-1")

    monkeypatch.setattr(kfp_server_api.RunServiceApi, "run_service_create_run", fake_create_run)
    client = kfp.Client(host="http://127.0.0.1:9")
    kubeflow.submit("http://127.0.0.1:9", compiled, {"awe_hparams": {"epochs": 3}}, client=client)
    run = seen["run"]
    assert run.experiment_id == "e-1"
    assert run.runtime_config.parameters["awe_hparams"] == {"epochs": 3}
    assert run.pipeline_spec["pipelineInfo"]["name"] == "textclf-text-classifier"


def test_run_refuses_a_missing_local_file_before_starting(tmp_path, capsys):
    from pipelines.cli import main
    assert main(["run", "--train", str(tmp_path / "missing.csv"), "--pipeline-root", str(tmp_path / "root")]) == 2
    assert "missing.csv: file not found" in capsys.readouterr().err
    assert not (tmp_path / "root").exists()
